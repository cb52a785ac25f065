package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun/dialect"
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
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
}

// SyncOptions tune one sync.
type SyncOptions struct {
	// Mirror makes the new version hold exactly the upstream's filtered
	// tags and what they reference: content no longer there is removed.
	// When false (the default) the sync is additive, as Pulp's is: content
	// is added and tags moved, nothing removed.
	Mirror bool
	// Progress, when not nil, is called with a report's new state each time
	// it changes. Calls are serialised; the function should be quick.
	Progress func(Report)
}

// Report is the state of one stage of a sync, as Pulp's progress reports.
type Report struct {
	// Code names the stage: CodeTagList, CodeTags, CodeArtifacts or
	// CodeAssociating.
	Code    string `json:"code"`
	Message string `json:"message"`
	// State is StateRunning, StateCompleted or StateFailed.
	State string `json:"state"`
	// Total is how many items the stage has, 0 while unknown; Done how many
	// are finished.
	Total int64 `json:"total"`
	Done  int64 `json:"done"`
}

// Progress report codes, in the order a sync goes through them.
const (
	CodeTagList     = "downloading.tag_list"
	CodeTags        = "processing.tag"
	CodeArtifacts   = "downloading.artifacts"
	CodeAssociating = "associating.content"
)

// Progress report states.
const (
	StateRunning   = "running"
	StateCompleted = "completed"
	StateFailed    = "failed"
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
}

