package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
)

// Artifact types the tests attach.
const (
	cosignSigType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	notaryType    = "application/vnd.cncf.notary.signature"
	bundleType    = "application/vnd.dev.sigstore.bundle.v0.3+json"
	sbomType      = "application/spdx+json"
)

// TestSyncSignaturesTagSchema syncs signed images from CNCF distribution
// 2.8, which has no referrers API: referrers attached by oras are found
// through the referrers tag schema, cosign's companion tags by name.
func TestSyncSignaturesTagSchema(t *testing.T) {
	host := regtest.StartDistribution(t)
	oras := requireOras(t)
	ctx := context.Background()
	const repo = "team/app"
	push := func(tag string) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, host, repo, tag, regtest.ImageOpts{Seed: tag, Format: regtest.OCI})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1, v2, dev, plain := push("v1"), push("v2"), push("dev"), push("plain")
	sig1 := pushCompanion(t, host, repo, v1.Digest, ".sig")
	att1 := pushCompanion(t, host, repo, v1.Digest, ".att")
	sigDev := pushCompanion(t, host, repo, dev.Digest, ".sig")
	at := func(d digest.Digest) string { return host + "/" + repo + "@" + d.String() }
	notary := attach(t, oras, at(v2.Digest), notaryType, "notary")
	sbom := attach(t, oras, at(v1.Digest), sbomType, "sbom of v1")
	sbomSig := attach(t, oras, at(sbom.Digest), cosignSigType, "signature of the sbom")
	devSBOM := attach(t, oras, at(dev.Digest), sbomType, "sbom of dev")
	plainSBOM := attach(t, oras, at(plain.Digest), sbomType, "sbom of plain") // an SBOM is no signature
	if tags := upstreamTags(t, host, repo); !slices.Contains(tags, referrersTag(v2.Digest)) {
		t.Fatalf("oras attach made no referrers tag on docker-registry; tags %v", tags)
	}

	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		reqs := &counter{n: map[string]int{}, h: proxyTo(t, host)}
		url := serve(t, reqs)

		// Tag filters that drop every sha256-… tag: the companions of v1
		// come all the same, dev's (dev is not synced) do not.
		f := newFixture(t, db)
		r := remote.New("dist", url, repo)
		r.IncludeTags = []string{"v*"}
		res := f.sync(t, r, remote.SyncOptions{})
		wantTags := map[string]digest.Digest{"v1": v1.Digest, "v2": v2.Digest,
			companionTag(v1.Digest, ".sig"): sig1.Digest, companionTag(v1.Digest, ".att"): att1.Digest}
		checkTags(t, f, wantTags)
		if res.Manifests != 7 || res.Referrers != 5 {
			t.Errorf("synced %d manifests, %d as referrers; want v1, v2, 2 companions and 3 referrers", res.Manifests, res.Referrers)
		}
		checkReferrers(t, f, v1.Digest, sbom.Digest)
		checkReferrers(t, f, v2.Digest, notary.Digest)
		checkReferrers(t, f, sbom.Digest, sbomSig.Digest)
		checkAbsent(t, f, sigDev.Digest, devSBOM.Digest, plainSBOM.Digest, dev.Digest)
		f.checkBlob(t, sbom.Layer, strings.NewReader("sbom of v1"))

		// A resync reads the three referrers indexes, and nothing changes.
		reqs.reset()
		res = f.sync(t, r, remote.SyncOptions{})
		if res.Version != nil || res.ManifestRequests != 0 || reqs.get("GET blobs") != 0 {
			t.Errorf("resync: version %v, %d manifest GETs, %d blob GETs", res.Version, res.ManifestRequests, reqs.get("GET blobs"))
		}
		if n := reqs.get("GET manifests"); n != 3 {
			t.Errorf("resync made %d manifest GETs, want one per referrers index (v1, v2, the sbom)", n)
		}

		// sync_referrers=false: a mirror sync leaves them out.
		r.SkipReferrers = true
		res = f.sync(t, r, remote.SyncOptions{Mirror: true})
		checkTags(t, f, map[string]digest.Digest{"v1": v1.Digest, "v2": v2.Digest})
		if res.Manifests != 2 || res.Referrers != 0 {
			t.Errorf("without referrers: %d manifests, %d referrers", res.Manifests, res.Referrers)
		}
		checkReferrers(t, f, v1.Digest)
		checkAbsent(t, f, sig1.Digest, att1.Digest, sbom.Digest, notary.Digest)

		// signed_only without filters: plain (an SBOM only) and the
		// referrers tags (indexes, unsigned) are skipped.
		f = f.another(t, "signed")
		r = remote.New("dist", url, repo)
		res = f.sync(t, r, remote.SyncOptions{SignedOnly: true})
		checkTags(t, f, map[string]digest.Digest{"v1": v1.Digest, "v2": v2.Digest, "dev": dev.Digest,
			companionTag(v1.Digest, ".sig"): sig1.Digest, companionTag(v1.Digest, ".att"): att1.Digest,
			companionTag(dev.Digest, ".sig"): sigDev.Digest})
		if res.Unsigned != 6 || res.Referrers != 7 {
			t.Errorf("signed only: %d skipped, %d referrers; want plain and 5 referrers tags skipped, 7 referrers", res.Unsigned, res.Referrers)
		}
		checkAbsent(t, f, plain.Digest, plainSBOM.Digest)
		checkReferrers(t, f, dev.Digest, devSBOM.Digest)

		// signed_only without referrers: companion tags are then ordinary
		// tags, unsigned, but v2's notary signature still counts.
		f = f.another(t, "signed-only")
		r.SkipReferrers = true
		res = f.sync(t, r, remote.SyncOptions{SignedOnly: true})
		checkTags(t, f, map[string]digest.Digest{"v1": v1.Digest, "v2": v2.Digest, "dev": dev.Digest})
		if res.Manifests != 3 {
			t.Errorf("signed only without referrers: %d manifests, want 3", res.Manifests)
		}
	})
}

