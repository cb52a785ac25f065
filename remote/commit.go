package remote

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun/dialect"
	"golang.org/x/sync/errgroup"

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
	defer f.lease.Release(context.WithoutCancel(ctx))
	total := len(f.tagged) + len(f.manifests) + len(f.lists) + len(f.blobs)
	rep := run.reports.start(CodeAssociating, "Associating content", int64(total))
	for attempt := 1; ; attempt++ {
		v, err := run.commitOnce(ctx, rep, f, mirror)
		if attempt < 3 && vanished(err) {
			// Orphan cleanup deleted a stored unit the sync found
			// before it was in the version: store it again.
			run.log.Debug("content deleted meanwhile; storing it again", "err", err)
			f.forgetUnits()
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

// forgetUnits drops the units the plan read from the store, so that the
// commit stores their documents again.
func (f *fetched) forgetUnits() {
	for _, e := range slices.Concat(f.manifests, f.lists) {
		e.unit = nil
	}
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
	docs, err := run.storeDocuments(ctx, rep, slices.Concat(f.manifests, f.lists))
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
	for _, u := range tags {
		add = append(add, u.ID)
	}
	return add, nil
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

// storeDocuments records the documents not stored yet and returns the
// units of all, by digest. Documents are independent rows: on PostgreSQL
// several are written at once, which hides round trips.
func (run *syncRun) storeDocuments(ctx context.Context, rep *task.Report, docs []*docEntry) (map[digest.Digest]*repository.Content, error) {
	units := make([]*repository.Content, len(docs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(run.storeLimit())
	for i, e := range docs {
		if e.unit != nil {
			units[i] = e.unit
			rep.Increment()
			continue
		}
		g.Go(func() error {
			u, err := run.s.Repos.PutDocument(gctx, e.doc)
			if err != nil {
				return &SyncError{Op: "store content", Ref: e.digest().String(), Err: err}
			}
			units[i] = u
			rep.Increment()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	byDigest := make(map[digest.Digest]*repository.Content, len(units))
	for _, u := range units {
		byDigest[u.Digest] = u
	}
	return byDigest, nil
}

// storeTags records the tags, each naming its document's unit.
func (run *syncRun) storeTags(ctx context.Context, rep *task.Report, tagged []taggedDoc, docs map[digest.Digest]*repository.Content) ([]*repository.Content, error) {
	for _, t := range tagged {
		if docs[t.digest] == nil {
			return nil, &SyncError{Op: "store content", Ref: t.name, Err: fmt.Errorf("tagged %s was not stored", t.digest)}
		}
	}
	units := make([]*repository.Content, len(tagged))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(run.storeLimit())
	for i, t := range tagged {
		g.Go(func() error {
			u, err := run.s.Repos.PutTag(gctx, t.name, docs[t.digest])
			if err != nil {
				return &SyncError{Op: "store content", Ref: t.name, Err: err}
			}
			units[i] = u
			rep.Increment()
			return nil
		})
	}
	return units, g.Wait()
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
