// Package filesystem is a storage.Driver that keeps blobs as files under a
// root directory:
//
//	<root>/blobs/<algorithm>/<first two hex digits>/<hex>   stored blobs
//	<root>/tmp/                                              puts in progress
//
// A Put writes to a uniquely named file in <root>/tmp, hashing the bytes on
// the way, verifies digest and size, fsyncs the file, renames it into place
// and fsyncs the directory it landed in. Because tmp and blobs share a
// filesystem the rename is atomic: a blob's final path holds either nothing
// or the complete, verified bytes, even across a crash.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// LeftoverAge is how long a file in <root>/tmp must have gone unwritten
// for SweepLeftovers to delete it: a Put writes its temp file as bytes
// arrive, so an hour of silence means its process is gone.
const LeftoverAge = time.Hour

// StaleTempAge is how old a file in <root>/tmp must be for New to delete it.
// Such a file is what is left of a Put interrupted by a crash; the age is
// generous so that New never removes the temp file of a slow Put still
// running in another process that shares the root.
const StaleTempAge = 24 * time.Hour

// Permissions of what the driver creates. Blobs are world-readable so that a
// separate process (a web server, a backup job) may serve or copy them.
const (
	dirPerm  = 0o755
	blobPerm = 0o644
)

// algorithms are the digest algorithms the driver stores, each under its own
// directory.
var algorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

// Driver stores blobs in a local directory tree. It is safe for concurrent
// use, also by several processes sharing the same root.
type Driver struct {
	blobs string
	tmp   string
}

var (
	_ storage.Driver          = (*Driver)(nil)
	_ storage.LeftoverSweeper = (*Driver)(nil)
)

// New returns a Driver rooted at root, creating the directories it needs, and
// deletes files in <root>/tmp older than StaleTempAge.
func New(root string) (*Driver, error) {
	root = filepath.Clean(root)
	d := &Driver{
		blobs: filepath.Join(root, "blobs"),
		tmp:   filepath.Join(root, "tmp"),
	}
	dirs := []string{d.tmp}
	for _, alg := range algorithms {
		dirs = append(dirs, filepath.Join(d.blobs, string(alg)))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return nil, fmt.Errorf("storage/filesystem: %w", err)
		}
	}
	if err := d.removeStaleTemp(time.Now().Add(-StaleTempAge)); err != nil {
		return nil, fmt.Errorf("storage/filesystem: cleaning %s: %w", d.tmp, err)
	}
	return d, nil
}

// SweepLeftovers deletes the temp files of Puts that have written nothing
// for LeftoverAge (storage.LeftoverSweeper).
func (d *Driver) SweepLeftovers(ctx context.Context) (int, error) {
	n := 0
	err := d.removeStale(time.Now().Add(-LeftoverAge), &n)
	return n, err
}

// removeStaleTemp deletes the files in the temp directory last modified
// before cutoff.
func (d *Driver) removeStaleTemp(cutoff time.Time) error { return d.removeStale(cutoff, new(int)) }

func (d *Driver) removeStale(cutoff time.Time, n *int) error {
	entries, err := os.ReadDir(d.tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // Renamed into place or cleaned by someone else meanwhile.
		}
		if err != nil {
			return err
		}
		if !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.tmp, e.Name())); err != nil {
			return err
		}
		*n++
	}
	return nil
}

// path returns the final path of blob dgst, which must be valid.
func (d *Driver) path(dgst digest.Digest) string {
	hex := dgst.Encoded()
	return filepath.Join(d.blobs, string(dgst.Algorithm()), hex[:2], hex)
}

