package content

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParse(t *testing.T) {
	signed := signSchema1(t, schema1Payload, 2, nil)
	tests := []struct {
		name      string
		mediaType string
		raw       []byte
		wantType  Type
		wantMT    string
		// wantDigest is the digest a registry would serve; the literal
		// values were computed with sha256sum over the fixture files.
		wantDigest digest.Digest
		check      func(t *testing.T, doc Document)
	}{
		{
			name:       "docker schema 2",
			mediaType:  MediaTypeDockerManifest,
			raw:        fixture(t, "docker-schema2.json"),
			wantType:   TypeManifest,
			wantMT:     MediaTypeDockerManifest,
			wantDigest: "sha256:4b662a2931540b393ac71d13352d72334a8c5c62d3d6b4d54a58a8652a87ab36",
			check: func(t *testing.T, doc Document) {
				m := doc.(*Manifest)
				if m.SchemaVersion != 2 || m.Config == nil || m.Config.MediaType != MediaTypeDockerConfig || m.Config.Size != 1457 {
					t.Errorf("config = %+v, schemaVersion %d", m.Config, m.SchemaVersion)
				}
				if len(m.Layers) != 2 || m.Layers[0].Size != 2818413 || m.Layers[1].Size != 31 {
					t.Errorf("layers = %+v", m.Layers)
				}
				refs := doc.References()
				if len(refs) != 3 || refs[0].Digest != m.Config.Digest || refs[2].Digest != m.Layers[1].Digest {
					t.Errorf("references = %+v, want config then layers", refs)
				}
			},
		},
		{
			name:       "OCI artifact with subject and artifactType",
			mediaType:  MediaTypeOCIManifest,
			raw:        fixture(t, "oci-artifact.json"),
			wantType:   TypeManifest,
			wantMT:     MediaTypeOCIManifest,
			wantDigest: "sha256:c2ad832394b0f39e408bae3907418ac3cb54de076fb2b420cc593e4e3bfc6a27",
			check: func(t *testing.T, doc Document) {
				m := doc.(*Manifest)
				if m.ArtifactType != "application/vnd.example.sbom.v1+json" {
					t.Errorf("ArtifactType = %q", m.ArtifactType)
				}
				if doc.Descriptor().ArtifactType != m.ArtifactType {
					t.Errorf("descriptor artifactType = %q", doc.Descriptor().ArtifactType)
				}
				if m.Subject == nil || m.Subject.MediaType != MediaTypeOCIManifest || m.Subject.Size != 1024 {
					t.Errorf("Subject = %+v", m.Subject)
				}
				if m.Config.Digest != ocispec.DescriptorEmptyJSON.Digest || m.Config.MediaType != MediaTypeOCIEmpty {
					t.Errorf("Config = %+v, want the empty descriptor", m.Config)
				}
				if m.Annotations["org.opencontainers.image.created"] != "2024-05-01T12:00:00Z" {
					t.Errorf("Annotations = %v", m.Annotations)
				}
				for _, r := range doc.References() {
					if r.Digest == m.Subject.Digest {
						t.Error("References includes the subject")
					}
				}
			},
		},
		{
			name:       "docker manifest list",
			mediaType:  MediaTypeDockerManifestList,
			raw:        fixture(t, "docker-manifest-list.json"),
			wantType:   TypeManifestList,
			wantMT:     MediaTypeDockerManifestList,
			wantDigest: "sha256:cae87efe685c4d50a34542ab7bfb457ccb77f1b1f13f88f45854cb7754859e0f",
			check: func(t *testing.T, doc Document) {
				l := doc.(*ManifestList)
				var got []string
				for _, m := range l.Manifests {
					got = append(got, m.Platform.OS+"/"+m.Platform.Architecture+"/"+m.Platform.Variant+"/"+m.Platform.OSVersion)
				}
				want := []string{"linux/amd64//", "linux/arm/v7/", "linux/arm64/v8/", "windows/amd64//10.0.20348.2227"}
				if !slices.Equal(got, want) {
					t.Errorf("platforms = %q, want %q", got, want)
				}
				if refs := doc.References(); len(refs) != 4 || refs[1].Platform.Variant != "v7" {
					t.Errorf("References = %+v", refs)
				}
			},
		},
		{
			name:       "OCI index",
			mediaType:  MediaTypeOCIIndex,
			raw:        fixture(t, "oci-index.json"),
			wantType:   TypeManifestList,
			wantMT:     MediaTypeOCIIndex,
			wantDigest: "sha256:e1c4fa86fa5256eb2a0ef99131df848e16fdd487bf10e87e7bce358a9449c424",
			check: func(t *testing.T, doc Document) {
				l := doc.(*ManifestList)
				if len(l.Manifests) != 3 || l.Manifests[2].Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
					t.Errorf("Manifests = %+v", l.Manifests)
				}
				if l.Annotations["org.opencontainers.image.ref.name"] != "1.0" {
					t.Errorf("Annotations = %v", l.Annotations)
				}
			},
		},
		{
			name:       "docker schema 1 signed",
			mediaType:  MediaTypeDockerSchema1Signed,
			raw:        signed,
			wantType:   TypeManifest,
			wantMT:     MediaTypeDockerSchema1Signed,
			wantDigest: digest.FromString(schema1Payload),
			check:      checkSchema1,
		},
		{
			name:       "docker schema 1 signed, detected from application/json",
			mediaType:  "application/json",
			raw:        signed,
			wantType:   TypeManifest,
			wantMT:     MediaTypeDockerSchema1Signed,
			wantDigest: digest.FromString(schema1Payload),
			check:      checkSchema1,
		},
		{
			name:       "docker schema 1 signed but declared unsigned",
			mediaType:  MediaTypeDockerSchema1,
			raw:        signed,
			wantType:   TypeManifest,
			wantMT:     MediaTypeDockerSchema1Signed,
			wantDigest: digest.FromString(schema1Payload),
			check:      checkSchema1,
		},
		{
			name:       "docker schema 1 unsigned, detected",
			mediaType:  "",
			raw:        []byte(schema1Payload),
			wantType:   TypeManifest,
			wantMT:     MediaTypeDockerSchema1,
			wantDigest: digest.FromString(schema1Payload),
			check:      checkSchema1,
		},
		{
			name:       "OCI manifest without mediaType, detected",
			mediaType:  "application/octet-stream",
			raw:        []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`),
			wantType:   TypeManifest,
			wantMT:     MediaTypeOCIManifest,
			wantDigest: digest.FromString(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`),
		},
		{
			name:       "OCI index without mediaType, detected",
			mediaType:  "",
			raw:        []byte(`{"schemaVersion":2,"manifests":[]}`),
			wantType:   TypeManifestList,
			wantMT:     MediaTypeOCIIndex,
			wantDigest: digest.FromString(`{"schemaVersion":2,"manifests":[]}`),
		},
		{
			name:       "detected from the body's mediaType",
			mediaType:  "application/json",
			raw:        fixture(t, "docker-schema2.json"),
			wantType:   TypeManifest,
			wantMT:     MediaTypeDockerManifest,
			wantDigest: "sha256:4b662a2931540b393ac71d13352d72334a8c5c62d3d6b4d54a58a8652a87ab36",
		},
		{
			name:       "Content-Type with parameters and capitals",
			mediaType:  "Application/VND.docker.distribution.manifest.list.v2+json; charset=utf-8",
			raw:        fixture(t, "docker-manifest-list.json"),
			wantType:   TypeManifestList,
			wantMT:     MediaTypeDockerManifestList,
			wantDigest: "sha256:cae87efe685c4d50a34542ab7bfb457ccb77f1b1f13f88f45854cb7754859e0f",
		},
		{
			name:       "OCI manifest declared, body without mediaType",
			mediaType:  MediaTypeOCIManifest,
			raw:        []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`),
			wantType:   TypeManifest,
			wantMT:     MediaTypeOCIManifest,
			wantDigest: digest.FromString(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`),
		},
		{
			name:       "exactly MaxManifestSize bytes",
			mediaType:  MediaTypeOCIIndex,
			raw:        padTo(`{"schemaVersion":2,"manifests":[]}`, MaxManifestSize),
			wantType:   TypeManifestList,
			wantMT:     MediaTypeOCIIndex,
			wantDigest: digest.FromBytes(padTo(`{"schemaVersion":2,"manifests":[]}`, MaxManifestSize)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(tt.mediaType, tt.raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if doc.ContentType() != tt.wantType {
				t.Errorf("ContentType = %q, want %q", doc.ContentType(), tt.wantType)
			}
			d := doc.Descriptor()
			if d.MediaType != tt.wantMT {
				t.Errorf("MediaType = %q, want %q", d.MediaType, tt.wantMT)
			}
			if d.Digest != tt.wantDigest {
				t.Errorf("Digest = %s, want %s", d.Digest, tt.wantDigest)
			}
			if d.Size != int64(len(tt.raw)) {
				t.Errorf("Size = %d, want %d", d.Size, len(tt.raw))
			}
			if raw := rawOf(doc); !bytes.Equal(raw, tt.raw) {
				t.Errorf("Raw differs from the input:\n%s", raw)
			}
			if tt.check != nil {
				tt.check(t, doc)
			}
		})
	}
}

