package content

import (
	"regexp"
	"strings"
)

// normalizeMediaType reduces a media type as it may arrive in a Content-Type
// header ("Application/JSON; charset=utf-8") to its lower-case essence, so
// callers can pass a header value unchanged.
func normalizeMediaType(mediaType string) string {
	if i := strings.IndexByte(mediaType, ';'); i >= 0 {
		mediaType = mediaType[:i]
	}
	return strings.ToLower(strings.TrimSpace(mediaType))
}

// isGenericMediaType reports whether a declared media type says nothing about
// which manifest format a body is in, so that the body must tell. Old
// registries and static file servers send these.
func isGenericMediaType(mediaType string) bool {
	switch mediaType {
	case "", "application/json", "application/octet-stream", "text/plain":
		return true
	}
	return false
}

// IsManifest reports whether mediaType names an image manifest: Docker v2
// schema 2, OCI image manifest, or Docker v2 schema 1 (signed or not).
// Parameters such as "; charset=utf-8" are ignored.
func IsManifest(mediaType string) bool {
	switch normalizeMediaType(mediaType) {
	case MediaTypeDockerManifest, MediaTypeOCIManifest,
		MediaTypeDockerSchema1Signed, MediaTypeDockerSchema1:
		return true
	}
	return false
}

// IsManifestList reports whether mediaType names a Docker manifest list or an
// OCI image index. Parameters are ignored.
func IsManifestList(mediaType string) bool {
	switch normalizeMediaType(mediaType) {
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
		return true
	}
	return false
}

// IsForeignLayer reports whether mediaType names a layer that registries do
// not distribute: the Docker foreign layer type or one of the OCI
// non-distributable layer types (image-spec layer.md, deprecated in v1.1 but
// still in use by Windows base images). Such a layer is recorded with its URLs
// and never downloaded.
func IsForeignLayer(mediaType string) bool {
	mediaType = normalizeMediaType(mediaType)
	return mediaType == MediaTypeDockerForeignLayer ||
		strings.HasPrefix(mediaType, "application/vnd.oci.image.layer.nondistributable.v1.tar")
}

// TagType returns the type of a tag naming content of type target:
// TypeManifestTag for TypeManifest, TypeManifestListTag for TypeManifestList,
// and the empty Type for anything else, which cannot be tagged.
func TagType(target Type) Type {
	switch target {
	case TypeManifest:
		return TypeManifestTag
	case TypeManifestList:
		return TypeManifestListTag
	}
	return ""
}

// mediaTypeRegexp is the grammar of a media type without parameters, RFC 6838
// section 4.2, which OCI descriptors must follow (image-spec descriptor.md).
var mediaTypeRegexp = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// validMediaType reports whether s is a syntactically valid media type.
func validMediaType(s string) bool { return mediaTypeRegexp.MatchString(s) }
