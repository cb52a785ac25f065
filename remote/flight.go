package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// flight is one download of a blob from an upstream, shared by every
// client reading it: the bytes go to an unlinked temporary file, which the
// clients read at their own pace (ReadAt), waiting on cond for more.
type flight struct {
	f    *Fetcher
	key  flightKey
	r    *Remote
	desc content.Blob
	file *os.File
	// cancel stops the download, when the last client leaves early.
	cancel context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond
	written int64 // bytes in file so far
	started bool  // the upstream answered with the blob
	done    bool  // the download is over: verified, or err is set
	err     error
	readers int
	aborted bool // the last reader left before done
	// noRange is set once the upstream refused a Range request: resumed
	// downloads then skip what was received.
	noRange bool
	// refs counts the readers and, until it is through storing, the
	// download itself; the file is closed when it drops to zero.
	refs int
}

// errFlightAborted ends a download nobody reads any more.
var errFlightAborted = errors.New("every client left")

// join returns the download of desc through r in flight, or starts one;
// the caller is one of its readers until it calls leave.
func (f *Fetcher) join(r *Remote, desc content.Blob) (*flight, error) {
	u, err := f.client(r)
	if err != nil {
		return nil, err
	}
	key := flightKey{r.fingerprint(), desc.Digest}
	f.mu.Lock()
	if fl := f.flights[key]; fl != nil {
		fl.mu.Lock()
		if !fl.aborted {
			fl.readers++
			fl.refs++
			fl.mu.Unlock()
			f.mu.Unlock()
			return fl, nil
		}
		fl.mu.Unlock()
	}
	f.mu.Unlock()
	file, err := tempFile(f.opts.TempDir)
	if err != nil {
		return nil, fmt.Errorf("spool blob %s: %w", desc.Digest, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	fl := &flight{f: f, key: key, r: r, desc: desc, file: file, cancel: func() { cancel(errFlightAborted) }, readers: 1, refs: 2}
	fl.cond = sync.NewCond(&fl.mu)
	f.mu.Lock()
	if other := f.flights[key]; other != nil {
		other.mu.Lock()
		if !other.aborted {
			// Another request started it meanwhile: join that one.
			other.readers++
			other.refs++
			other.mu.Unlock()
			f.mu.Unlock()
			file.Close()
			cancel(nil)
			return other, nil
		}
		other.mu.Unlock()
	}
	f.flights[key] = fl
	f.mu.Unlock()
	go fl.run(ctx, u)
	return fl, nil
}

// forget takes the flight out of the table, so that the next request
// starts afresh (or reads what was stored).
func (f *Fetcher) forget(fl *flight) {
	f.mu.Lock()
	if f.flights[fl.key] == fl {
		delete(f.flights, fl.key)
	}
	f.mu.Unlock()
}

// run downloads, then stores when the remote's policy says so.
func (fl *flight) run(ctx context.Context, u *upstream) {
	defer fl.release()
	start := time.Now()
	if err := fl.download(ctx, u); err != nil {
		fl.fail(ctx, err)
		return
	}
	fl.mu.Lock()
	fl.done = true
	fl.cond.Broadcast()
	fl.mu.Unlock()
	log := fl.f.log.With("digest", fl.desc.Digest, "size", fl.desc.Size, "remote", fl.r)
	if fl.r.Policy.Stores() {
		fl.store(log)
	}
	fl.f.forget(fl)
	fl.f.warmedUp(fl.key)
	log.Info("fetched blob on demand", "stored", fl.r.Policy.Stores(), "duration", time.Since(start))
}

// store puts the verified bytes into blob storage and marks the unit
// stored. Whoever left meanwhile, the bytes are kept: the download is
// whole.
func (fl *flight) store(log interface{ Warn(string, ...any) }) {
	ctx := context.Background()
	d := fl.desc.Digest
	if err := fl.f.blobs.Put(ctx, d, fl.desc.Size, io.NewSectionReader(fl.file, 0, fl.desc.Size)); err != nil {
		log.Warn("storing a blob fetched on demand failed; the next pull fetches it again", "err", err)
		return
	}
	if err := fl.f.repos.MarkStored(ctx, []digest.Digest{d}); err != nil {
		log.Warn("marking a blob fetched on demand stored failed", "err", err)
		return
	}
	if fl.f.opts.OnStored != nil {
		fl.f.opts.OnStored(d, fl.desc.Size)
	}
}

// fail ends the download with err for every reader. Bytes that did not
// match the blob put the source in a cooldown.
func (fl *flight) fail(ctx context.Context, err error) {
	log := fl.f.log.With("digest", fl.desc.Digest, "remote", fl.r)
	switch {
	case context.Cause(ctx) == errFlightAborted:
		err = errdef.New(errdef.ErrUnavailable, "blob %s: every client left before the download from %s ended", fl.desc.Digest, fl.r.UpstreamURL())
		log.Debug("on-demand download stopped: no client left")
	case isMismatch(err):
		wait := fl.f.coolDown(fl.key)
		log.Warn("upstream served bytes that do not match the blob; nothing stored, source cooling down", "err", err, "cooldown", wait)
		err = &errdef.RetryAfter{After: wait, Err: errdef.New(errdef.ErrUnavailable,
			"blob %s from %s: %v; nothing was stored, the next try is in %s", fl.desc.Digest, fl.r.UpstreamURL(), err, wait.Round(time.Second))}
	default:
		err = classify(ctx, err, errdef.ErrBlobUnknown, fl.r, fl.desc.Digest.String())
		log.Warn("on-demand download failed", "err", err)
	}
	fl.mu.Lock()
	fl.err = err
	fl.done = true
	fl.cond.Broadcast()
	fl.mu.Unlock()
	fl.f.forget(fl)
}

func isMismatch(err error) bool {
	return errors.Is(err, errCorrupt) || errors.Is(err, storage.ErrDigestMismatch) || errors.Is(err, storage.ErrSizeMismatch)
}

// download copies the blob into the file, verifying it. A body that
// breaks off is resumed from where it stopped (with a Range request, or
// by skipping what a server ignoring Range sends again), within the retry
// policy's attempts.
func (fl *flight) download(ctx context.Context, u *upstream) error {
	v, err := storage.NewVerifier(fl.desc.Digest, fl.desc.Size)
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	policy := fl.f.opts.Retry
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(policy.wait(attempt - 1)):
			}
		}
		err = fl.attempt(ctx, u, v, buf)
		if err == nil {
			break
		}
		if isMismatch(err) || ctx.Err() != nil || attempt+1 >= policy.Attempts || !transientNetError(err) {
			return err
		}
		fl.f.log.Debug("on-demand download broke off; resuming", "digest", fl.desc.Digest, "at", fl.written, "err", err)
	}
	if err := v.Verify(); err != nil {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return nil
}

