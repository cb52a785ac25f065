package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// body is a JSON request body being read field by field, collecting
// Django REST framework style messages per field. Every field must be
// read; done reports the rest as unexpected.
type body struct {
	fields  map[string]json.RawMessage
	used    map[string]bool
	errs    fieldError
	partial bool // PATCH: required fields may be absent
}

// decodeBody reads a JSON object from r. Form-encoded bodies are refused.
func decodeBody(r *http.Request) (*body, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	b := &body{used: map[string]bool{}, errs: fieldError{}, partial: r.Method == http.MethodPatch}
	if len(bytes.TrimSpace(raw)) == 0 {
		b.fields = map[string]json.RawMessage{}
		return b, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.Contains(ct, "json") {
		return nil, fieldError{"non_field_errors": {"Unsupported media type " + strconv.Quote(ct) + "; send application/json."}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&b.fields); err != nil || b.fields == nil {
		return nil, fieldError{"non_field_errors": {"Invalid data. Expected a JSON object."}}
	}
	if dec.More() {
		return nil, fieldError{"non_field_errors": {"Invalid data. Expected a single JSON object."}}
	}
	return b, nil
}

func (b *body) fail(field, msg string) { b.errs[field] = append(b.errs[field], msg) }

// has reports whether field was sent; it marks the field as read.
func (b *body) has(field string) bool {
	b.used[field] = true
	_, ok := b.fields[field]
	return ok
}

func (b *body) isNull(field string) bool {
	return string(b.fields[field]) == "null"
}

// required records a "required" error when field is absent outside PATCH.
func (b *body) required(field string) {
	if !b.partial {
		b.fail(field, "This field is required.")
	}
}

// str reads a string field. Absent: (nil). null is an error unless
// nullable, in which case it yields a pointer to "".
func (b *body) str(field string, required, nullable bool) *string {
	if !b.has(field) {
		if required {
			b.required(field)
		}
		return nil
	}
	raw := b.fields[field]
	if b.isNull(field) {
		if !nullable {
			b.fail(field, "This field may not be null.")
			return nil
		}
		s := ""
		return &s
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		b.fail(field, "Not a valid string.")
		return nil
	}
	if strings.ContainsRune(s, 0) {
		b.fail(field, nulMessage)
		return nil
	}
	if required && strings.TrimSpace(s) == "" {
		b.fail(field, "This field may not be blank.")
		return nil
	}
	return &s
}

// boolean reads a boolean field, accepting what DRF's BooleanField does:
// true/false, "true"/"false" in any case, 1/0.
func (b *body) boolean(field string) *bool {
	if !b.has(field) {
		return nil
	}
	var v bool
	raw := strings.Trim(strings.ToLower(string(b.fields[field])), `"`)
	switch raw {
	case "true", "1", "yes", "on":
		v = true
	case "false", "0", "no", "off":
		v = false
	default:
		b.fail(field, "Must be a valid boolean.")
		return nil
	}
	return &v
}

// integer reads an integer field; numeric strings are accepted, as DRF does.
func (b *body) integer(field string, min, max int) *int {
	if !b.has(field) {
		return nil
	}
	raw := strings.Trim(string(b.fields[field]), `"`)
	n, err := strconv.Atoi(raw)
	if err != nil {
		b.fail(field, "A valid integer is required.")
		return nil
	}
	if n < min {
		b.fail(field, "Ensure this value is greater than or equal to "+strconv.Itoa(min)+".")
		return nil
	}
	if n > max {
		b.fail(field, "Ensure this value is less than or equal to "+strconv.Itoa(max)+".")
		return nil
	}
	return &n
}

// strList reads a list of strings; a comma-separated string is accepted
// too (Pulp's whitelist_tags was one). null clears the list.
func (b *body) strList(field string) *[]string {
	if !b.has(field) {
		return nil
	}
	out := []string{}
	if b.isNull(field) {
		return &out
	}
	raw := b.fields[field]
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return &out
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		b.fail(field, "Expected a list of strings.")
		return nil
	}
	if slices.ContainsFunc(out, func(e string) bool { return strings.ContainsRune(e, 0) }) {
		b.fail(field, nulMessage)
		return nil
	}
	return &out
}

// nulMessage is DRF's answer to a NUL character in text, which PostgreSQL
// cannot store.
const nulMessage = "Null characters are not allowed."

// checkQuery refuses query parameters that are not text a database can
// hold: a NUL character or invalid UTF-8.
func checkQuery(q url.Values) error {
	fe := fieldError{}
	for k, vs := range q {
		for _, v := range vs {
			switch {
			case strings.ContainsRune(v, 0):
				fe[k] = []string{nulMessage}
			case !utf8.ValidString(v) || !utf8.ValidString(k):
				fe[k] = []string{"Not valid UTF-8 text."}
			}
		}
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

// href reads a hyperlink to an object; parse returns its id(s) or false
// when the link is not of the expected kind. nullable: null yields "".
func (b *body) href(field string, required, nullable bool, parse func(path string) (string, bool)) *string {
	s := b.str(field, required, nullable)
	if s == nil {
		return nil
	}
	if *s == "" {
		if nullable && b.isNull(field) {
			return s
		}
		b.fail(field, "This field may not be blank.")
		return nil
	}
	path := *s
	if u, err := url.Parse(path); err == nil && u.Scheme != "" {
		path = u.Path
	}
	id, ok := parse(path)
	if !ok {
		b.fail(field, "Invalid hyperlink - No URL match.")
		return nil
	}
	return &id
}

// done returns the collected errors, with every field not read reported
// as unexpected.
func (b *body) done() error {
	var unknown []string
	for k := range b.fields {
		if !b.used[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		b.fail(k, "Unexpected field")
	}
	if len(b.errs) > 0 {
		return b.errs
	}
	return nil
}

// query reads list parameters: limit, offset and filters; unknown
// parameters are refused, so a misspelt filter never silently lists all.
type query struct {
	v    url.Values
	errs fieldError
	used map[string]bool
}

func newQuery(r *http.Request) *query {
	return &query{v: r.URL.Query(), errs: fieldError{}, used: map[string]bool{"format": true}}
}

func (q *query) str(name string) string {
	q.used[name] = true
	return q.v.Get(name)
}

func (q *query) page() (limit, offset int) {
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &limit}, {"offset", &offset}} {
		s := q.str(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			q.errs[p.name] = append(q.errs[p.name], "Enter a whole number that is not negative.")
			continue
		}
		*p.dst = n
	}
	if limit == 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	return limit, offset
}

func (q *query) done() error {
	for k := range q.v {
		if !q.used[k] {
			q.errs[k] = append(q.errs[k], "Unknown filter.")
		}
	}
	if len(q.errs) > 0 {
		return q.errs
	}
	return nil
}

// Page sizes of every list.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F-]{36}$`)

func isUUID(s string) bool { return uuidRe.MatchString(s) && uuid.Validate(s) == nil }