// TestSyncSignaturesAPI syncs from a registry with the referrers API
// (go-containerregistry's, in process): referrers come through it, the
// children of an index bring theirs, and Sigstore bundles count as
// signatures unless they hold an attestation.
func TestSyncSignaturesAPI(t *testing.T) {
	oras := requireOras(t)
	ctx := context.Background()
	var referrersCalls atomic.Int64
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	host := strings.TrimPrefix(serve(t, h), "http://")
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/referrers/") {
			referrersCalls.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	const repo = "team/app"
	push := func(tag string, platform *ocispec.Platform) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, host, repo, tag, regtest.ImageOpts{Seed: tag, Format: regtest.OCI, Platform: platform})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1 := push("v1", nil)
	amd := push("", &ocispec.Platform{OS: "linux", Architecture: "amd64"})
	arm := push("", &ocispec.Platform{OS: "linux", Architecture: "arm64"})
	multi, err := regtest.PushIndex(ctx, host, repo, "multi", regtest.OCI, amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	attested, bundled := push("attested", nil), push("bundled", nil)
	at := func(d digest.Digest) string { return host + "/" + repo + "@" + d.String() }
	api := "--distribution-spec=v1.1-referrers-api"
	sig := attach(t, oras, at(v1.Digest), cosignSigType, "cosign signature", api)
	armSig := attach(t, oras, at(arm.Digest), notaryType, "notation signature", api)
	attestation := attach(t, oras, at(attested.Digest), bundleType, "provenance", api,
		"--annotation", "dev.sigstore.bundle.predicateType=https://slsa.dev/provenance/v1")
	bundle := attach(t, oras, at(bundled.Digest), bundleType, "signature bundle", api,
		"--annotation", "dev.sigstore.bundle.predicateType=https://sigstore.dev/cosign/sign/v1")
	if tags := upstreamTags(t, host, repo); len(tags) != 4 {
		t.Fatalf("upstream tags %v: oras made referrers tags, the API is not what is tested", tags)
	}

	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		// Under on_demand, a referrer's layer waits for a pull, as any.
		f := newFixture(t, db)
		lazy := remote.New("lazy", url, repo)
		lazy.Policy, lazy.IncludeTags = remote.PolicyOnDemand, []string{"v1"}
		if err := remote.NewStore(db).Create(ctx, lazy); err != nil {
			t.Fatal(err)
		}
		f.sync(t, lazy, remote.SyncOptions{})
		checkReferrers(t, f, v1.Digest, sig.Digest)
		if _, err := f.blobs.Stat(ctx, sig.Layer); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("on_demand sync stored the signature's layer (%v)", err)
		}
		if !slices.ContainsFunc(f.units(t, content.TypeBlob), func(u repository.Content) bool { return u.Digest == sig.Layer }) {
			t.Errorf("the signature's layer is not in the version")
		}

		f = f.another(t, "api")
		r := remote.New("api", url, repo)
		r.IncludeTags = []string{"v1", "multi"}
		referrersCalls.Store(0)
		res := f.sync(t, r, remote.SyncOptions{})
		checkTags(t, f, map[string]digest.Digest{"v1": v1.Digest, "multi": multi.Digest})
		checkReferrers(t, f, v1.Digest, sig.Digest)
		checkReferrers(t, f, arm.Digest, armSig.Digest)
		if res.Referrers != 2 || referrersCalls.Load() == 0 {
			t.Errorf("%d referrers synced with %d referrers API calls", res.Referrers, referrersCalls.Load())
		}
		f.checkBlob(t, sig.Layer, strings.NewReader("cosign signature"))

		// signed_only: multi's index is not signed (only a child is), and
		// an attestation bundle is no signature.
		f = f.another(t, "signed")
		r.IncludeTags = nil
		res = f.sync(t, r, remote.SyncOptions{SignedOnly: true})
		checkTags(t, f, map[string]digest.Digest{"v1": v1.Digest, "bundled": bundled.Digest})
		checkReferrers(t, f, bundled.Digest, bundle.Digest)
		checkAbsent(t, f, multi.Digest, attested.Digest, attestation.Digest)
		if res.Unsigned != 2 {
			t.Errorf("signed only skipped %d, want multi and attested", res.Unsigned)
		}
	})
}

