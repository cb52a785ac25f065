package remote

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun/dialect"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// The commit stage records what the fetch stage gathered as content units
// and makes the repository's one new version of them.

// commit stores the fetched content and creates the repository's next
// version: the latest plus it when additive, exactly it when mirror. It
// returns nil when that equals the latest version.
func (run *syncRun) commit(ctx context.Context, f *fetched, mirror bool) (*repository.Version, error) {
	if f.unchanged {
		run.reportUnchanged(f)
		return nil, nil
	}
	defer f.lease.Release(context.WithoutCancel(ctx))
	rep := run.reports.start(CodeAssociating, "Associating content", f.units())
	for attempt := 1; ; attempt++ {
		v, err := run.commitOnce(ctx, rep, f, mirror)
		if attempt < 3 && vanished(err) {
			// Orphan cleanup deleted a stored unit the sync found
			// before it was in the version: store it again.
			run.log.Debug("content deleted meanwhile; storing it again", "err", err)
			if err := run.restoreUnits(ctx, f); err != nil {
				return nil, err
			}
			run.have = nil // store the tags again too
			continue
		}
		if err != nil {
			return nil, err
		}
		rep.Complete()
		return v, nil
	}
}

// commitOnce stores the units and makes the version.
func (run *syncRun) commitOnce(ctx context.Context, rep *task.Report, f *fetched, mirror bool) (*repository.Version, error) {
	add, err := run.storeUnits(ctx, rep, f)
	if err != nil {
		return nil, err
	}
	// A mirror's version holds exactly what the sync found; what to remove
	// is read under the repository's lock, so that content added since the
	// sync began goes too, whole, rather than losing what it shares with
	// content the sync drops.
	v, err := run.s.Repos.NewVersion(ctx, run.repoID, repository.Change{Add: add, Exact: mirror})
	switch {
	case errors.Is(err, repository.ErrNoChange):
		v = nil
	case err != nil:
		return nil, &SyncError{Op: "create version", Ref: run.repoID, Err: err}
	}
	return v, nil
}

// vanished reports whether err says a unit the sync had read was deleted
// before the version that holds it was made.
func vanished(err error) bool {
	return errors.Is(err, errdef.ErrNotFound) || db.IsForeignKeyViolation(err)
}

// storeUnits records blobs, manifests, lists and tags, and returns the ids
// of every unit the new version holds.
func (run *syncRun) storeUnits(ctx context.Context, rep *task.Report, f *fetched) ([]int64, error) {
	units, err := run.storeBlobs(ctx, f)
	if err != nil {
		return nil, &SyncError{Op: "store content", Ref: "blobs", Err: err}
	}
	add := make([]int64, 0, len(units)+len(f.manifests)+len(f.lists)+len(f.tagged))
	for _, u := range units {
		add = append(add, u.ID)
	}
	rep.Add(int64(len(units)))
	docs, err := run.storeDocuments(rep, slices.Concat(f.manifests, f.lists))
	if err != nil {
		return nil, err
	}
	for _, u := range docs {
		add = append(add, u.ID)
	}
	tags, err := run.storeTags(ctx, rep, f.tagged, docs)
	if err != nil {
		return nil, err
	}
	return append(add, tags...), nil
}

// storeBlobs records the blobs: those stored as stored (clearing an
// on-demand flag a unit may carry from an earlier on_demand sync), those
// left to be fetched as on-demand, foreign layers as they are. For a
// stored remote, it records that the remote can fetch every blob but the
// foreign ones for the repository (remote artifacts), so that on-demand
// blobs can be pulled and stored ones reclaimed; a remote deleted
// meanwhile fails the sync.
func (run *syncRun) storeBlobs(ctx context.Context, f *fetched) ([]repository.Content, error) {
	var foreign []content.Blob
	for _, b := range f.blobs {
		if b.Foreign {
			foreign = append(foreign, b)
		}
	}
	stored := slices.Concat(f.stored, foreign)
	if err := run.s.Repos.MarkStored(ctx, digests(f.stored)); err != nil {
		return nil, err
	}
	units, err := run.s.Repos.PutBlobs(ctx, stored)
	if err != nil {
		return nil, err
	}
	lazy, err := run.s.Repos.PutOnDemandBlobs(ctx, f.onDemand)
	if err != nil {
		return nil, err
	}
	units = append(units, lazy...)
	if run.r.ID == "" {
		return units, nil // a remote not stored: nothing can name it later
	}
	var ids []int64
	for _, u := range units {
		if !u.Foreign {
			ids = append(ids, u.ID)
		}
	}
	err = run.s.Repos.InTx(ctx, func(ctx context.Context, tx *repository.Store) error {
		q := tx.DB().NewSelect().Table("remotes").Column("id").Where("id = ?", run.r.ID)
		if tx.DB().Dialect().Name() == dialect.PG {
			q = q.For("SHARE") // Store.Delete waits, then sees these rows
		}
		var id string
		if err := q.Scan(ctx, &id); errors.Is(err, sql.ErrNoRows) {
			return errdef.New(errdef.ErrConflict, "remote %q was deleted during the sync", run.r.Name)
		} else if err != nil {
			return err
		}
		return tx.AddRemoteArtifacts(ctx, run.repoID, run.r.ID, ids)
	})
	return units, err
}

func digests(blobs []content.Blob) []digest.Digest {
	out := make([]digest.Digest, len(blobs))
	for i, b := range blobs {
		out[i] = b.Digest
	}
	return out
}

// storeDocuments returns the units of the documents, by digest: each was
// stored as soon as it was found or fetched (see slim.go).
func (run *syncRun) storeDocuments(rep *task.Report, docs []*docEntry) (map[digest.Digest]*repository.Content, error) {
	byDigest := make(map[digest.Digest]*repository.Content, len(docs))
	for _, e := range docs {
		if e.unit == nil {
			return nil, &SyncError{Op: "store content", Ref: e.digest().String(), Err: errors.New("the document was not stored")}
		}
		byDigest[e.digest()] = e.unit
	}
	rep.Add(int64(len(byDigest)))
	return byDigest, nil
}

// storeTags records the tags, each naming its document's unit, storeBatch
// to a statement, and returns their units' ids. A tag the latest version
// has naming the same document is that version's unit, not written again.
func (run *syncRun) storeTags(ctx context.Context, rep *task.Report, tagged []taggedDoc, docs map[digest.Digest]*repository.Content) ([]int64, error) {
	ids := make([]int64, 0, len(tagged))
	var put []repository.TagTarget
	for _, t := range tagged {
		if have, ok := run.have[t.name]; ok && have.Digest == t.digest {
			ids = append(ids, have.ID)
			continue
		}
		if docs[t.digest] == nil {
			return nil, &SyncError{Op: "store content", Ref: t.name, Err: fmt.Errorf("tagged %s was not stored", t.digest)}
		}
		put = append(put, repository.TagTarget{Name: t.name, Target: docs[t.digest]})
	}
	rep.Add(int64(len(ids)))
	for chunk := range slices.Chunk(put, storeBatch) {
		units, err := run.s.Repos.PutTags(ctx, chunk)
		if err != nil {
			return nil, &SyncError{Op: "store content", Ref: chunk[0].Name, Err: err}
		}
		for _, u := range units {
			ids = append(ids, u.ID)
		}
		rep.Add(int64(len(units)))
	}
	return ids, nil
}

// storeBatch is how many documents or tags one call stores: a
// transaction of a few multi-row statements, and a step of the
// associating report.
const storeBatch = 500
