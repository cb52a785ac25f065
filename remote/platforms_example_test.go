package remote_test

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/remote"
)

// A remote's include_platforms picks, from each manifest list or index,
// the images for the platforms named and the attestation manifests
// BuildKit marks as theirs.
func ExamplePlatforms_Select() {
	filter, err := remote.ParsePlatforms([]string{"linux/amd64", "linux/arm64/v8"})
	if err != nil {
		panic(err)
	}
	amd64 := digest.FromString("amd64 image")
	index := []ocispec.Descriptor{
		{Digest: amd64, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: digest.FromString("attestation"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{remote.AnnotationReferenceType: remote.ReferenceTypeAttestation, remote.AnnotationReferenceDigest: amd64.String()}},
		{Digest: digest.FromString("arm64 image"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{Digest: digest.FromString("s390x image"), Platform: &ocispec.Platform{OS: "linux", Architecture: "s390x"}},
	}
	for _, e := range filter.Select(index) {
		fmt.Println(e.Platform.OS + "/" + e.Platform.Architecture)
	}
	_, err = remote.ParsePlatforms([]string{"linux"})
	fmt.Println(err)
	// Output:
	// linux/amd64
	// unknown/unknown
	// linux/arm64
	// include_platforms: "linux" is not a platform: it names no architecture; write os/architecture[/variant], such as linux/arm64/v8
}