func checkSchema1(t *testing.T, doc Document) {
	t.Helper()
	m := doc.(*Manifest)
	if m.SchemaVersion != 1 || m.Config != nil {
		t.Errorf("SchemaVersion = %d, Config = %+v", m.SchemaVersion, m.Config)
	}
	if m.Name != "library/hello-world" || m.Tag != "latest" || m.Architecture != "amd64" {
		t.Errorf("name, tag, architecture = %q, %q, %q", m.Name, m.Tag, m.Architecture)
	}
	want := []Blob{
		{Digest: "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4", Size: SizeUnknown, MediaType: MediaTypeDockerLayer},
		{Digest: "sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb", Size: SizeUnknown, MediaType: MediaTypeDockerLayer},
	}
	if !slices.EqualFunc(m.Layers, want, func(a, b Blob) bool {
		return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType && !a.Foreign
	}) {
		t.Errorf("Layers = %+v, want %+v (deduplicated, in listed order)", m.Layers, want)
	}
}

// padTo pads a JSON document with trailing white space to n bytes.
func padTo(doc string, n int) []byte {
	return append([]byte(doc), bytes.Repeat([]byte{' '}, n-len(doc))...)
}

func rawOf(doc Document) []byte {
	switch d := doc.(type) {
	case *Manifest:
		return d.Raw
	case *ManifestList:
		return d.Raw
	}
	return nil
}

