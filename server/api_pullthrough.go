package server

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
)

// Pull-through caches (Pulp's pull-through remotes and distributions) and
// reclaiming disk space: the REST side of on-demand content.

func pullThroughRemoteHref(id string) string {
	return APIRoot + "remotes/docker/pull-through/" + id + "/"
}

func pullThroughDistributionHref(id string) string {
	return APIRoot + "docker-pull-through-distributions/" + id + "/"
}

var pullThroughRemoteHrefRe = regexp.MustCompile(`^/pulp/api/v3/remotes/docker/pull-through/([0-9a-f-]{36})/$`)

func parsePullThroughRemoteHref(path string) (string, bool) {
	m := pullThroughRemoteHrefRe.FindStringSubmatch(path)
	if m == nil || !isUUID(m[1]) {
		return "", false
	}
	return m[1], true
}

// pullThroughRemoteJSON is a pull-through remote as the API shows it:
// never its password or client key.
type pullThroughRemoteJSON struct {
	Href                 string   `json:"_href"`
	Created              string   `json:"_created"`
	Name                 string   `json:"name"`
	URL                  string   `json:"url"`
	Policy               string   `json:"policy"`
	Includes             []string `json:"includes"`
	Excludes             []string `json:"excludes"`
	DownloadConcurrency  int      `json:"download_concurrency"`
	Username             *string  `json:"username"`
	SSLCACertificate     *string  `json:"ssl_ca_certificate"`
	SSLClientCertificate *string  `json:"ssl_client_certificate"`
	SSLValidation        bool     `json:"ssl_validation"`
	ProxyURL             *string  `json:"proxy_url"`
}

func pullThroughRemoteView(p *remote.PullThroughRemote) pullThroughRemoteJSON {
	return pullThroughRemoteJSON{
		Href:                 pullThroughRemoteHref(p.ID),
		Created:              ts(p.CreatedAt),
		Name:                 p.Name,
		URL:                  p.URL,
		Policy:               string(p.Policy),
		Includes:             list(p.Includes),
		Excludes:             list(p.Excludes),
		DownloadConcurrency:  p.DownloadConcurrency,
		Username:             nullable(p.Username),
		SSLCACertificate:     nullable(p.SSLCACertificate),
		SSLClientCertificate: nullable(p.SSLClientCertificate),
		SSLValidation:        !p.InsecureSkipVerify,
		ProxyURL:             nullable(redactURL(p.ProxyURL)),
	}
}

// readPullThroughRemote applies a request body to p: every field for POST
// and PUT (those left out take their defaults), those sent for PATCH.
func readPullThroughRemote(r *http.Request, p *remote.PullThroughRemote) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	if r.Method != http.MethodPatch {
		id, created := p.ID, p.CreatedAt
		*p = *remote.NewPullThrough("", "")
		p.ID, p.CreatedAt = id, created
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.Name, b.str("name", true, false))
	set(&p.URL, b.str("url", true, false))
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"username", &p.Username}, {"password", &p.Password},
		{"ssl_ca_certificate", &p.SSLCACertificate}, {"ssl_client_certificate", &p.SSLClientCertificate},
		{"ssl_client_key", &p.SSLClientKey}, {"proxy_url", &p.ProxyURL},
	} {
		set(f.dst, b.str(f.name, false, true))
	}
	if v := b.str("policy", false, false); v != nil {
		p.Policy = remote.Policy(*v)
	}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{{"includes", &p.Includes}, {"excludes", &p.Excludes}} {
		if v := b.strList(f.name); v != nil {
			*f.dst = *v
		}
	}
	if v := b.integer("download_concurrency", 1, remote.MaxDownloadConcurrency); v != nil {
		p.DownloadConcurrency = *v
	}
	if v := b.boolean("ssl_validation"); v != nil {
		p.InsecureSkipVerify = !*v
	}
	return b.done()
}

func (s *Server) listPullThroughRemotes(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := remote.Filter{Name: q.str("name"), Limit: limit, Offset: offset}
	if err := q.done(); err != nil {
		return err
	}
	ps, n, err := s.remotes.ListPullThrough(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]pullThroughRemoteJSON, len(ps))
	for i := range ps {
		out[i] = pullThroughRemoteView(&ps[i])
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) createPullThroughRemote(w http.ResponseWriter, r *http.Request) error {
	p := remote.NewPullThrough("", "")
	if err := readPullThroughRemote(r, p); err != nil {
		return err
	}
	if err := s.remotes.CreatePullThrough(r.Context(), p); err != nil {
		return onField(err, "name", errdef.ErrConflict)
	}
	writeJSON(w, http.StatusCreated, pullThroughRemoteView(p))
	return nil
}

func (s *Server) getPullThroughRemote(w http.ResponseWriter, r *http.Request) error {
	p, err := s.remotes.GetPullThrough(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pullThroughRemoteView(p))
	return nil
}

