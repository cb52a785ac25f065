package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// On-demand content.
//
// A blob unit records a blob's digest, size and media type, and blob
// storage holds its bytes. A blob unit with OnDemand set is recorded
// without its bytes: storage does not hold them, and they are fetched from
// an upstream when a client pulls the blob (a remote's on_demand and
// streamed policies, pull-through caches). Where from is said by the
// unit's remote artifacts, Pulp's RemoteArtifact: rows (unit, repository,
// remote) saying that the remote can fetch the unit for the repository,
// because a sync of the remote into the repository, or a pull-through
// cache, recorded it there. Remote artifacts are recorded for every synced
// blob, stored or not, so that stored bytes can be given back (Reclaim) and
// fetched again.
//
// What this means for whoever cleans up:
//   - an on-demand unit is content like any other: it is in the versions
//     that hold it, and its missing bytes are not a fault to repair;
//   - deleting a unit deletes its remote artifacts (ON DELETE CASCADE),
//     and deleting a repository deletes those recorded for it;
//   - bytes in storage with no unit are orphans; bytes of a unit flagged
//     on-demand may exist (a push stored them since) and belong to it.
//
// OnDemand is cleared only after the bytes are stored (MarkStored) and set
// before they are deleted (Reclaim), so a unit that says it is stored is.

// RemoteArtifact says that remote RemoteID can fetch content unit
// ContentID for repository RepositoryID.
type RemoteArtifact struct {
	bun.BaseModel `bun:"table:remote_artifacts"`

	ContentID    int64     `bun:"content_id,pk"`
	RepositoryID string    `bun:"repository_id,pk"`
	RemoteID     string    `bun:"remote_id,pk"`
	CreatedAt    time.Time `bun:"created_at"`
}

// PutOnDemandBlobs records blob units whose bytes are not stored, and
// returns them, stored, in the order given. New units are on-demand; units
// already stored are returned as they are (their bytes may well be
// stored). Foreign layers are recorded as by PutBlobs: they are never
// fetched.
func (s *Store) PutOnDemandBlobs(ctx context.Context, blobs []content.Blob) ([]Content, error) {
	units := make([]Content, len(blobs))
	for i, b := range blobs {
		if err := b.Digest.Validate(); err != nil {
			return nil, errdef.New(errdef.ErrInvalid, "blob digest %q: %v", b.Digest, err)
		}
		if b.Size < 0 && !b.Foreign {
			return nil, errdef.New(errdef.ErrInvalid, "on-demand blob %s has no known size", b.Digest)
		}
		units[i] = Content{Type: content.TypeBlob, Digest: b.Digest, MediaType: b.MediaType, Size: b.Size,
			Foreign: b.Foreign, URLs: b.URLs, OnDemand: !b.Foreign}
	}
	out, err := s.putUnits(ctx, units)
	if err == nil {
		s.analyzeAfter(ctx, "contents", len(out))
	}
	return out, err
}

// MarkStored clears OnDemand on the blob units of ds, whose bytes the
// caller has just stored.
func (s *Store) MarkStored(ctx context.Context, ds []digest.Digest) error {
	for chunk := range slices.Chunk(distinct(ds), batch) {
		_, err := s.db.NewUpdate().Model((*Content)(nil)).Set("on_demand = ?", false).
			Where("type = ? AND name = '' AND digest IN (?) AND on_demand = ?", content.TypeBlob, bun.In(chunk), true).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("mark blobs stored: %w", err)
		}
	}
	return nil
}

// AddRemoteArtifacts records that remote remoteID can fetch units ids for
// repository repoID. Rows already recorded are kept.
func (s *Store) AddRemoteArtifacts(ctx context.Context, repoID, remoteID string, ids []int64) error {
	if repoID == "" || remoteID == "" {
		return errdef.New(errdef.ErrInvalid, "a remote artifact needs a repository and a remote")
	}
	now := time.Now().UTC()
	for chunk := range slices.Chunk(ids, batch) {
		rows := make([]RemoteArtifact, len(chunk))
		for i, id := range chunk {
			rows[i] = RemoteArtifact{ContentID: id, RepositoryID: repoID, RemoteID: remoteID, CreatedAt: now}
		}
		if _, err := s.db.NewInsert().Model(&rows).On("CONFLICT (content_id, repository_id, remote_id) DO NOTHING").Exec(ctx); err != nil {
			return fmt.Errorf("record remote artifacts: %w", err)
		}
	}
	return nil
}

// BlobSource is a remote that can fetch a blob.
type BlobSource struct {
	RemoteID string `bun:"remote_id"`
	// Own is set when the remote recorded the blob for the repository
	// asked about; otherwise it recorded it for another repository.
	Own bool `bun:"own"`
}