// TestSyncReferrersUpstreamFails: an upstream that fails to say whether it
// has the referrers API fails the sync, rather than a mirror sync removing
// the referrers it could not list.
func TestSyncReferrersUpstreamFails(t *testing.T) {
	ctx := context.Background()
	h := regtest.InProcessHandler()
	host := strings.TrimPrefix(serve(t, h), "http://")
	if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: "v1"}); err != nil {
		t.Fatal(err)
	}
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/referrers/") {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db)
		r := remote.New("flaky", url, "team/app")
		_, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{Mirror: true})
		var se *remote.SyncError
		if !errors.As(err, &se) || se.Op != "list referrers" || !strings.Contains(err.Error(), "503") {
			t.Fatalf("sync: %v, want a list referrers error with the 503", err)
		}
		if f.latest(t) != 0 {
			t.Errorf("a failed sync made version %d", f.latest(t))
		}
		r.SkipReferrers = true
		if res := f.sync(t, r, remote.SyncOptions{}); res.Version == nil {
			t.Errorf("without referrers the sync does not ask for them, and succeeds")
		}
	})
}

// TestRemoteSyncReferrersJSON: sync_referrers defaults to true, in JSON
// and in the store.
func TestRemoteSyncReferrersJSON(t *testing.T) {
	var r remote.Remote
	if err := json.Unmarshal([]byte(`{"name":"a","url":"http://x","upstream_name":"b"}`), &r); err != nil {
		t.Fatal(err)
	}
	if !r.SyncReferrers() {
		t.Errorf("sync_referrers left out is %v, want true", r.SyncReferrers())
	}
	if err := json.Unmarshal([]byte(`{"sync_referrers":false}`), &r); err != nil || r.SyncReferrers() {
		t.Errorf("sync_referrers false decoded as %v (%v)", r.SyncReferrers(), err)
	}
	out, _ := json.Marshal(r)
	if !bytes.Contains(out, []byte(`"sync_referrers":false`)) {
		t.Errorf("encoded %s", out)
	}
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		newFixture(t, db)
		s := remote.NewStore(db)
		on, off := remote.New("on", "http://x", "b"), remote.New("off", "http://x", "b")
		off.SkipReferrers = true
		for _, r := range []*remote.Remote{on, off} {
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []*remote.Remote{on, off} {
			got, err := s.Get(ctx, want.ID)
			if err != nil || got.SyncReferrers() != want.SyncReferrers() {
				t.Errorf("stored %s: sync_referrers %v (%v), want %v", want.Name, got.SyncReferrers(), err, want.SyncReferrers())
			}
		}
		off.SkipReferrers = false
		if err := s.Update(ctx, off); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, off.ID); !got.SyncReferrers() {
			t.Errorf("updated to sync_referrers true, stored false")
		}
	})
}

