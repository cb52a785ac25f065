package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SizeUnknown is the Size of a layer whose size the manifest does not state:
// Docker schema 1 lists layers by digest only.
const SizeUnknown = -1

var (
	_ Document = (*Manifest)(nil)
	_ Document = (*ManifestList)(nil)
)

// Parse parses and validates a manifest or manifest list and returns a
// *Manifest or a *ManifestList. It is ParseDigest without an expected digest.
func Parse(mediaType string, raw []byte) (Document, error) {
	return ParseDigest(mediaType, raw, "")
}

// ParseDigest parses and validates a manifest or manifest list, as Parse
// does, and, when want is not empty, checks that the document has that
// digest.
//
// mediaType is the declared media type, typically the Content-Type a registry
// sent; parameters are ignored. When it is empty or generic
// ("application/json", "application/octet-stream", "text/plain") the body
// decides: its mediaType field, else schemaVersion 1 for Docker schema 1
// (signed when it has signatures), else a config for an OCI image manifest or
// manifests for an OCI image index. When mediaType is specific, a body whose
// mediaType field names another type is invalid. A schema 1 body with
// signatures is parsed as signed whichever schema 1 type was declared.
//
// Documents that different clients could read differently are invalid: one
// that is both an image manifest and an index (it has config or layers and
// manifests), and one with two keys in an object that encoding/json would
// take for the same field (equal, or equal but for case).
//
// The document's digest is computed with want's algorithm (SHA-256 when want
// is empty), so a document fetched by a sha512 digest reports that digest.
// For signed Docker schema 1 it is the digest of the JWS payload, the
// manifest without its signatures, as registries serve it; the signatures are
// checked for consistency but not verified, as registries no longer do.
//
// The returned document keeps a copy of raw, byte for byte. Every error is a
// *ParseError wrapping ErrTooLarge (checked before any parsing),
// ErrUnsupportedMediaType, ErrInvalidManifest, or ErrDigestMismatch (whose reason
// names both digests).
func ParseDigest(mediaType string, raw []byte, want digest.Digest) (Document, error) {
	declared := normalizeMediaType(mediaType)
	if len(raw) > MaxManifestSize {
		return nil, &ParseError{
			MediaType: declared,
			Digest:    want,
			Reason:    fmt.Sprintf("%d bytes, the limit is %d", len(raw), MaxManifestSize),
			Err:       ErrTooLarge,
		}
	}
	alg := digest.SHA256
	if want != "" {
		if err := checkDigest(want); err != nil {
			return nil, &ParseError{
				MediaType: declared,
				Digest:    want,
				Reason:    fmt.Sprintf("expected digest %q: %v", want, err),
				Err:       ErrInvalidManifest,
			}
		}
		alg = want.Algorithm()
	}

	doc, mt, payload, err := parse(declared, raw)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			pe = &ParseError{Reason: err.Error(), Err: ErrInvalidManifest}
		}
		if pe.MediaType == "" {
			pe.MediaType = mt
		}
		if pe.Digest == "" {
			pe.Digest = want
			if want == "" {
				pe.Digest = digest.FromBytes(raw)
			}
		}
		return nil, pe
	}

	got := alg.FromBytes(payload)
	if want != "" && got != want {
		return nil, &ParseError{
			MediaType: mt,
			Digest:    want,
			Reason:    fmt.Sprintf("content has digest %s, expected %s", got, want),
			Err:       ErrDigestMismatch,
		}
	}
	switch d := doc.(type) {
	case *Manifest:
		d.Digest, d.Raw = got, bytes.Clone(raw)
	case *ManifestList:
		d.Digest, d.Raw = got, bytes.Clone(raw)
	}
	return doc, nil
}