// Sources returns the remotes that can fetch blob d, those that recorded
// it for repository repoID first, each once, oldest first.
func (s *Store) Sources(ctx context.Context, repoID string, d digest.Digest) ([]BlobSource, error) {
	var rows []struct {
		RemoteID     string    `bun:"remote_id"`
		RepositoryID string    `bun:"repository_id"`
		CreatedAt    time.Time `bun:"created_at"`
	}
	err := s.db.NewSelect().TableExpr("remote_artifacts AS ra").
		Join("JOIN contents AS c ON c.id = ra.content_id").
		ColumnExpr("ra.remote_id, ra.repository_id, ra.created_at").
		Where("c.type = ? AND c.digest = ? AND c.name = ''", content.TypeBlob, d).
		OrderExpr("ra.created_at, ra.remote_id").
		Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	var own, other []BlobSource
	seen := map[string]bool{}
	for _, r := range rows {
		if r.RepositoryID == repoID && !seen[r.RemoteID] {
			seen[r.RemoteID] = true
			own = append(own, BlobSource{RemoteID: r.RemoteID, Own: true})
		}
	}
	for _, r := range rows {
		if !seen[r.RemoteID] {
			seen[r.RemoteID] = true
			other = append(other, BlobSource{RemoteID: r.RemoteID})
		}
	}
	return append(own, other...), nil
}

// NeedingRemote returns the names, sorted, of the repositories holding
// (in any version) on-demand content that remote remoteID alone can fetch
// for them: what deleting the remote would break.
func (s *Store) NeedingRemote(ctx context.Context, remoteID string) ([]string, error) {
	names := []string{}
	err := s.db.NewSelect().TableExpr("remote_artifacts AS ra").
		Join("JOIN contents AS c ON c.id = ra.content_id").
		Join("JOIN repositories AS r ON r.id = ra.repository_id").
		ColumnExpr("DISTINCT r.name").
		Where("ra.remote_id = ? AND c.on_demand = ?", remoteID, true).
		Where("EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.repository_id = ra.repository_id AND rc.content_id = ra.content_id)").
		Where("NOT EXISTS (SELECT 1 FROM remote_artifacts AS o WHERE o.content_id = ra.content_id AND o.repository_id = ra.repository_id AND o.remote_id <> ra.remote_id)").
		OrderExpr("r.name").
		Scan(ctx, &names)
	return names, err
}

// DeleteRemoteArtifacts forgets what remote remoteID can fetch, as its
// deletion does.
func (s *Store) DeleteRemoteArtifacts(ctx context.Context, remoteID string) error {
	_, err := s.db.NewDelete().Model((*RemoteArtifact)(nil)).Where("remote_id = ?", remoteID).Exec(ctx)
	return err
}

// ReclaimResult counts what Reclaim gave back.
type ReclaimResult struct {
	// Blobs is how many blobs lost their stored bytes; Bytes their size.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// Reclaimable returns the stored blob units, in id order, that some
// version of the repositories repoIDs holds and that can be fetched again:
// every repository holding one, in any version, has a remote artifact for
// it. Units that a version of keep holds are left out. At most limit units
// after id after are returned (limit <= 0: 1000), for paging.
func (s *Store) Reclaimable(ctx context.Context, repoIDs []string, keep []VersionRef, after int64, limit int) ([]Content, error) {
	if len(repoIDs) == 0 {
		return []Content{}, nil
	}
	if limit <= 0 {
		limit = MaxLimit
	}
	units := []Content{}
	q := s.db.NewSelect().Model(&units).ExcludeColumn("raw").
		Where("content.id > ? AND content.type = ? AND content.on_demand = ? AND content.foreign_layer = ?", after, content.TypeBlob, false, false).
		Where("content.id IN (SELECT rc.content_id FROM repository_contents AS rc WHERE rc.repository_id IN (?))", bun.In(repoIDs)).
		Where("EXISTS (SELECT 1 FROM remote_artifacts AS ra WHERE ra.content_id = content.id)").
		Where(`NOT EXISTS (SELECT 1 FROM repository_contents AS h WHERE h.content_id = content.id
			AND NOT EXISTS (SELECT 1 FROM remote_artifacts AS ra2 WHERE ra2.content_id = h.content_id AND ra2.repository_id = h.repository_id))`)
	for _, k := range keep {
		q = q.Where("NOT EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.content_id = content.id AND rc.repository_id = ? AND "+rcPresentIn+")",
			k.RepositoryID, k.Number, k.Number)
	}
	if err := q.Order("content.id").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, err
	}
	return units, nil
}

