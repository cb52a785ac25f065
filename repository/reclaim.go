package repository

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// Orphan cleanup, second half: deleting from blob storage the bytes that
// no unit, staged push blob or writer needs, while pushes, syncs and pulls
// go on in any process.
//
// Bytes in storage are kept while a blob unit of their digest exists, a
// row of the view blob_references names it (a blob a push staged), or a
// writer leases it. Deleting a blob takes three committed steps: record
// the digest as being deleted (blob_deletions), check that nothing keeps
// it, delete the bytes and drop the record. A writer that is about to rely
// on a blob's bytes — a sync about to record blobs it found stored, a push
// about to stage a blob or to put a manifest that uses one — first leases
// the digest, then waits until no deletion of it is in flight (LeaseBlobs),
// and only then looks at or stores the bytes. Of the lease and the
// deletion record, one committed first and the other's check sees it:
// either the sweep sees the lease and keeps the blob, or the writer waits
// until the bytes are gone and finds them missing (and stores them again,
// or fails with BLOB_UNKNOWN). No writer ever relies on bytes that are
// being deleted.

// LeaseTTL is how long a lease keeps blobs when it is never released (its
// writer died).
const LeaseTTL = 24 * time.Hour

// staleDeletion is how old a deletion record must be to be taken for one
// whose sweep died; a sweep holds one for a batch's deletes, seconds.
const staleDeletion = 10 * time.Minute

// sweepBatch is how many blobs one deletion round records.
const sweepBatch = 100

// sweepConcurrency bounds the blob deletes in flight.
const sweepConcurrency = 8

// blobLease is a row of blob_leases.
type blobLease struct {
	bun.BaseModel `bun:"table:blob_leases"`

	LeaseID   string        `bun:"lease_id,pk"`
	Digest    digest.Digest `bun:"digest,pk"`
	ExpiresAt time.Time     `bun:"expires_at"`
}

// blobDeletion is a row of blob_deletions.
type blobDeletion struct {
	bun.BaseModel `bun:"table:blob_deletions"`

	Digest    digest.Digest `bun:"digest,pk"`
	SweepID   string        `bun:"sweep_id"`
	StartedAt time.Time     `bun:"started_at"`
}

// Lease keeps the bytes of some blobs from orphan cleanup until Release.
type Lease struct {
	s  *Store
	id string
}

