package content

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/opencontainers/go-digest"
)

// wireFSLayer is one entry of a schema 1 fsLayers array.
type wireFSLayer struct {
	BlobSum digest.Digest `json:"blobSum"`
}

// wireV1History is one entry of a schema 1 history array.
type wireV1History struct {
	V1Compatibility string `json:"v1Compatibility"`
}

// wireJWS is one signature of a signed schema 1 manifest, in the JWS JSON
// serialization libtrust wrote. Only the protected header matters here.
type wireJWS struct {
	Protected string `json:"protected"`
}

// wireProtected is the part of a protected JWS header that locates the
// payload inside the signed document.
type wireProtected struct {
	FormatLength *int    `json:"formatLength"`
	FormatTail   *string `json:"formatTail"`
}

// parseSchema1 validates a Docker v2 schema 1 manifest, signed or not, and
// returns the bytes its digest covers: the whole document when unsigned, the
// JWS payload when signed.
//
// The fields are taken from the payload, since that is what the digest names;
// a document whose unsigned view differs from the payload (say, a second
// fsLayers key after the cut) is rejected rather than resolved one way.
func parseSchema1(mt string, raw []byte, w *wireDocument) (*Manifest, []byte, error) {
	payload := raw
	if mt == MediaTypeDockerSchema1Signed {
		if !present(w.Signatures) {
			return nil, nil, invalid("signatures: required in a signed schema 1 manifest")
		}
		var err error
		payload, err = jwsPayload(raw, w.Signatures)
		if err != nil {
			return nil, nil, err
		}
		if firstNonSpace(payload) != '{' {
			return nil, nil, invalid("signed payload is not a JSON object")
		}
		var p wireDocument
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, nil, invalid("%s", jsonReason("signed payload: ", err))
		}
		if err := checkDuplicateKeys(payload); err != nil {
			return nil, nil, err
		}
		if present(p.Signatures) {
			return nil, nil, invalid("signed payload still holds signatures")
		}
		p.Signatures = w.Signatures
		if !reflect.DeepEqual(&p, w) {
			return nil, nil, invalid("signed payload differs from the document it was cut from")
		}
	}

	if err := checkSchemaVersion(w, 1); err != nil {
		return nil, nil, err
	}
	if len(w.FSLayers) == 0 {
		return nil, nil, invalid("fsLayers: required, and must not be empty")
	}
	// Registries reject a mismatch: each history entry describes the layer
	// at the same index.
	if len(w.History) != len(w.FSLayers) {
		return nil, nil, invalid("history: %d entries for %d fsLayers", len(w.History), len(w.FSLayers))
	}
	m := &Manifest{
		MediaType:     mt,
		SchemaVersion: 1,
		Name:          w.Name,
		Tag:           w.Tag,
		Architecture:  w.Architecture,
	}
	seen := make(map[digest.Digest]bool, len(w.FSLayers))
	for i, l := range w.FSLayers {
		if err := checkDigest(l.BlobSum); err != nil {
			return nil, nil, invalid("fsLayers[%d].blobSum: %v", i, err)
		}
		if seen[l.BlobSum] {
			continue
		}
		seen[l.BlobSum] = true
		m.Layers = append(m.Layers, Blob{Digest: l.BlobSum, Size: SizeUnknown, MediaType: MediaTypeDockerLayer})
	}
	return m, payload, nil
}

// jwsPayload rebuilds the payload of a libtrust "pretty" JWS: the document cut
// at formatLength, followed by the base64url-decoded formatTail, both taken
// from the protected headers, which must all agree.
func jwsPayload(raw []byte, signatures json.RawMessage) ([]byte, error) {
	var sigs []wireJWS
	if err := json.Unmarshal(signatures, &sigs); err != nil {
		return nil, invalid("%s", jsonReason("signatures: ", err))
	}
	if len(sigs) == 0 {
		return nil, invalid("signatures: must not be empty")
	}
	var (
		length int
		tail   []byte
	)
	for i, s := range sigs {
		if s.Protected == "" {
			return nil, invalid("signatures[%d].protected: required", i)
		}
		header, err := decodeBase64URL(s.Protected)
		if err != nil {
			return nil, invalid("signatures[%d].protected: %v", i, err)
		}
		var p wireProtected
		if err := json.Unmarshal(header, &p); err != nil {
			return nil, invalid("%s", jsonReason(fmt.Sprintf("signatures[%d].protected: ", i), err))
		}
		if p.FormatLength == nil {
			return nil, invalid("signatures[%d].protected.formatLength: required", i)
		}
		if p.FormatTail == nil {
			return nil, invalid("signatures[%d].protected.formatTail: required", i)
		}
		t, err := decodeBase64URL(*p.FormatTail)
		if err != nil {
			return nil, invalid("signatures[%d].protected.formatTail: %v", i, err)
		}
		if i == 0 {
			length, tail = *p.FormatLength, t
			continue
		}
		if *p.FormatLength != length || !bytes.Equal(t, tail) {
			return nil, invalid("signatures[%d].protected: formatLength and formatTail disagree with signatures[0]", i)
		}
	}
	if length < 0 || length > len(raw) {
		return nil, invalid("signatures[0].protected.formatLength: %d is outside the %d-byte document", length, len(raw))
	}
	payload := make([]byte, 0, length+len(tail))
	payload = append(payload, raw[:length]...)
	return append(payload, tail...), nil
}

// decodeBase64URL decodes base64url with or without padding, as JOSE
// producers disagree on it.
func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
