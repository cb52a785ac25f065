package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/mooring-dev/mooring/content/errdef"
)

// Errors of the HTTP layer itself, as cases of errdef's vocabulary: the
// dispatcher renders every error by its kind or registry code, never by
// its text.
var (
	errNotFound        = errdef.New(errdef.ErrNameUnknown, "no such endpoint")
	errUnauthenticated = errdef.New(errdef.ErrUnauthorized, "Authentication credentials were not provided.")
	errTooLarge        = errdef.New(errdef.ErrTooLarge, "Request body too large.")
)

// restStatus returns the HTTP status and the detail a REST API error is
// answered with: Pulp's words for the common cases, else the message the
// SDK wrote for a user (errdef.Message). Anything of no known kind is a 500
// whose detail is logged, never shown.
func restStatus(err error) (int, string) {
	if errors.Is(err, context.Canceled) {
		return 499, "Client closed the request."
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout, "The request body arrived too slowly."
	}
	status := errdef.Status(err)
	switch status {
	case http.StatusNotFound:
		return status, "Not found."
	case http.StatusInternalServerError:
		return status, "Internal server error."
	}
	return status, sentence(errdef.Message(err))
}

// sentence capitalises an SDK message for a REST client.
func sentence(msg string) string {
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	return msg
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

// Unwrap makes a fieldError a case of errdef.ErrInvalid.
func (e fieldError) Unwrap() error { return errdef.ErrInvalid }

// asFieldError extracts a field-level error from the SDK's typed errors.
func asFieldError(err error) (fieldError, bool) {
	var fe fieldError
	if errors.As(err, &fe) {
		return fe, true
	}
	var sf *errdef.FieldError
	if errors.As(err, &sf) {
		return fieldError{sf.Field: {sf.Message}}, true
	}
	return nil, false
}

// onField attributes an SDK error without a field (such as a repository
// name conflict) to field, so it renders as a 400 about that field.
func onField(err error, field string, kinds ...error) error {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return fieldError{field: {sentence(errdef.Message(err))}}
		}
	}
	return err
}

// objectMissing turns a not-found error about a linked object into a 400
// about the field that linked it, in DRF's words.
func objectMissing(err error, field string) error {
	if errors.Is(err, errdef.ErrNotFound) {
		return fieldError{field: {"Invalid hyperlink - Object does not exist."}}
	}
	return err
}
