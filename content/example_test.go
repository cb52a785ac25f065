package content_test

import (
	"errors"
	"fmt"

	"github.com/mooring-dev/mooring/content"
)

func ExampleParse() {
	raw := []byte(`{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:03f4658f8b782e12230c1783426bd3bacce651ce582a4ffb6fbbfa2079428ecb",
      "size": 2479
    }
  ]
}`)
	// The registry said "application/json": the body tells what it is.
	doc, err := content.Parse("application/json", raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(doc.ContentType(), doc.Descriptor().MediaType)
	for _, ref := range doc.References() {
		fmt.Println(ref.Size, ref.Digest.Encoded()[:12])
	}

	// A layer with a malformed digest is rejected, and the error says where.
	_, err = content.Parse(content.MediaTypeOCIManifest, []byte(`{"schemaVersion":2,
	  "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
	  "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:03f4658f","size":2479}]}`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, content.ErrInvalidManifest))
	// Output:
	// docker.manifest application/vnd.oci.image.manifest.v1+json
	// 2 44136fa355b3
	// 2479 03f4658f8b78
	// invalid manifest: layers[0].digest: invalid checksum digest length
	// true
}

func ExampleValidateTagName() {
	for _, tag := range []string{"v1.2.3", "latest", "-rc1", "v1+build"} {
		if err := content.ValidateTagName(tag); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(tag, "ok")
	}
	// Output:
	// v1.2.3 ok
	// latest ok
	// invalid name: tag "-rc1" must not start with '-'
	// invalid name: tag "v1+build" contains '+'; only letters, digits, '_', '.' and '-' are allowed
}
