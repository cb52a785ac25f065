package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// errorMapping is one row of the error table: an SDK sentinel error, the
// HTTP status it maps to, and for the registry API its error code
// (distribution spec "Error Codes").
type errorMapping struct {
	err    error
	status int
	code   string
	// detail replaces the error's text in REST responses, as Pulp words it.
	detail string
}

// errorTable maps every sentinel error the SDK returns to a status. The
// first row whose error matches wins; anything unmatched is a 500 whose
// detail is logged, never shown.
var errorTable = []errorMapping{
	{err: distribution.ErrNameUnknown, status: http.StatusNotFound, code: "NAME_UNKNOWN"},
	{err: distribution.ErrManifestUnknown, status: http.StatusNotFound, code: "MANIFEST_UNKNOWN"},
	{err: distribution.ErrBlobUnknown, status: http.StatusNotFound, code: "BLOB_UNKNOWN"},
	{err: errDigestInvalid, status: http.StatusBadRequest, code: "DIGEST_INVALID"},
	{err: errNameInvalid, status: http.StatusBadRequest, code: "NAME_INVALID"},
	{err: errUnsupported, status: http.StatusMethodNotAllowed, code: "UNSUPPORTED"},
	{err: errPaginationInvalid, status: http.StatusBadRequest, code: "PAGINATION_NUMBER_INVALID"},
	{err: errDenied, status: http.StatusForbidden, code: "DENIED"},
	{err: errBlobUploadUnknown, status: http.StatusNotFound, code: "BLOB_UPLOAD_UNKNOWN"},
	{err: errRangeInvalid, status: http.StatusRequestedRangeNotSatisfiable, code: "BLOB_UPLOAD_INVALID"},
	{err: errSizeInvalid, status: http.StatusBadRequest, code: "SIZE_INVALID"},
	{err: errManifestInvalid, status: http.StatusBadRequest, code: "MANIFEST_INVALID"},
	{err: errManifestTooLarge, status: http.StatusRequestEntityTooLarge, code: "SIZE_INVALID"},
	{err: errManifestBlobUnknown, status: http.StatusBadRequest, code: "MANIFEST_BLOB_UNKNOWN"},
	{err: errTagInvalid, status: http.StatusBadRequest, code: "TAG_INVALID"},
	{err: storage.ErrDigestMismatch, status: http.StatusBadRequest, code: "DIGEST_INVALID"},
	{err: storage.ErrInvalidDigest, status: http.StatusBadRequest, code: "DIGEST_INVALID"},
	{err: storage.ErrSizeMismatch, status: http.StatusBadRequest, code: "SIZE_INVALID"},
	{err: storage.ErrUploadOffset, status: http.StatusRequestedRangeNotSatisfiable, code: "BLOB_UPLOAD_INVALID"},

	{err: errNotFound, status: http.StatusNotFound, code: "NAME_UNKNOWN", detail: "Not found."},
	{err: repository.ErrNotFound, status: http.StatusNotFound, detail: "Not found."},
	{err: distribution.ErrNotFound, status: http.StatusNotFound, detail: "Not found."},
	{err: remote.ErrNotFound, status: http.StatusNotFound, detail: "Not found."},
	{err: task.ErrNotFound, status: http.StatusNotFound, detail: "Not found."},

	{err: errUnauthenticated, status: http.StatusUnauthorized, code: "UNAUTHORIZED", detail: "Authentication credentials were not provided."},
	{err: errBadCredentials, status: http.StatusUnauthorized, code: "UNAUTHORIZED", detail: "Invalid username/password."},
	{err: errMethodNotAllowed, status: http.StatusMethodNotAllowed, code: "UNSUPPORTED"},
	{err: errTooLarge, status: http.StatusRequestEntityTooLarge, detail: "Request body too large."},

	{err: repository.ErrInvalid, status: http.StatusBadRequest},
	{err: distribution.ErrInvalid, status: http.StatusBadRequest},
	{err: remote.ErrInvalid, status: http.StatusBadRequest},
	{err: task.ErrInvalid, status: http.StatusBadRequest},
	{err: repository.ErrConflict, status: http.StatusConflict},
	{err: distribution.ErrConflict, status: http.StatusConflict},
	{err: remote.ErrConflict, status: http.StatusConflict},
	{err: task.ErrConflict, status: http.StatusConflict},
	{err: errForeignKey, status: http.StatusConflict, detail: "The object is still referenced by another one."},
	{err: context.Canceled, status: 499, detail: "Client closed the request."},
}

// Errors of the HTTP layer itself.
var (
	errNotFound          = errors.New("not found")
	errUnauthenticated   = errors.New("authentication required")
	errBadCredentials    = errors.New("invalid username or password")
	errMethodNotAllowed  = errors.New("method not allowed")
	errTooLarge          = errors.New("request body too large")
	errDigestInvalid     = errors.New("invalid digest")
	errNameInvalid       = errors.New("invalid repository name")
	errUnsupported       = errors.New("the operation is unsupported")
	errPaginationInvalid = errors.New("invalid pagination parameters")
	errForeignKey        = errors.New("still referenced")

	// Errors of the push side (distribution spec "Error Codes").
	errDenied              = errors.New("requested access to the resource is denied")
	errBlobUploadUnknown   = errors.New("blob upload unknown to registry")
	errRangeInvalid        = errors.New("chunk out of order")
	errSizeInvalid         = errors.New("provided length did not match content length")
	errManifestInvalid     = errors.New("manifest invalid")
	errManifestTooLarge    = errors.New("manifest too large")
	errManifestBlobUnknown = errors.New("manifest references a manifest or blob unknown to registry")
	errTagInvalid          = errors.New("manifest tag did not match URI")
)

// lookupError returns the table row for err, or a 500 row.
func lookupError(err error) errorMapping {
	if db.IsForeignKeyViolation(err) {
		err = errForeignKey
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return m
		}
	}
	return errorMapping{status: http.StatusInternalServerError, code: "UNKNOWN", detail: "Internal server error."}
}

// fieldError is a 400 about named fields: {"field": ["message", ...]}, the
// shape Django REST framework gives validation errors.
type fieldError map[string][]string

func (e fieldError) Error() string {
	for k, v := range e {
		if len(v) > 0 {
			return k + ": " + v[0]
		}
	}
	return "invalid input"
}

// asFieldError extracts a field-level error from the SDK's typed errors.
func asFieldError(err error) (fieldError, bool) {
	var fe fieldError
	if errors.As(err, &fe) {
		return fe, true
	}
	var rf *remote.FieldError
	if errors.As(err, &rf) {
		return fieldError{rf.Field: {rf.Message}}, true
	}
	var df *distribution.FieldError
	if errors.As(err, &df) {
		return fieldError{df.Field: {df.Message}}, true
	}
	return nil, false
}

// onField attributes an SDK error without a field (such as a repository
// name conflict) to field, so it renders as a 400 about that field.
func onField(err error, field string, sentinels ...error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return fieldError{field: {cleanMessage(err)}}
		}
	}
	return err
}

// objectMissing turns a not-found error about a linked object into a 400
// about the field that linked it, in DRF's words.
func objectMissing(err error, field string) error {
	if lookupError(err).status == http.StatusNotFound {
		return fieldError{field: {"Invalid hyperlink - Object does not exist."}}
	}
	return err
}