// LeaseBlobs leases the blobs ds and returns once no deletion of any of
// them is in flight: from then until Release (at most LeaseTTL), SweepBlobs
// deletes none of them. A writer calls it before it checks that a blob is
// stored, stores it, or stages it, and releases it once a durable
// reference exists (a unit in a version, a staged row). The Store must not
// be inside a transaction: the lease must be seen by other processes
// before the writer goes on.
func (s *Store) LeaseBlobs(ctx context.Context, ds []digest.Digest) (*Lease, error) {
	if _, ok := s.db.(bun.Tx); ok {
		return nil, errors.New("repository: LeaseBlobs inside a transaction")
	}
	l := &Lease{s: s, id: uuid.NewString()}
	ds = distinct(ds)
	if len(ds) == 0 {
		return l, nil
	}
	expires := time.Now().UTC().Add(LeaseTTL)
	for chunk := range slices.Chunk(ds, batch) {
		rows := make([]blobLease, len(chunk))
		for i, d := range chunk {
			rows[i] = blobLease{LeaseID: l.id, Digest: d, ExpiresAt: expires}
		}
		if _, err := s.db.NewInsert().Model(&rows).Exec(ctx); err != nil {
			l.Release(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	if err := s.awaitDeletions(ctx, ds); err != nil {
		l.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	return l, nil
}

// Release ends the lease. It is safe on a nil Lease and more than once.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	_, err := l.s.db.NewDelete().Model((*blobLease)(nil)).Where("lease_id = ?", l.id).Exec(ctx)
	return err
}

// awaitDeletions waits until no deletion of any of ds is in flight. A
// record older than staleDeletion belongs to a sweep that died and is
// dropped.
func (s *Store) awaitDeletions(ctx context.Context, ds []digest.Digest) error {
	want := make(map[digest.Digest]bool, len(ds))
	for _, d := range ds {
		want[d] = true
	}
	wait := 10 * time.Millisecond
	for {
		// Deletions in flight are few (a batch per sweep running): read
		// them all rather than look up each digest.
		var all []blobDeletion
		if err := s.db.NewSelect().Model(&all).Scan(ctx); err != nil {
			return err
		}
		stale := time.Now().UTC().Add(-staleDeletion)
		live := 0
		for _, b := range all {
			if !want[b.Digest] {
				continue
			}
			if b.StartedAt.Before(stale) {
				if _, err := s.db.NewDelete().Model((*blobDeletion)(nil)).
					Where("digest = ? AND started_at < ?", b.Digest, stale).Exec(ctx); err != nil {
					return err
				}
				continue
			}
			live++
		}
		if live == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// BlobSweeper is what SweepBlobs needs of blob storage.
type BlobSweeper interface {
	storage.Lister
	storage.Deleter
}

// SweepResult is what SweepBlobs deleted.
type SweepResult struct {
	// Blobs is how many blobs were deleted from storage.
	Blobs int
	// Bytes is how many bytes they held.
	Bytes int64
}

// SweepBlobs deletes from blobs every blob stored before cutoff that no
// blob unit, no row of the view blob_references (staged push blobs) and no
// lease keeps, and returns what it deleted. progress, when not nil, is
// told the running totals after each batch. It is safe beside every
// writer, in any process (see LeaseBlobs), and beside another SweepBlobs.
//
// Blob units whose bytes were never stored (on-demand content, foreign
// layers) are not touched: only bytes are deleted here, and a unit keeps
// its digest's bytes, if any, whatever its flags.
func (s *Store) SweepBlobs(ctx context.Context, blobs BlobSweeper, cutoff time.Time, progress func(SweepResult)) (SweepResult, error) {
	var res SweepResult
	if err := s.dropExpired(ctx); err != nil {
		return res, err
	}
	var candidates []storage.Info
	err := blobs.List(ctx, func(info storage.Info) error {
		if info.ModTime.Before(cutoff) {
			candidates = append(candidates, info)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	sweep := uuid.NewString()
	defer func() {
		// Whatever happened, leave no deletion record of this sweep.
		s.db.NewDelete().Model((*blobDeletion)(nil)).Where("sweep_id = ?", sweep).Exec(context.WithoutCancel(ctx))
	}()
	for chunk := range slices.Chunk(candidates, sweepBatch) {
		n, bytes, err := s.sweepBatch(ctx, blobs, sweep, chunk)
		res.Blobs += n
		res.Bytes += bytes
		if err != nil {
			return res, err
		}
		if progress != nil && n > 0 {
			progress(res)
		}
	}
	return res, nil
}

// dropExpired deletes expired leases and deletion records of dead sweeps.
func (s *Store) dropExpired(ctx context.Context) error {
	now := time.Now().UTC()
	if _, err := s.db.NewDelete().Model((*blobLease)(nil)).Where("expires_at < ?", now).Exec(ctx); err != nil {
		return err
	}
	_, err := s.db.NewDelete().Model((*blobDeletion)(nil)).Where("started_at < ?", now.Add(-staleDeletion)).Exec(ctx)
	return err
}

// sweepBatch deletes the blobs of infos nothing keeps: record them as
// being deleted, check again, delete, drop the records.
func (s *Store) sweepBatch(ctx context.Context, blobs BlobSweeper, sweep string, infos []storage.Info) (int, int64, error) {
	sizes := make(map[digest.Digest]int64, len(infos))
	ds := make([]digest.Digest, len(infos))
	for i, info := range infos {
		sizes[info.Digest] = info.Size
		ds[i] = info.Digest
	}
	free, err := s.unkept(ctx, ds)
	if err != nil || len(free) == 0 {
		return 0, 0, err
	}
	now := time.Now().UTC()
	rows := make([]blobDeletion, len(free))
	for i, d := range free {
		rows[i] = blobDeletion{Digest: d, SweepID: sweep, StartedAt: now}
	}
	if _, err := s.db.NewInsert().Model(&rows).On("CONFLICT (digest) DO NOTHING").Exec(ctx); err != nil {
		return 0, 0, err
	}
	defer s.db.NewDelete().Model((*blobDeletion)(nil)).Where("sweep_id = ? AND digest IN (?)", sweep, bun.In(free)).
		Exec(context.WithoutCancel(ctx))
	var mine []digest.Digest
	if err := s.db.NewSelect().Model((*blobDeletion)(nil)).Column("digest").
		Where("sweep_id = ? AND digest IN (?)", sweep, bun.In(free)).Scan(ctx, &mine); err != nil {
		return 0, 0, err
	}
	// Recorded: from now on a writer waits. Check again, for a writer that
	// leased or referenced a blob before the record.
	if free, err = s.unkept(ctx, mine); err != nil {
		return 0, 0, err
	}
	var n atomic.Int64
	var mu sync.Mutex
	var bytes int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepConcurrency)
	for _, d := range free {
		g.Go(func() error {
			err := blobs.Delete(gctx, d)
			if errors.Is(err, errdef.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			n.Add(1)
			mu.Lock()
			bytes += sizes[d]
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	return int(n.Load()), bytes, err
}

// unkept returns the digests of ds that no blob unit, blob reference or
// live lease keeps.
func (s *Store) unkept(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	kept := map[digest.Digest]bool{}
	now := time.Now().UTC()
	queries := []*bun.SelectQuery{
		s.db.NewSelect().Table("contents").Column("digest").Where("type = ? AND digest IN (?)", content.TypeBlob, bun.In(ds)),
		s.db.NewSelect().Table("blob_references").Column("digest").Where("digest IN (?)", bun.In(ds)),
		s.db.NewSelect().Table("blob_leases").Column("digest").Where("digest IN (?) AND expires_at > ?", bun.In(ds), now),
	}
	for _, q := range queries {
		var got []digest.Digest
		if err := q.Scan(ctx, &got); err != nil {
			return nil, err
		}
		for _, d := range got {
			kept[d] = true
		}
	}
	var out []digest.Digest
	for _, d := range ds {
		if !kept[d] {
			out = append(out, d)
		}
	}
	return out, nil
}
