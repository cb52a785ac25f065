package content

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture reads a file from testdata.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schema1Payload is a Docker v2 schema 1 manifest as the Docker daemon
// pretty-printed it before signing. The first and last fsLayers are the same
// empty layer, as in real images built with several metadata-only steps.
const schema1Payload = `{
   "schemaVersion": 1,
   "name": "library/hello-world",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [
      {
         "blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
      },
      {
         "blobSum": "sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb"
      },
      {
         "blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
      }
   ],
   "history": [
      {
         "v1Compatibility": "{\"id\":\"3\",\"parent\":\"2\",\"config\":{\"Cmd\":[\"/hello\"]}}"
      },
      {
         "v1Compatibility": "{\"id\":\"2\",\"parent\":\"1\"}"
      },
      {
         "v1Compatibility": "{\"id\":\"1\"}"
      }
   ]
}`

// signSchema1 signs payload the way libtrust's pretty JWS did: the
// signatures array is spliced in before the payload's closing "\n}", and each
// protected header records where to cut (formatLength) and what to put back
// (formatTail). Every signature is a real ES256 signature by a throwaway key,
// though Parse does not verify them. protected, when not nil, overrides the
// protected header of signature i.
func signSchema1(t testing.TB, payload string, n int, protected func(i int, formatLength int, formatTail string) string) []byte {
	t.Helper()
	cut := strings.LastIndex(payload, "\n}")
	if cut < 0 {
		t.Fatal("payload does not end in \\n}")
	}
	tail := payload[cut:]
	b64 := base64.RawURLEncoding.EncodeToString
	var sigs []string
	for i := range n {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		header := fmt.Sprintf(`{"formatLength":%d,"formatTail":%q,"time":"2016-02-03T17:12:52Z"}`, cut, b64([]byte(tail)))
		if protected != nil {
			header = protected(i, cut, b64([]byte(tail)))
		}
		prot := b64([]byte(header))
		h := sha256.Sum256([]byte(prot + "." + b64([]byte(payload))))
		r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		x, y := key.X.FillBytes(make([]byte, 32)), key.Y.FillBytes(make([]byte, 32))
		sigs = append(sigs, fmt.Sprintf(`      {
         "header": {
            "jwk": {
               "crv": "P-256",
               "kid": "throwaway-%d",
               "kty": "EC",
               "x": %q,
               "y": %q
            },
            "alg": "ES256"
         },
         "signature": %q,
         "protected": %q
      }`, i, b64(x), b64(y), b64(sig), prot))
	}
	return []byte(payload[:cut] + ",\n   \"signatures\": [\n" + strings.Join(sigs, ",\n") + "\n   ]" + tail)
}
