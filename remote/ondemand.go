package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
)

// The on-demand side of a remote: blobs that repositories record without
// their bytes (see repository's lazy.go) fetched from the upstream when a
// client pulls them, and the manifest requests of pull-through caches.

// DefaultFetchRetryPolicy is the retry policy of a Fetcher whose Retry is
// the zero value: a client is waiting, so retries are few and short, and a
// 429 asking for a long pause is passed on to the client instead.
var DefaultFetchRetryPolicy = RetryPolicy{Attempts: 3, MinWait: 100 * time.Millisecond, MaxWait: time.Second, MaxRetryAfter: 2 * time.Second}

// FetcherOptions tune a Fetcher. Zero fields take the documented defaults.
type FetcherOptions struct {
	// Retry says how requests to upstreams are retried; the zero value is
	// DefaultFetchRetryPolicy. A download that breaks off after its first
	// byte is resumed where it stopped, within the same attempts.
	Retry RetryPolicy
	// Timeout bounds the wait for an upstream's answer (its response
	// headers, or a manifest). Default 30s.
	Timeout time.Duration
	// Cooldown is how long a source (a remote and a blob) that served
	// bytes not matching the blob's digest or size is left alone before
	// the next pull tries it again; it doubles with each failure in a row,
	// up to MaxCooldown. Default 2s, MaxCooldown 5m.
	Cooldown, MaxCooldown time.Duration
	// TempDir is where downloads in flight are spooled, so that clients
	// that join late or read slowly need no memory. Default os.TempDir().
	TempDir string
	// Logger receives failed and finished downloads; nil discards.
	Logger *slog.Logger
	// OnStored, when set, is called after a blob fetched on demand was
	// stored. It must not block.
	OnStored func(d digest.Digest, size int64)
}

// Fetcher fetches on-demand blobs from the remotes that recorded them, for
// the registry to serve, and manifests for pull-through caches. It is safe
// for concurrent use; one Fetcher serves a whole process.
//
// A blob is fetched once however many clients ask for it at once (single
// flight, per process): the first request starts the download, which
// spools to a temporary file that every client reads as the bytes arrive.
// A client that leaves does not stop the download for the others; when the
// last one leaves before the end, the download stops. Digest and size are
// verified on the way; the last byte of the blob is given to no client
// before they are, so that a mismatch (the status line long sent) breaks
// every client's connection instead of completing a response with wrong
// bytes. The blob is then not stored, and the source is left alone for a
// cooldown. Under a remote whose policy stores (immediate, on_demand), a
// verified blob is stored and its unit marked stored, so the next pull is
// local; under streamed it never is.
type Fetcher struct {
	repos   *repository.Store
	remotes *Store
	blobs   storage.Driver
	opts    FetcherOptions
	log     *slog.Logger

	mu      sync.Mutex
	flights map[flightKey]*flight
	cooling map[flightKey]cooldown
	clients map[string]*upstream
	read    map[string]cachedRemote // remotes by id, read at most remoteTTL ago
}

// cachedRemote is a remote as read from the store, and when.
type cachedRemote struct {
	r  *Remote
	at time.Time
}

// remoteTTL is how long a remote read from the store is used for pulls
// before it is read again: an update reaches pulls that late at most.
const remoteTTL = 2 * time.Second

// flightKey names one download: a blob through one remote.
type flightKey struct {
	remote string // the remote's fingerprint
	digest digest.Digest
}

type cooldown struct {
	until    time.Time
	failures int
}

// NewFetcher returns a Fetcher reading sources from repos and remotes and
// storing fetched blobs in blobs.
func NewFetcher(repos *repository.Store, remotes *Store, blobs storage.Driver, opts FetcherOptions) *Fetcher {
	if opts.Retry == (RetryPolicy{}) {
		opts.Retry = DefaultFetchRetryPolicy
	}
	opts.Retry = opts.Retry.norm()
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = 2 * time.Second
	}
	if opts.MaxCooldown <= 0 {
		opts.MaxCooldown = 5 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{repos: repos, remotes: remotes, blobs: blobs, opts: opts, log: log,
		flights: map[flightKey]*flight{}, cooling: map[flightKey]cooldown{}, clients: map[string]*upstream{},
		read: map[string]cachedRemote{}}
}

