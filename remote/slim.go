package remote

import (
	"context"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
)

// A sync holds every document its tags reach from the plan stage to the
// commit: 50,000 manifests for 50,000 tags. It keeps each as stored as
// soon as it is known (found in the repository store, or fetched and
// stored at once by a docStore), and of its parsed form only what the
// stages read: digest, media type, schema version, references, artifact
// type, subject and annotations (slim; signed_only reads a Sigstore
// bundle's). Its bytes are in the store;
// Descriptor().Size of a slim document is 0.

// slim returns what a sync keeps of a stored document.
func slim(doc content.Document) content.Document {
	switch d := doc.(type) {
	case *content.Manifest:
		internDoc(d)
		return &content.Manifest{Digest: d.Digest, MediaType: d.MediaType, SchemaVersion: d.SchemaVersion,
			Config: d.Config, Layers: d.Layers, ArtifactType: d.ArtifactType, Subject: d.Subject, Annotations: d.Annotations}
	case *content.ManifestList:
		internDoc(d)
		return &content.ManifestList{Digest: d.Digest, MediaType: d.MediaType, SchemaVersion: d.SchemaVersion,
			Manifests: d.Manifests, ArtifactType: d.ArtifactType, Subject: d.Subject, Annotations: d.Annotations}
	}
	return doc
}

// docStore stores the documents the fetch stage gets, as they arrive, a
// batch per transaction (up to storeBatch, or what arrives within
// lookupWait), and sets each entry's unit.
type docStore struct {
	run  *syncRun
	in   chan fetchedDoc
	done chan error
}

// fetchedDoc is a fetched document on its way to the store: its whole
// parsed form, and the entry the fetcher keeps of it.
type fetchedDoc struct {
	doc   content.Document
	entry *docEntry
}

// newDocStore starts storing documents; close stops it.
func (run *syncRun) newDocStore(ctx context.Context) *docStore {
	ds := &docStore{run: run, in: make(chan fetchedDoc, storeBatch), done: make(chan error, 1)}
	go func() { ds.done <- ds.loop(ctx) }()
	return ds
}

func (ds *docStore) loop(ctx context.Context) error {
	var failed error
	for first := range ds.in {
		batch := gather(ds.in, first, storeBatch, lookupWait)
		if failed != nil {
			continue // drain, so that senders do not block
		}
		docs := make([]content.Document, len(batch))
		for i, b := range batch {
			docs[i] = b.doc
		}
		units, err := ds.run.s.Repos.PutDocuments(ctx, docs)
		if err != nil {
			failed = &SyncError{Op: "store content", Ref: docs[0].Descriptor().Digest.String(), Err: err}
			continue
		}
		for i, b := range batch {
			u := units[i]
			u.Raw = nil
			b.entry.unit = &u
		}
	}
	return failed
}

// put hands a fetched document to the store.
func (ds *docStore) put(ctx context.Context, doc content.Document, e *docEntry) error {
	select {
	case ds.in <- fetchedDoc{doc: doc, entry: e}:
		return nil
	case <-ctx.Done():
		return &SyncError{Op: "store content", Ref: e.digest().String(), Err: ctx.Err()}
	}
}

// close waits until every document put is stored and returns the first
// error.
func (ds *docStore) close() error {
	close(ds.in)
	return <-ds.done
}

// restoreUnits finds again, after orphan cleanup deleted some unit the
// sync had found, the unit of each document: read from the store, or,
// when it is gone, fetched from the upstream by digest and stored again.
func (run *syncRun) restoreUnits(ctx context.Context, f *fetched) error {
	docs := slices.Concat(f.manifests, f.lists)
	for chunk := range slices.Chunk(docs, storeBatch) {
		ds := make([]digest.Digest, len(chunk))
		for i, e := range chunk {
			ds[i] = e.digest()
		}
		units, err := run.s.Repos.DocumentsByDigest(ctx, ds)
		if err != nil {
			return &SyncError{Op: "read stored manifest", Ref: ds[0].String(), Err: err}
		}
		found := make(map[digest.Digest]int, len(units))
		for i := range units {
			units[i].Raw = nil
			found[units[i].Digest] = i
		}
		var gone []content.Document
		var goneAt []*docEntry
		for _, e := range chunk {
			if i, ok := found[e.digest()]; ok {
				e.unit = &units[i]
				continue
			}
			doc, err := run.up.manifest(ctx, e.digest().String())
			if err == nil && doc.Descriptor().Digest != e.digest() && !isSchema1(doc) {
				err = fmt.Errorf("got %s", doc.Descriptor().Digest)
			}
			if err != nil {
				return &SyncError{Op: "fetch manifest", Ref: e.digest().String(), Err: err}
			}
			gone, goneAt = append(gone, doc), append(goneAt, e)
		}
		if len(gone) == 0 {
			continue
		}
		stored, err := run.s.Repos.PutDocuments(ctx, gone)
		if err != nil {
			return &SyncError{Op: "store content", Ref: gone[0].Descriptor().Digest.String(), Err: err}
		}
		for i, e := range goneAt {
			u := stored[i]
			u.Raw = nil
			e.unit = &u
		}
	}
	return nil
}
