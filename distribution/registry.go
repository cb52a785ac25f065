package distribution

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
)

// BlobStore is what a Registry needs of blob storage.
type BlobStore interface {
	storage.Opener
}

// Options configure a Registry. Zero fields take the documented defaults.
type Options struct {
	// TTL is how long a base path's resolution to a repository version is
	// trusted: a distribution that follows a repository serves a new
	// version at most this long after it is created (at once when the
	// distribution itself was changed through the Registry's Store).
	// Default 1s.
	TTL time.Duration
	// CacheEntries bounds each cache of resolved manifests, tags and blobs.
	// Default 10000.
	CacheEntries int
	// CacheBytes bounds the manifest bytes held in memory. Default 64 MiB.
	CacheBytes int64
	// Staged, when set, is asked about a blob the served version does not
	// hold; when it answers true the blob is served from storage. A
	// registry that takes pushes uses it for blobs uploaded to a repository
	// but not yet in a version (distribution spec: a blob can be pulled once
	// its upload completes, before a manifest refers to it).
	Staged func(ctx context.Context, repositoryID string, d digest.Digest) (bool, error)
	// Fetcher, when set, fetches the bytes of blobs a version records
	// without them (on-demand content): a pull streams them from the
	// upstream. Without it such blobs are BLOB_UNKNOWN.
	Fetcher BlobFetcher
	// PullThrough, when set, serves the names under pull-through
	// distributions' base paths; without it they are NAME_UNKNOWN until
	// something else created them.
	PullThrough PullThrough
	// Pushed, when set, reports whether a repository takes registry
	// pushes. A manifest a list in the served version names, but which the
	// version does not hold, is MANIFEST_UNKNOWN saying that the remote's
	// platform filter left it out, unless the repository takes pushes
	// (there it was deleted).
	Pushed func(ctx context.Context, repositoryID string) (bool, error)
}

// BlobFetcher fetches on-demand blobs (see repository's lazy.go): the
// remote package's Fetcher, plugged in by the front door.
type BlobFetcher interface {
	// FetchBlob returns a reader of blob b, recorded in repository
	// repositoryID without its bytes, that fetches them from an upstream
	// as they are read. Its Seek must cost nothing; the reader may have a
	// Start(ctx) error method, called before a response is begun so that a
	// failing upstream can still be answered with an error status, and an
	// Err() error method telling why a Read failed. No upstream can
	// fetch b for the repository: errdef.ErrBlobUnknown.
	FetchBlob(ctx context.Context, repositoryID string, b content.Blob) (io.ReadSeekCloser, error)
}

// BlobFetcherFunc is a function that is a BlobFetcher.
type BlobFetcherFunc func(ctx context.Context, repositoryID string, b content.Blob) (io.ReadSeekCloser, error)

// FetchBlob calls f.
func (f BlobFetcherFunc) FetchBlob(ctx context.Context, repositoryID string, b content.Blob) (io.ReadSeekCloser, error) {
	return f(ctx, repositoryID, b)
}

// PullThrough keeps what pull-through distributions serve in step with
// their upstreams; the mooring front door provides it. A Registry asks it
// for every manifest by tag at a view of a pull-through cache, and for a
// manifest by digest that the view's version does not hold.
type PullThrough interface {
	// Manifest returns what reference (a tag or a digest) names at v, as
	// a stored unit with Raw: local, the unit v's version holds (nil when
	// none), while it is fresh; else the upstream's, recorded in a new
	// version of v's repository (which the first pull of v.BasePath
	// creates, with its remote and distribution).
	Manifest(ctx context.Context, v *View, reference string, local *repository.Content) (*repository.Content, error)
}

// Registry answers the pull side of the OCI distribution spec for every
// distribution: which version a base path serves, and the manifests, tags
// and blobs in it.
//
// Versions are immutable, so what a version holds is cached without expiry
// (bounded in size); only the base path -> version step expires.
type Registry struct {
	dists *Store
	repos *repository.Store
	blobs BlobStore
	opts  Options

	mu    sync.RWMutex
	gen   int64
	paths map[string]pathEntry

	manifests *cache[manifestKey, *Manifest]
	tags      *cache[View, []string]
	blobOK    *cache[manifestKey, bool]

	// pulls are the last-pull times of blobs since the last FlushPulls.
	pullsMu sync.Mutex
	pulls   map[digest.Digest]time.Time
}

// View is one repository version as served at a base path.
type View struct {
	BasePath     string
	RepositoryID string
	Number       int
	// PullThrough is set when BasePath is under a pull-through
	// distribution. RepositoryID is then empty until the first pull of
	// BasePath creates the repository.
	PullThrough PullThroughRef
}

