package remote

import (
	"context"
	"fmt"
	"time"
	"unique"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/content"
)

// Resolving the tags a repository already has, part of the plan stage: a
// HEAD request per tag, DownloadConcurrency at a time, and the digests
// they name looked up in the repository store in batches as the answers
// come in, so that a resync of 50,000 tags makes 50,000 HEAD requests but
// a few hundred queries, and its tag report moves as the answers arrive.

// lookupBatch bounds the digests one store lookup asks for, and
// lookupWait how long a lookup waits for more answers to ask about before
// it asks about those it has.
const (
	lookupBatch = 500
	lookupWait  = 50 * time.Millisecond
)

// resolveKnown sets the digest of each tag of known that a HEAD request
// names, and its stored document when the repository store holds it,
// counting those tags on p's tag report.
func (run *syncRun) resolveKnown(ctx context.Context, p *plan, known []*plannedTag) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	heads := make(chan *plannedTag, lookupBatch)
	looked := make(chan error, 1)
	go func() {
		err := run.lookupStored(ctx, p, heads)
		if err != nil {
			cancel() // stop the HEAD requests
		}
		looked <- err
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(run.r.DownloadConcurrency)
	for _, t := range known {
		g.Go(func() error {
			if err := run.headTag(gctx, t); err != nil || t.digest == "" {
				return err
			}
			select {
			case heads <- t:
				return nil
			case <-gctx.Done():
				return &SyncError{Op: "resolve tag", Ref: t.name, Err: gctx.Err()}
			}
		})
	}
	err := g.Wait()
	close(heads)
	if lerr := <-looked; lerr != nil {
		return lerr
	}
	return err
}

// headTag asks the upstream with a HEAD request what a tag the repository
// has names now. A failed HEAD leaves the tag to a GET: some registries
// answer HEAD badly.
func (run *syncRun) headTag(ctx context.Context, t *plannedTag) error {
	d, err := run.up.head(ctx, t.name)
	switch {
	case err == nil:
		t.digest = d
	case ctx.Err() != nil:
		return &SyncError{Op: "resolve tag", Ref: t.name, Err: err}
	default:
		run.log.Debug("HEAD failed, fetching", "tag", t.name, "err", err)
	}
	return nil
}

// lookupStored takes tags whose digest a HEAD request found from heads
// until it is closed, looks their documents up in the repository store
// with the tags that arrive within lookupWait (up to lookupBatch), and
// counts on p's tag report those it finds. Documents are read once
// however many tags name them.
func (run *syncRun) lookupStored(ctx context.Context, p *plan, heads <-chan *plannedTag) error {
	docs := map[digest.Digest]*docEntry{} // nil: looked up, not stored
	for t := range heads {
		batch := gather(heads, t, lookupBatch, lookupWait)
		var want []digest.Digest
		for _, t := range batch {
			if _, ok := docs[t.digest]; !ok {
				docs[t.digest] = nil
				want = append(want, t.digest)
			}
		}
		if err := run.storedDocs(ctx, want, docs); err != nil {
			return err
		}
		found := 0
		for _, t := range batch {
			if e := docs[t.digest]; e != nil {
				t.stored = e
				found++
			}
		}
		p.tagReport.Add(int64(found))
	}
	return nil
}

// gather returns first and what else arrives on ch within wait, up to max
// in all, or until ch is closed.
func gather[T any](ch <-chan T, first T, max int, wait time.Duration) []T {
	buf := []T{first}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(buf) < max {
		select {
		case v, ok := <-ch:
			if !ok {
				return buf
			}
			buf = append(buf, v)
		case <-timer.C:
			return buf
		}
	}
	return buf
}

// storedDocs reads the stored documents among digests ds into docs, by
// digest; those not stored are left as they are.
func (run *syncRun) storedDocs(ctx context.Context, ds []digest.Digest, docs map[digest.Digest]*docEntry) error {
	if len(ds) == 0 {
		return nil
	}
	units, err := run.s.Repos.DocumentsByDigest(ctx, ds)
	if err != nil {
		return &SyncError{Op: "read stored manifest", Ref: fmt.Sprintf("%d digests", len(ds)), Err: err}
	}
	for i := range units {
		c := &units[i]
		doc, err := content.ParseDigest(c.MediaType, c.Raw, c.Digest)
		if err != nil {
			return &SyncError{Op: "read stored manifest", Ref: c.Digest.String(), Err: fmt.Errorf("stored %s: %w", c.Type, err)}
		}
		c.Raw = nil
		docs[c.Digest] = &docEntry{doc: slim(doc), unit: c}
	}
	return nil
}

// internDoc makes the strings a document repeats from others, such as the
// digests and media types of the layers that many images share, one
// string each: a sync holds every document its tags name until it
// commits.
func internDoc(doc content.Document) {
	switch d := doc.(type) {
	case *content.Manifest:
		d.MediaType = unique.Make(d.MediaType).Value()
		if d.Config != nil {
			internBlob(d.Config)
		}
		for i := range d.Layers {
			internBlob(&d.Layers[i])
		}
	case *content.ManifestList:
		d.MediaType = unique.Make(d.MediaType).Value()
		for i := range d.Manifests {
			d.Manifests[i].MediaType = unique.Make(d.Manifests[i].MediaType).Value()
		}
	}
}

func internBlob(b *content.Blob) {
	b.Digest = digest.Digest(unique.Make(string(b.Digest)).Value())
	b.MediaType = unique.Make(b.MediaType).Value()
}