// wireDocument holds every top-level field of every supported format, so one
// decoding serves detection and parsing alike.
type wireDocument struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *wireDescriptor   `json:"config"`
	Layers        []wireDescriptor  `json:"layers"`
	Manifests     []wireDescriptor  `json:"manifests"`
	Subject       *wireDescriptor   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`

	// Docker schema 1.
	Name         string          `json:"name"`
	Tag          string          `json:"tag"`
	Architecture string          `json:"architecture"`
	FSLayers     []wireFSLayer   `json:"fsLayers"`
	History      []wireV1History `json:"history"`
	Signatures   json.RawMessage `json:"signatures"`
}

// wireDescriptor is an OCI descriptor as found in a document; Size is a
// pointer so that a missing size is told apart from an empty blob.
type wireDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         *int64            `json:"size"`
	URLs         []string          `json:"urls"`
	Annotations  map[string]string `json:"annotations"`
	Data         []byte            `json:"data"`
	Platform     *ocispec.Platform `json:"platform"`
	ArtifactType string            `json:"artifactType"`
}

// parse detects the format of raw and parses it. It returns the media type it
// settled on (even on failure, once known) and the bytes the digest covers.
func parse(declared string, raw []byte) (Document, string, []byte, error) {
	if !isGenericMediaType(declared) && !IsManifest(declared) && !IsManifestList(declared) {
		return nil, declared, nil, &ParseError{
			Reason: fmt.Sprintf("%q is not a manifest or manifest list media type", declared),
			Err:    ErrUnsupportedMediaType,
		}
	}
	if first := firstNonSpace(raw); first != '{' {
		return nil, declared, nil, invalid("document is not a JSON object")
	}
	var w wireDocument
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, declared, nil, invalid("%s", jsonReason("", err))
	}
	if err := checkDuplicateKeys(raw); err != nil {
		return nil, declared, nil, err
	}

	mt, err := detect(declared, &w)
	if err != nil {
		return nil, declared, nil, err
	}
	switch mt {
	case MediaTypeDockerManifest, MediaTypeOCIManifest:
		m, err := parseManifest(mt, &w)
		if err != nil {
			return nil, mt, nil, err
		}
		return m, mt, raw, nil
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
		l, err := parseList(mt, &w)
		if err != nil {
			return nil, mt, nil, err
		}
		return l, mt, raw, nil
	default: // Docker schema 1
		m, payload, err := parseSchema1(mt, raw, &w)
		if err != nil {
			return nil, mt, nil, err
		}
		return m, mt, payload, nil
	}
}

// detect settles the media type of a document from the declared type and the
// body, as ParseDigest documents.
func detect(declared string, w *wireDocument) (string, error) {
	mt := declared
	switch {
	case !isGenericMediaType(declared):
		if w.MediaType != "" && w.MediaType != declared {
			return "", invalid("mediaType: document says %q but was declared %q", w.MediaType, declared)
		}
	case w.MediaType != "":
		mt = w.MediaType
		if (!IsManifest(mt) && !IsManifestList(mt)) || normalizeMediaType(mt) != mt {
			return "", &ParseError{
				MediaType: mt,
				Reason:    fmt.Sprintf("mediaType: %q is not a manifest or manifest list media type", mt),
				Err:       ErrUnsupportedMediaType,
			}
		}
	case w.SchemaVersion == nil:
		return "", invalid("schemaVersion: required")
	case *w.SchemaVersion == 1:
		mt = MediaTypeDockerSchema1
	case *w.SchemaVersion != 2:
		return "", invalid("schemaVersion: must be 1 or 2, got %d", *w.SchemaVersion)
	case w.Config != nil && w.Manifests != nil:
		return "", invalid("document has both config and manifests: cannot tell an image manifest from an index")
	case w.Config != nil || w.Layers != nil:
		mt = MediaTypeOCIManifest
	case w.Manifests != nil:
		mt = MediaTypeOCIIndex
	default:
		return "", invalid("document has neither config and layers nor manifests: cannot tell an image manifest from an index")
	}
	// A signed body is parsed as signed whatever it was called: its digest
	// is that of its payload either way.
	if mt == MediaTypeDockerSchema1 && present(w.Signatures) {
		mt = MediaTypeDockerSchema1Signed
	}
	return mt, nil
}

// present reports whether a raw JSON field was given a value other than null.
func present(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }

// checkSchemaVersion checks the schemaVersion field against want.
func checkSchemaVersion(w *wireDocument, want int) error {
	if w.SchemaVersion == nil {
		return invalid("schemaVersion: required")
	}
	if *w.SchemaVersion != want {
		return invalid("schemaVersion: must be %d, got %d", want, *w.SchemaVersion)
	}
	return nil
}

// parseManifest validates a Docker schema 2 or OCI image manifest
// (image-spec manifest.md; Docker "Image Manifest Version 2, Schema 2").
func parseManifest(mt string, w *wireDocument) (*Manifest, error) {
	if err := checkSchemaVersion(w, 2); err != nil {
		return nil, err
	}
	if mt == MediaTypeDockerManifest && w.MediaType == "" {
		return nil, invalid("mediaType: required in a Docker schema 2 manifest")
	}
	// A document that is both a manifest and an index is ambiguous; clients
	// could resolve it differently (GHSA-77vh-xpmg-72qh).
	if w.Manifests != nil {
		return nil, invalid("manifests: not allowed in an image manifest")
	}
	if w.Config == nil {
		return nil, invalid("config: required")
	}
	config, err := checkDescriptor("config", w.Config)
	if err != nil {
		return nil, err
	}
	if w.Layers == nil {
		return nil, invalid("layers: required")
	}
	m := &Manifest{
		MediaType:     mt,
		SchemaVersion: 2,
		Config:        &Blob{Digest: config.Digest, Size: config.Size, MediaType: config.MediaType, URLs: config.URLs},
		Layers:        make([]Blob, 0, len(w.Layers)),
		ArtifactType:  w.ArtifactType,
		Annotations:   w.Annotations,
	}
	for i := range w.Layers {
		l, err := checkDescriptor(fmt.Sprintf("layers[%d]", i), &w.Layers[i])
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, Blob{
			Digest:    l.Digest,
			Size:      l.Size,
			MediaType: l.MediaType,
			Foreign:   IsForeignLayer(l.MediaType),
			URLs:      l.URLs,
		})
	}
	if err := checkArtifactType("artifactType", w.ArtifactType); err != nil {
		return nil, err
	}
	if w.Subject != nil {
		s, err := checkDescriptor("subject", w.Subject)
		if err != nil {
			return nil, err
		}
		m.Subject = &s
	}
	return m, nil
}

// parseList validates a Docker manifest list or an OCI image index
// (image-spec image-index.md; Docker "Manifest List").
func parseList(mt string, w *wireDocument) (*ManifestList, error) {
	if err := checkSchemaVersion(w, 2); err != nil {
		return nil, err
	}
	if mt == MediaTypeDockerManifestList && w.MediaType == "" {
		return nil, invalid("mediaType: required in a Docker manifest list")
	}
	if w.Config != nil {
		return nil, invalid("config: not allowed in an index")
	}
	if w.Layers != nil {
		return nil, invalid("layers: not allowed in an index")
	}
	if w.Manifests == nil {
		return nil, invalid("manifests: required")
	}
	l := &ManifestList{
		MediaType:     mt,
		SchemaVersion: 2,
		Manifests:     make([]ocispec.Descriptor, 0, len(w.Manifests)),
		ArtifactType:  w.ArtifactType,
		Annotations:   w.Annotations,
	}
	for i := range w.Manifests {
		d, err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), &w.Manifests[i])
		if err != nil {
			return nil, err
		}
		l.Manifests = append(l.Manifests, d)
	}
	if err := checkArtifactType("artifactType", w.ArtifactType); err != nil {
		return nil, err
	}
	if w.Subject != nil {
		s, err := checkDescriptor("subject", w.Subject)
		if err != nil {
			return nil, err
		}
		l.Subject = &s
	}
	return l, nil
}

// checkDescriptor validates a descriptor found at path (image-spec
// descriptor.md) and converts it.
func checkDescriptor(path string, d *wireDescriptor) (ocispec.Descriptor, error) {
	if d.MediaType == "" {
		return ocispec.Descriptor{}, invalid("%s.mediaType: required", path)
	}
	if !validMediaType(d.MediaType) {
		return ocispec.Descriptor{}, invalid("%s.mediaType: %q is not a valid media type", path, d.MediaType)
	}
	if err := checkDigest(d.Digest); err != nil {
		return ocispec.Descriptor{}, invalid("%s.digest: %v", path, err)
	}
	if d.Size == nil {
		return ocispec.Descriptor{}, invalid("%s.size: required", path)
	}
	if *d.Size < 0 {
		return ocispec.Descriptor{}, invalid("%s.size: must not be negative, got %d", path, *d.Size)
	}
	for i, u := range d.URLs {
		p, err := url.Parse(u)
		if err != nil {
			return ocispec.Descriptor{}, invalid("%s.urls[%d]: %v", path, i, err)
		}
		if !p.IsAbs() || p.Host == "" {
			return ocispec.Descriptor{}, invalid("%s.urls[%d]: %q is not an absolute URL", path, i, u)
		}
	}
	if d.Data != nil {
		if int64(len(d.Data)) != *d.Size {
			return ocispec.Descriptor{}, invalid("%s.data: %d bytes but size is %d", path, len(d.Data), *d.Size)
		}
		if got := d.Digest.Algorithm().FromBytes(d.Data); got != d.Digest {
			return ocispec.Descriptor{}, invalid("%s.data: has digest %s, descriptor says %s", path, got, d.Digest)
		}
	}
	if d.Platform != nil {
		if d.Platform.Architecture == "" {
			return ocispec.Descriptor{}, invalid("%s.platform.architecture: required", path)
		}
		if d.Platform.OS == "" {
			return ocispec.Descriptor{}, invalid("%s.platform.os: required", path)
		}
	}
	if err := checkArtifactType(path+".artifactType", d.ArtifactType); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{
		MediaType:    d.MediaType,
		Digest:       d.Digest,
		Size:         *d.Size,
		URLs:         d.URLs,
		Annotations:  d.Annotations,
		Data:         d.Data,
		Platform:     d.Platform,
		ArtifactType: d.ArtifactType,
	}, nil
}

// checkArtifactType validates an optional artifactType field.
func checkArtifactType(path, artifactType string) error {
	if artifactType != "" && !validMediaType(artifactType) {
		return invalid("%s: %q is not a valid media type", path, artifactType)
	}
	return nil
}

// checkDigest validates a digest and accepts only the algorithms the OCI
// image spec registers, SHA-256 and SHA-512.
func checkDigest(d digest.Digest) error {
	if d == "" {
		return errors.New("required")
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if alg := d.Algorithm(); alg != digest.SHA256 && alg != digest.SHA512 {
		return digest.ErrDigestUnsupported
	}
	return nil
}

// firstNonSpace returns the first byte of raw that is not JSON white space,
// or 0.
func firstNonSpace(raw []byte) byte {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b
	}
	return 0
}
