package remote

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// Syncer syncs remotes into repositories. Its fields are set once; it is
// safe for concurrent use, though two syncs into one repository should be
// serialised by the caller (task resources do that).
type Syncer struct {
	// Repos stores content units and creates the new version.
	Repos *repository.Store
	// Blobs receives config and layer blobs.
	Blobs storage.Driver
	// Logger receives one line per sync and per download at debug level;
	// nil discards.
	Logger *slog.Logger
	// Retry says how failed requests and downloads are retried; the zero
	// value is DefaultRetryPolicy.
	Retry RetryPolicy
	// OnSync, when set, is called at the end of every sync with its result
	// (nil when it failed), its error (a *SyncError) and how long it took:
	// the hook metrics are kept by. It must not block.
	OnSync func(res *SyncResult, err error, elapsed time.Duration)
}

// SyncOptions tune one sync.
type SyncOptions struct {
	// Mirror makes the new version hold exactly the upstream's filtered
	// tags and what they reference: content no longer there is removed.
	// When false (the default) the sync is additive, as Pulp's is: content
	// is added and tags moved, nothing removed.
	Mirror bool
	// SignedOnly skips images without a signature: a tag, or a digest of
	// the include patterns, is synced only when the manifest or list it
	// names is signed (see SignatureArtifactTypes). The companion tags and referrers of
	// the images synced come as the remote's SkipReferrers says.
	SignedOnly bool
	// Progress receives one report per stage, with the codes CodeTagList,
	// CodeTags, CodeArtifacts and CodeAssociating; nil records none. A
	// task handler passes its task's Progress; a caller outside a task
	// runner passes a new &task.Progress{} for each sync (a report's code
	// is its identity, so a Progress reused would carry counts over) and
	// reads its Reports. When a sync fails, the reports still running end
	// failed, or canceled when ctx was.
	Progress *task.Progress
	// RetryPatience is the longest the sync waits, at a time, for its
	// upstream's rate limit: a 429's Retry-After, or the renewal of a
	// request quota its RateLimit headers say is used up. A longer wait
	// stops the sync with a *RateLimitError saying how far it got and
	// when to sync again. Zero means the Syncer's Retry.MaxRetryAfter
	// (default 2 minutes).
	RetryPatience time.Duration
}

// Progress report codes, in the order a sync starts them.
const (
	CodeTagList     = "downloading.tag_list"
	CodeTags        = "processing.tag"
	CodeArtifacts   = "downloading.artifacts"
	CodeAssociating = "associating.content"
)

// SyncResult summarises a sync.
type SyncResult struct {
	// Version is the new repository version, nil when nothing changed.
	Version *repository.Version
	// Tags, Manifests, ManifestLists and Blobs count what the upstream's
	// filtered tags hold (foreign layers among the blobs).
	Tags, Manifests, ManifestLists, Blobs int
	// ManifestRequests counts manifest GETs; tags found unchanged by a HEAD
	// request need none.
	ManifestRequests int
	// BlobsDownloaded and BytesDownloaded count blobs that were not stored
	// yet and were downloaded.
	BlobsDownloaded int
	BytesDownloaded int64
	// Referrers counts the manifests and lists synced because they refer
	// to a synced one (cosign companion tags, OCI referrers; see Sync),
	// among Manifests and ManifestLists.
	Referrers int
	// Unsigned counts the tags and included digests SignedOnly skipped.
	Unsigned int
}

// SyncError reports which step of a sync failed and on what. It wraps the
// cause, so errors.Is(err, context.Canceled) and the like work.
type SyncError struct {
	// Op is the step: "check remote" or "read repository" before anything
	// is fetched; "list tags", "resolve tag", "read stored manifest",
	// "fetch manifest", "list referrers" or "download blob" while
	// planning and fetching;
	// "store content" or "create version" while committing.
	Op string
	// Ref is the remote's name, or the repository, tag or digest concerned.
	Ref string
	// Err is the cause, such as the upstream's error response, or a
	// *RateLimitError when the upstream's rate limit stopped the sync.
	Err error
}

