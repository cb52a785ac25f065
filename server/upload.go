package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
)

// upload is a blob upload in progress (distribution spec "Pushing a blob
// in chunks"). Its bytes are in the blob store (storage.Uploader), so any
// server process sharing the database and the store can continue it.
type upload struct {
	bun.BaseModel `bun:"table:registry_uploads"`

	ID           string    `bun:"id,pk"`
	RepositoryID string    `bun:"repository_id"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

// DefaultUploadTimeout is how long an upload may go untouched before it is
// discarded, when Options.UploadTimeout is zero.
const DefaultUploadTimeout = time.Hour

func (s *Server) uploader() (storage.Uploader, error) {
	u, ok := s.blobs.(storage.Uploader)
	if !ok {
		return nil, errdef.New(errdef.ErrRegistryUnsupported, "the blob store does not take uploads")
	}
	return u, nil
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a monolithic upload
// with ?digest=, a mount with ?mount= (and ?from=), or a new upload session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePush(r); err != nil {
		return err
	}
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	q := r.URL.Query()
	repo, err := s.pushTarget(ctx, name, true)
	if err != nil {
		return err
	}
	s.maybeSweep()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		ok, err := s.mountable(ctx, d, q.Get("from"))
		if err != nil {
			return err
		}
		if ok {
			info, err := s.blobs.Stat(ctx, d)
			if err != nil {
				return err
			}
			if err := s.addPending(ctx, repo.ID, d, info.Size); err != nil {
				return err
			}
			return blobCreated(w, name, d)
		}
		// Not mountable: an upload session, as the spec says.
	}
	if dq := q.Get("digest"); dq != "" {
		d, err := parseDigest(dq)
		if err != nil {
			return err
		}
		return s.putMonolithic(w, r, name, repo, d)
	}
	if _, err := s.uploader(); err != nil {
		return err
	}
	now := time.Now().UTC()
	up := &upload{ID: uuid.NewString(), RepositoryID: repo.ID, CreatedAt: now, UpdatedAt: now}
	if _, err := s.db.NewInsert().Model(up).Exec(ctx); err != nil {
		return err
	}
	writeUploadHeaders(w, name, up.ID, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// mountable reports whether blob d can be mounted: from the repository
// served at from when given, else from anywhere it was pushed or synced as
// a blob (pull is anonymous, so any such blob is readable anyway).
func (s *Server) mountable(ctx context.Context, d digest.Digest, from string) (bool, error) {
	if from != "" {
		v, err := s.registry.Resolve(ctx, from)
		if err != nil {
			return false, nil
		}
		b, err := s.registry.OpenBlob(ctx, v, d)
		if err != nil {
			return false, nil
		}
		b.Close()
		// A manifest served as a blob is not in storage: not mountable.
		_, err = s.blobs.Stat(ctx, d)
		return err == nil, nil
	}
	if _, err := s.repos.ContentByDigest(ctx, content.TypeBlob, d); err != nil {
		// Not in any version: perhaps pushed and pending somewhere.
		pending, err := s.db.NewSelect().Model((*pendingBlob)(nil)).Where("digest = ?", d).Exists(ctx)
		if err != nil || !pending {
			return false, err
		}
	}
	if _, err := s.blobs.Stat(ctx, d); err != nil {
		return false, nil
	}
	return true, nil
}

// putMonolithic stores the request body as blob d ("POST then PUT" in one
// request) and makes it pending in repo.
func (s *Server) putMonolithic(w http.ResponseWriter, r *http.Request, name string, repo *repository.Repository, d digest.Digest) error {
	ctx := r.Context()
	size := r.ContentLength
	if err := s.blobs.Put(ctx, d, size, r.Body); err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	info, err := s.blobs.Stat(ctx, d)
	if err != nil {
		return err
	}
	if size >= 0 && info.Size != size {
		return fmt.Errorf("%w: blob %s has %d bytes, the request sent %d", errdef.ErrSizeInvalid, d, info.Size, size)
	}
	if err := s.addPending(ctx, repo.ID, d, info.Size); err != nil {
		return err
	}
	return blobCreated(w, name, d)
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) error {
	h := w.Header()
	h.Set("Location", location(name, "blobs", d.String()))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func writeUploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	h.Set("Content-Length", "0")
}

func parseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := storage.ValidateDigest(d); err != nil {
		return "", fmt.Errorf("%w: %v", errdef.ErrDigestInvalid, err)
	}
	return d, nil
}

// findUpload returns the upload named in the request, which must belong to
// the push repository at the request's name.
func (s *Server) findUpload(r *http.Request) (string, *upload, error) {
	if err := s.requirePush(r); err != nil {
		return "", nil, err
	}
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	id := mux.Vars(r)["uuid"]
	unknown := fmt.Errorf("%w: %s", errdef.ErrBlobUploadUnknown, id)
	if storage.ValidateUploadID(id) != nil {
		return "", nil, unknown
	}
	repo, err := s.pushTarget(ctx, name, false)
	if err != nil {
		return "", nil, err
	}
	up := new(upload)
	if err := s.db.NewSelect().Model(up).Where("id = ?", id).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, unknown
		}
		return "", nil, err
	}
	if up.RepositoryID != repo.ID {
		return "", nil, unknown
	}
	return name, up, nil
}

// contentRange parses a Content-Range of a chunk, "<start>-<end>" (the
// spec's form, without a unit) or "bytes <start>-<end>/<total>"; ok is
// false when there is none.
func contentRange(r *http.Request) (start, end int64, ok bool, err error) {
	v := strings.TrimSpace(r.Header.Get("Content-Range"))
	if v == "" {
		return 0, 0, false, nil
	}
	v = strings.TrimPrefix(v, "bytes ")
	v, _, _ = strings.Cut(v, "/")
	a, b, found := strings.Cut(v, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !found || err1 != nil || err2 != nil || start < 0 || end < start-1 {
		return 0, 0, false, fmt.Errorf("%w: Content-Range %q", errdef.ErrBlobUploadInvalid, v)
	}
	return start, end, true, nil
}

// appendChunk appends the request body to the upload: at the
// Content-Range's start when there is one, else at the end.
func (s *Server) appendChunk(w http.ResponseWriter, r *http.Request, name string, up *upload) (int64, error) {
	ctx := r.Context()
	u, err := s.uploader()
	if err != nil {
		return 0, err
	}
	offset := int64(-1)
	start, end, ok, err := contentRange(r)
	if err != nil {
		return 0, err
	}
	if ok {
		offset = start
		if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
			return 0, fmt.Errorf("%w: Content-Range %d-%d is %d bytes, Content-Length is %d", errdef.ErrBlobUploadInvalid, start, end, end-start+1, r.ContentLength)
		}
	}
	size, err := u.AppendUpload(ctx, up.ID, offset, r.Body)
	var oe *storage.OffsetError
	if errors.As(err, &oe) {
		writeUploadHeaders(w, name, up.ID, oe.Size)
		return size, fmt.Errorf("%w: the upload holds %d bytes, the chunk starts at %d", errdef.ErrBlobUploadInvalid, oe.Size, oe.Offset)
	}
	if err != nil {
		return size, err
	}
	_, err = s.db.NewUpdate().Model((*upload)(nil)).Set("updated_at = ?", time.Now().UTC()).Where("id = ?", up.ID).Exec(ctx)
	return size, err
}

// patchUpload answers PATCH: a chunk, or the whole stream.
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request) error {
	name, up, err := s.findUpload(r)
	if err != nil {
		return err
	}
	size, err := s.appendChunk(w, r, name, up)
	if err != nil {
		return err
	}
	writeUploadHeaders(w, name, up.ID, size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// uploadStatus answers GET: how far the upload is.
func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request) error {
	name, up, err := s.findUpload(r)
	if err != nil {
		return err
	}
	u, err := s.uploader()
	if err != nil {
		return err
	}
	size, err := u.UploadSize(r.Context(), up.ID)
	if err != nil {
		return err
	}
	writeUploadHeaders(w, name, up.ID, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// finishUpload answers PUT ?digest=: a last chunk, if any, then the blob is
// verified, stored and pending in the repository.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request) error {
	name, up, err := s.findUpload(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	u, err := s.uploader()
	if err != nil {
		return err
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Range") != "" {
		if _, err := s.appendChunk(w, r, name, up); err != nil {
			return err
		}
	}
	if err := u.CommitUpload(ctx, up.ID, d, -1); err != nil {
		return err
	}
	info, err := s.blobs.Stat(ctx, d)
	if err != nil {
		return err
	}
	if err := s.addPending(ctx, up.RepositoryID, d, info.Size); err != nil {
		return err
	}
	if _, err := s.db.NewDelete().Model(up).WherePK().Exec(ctx); err != nil {
		return err
	}
	return blobCreated(w, name, d)
}

// cancelUpload answers DELETE: the upload and its bytes go.
func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request) error {
	_, up, err := s.findUpload(r)
	if err != nil {
		return err
	}
	if err := s.dropUpload(r.Context(), up.ID); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) dropUpload(ctx context.Context, id string) error {
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
// the store can list them), and returns how many it discarded. The server
// runs it by itself now and then, as uploads start; a program may also
// call it on a timer.
func (s *Server) SweepUploads(ctx context.Context) (int, error) {
	var ids []string
	cutoff := time.Now().UTC().Add(-s.uploadTimeout)
	if err := s.db.NewSelect().Model((*upload)(nil)).Column("id").Where("updated_at < ?", cutoff).
		Limit(1000).Scan(ctx, &ids); err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := s.dropUpload(ctx, id); err != nil {
			return i, err
		}
	}
	n := len(ids)
	// Bytes without bookkeeping: their repository was deleted, or a
	// process stopped between the two steps of a drop.
	l, ok := s.blobs.(storage.UploadLister)
	if !ok {
		return n, nil
	}
	var orphans []string
	err := l.ListUploads(ctx, func(id string, mod time.Time) error {
		if mod.Before(cutoff) {
			orphans = append(orphans, id)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	for start := 0; start < len(orphans); start += 500 {
		chunk := orphans[start:min(start+500, len(orphans))]
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
// (at least every second) until ctx is done. Without it uploads are swept
// only as new ones start.
func (s *Server) RunJanitor(ctx context.Context) {
	t := time.NewTicker(max(s.uploadTimeout/10, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.lastSweep.Store(time.Now().UnixNano())
			if n, err := s.SweepUploads(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sweeping abandoned uploads", "err", err)
			} else if n > 0 {
				s.log.Info("discarded abandoned uploads", "count", n)
			}
		}
	}
}

// maybeSweep starts a sweep in the background when none ran for a tenth of
// the upload timeout.
func (s *Server) maybeSweep() {
	now := time.Now().UnixNano()
	last := s.lastSweep.Load()
	if now-last < int64(s.uploadTimeout/10) || !s.lastSweep.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if n, err := s.SweepUploads(ctx); err != nil {
			s.log.Warn("sweeping abandoned uploads", "err", err)
		} else if n > 0 {
			s.log.Info("discarded abandoned uploads", "count", n)
		}
	}()
}
