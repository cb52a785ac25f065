package server

import (
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/remote"
)

// remoteJSON is a remote as the API shows it: never its password or
// client key.
type remoteJSON struct {
	Href                 string   `json:"_href"`
	Created              string   `json:"_created"`
	Name                 string   `json:"name"`
	URL                  string   `json:"url"`
	UpstreamName         string   `json:"upstream_name"`
	WhitelistTags        []string `json:"whitelist_tags"`
	IncludeTags          []string `json:"include_tags"`
	ExcludeTags          []string `json:"exclude_tags"`
	DownloadConcurrency  int      `json:"download_concurrency"`
	Username             *string  `json:"username"`
	SSLCACertificate     *string  `json:"ssl_ca_certificate"`
	SSLClientCertificate *string  `json:"ssl_client_certificate"`
	SSLValidation        bool     `json:"ssl_validation"`
	ProxyURL             *string  `json:"proxy_url"`
	Policy               string   `json:"policy"`
	MaxBandwidth         int64    `json:"max_bandwidth"`
	RateLimit            int      `json:"rate_limit"`
	SyncReferrers        bool     `json:"sync_referrers"`
	IncludePlatforms     []string `json:"include_platforms"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func remoteView(r *remote.Remote) remoteJSON {
	return remoteJSON{
		Href:                 remoteHref(r.ID),
		Created:              ts(r.CreatedAt),
		Name:                 r.Name,
		URL:                  r.URL,
		UpstreamName:         r.UpstreamName,
		WhitelistTags:        list(r.WhitelistTags),
		IncludeTags:          list(r.IncludeTags),
		ExcludeTags:          list(r.ExcludeTags),
		DownloadConcurrency:  r.DownloadConcurrency,
		Username:             nullable(r.Username),
		SSLCACertificate:     nullable(r.SSLCACertificate),
		SSLClientCertificate: nullable(r.SSLClientCertificate),
		SSLValidation:        r.SSLValidation(),
		ProxyURL:             nullable(redactURL(r.ProxyURL)),
		Policy:               string(r.Policy),
		MaxBandwidth:         r.MaxBandwidth,
		RateLimit:            r.RateLimit,
		SyncReferrers:        r.SyncReferrers(),
		IncludePlatforms:     list(r.IncludePlatforms),
	}
}

// readRemote applies a request body to rm: every field for POST and PUT
// (those left out take their defaults), the fields sent for PATCH.
func readRemote(r *http.Request, rm *remote.Remote) error {
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	if r.Method != http.MethodPatch {
		id, created := rm.ID, rm.CreatedAt
		*rm = *remote.New("", "", "")
		rm.ID, rm.CreatedAt = id, created
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&rm.Name, b.str("name", true, false))
	set(&rm.URL, b.str("url", true, false))
	set(&rm.UpstreamName, b.str("upstream_name", true, false))
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"username", &rm.Username}, {"password", &rm.Password},
		{"ssl_ca_certificate", &rm.SSLCACertificate}, {"ssl_client_certificate", &rm.SSLClientCertificate},
		{"ssl_client_key", &rm.SSLClientKey}, {"proxy_url", &rm.ProxyURL},
	} {
		set(f.dst, b.str(f.name, false, true))
	}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{{"whitelist_tags", &rm.WhitelistTags}, {"include_tags", &rm.IncludeTags}, {"exclude_tags", &rm.ExcludeTags},
		{"include_platforms", &rm.IncludePlatforms}} {
		if v := b.strList(f.name); v != nil {
			*f.dst = *v
		}
	}
	if v := b.integer("download_concurrency", 1, remote.MaxDownloadConcurrency); v != nil {
		rm.DownloadConcurrency = *v
	}
	if v := b.boolean("ssl_validation"); v != nil {
		rm.InsecureSkipVerify = !*v
	}
	if v := b.str("policy", false, false); v != nil {
		rm.Policy = remote.Policy(*v)
	}
	if v := b.integer("max_bandwidth", 0, 1<<50); v != nil {
		rm.MaxBandwidth = int64(*v)
	}
	if v := b.integer("rate_limit", 0, 1<<20); v != nil {
		rm.RateLimit = *v
	}
	if v := b.boolean("sync_referrers"); v != nil {
		rm.SkipReferrers = !*v
	}
	return b.done()
}

func (s *Server) listRemotes(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	limit, offset := q.page()
	f := remote.Filter{Name: q.str("name"), Limit: limit, Offset: offset}
	if err := q.done(); err != nil {
		return err
	}
	rs, n, err := s.remotes.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]remoteJSON, len(rs))
	for i := range rs {
		out[i] = remoteView(&rs[i])
	}
	writeJSON(w, http.StatusOK, newPage(r, out, n, limit, offset))
	return nil
}

func (s *Server) createRemote(w http.ResponseWriter, r *http.Request) error {
	rm := remote.New("", "", "")
	if err := readRemote(r, rm); err != nil {
		return err
	}
	if err := s.remotes.Create(r.Context(), rm); err != nil {
		return onField(err, "name", errdef.ErrConflict)
	}
	writeJSON(w, http.StatusCreated, remoteView(rm))
	return nil
}

func (s *Server) getRemote(w http.ResponseWriter, r *http.Request) error {
	rm, err := s.remotes.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, remoteView(rm))
	return nil
}

func (s *Server) updateRemote(w http.ResponseWriter, r *http.Request) error {
	rm, err := s.remotes.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if err := readRemote(r, rm); err != nil {
		return err
	}
	if err := s.remotes.Update(r.Context(), rm); err != nil {
		return onField(err, "name", errdef.ErrConflict)
	}
	writeJSON(w, http.StatusOK, remoteView(rm))
	return nil
}

func (s *Server) deleteRemote(w http.ResponseWriter, r *http.Request) error {
	if err := s.remotes.Delete(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// syncRemote enqueues a sync of a remote into a repository: 202 and the
// task's href, as Pulp answers.
func (s *Server) syncRemote(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	b, err := decodeBody(r)
	if err != nil {
		return err
	}
	repoID := b.href("repository", true, false, parseRepoHref)
	mirror := b.boolean("mirror")
	signedOnly := b.boolean("signed_only")
	patience := b.integer("retry_patience", 0, 86400)
	if err := b.done(); err != nil {
		return err
	}
	rm, err := s.remotes.Get(ctx, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if _, err := s.repos.Repository(ctx, *repoID); err != nil {
		return objectMissing(err, "repository")
	}
	if err := s.requireRepo(ctx, s.scopedUser(r), *repoID, mooring.PermWrite); err != nil {
		return objectMissing(err, "repository")
	}
	args := remote.SyncArgs{Remote: rm.ID, Repository: *repoID, Mirror: mirror != nil && *mirror, SignedOnly: signedOnly != nil && *signedOnly}
	if patience != nil {
		args.RetryPatience = *patience
	}
	t, err := remote.EnqueueSync(ctx, s.tasks, args, repoHref(*repoID), remoteHref(rm.ID))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task": taskHref(t.ID)})
	return nil
}

// redactURL hides the password of a URL's credentials: write-only, like
// every secret of a remote.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
