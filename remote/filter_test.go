package remote

import (
	"path"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"latest", "latest", true},
		{"latest", "latest2", false},
		{"1.?", "1.2", true},
		{"1.?", "1.10", false},
		{"1.*", "1.10", true},
		{"*-rc*", "1.1-rc1", true},
		{"*-rc*", "1.1", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"[ab]", "[ab]", true}, // no character classes: tags cannot hold '['
		{"**?", "x", true},
	} {
		if got := match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// FuzzMatch checks match against path.Match, which agrees with it on
// patterns without character classes or escapes and ASCII names without
// '/' (tags are ASCII; path.Match's '?' is a rune, match's a byte).
func FuzzMatch(f *testing.F) {
	f.Add("1.*", "1.10")
	f.Add("*-rc?", "2.0-rc1")
	f.Add("a*b*c*", "abcabc")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if strings.ContainsAny(pattern, `[]\/`) || strings.Contains(s, "/") || !ascii(pattern) || !ascii(s) || len(pattern) > 64 || len(s) > 128 {
			t.Skip()
		}
		want, err := path.Match(pattern, s)
		if err != nil {
			t.Skip()
		}
		if got := match(pattern, s); got != want {
			t.Errorf("match(%q, %q) = %v, path.Match says %v", pattern, s, got, want)
		}
	})
}

func ascii(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