// PullThroughRef is what a view of a pull-through cache says of it.
type PullThroughRef struct {
	// ID is the pull-through distribution's; empty for a view of
	// anything else.
	ID string
	// RemoteID is the pull-through remote's.
	RemoteID string
	// Upstream is the upstream repository BasePath names.
	Upstream string
	// TagTTL is the pull-through distribution's.
	TagTTL time.Duration
}

type pathEntry struct {
	view    *View // nil: no distribution serves the path
	expires time.Time
}

type manifestKey struct {
	repo   string
	number int
	ref    string
}

// Manifest is a manifest or manifest list as served: the exact bytes
// stored, their digest and media type.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Raw       []byte
	Type      content.Type
	id        int64
}

// NewRegistry returns a Registry serving the distributions of dists, the
// content of repos and the bytes of blobs.
func NewRegistry(dists *Store, repos *repository.Store, blobs BlobStore, opts Options) *Registry {
	if opts.TTL <= 0 {
		opts.TTL = time.Second
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 10000
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 64 << 20
	}
	return &Registry{
		dists:     dists,
		repos:     repos,
		blobs:     blobs,
		opts:      opts,
		paths:     map[string]pathEntry{},
		manifests: newCache[manifestKey](opts.CacheEntries, opts.CacheBytes, func(m *Manifest) int64 { return int64(len(m.Raw)) + 256 }),
		tags: newCache[View](max(opts.CacheEntries/100, 16), opts.CacheBytes, func(tags []string) int64 {
			n := int64(0)
			for _, t := range tags {
				n += int64(len(t)) + 16
			}
			return n
		}),
		blobOK: newCache[manifestKey, bool](opts.CacheEntries, 0, nil),
	}
}

// Resolve returns the version served at basePath, or errdef.ErrNameUnknown.
func (r *Registry) Resolve(ctx context.Context, basePath string) (*View, error) {
	now := time.Now()
	gen := r.dists.gen.Load()
	r.mu.RLock()
	e, ok := r.paths[basePath]
	// A name not served is not remembered: a push from another process
	// may create it at any moment.
	fresh := ok && e.view != nil && r.gen == gen && now.Before(e.expires)
	r.mu.RUnlock()
	if fresh {
		return e.view, nil
	}
	view, err := r.resolve(ctx, basePath)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.gen != gen {
		clear(r.paths)
		r.gen = gen
	}
	if len(r.paths) >= r.opts.CacheEntries {
		clear(r.paths)
	}
	r.paths[basePath] = pathEntry{view: view, expires: now.Add(r.opts.TTL)}
	r.mu.Unlock()
	return view, nil
}

// fresher returns the view v.BasePath resolves to now, without the cache,
// when it is not v: another process may have made a version since v was
// cached. A miss is checked against it before it is reported, so that what
// was pushed through one process is found through any other at once.
func (r *Registry) fresher(ctx context.Context, v *View) *View {
	if v.BasePath == "" {
		return nil
	}
	nv, err := r.resolve(ctx, v.BasePath)
	if err != nil || *nv == *v {
		return nil
	}
	r.mu.Lock()
	r.paths[v.BasePath] = pathEntry{view: nv, expires: time.Now().Add(r.opts.TTL)}
	r.mu.Unlock()
	return nv
}

func (r *Registry) resolve(ctx context.Context, basePath string) (*View, error) {
	d, err := r.dists.ByBasePath(ctx, basePath)
	if errors.Is(err, errdef.ErrNameUnknown) && r.opts.PullThrough != nil {
		p, upstream, perr := r.dists.PullThroughFor(ctx, basePath)
		if perr != nil {
			return nil, perr
		}
		return &View{BasePath: basePath, PullThrough: PullThroughRef{ID: p.ID, RemoteID: p.RemoteID, Upstream: upstream, TagTTL: p.TagTTL()}}, nil
	}
	if err != nil {
		return nil, err
	}
	var pt PullThroughRef
	if d.PullThroughID != nil {
		p, err := r.dists.GetPullThrough(ctx, *d.PullThroughID)
		if err != nil {
			return nil, err
		}
		pt = PullThroughRef{ID: p.ID, RemoteID: p.RemoteID, Upstream: strings.TrimPrefix(basePath, p.BasePath+"/"), TagTTL: p.TagTTL()}
	}
	if d.RepositoryVersionID != nil {
		v, err := r.repos.VersionByID(ctx, *d.RepositoryVersionID)
		if err != nil {
			return nil, notServed(err, basePath)
		}
		return &View{BasePath: basePath, RepositoryID: v.RepositoryID, Number: v.Number, PullThrough: pt}, nil
	}
	repo, err := r.repos.Repository(ctx, *d.RepositoryID)
	if err != nil {
		return nil, notServed(err, basePath)
	}
	return &View{BasePath: basePath, RepositoryID: repo.ID, Number: repo.LatestVersion, PullThrough: pt}, nil
}

