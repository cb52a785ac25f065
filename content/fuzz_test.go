package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzParse feeds Parse arbitrary media types and bodies. The seed corpus in
// testdata/fuzz/FuzzParse holds every supported format, valid and not. Parse
// must never panic, must fail only with a *ParseError wrapping a sentinel, and
// whatever it accepts must keep the bytes exactly and carry their digest.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"docker-schema2.json", "docker-foreign-layer.json", "docker-manifest-list.json", "oci-artifact.json", "oci-index.json"} {
		f.Add("", fixture(f, name))
	}
	f.Add(MediaTypeDockerSchema1Signed, signSchema1(f, schema1Payload, 2, nil))
	f.Fuzz(func(t *testing.T, mediaType string, raw []byte) {
		input := bytes.Clone(raw)
		doc, err := Parse(mediaType, raw)
		if !bytes.Equal(raw, input) {
			t.Fatal("Parse modified its input")
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %q is not a *ParseError", err, err)
			}
			if !errors.Is(err, ErrInvalidManifest) && !errors.Is(err, ErrUnsupportedMediaType) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %q wraps no expected sentinel", err)
			}
			return
		}

		if !bytes.Equal(rawOf(doc), raw) {
			t.Fatal("Raw differs from the input")
		}
		d := doc.Descriptor()
		if d.Size != int64(len(raw)) {
			t.Fatalf("Size = %d, want %d", d.Size, len(raw))
		}
		covered := raw
		if d.MediaType == MediaTypeDockerSchema1Signed {
			var w wireDocument
			if err := json.Unmarshal(raw, &w); err != nil {
				t.Fatalf("accepted a signed manifest that does not decode: %v", err)
			}
			if covered, err = jwsPayload(raw, w.Signatures); err != nil {
				t.Fatalf("accepted a signed manifest without a payload: %v", err)
			}
		}
		if want := digest.FromBytes(covered); d.Digest != want {
			t.Fatalf("Digest = %s, want %s", d.Digest, want)
		}
		switch doc.(type) {
		case *Manifest:
			if doc.ContentType() != TypeManifest || !IsManifest(d.MediaType) {
				t.Fatalf("a *Manifest with type %q and media type %q", doc.ContentType(), d.MediaType)
			}
		case *ManifestList:
			if doc.ContentType() != TypeManifestList || !IsManifestList(d.MediaType) {
				t.Fatalf("a *ManifestList with type %q and media type %q", doc.ContentType(), d.MediaType)
			}
		}
		for i, r := range doc.References() {
			if err := checkDigest(r.Digest); err != nil {
				t.Fatalf("References()[%d].Digest %q: %v", i, r.Digest, err)
			}
		}

		// Declaring the media type Parse settled on changes nothing.
		if _, err := Parse(d.MediaType, raw); err != nil {
			t.Fatalf("parsed as %s undeclared, but not when declared: %v", d.MediaType, err)
		}

		// The same bytes, asked for by their SHA-512, parse the same way
		// and report the SHA-512.
		want512 := digest.SHA512.FromBytes(covered)
		again, err := ParseDigest(mediaType, raw, want512)
		if err != nil {
			t.Fatalf("ParseDigest with the SHA-512: %v", err)
		}
		if again.Descriptor().Digest != want512 || again.Descriptor().MediaType != d.MediaType {
			t.Fatalf("ParseDigest gave %+v, want %s of %s", again.Descriptor(), want512, d.MediaType)
		}
	})
}