// SyncError reports which step of a sync failed and on what. It wraps the
// cause, so errors.Is(err, context.Canceled) and the like work.
type SyncError struct {
	// Op is the step: "list tags", "fetch manifest", "download blob",
	// "store content" or "create version".
	Op string
	// Ref is the tag, digest or repository concerned.
	Ref string
	// Err is the cause, such as the upstream's error response.
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

// Sync mirrors the upstream repository of r into repository repoID:
//
//  1. list the upstream's tags (following Link pagination) and filter them
//     with the remote's include and exclude patterns;
//  2. fetch each tag's manifest or manifest list, and each list's children,
//     keeping their exact bytes. A tag the repository already has is
//     checked with a HEAD request first, and when its digest is already
//     stored no GET is made;
//  3. download config and layer blobs not yet in Blobs, at most
//     r.DownloadConcurrency at a time, streaming each into storage, which
//     verifies digest and size. Foreign layers are recorded, not downloaded;
//  4. record the content and create the new version in one transaction,
//     only if it differs from the latest.
//
// A zero r.DownloadConcurrency means DefaultDownloadConcurrency; r is
// otherwise validated as Store.Create does. Requests and downloads are
// retried as s.Retry says. On failure no version
// is created, but verified blobs stay stored, so the next sync downloads
// only what is missing. The error is a *SyncError naming the tag or digest.
func (s *Syncer) Sync(ctx context.Context, r *Remote, repoID string, opts SyncOptions) (*SyncResult, error) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	start := time.Now()
	if r.DownloadConcurrency == 0 {
		rc := *r
		rc.DownloadConcurrency = DefaultDownloadConcurrency
		r = &rc
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	repo, err := s.Repos.Repository(ctx, repoID)
	if err != nil {
		return nil, err
	}
	up, err := newUpstream(r, s.Retry.norm())
	if err != nil {
		return nil, err
	}
	run := &syncRun{
		s: s, r: r, up: up, repoID: repoID, log: log,
		progress: &progress{fn: opts.Progress},
		docs:     map[digest.Digest]*docEntry{},
		res:      &SyncResult{},
	}
	res, err := run.sync(ctx, repo, opts.Mirror)
	if err != nil {
		run.progress.failRunning()
		log.Warn("sync failed", "remote", r, "repository", repoID, "error", err)
		return nil, err
	}
	log.Info("sync finished", "remote", r, "repository", repoID, "version", versionNumber(res.Version),
		"tags", res.Tags, "manifest_requests", res.ManifestRequests, "blobs_downloaded", res.BlobsDownloaded,
		"duration", time.Since(start))
	return res, nil
}

func versionNumber(v *repository.Version) any {
	if v == nil {
		return "unchanged"
	}
	return v.Number
}

// syncRun is the state of one sync.
type syncRun struct {
	s        *Syncer
	r        *Remote
	up       *upstream
	repoID   string
	log      *slog.Logger
	progress *progress
	res      *SyncResult

	mu   sync.Mutex
	docs map[digest.Digest]*docEntry

	manifestGETs atomic.Int64
}

// docEntry is a manifest or list, fetched or read back once however many
// tags and lists name it.
type docEntry struct {
	done chan struct{}
	doc  content.Document
	// unit is set when the document was already stored.
	unit *repository.Content
	err  error
}

// taggedDoc is one upstream tag and what it names.
type taggedDoc struct {
	name   string
	digest digest.Digest
}

func (run *syncRun) sync(ctx context.Context, repo *repository.Repository, mirror bool) (*SyncResult, error) {
	// 1. Tags.
	rep := run.progress.start(CodeTagList, "Downloading tag list", 0)
	all, err := run.up.tags(ctx)
	if err != nil {
		return nil, &SyncError{Op: "list tags", Ref: run.r.Upstream(), Err: err}
	}
	tags := make([]string, 0, len(all))
	for _, t := range all {
		if err := content.ValidateTagName(t); err != nil {
			run.log.Warn("skipping upstream tag", "tag", t, "error", err)
			continue
		}
		if run.r.wantTag(t) {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	rep.setTotal(int64(len(tags)))
	rep.add(int64(len(tags)))
	rep.complete()

	// 2. Manifests and lists.
	have, err := run.currentTags(ctx, repo)
	if err != nil {
		return nil, err
	}
	rep = run.progress.start(CodeTags, "Processing tags", int64(len(tags)))
	tagged := make([]taggedDoc, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(run.r.DownloadConcurrency)
	for i, tag := range tags {
		g.Go(func() error {
			d, err := run.resolveTag(gctx, tag, have[tag])
			if err != nil {
				return err
			}
			tagged[i] = taggedDoc{name: tag, digest: d}
			rep.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep.complete()
	run.res.ManifestRequests = int(run.manifestGETs.Load())

	// Everything the tags reach, children before parents.
	var manifests []*docEntry
	var lists []*docEntry
	for _, e := range run.docs {
		switch e.doc.(type) {
		case *content.Manifest:
			manifests = append(manifests, e)
		case *content.ManifestList:
			lists = append(lists, e)
		}
	}
	byDigest := func(a, b *docEntry) int {
		return compareDigest(a.doc.Descriptor().Digest, b.doc.Descriptor().Digest)
	}
	slices.SortFunc(manifests, byDigest)
	slices.SortFunc(lists, byDigest)
	blobs := map[digest.Digest]content.Blob{}
	var order []digest.Digest
	for _, e := range manifests {
		m := e.doc.(*content.Manifest)
		refs := m.Layers
		if m.Config != nil {
			refs = append([]content.Blob{*m.Config}, refs...)
		}
		for _, b := range refs {
			if _, ok := blobs[b.Digest]; !ok {
				blobs[b.Digest] = b
				order = append(order, b.Digest)
			}
		}
	}

	// 3. Blobs.
	if err := run.downloadBlobs(ctx, blobs, order); err != nil {
		return nil, err
	}

	// 4. Content and the new version.
	rep = run.progress.start(CodeAssociating, "Associating content", int64(len(tagged)+len(manifests)+len(lists)+len(blobs)))
	add, err := run.store(ctx, rep, tagged, manifests, lists, blobs, order)
	if err != nil {
		return nil, err
	}
	var remove []int64
	if mirror {
		keep := make(map[int64]bool, len(add))
		for _, id := range add {
			keep[id] = true
		}
		members, err := run.members(ctx, repo)
		if err != nil {
			return nil, &SyncError{Op: "create version", Ref: run.repoID, Err: err}
		}
		for _, id := range members {
			if !keep[id] {
				remove = append(remove, id)
			}
		}
	}
	v, err := run.s.Repos.NewVersion(ctx, run.repoID, repository.Change{Add: add, Remove: remove})
	switch {
	case errors.Is(err, repository.ErrNoChange):
		v = nil
	case err != nil:
		return nil, &SyncError{Op: "create version", Ref: run.repoID, Err: err}
	}
	rep.complete()

	res := run.res
	res.Version = v
	res.Tags, res.Manifests, res.ManifestLists, res.Blobs = len(tagged), len(manifests), len(lists), len(blobs)
	return res, nil
}

func compareDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// currentTags returns the names of the tags in the repository's latest
// version: for those a HEAD request may save a manifest GET.
func (run *syncRun) currentTags(ctx context.Context, repo *repository.Repository) (map[string]bool, error) {
	have := map[string]bool{}
	in := &repository.VersionRef{RepositoryID: run.repoID, Number: repo.LatestVersion}
	for _, t := range []content.Type{content.TypeManifestTag, content.TypeManifestListTag} {
		for off := 0; ; {
			page, total, err := run.s.Repos.ListContent(ctx, repository.ContentFilter{Type: t, In: in,
				Page: repository.Page{Limit: repository.MaxLimit, Offset: off}})
			if err != nil {
				return nil, fmt.Errorf("read tags of repository %s: %w", run.repoID, err)
			}
			for _, c := range page {
				have[c.Name] = true
			}
			off += len(page)
			if len(page) == 0 || off >= total {
				break
			}
		}
	}
	return have, nil
}

// members returns the ids of every unit of the repository's latest version.
func (run *syncRun) members(ctx context.Context, repo *repository.Repository) ([]int64, error) {
	var ids []int64
	in := &repository.VersionRef{RepositoryID: run.repoID, Number: repo.LatestVersion}
	for off := 0; ; {
		page, total, err := run.s.Repos.ListContent(ctx, repository.ContentFilter{In: in,
			Page: repository.Page{Limit: repository.MaxLimit, Offset: off}})
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		off += len(page)
		if len(page) == 0 || off >= total {
			return ids, nil
		}
	}
}

// resolveTag finds what tag names and makes sure it and its children are
// in run.docs. When the repository has the tag already, a HEAD request
// gives the digest, and a stored document needs no GET.
func (run *syncRun) resolveTag(ctx context.Context, tag string, have bool) (digest.Digest, error) {
	if have {
		d, err := run.up.head(ctx, tag)
		switch {
		case err == nil:
			if e, err := run.resolve(ctx, d.String(), d); err == nil {
				return e.doc.Descriptor().Digest, nil
			} else if ctx.Err() != nil {
				return "", err
			}
		case ctx.Err() != nil:
			return "", &SyncError{Op: "resolve tag", Ref: tag, Err: err}
		default:
			// Some registries answer HEAD badly; a GET settles it.
			run.log.Debug("HEAD failed, fetching", "tag", tag, "error", err)
		}
	}
	run.manifestGETs.Add(1)
	doc, err := run.up.manifest(ctx, tag)
	if err != nil {
		return "", &SyncError{Op: "fetch manifest", Ref: tag, Err: err}
	}
	d := doc.Descriptor().Digest
	e, first := run.entry(d)
	if first {
		e.doc = doc
		e.err = run.children(ctx, doc)
		close(e.done)
	} else {
		<-e.done
	}
	if e.err != nil {
		return "", e.err
	}
	return d, nil
}

// entry returns the docEntry of d, and whether the caller is the first to
// ask and so must fill it and close done.
func (run *syncRun) entry(d digest.Digest) (*docEntry, bool) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if e, ok := run.docs[d]; ok {
		return e, false
	}
	e := &docEntry{done: make(chan struct{})}
	run.docs[d] = e
	return e, true
}

// resolve makes sure the document with digest d and its children are in
// run.docs: read back from the repository store when stored, else fetched
// by reference (a tag or the digest).
func (run *syncRun) resolve(ctx context.Context, reference string, d digest.Digest) (*docEntry, error) {
	e, first := run.entry(d)
	if !first {
		select {
		case <-e.done:
			return e, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer close(e.done)
	e.doc, e.unit, e.err = run.stored(ctx, d)
	if e.err == nil && e.doc == nil {
		run.manifestGETs.Add(1)
		e.doc, e.err = run.up.manifest(ctx, reference)
		if e.err != nil {
			e.err = &SyncError{Op: "fetch manifest", Ref: reference, Err: e.err}
		} else if got := e.doc.Descriptor().Digest; got != d && !isSchema1(e.doc) {
			// A signed schema 1 manifest may be known by the digest of its
			// bytes or of its payload (see parseFetched); others have one.
			e.err = &SyncError{Op: "fetch manifest", Ref: reference, Err: fmt.Errorf("got %s", got)}
		}
	}
	if e.err == nil {
		e.err = run.children(ctx, e.doc)
	}
	if e.err != nil {
		// Let a later caller try again rather than inherit a failure of
		// this one's context.
		run.mu.Lock()
		delete(run.docs, d)
		run.mu.Unlock()
	}
	return e, e.err
}

// children resolves the manifests a list names.
func (run *syncRun) children(ctx context.Context, doc content.Document) error {
	l, ok := doc.(*content.ManifestList)
	if !ok {
		return nil
	}
	for _, m := range l.Manifests {
		if _, err := run.resolve(ctx, m.Digest.String(), m.Digest); err != nil {
			return err
		}
	}
	return nil
}

// stored returns the document with digest d if the repository store has
// it, with its unit; nil if not.
func (run *syncRun) stored(ctx context.Context, d digest.Digest) (content.Document, *repository.Content, error) {
	for _, t := range []content.Type{content.TypeManifest, content.TypeManifestList} {
		c, err := run.s.Repos.ContentByDigest(ctx, t, d)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		doc, err := content.ParseDigest(c.MediaType, c.Raw, d)
		if err != nil {
			return nil, nil, fmt.Errorf("stored %s %s: %w", t, d, err)
		}
		return doc, c, nil
	}
	return nil, nil, nil
}

// downloadBlobs downloads the blobs not stored yet, bounded by the
// remote's concurrency, and fills in the sizes schema 1 leaves unknown.
func (run *syncRun) downloadBlobs(ctx context.Context, blobs map[digest.Digest]content.Blob, order []digest.Digest) error {
	var missing []digest.Digest
	for _, d := range order {
		b := blobs[d]
		if b.Foreign {
			continue
		}
		info, err := run.s.Blobs.Stat(ctx, d)
		switch {
		case err == nil:
			b.Size = info.Size
			blobs[d] = b
		case errors.Is(err, errdef.ErrNotFound):
			missing = append(missing, d)
		default:
			return &SyncError{Op: "download blob", Ref: d.String(), Err: err}
		}
	}
	rep := run.progress.start(CodeArtifacts, "Downloading artifacts", int64(len(missing)))
	var mu sync.Mutex
	// One failed blob does not stop the others: whatever is verified and
	// stored now need not be downloaded by the next sync. Cancelling ctx
	// still stops them all.
	var g errgroup.Group
	gctx := ctx
	g.SetLimit(run.r.DownloadConcurrency)
	sizes := make([]int64, len(missing))
	for i, d := range missing {
		sizes[i] = blobs[d].Size
	}
	got := make([]int64, len(missing))
	for i, d := range missing {
		size := sizes[i]
		g.Go(func() error {
			if err := run.up.blob(gctx, run.s.Blobs, d, size); err != nil {
				return &SyncError{Op: "download blob", Ref: d.String(), Err: err}
			}
			info, err := run.s.Blobs.Stat(gctx, d)
			if err != nil {
				return &SyncError{Op: "download blob", Ref: d.String(), Err: err}
			}
			got[i] = info.Size
			mu.Lock()
			run.res.BlobsDownloaded++
			run.res.BytesDownloaded += info.Size
			mu.Unlock()
			run.log.Debug("downloaded blob", "digest", d, "size", info.Size)
			rep.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, d := range missing {
		b := blobs[d]
		b.Size = got[i]
		blobs[d] = b
	}
	rep.complete()
	return nil
}

// store records blobs, manifests, lists and tags, and returns the ids of
// every unit the new version holds.
func (run *syncRun) store(ctx context.Context, rep *reporter, tagged []taggedDoc, manifests, lists []*docEntry,
	blobs map[digest.Digest]content.Blob, order []digest.Digest) ([]int64, error) {
	fail := func(ref string, err error) error { return &SyncError{Op: "store content", Ref: ref, Err: err} }
	var add []int64
	bl := make([]content.Blob, 0, len(order))
	for _, d := range order {
		bl = append(bl, blobs[d])
	}
	units, err := run.s.Repos.PutBlobs(ctx, bl)
	if err != nil {
		return nil, fail("blobs", err)
	}
	for _, u := range units {
		add = append(add, u.ID)
	}
	rep.add(int64(len(units)))
	// Documents and tags are independent rows: on PostgreSQL several are
	// written at once, which hides round trips.
	docs := slices.Concat(manifests, lists)
	docUnits := make([]*repository.Content, len(docs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(run.storeLimit())
	for i, e := range docs {
		if e.unit != nil {
			docUnits[i] = e.unit
			rep.add(1)
			continue
		}
		g.Go(func() error {
			u, err := run.s.Repos.PutDocument(gctx, e.doc)
			if err != nil {
				return fail(e.doc.Descriptor().Digest.String(), err)
			}
			docUnits[i] = u
			rep.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	byDigest := map[digest.Digest]*repository.Content{}
	for _, u := range docUnits {
		byDigest[u.Digest] = u
		add = append(add, u.ID)
	}
	tagUnits := make([]*repository.Content, len(tagged))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(run.storeLimit())
	for i, t := range tagged {
		target := byDigest[t.digest]
		if target == nil {
			return nil, fail(t.name, fmt.Errorf("tagged %s was not stored", t.digest))
		}
		g.Go(func() error {
			u, err := run.s.Repos.PutTag(gctx, t.name, target)
			if err != nil {
				return fail(t.name, err)
			}
			tagUnits[i] = u
			rep.add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, u := range tagUnits {
		add = append(add, u.ID)
	}
	return add, nil
}

// storeConcurrency bounds the content rows written at once on PostgreSQL.
// SQLite takes one writer at a time, and waiting writers poll for the lock,
// so there they are written one by one.
const storeConcurrency = 4

func (run *syncRun) storeLimit() int {
	if run.s.Repos.DB().Dialect().Name() == dialect.PG {
		return storeConcurrency
	}
	return 1
}

// progress serialises reports to the caller's callback.
type progress struct {
	mu      sync.Mutex
	fn      func(Report)
	running []*reporter
}

// reporter is one stage's report.
type reporter struct {
	p *progress
	r Report
}

func (p *progress) start(code, msg string, total int64) *reporter {
	rp := &reporter{p: p, r: Report{Code: code, Message: msg, State: StateRunning, Total: total}}
	p.mu.Lock()
	p.running = append(p.running, rp)
	p.mu.Unlock()
	rp.emit(func(*Report) {})
	return rp
}

func (rp *reporter) emit(change func(*Report)) {
	rp.p.mu.Lock()
	defer rp.p.mu.Unlock()
	change(&rp.r)
	if rp.p.fn != nil {
		rp.p.fn(rp.r)
	}
}

func (rp *reporter) add(n int64)      { rp.emit(func(r *Report) { r.Done += n }) }
func (rp *reporter) setTotal(n int64) { rp.emit(func(r *Report) { r.Total = n }) }
func (rp *reporter) complete()        { rp.finish(StateCompleted) }
func (rp *reporter) finish(state string) {
	rp.emit(func(r *Report) { r.State = state })
	rp.p.remove(rp)
}

func (p *progress) remove(rp *reporter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = slices.DeleteFunc(p.running, func(x *reporter) bool { return x == rp })
}

// failRunning marks every report still running as failed.
func (p *progress) failRunning() {
	p.mu.Lock()
	running := slices.Clone(p.running)
	p.mu.Unlock()
	for _, rp := range running {
		rp.finish(StateFailed)
	}
}

func isSchema1(doc content.Document) bool {
	m, ok := doc.(*content.Manifest)
	return ok && m.SchemaVersion == 1
}
