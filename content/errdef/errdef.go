// Package errdef is Mooring's one error vocabulary: the sentinels every
// package wraps with context, the field error of per-field validation, and
// the registry error codes of the OCI distribution spec as values carrying
// their code and HTTP status.
//
// Callers check errors with errors.Is against the sentinels here, whichever
// package returned them:
//
//	if errors.Is(err, errdef.ErrNotFound) { … }
//
// Packages wrap a sentinel with the name, id or digest that failed, either
// with fmt.Errorf("…: %w", errdef.ErrConflict) or, when the text is meant
// for an end user (a REST API detail, say), with New, whose message carries
// no prefix of the sentinel's.
package errdef

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The kinds of failure. Every error a Mooring package documents wraps one.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change contradicts the state of other objects (a
	// name taken, a version a distribution serves, a task that ended).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed or out of range.
	ErrInvalid = errors.New("invalid")
	// ErrUnsupported: the operation is not supported here (by this store,
	// for this kind of object).
	ErrUnsupported = errors.New("unsupported")
	// ErrTooLarge: the input exceeds a size limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnauthenticated: the caller did not prove who it is.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrDenied: the caller may not do this to this object.
	ErrDenied = errors.New("denied")
	// ErrTooManyRequests: the caller, or an upstream, asks for a pause;
	// a *RetryAfter in the chain says how long.
	ErrTooManyRequests = errors.New("too many requests")
	// ErrUnavailable: a service Mooring depends on (an upstream registry)
	// failed or did not answer in time.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout: a service Mooring depends on (an upstream registry) did
	// not answer in time; answered 504 where ErrUnavailable is 502.
	ErrTimeout = errors.New("timeout")
)

// RetryAfter carries how long to wait before trying again; servers send it
// as a Retry-After header. It wraps its cause.
type RetryAfter struct {
	After time.Duration
	Err   error
}

func (e *RetryAfter) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *RetryAfter) Unwrap() error { return e.Err }

// Error is a sentinel kind with a message meant for whoever made the
// request. Its text is the message alone, after the registry code's
// description when the kind is a *Code ("blob unknown to registry: …").
type Error struct {
	// Kind is one of the sentinels above (or a Code).
	Kind error
	// Message says what failed and why.
	Message string
}

// New returns an *Error of kind with a formatted message.
func New(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if c, ok := e.Kind.(*Code); ok {
		return c.Message + ": " + e.Message
	}
	return e.Message
}

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

// Message returns the message of the outermost *Error or *FieldError in
// err's chain, or err's text when it has none.
func Message(err error) string {
	var fe *FieldError
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Message
	case errors.As(err, &fe):
		return fe.Field + ": " + fe.Message
	}
	return err.Error()
}

// FieldError says which field of an object is wrong and why: the error of
// per-field validation in every package. It wraps ErrInvalid unless Kind
// says otherwise (ErrConflict for a name already taken).
type FieldError struct {
	// Field is the field's name as the REST API spells it ("url",
	// "base_path", …).
	Field string
	// Message says what is wrong with it.
	Message string
	// Kind is the sentinel wrapped; nil means ErrInvalid.
	Kind error
}

// Field returns a *FieldError about field wrapping ErrInvalid.
func Field(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// FieldConflict returns a *FieldError about field wrapping ErrConflict.
func FieldConflict(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...), Kind: ErrConflict}
}

// Error returns "<field>: <message>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap returns the kind, ErrInvalid by default.
func (e *FieldError) Unwrap() error {
	if e.Kind == nil {
		return ErrInvalid
	}
	return e.Kind
}

// Code is a registry error (distribution spec, "Error Codes"): its code,
// the HTTP status it is answered with, and the kind it is. Codes are
// sentinels: wrap them with context and test with errors.Is.
type Code struct {
	// Code is the spec's code, such as "BLOB_UNKNOWN".
	Code string
	// Status is the HTTP status of a response carrying it.
	Status int
	// Kind is the general sentinel the code is a case of.
	Kind error
	// Message is the spec's description.
	Message string
}

func (c *Code) Error() string { return c.Message }

// Unwrap returns the kind, so that errors.Is(err, ErrNotFound) holds for
// a BLOB_UNKNOWN.
func (c *Code) Unwrap() error { return c.Kind }

