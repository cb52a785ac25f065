package regtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CompanionTag is the tag cosign gives the signature (suffix ".sig"),
// attestation (".att") or SBOM (".sbom") of the manifest with digest d:
// <alg>-<hex><suffix>.
func CompanionTag(d digest.Digest, suffix string) string { return ReferrersTag(d) + suffix }

// ReferrersTag is the tag of the referrers index of digest d in the
// distribution spec's referrers tag schema: <alg>-<hex>.
func ReferrersTag(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() }

// companionLayers are the layer media types of cosign's companions.
var companionLayers = map[string]string{
	".sig":  "application/vnd.dev.cosign.simplesigning.v1+json",
	".att":  "application/vnd.dsse.envelope.v1+json",
	".sbom": "text/spdx+json",
}

// PushCompanion pushes to repo on host a manifest shaped like cosign's
// signature, attestation or SBOM (suffix ".sig", ".att" or ".sbom") of the
// manifest with digest subject, tagged as cosign tags it (CompanionTag),
// and returns its descriptor. Nothing in it is really signed.
func PushCompanion(ctx context.Context, host, repo string, subject digest.Digest, suffix string) (ocispec.Descriptor, error) {
	layerType, ok := companionLayers[suffix]
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("no cosign companion ends in %q", suffix)
	}
	r, err := Repository(host, repo)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	payload := fmt.Appendf(nil, `{"critical":{"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":{"suffix":%q}}`, subject, suffix)
	config := fmt.Appendf(nil, `{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[%q]}}`, digest.FromBytes(payload))
	layer := ocispec.Descriptor{MediaType: layerType, Digest: digest.FromBytes(payload), Size: int64(len(payload)),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQDregtest"}}
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	for _, b := range []struct {
		desc ocispec.Descriptor
		raw  []byte
	}{{layer, payload}, {cfg, config}} {
		if err := pushBlob(ctx, r, b.desc, func() io.Reader { return bytes.NewReader(b.raw) }); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	raw, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
		"config": cfg, "layers": []ocispec.Descriptor{layer}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	return desc, pushManifest(ctx, r, desc, raw, CompanionTag(subject, suffix))
}

// Attached is an artifact Attach pushed: its manifest's digest, and that
// of its one layer (the file attached).
type Attached struct {
	Digest, Layer digest.Digest
}

// Attach runs `oras attach --plain-http` (oras is the binary's path) to
// attach a file holding body, with the given artifact type, to subject
// (host/repo@digest); args go before the subject, such as
// "--distribution-spec=v1.1-referrers-api" or "--annotation", "k=v".
func Attach(ctx context.Context, oras, subject, artifactType, body string, args ...string) (Attached, error) {
	dir, err := os.MkdirTemp("", "regtest-attach-")
	if err != nil {
		return Attached{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "payload"), []byte(body), 0o644); err != nil {
		return Attached{}, err
	}
	args = append([]string{"attach", "--plain-http", "--artifact-type", artifactType,
		"--format", "go-template", "--template", "{{.digest}}"}, args...)
	cmd := exec.CommandContext(ctx, oras, append(args, subject, "payload")...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Attached{}, fmt.Errorf("oras %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, stderr.String())
	}
	d, err := digest.Parse(strings.TrimSpace(string(out)))
	if err != nil {
		return Attached{}, fmt.Errorf("oras attach printed %q: %w", out, err)
	}
	return Attached{Digest: d, Layer: digest.FromString(body)}, nil
}
