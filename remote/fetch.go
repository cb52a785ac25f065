package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// The fetch stage gets what the plan found missing: manifests and lists by
// digest or tag, the lists' children, and the blobs, each at most once and
// never more than the remote's DownloadConcurrency requests at a time.

// fetched is the outcome of the fetch stage: everything the planned tags
// reach, documents in memory and blobs in the blob store, none of it in a
// version yet.
type fetched struct {
	// tagged are the tags and the documents they name, sorted by tag.
	tagged []taggedDoc
	// manifests and lists are every document the tags reach, each sorted
	// by digest.
	manifests, lists []*docEntry
	// blobs are the manifests' configs and layers, each once, in the order
	// first referenced, with their sizes as stored.
	blobs []content.Blob
	// configs are the digests of the blobs that are manifests' configs.
	configs map[digest.Digest]bool
	// stored are the blobs found stored or downloaded; onDemand those
	// recorded without their bytes (the remote's policy is not
	// immediate). Foreign layers are in neither.
	stored, onDemand []content.Blob

	manifestGETs    int
	blobsDownloaded int
	bytesDownloaded int64
	// referrers and unsigned are SyncResult's Referrers and Unsigned.
	referrers, unsigned int

	// lease keeps blobs from orphan cleanup from before they are looked
	// for in storage until the commit stage has put them in a version.
	lease *repository.Lease
	// unchanged is set when the sync would leave the repository as it is
	// (see unchanged): no blob is looked at and nothing is committed.
	unchanged bool
}

// fetcher is the fetch stage's state: the documents found so far.
type fetcher struct {
	run   *syncRun
	gets  atomic.Int64
	store *docStore // stores what is fetched
	// rel follows signatures and referrers (referrers.go).
	rel *related

	mu   sync.Mutex
	docs map[digest.Digest]*docEntry
}

// fetch gets the documents of the planned tags and their children, then
// the blobs.
func (run *syncRun) fetch(ctx context.Context, p *plan) (*fetched, error) {
	fr := &fetcher{run: run, docs: map[digest.Digest]*docEntry{}, store: run.newDocStore(ctx)}
	tagged, err := fr.documents(ctx, p)
	if cerr := fr.store.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p.tagReport.Complete()
	f := fr.collect(tagged)
	f.referrers, f.unsigned = fr.rel.followed, fr.rel.unsigned
	if f.unchanged, err = run.unchanged(ctx, f); err != nil || f.unchanged {
		return f, err
	}
	if err := run.downloadBlobs(ctx, f); err != nil {
		return nil, err
	}
	return f, nil
}