func notServed(err error, basePath string) error {
	if errors.Is(err, errdef.ErrNotFound) {
		return errdef.New(errdef.ErrNameUnknown, "%s", basePath)
	}
	return err
}

func (v *View) ref() *repository.VersionRef {
	return &repository.VersionRef{RepositoryID: v.RepositoryID, Number: v.Number}
}

// Manifest returns the manifest or manifest list that reference (a tag or
// a digest) names in version v, or errdef.ErrManifestUnknown.
func (r *Registry) Manifest(ctx context.Context, v *View, reference string) (*Manifest, error) {
	if v.PullThrough.ID != "" && r.opts.PullThrough != nil {
		return r.pullThroughManifest(ctx, v, reference)
	}
	m, err := r.manifest(ctx, v, reference)
	if errors.Is(err, errdef.ErrManifestUnknown) {
		if nv := r.fresher(ctx, v); nv != nil {
			return r.manifest(ctx, nv, reference)
		}
	}
	return m, err
}

func (r *Registry) manifest(ctx context.Context, v *View, reference string) (*Manifest, error) {
	key := manifestKey{v.RepositoryID, v.Number, reference}
	if m, ok := r.manifests.get(key); ok {
		return m, nil
	}
	m, err := r.lookupManifest(ctx, v, reference)
	if err != nil {
		return nil, err
	}
	r.manifests.put(key, m)
	return m, nil
}

func (r *Registry) lookupManifest(ctx context.Context, v *View, reference string) (*Manifest, error) {
	unknown := errdef.New(errdef.ErrManifestUnknown, "%s:%s", v.BasePath, reference)
	targetID, err := r.target(ctx, v, reference)
	if err != nil {
		return nil, err
	}
	if targetID == 0 {
		return nil, r.filtered(ctx, v, reference, unknown)
	}
	c, err := r.repos.ContentByID(ctx, targetID)
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) {
			return nil, unknown
		}
		return nil, err
	}
	return &Manifest{Digest: c.Digest, MediaType: c.MediaType, Raw: c.Raw, Type: c.Type, id: c.ID}, nil
}