// FetchBlob returns a reader of blob b, which repository repoID records
// without its bytes, fetched from a remote that can fetch it for the
// repository: one that recorded it there, or else, for content copied
// between repositories, one without credentials that recorded it
// elsewhere (a remote's credentials serve only what was synced through
// it). With no such remote it is errdef.ErrBlobUnknown.
//
// The reader knows b.Size without asking the upstream: seeking (and a
// HEAD request) costs nothing. Its first Read, or Start, starts the
// download or joins one in flight. After a failed Read, Err says why.
// ctx bounds the reader's waits; it should be the request's.
func (f *Fetcher) FetchBlob(ctx context.Context, repoID string, b content.Blob) (*RemoteBlob, error) {
	if b.Size < 0 {
		return nil, errdef.New(errdef.ErrBlobUnknown, "%s: its size is not recorded", b.Digest)
	}
	r, err := f.source(ctx, repoID, b.Digest)
	if err != nil {
		return nil, err
	}
	return &RemoteBlob{ctx: ctx, f: f, r: r, desc: b}, nil
}

// source picks the remote to fetch d through for repository repoID: the
// first, by age, of those allowed that is not cooling down.
func (f *Fetcher) source(ctx context.Context, repoID string, d digest.Digest) (*Remote, error) {
	sources, err := f.repos.Sources(ctx, repoID, d)
	if err != nil {
		return nil, err
	}
	var wait time.Duration
	for _, s := range sources {
		r, err := f.remote(ctx, s.RemoteID)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !s.Own && r.hasCredentials() {
			continue
		}
		if left := f.coolingFor(flightKey{r.fingerprint(), d}); left > 0 {
			wait = max(wait, left)
			continue
		}
		return r, nil
	}
	if wait > 0 {
		return nil, &errdef.RetryAfter{After: wait, Err: errdef.New(errdef.ErrUnavailable,
			"blob %s: its upstream served bytes that did not match it; trying again in %s", d, wait.Round(time.Second))}
	}
	return nil, errdef.New(errdef.ErrBlobUnknown, "%s is recorded without its bytes, and no remote can fetch it for this repository", d)
}

// remote returns the stored remote id, read again once remoteTTL has
// passed.
func (f *Fetcher) remote(ctx context.Context, id string) (*Remote, error) {
	f.mu.Lock()
	c, ok := f.read[id]
	f.mu.Unlock()
	if ok && time.Since(c.at) < remoteTTL {
		return c.r, nil
	}
	r, err := f.remotes.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if len(f.read) >= 10000 {
		clear(f.read)
	}
	f.read[id] = cachedRemote{r: r, at: time.Now()}
	f.mu.Unlock()
	return r, nil
}

// hasCredentials reports whether the remote authenticates to its upstream.
func (r *Remote) hasCredentials() bool {
	return r.Username != "" || r.Password != "" || r.SSLClientCertificate != ""
}

// fingerprint identifies what the remote connects to and how: two remotes
// with the same fingerprint share a client and downloads; changed
// settings make a new one.
func (r *Remote) fingerprint() string {
	h := sha256.New()
	for _, s := range []string{r.URL, r.Upstream(), r.Username, r.Password, r.SSLCACertificate,
		r.SSLClientCertificate, r.SSLClientKey, fmt.Sprint(r.InsecureSkipVerify), r.ProxyURL, fmt.Sprint(r.DownloadConcurrency)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// client returns the upstream client of r, shared by requests through
// remotes of the same settings, so that tokens are reused.
func (f *Fetcher) client(r *Remote) (*upstream, error) {
	key := r.fingerprint()
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.clients[key]; ok {
		return u, nil
	}
	rc := *r
	rc.defaults()
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	u, err := newUpstream(&rc, f.opts.Retry)
	if err != nil {
		return nil, err
	}
	if len(f.clients) >= 1000 {
		clear(f.clients)
	}
	f.clients[key] = u
	return u, nil
}

func (f *Fetcher) coolingFor(k flightKey) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cooling[k]
	if !ok {
		return 0
	}
	return time.Until(c.until)
}

// coolDown leaves source k alone for a while after it served wrong bytes.
func (f *Fetcher) coolDown(k flightKey) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cooling[k]
	wait := f.opts.Cooldown << min(c.failures, 20)
	if wait <= 0 || wait > f.opts.MaxCooldown {
		wait = f.opts.MaxCooldown
	}
	c.failures++
	c.until = time.Now().Add(wait)
	if len(f.cooling) >= 10000 {
		for key, old := range f.cooling {
			if time.Now().After(old.until) {
				delete(f.cooling, key)
			}
		}
	}
	f.cooling[k] = c
	return wait
}