func (s *Server) updatePullThroughRemote(w http.ResponseWriter, r *http.Request) error {
	p, err := s.remotes.GetPullThrough(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if err := readPullThroughRemote(r, p); err != nil {
		return err
	}
	if err := s.remotes.UpdatePullThrough(r.Context(), p); err != nil {
		return onField(err, "name", errdef.ErrConflict)
	}
	writeJSON(w, http.StatusOK, pullThroughRemoteView(p))
	return nil
}

func (s *Server) deletePullThroughRemote(w http.ResponseWriter, r *http.Request) error {
	if err := s.remotes.DeletePullThrough(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pullThroughDistributionJSON is a pull-through distribution as the API
// shows it; tag_ttl is in seconds.
type pullThroughDistributionJSON struct {
	Href         string `json:"_href"`
	Created      string `json:"_created"`
	Name         string `json:"name"`
	BasePath     string `json:"base_path"`
	Remote       string `json:"remote"`
	TagTTL       int    `json:"tag_ttl"`
	MaxSize      *int64 `json:"max_size"`
	RegistryPath string `json:"registry_path"`
}

func (s *Server) pullThroughDistributionView(p *distribution.PullThroughDistribution) pullThroughDistributionJSON {
	return pullThroughDistributionJSON{
		Href:         pullThroughDistributionHref(p.ID),
		Created:      ts(p.CreatedAt),
		Name:         p.Name,
		BasePath:     p.BasePath,
		Remote:       pullThroughRemoteHref(p.RemoteID),
		TagTTL:       p.TagTTLSeconds,
		MaxSize:      p.MaxSize,
		RegistryPath: s.origin + "/" + p.BasePath,
	}
}

// maxTagTTL caps tag_ttl: a year.
const maxTagTTL = 365 * 24 * 3600

// readPullThroughDistribution applies a request body to p: every field
// for POST and PUT (tag_ttl and max_size left out take their defaults),
// those sent for PATCH.
func readPullThroughDistribution(r *http.Request, p *distribution.PullThroughDistribution) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	if r.Method != http.MethodPatch {
		p.TagTTLSeconds, p.MaxSize = -1, nil
	}
	if v := b.str("name", true, false); v != nil {
		p.Name = *v
	}
	if v := b.str("base_path", true, false); v != nil {
		p.BasePath = *v
	}
	if v := b.href("remote", true, false, parsePullThroughRemoteHref); v != nil {
		p.RemoteID = *v
	}
	if v := b.integer("tag_ttl", 0, maxTagTTL); v != nil {
		p.TagTTLSeconds = *v
	}
	if b.has("max_size") {
		if b.isNull("max_size") {
			p.MaxSize = nil
		} else if v := b.integer("max_size", 1, int(^uint(0)>>1)); v != nil {
			n := int64(*v)
			p.MaxSize = &n
		}
	}
	return b.done()
}

func (s *Server) listPullThroughDistributions(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := distribution.PullThroughFilter{Name: q.str("name"), BasePath: q.str("base_path"), Page: repository.Page{Limit: limit, Offset: offset}}
	if err := q.done(); err != nil {
		return err
	}
	ps, n, err := s.dists.ListPullThrough(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]pullThroughDistributionJSON, len(ps))
	for i := range ps {
		out[i] = s.pullThroughDistributionView(&ps[i])
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) createPullThroughDistribution(w http.ResponseWriter, r *http.Request) error {
	p := new(distribution.PullThroughDistribution)
	if err := readPullThroughDistribution(r, p); err != nil {
		return err
	}
	if err := s.m.CreatePullThroughDistribution(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.pullThroughDistributionView(p))
	return nil
}

func (s *Server) getPullThroughDistribution(w http.ResponseWriter, r *http.Request) error {
	p, err := s.dists.GetPullThrough(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.pullThroughDistributionView(p))
	return nil
}

func (s *Server) updatePullThroughDistribution(w http.ResponseWriter, r *http.Request) error {
	p, err := s.dists.GetPullThrough(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if err := readPullThroughDistribution(r, p); err != nil {
		return err
	}
	if err := s.m.UpdatePullThroughDistribution(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.pullThroughDistributionView(p))
	return nil
}

func (s *Server) deletePullThroughDistribution(w http.ResponseWriter, r *http.Request) error {
	if err := s.dists.DeletePullThrough(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reclaimSpace enqueues a reclaim of the repositories' disk space (Pulp's
// repositories/reclaim_space/): 202 and the task's href.
func (s *Server) reclaimSpace(w http.ResponseWriter, r *http.Request) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	var args remote.ReclaimArgs
	if v := hrefList(b, "repo_hrefs", true, parseRepoHref); v != nil {
		args.Repositories = v
	}
	for _, key := range hrefList(b, "repo_versions_keeplist", false, parseVersionHref) {
		id, n := splitVersionKey(key)
		args.Keep = append(args.Keep, repository.VersionRef{RepositoryID: id, Number: n})
	}
	if err := b.done(); err != nil {
		return err
	}
	t, err := s.m.EnqueueReclaim(r.Context(), args, repoHref)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}

// hrefList reads a list of hyperlinks; parse returns each one's id or
// false when it is not of the expected kind.
func hrefList(b *body, field string, required bool, parse func(string) (string, bool)) []string {
	if !b.has(field) {
		if required {
			b.required(field)
		}
		return nil
	}
	raw := b.strList(field)
	if raw == nil {
		return nil
	}
	if required && len(*raw) == 0 {
		b.fail(field, "This list may not be empty.")
		return nil
	}
	ids := make([]string, 0, len(*raw))
	for i, h := range *raw {
		if u, err := url.Parse(h); err == nil && u.Scheme != "" {
			h = u.Path
		}
		id, ok := parse(h)
		if !ok {
			b.fail(field, "Invalid hyperlink - No URL match (item "+strconv.Itoa(i)+").")
			return nil
		}
		ids = append(ids, id)
	}
	return ids
}
