package remote

import (
	"slices"

	"github.com/opencontainers/go-digest"
)

// wantTag reports whether the remote's filters keep tag: it matches an
// include pattern (IncludeTags or WhitelistTags; every tag when both are
// empty) and no exclude pattern.
func (r *Remote) wantTag(tag string) bool {
	if len(r.IncludeTags)+len(r.WhitelistTags) > 0 {
		in := false
		for _, p := range append(r.IncludeTags[:len(r.IncludeTags):len(r.IncludeTags)], r.WhitelistTags...) {
			if match(p, tag) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, p := range r.ExcludeTags {
		if match(p, tag) {
			return false
		}
	}
	return true
}

// match reports whether pattern matches all of s, '*' matching any run of
// characters (also none) and '?' any one character. Other characters,
// '[' included, match themselves: unlike path.Match there are no classes,
// and no pattern is malformed. It runs in O(len(pattern)*len(s)) at worst.
func match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// includedDigests are the entries of the include patterns that are
// digests ("sha256:…"): manifests to sync whether or not a tag names
// them. Tags cannot hold ':', so such an entry never matches a tag.
func (r *Remote) includedDigests() []digest.Digest {
	var out []digest.Digest
	for _, p := range append(r.IncludeTags[:len(r.IncludeTags):len(r.IncludeTags)], r.WhitelistTags...) {
		if d, err := digest.Parse(p); err == nil && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