// Error returns "sync: <op> <ref>: <cause>".
func (e *SyncError) Error() string {
	if e.Ref == "" {
		return "sync: " + e.Op + ": " + e.Err.Error()
	}
	return "sync: " + e.Op + " " + e.Ref + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *SyncError) Unwrap() error { return e.Err }

// Sync mirrors the upstream repository of r into repository repoID, in
// three stages:
//
//  1. plan: list the upstream's tags (following Link pagination) and
//     filter them with the remote's include and exclude patterns. A tag
//     the repository already has is checked with a HEAD request, and when
//     the digest it names is already stored it needs no GET;
//  2. fetch: GET the other tags' manifests and manifest lists, and each
//     list's children not stored yet, storing their exact bytes as they
//     arrive; then, unless committing would change nothing (see
//     unchanged.go: then nothing at all is written), download config and
//     layer blobs not yet in Blobs, streaming each into storage, which
//     verifies digest and size. Foreign layers are recorded, not
//     downloaded. At most r.DownloadConcurrency requests run at a time;
//  3. commit: store the other content units, a batch per statement, then
//     create the new version in one transaction, only if it differs from
//     the latest.
//
// Signatures, attestations and SBOMs travel with their images: unless
// r.SkipReferrers is set, the fetch stage also brings, whatever the tag
// filters say, the cosign companion tags (<alg>-<hex>.sig, .att, .sbom)
// of every manifest and list it syncs, and their OCI referrers (manifests
// whose subject they are), listed through the upstream's referrers API or
// its referrers tag schema; what those bring comes too. Companion tags of
// documents not synced are left out. With opts.SignedOnly, tags and
// included digests whose document has no signature are skipped (see
// SignatureArtifactTypes).
//
// A zero r.DownloadConcurrency means DefaultDownloadConcurrency. Requests
// and downloads are retried as s.Retry says. On failure no version is
// created, but verified blobs and fetched manifests stay stored, so the
// next sync downloads only what is missing.
//
// Every error Sync returns is a *SyncError whose Op names the step and
// whose Ref names the remote, repository, tag or digest concerned. Its
// cause tells why: an invalid r is Op "check remote" wrapping a
// *errdef.FieldError (errdef.ErrInvalid), as Store.Create would return; a
// missing repository is Op "read repository" wrapping errdef.ErrNotFound;
// a canceled ctx wraps context.Canceled.
func (s *Syncer) Sync(ctx context.Context, r *Remote, repoID string, opts SyncOptions) (*SyncResult, error) {
	start := time.Now()
	res, err := s.sync(ctx, r, repoID, opts, start)
	if s.OnSync != nil {
		s.OnSync(res, err, time.Since(start))
	}
	return res, err
}

func (s *Syncer) sync(ctx context.Context, r *Remote, repoID string, opts SyncOptions, start time.Time) (*SyncResult, error) {
	if opts.Progress == nil {
		opts.Progress = new(task.Progress) // a RateLimitError tells how far the sync got
	}
	run, err := s.withPatience(opts.RetryPatience).newRun(ctx, r, repoID, opts.Progress)
	if err != nil {
		return nil, err
	}
	run.signedOnly = opts.SignedOnly
	res, err := run.sync(ctx, opts.Mirror)
	if err != nil {
		err = run.rateLimited(err)
		run.reports.fail(ctx)
		run.log.Warn("sync failed", "remote", run.r, "repository", repoID, "err", err)
		return nil, err
	}
	run.log.Info("sync finished", "remote", run.r, "repository", repoID, "version", versionNumber(res.Version),
		"tags", res.Tags, "manifest_requests", res.ManifestRequests, "blobs_downloaded", res.BlobsDownloaded,
		"referrers", res.Referrers, "unsigned", res.Unsigned, "duration", time.Since(start))
	return res, nil
}

