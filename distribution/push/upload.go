package push

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// upload is a blob upload in progress (distribution spec "Pushing a blob
// in chunks"). Its bytes are in the blob store (storage.Uploader), so any
// process sharing the database and the store can continue it.
type upload struct {
	bun.BaseModel `bun:"table:registry_uploads"`

	ID           string    `bun:"id,pk"`
	RepositoryID string    `bun:"repository_id"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

func (s *Service) uploader() (storage.Uploader, error) {
	u, ok := s.blobs.(storage.Uploader)
	if !ok {
		return nil, errdef.New(errdef.ErrRegistryUnsupported, "the blob store does not take uploads")
	}
	return u, nil
}

// StartUpload begins a resumable upload to the push repository at name
// (created by this first push) and returns its id.
func (s *Service) StartUpload(ctx context.Context, name string) (string, error) {
	repo, err := s.Target(ctx, name, true)
	if err != nil {
		return "", err
	}
	if _, err := s.uploader(); err != nil {
		return "", err
	}
	if err := s.checkQuota(ctx, name, 0); err != nil {
		return "", err
	}
	s.maybeSweep()
	now := time.Now().UTC()
	up := &upload{ID: uuid.NewString(), RepositoryID: repo.ID, CreatedAt: now, UpdatedAt: now}
	if _, err := s.db.NewInsert().Model(up).Exec(ctx); err != nil {
		return "", err
	}
	return up.ID, nil
}

// findUpload returns upload id, which must belong to the push repository
// at name; anything else is errdef.ErrBlobUploadUnknown.
func (s *Service) findUpload(ctx context.Context, name, id string) (*upload, error) {
	unknown := errdef.New(errdef.ErrBlobUploadUnknown, "%s", id)
	if storage.ValidateUploadID(id) != nil {
		return nil, unknown
	}
	repo, err := s.Target(ctx, name, false)
	if err != nil {
		return nil, err
	}
	up := new(upload)
	if err := s.db.NewSelect().Model(up).Where("id = ?", id).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, unknown
		}
		return nil, err
	}
	if up.RepositoryID != repo.ID {
		return nil, unknown
	}
	return up, nil
}

// openUpload is findUpload with the store that holds its bytes.
func (s *Service) openUpload(ctx context.Context, name, id string) (*upload, storage.Uploader, error) {
	up, err := s.findUpload(ctx, name, id)
	if err != nil {
		return nil, nil, err
	}
	u, err := s.uploader()
	return up, u, err
}

// AppendUpload appends r to upload id of the push repository at name, at
// offset (-1: at the end), and returns the upload's size. An offset other
// than the size is a *storage.OffsetError wrapping
// errdef.ErrBlobUploadInvalid.
func (s *Service) AppendUpload(ctx context.Context, name, id string, offset int64, r io.Reader) (int64, error) {
	up, u, err := s.openUpload(ctx, name, id)
	if err != nil {
		return 0, err
	}
	have := offset
	if have < 0 {
		if have, err = u.UploadSize(ctx, up.ID); err != nil {
			return 0, err
		}
	}
	if err := s.checkSize(have); err != nil {
		return have, err
	}
	if err := s.checkQuota(ctx, name, have); err != nil {
		return have, err
	}
	stop := s.keepAlive(ctx, up.ID)
	size, err := u.AppendUpload(ctx, up.ID, offset, s.capped(r, have))
	stop()
	if err != nil {
		return size, err
	}
	return size, s.touch(ctx, up.ID)
}

// touch records activity on upload id, so that SweepUploads leaves it.
func (s *Service) touch(ctx context.Context, id string) error {
	_, err := s.db.NewUpdate().Model((*upload)(nil)).Set("updated_at = ?", time.Now().UTC()).Where("id = ?", id).Exec(ctx)
	return err
}

// keepAlive touches upload id every quarter of the upload timeout while
// an append streams into it, so that a single long PATCH is never taken
// for abandoned, by this process's sweeps or any other's. The returned
// func stops it.
func (s *Service) keepAlive(ctx context.Context, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(s.opts.UploadTimeout/4, 5*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.touch(ctx, id); err != nil && ctx.Err() == nil {
					s.opts.Logger.Warn("recording upload activity", "upload", id, "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// UploadSize returns how many bytes upload id of the push repository at
// name holds.
func (s *Service) UploadSize(ctx context.Context, name, id string) (int64, error) {
	up, u, err := s.openUpload(ctx, name, id)
	if err != nil {
		return 0, err
	}
	return u.UploadSize(ctx, up.ID)
}

// FinishUpload verifies the bytes of upload id against d, stores them as
// blob d and stages it in the push repository at name. On a digest
// mismatch nothing becomes visible and the upload is kept.
func (s *Service) FinishUpload(ctx context.Context, name, id string, d digest.Digest) error {
	if err := validDigest(d); err != nil {
		return err
	}
	up, u, err := s.openUpload(ctx, name, id)
	if err != nil {
		return err
	}
	release, err := s.lease(ctx, d)
	if err != nil {
		return err
	}
	defer release()
	if err := u.CommitUpload(ctx, up.ID, d, -1); err != nil {
		return err
	}
	info, err := s.blobs.Stat(ctx, d)
	if err != nil {
		return err
	}
	if err := s.stage(ctx, up.RepositoryID, d, info.Size); err != nil {
		return err
	}
	_, err = s.db.NewDelete().Model(up).WherePK().Exec(ctx)
	return err
}

// CancelUpload discards upload id of the push repository at name with its
// bytes.
func (s *Service) CancelUpload(ctx context.Context, name, id string) error {
	up, err := s.findUpload(ctx, name, id)
	if err != nil {
		return err
	}
	return s.dropUpload(ctx, up.ID)
}

func (s *Service) dropUpload(ctx context.Context, id string) error {
	if u, ok := s.blobs.(storage.Uploader); ok {
		if err := u.DeleteUpload(ctx, id); err != nil {
			return err
		}
	}
	_, err := s.db.NewDelete().Model((*upload)(nil)).Where("id = ?", id).Exec(ctx)
	return err
}

// SweepUploads discards the uploads untouched for longer than the upload
// timeout, with their bytes, and bytes of uploads no longer recorded (when
// the store can list them), and returns how many it discarded. Uploads are
// swept now and then as new ones start; RunJanitor sweeps on a timer.
func (s *Service) SweepUploads(ctx context.Context) (int, error) {
	var ids []string
	cutoff := time.Now().UTC().Add(-s.opts.UploadTimeout)
	if err := s.db.NewSelect().Model((*upload)(nil)).Column("id").Where("updated_at < ?", cutoff).
		Limit(1000).Scan(ctx, &ids); err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := s.dropUpload(ctx, id); err != nil {
			return i, err
		}
	}
	n, err := s.sweepUnrecorded(ctx, cutoff)
	return len(ids) + n, err
}

// sweepUnrecorded deletes upload bytes older than cutoff that no upload
// row records: their repository was deleted, or a process stopped between
// the two steps of a drop.
func (s *Service) sweepUnrecorded(ctx context.Context, cutoff time.Time) (int, error) {
	l, ok := s.blobs.(storage.UploadLister)
	if !ok {
		return 0, nil
	}
	var orphans []string
	err := l.ListUploads(ctx, func(id string, mod time.Time) error {
		if mod.Before(cutoff) {
			orphans = append(orphans, id)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for chunk := range slices.Chunk(orphans, 500) {
		var known []string
		if err := s.db.NewSelect().Model((*upload)(nil)).Column("id").Where("id IN (?)", bun.In(chunk)).Scan(ctx, &known); err != nil {
			return n, err
		}
		for _, id := range chunk {
			if !slices.Contains(known, id) {
				if err := s.blobs.(storage.Uploader).DeleteUpload(ctx, id); err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}

// RunJanitor sweeps abandoned uploads every tenth of the upload timeout
// (at least every second) until ctx is done.
func (s *Service) RunJanitor(ctx context.Context) {
	t := time.NewTicker(max(s.opts.UploadTimeout/10, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.lastSweep.Store(time.Now().UnixNano())
			s.sweep(ctx)
		}
	}
}

// maybeSweep starts a sweep in the background when none ran for a tenth of
// the upload timeout.
func (s *Service) maybeSweep() {
	now := time.Now().UnixNano()
	last := s.lastSweep.Load()
	if now-last < int64(s.opts.UploadTimeout/10) || !s.lastSweep.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.sweep(ctx)
	}()
}

func (s *Service) sweep(ctx context.Context) {
	if ls, ok := s.blobs.(storage.LeftoverSweeper); ok {
		if n, err := ls.SweepLeftovers(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("sweeping storage leftovers", "err", err)
		} else if n > 0 {
			s.opts.Logger.Info("deleted storage leftovers", "count", n)
		}
	}
	if n, err := s.SweepUploads(ctx); err != nil && ctx.Err() == nil {
		s.opts.Logger.Warn("sweeping abandoned uploads", "err", err)
	} else if n > 0 {
		s.opts.Logger.Info("discarded abandoned uploads", "count", n)
	}
}