func (f *Fetcher) warmedUp(k flightKey) {
	f.mu.Lock()
	delete(f.cooling, k)
	f.mu.Unlock()
}

// Manifest fetches the manifest or manifest list reference (a tag or a
// digest) names in r's upstream repository, verified against the digest
// asked for or the one the upstream states. The remote need not be
// stored. Failures are classified as by errdef: a reference the upstream
// does not have is errdef.ErrManifestUnknown; a 429 errdef.ErrTooManyRequests
// (with an *errdef.RetryAfter when the upstream said how long); no answer
// in time errdef.ErrTimeout; anything else errdef.ErrUnavailable.
func (f *Fetcher) Manifest(ctx context.Context, r *Remote, reference string) (content.Document, error) {
	u, err := f.client(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	ctx, note := noteRetryAfter(ctx)
	doc, err := u.manifest(ctx, reference)
	if err != nil {
		return nil, classify(ctx, note.wrap(err), errdef.ErrManifestUnknown, r, reference)
	}
	return doc, nil
}

// Resolve asks r's upstream, with one HEAD request (retried as Retry
// says), which digest tag names now. Errors are as Manifest's.
func (f *Fetcher) Resolve(ctx context.Context, r *Remote, tag string) (digest.Digest, error) {
	u, err := f.client(r)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	ctx, note := noteRetryAfter(ctx)
	d, err := u.head(ctx, tag)
	if err != nil {
		return "", classify(ctx, note.wrap(err), errdef.ErrManifestUnknown, r, tag)
	}
	return d, nil
}

// classify turns an upstream failure into errdef's vocabulary; notFound is
// the kind of a 404.
func classify(ctx context.Context, err error, notFound error, r *Remote, ref string) error {
	what := fmt.Sprintf("%s of %s", ref, r.UpstreamURL())
	var er *errcode.ErrorResponse
	var st *statusErr
	status := 0
	var retryAfter time.Duration
	switch {
	case errors.As(err, &st):
		status, retryAfter = st.status, st.retryAfter
	case errors.As(err, &er):
		status = er.StatusCode
	}
	var ra *errdef.RetryAfter
	if errors.As(err, &ra) {
		retryAfter = ra.After
	}
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() == context.Canceled:
		return err
	case status == http.StatusNotFound || errors.Is(err, orasdef.ErrNotFound):
		return errdef.New(notFound, "%s: the upstream does not have it", what)
	case status == http.StatusTooManyRequests || errors.Is(err, errdef.ErrTooManyRequests):
		e := errdef.New(errdef.ErrTooManyRequests, "%s: the upstream asks for fewer requests (429)", what)
		if retryAfter > 0 {
			return &errdef.RetryAfter{After: retryAfter, Err: e}
		}
		return e
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return errdef.New(errdef.ErrTimeout, "%s: the upstream did not answer in time", what)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return errdef.New(errdef.ErrUnavailable, "%s: the upstream refused the remote's credentials (%d)", what, status)
	}
	return errdef.New(errdef.ErrUnavailable, "%s: %v", what, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfterTransport notes the Retry-After of a 429 that the retry
// transport below gave up on (oras-go's errors do not keep headers), for
// whoever made the request with noteRetryAfter's context.
type retryAfterTransport struct{ base http.RoundTripper }

type retryAfterKey struct{}

// retryAfterNoted is a Retry-After noted for a request.
type retryAfterNoted struct {
	mu sync.Mutex
	d  time.Duration
}

func (t retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		if n, ok := req.Context().Value(retryAfterKey{}).(*retryAfterNoted); ok {
			if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				n.mu.Lock()
				n.d = d
				n.mu.Unlock()
			}
		}
	}
	return resp, err
}

