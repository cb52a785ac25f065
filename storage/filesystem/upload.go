package filesystem

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/storage"
)

var _ storage.Uploader = (*Driver)(nil)

// uploadPath returns <root>/uploads/<id>: an upload in progress is one
// append-only file there, beside tmp and blobs on the same filesystem, so
// that committing it is a rename.
func (d *Driver) uploadPath(id string) string {
	return filepath.Join(filepath.Dir(d.tmp), "uploads", id)
}

// AppendUpload appends r to the file of upload id; see storage.Uploader.
func (d *Driver) AppendUpload(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	if err := uploadCheck(ctx, id); err != nil {
		return 0, err
	}
	p := d.uploadPath(id)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, blobPerm)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(p), dirPerm); err == nil {
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, blobPerm)
		}
	}
	if err != nil {
		return 0, &storage.Error{Op: "append", Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, &storage.Error{Op: "append", Err: err}
	}
	if offset < 0 {
		offset = fi.Size()
	}
	if fi.Size() != offset {
		return fi.Size(), &storage.OffsetError{Size: fi.Size(), Offset: offset}
	}
	n, err := storage.Copy(ctx, f, r)
	if err != nil {
		return offset + n, &storage.Error{Op: "append", Err: err}
	}
	return offset + n, nil
}

// UploadSize returns the length of upload id's file.
func (d *Driver) UploadSize(ctx context.Context, id string) (int64, error) {
	if err := uploadCheck(ctx, id); err != nil {
		return 0, err
	}
	fi, err := os.Stat(d.uploadPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, &storage.Error{Op: "upload size", Err: err}
	}
	return fi.Size(), nil
}

// CommitUpload hashes upload id's file, and when it is blob dgst of the
// given size fsyncs it and renames it into place: the bytes are read once
// and never copied.
func (d *Driver) CommitUpload(ctx context.Context, id string, dgst digest.Digest, size int64) error {
	if err := uploadCheck(ctx, id); err != nil {
		return err
	}
	if err := check(ctx, dgst); err != nil {
		return opError("commit", dgst, err)
	}
	if err := d.commit(ctx, id, dgst, size); err != nil {
		return &storage.Error{Op: "commit", Digest: dgst, Err: err}
	}
	return nil
}

func (d *Driver) commit(ctx context.Context, id string, dgst digest.Digest, size int64) error {
	p := d.uploadPath(id)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing appended: the upload is the empty blob, if anything.
		if f, err = os.CreateTemp(d.tmp, "upload-"+id+"-*"); err != nil {
			return err
		}
		p = f.Name()
		defer os.Remove(p)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	v, err := storage.NewVerifier(dgst, size)
	if err != nil {
		return err
	}
	if _, err := storage.Copy(ctx, v, f); err != nil {
		return err
	}
	if err := v.Verify(); err != nil {
		return err
	}
	final := d.path(dgst)
	if _, err := os.Stat(final); err == nil {
		return os.Remove(p)
	}
	return install(ctx, f, final)
}

// DeleteUpload removes upload id's file.
func (d *Driver) DeleteUpload(ctx context.Context, id string) error {
	if err := uploadCheck(ctx, id); err != nil {
		return err
	}
	if err := os.Remove(d.uploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &storage.Error{Op: "delete upload", Err: err}
	}
	return nil
}

func uploadCheck(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return storage.ValidateUploadID(id)
}

var _ storage.UploadLister = (*Driver)(nil)

// ListUploads lists the files under <root>/uploads.
func (d *Driver) ListUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	entries, err := readDir(filepath.Dir(d.uploadPath("x")))
	if err != nil {
		return &storage.Error{Op: "list uploads", Err: err}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if storage.ValidateUploadID(e.Name()) != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // committed or deleted meanwhile
		}
		if err := fn(e.Name(), info.ModTime()); err != nil {
			return err
		}
	}
	return nil
}