// Reclaim gives back the stored bytes of units, blobs that can be fetched
// again: each is flagged on-demand, then its bytes are deleted from blobs.
// Versions do not change; the next pull fetches the bytes again. Units
// already on-demand are skipped, and so are those a writer leases or a
// push staged (see LeaseBlobs): bytes are deleted in the committed steps
// orphan cleanup takes (record the deletion, check, delete, drop the
// record), so no writer relies on bytes being deleted. Bytes already gone
// count as given back. The Store must not be inside a transaction.
func (s *Store) Reclaim(ctx context.Context, blobs storage.Deleter, units []Content) (ReclaimResult, error) {
	var res ReclaimResult
	if _, ok := s.db.(bun.Tx); ok {
		return res, errors.New("repository: Reclaim inside a transaction")
	}
	sweep := uuid.NewString()
	defer func() {
		// Whatever happened, leave no deletion record behind.
		s.db.NewDelete().Model((*blobDeletion)(nil)).Where("sweep_id = ?", sweep).Exec(context.WithoutCancel(ctx))
	}()
	for chunk := range slices.Chunk(units, batch) {
		n, bytes, err := s.reclaimChunk(ctx, blobs, sweep, chunk)
		res.Blobs += n
		res.Bytes += bytes
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// reclaimChunk reclaims the bytes of units: record their deletion, flag
// those no lease or staged push keeps, delete their bytes, drop the
// records.
func (s *Store) reclaimChunk(ctx context.Context, blobs storage.Deleter, sweep string, units []Content) (int, int64, error) {
	ids := make([]int64, len(units))
	byID := make(map[int64]Content, len(units))
	rows := make([]blobDeletion, 0, len(units))
	now := time.Now().UTC()
	for i, u := range units {
		if u.Type != content.TypeBlob || u.Foreign {
			return 0, 0, errdef.New(errdef.ErrInvalid, "content %s is not a blob whose bytes can be reclaimed", u.Digest)
		}
		ids[i] = u.ID
		byID[u.ID] = u
		rows = append(rows, blobDeletion{Digest: u.Digest, SweepID: sweep, StartedAt: now})
	}
	if _, err := s.db.NewInsert().Model(&rows).On("CONFLICT (digest) DO NOTHING").Exec(ctx); err != nil {
		return 0, 0, err
	}
	ds := make([]digest.Digest, len(units))
	for i, u := range units {
		ds[i] = u.Digest
	}
	defer s.db.NewDelete().Model((*blobDeletion)(nil)).Where("sweep_id = ? AND digest IN (?)", sweep, bun.In(ds)).
		Exec(context.WithoutCancel(ctx))
	// Recorded: from now on a writer waits. Flag what no writer leased or
	// staged before the record; a digest another deletion holds is left.
	var flagged []int64
	err := s.db.NewUpdate().Table("contents").Set("on_demand = ?", true).
		Where("contents.id IN (?) AND contents.on_demand = ?", bun.In(ids), false).
		Where("contents.digest IN (SELECT b.digest FROM blob_deletions AS b WHERE b.sweep_id = ?)", sweep).
		Where("NOT EXISTS (SELECT 1 FROM blob_leases AS l WHERE l.digest = contents.digest AND l.expires_at > ?)", now).
		Where("NOT EXISTS (SELECT 1 FROM blob_references AS r WHERE r.digest = contents.digest)").
		Returning("id").Scan(ctx, &flagged)
	if err != nil {
		return 0, 0, fmt.Errorf("flag blobs on-demand: %w", err)
	}
	var n int
	var bytes int64
	for _, id := range flagged {
		u := byID[id]
		if err := blobs.Delete(ctx, u.Digest); err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return n, bytes, fmt.Errorf("reclaim blob %s: %w", u.Digest, err)
		}
		n++
		bytes += u.Size
	}
	return n, bytes, nil
}

// ReclaimSpace gives back the stored bytes of every blob that a version of
// the repositories repoIDs holds and that can be fetched again (see
// Reclaimable), but those a version of keep holds: Pulp's reclaim_space.
// Versions do not change.
func (s *Store) ReclaimSpace(ctx context.Context, blobs storage.Deleter, repoIDs []string, keep []VersionRef) (ReclaimResult, error) {
	var total ReclaimResult
	for _, id := range repoIDs {
		if _, err := s.Repository(ctx, id); err != nil {
			return total, err
		}
	}
	after := int64(0)
	for {
		units, err := s.Reclaimable(ctx, repoIDs, keep, after, MaxLimit)
		if err != nil || len(units) == 0 {
			return total, err
		}
		res, err := s.Reclaim(ctx, blobs, units)
		total.Blobs += res.Blobs
		total.Bytes += res.Bytes
		if err != nil {
			return total, err
		}
		after = units[len(units)-1].ID
	}
}