// ociManifest builds an OCI image manifest whose layers are given as JSON.
func ociManifest(layers ...string) []byte {
	return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
		`"layers":[` + strings.Join(layers, ",") + `]}`)
}

const goodLayer = `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb","size":2479}`

func TestParseErrors(t *testing.T) {
	tooLarge := padTo(`{"schemaVersion":2,"manifests":[]}`, MaxManifestSize+1)
	// A second fsLayers key past the cut: the payload and the signed
	// document would name different layers.
	smuggled := signSchema1(t, schema1Payload, 1, nil)
	smuggled = bytes.Replace(smuggled, []byte("\n   ]\n}"), []byte("\n   ],\n   \"fsLayers\": [{\"blobSum\": \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"}]\n}"), 1)
	// A formatTail that rewrites the manifest rather than closing it.
	rewritten := signSchema1(t, schema1Payload, 1, func(int, int, string) string {
		cut := strings.Index(schema1Payload, "\n   \"name\"")
		tail := "\n   \"fsLayers\": [{\"blobSum\": \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"}],\n   \"history\": [{}]\n}"
		return `{"formatLength":` + strconv.Itoa(cut) + `,"formatTail":"` + base64.RawURLEncoding.EncodeToString([]byte(tail)) + `"}`
	})

	tests := []struct {
		name      string
		mediaType string
		raw       []byte
		want      error
		// wantMsg is the whole error message when it starts with "=",
		// otherwise a substring of it.
		wantMsg string
	}{
		{"too large", MediaTypeOCIIndex, tooLarge, ErrTooLarge, "=manifest too large: 4194305 bytes, the limit is 4194304"},
		{"too large is checked before JSON", MediaTypeOCIIndex, bytes.Repeat([]byte("x"), MaxManifestSize+1), ErrTooLarge, ""},
		{"empty", MediaTypeOCIManifest, nil, ErrInvalidManifest, "not a JSON object"},
		{"not an object", "", []byte(`[{"schemaVersion":2}]`), ErrInvalidManifest, "not a JSON object"},
		{"null", "", []byte(`null`), ErrInvalidManifest, "not a JSON object"},
		{"truncated JSON", MediaTypeOCIManifest, ociManifest(goodLayer)[:100], ErrInvalidManifest, "malformed JSON"},
		{"trailing garbage", MediaTypeOCIManifest, append(ociManifest(goodLayer), "{}"...), ErrInvalidManifest, "malformed JSON"},
		{"wrong JSON type", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb","size":"2479"}`), ErrInvalidManifest, "=invalid manifest: layers.size: got JSON string, want integer"},
		{"missing config", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"layers":[]}`), ErrInvalidManifest, "=invalid manifest: config: required"},
		{"missing layers", MediaTypeDockerManifest, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}`), ErrInvalidManifest, "layers: required"},
		{"config without digest", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","size":2},"layers":[]}`), ErrInvalidManifest, "config.digest: required"},
		{"config with negative size", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1},"layers":[]}`), ErrInvalidManifest, "config.size: must not be negative"},
		{"layer without size", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb"}`), ErrInvalidManifest, "layers[0].size: required"},
		{"layer without mediaType", MediaTypeOCIManifest, ociManifest(`{"digest":"sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb","size":1}`), ErrInvalidManifest, "layers[0].mediaType: required"},
		{"layer with malformed mediaType", MediaTypeOCIManifest, ociManifest(`{"mediaType":"tar gzip","digest":"sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb","size":1}`), ErrInvalidManifest, "layers[0].mediaType: \"tar gzip\" is not a valid media type"},
		{"bad digest in layers", MediaTypeOCIManifest, ociManifest(goodLayer, goodLayer, `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:`+strings.Repeat("z", 64)+`","size":1}`), ErrInvalidManifest, "=invalid manifest: layers[2].digest: invalid checksum digest format"},
		{"short digest in layers", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:03f4658f","size":1}`), ErrInvalidManifest, "layers[0].digest: invalid checksum digest length"},
		{"upper-case hex digest", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:03F4658F8B782E12230C1783426BD3BACCE651CE582A4FFB6FBBFA2079428ECB","size":1}`), ErrInvalidManifest, "layers[0].digest: invalid checksum digest format"},
		{"sha384 digest", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha384:` + strings.Repeat("ab", 48) + `","size":1}`), ErrInvalidManifest, "layers[0].digest: unsupported digest algorithm"},
		{"inline data disagrees with digest", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"W10="}`), ErrInvalidManifest, "layers[0].data: has digest"},
		{"relative URL", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"urls":["/blobs/x"]}`), ErrInvalidManifest, "layers[0].urls[0]: \"/blobs/x\" is not an absolute URL"},
		{"bad subject", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"a/b","size":3}}`), ErrInvalidManifest, "subject.digest: required"},
		{"bad artifactType", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"artifactType":"sbom","config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`), ErrInvalidManifest, "artifactType: \"sbom\" is not a valid media type"},
		{"schemaVersion 1 declared as schema 2", MediaTypeDockerManifest, bytes.Replace(fixture(t, "docker-schema2.json"), []byte(`"schemaVersion": 2`), []byte(`"schemaVersion": 1`), 1), ErrInvalidManifest, "=invalid manifest: schemaVersion: must be 2, got 1"},
		{"schemaVersion 3", "", []byte(`{"schemaVersion":3,"manifests":[]}`), ErrInvalidManifest, "schemaVersion: must be 1 or 2, got 3"},
		{"schemaVersion missing", MediaTypeOCIIndex, []byte(`{"manifests":[]}`), ErrInvalidManifest, "schemaVersion: required"},
		{"schemaVersion a string", MediaTypeOCIIndex, []byte(`{"schemaVersion":"2","manifests":[]}`), ErrInvalidManifest, "schemaVersion: got JSON string, want integer"},
		{"media type mismatch", MediaTypeOCIManifest, fixture(t, "docker-schema2.json"), ErrInvalidManifest, "mediaType: document says \"application/vnd.docker.distribution.manifest.v2+json\" but was declared \"application/vnd.oci.image.manifest.v1+json\""},
		{"list declared, manifest body", MediaTypeDockerManifestList, fixture(t, "docker-schema2.json"), ErrInvalidManifest, "mediaType: document says"},
		{"docker schema 2 without mediaType", MediaTypeDockerManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`), ErrInvalidManifest, "mediaType: required in a Docker schema 2 manifest"},
		{"docker list without mediaType", MediaTypeDockerManifestList, []byte(`{"schemaVersion":2,"manifests":[]}`), ErrInvalidManifest, "mediaType: required in a Docker manifest list"},
		{"manifest and index at once", "", []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"manifests":[]}`), ErrInvalidManifest, "cannot tell an image manifest from an index"},
		{"manifest with manifests", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"manifests":[]}`), ErrInvalidManifest, "manifests: not allowed in an image manifest"},
		{"index with layers", MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"manifests":[],"layers":[]}`), ErrInvalidManifest, "layers: not allowed in an index"},
		{"neither manifest nor index", "", []byte(`{"schemaVersion":2}`), ErrInvalidManifest, "cannot tell an image manifest from an index"},
		{"index without manifests", MediaTypeOCIIndex, []byte(`{"schemaVersion":2}`), ErrInvalidManifest, "manifests: required"},
		{"index entry without os", MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"platform":{"architecture":"amd64"}}]}`), ErrInvalidManifest, "manifests[0].platform.os: required"},
		{"unsupported declared type", "application/vnd.oci.artifact.manifest.v1+json", fixture(t, "oci-artifact.json"), ErrUnsupportedMediaType, "=unsupported media type: \"application/vnd.oci.artifact.manifest.v1+json\" is not a manifest or manifest list media type"},
		{"layer media type declared", MediaTypeDockerLayer, fixture(t, "docker-schema2.json"), ErrUnsupportedMediaType, ""},
		{"unsupported body type", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}`), ErrUnsupportedMediaType, "mediaType: \"application/vnd.oci.artifact.manifest.v1+json\""},
		{"duplicate mediaType", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[],"layers":[]}`), ErrInvalidManifest, `=invalid manifest: duplicate key "mediaType": keys that differ only in case count as the same`},
		{"keys differing in case", MediaTypeOCIManifest, ociManifest(`{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","Digest":"sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb","size":2}`), ErrInvalidManifest, `duplicate key "Digest"`},
		{"keys equal under Unicode folding", MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"ſchemaVersion":3,"manifests":[]}`), ErrInvalidManifest, `duplicate key "ſchemaVersion"`},
		{"duplicate annotation", MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"manifests":[],"annotations":{"a":"1","b":"2","a":"3"}}`), ErrInvalidManifest, `duplicate key "a"`},
		{"schema 1 without fsLayers", MediaTypeDockerSchema1, []byte(`{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"history":[]}`), ErrInvalidManifest, "fsLayers: required"},
		{"schema 1 history mismatch", MediaTypeDockerSchema1, []byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}],"history":[]}`), ErrInvalidManifest, "history: 0 entries for 1 fsLayers"},
		{"schema 1 bad blobSum", MediaTypeDockerSchema1, []byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"md5:abc"}],"history":[{}]}`), ErrInvalidManifest, "fsLayers[0].blobSum: unsupported digest algorithm"},
		{"schema 1 declared with schemaVersion 2", MediaTypeDockerSchema1, []byte(`{"schemaVersion":2,"fsLayers":[{"blobSum":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}],"history":[{}]}`), ErrInvalidManifest, "schemaVersion: must be 1, got 2"},
		{"signed schema 1 without signatures", MediaTypeDockerSchema1Signed, []byte(schema1Payload), ErrInvalidManifest, "signatures: required"},
		{"signed schema 1 with empty signatures", MediaTypeDockerSchema1Signed, []byte(`{"schemaVersion":1,"signatures":[]}`), ErrInvalidManifest, "signatures: must not be empty"},
		{"signed schema 1, protected not base64", MediaTypeDockerSchema1Signed, []byte(`{"schemaVersion":1,"signatures":[{"protected":"!!"}]}`), ErrInvalidManifest, "signatures[0].protected: illegal base64 data"},
		{"signed schema 1, no formatTail", MediaTypeDockerSchema1Signed, signSchema1(t, schema1Payload, 1, func(_, n int, _ string) string {
			return `{"formatLength":` + strconv.Itoa(n) + `}`
		}), ErrInvalidManifest, "signatures[0].protected.formatTail: required"},
		{"signed schema 1, formatLength past the end", MediaTypeDockerSchema1Signed, signSchema1(t, schema1Payload, 1, func(_, _ int, tail string) string {
			return `{"formatLength":1000000,"formatTail":"` + tail + `"}`
		}), ErrInvalidManifest, "signatures[0].protected.formatLength: 1000000 is outside the"},
		{"signed schema 1, negative formatLength", MediaTypeDockerSchema1Signed, signSchema1(t, schema1Payload, 1, func(_, _ int, tail string) string {
			return `{"formatLength":-5,"formatTail":"` + tail + `"}`
		}), ErrInvalidManifest, "formatLength: -5 is outside"},
		{"signed schema 1, signatures disagree", MediaTypeDockerSchema1Signed, signSchema1(t, schema1Payload, 2, func(i, n int, tail string) string {
			return `{"formatLength":` + strconv.Itoa(n-i) + `,"formatTail":"` + tail + `"}`
		}), ErrInvalidManifest, "signatures[1].protected: formatLength and formatTail disagree with signatures[0]"},
		{"signed schema 1, payload not JSON", MediaTypeDockerSchema1Signed, signSchema1(t, schema1Payload, 1, func(_, n int, _ string) string {
			return `{"formatLength":` + strconv.Itoa(n) + `,"formatTail":""}`
		}), ErrInvalidManifest, "signed payload: malformed JSON"},
		{"signed schema 1, second fsLayers past the cut", MediaTypeDockerSchema1Signed, smuggled, ErrInvalidManifest, `duplicate key "fsLayers"`},
		{"signed schema 1, payload differs from document", MediaTypeDockerSchema1Signed, rewritten, ErrInvalidManifest, "=invalid manifest: signed payload differs from the document it was cut from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(tt.mediaType, tt.raw)
			if err == nil {
				t.Fatalf("Parse succeeded with %T, want %v", doc, tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q is not %v", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if msg, ok := strings.CutPrefix(tt.wantMsg, "="); ok {
				if err.Error() != msg {
					t.Errorf("error = %q\nwant    %q", err, msg)
				}
			} else if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantMsg)
			}
			if tt.want == ErrTooLarge {
				return
			}
			if pe.Digest != digest.FromBytes(tt.raw) {
				t.Errorf("ParseError.Digest = %s, want the digest of the bytes", pe.Digest)
			}
		})
	}
}

// Annotations are decoded into a map, where keys that differ in case are
// different keys; real images carry such pairs and must be accepted.
func TestAnnotationKeysDifferingInCaseAreDistinct(t *testing.T) {
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"Org.Label":"1","org.label":"2"}}`)
	doc, err := Parse(MediaTypeOCIIndex, raw)
	if err != nil {
		t.Fatalf("annotations differing in case rejected: %v", err)
	}
	if a := doc.(*ManifestList).Annotations; a["Org.Label"] != "1" || a["org.label"] != "2" {
		t.Errorf("annotations = %v, want both keys kept", a)
	}
}
