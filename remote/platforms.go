package remote

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
)

// A platform filter (Remote.IncludePlatforms) narrows what a sync takes
// from each manifest list or OCI index: the list itself is stored byte for
// byte, so its digest stays the upstream's, but only the children for the
// chosen platforms, and the attestation manifests describing them, are
// synced.

// Annotations by which BuildKit marks the attestation manifests of an
// index (platform unknown/unknown): the reference type, and the digest of
// the image manifest the attestation describes.
const (
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	// ReferenceTypeAttestation is AnnotationReferenceType's value on an
	// attestation manifest.
	ReferenceTypeAttestation = "attestation-manifest"
)

// Platform is one entry of a platform filter: an operating system, an
// architecture and, optionally, a variant, as the platform field of a
// manifest list or OCI index entry names them (OCI image spec,
// image-index.md, "platform").
type Platform struct {
	OS           string
	Architecture string
	// Variant is empty when any variant of the architecture will do.
	Variant string
}

// ParsePlatform parses "os/architecture" or "os/architecture/variant",
// such as "linux/amd64" or "linux/arm64/v8". Each part is lower-case
// letters, digits, '.', '_' and '-', as GOOS and GOARCH values are. A
// malformed entry is a *errdef.FieldError about include_platforms.
func ParsePlatform(s string) (Platform, error) {
	bad := func(why string) error {
		return errdef.Field("include_platforms", "%q is not a platform: %s; write os/architecture[/variant], such as linux/arm64/v8", s, why)
	}
	parts := strings.Split(s, "/")
	switch {
	case len(parts) < 2:
		return Platform{}, bad("it names no architecture")
	case len(parts) > 3:
		return Platform{}, bad("it has more than three parts")
	}
	for i, p := range parts {
		if p == "" {
			return Platform{}, bad([]string{"the os", "the architecture", "the variant"}[i] + " is empty")
		}
		if len(p) > 64 {
			return Platform{}, bad("a part is longer than 64 characters")
		}
		for _, c := range p {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return Platform{}, bad(fmt.Sprintf("%q is not allowed (lower-case letters, digits, '.', '_' and '-' are)", c))
			}
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// String returns "os/architecture[/variant]".
func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Architecture
	}
	return p.OS + "/" + p.Architecture + "/" + p.Variant
}

// Matches reports whether an entry's platform is p: the same operating
// system and architecture and, when p has a variant, the same variant. The
// architecture's usual other names count as it (x86_64 is amd64, aarch64
// is arm64), and a missing variant is the architecture's default (arm64's
// v8, arm's v7, amd64's v1), as containerd's platform matching has it. An
// entry without a platform matches nothing.
func (p Platform) Matches(q *ocispec.Platform) bool {
	if q == nil || !strings.EqualFold(q.OS, p.OS) {
		return false
	}
	arch := normArch(q.Architecture)
	if arch != normArch(p.Architecture) {
		return false
	}
	return p.Variant == "" || normVariant(arch, q.Variant) == normVariant(arch, p.Variant)
}

func normArch(a string) string {
	switch a = strings.ToLower(a); a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "i386", "i686":
		return "386"
	}
	return a
}

func normVariant(arch, v string) string {
	v = strings.ToLower(v)
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		v = "v" + v // "8" is "v8"
	}
	if v == "" {
		switch arch {
		case "arm64":
			return "v8"
		case "arm":
			return "v7"
		case "amd64":
			return "v1"
		}
	}
	return v
}

// Platforms is a platform filter: a remote's IncludePlatforms, parsed. The
// empty filter keeps every entry.
type Platforms []Platform

// ParsePlatforms parses the entries of a platform filter (see
// ParsePlatform); the first malformed one is a *errdef.FieldError about
// include_platforms.
func ParsePlatforms(entries []string) (Platforms, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	out := make(Platforms, 0, len(entries))
	for _, e := range entries {
		p, err := ParsePlatform(e)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Matches reports whether a platform of ps matches q.
func (ps Platforms) Matches(q *ocispec.Platform) bool {
	for _, p := range ps {
		if p.Matches(q) {
			return true
		}
	}
	return false
}

// Select returns the entries of a manifest list or OCI index (its
// Manifests, in order) that a sync under the filter takes: those whose
// platform matches one of ps; nested lists and indexes that have no
// platform (their own entries are filtered in turn); and attestation
// manifests (AnnotationReferenceType ReferenceTypeAttestation) whose
// AnnotationReferenceDigest names an entry taken. The empty filter takes
// every entry.
func (ps Platforms) Select(entries []ocispec.Descriptor) []ocispec.Descriptor {
	if len(ps) == 0 {
		return entries
	}
	taken := map[digest.Digest]bool{}
	for _, e := range entries {
		if ps.Matches(e.Platform) || e.Platform == nil && content.IsManifestList(e.MediaType) {
			taken[e.Digest] = true
		}
	}
	out := make([]ocispec.Descriptor, 0, len(taken))
	for _, e := range entries {
		if taken[e.Digest] || isAttestationOf(e, taken) {
			out = append(out, e)
		}
	}
	return out
}

// isAttestationOf reports whether e is an attestation manifest of one of
// the entries taken.
func isAttestationOf(e ocispec.Descriptor, taken map[digest.Digest]bool) bool {
	if e.Annotations[AnnotationReferenceType] != ReferenceTypeAttestation {
		return false
	}
	d, err := digest.Parse(e.Annotations[AnnotationReferenceDigest])
	return err == nil && taken[d]
}
