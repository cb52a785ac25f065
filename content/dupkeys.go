package content

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// checkDuplicateKeys rejects a document in which an object has two keys that
// encoding/json would take for the same field. Go keeps the last of them and
// matches field names without regard to case, while other parsers keep the
// first or match exactly; a document that means one thing to Mooring and
// another to a client must not be accepted. raw must be valid JSON.
func checkDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers are not needed, and must not fail to convert
	// One entry per open object or array: the folded keys seen so far for an
	// object, nil for an array. expectKey tracks whether the next string in
	// an object is a key or a value.
	var stack []map[string]bool
	// exact marks the open objects decoded into Go maps (annotations),
	// whose keys are matched exactly, so keys differing in case are distinct.
	var exact []bool
	expectKey := false
	lastKey := ""
	for {
		tok, err := dec.Token()
		if err != nil {
			// The document was decoded already, so the only error left is
			// the end of input.
			return nil
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, map[string]bool{})
				exact = append(exact, lastKey == "annotations")
				expectKey = true
				continue
			case '[':
				stack = append(stack, nil)
				exact = append(exact, false)
			default:
				stack = stack[:len(stack)-1]
				exact = exact[:len(exact)-1]
			}
		case string:
			if expectKey {
				k := t
				if !exact[len(exact)-1] {
					k = foldKey(t)
				}
				lastKey = t
				keys := stack[len(stack)-1]
				if keys[k] {
					if exact[len(exact)-1] {
						return invalid("duplicate key %q", t)
					}
					return invalid("duplicate key %q: keys that differ only in case count as the same", t)
				}
				keys[k] = true
				expectKey = false
				continue
			}
		}
		// A value ended, or an array opened; in an object the next token is
		// a key.
		lastKey = ""
		expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
	}
}

// foldKey maps s to a form shared by every string encoding/json matches to
// it: upper-case ASCII, and every other rune replaced by the smallest rune of
// its Unicode simple case-folding orbit (so "ſ" folds with "s", "K" with "k").
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			b.WriteRune(unicode.ToUpper(r))
			continue
		}
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
}
