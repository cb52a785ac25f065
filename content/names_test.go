package content

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// The grammars as the OCI distribution spec writes them; the hand-written
// validators must agree with them on every input.
var (
	specRepositoryName = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTag            = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func TestValidateRepositoryName(t *testing.T) {
	tests := []struct {
		name    string
		wantMsg string // empty when the name is valid
	}{
		{"busybox", ""},
		{"library/busybox", ""},
		{"a", ""},
		{"0", ""},
		{"my-org/my--app/v1.2", ""},
		{"a_b/c__d/e.f/g---h", ""},
		{"quay.io/coreos/etcd", ""},
		{strings.Repeat("a", 255), ""},
		{strings.Repeat("ab/", 84) + "abc", ""},
		{"", "repository name is empty"},
		{strings.Repeat("a", 256), "repository name is 256 bytes long, the limit is 255"},
		{"/busybox", "empty path component"},
		{"library/", "empty path component"},
		{"library//busybox", "empty path component"},
		{"Library/busybox", `path component "Library" contains upper-case 'L'; repository names are lowercase`},
		{"library/BusyBox", "contains upper-case 'B'"},
		{"-busybox", `path component "-busybox" must start with a lowercase letter or digit`},
		{".hidden", "must start with a lowercase letter or digit"},
		{"busybox-", `path component "busybox-" must end with a lowercase letter or digit`},
		{"busybox.", "must end with a lowercase letter or digit"},
		{"a___b", "has a separator not followed by a lowercase letter or digit"},
		{"a._b", "has a separator not followed by a lowercase letter or digit"},
		{"a-.b", "has a separator not followed by a lowercase letter or digit"},
		{"a..b", "has a separator not followed by a lowercase letter or digit"},
		{"busy box", `contains ' '; only lowercase letters, digits, '.', '_' and '-' are allowed`},
		{"busybox:latest", "contains ':'"},
		{"caf\u00e9", "contains 'é'"},
		{"a@sha256", "contains '@'"},
	}
	for _, tt := range tests {
		err := ValidateRepositoryName(tt.name)
		if specOK := specRepositoryName.MatchString(tt.name) && len(tt.name) <= 255; specOK != (tt.wantMsg == "") {
			t.Fatalf("test case %q disagrees with the spec's grammar", tt.name)
		}
		if tt.wantMsg == "" {
			if err != nil {
				t.Errorf("ValidateRepositoryName(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateRepositoryName(%q) = %v, want ErrInvalidName", tt.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ValidateRepositoryName(%q) = %q, want it to contain %q", tt.name, err, tt.wantMsg)
		}
	}
}

func TestValidateTagName(t *testing.T) {
	tests := []struct {
		name    string
		wantMsg string // empty when the tag is valid
	}{
		{"latest", ""},
		{"v1.2.3", ""},
		{"1.36.1-musl", ""},
		{"_private", ""},
		{"UPPER_lower-9.0", ""},
		{"sha256-03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb.sig", ""},
		{strings.Repeat("t", 128), ""},
		{"", "tag is empty"},
		{strings.Repeat("t", 129), "tag is 129 bytes long, the limit is 128"},
		{".hidden", `tag ".hidden" must not start with '.'`},
		{"-rc1", `tag "-rc1" must not start with '-'`},
		{"v1+build", `tag "v1+build" contains '+'; only letters, digits, '_', '.' and '-' are allowed`},
		{"a/b", "contains '/'"},
		{"sha256:abc", "contains ':'"},
		{"na\u00efve", "contains 'ï'"},
		{"with space", "contains ' '"},
	}
	for _, tt := range tests {
		err := ValidateTagName(tt.name)
		if specTag.MatchString(tt.name) != (tt.wantMsg == "") {
			t.Fatalf("test case %q disagrees with the spec's grammar", tt.name)
		}
		if tt.wantMsg == "" {
			if err != nil {
				t.Errorf("ValidateTagName(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateTagName(%q) = %v, want ErrInvalidName", tt.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ValidateTagName(%q) = %q, want it to contain %q", tt.name, err, tt.wantMsg)
		}
	}
}

func FuzzValidateRepositoryName(f *testing.F) {
	for _, s := range []string{"library/busybox", "a__b", "a___b", "a--b-c", "A", "a/", "a.b_c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateRepositoryName(name)
		want := specRepositoryName.MatchString(name) && len(name) <= MaxRepositoryNameLength
		if (err == nil) != want {
			t.Fatalf("ValidateRepositoryName(%q) = %v, spec grammar says valid = %v", name, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("error %v does not wrap ErrInvalidName", err)
		}
	})
}

func FuzzValidateTagName(f *testing.F) {
	for _, s := range []string{"latest", ".a", "-a", "_a", "a+b", strings.Repeat("x", 128)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateTagName(name)
		if want := specTag.MatchString(name); (err == nil) != want {
			t.Fatalf("ValidateTagName(%q) = %v, spec grammar says valid = %v", name, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("error %v does not wrap ErrInvalidName", err)
		}
	})
}