// sync runs the stages.
func (run *syncRun) sync(ctx context.Context, mirror bool) (*SyncResult, error) {
	run.mirror = mirror
	p, err := run.plan(ctx)
	if err != nil {
		return nil, err
	}
	f, err := run.fetch(ctx, p)
	if err != nil {
		return nil, err
	}
	v, err := run.commit(ctx, f, mirror)
	if err != nil {
		return nil, err
	}
	return &SyncResult{
		Version: v,
		Tags:    len(f.tagged), Manifests: len(f.manifests), ManifestLists: len(f.lists), Blobs: len(f.blobs),
		ManifestRequests: f.manifestGETs,
		BlobsDownloaded:  f.blobsDownloaded, BytesDownloaded: f.bytesDownloaded,
		Referrers: f.referrers, Unsigned: f.unsigned,
	}, nil
}

func versionNumber(v *repository.Version) any {
	if v == nil {
		return "unchanged"
	}
	return v.Number
}

// syncRun is what the stages of one sync share: the remote, its upstream
// client, the repository's latest version as the sync began, and the
// progress reports.
type syncRun struct {
	s       *Syncer
	r       *Remote
	up      *upstream
	repoID  string
	latest  repository.VersionRef
	log     *slog.Logger
	reports *reports
	// signedOnly is SyncOptions.SignedOnly.
	signedOnly bool
	// upstreamTags are all the upstream's tags, unfiltered: companion and
	// referrers tags are found among them (referrers.go).
	upstreamTags []string
	mirror       bool // SyncOptions.Mirror
	// have are the tags of the latest version as the sync began, by
	// name; the plan stage reads them.
	have map[string]repository.VersionTag
}

// newRun checks r and the repository and connects to the upstream.
func (s *Syncer) newRun(ctx context.Context, r *Remote, repoID string, p *task.Progress) (*syncRun, error) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.DownloadConcurrency == 0 || r.Policy == "" {
		rc := *r
		rc.defaults()
		r = &rc
	}
	if err := r.Validate(); err != nil {
		return nil, &SyncError{Op: "check remote", Ref: r.Name, Err: err}
	}
	if r.Policy != PolicyImmediate && r.ID == "" {
		// On-demand content names the remote it is fetched through.
		return nil, &SyncError{Op: "check remote", Ref: r.Name,
			Err: errdef.Field("policy", "%s needs a stored remote (Store.Create): pulls fetch through it", r.Policy)}
	}
	repo, err := s.Repos.Repository(ctx, repoID)
	if err != nil {
		return nil, &SyncError{Op: "read repository", Ref: repoID, Err: err}
	}
	up, err := newUpstream(r, s.Retry.norm())
	if err != nil {
		return nil, &SyncError{Op: "check remote", Ref: r.Name, Err: err}
	}
	return &syncRun{s: s, r: r, up: up, repoID: repoID, log: log,
		latest:  repository.VersionRef{RepositoryID: repoID, Number: repo.LatestVersion},
		reports: &reports{p: p}}, nil
}

// docEntry is a manifest or manifest list a sync reaches.
type docEntry struct {
	// doc is what the sync keeps of the document: no bytes nor
	// annotations (see slim).
	doc content.Document
	// unit is the stored document, set as soon as it is stored; Raw is
	// not kept.
	unit *repository.Content
}

// digest is the document's own digest, which its tags name.
func (e *docEntry) digest() digest.Digest { return e.doc.Descriptor().Digest }

// taggedDoc is one upstream tag and the digest of the document it names.
type taggedDoc struct {
	name   string
	digest digest.Digest
}

// reports are the progress reports one sync started; a failed sync ends
// those still running.
type reports struct {
	p       *task.Progress
	mu      sync.Mutex
	started []*task.Report
}

// start starts a report; with no Progress it returns nil, on which
// task.Report's methods do nothing.
func (rs *reports) start(code, message string, total int64) *task.Report {
	r := rs.p.Report(code, message, total)
	rs.mu.Lock()
	rs.started = append(rs.started, r)
	rs.mu.Unlock()
	return r
}

// fail ends the reports still running: canceled when ctx is, else failed.
func (rs *reports) fail(ctx context.Context) {
	state := task.StateFailed
	if ctx.Err() != nil {
		state = task.StateCanceled
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.started {
		r.End(state)
	}
}

func isSchema1(doc content.Document) bool {
	m, ok := doc.(*content.Manifest)
	return ok && m.SchemaVersion == 1
}
