package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestOCIConformance runs the OCI distribution-spec conformance suite (its
// version pinned in internal/conformance/go.mod) against the built server:
// once with push on, as a REST user, and once read-only against content a
// sync brought in from a Debian docker-registry. Every failure fails the
// test, named; so does any skip, since each is a feature missing.
func TestOCIConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	suite := buildConformance(t)
	bin := buildServer(t)

	t.Run("push", func(t *testing.T) {
		p, password := startConformanceServer(t, bin)
		r := runConformance(t, suite, pushEnv(p.content, password))
		r.check(t, false)
	})

	t.Run("read-only", func(t *testing.T) {
		if _, err := exec.LookPath(regtest.DistributionBinary); err != nil && os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("MOORING_TEST_REQUIRE is set but %s is not installed", regtest.DistributionBinary)
		}
		upstream := regtest.StartDistribution(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		amd, err := regtest.PushImage(ctx, upstream, "conformance/ro", "amd64", regtest.ImageOpts{Seed: "ro-amd64", Layers: 2, Format: regtest.OCI})
		if err != nil {
			t.Fatal(err)
		}
		arm, err := regtest.PushImage(ctx, upstream, "conformance/ro", "arm64", regtest.ImageOpts{Seed: "ro-arm64", Format: regtest.OCI,
			Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}})
		if err != nil {
			t.Fatal(err)
		}
		list, err := regtest.PushIndex(ctx, upstream, "conformance/ro", "latest", regtest.OCI, amd, arm)
		if err != nil {
			t.Fatal(err)
		}

		// A signature-like artifact whose subject is the amd64 image,
		// tagged so that a sync brings it in.
		sig := pushReferrer(ctx, t, upstream, "conformance/ro", "amd64-sig", amd)

		p, password := startConformanceServer(t, bin)
		api := &restClient{t: t, base: "http://" + p.api, password: password}
		repo := api.post("/pulp/api/v3/repositories/", map[string]any{"name": "ro"})
		remote := api.post("/pulp/api/v3/remotes/docker/docker/", map[string]any{
			"name": "ro", "url": "http://" + upstream, "upstream_name": "conformance/ro"})
		sync := api.post(remote["_href"].(string)+"sync/", map[string]any{"repository": repo["_href"]})
		if tk := api.waitTask(ctx, sync["task"].(string)); tk.State != "completed" {
			t.Fatalf("sync ended %s: %+v", tk.State, tk.Error)
		}
		api.post("/pulp/api/v3/docker-distributions/", map[string]any{
			"name": "ro", "base_path": "conformance/ro", "repository": repo["_href"]})

		// OCI content only: the suite accepts only OCI media types, and a
		// Docker manifest named by a tag is not served to such a client.
		var blobs []string
		for _, seed := range []struct {
			seed string
			n    int
		}{{"ro-amd64", 2}, {"ro-arm64", 1}} {
			for i := 0; i < seed.n; i++ {
				blobs = append(blobs, regtest.LayerDescriptor(seed.seed, i, 1<<10, ocispec.MediaTypeImageLayerGzip).Digest.String())
			}
		}
		r := runConformance(t, suite, map[string]string{
			"OCI_REGISTRY":                p.content,
			"OCI_REPO1":                   "conformance/ro",
			"OCI_API_PUSH":                "false",
			"OCI_API_BLOBS_DELETE":        "false",
			"OCI_API_MANIFESTS_DELETE":    "false",
			"OCI_API_TAGS_DELETE":         "false",
			"OCI_RO_DATA_TAGS":            "amd64 arm64 latest",
			"OCI_RO_DATA_MANIFESTS":       strings.Join([]string{amd.Digest.String(), arm.Digest.String(), list.Digest.String(), sig.String()}, " "),
			"OCI_RO_DATA_BLOBS":           strings.Join(blobs, " "),
			"OCI_RO_DATA_REFERRERS":       amd.Digest.String(),
			"OCI_API_BLOBS_UPLOAD_CANCEL": "false",
		})
		r.check(t, true)

		// The synced referrer is listed, with its artifact type.
		resp, err := http.Get("http://" + p.content + "/v2/conformance/ro/referrers/" + amd.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(sig.String())) || !bytes.Contains(body, []byte(referrerType)) {
			t.Errorf("referrers of the synced image: %d %s, want %s", resp.StatusCode, body, sig)
		}
	})
}

const referrerType = "application/vnd.example.signature"

// pushReferrer pushes to repo on host an artifact manifest (empty config
// and layer) whose subject is subject, tagged tag, and returns its digest.
func pushReferrer(ctx context.Context, t *testing.T, host, repo, tag string, subject ocispec.Descriptor) digest.Digest {
	t.Helper()
	r, err := regtest.Repository(host, repo)
	if err != nil {
		t.Fatal(err)
	}
	empty := ocispec.DescriptorEmptyJSON
	if err := r.Blobs().Push(ctx, empty, bytes.NewReader(empty.Data)); err != nil {
		t.Fatal(err)
	}
	subject = ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: referrerType,
		Config:       ocispec.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size},
		Layers:       []ocispec.Descriptor{{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size}},
		Subject:      &subject,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := r.Manifests().PushReference(ctx, desc, bytes.NewReader(raw), tag); err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}

