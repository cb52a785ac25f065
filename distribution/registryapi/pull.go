package registryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// getBase answers the API version check (distribution spec "Determining
// support"). With an Authenticator, without valid credentials it is a 401
// with the challenge:
// clients such as podman and skopeo decide on this probe alone whether to
// send credentials later, so a push needs it; pulls stay anonymous.
func (h *handler) getBase(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, Access{}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// listParams reads n and last ("Listing Tags", "Catalog"); n defaults to
// and is capped at maxList.
func listParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = maxList
	if s := q.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", fmt.Errorf("%w: n must be a whole number", errdef.ErrPaginationInvalid)
		}
		n = min(n, maxList)
	}
	return n, q.Get("last"), nil
}

const maxList = 1000

// setNextLink sets the Link header to the next page when more follow the
// page: a last page, full or not, has none.
func setNextLink(w http.ResponseWriter, r *http.Request, page []string, n int, more bool) {
	if n == 0 || len(page) == 0 || !more {
		return
	}
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
}

func (h *handler) getCatalog(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, Access{Action: ActionCatalog}); err != nil {
		return err
	}
	n, last, err := listParams(r)
	if err != nil {
		return err
	}
	paths := []string{}
	more := false
	if n > 0 {
		// One more than the page, to know whether a next page exists.
		if paths, err = h.registry.Catalog(r.Context(), n+1, last); err != nil {
			return err
		}
		if more = len(paths) > n; more {
			paths = paths[:n]
		}
		if f, ok := h.opts.Auth.(CatalogFilter); ok {
			if paths, err = f.Visible(r, paths); err != nil {
				return err
			}
		}
	}
	setNextLink(w, r, paths, n, more)
	return writeJSON(w, http.StatusOK, map[string][]string{"repositories": paths})
}

func (h *handler) getTags(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, Access{Name: mux.Vars(r)["name"], Action: ActionPull}); err != nil {
		return err
	}
	n, last, err := listParams(r)
	if err != nil {
		return err
	}
	v, err := h.registry.Resolve(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	all, err := h.registry.Tags(r.Context(), v)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("n") == "" {
		n = len(all) // without n, every tag, as CNCF distribution answers
	}
	// Tags are sorted: start after last.
	start := sort.Search(len(all), func(i int) bool { return all[i] > last })
	end := min(start+n, len(all))
	page := all[start:end]
	setNextLink(w, r, page, n, end < len(all))
	return writeJSON(w, http.StatusOK, map[string]any{"name": v.BasePath, "tags": page})
}

// accepts reports which media types the request's Accept headers allow. No
// Accept header, or a wildcard, allows every type; q=0 refuses one.
func accepts(r *http.Request) func(string) bool {
	ok := map[string]bool{}
	any := false
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, has := params["q"]; has {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			if mt == "*/*" || mt == "application/*" {
				any = true
			}
			ok[mt] = true
		}
	}
	if len(ok) == 0 {
		// No Accept header, or nothing usable in it: anything goes.
		return func(string) bool { return true }
	}
	return func(mt string) bool { return any || ok[mt] }
}

// getManifest serves a manifest by tag or digest ("Pulling manifests"):
// the exact stored bytes, with the headers clients check.
func (h *handler) getManifest(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, Access{Name: mux.Vars(r)["name"], Action: ActionPull}); err != nil {
		return err
	}
	ctx := r.Context()
	v, err := h.registry.Resolve(ctx, mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	ref := mux.Vars(r)["reference"]
	m, err := h.registry.Manifest(ctx, v, ref)
	if err != nil {
		return err
	}
	accept := accepts(r)
	if !accept(m.MediaType) {
		// A client that cannot read what a tag names: as CNCF distribution
		// does, give it the linux/amd64 image of a list, else nothing. A
		// digest pins bytes, so it is served whatever Accept says.
		if _, notDigest := digest.Parse(ref); notDigest != nil { // a tag
			if m.Type != content.TypeManifestList {
				return errdef.New(errdef.ErrManifestUnknown, "%s is %s, which the Accept header does not allow", ref, m.MediaType)
			}
			if m, err = h.registry.PlatformManifest(ctx, v, m, "linux", "amd64", accept); err != nil {
				return err
			}
		}
	}
	hd := w.Header()
	etag := `"` + m.Digest.String() + `"`
	hd.Set("Docker-Content-Digest", m.Digest.String())
	hd.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hd.Set("Content-Type", m.MediaType)
	hd.Set("Content-Length", strconv.Itoa(len(m.Raw)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Raw)
	}
	return nil
}