// Stat describes blob dgst.
func (d *Driver) Stat(ctx context.Context, dgst digest.Digest) (storage.Info, error) {
	if err := check(ctx, dgst); err != nil {
		return storage.Info{}, opError("stat", dgst, err)
	}
	fi, err := os.Stat(d.path(dgst))
	if err != nil {
		return storage.Info{}, opError("stat", dgst, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.Info{}, opError("stat", dgst, errdef.ErrNotFound)
	}
	return storage.Info{Digest: dgst, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open returns blob dgst as an *os.File, which http.ServeContent can send
// with sendfile.
func (d *Driver) Open(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, error) {
	if err := check(ctx, dgst); err != nil {
		return nil, opError("open", dgst, err)
	}
	f, err := os.Open(d.path(dgst))
	if err != nil {
		return nil, opError("open", dgst, err)
	}
	return f, nil
}

// Put stores the bytes of r as blob dgst; see storage.Putter. If the blob is
// already stored it returns nil without reading r.
//
// Concurrent Puts of one digest each write their own temp file; every rename
// installs identical, verified bytes, so whichever lands last wins harmlessly
// and a reader that opened the blob keeps its file.
func (d *Driver) Put(ctx context.Context, dgst digest.Digest, size int64, r io.Reader) error {
	if err := check(ctx, dgst); err != nil {
		return opError("put", dgst, err)
	}
	final := d.path(dgst)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	if err := d.put(ctx, dgst, size, r, final); err != nil {
		// Not opError: a missing file here is a broken root, not a missing blob.
		return &storage.Error{Op: "put", Digest: dgst, Err: err}
	}
	return nil
}

func (d *Driver) put(ctx context.Context, dgst digest.Digest, size int64, r io.Reader, final string) (err error) {
	v, err := storage.NewVerifier(dgst, size)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d.tmp, string(dgst.Algorithm())+"-"+dgst.Encoded()+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// The verifier comes first so that it refuses an over-long chunk before
	// the file sees it.
	if _, err := storage.Copy(ctx, io.MultiWriter(v, f), r); err != nil {
		return err
	}
	if err := v.Verify(); err != nil {
		return err
	}
	if err := f.Chmod(blobPerm); err != nil {
		return err
	}
	return install(ctx, f, final)
}

// install moves f, a verified blob file under the root, into place at
// final: it fsyncs and closes f, creates final's prefix directory if need
// be, renames f to final and fsyncs the directory. Put and CommitUpload
// both end here; each verifies the bytes first in its own way, as one
// writes them and the other reads them back.
func install(ctx context.Context, f *os.File, final string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir := filepath.Dir(final)
	if err := ensureDir(dir); err != nil {
		return err
	}
	// Last chance to honour a cancellation: after the rename the blob is
	// visible and the Put or commit has happened.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return err
	}
	// Without this the rename may be lost in a crash. The blob is in place
	// and verified by now, so a failure here is reported but not undone.
	return syncDir(dir)
}

// Delete removes blob dgst. The directory is not fsynced: should a crash undo
// the removal, the blob is still intact and the next Delete removes it.
func (d *Driver) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := check(ctx, dgst); err != nil {
		return opError("delete", dgst, err)
	}
	if err := os.Remove(d.path(dgst)); err != nil {
		return opError("delete", dgst, err)
	}
	return nil
}

// List calls fn for every stored blob, by algorithm and then by hex, skipping
// anything under <root>/blobs that is not a well-named blob file.
func (d *Driver) List(ctx context.Context, fn func(storage.Info) error) error {
	for _, alg := range algorithms {
		algDir := filepath.Join(d.blobs, string(alg))
		prefixes, err := readDir(algDir)
		if err != nil {
			return opError("list", "", err)
		}
		for _, p := range prefixes {
			if !p.IsDir() || len(p.Name()) != 2 || !isHex(p.Name()) {
				continue
			}
			files, err := readDir(filepath.Join(algDir, p.Name()))
			if err != nil {
				return opError("list", "", err)
			}
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					return opError("list", "", err)
				}
				dgst := digest.NewDigestFromEncoded(alg, f.Name())
				if !strings.HasPrefix(f.Name(), p.Name()) || storage.ValidateDigest(dgst) != nil || !f.Type().IsRegular() {
					continue
				}
				fi, err := f.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue // Deleted since the directory was read.
				}
				if err != nil {
					return opError("list", dgst, err)
				}
				if err := fn(storage.Info{Digest: dgst, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readDir is os.ReadDir, with a directory removed meanwhile read as empty.
func readDir(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// isHex reports whether s is lower-case hex, as digests are spelled.
func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// check returns ctx's error or the digest's invalidity, if any.
func check(ctx context.Context, dgst digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return storage.ValidateDigest(dgst)
}

// opError wraps err in a *storage.Error, turning "file does not exist" into
// errdef.ErrNotFound so that callers need not know about files.
func opError(op string, dgst digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = errdef.ErrNotFound
	}
	return &storage.Error{Op: op, Digest: dgst, Err: err}
}

// ensureDir creates the blob prefix directory dir if needed and, when it
// does, fsyncs the parent so that the new directory entry survives a crash.
func ensureDir(dir string) error {
	err := os.Mkdir(dir, dirPerm)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The algorithm directory New made has gone; put it back.
		return os.MkdirAll(dir, dirPerm)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir fsyncs directory dir, making renames and creations in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
