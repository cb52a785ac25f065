package content

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestForeignLayers(t *testing.T) {
	tests := []struct {
		name        string
		mediaType   string
		raw         []byte
		wantForeign []bool
		wantURLs    []int
	}{
		{
			name:        "docker foreign layer",
			mediaType:   MediaTypeDockerManifest,
			raw:         fixture(t, "docker-foreign-layer.json"),
			wantForeign: []bool{true, false},
			wantURLs:    []int{1, 0},
		},
		{
			name:      "OCI non-distributable layers",
			mediaType: MediaTypeOCIManifest,
			raw: ociManifest(
				`{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"urls":["https://example.com/a","https://mirror.example.com/a"]}`,
				`{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`,
				`{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`,
				goodLayer,
			),
			wantForeign: []bool{true, true, true, false},
			wantURLs:    []int{2, 0, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(tt.mediaType, tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			m := doc.(*Manifest)
			if len(m.Layers) != len(tt.wantForeign) {
				t.Fatalf("%d layers, want %d", len(m.Layers), len(tt.wantForeign))
			}
			refs := doc.References()[1:]
			for i, l := range m.Layers {
				if l.Foreign != tt.wantForeign[i] || len(l.URLs) != tt.wantURLs[i] {
					t.Errorf("layers[%d]: Foreign = %v with %d URLs, want %v with %d", i, l.Foreign, len(l.URLs), tt.wantForeign[i], tt.wantURLs[i])
				}
				if len(refs[i].URLs) != tt.wantURLs[i] {
					t.Errorf("References()[%d] has %d URLs, want %d", i+1, len(refs[i].URLs), tt.wantURLs[i])
				}
			}
			if m.Config.Foreign {
				t.Error("config flagged foreign")
			}
		})
	}
}

func TestParseDigest(t *testing.T) {
	schema2 := fixture(t, "docker-schema2.json")
	signed := signSchema1(t, schema1Payload, 1, nil)
	tests := []struct {
		name      string
		mediaType string
		raw       []byte
		want      digest.Digest
		wantErr   error
	}{
		{"sha256 matches", MediaTypeDockerManifest, schema2, digest.FromBytes(schema2), nil},
		{"sha512 matches", MediaTypeDockerManifest, schema2, digest.SHA512.FromBytes(schema2), nil},
		{"signed schema 1, sha256 of the payload", MediaTypeDockerSchema1Signed, signed, digest.FromString(schema1Payload), nil},
		{"signed schema 1, sha512 of the payload", MediaTypeDockerSchema1Signed, signed, digest.SHA512.FromString(schema1Payload), nil},
		{"signed schema 1, digest of the whole document", MediaTypeDockerSchema1Signed, signed, digest.FromBytes(signed), ErrDigestMismatch},
		{"sha256 mismatch", MediaTypeDockerManifest, schema2, digest.FromString("something else"), ErrDigestMismatch},
		{"sha512 mismatch", MediaTypeDockerManifest, schema2, digest.SHA512.FromString("something else"), ErrDigestMismatch},
		{"malformed expected digest", MediaTypeDockerManifest, schema2, "sha256:abc", ErrInvalidManifest},
		{"unsupported expected algorithm", MediaTypeDockerManifest, schema2, digest.SHA384.FromBytes(schema2), ErrInvalidManifest},
		{"invalid document reported before the digest", MediaTypeOCIManifest, schema2, digest.FromBytes(schema2), ErrInvalidManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := ParseDigest(tt.mediaType, tt.raw, tt.want)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Digest != tt.want {
					t.Errorf("ParseError.Digest = %v, want the expected digest %s", pe, tt.want)
				}
				if errors.Is(err, ErrDigestMismatch) && !strings.Contains(err.Error(), string(tt.want)) {
					t.Errorf("error %q does not name the expected digest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.Descriptor().Digest; got != tt.want {
				t.Errorf("Digest = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDigestMismatchNamesBoth(t *testing.T) {
	raw := fixture(t, "oci-index.json")
	want := digest.FromString("another index")
	_, err := ParseDigest(MediaTypeOCIIndex, raw, want)
	msg := "digest mismatch: content has digest " + digest.FromBytes(raw).String() + ", expected " + want.String()
	if err == nil || err.Error() != msg {
		t.Errorf("err = %v\nwant  %s", err, msg)
	}
}

func TestRawIsACopy(t *testing.T) {
	raw := fixture(t, "docker-schema2.json")
	orig := bytes.Clone(raw)
	doc, err := Parse(MediaTypeDockerManifest, raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		raw[i] = 'x'
	}
	m := doc.(*Manifest)
	if !bytes.Equal(m.Raw, orig) {
		t.Error("Raw changed with the caller's buffer")
	}
	if m.Digest != digest.FromBytes(m.Raw) {
		t.Error("Digest does not match Raw")
	}
}

func TestMediaTypeHelpers(t *testing.T) {
	tests := []struct {
		mediaType                       string
		manifest, manifestList, foreign bool
	}{
		{MediaTypeDockerManifest, true, false, false},
		{MediaTypeOCIManifest, true, false, false},
		{MediaTypeDockerSchema1Signed, true, false, false},
		{MediaTypeDockerSchema1, true, false, false},
		{MediaTypeDockerManifestList, false, true, false},
		{MediaTypeOCIIndex + "; charset=utf-8", false, true, false},
		{"APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON", false, true, false},
		{MediaTypeDockerForeignLayer, false, false, true},
		{MediaTypeOCINondistributable, false, false, true},
		{MediaTypeOCINondistributableGz, false, false, true},
		{MediaTypeDockerLayer, false, false, false},
		{MediaTypeOCILayerZstd, false, false, false},
		{"application/json", false, false, false},
		{"", false, false, false},
	}
	for _, tt := range tests {
		if got := IsManifest(tt.mediaType); got != tt.manifest {
			t.Errorf("IsManifest(%q) = %v", tt.mediaType, got)
		}
		if got := IsManifestList(tt.mediaType); got != tt.manifestList {
			t.Errorf("IsManifestList(%q) = %v", tt.mediaType, got)
		}
		if got := IsForeignLayer(tt.mediaType); got != tt.foreign {
			t.Errorf("IsForeignLayer(%q) = %v", tt.mediaType, got)
		}
	}
	for _, mt := range ManifestMediaTypes {
		if !IsManifest(mt) && !IsManifestList(mt) {
			t.Errorf("ManifestMediaTypes lists %q, which is neither", mt)
		}
	}
}

func TestTagType(t *testing.T) {
	tests := map[Type]Type{
		TypeManifest:        TypeManifestTag,
		TypeManifestList:    TypeManifestListTag,
		TypeBlob:            "",
		TypeManifestTag:     "",
		TypeManifestListTag: "",
	}
	for target, want := range tests {
		if got := TagType(target); got != want {
			t.Errorf("TagType(%q) = %q, want %q", target, got, want)
		}
		if want != "" && !want.IsTag() {
			t.Errorf("%q is not a tag type", want)
		}
	}
}