// documents finds the documents of the planned tags, those the include
// patterns name by digest, the lists' children, and the signatures and
// referrers that travel with them.
func (fr *fetcher) documents(ctx context.Context, p *plan) ([]taggedDoc, error) {
	tagged, err := fr.tags(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := fr.untagged(ctx, p.digests); err != nil {
		return nil, err
	}
	rel := fr.related()
	if tagged, err = rel.signedOnly(ctx, tagged, p.digests); err != nil {
		return nil, err
	}
	if err := fr.children(ctx); err != nil {
		return nil, err
	}
	fr.rel = rel
	return rel.follow(ctx, tagged)
}

// tags finds the document of every planned tag. A document the HEAD
// request named is fetched by digest, once however many tags name it; the
// other tags, and those whose GET by digest fails, are fetched by tag.
func (fr *fetcher) tags(ctx context.Context, p *plan) ([]taggedDoc, error) {
	var named []digest.Digest
	for _, t := range p.tags {
		if t.stored != nil {
			fr.add(t.stored)
		} else if t.digest != "" {
			named = append(named, t.digest)
		}
	}
	slices.Sort(named)
	byDigest, err := fr.byDigest(ctx, slices.Compact(named))
	if err != nil {
		return nil, err
	}
	tagged := make([]taggedDoc, len(p.tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fr.run.r.DownloadConcurrency)
	for i, t := range p.tags {
		if e := cmp.Or(t.stored, byDigest[t.digest]); e != nil {
			tagged[i] = taggedDoc{name: t.name, digest: e.digest()}
			if t.stored == nil {
				p.tagReport.Increment()
			}
			continue
		}
		g.Go(func() error {
			e, err := fr.get(gctx, t.name, "")
			if err != nil {
				return err
			}
			tagged[i] = taggedDoc{name: t.name, digest: e.digest()}
			p.tagReport.Increment()
			return nil
		})
	}
	return tagged, g.Wait()
}

// untagged fetches the documents the include patterns name by digest
// (those stored already are read back); one the upstream does not have
// fails the sync.
func (fr *fetcher) untagged(ctx context.Context, digests []digest.Digest) error {
	var missing []digest.Digest
	for _, d := range digests {
		e, err := fr.run.stored(ctx, d)
		if err != nil {
			return err
		}
		if e != nil {
			fr.add(e)
		} else {
			missing = append(missing, d)
		}
	}
	got, err := fr.byDigest(ctx, missing)
	if err != nil {
		return err
	}
	for _, d := range missing {
		if got[d] == nil {
			return &SyncError{Op: "fetch manifest", Ref: d.String(), Err: errdef.New(errdef.ErrNotFound, "the upstream has no manifest %s", d)}
		}
	}
	return nil
}

// byDigest fetches the documents of digests and returns those it got. A
// failed GET is left out, for a GET by tag to settle, unless ctx is done.
func (fr *fetcher) byDigest(ctx context.Context, digests []digest.Digest) (map[digest.Digest]*docEntry, error) {
	got := make([]*docEntry, len(digests))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fr.run.r.DownloadConcurrency)
	for i, d := range digests {
		g.Go(func() error {
			e, err := fr.get(gctx, d.String(), d)
			switch {
			case err == nil:
				got[i] = e
			case gctx.Err() != nil:
				return err
			default:
				fr.run.log.Debug("GET by digest failed, fetching by tag", "digest", d, "err", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[digest.Digest]*docEntry, len(digests))
	for i, d := range digests {
		if got[i] != nil {
			out[d] = got[i]
		}
	}
	return out, nil
}

// children makes sure every manifest a list names that the remote's
// platform filter keeps (see Platforms.Select) is known, read back from
// the repository store or fetched by digest, one level at a time: an OCI
// index may name indexes.
func (fr *fetcher) children(ctx context.Context) error {
	platforms, err := ParsePlatforms(fr.run.r.IncludePlatforms)
	if err != nil {
		return &SyncError{Op: "check remote", Ref: fr.run.r.Name, Err: err}
	}
	expanded := map[digest.Digest]bool{}
	asked := map[digest.Digest]bool{}
	for {
		var want []digest.Digest
		for d, e := range fr.docs {
			l, ok := e.doc.(*content.ManifestList)
			if !ok || expanded[d] {
				continue
			}
			expanded[d] = true
			for _, m := range platforms.Select(l.Manifests) {
				if fr.docs[m.Digest] == nil && !asked[m.Digest] {
					asked[m.Digest] = true
					want = append(want, m.Digest)
				}
			}
		}
		if len(want) == 0 {
			return nil
		}
		slices.Sort(want)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(fr.run.r.DownloadConcurrency)
		for _, d := range want {
			g.Go(func() error {
				e, err := fr.run.stored(gctx, d)
				if err != nil || e != nil {
					fr.add(e)
					return err
				}
				_, err = fr.get(gctx, d.String(), d)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
}

// get fetches a document by reference, a digest or a tag, and adds it. By
// digest it must have that digest, but for a signed schema 1 manifest,
// which may be known by the digest of its bytes or of its payload (see
// parseFetched).
func (fr *fetcher) get(ctx context.Context, reference string, want digest.Digest) (*docEntry, error) {
	fr.gets.Add(1)
	doc, err := fr.run.up.manifest(ctx, reference)
	if err != nil {
		return nil, &SyncError{Op: "fetch manifest", Ref: reference, Err: err}
	}
	if got := doc.Descriptor().Digest; want != "" && got != want && !isSchema1(doc) {
		return nil, &SyncError{Op: "fetch manifest", Ref: reference, Err: fmt.Errorf("got %s", got)}
	}
	e, added := fr.addNew(&docEntry{doc: slim(doc)})
	if added {
		if err := fr.store.put(ctx, doc, e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// add records e unless a document with its digest is known already, and
// returns the one recorded. A nil e is ignored.
func (fr *fetcher) add(e *docEntry) *docEntry {
	e, _ = fr.addNew(e)
	return e
}

// addNew is add, and reports whether e was recorded.
func (fr *fetcher) addNew(e *docEntry) (*docEntry, bool) {
	if e == nil {
		return nil, false
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if known, ok := fr.docs[e.digest()]; ok {
		return known, false
	}
	fr.docs[e.digest()] = e
	return e, true
}

// collect sorts the documents found into manifests and lists, and gathers
// the blobs the manifests reference.
func (fr *fetcher) collect(tagged []taggedDoc) *fetched {
	f := &fetched{tagged: tagged, manifestGETs: int(fr.gets.Load()), configs: map[digest.Digest]bool{}}
	for _, e := range fr.docs {
		switch e.doc.(type) {
		case *content.Manifest:
			f.manifests = append(f.manifests, e)
		case *content.ManifestList:
			f.lists = append(f.lists, e)
		}
	}
	byDigest := func(a, b *docEntry) int { return cmp.Compare(a.digest(), b.digest()) }
	slices.SortFunc(f.manifests, byDigest)
	slices.SortFunc(f.lists, byDigest)
	seen := map[digest.Digest]bool{}
	for _, e := range f.manifests {
		m := e.doc.(*content.Manifest)
		refs := m.Layers
		if m.Config != nil {
			refs = append([]content.Blob{*m.Config}, refs...)
			f.configs[m.Config.Digest] = true
		}
		for _, b := range refs {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				f.blobs = append(f.blobs, b)
			}
		}
	}
	return f
}

// downloadBlobs downloads the blobs not stored yet and fills in the sizes
// schema 1 leaves unknown. Under the on_demand and streamed policies,
// layers of known size are left to be fetched when pulled (configs are
// downloaded, as Pulp does: clients read them first, and they are small).
// One failed blob does not stop the others: whatever is verified and
// stored now need not be downloaded by the next sync. Cancelling ctx still
// stops them all.
func (run *syncRun) downloadBlobs(ctx context.Context, f *fetched) (err error) {
	stored := make([]digest.Digest, 0, len(f.blobs))
	for _, b := range f.blobs {
		if !b.Foreign {
			stored = append(stored, b.Digest)
		}
	}
	if f.lease, err = run.s.Repos.LeaseBlobs(ctx, stored); err != nil {
		return &SyncError{Op: "download blob", Ref: "blobs", Err: err}
	}
	defer func() {
		if err != nil {
			f.lease.Release(context.WithoutCancel(ctx))
		}
	}()
	var missing []*content.Blob
	for i := range f.blobs {
		b := &f.blobs[i]
		if b.Foreign {
			continue
		}
		info, err := run.s.Blobs.Stat(ctx, b.Digest)
		switch {
		case err == nil:
			b.Size = info.Size
			f.stored = append(f.stored, *b)
		case !errors.Is(err, errdef.ErrNotFound):
			return &SyncError{Op: "download blob", Ref: b.Digest.String(), Err: err}
		case run.r.Policy != PolicyImmediate && !f.configs[b.Digest] && b.Size >= 0:
			f.onDemand = append(f.onDemand, *b)
		default:
			missing = append(missing, b)
		}
	}
	rep := run.reports.start(CodeArtifacts, "Downloading artifacts", int64(len(missing)))
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(run.r.DownloadConcurrency)
	for _, b := range missing {
		g.Go(func() error {
			if err := run.up.blob(ctx, run.s.Blobs, b.Digest, b.Size); err != nil {
				return &SyncError{Op: "download blob", Ref: b.Digest.String(), Err: err}
			}
			info, err := run.s.Blobs.Stat(ctx, b.Digest)
			if err != nil {
				return &SyncError{Op: "download blob", Ref: b.Digest.String(), Err: err}
			}
			b.Size = info.Size
			mu.Lock()
			f.stored = append(f.stored, *b)
			f.blobsDownloaded++
			f.bytesDownloaded += info.Size
			mu.Unlock()
			run.log.Debug("downloaded blob", "digest", b.Digest, "size", info.Size)
			rep.Increment()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	rep.Complete()
	return nil
}
