package registryapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// startUpload answers POST /v2/<name>/blobs/uploads/: a monolithic upload
// with ?digest=, a mount with ?mount= (and ?from=), or a new upload session.
func (h *handler) startUpload(w http.ResponseWriter, r *http.Request) error {
	name, q := mux.Vars(r)["name"], r.URL.Query()
	if err := h.authorize(r, Access{Name: name, Action: ActionPush}); err != nil {
		return err
	}
	ctx := pushContext(r)
	if m := q.Get("mount"); m != "" && h.mayMountFrom(r, q.Get("from")) {
		mounted, err := h.push.Mount(ctx, name, digest.Digest(m), q.Get("from"))
		if err != nil {
			return err
		}
		if mounted {
			return blobCreated(w, name, digest.Digest(m))
		}
		// Not mountable: an upload session, as the spec says.
	}
	if dq := q.Get("digest"); dq != "" {
		d := digest.Digest(dq)
		if _, err := h.push.PutBlob(ctx, name, d, r.ContentLength, r.Body); err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		return blobCreated(w, name, d)
	}
	id, err := h.push.StartUpload(ctx, name)
	if err != nil {
		return err
	}
	writeUploadHeaders(w, name, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) error {
	hd := w.Header()
	hd.Set("Location", location(name, "blobs", d.String()))
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// location returns the path of a blob or manifest for Location headers.
func location(name, kind, ref string) string {
	return "/v2/" + name + "/" + kind + "/" + ref
}

func writeUploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	hd := w.Header()
	hd.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	hd.Set("Docker-Upload-UUID", id)
	hd.Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	hd.Set("Content-Length", "0")
}

// uploadVars authorizes a request about an upload and returns its name
// and upload id.
func (h *handler) uploadVars(r *http.Request) (name, id string, err error) {
	name, id = mux.Vars(r)["name"], mux.Vars(r)["uuid"]
	return name, id, h.authorize(r, Access{Name: name, Action: ActionPush})
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
func (h *handler) appendChunk(w http.ResponseWriter, r *http.Request, name, id string) (int64, error) {
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
	body := io.Reader(r.Body)
	if ok {
		// A body longer than its Content-Range is refused, whether or not
		// its length was declared.
		body = &rangeReader{r: r.Body, left: end - start + 1}
	}
	size, err := h.push.AppendUpload(r.Context(), name, id, offset, body)
	var oe *storage.OffsetError
	if errors.As(err, &oe) {
		writeUploadHeaders(w, name, id, oe.Size)
		return size, fmt.Errorf("%w: the upload holds %d bytes, the chunk starts at %d", errdef.ErrBlobUploadInvalid, oe.Size, oe.Offset)
	}
	return size, err
}

// patchUpload answers PATCH: a chunk, or the whole stream.
func (h *handler) patchUpload(w http.ResponseWriter, r *http.Request) error {
	name, id, err := h.uploadVars(r)
	if err != nil {
		return err
	}
	size, err := h.appendChunk(w, r, name, id)
	if err != nil {
		return err
	}
	writeUploadHeaders(w, name, id, size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// uploadStatus answers GET: how far the upload is.
func (h *handler) uploadStatus(w http.ResponseWriter, r *http.Request) error {
	name, id, err := h.uploadVars(r)
	if err != nil {
		return err
	}
	size, err := h.push.UploadSize(r.Context(), name, id)
	if err != nil {
		return err
	}
	writeUploadHeaders(w, name, id, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// finishUpload answers PUT ?digest=: a last chunk, if any, then the blob is
// verified, stored and staged in the repository.
func (h *handler) finishUpload(w http.ResponseWriter, r *http.Request) error {
	name, id, err := h.uploadVars(r)
	if err != nil {
		return err
	}
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Range") != "" {
		if _, err := h.appendChunk(w, r, name, id); err != nil {
			return err
		}
	}
	if err := h.push.FinishUpload(r.Context(), name, id, d); err != nil {
		return err
	}
	return blobCreated(w, name, d)
}

// cancelUpload answers DELETE: the upload and its bytes go.
func (h *handler) cancelUpload(w http.ResponseWriter, r *http.Request) error {
	name, id, err := h.uploadVars(r)
	if err != nil {
		return err
	}
	if err := h.push.CancelUpload(r.Context(), name, id); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteBlob answers DELETE /v2/<name>/blobs/<digest>: the blob leaves the
// repository (unstaged, and in a new version when one holds it).
func (h *handler) deleteBlob(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	if err := h.authorize(r, Access{Name: name, Action: ActionDelete}); err != nil {
		return err
	}
	if err := h.push.DeleteBlob(r.Context(), name, digest.Digest(mux.Vars(r)["digest"])); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// rangeReader passes on the bytes a Content-Range announced and fails if
// the body holds more.
type rangeReader struct {
	r    io.Reader
	left int64
}

func (rr *rangeReader) Read(p []byte) (int, error) {
	if rr.left <= 0 {
		var one [1]byte
		if n, _ := rr.r.Read(one[:]); n > 0 {
			return 0, errdef.New(errdef.ErrBlobUploadInvalid, "the chunk is longer than its Content-Range")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > rr.left {
		p = p[:rr.left]
	}
	n, err := rr.r.Read(p)
	rr.left -= int64(n)
	if err == io.EOF && rr.left > 0 {
		return n, errdef.New(errdef.ErrBlobUploadInvalid, "the chunk is shorter than its Content-Range")
	}
	return n, err
}

// mayMountFrom reports whether a mount may read from base path from (any
// base path when from is empty): without an Authenticator everything is
// public; a MountChecker decides for its users; otherwise the request
// must be allowed to pull from, and a mount without from is not done. A
// mount not done is an upload session, as the spec says.
func (h *handler) mayMountFrom(r *http.Request, from string) bool {
	switch mc, ok := h.opts.Auth.(MountChecker); {
	case h.opts.Auth == nil:
		return true
	case ok:
		return mc.MayMount(r, from)
	case from == "":
		return false
	}
	return h.opts.Auth.Authenticate(r, Access{Name: from, Action: ActionPull}) == nil
}

// MountChecker is an Authenticator that decides cross-repository mounts:
// whether the request's user may read blobs from base path from, or from
// anywhere when from is empty.
type MountChecker interface {
	MayMount(r *http.Request, from string) bool
}