// target returns the id of the manifest or manifest list that reference
// (a tag or a digest) names in version v, or 0 when it names none.
func (r *Registry) target(ctx context.Context, v *View, reference string) (int64, error) {
	if d, err := digest.Parse(reference); err == nil {
		units, err := r.repos.InVersion(ctx, *v.ref(), d, content.TypeManifest, content.TypeManifestList)
		if err != nil || len(units) == 0 {
			return 0, err
		}
		return units[len(units)-1].ID, nil
	}
	if content.ValidateTagName(reference) != nil {
		return 0, nil
	}
	tag, err := r.repos.Tag(ctx, *v.ref(), reference)
	if errors.Is(err, errdef.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return tag.TaggedID, nil
}

// PlatformManifest returns the child of manifest list m for platform
// os/arch that accept allows, when it is in version v; it is what a client
// that does not understand lists gets for a tag naming one.
func (r *Registry) PlatformManifest(ctx context.Context, v *View, m *Manifest, os, arch string, accept func(string) bool) (*Manifest, error) {
	if m.Type != content.TypeManifestList {
		return nil, errdef.New(errdef.ErrManifestUnknown, "%s is not a manifest list", m.Digest)
	}
	refs, err := r.repos.Refs(ctx, m.id)
	if err != nil {
		return nil, err
	}
	var missing error
	for _, ref := range refs {
		if ref.Platform == nil || ref.Platform.OS != os || ref.Platform.Architecture != arch || !accept(ref.MediaType) {
			continue
		}
		child, err := r.Manifest(ctx, v, ref.ChildDigest.String())
		if err == nil {
			return child, nil
		}
		if !errors.Is(err, errdef.ErrManifestUnknown) {
			return nil, err
		}
		missing = err // such as one a platform filter left out
	}
	if missing != nil {
		return nil, missing
	}
	return nil, errdef.New(errdef.ErrManifestUnknown, "no %s/%s manifest of an acceptable media type in list %s", os, arch, m.Digest)
}

// Tags returns the tag names of version v in lexical order.
func (r *Registry) Tags(ctx context.Context, v *View) ([]string, error) {
	if v.RepositoryID == "" {
		return nil, errdef.New(errdef.ErrNameUnknown, "%s: nothing pulled through it yet", v.BasePath)
	}
	key := View{RepositoryID: v.RepositoryID, Number: v.Number}
	if t, ok := r.tags.get(key); ok {
		return t, nil
	}
	names, err := r.repos.TagNames(ctx, *v.ref())
	if err != nil {
		return nil, err
	}
	r.tags.put(key, names)
	return names, nil
}

// Blob is an open blob: read it, seek it, close it.
type Blob struct {
	io.ReadSeekCloser
	Digest    digest.Digest
	Size      int64
	MediaType string
	// OnDemand is set when the bytes come from an upstream as they are
	// read (Options.Fetcher), not from blob storage: no redirect to
	// storage can serve them.
	OnDemand bool
}

// Start begins fetching an on-demand blob, or joins the fetch in flight,
// and waits for the upstream's answer, so that a failure is known before a
// response is begun. It does nothing for a blob from storage.
func (b *Blob) Start(ctx context.Context) error {
	if s, ok := b.ReadSeekCloser.(interface{ Start(context.Context) error }); ok {
		return s.Start(ctx)
	}
	return nil
}

// Err returns why a Read of an on-demand blob failed (its upstream broke
// off, or sent bytes not matching the blob), nil if none did. A response
// whose status line is sent must then be broken off, not ended.
func (b *Blob) Err() error {
	if e, ok := b.ReadSeekCloser.(interface{ Err() error }); ok {
		return e.Err()
	}
	return nil
}

// OpenBlob opens blob d of version v, or fails with errdef.ErrBlobUnknown when the
// version does not hold it. A manifest of the version is served as a blob
// too, as registries do, from its stored bytes.
func (r *Registry) OpenBlob(ctx context.Context, v *View, d digest.Digest) (*Blob, error) {
	b, err := r.openBlob(ctx, v, d)
	if errors.Is(err, errdef.ErrBlobUnknown) && storage.ValidateDigest(d) == nil {
		if nv := r.fresher(ctx, v); nv != nil {
			return r.openBlob(ctx, nv, d)
		}
	}
	return b, err
}

func (r *Registry) openBlob(ctx context.Context, v *View, d digest.Digest) (*Blob, error) {
	if err := storage.ValidateDigest(d); err != nil {
		return nil, errdef.New(errdef.ErrBlobUnknown, "%s", d)
	}
	if v.RepositoryID == "" {
		return nil, errdef.New(errdef.ErrBlobUnknown, "%s: nothing pulled through %s yet", d, v.BasePath)
	}
	key := manifestKey{v.RepositoryID, v.Number, d.String()}
	if _, ok := r.blobOK.get(key); !ok {
		isBlob, err := r.repos.VersionHas(ctx, *v.ref(), content.TypeBlob, d)
		if err != nil {
			return nil, err
		}
		staged := false
		if !isBlob && r.opts.Staged != nil {
			if staged, err = r.opts.Staged(ctx, v.RepositoryID, d); err != nil {
				return nil, err
			}
		}
		if !isBlob && !staged {
			if m, err := r.Manifest(ctx, v, d.String()); err == nil {
				return &Blob{ReadSeekCloser: nopCloser{bytesReader(m.Raw)}, Digest: d, Size: int64(len(m.Raw)), MediaType: m.MediaType}, nil
			}
			return nil, errdef.New(errdef.ErrBlobUnknown, "%s", d)
		}
		if isBlob {
			r.blobOK.put(key, true)
		}
	}
	f, err := r.blobs.Open(ctx, d)
	if errors.Is(err, errdef.ErrNotFound) {
		return r.fetchBlob(ctx, v, d)
	}
	if err != nil {
		return nil, err
	}
	r.recordPull(d)
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Blob{ReadSeekCloser: f, Digest: d, Size: size}, nil
}

// fetchBlob opens blob d of version v, which blob storage does not hold,
// through Options.Fetcher: on-demand content.
func (r *Registry) fetchBlob(ctx context.Context, v *View, d digest.Digest) (*Blob, error) {
	missing := errdef.New(errdef.ErrBlobUnknown, "%s (in the repository version but not in storage)", d)
	if r.opts.Fetcher == nil {
		return nil, missing
	}
	units, err := r.repos.InVersion(ctx, *v.ref(), d, content.TypeBlob)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 || units[0].Foreign {
		return nil, missing // staged by a push, or foreign: never fetched
	}
	u := units[0]
	rc, err := r.opts.Fetcher.FetchBlob(ctx, v.RepositoryID, content.Blob{Digest: d, Size: u.Size, MediaType: u.MediaType})
	if err != nil {
		return nil, err
	}
	r.recordPull(d)
	return &Blob{ReadSeekCloser: rc, Digest: d, Size: u.Size, OnDemand: true}, nil
}

// Forget drops what the Registry remembers of basePath's resolution, so
// that the next request sees a distribution or repository version created
// since, without waiting for the TTL. Other processes see it after their
// TTL.
func (r *Registry) Forget(basePath string) {
	r.mu.Lock()
	delete(r.paths, basePath)
	r.mu.Unlock()
}

// Catalog lists up to n served base paths after last, in lexical order.
func (r *Registry) Catalog(ctx context.Context, n int, last string) ([]string, error) {
	return r.dists.BasePaths(ctx, n, last)
}