// errStalled is the cause of a request whose upstream stopped answering.
var errStalled = errors.New("the upstream stopped sending")

// attempt makes one request, from the bytes already written on, and
// copies its body. It waits at most Timeout for the answer and for each
// read.
func (fl *flight) attempt(ctx context.Context, u *upstream, v *storage.Verifier, buf []byte) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := fl.f.opts.Timeout
	watchdog := time.AfterFunc(timeout, func() { cancel(errStalled) })
	defer watchdog.Stop()
	from := v.Written()
	offset := from
	if fl.noRange {
		offset = 0
	}
	resp, err := u.openBlob(rctx, fl.desc.Digest, offset)
	var se *statusErr
	if offset > 0 && errors.As(err, &se) && se.status == http.StatusRequestedRangeNotSatisfiable {
		fl.noRange = true // some registries serve no ranges
		resp, err = u.openBlob(rctx, fl.desc.Digest, 0)
	}
	if err != nil {
		return stalled(rctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 && resp.ContentLength != fl.desc.Size {
		return fmt.Errorf("%w: Content-Length %d, expected %d", errCorrupt, resp.ContentLength, fl.desc.Size)
	}
	body := io.Reader(resp.Body)
	if resp.StatusCode == http.StatusOK && from > 0 {
		// Range ignored: skip what was received already.
		if _, err := io.CopyN(io.Discard, body, from); err != nil {
			return stalled(rctx, err)
		}
	}
	fl.mu.Lock()
	fl.started = true
	fl.cond.Broadcast()
	fl.mu.Unlock()
	for {
		watchdog.Reset(timeout)
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := v.Write(buf[:n]); err != nil {
				return err // more bytes than the blob has
			}
			if _, err := fl.file.WriteAt(buf[:n], v.Written()-int64(n)); err != nil {
				return fmt.Errorf("spool blob: %w", err)
			}
			fl.mu.Lock()
			fl.written = v.Written()
			fl.cond.Broadcast()
			fl.mu.Unlock()
		}
		switch {
		case rerr == io.EOF && v.Written() < fl.desc.Size:
			return io.ErrUnexpectedEOF // resumable
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			return stalled(rctx, rerr)
		}
	}
}

// stalled names a request the watchdog stopped as a timeout.
func stalled(ctx context.Context, err error) error {
	if context.Cause(ctx) == errStalled {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, errStalled)
	}
	return err
}

// waitStarted waits until the upstream answers with the blob, or the
// download fails, or ctx is done.
func (fl *flight) waitStarted(ctx context.Context) error {
	stop := context.AfterFunc(ctx, fl.wake)
	defer stop()
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for !fl.started && !fl.done && ctx.Err() == nil {
		fl.cond.Wait()
	}
	switch {
	case fl.err != nil:
		return fl.err
	case fl.started || fl.done:
		return nil
	}
	return ctx.Err()
}

func (fl *flight) wake() {
	fl.mu.Lock()
	fl.cond.Broadcast()
	fl.mu.Unlock()
}

// readAt reads into p the bytes from offset pos on that have arrived,
// waiting for at least one. The blob's last byte is held back until the
// whole blob is verified.
func (fl *flight) readAt(ctx context.Context, p []byte, pos int64) (int, error) {
	stop := context.AfterFunc(ctx, fl.wake)
	defer stop()
	fl.mu.Lock()
	var avail int64
	for {
		if fl.err != nil {
			err := fl.err
			fl.mu.Unlock()
			return 0, err
		}
		avail = fl.written
		if !fl.done {
			avail = min(avail, fl.desc.Size-1)
		}
		if pos < avail {
			break
		}
		if err := ctx.Err(); err != nil {
			fl.mu.Unlock()
			return 0, err
		}
		fl.cond.Wait()
	}
	fl.mu.Unlock()
	n := int(min(int64(len(p)), avail-pos))
	n, err := fl.file.ReadAt(p[:n], pos)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// leave drops a reader; the last one leaving a download not yet over
// stops it.
func (fl *flight) leave() {
	fl.mu.Lock()
	fl.readers--
	abort := fl.readers == 0 && !fl.done
	if abort {
		fl.aborted = true
	}
	fl.mu.Unlock()
	if abort {
		fl.cancel()
	}
	fl.release()
}

// release drops a reference, closing the file with the last.
func (fl *flight) release() {
	fl.mu.Lock()
	fl.refs--
	last := fl.refs == 0
	fl.mu.Unlock()
	if last {
		fl.file.Close()
	}
}