// getBlob serves a blob ("Pulling blobs"), with Range support; a file is
// handed to http.ServeContent as the *os.File itself so that net/http can
// use sendfile. With Options.RedirectBlobs a GET of a stored blob is
// answered with a 307 to the backing store instead, which then serves the
// bytes (and any Range the client asks for); HEAD is answered here, from
// the size OpenBlob learnt.
func (h *handler) getBlob(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, Access{Name: mux.Vars(r)["name"], Action: ActionPull}); err != nil {
		return err
	}
	ctx := r.Context()
	d, err := digest.Parse(mux.Vars(r)["digest"])
	if err != nil {
		return fmt.Errorf("%w: %v", errdef.ErrDigestInvalid, err)
	}
	v, err := h.registry.Resolve(ctx, mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	// OpenBlob checks the version holds the blob and that storage has it;
	// on S3 it costs one HEAD and no GET until the first Read.
	b, err := h.registry.OpenBlob(ctx, v, d)
	if err != nil {
		return err
	}
	defer b.Close()
	if b.OnDemand && r.Method == http.MethodGet {
		// Before any header: an upstream that fails now is answered with
		// its error (404, 429, 502, 504), not a broken 200.
		if err := b.Start(ctx); err != nil {
			return err
		}
	}
	hd := w.Header()
	hd.Set("Docker-Content-Digest", d.String())
	// A manifest served as a blob has a media type and comes from the
	// database, not from storage: it cannot be redirected; nor can
	// on-demand bytes, which storage does not hold.
	if h.redirect != nil && r.Method == http.MethodGet && b.MediaType == "" && !b.OnDemand && redirectableRange(r.Header.Get("Range"), b.Size) {
		var u string
		if or, ok := b.ReadSeekCloser.(storage.OpenRedirector); ok {
			u, err = or.RedirectURL(ctx, h.expiry) // no second existence check
		} else {
			u, err = h.redirect.RedirectURL(ctx, d, h.expiry)
		}
		if err != nil {
			if errors.Is(err, errdef.ErrNotFound) {
				return errdef.New(errdef.ErrBlobUnknown, "%s (in the repository version but not in storage)", d)
			}
			return err
		}
		// The URL expires: let no cache keep the redirect longer.
		hd.Set("Cache-Control", "no-store")
		http.Redirect(w, r, u, http.StatusTemporaryRedirect)
		return nil
	}
	hd.Set("ETag", `"`+d.String()+`"`)
	hd.Set("Cache-Control", "max-age=31536000")
	hd.Set("Content-Type", "application/octet-stream")
	if b.MediaType != "" {
		hd.Set("Content-Type", b.MediaType)
	}
	if !b.OnDemand {
		http.ServeContent(w, r, "", time.Time{}, b.ReadSeekCloser)
		return nil
	}
	// Bytes arriving from the upstream go out as they come.
	fw := flushWriter{w, http.NewResponseController(w)}
	if r.Method == http.MethodGet && !conditional(r) {
		// The whole blob, the common case: in large writes.
		hd.Set("Content-Length", strconv.FormatInt(b.Size, 10))
		w.WriteHeader(http.StatusOK)
		buf := copyBuffers.Get().(*[]byte)
		_, err := io.CopyBuffer(fw, b, *buf)
		copyBuffers.Put(buf)
		if err != nil || b.Err() != nil {
			panic(http.ErrAbortHandler) // see below
		}
		return nil
	}
	http.ServeContent(fw, r, "", time.Time{}, b.ReadSeekCloser)
	if b.Err() != nil {
		// The status line is sent: only a broken connection tells the
		// client that what it got is not the blob.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// conditional reports whether a request asks for part of a blob or sets
// a condition, which http.ServeContent answers.
func conditional(r *http.Request) bool {
	for _, h := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// copyBuffers are the buffers on-demand blobs are sent through: large, so
// that a blob goes out in few writes.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// flushWriter flushes every write, so that a client receives on-demand
// bytes as they arrive from the upstream.
type flushWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// redirectableRange reports whether a blob GET with this Range header (RFC
// 9110 section 14.2) may be redirected: no header, or byte ranges that are
// all well formed and satisfiable. Anything else is answered here, as
// http.ServeContent answers it (416), since object stores disagree on
// malformed ranges; S3 ignores them and sends the whole blob.
func redirectableRange(h string, size int64) bool {
	if h == "" {
		return true
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return false
	}
	for part := range strings.SplitSeq(spec, ",") {
		first, last, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			return false
		}
		if first == "" { // suffix: the last n bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n <= 0 || size == 0 {
				return false
			}
			continue
		}
		a, err := strconv.ParseInt(first, 10, 64)
		if err != nil || a < 0 || a >= size {
			return false
		}
		if last != "" {
			if b, err := strconv.ParseInt(last, 10, 64); err != nil || b < a {
				return false
			}
		}
	}
	return true
}

// unmatched answers paths no route matched: a name that breaks the
// grammar is NAME_INVALID, anything else NAME_UNKNOWN or UNSUPPORTED.
func (h *handler) unmatched(w http.ResponseWriter, r *http.Request) error {
	{
		p := r.URL.Path
		if !strings.HasPrefix(p, "/v2/") {
			return errNotFoundRegistry
		}
		for _, op := range []string{"/manifests/", "/blobs/", "/tags/list"} {
			if i := strings.LastIndex(p, op); i > len("/v2/") {
				name := p[len("/v2/"):i]
				if err := content.ValidateRepositoryName(name); err != nil {
					return fmt.Errorf("%w: %v", errdef.ErrNameInvalid, err)
				}
				if op == "/blobs/" {
					return fmt.Errorf("%w: %q", errdef.ErrDigestInvalid, p[i+len(op):])
				}
				return errdef.New(errdef.ErrManifestUnknown, "%s", p[i+len(op):])
			}
		}
		return errNotFoundRegistry
	}
}

var errNotFoundRegistry = errdef.New(errdef.ErrNameUnknown, "no such endpoint")

// getReferrers answers GET /v2/<name>/referrers/<digest> (distribution
// spec "Listing Referrers"): an OCI index of the manifests in the served
// version whose subject is the digest, filtered by ?artifactType=. A name
// not served, or a subject nothing refers to, has an empty list.
func (h *handler) getReferrers(w http.ResponseWriter, r *http.Request) error {
	if err := h.authorize(r, Access{Name: mux.Vars(r)["name"], Action: ActionPull}); err != nil {
		return err
	}
	ctx := r.Context()
	d, err := parseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("artifactType")
	descs := []ocispec.Descriptor{}
	v, err := h.registry.Resolve(ctx, mux.Vars(r)["name"])
	switch {
	case err == nil:
		if descs, err = h.registry.Referrers(ctx, v, d, filter); err != nil {
			return err
		}
	case !errors.Is(err, errdef.ErrNameUnknown):
		return err
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", ocispec.MediaTypeImageIndex)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return nil
}

func parseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := storage.ValidateDigest(d); err != nil {
		return "", fmt.Errorf("%w: %v", errdef.ErrDigestInvalid, err)
	}
	return d, nil
}