// buildConformance builds the suite's binary from internal/conformance,
// a module of its own that pins the suite's version; the Go build cache
// makes later builds quick.
func buildConformance(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conformance")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/opencontainers/distribution-spec/conformance")
	cmd.Dir = filepath.Join("..", "..", "internal", "conformance")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the conformance suite: %v\n%s", err, out)
	}
	return bin
}

// pushEnv configures a conformance run with push on against registry, as
// the admin with password, with the optional push features Mooring has.
func pushEnv(registry, password string) map[string]string {
	return map[string]string{
		"OCI_REGISTRY":                  registry,
		"OCI_USERNAME":                  "admin",
		"OCI_PASSWORD":                  password,
		"OCI_API_BLOBS_UPLOAD_CANCEL":   "true",
		"OCI_API_MANIFESTS_TAG_PARAM":   "true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS": "true",
	}
}

func startConformanceServer(t *testing.T, bin string) (*serverProc, string) {
	t.Helper()
	password := randomHex(12)
	p := &serverProc{name: "mooring", bin: bin, api: freeAddr(t), content: freeAddr(t)}
	p.args = []string{"-data-dir", filepath.Join(t.TempDir(), "data"), "-api-addr", p.api, "-content-addr", p.content, "-log-level", "warn"}
	p.env = []string{"MOORING_ADMIN_PASSWORD=" + password}
	p.start(t)
	return p, password
}

// conformanceResult is what the suite reported: its junit.xml when it
// wrote one, and its printed report, which it always writes. (With push off
// the pinned version panics writing results.yaml before junit.xml, so the
// printed report is what a read-only run leaves.)
type conformanceResult struct {
	counts map[string]int // "Pass", "FAIL", "Skip", "Disabled", "Error", "Total"
	bad    []string       // "<name>: FAIL" and "<name>: Skip" lines with their reasons
	junit  *junitReport
	output string
}

type junitReport struct {
	Suites []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Disabled int `xml:"disabled,attr"`
	} `xml:"testsuite"`
}

// runConformance runs the suite with env and reads its report.
func runConformance(t *testing.T, suite string, env map[string]string) *conformanceResult {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(suite)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OCI_TLS=disabled", "OCI_RESULTS_DIR="+filepath.Join(dir, "results"), "OCI_LOG=error")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	r := &conformanceResult{counts: map[string]int{}, output: string(out)}
	if raw, err := os.ReadFile(filepath.Join(dir, "results", "junit.xml")); err == nil {
		r.junit = new(junitReport)
		if err := xml.Unmarshal(raw, r.junit); err != nil {
			t.Fatalf("junit.xml: %v", err)
		}
	}
	lines := strings.Split(string(out), "\n")
	inSummary := false
	for i, line := range lines {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "OCI Conformance Result:") {
			inSummary = true
			continue
		}
		if inSummary {
			if k, v, ok := strings.Cut(trim, ":"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					r.counts[strings.TrimRight(k, ".")] = n
				}
			}
			if trim == "" {
				inSummary = false
			}
			continue
		}
		if strings.HasSuffix(trim, ": FAIL") || strings.HasSuffix(trim, ": Skip") || strings.HasSuffix(trim, ": Error") {
			// Leaf cases only: a parent's status sums its children's.
			if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "OCI Conformance Test/") &&
				indent(lines[i+1]) > indent(line) {
				continue
			}
			reason := ""
			if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "- ") {
				reason = strings.TrimSpace(lines[i+1])
			}
			r.bad = append(r.bad, trim+" "+reason)
		}
	}
	if r.counts["Total"] == 0 {
		t.Fatalf("the suite printed no result summary:\n%s", out)
	}
	return r
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// check fails t with every failed and skipped case. readOnly allows what
// the suite disables without push.
func (r *conformanceResult) check(t *testing.T, readOnly bool) {
	t.Helper()
	c := r.counts
	t.Logf("conformance: %d checks: %d passed, %d failed, %d skipped, %d disabled, %d errors",
		c["Total"], c["Pass"], c["FAIL"], c["Skip"], c["Disabled"], c["Error"])
	if r.junit != nil && len(r.junit.Suites) > 0 {
		s := r.junit.Suites[0]
		t.Logf("junit.xml: %d tests, %d failures, %d skipped, %d disabled", s.Tests, s.Failures, s.Skipped, s.Disabled)
	}
	if c["FAIL"] > 0 || c["Skip"] > 0 || c["Error"] > 0 || len(r.bad) > 0 || (!readOnly && c["Disabled"] > 0) {
		t.Errorf("conformance suite: %d failed, %d skipped, %d errors, %d disabled:\n%s\n\nsuite output:\n%s",
			c["FAIL"], c["Skip"], c["Error"], c["Disabled"], strings.Join(r.bad, "\n"), r.output)
	}
}
