package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/opencontainers/go-digest"
)

// ParseError reports why a manifest or manifest list was rejected. It wraps
// one of the package's sentinel errors (ErrInvalidManifest, ErrUnsupportedMediaType,
// ErrTooLarge, ErrDigestMismatch), so callers classify it with errors.Is and
// read the details with errors.As.
type ParseError struct {
	// MediaType is the media type the document was parsed as: the one
	// detected from the body when known, otherwise the one declared.
	MediaType string
	// Digest identifies the document: the expected digest when the caller
	// gave one, otherwise the SHA-256 of the bytes as received (empty when
	// the document was too large to be hashed).
	Digest digest.Digest
	// Reason says what is wrong, naming the offending field as a JSON path
	// where there is one ("layers[2].digest: invalid checksum digest format").
	Reason string
	// Err is the sentinel error the failure belongs to.
	Err error
}

// Error returns the sentinel's message followed by the reason, for example
// "invalid manifest: layers[2].digest: invalid checksum digest format".
func (e *ParseError) Error() string {
	msg := ErrInvalidManifest.Error()
	if e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Unwrap returns the sentinel error, so errors.Is(err, ErrInvalidManifest) holds for
// an invalid document.
func (e *ParseError) Unwrap() error { return e.Err }

// invalid returns a ParseError wrapping ErrInvalidManifest; ParseDigest fills in the
// media type and digest on the way out.
func invalid(format string, args ...any) *ParseError {
	return &ParseError{Reason: fmt.Sprintf(format, args...), Err: ErrInvalidManifest}
}

// jsonReason turns an encoding/json error into a reason naming the field, in
// the vocabulary of JSON rather than of Go types.
func jsonReason(prefix string, err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("%smalformed JSON at byte %d: %v", prefix, syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "document"
		}
		return fmt.Sprintf("%s%s: got JSON %s, want %s", prefix, field, typ.Value, jsonKind(typ.Type))
	default:
		return fmt.Sprintf("%sinvalid JSON value: %v", prefix, err)
	}
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 string"
		}
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	default:
		return t.String()
	}
}