// noteRetryAfter returns a context whose requests note a 429's
// Retry-After.
func noteRetryAfter(ctx context.Context) (context.Context, *retryAfterNoted) {
	n := new(retryAfterNoted)
	return context.WithValue(ctx, retryAfterKey{}, n), n
}

// wrap adds the noted Retry-After, if any, to err.
func (n *retryAfterNoted) wrap(err error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.d <= 0 {
		return err
	}
	return &errdef.RetryAfter{After: n.d, Err: err}
}

// UpstreamURL names the remote's upstream repository for messages:
// <url>/<upstream name>.
func (r *Remote) UpstreamURL() string {
	return strings.TrimSuffix(r.URL, "/") + "/" + r.Upstream()
}

// statusErr is an upstream's unexpected answer to a blob request.
type statusErr struct {
	status     int
	retryAfter time.Duration
	msg        string
}

func (e *statusErr) Error() string { return e.msg }

// openBlob asks the upstream for blob d from byte offset on; it returns
// the response, 200 or (offset > 0) 206, or a *statusErr.
func (u *upstream) openBlob(ctx context.Context, d digest.Digest, offset int64) (*http.Response, error) {
	req, err := u.blobRequest(ctx, d)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK || offset > 0 && resp.StatusCode == http.StatusPartialContent {
		return resp, nil
	}
	defer resp.Body.Close()
	se := &statusErr{status: resp.StatusCode, msg: statusError(resp).Error()}
	if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
		se.retryAfter = ra
	}
	return nil, se
}

// tempFile creates an unlinked temporary file: it vanishes with the
// process, whatever happens.
func tempFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "mooring-fetch-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// RemoteBlob is a blob being read from its upstream (see
// Fetcher.FetchBlob): an io.ReadSeekCloser of known size whose bytes
// arrive from the download it shares with every client of the blob.
type RemoteBlob struct {
	// ctx is the request's: Read has no context of its own, and a client
	// that leaves must stop waiting for bytes.
	ctx  context.Context
	f    *Fetcher
	r    *Remote
	desc content.Blob

	pos    int64
	fl     *flight
	err    error
	closed bool
}

var _ io.ReadSeekCloser = (*RemoteBlob)(nil)

// Remote returns the remote the blob is fetched through.
func (b *RemoteBlob) Remote() *Remote { return b.r }

// Start starts the download, or joins the one in flight, and waits until
// the upstream answers, so that a failure (the upstream does not have the
// blob, refuses, is rate limiting or down) can still be answered with an
// error status. It is called once; Read calls it if nobody has.
func (b *RemoteBlob) Start(ctx context.Context) error {
	if b.fl != nil || b.err != nil {
		return b.err
	}
	if b.closed {
		return errors.New("remote blob: start after close")
	}
	fl, err := b.f.join(b.r, b.desc)
	if err != nil {
		b.err = err
		return err
	}
	b.fl = fl
	if err := fl.waitStarted(ctx); err != nil {
		b.err = err
		return err
	}
	return nil
}

// Read reads the bytes at the current offset as soon as they have arrived
// (the last byte once the whole blob is verified). A failed download, or
// one whose bytes do not match the blob, fails every Read after it.
func (b *RemoteBlob) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.closed {
		return 0, errors.New("remote blob: read after close")
	}
	if b.fl == nil {
		if err := b.Start(b.ctx); err != nil {
			return 0, err
		}
	}
	if b.pos >= b.desc.Size {
		return 0, io.EOF
	}
	n, err := b.fl.readAt(b.ctx, p, b.pos)
	b.pos += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Seek sets the offset of the next Read; it fetches nothing.
func (b *RemoteBlob) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.desc.Size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	b.pos = offset
	return offset, nil
}

// Err returns why a Read failed, nil if none did: a caller that has sent
// a status line must then break the connection rather than end the
// response as if it were whole.
func (b *RemoteBlob) Err() error { return b.err }

// Close leaves the download; the last client to leave one that has not
// finished stops it.
func (b *RemoteBlob) Close() error {
	if b.fl != nil {
		b.fl.leave()
		b.fl = nil
	}
	b.closed = true
	return nil
}