// another is f with a new empty repository.
func (f *fixture) another(t *testing.T, name string) *fixture {
	t.Helper()
	r, err := f.repos.CreateRepository(context.Background(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	g := *f
	g.repoID = r.ID
	return &g
}

// requireOras returns the path of oras, skipping the test when it is not
// installed (failing under MOORING_TEST_REQUIRE).
func requireOras(t *testing.T) string {
	t.Helper()
	p, err := testproc.LookPath("oras")
	if err == nil {
		return p
	}
	msg := "oras is not installed (go install oras.land/oras/cmd/oras@v1.3.6): " + err.Error()
	if os.Getenv("MOORING_TEST_REQUIRE") != "" {
		t.Fatal("MOORING_TEST_REQUIRE is set but " + msg)
	}
	t.Skip(msg)
	return ""
}

// attach is regtest.Attach, failing the test on error.
func attach(t *testing.T, oras, subject, artifactType, body string, args ...string) regtest.Attached {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := regtest.Attach(ctx, oras, subject, artifactType, body, args...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// pushCompanion is regtest.PushCompanion, failing the test on error.
func pushCompanion(t *testing.T, host, repo string, subject digest.Digest, suffix string) ocispec.Descriptor {
	t.Helper()
	d, err := regtest.PushCompanion(context.Background(), host, repo, subject, suffix)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var companionTag, referrersTag = regtest.CompanionTag, regtest.ReferrersTag

// upstreamTags lists the tags of repo on host.
func upstreamTags(t *testing.T, host, repo string) []string {
	t.Helper()
	r, err := regtest.Repository(host, repo)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	if err := r.Tags(context.Background(), "", func(page []string) error { tags = append(tags, page...); return nil }); err != nil {
		t.Fatal(err)
	}
	return tags
}

// checkTags asserts the latest version's tags are exactly want.
func checkTags(t *testing.T, f *fixture, want map[string]digest.Digest) {
	t.Helper()
	got := f.tags(t)
	for name, d := range want {
		if got[name] != d {
			t.Errorf("tag %s = %q, want %s", name, got[name], d)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("tag %s synced, want only %v", name, keys(want))
		}
	}
}

// checkReferrers asserts the latest version's manifests whose subject is
// subject are exactly want.
func checkReferrers(t *testing.T, f *fixture, subject digest.Digest, want ...digest.Digest) {
	t.Helper()
	in := repository.VersionRef{RepositoryID: f.repoID, Number: f.latest(t)}
	var got []digest.Digest
	for u, err := range f.repos.Contents(context.Background(), repository.ContentFilter{In: &in, Subject: subject}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u.Digest)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("referrers of %s: %v, want %v", subject, got, want)
	}
}

// checkAbsent asserts the latest version holds no manifest or list with
// these digests.
func checkAbsent(t *testing.T, f *fixture, digests ...digest.Digest) {
	t.Helper()
	for _, u := range f.units(t, content.TypeManifest, content.TypeManifestList) {
		if slices.Contains(digests, u.Digest) {
			t.Errorf("%s %s was synced", u.Type, u.Digest)
		}
	}
}

// BenchmarkResyncReferrers times the resync of an unchanged 100-tag
// repository (two manifest lists) with sync_referrers on and off, from
// CNCF distribution (no referrers API: the tag list says which documents
// have referrers, so it costs one request) and from a registry with the
// referrers API (one request per document), and reports the requests each
// resync makes.
func BenchmarkResyncReferrers(b *testing.B) {
	ds := bench.DefaultDataset
	ds.BaseSize, ds.UniqueSize = 64<<10, 16<<10
	for _, reg := range []struct {
		name  string
		start func(testing.TB) string
	}{
		{"distribution", regtest.StartDistribution},
		{"referrers-api", func(tb testing.TB) string {
			srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
			tb.Cleanup(srv.Close)
			return strings.TrimPrefix(srv.URL, "http://")
		}},
	} {
		b.Run(reg.name, func(b *testing.B) {
			host := reg.start(b)
			if _, err := bench.Load(context.Background(), host, "bench/app", ds); err != nil {
				b.Fatal(err)
			}
			var requests atomic.Int64
			proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				proxy.ServeHTTP(w, r)
			}))
			b.Cleanup(srv.Close)
			for _, skip := range []bool{false, true} {
				b.Run(map[bool]string{false: "sync_referrers=true", true: "sync_referrers=false"}[skip], func(b *testing.B) {
					f := newFixture(b, dbtest.Open(b, "sqlite"))
					r := remote.New("bench", srv.URL, "bench/app")
					r.SkipReferrers = skip
					ctx := context.Background()
					if _, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{}); err != nil {
						b.Fatal(err)
					}
					requests.Store(0)
					for b.Loop() {
						res, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{})
						if err != nil || res.Version != nil {
							b.Fatalf("resync of an unchanged upstream: %v, %v", res, err)
						}
					}
					b.ReportMetric(float64(requests.Load())/float64(b.N), "requests/op")
				})
			}
		})
	}
}