// The registry error codes Mooring answers with.
var (
	ErrBlobUnknown         = &Code{"BLOB_UNKNOWN", http.StatusNotFound, ErrNotFound, "blob unknown to registry"}
	ErrBlobUploadInvalid   = &Code{"BLOB_UPLOAD_INVALID", http.StatusRequestedRangeNotSatisfiable, ErrInvalid, "blob upload invalid"}
	ErrBlobUploadUnknown   = &Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, ErrNotFound, "blob upload unknown to registry"}
	ErrDigestInvalid       = &Code{"DIGEST_INVALID", http.StatusBadRequest, ErrInvalid, "provided digest did not match uploaded content"}
	ErrManifestBlobUnknown = &Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, ErrInvalid, "manifest references a manifest or blob unknown to registry"}
	ErrManifestInvalid     = &Code{"MANIFEST_INVALID", http.StatusBadRequest, ErrInvalid, "manifest invalid"}
	ErrManifestUnknown     = &Code{"MANIFEST_UNKNOWN", http.StatusNotFound, ErrNotFound, "manifest unknown to registry"}
	ErrManifestTooLarge    = &Code{"SIZE_INVALID", http.StatusRequestEntityTooLarge, ErrTooLarge, "manifest too large"}
	ErrNameInvalid         = &Code{"NAME_INVALID", http.StatusBadRequest, ErrInvalid, "invalid repository name"}
	ErrNameUnknown         = &Code{"NAME_UNKNOWN", http.StatusNotFound, ErrNotFound, "repository name not known to registry"}
	ErrPaginationInvalid   = &Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, ErrInvalid, "invalid number of results requested"}
	ErrSizeInvalid         = &Code{"SIZE_INVALID", http.StatusBadRequest, ErrInvalid, "provided length did not match content length"}
	ErrBlobTooLarge        = &Code{"SIZE_INVALID", http.StatusRequestEntityTooLarge, ErrTooLarge, "blob too large"}
	ErrTagInvalid          = &Code{"TAG_INVALID", http.StatusBadRequest, ErrInvalid, "manifest tag did not match URI"}
	ErrUnauthorized        = &Code{"UNAUTHORIZED", http.StatusUnauthorized, ErrUnauthenticated, "authentication required"}
	ErrRegistryDenied      = &Code{"DENIED", http.StatusForbidden, ErrDenied, "requested access to the resource is denied"}
	ErrRegistryUnsupported = &Code{"UNSUPPORTED", http.StatusMethodNotAllowed, ErrUnsupported, "the operation is unsupported"}
	ErrRegistryTooMany     = &Code{"TOOMANYREQUESTS", http.StatusTooManyRequests, ErrTooManyRequests, "too many requests"}
)

// Status returns the HTTP status err should be answered with: a Code's
// own, else that of its kind; 500 for an error of no known kind.
func Status(err error) int {
	var c *Code
	if errors.As(err, &c) {
		return c.Status
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status
		}
	}
	return http.StatusInternalServerError
}

var kinds = []struct {
	err    error
	status int
}{
	{ErrNotFound, http.StatusNotFound},
	{ErrInvalid, http.StatusBadRequest},
	{ErrConflict, http.StatusConflict},
	{ErrUnauthenticated, http.StatusUnauthorized},
	{ErrDenied, http.StatusForbidden},
	{ErrTooLarge, http.StatusRequestEntityTooLarge},
	{ErrUnsupported, http.StatusMethodNotAllowed},
	{ErrTooManyRequests, http.StatusTooManyRequests},
	{ErrUnavailable, http.StatusBadGateway},
	{ErrTimeout, http.StatusGatewayTimeout},
}

// RegistryCode returns the registry error code for err: a Code's own, else
// the code of its kind (UNKNOWN for none).
func RegistryCode(err error) string {
	var c *Code
	if errors.As(err, &c) {
		return c.Code
	}
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return "UNAUTHORIZED"
	case errors.Is(err, ErrDenied):
		return "DENIED"
	case errors.Is(err, ErrNotFound):
		return "NAME_UNKNOWN"
	case errors.Is(err, ErrTooManyRequests):
		return "TOOMANYREQUESTS"
	case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout):
		return "UNAVAILABLE" // CNCF distribution's code for an upstream failure
	case Status(err) < 500:
		return "UNSUPPORTED"
	}
	return "UNKNOWN"
}
