package content

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Name limits of the OCI distribution spec ("Pulling manifests").
const (
	// MaxRepositoryNameLength is the longest repository name accepted, in
	// bytes.
	MaxRepositoryNameLength = 255
	// MaxTagLength is the longest tag accepted, in bytes.
	MaxTagLength = 128
)

// ValidateRepositoryName checks name against the repository name grammar of
// the OCI distribution spec:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// and the 255-byte limit. The error wraps ErrInvalidName and says what is
// wrong.
func ValidateRepositoryName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: repository name is empty", ErrInvalidName)
	}
	if len(name) > MaxRepositoryNameLength {
		return fmt.Errorf("%w: repository name is %d bytes long, the limit is %d",
			ErrInvalidName, len(name), MaxRepositoryNameLength)
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" {
			return fmt.Errorf("%w: repository name %q has an empty path component (leading, trailing or doubled '/')",
				ErrInvalidName, name)
		}
		if problem := checkPathComponent(c); problem != "" {
			return fmt.Errorf("%w: repository name %q: path component %q %s", ErrInvalidName, name, c, problem)
		}
	}
	return nil
}

// checkPathComponent checks one non-empty component of a repository name:
// runs of lowercase letters and digits joined by one separator each, a
// separator being '.', '_', '__' or any number of '-'. It returns what is
// wrong, or "".
func checkPathComponent(c string) string {
	i := 0
	for {
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start {
			if !isSeparator(c[i]) {
				return badNameRune(c[i:])
			}
			if i == 0 {
				return "must start with a lowercase letter or digit"
			}
			return "has a separator not followed by a lowercase letter or digit (separators are '.', '_', '__' and runs of '-')"
		}
		if i == len(c) {
			return ""
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return badNameRune(c[i:])
		}
		if i == len(c) {
			return "must end with a lowercase letter or digit"
		}
	}
}

// badNameRune describes the character at the start of s, which has no place
// in a repository name.
func badNameRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if 'A' <= r && r <= 'Z' {
		return fmt.Sprintf("contains upper-case %q; repository names are lowercase", r)
	}
	return fmt.Sprintf("contains %q; only lowercase letters, digits, '.', '_' and '-' are allowed", r)
}

func isLowerAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

func isSeparator(b byte) bool { return b == '.' || b == '_' || b == '-' }

// ValidateTagName checks name against the tag grammar of the OCI distribution
// spec, [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. The error wraps ErrInvalidName and
// says what is wrong.
func ValidateTagName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: tag is empty", ErrInvalidName)
	}
	if len(name) > MaxTagLength {
		return fmt.Errorf("%w: tag is %d bytes long, the limit is %d", ErrInvalidName, len(name), MaxTagLength)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: tag %q must not start with %q", ErrInvalidName, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '.' || b == '-' {
			continue
		}
		r, _ := utf8.DecodeRuneInString(name[i:])
		return fmt.Errorf("%w: tag %q contains %q; only letters, digits, '_', '.' and '-' are allowed",
			ErrInvalidName, name, r)
	}
	return nil
}
