package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/internal/testproc"
)

// TestSyncSignaturesREST syncs, through the REST API, signed images from a
// Debian docker-registry (referrers through the tag schema) and from
// Mooring's own registry (referrers API), and pulls their signatures and
// referrers from the registry as cosign and oras would.
func TestSyncSignaturesREST(t *testing.T) {
	host := regtest.StartDistribution(t)
	oras, err := testproc.LookPath("oras")
	if err != nil {
		if os.Getenv("MOORING_TEST_REQUIRE") != "" {
			t.Fatalf("MOORING_TEST_REQUIRE is set but oras is not installed: %v", err)
		}
		t.Skipf("oras is not installed (go install oras.land/oras/cmd/oras@v1.3.6): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const repo = "team/app"
	push := func(tag string) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, host, repo, tag, regtest.ImageOpts{Seed: tag, Format: regtest.OCI})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1, v2 := push("v1"), push("v2")
	push("plain")
	sig, err := regtest.PushCompanion(ctx, host, repo, v1.Digest, ".sig")
	if err != nil {
		t.Fatal(err)
	}
	notary, err := regtest.Attach(ctx, oras, host+"/"+repo+"@"+v2.Digest.String(), "application/vnd.cncf.notary.signature", "notation")
	if err != nil {
		t.Fatal(err)
	}

	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		e := newEnv(t, db)
		e.runner(t)
		const remotes = "/pulp/api/v3/remotes/docker/docker/"
		// include_tags that drop the companion tag: it comes all the same.
		r := e.call("POST", remotes, map[string]any{"name": "dist", "url": "http://" + host, "upstream_name": repo,
			"include_tags": []string{"v*", "plain"}})
		if r.status != http.StatusCreated || r.json(t)["sync_referrers"] != true {
			t.Fatalf("create remote: %d %s, want sync_referrers true by default", r.status, r.body)
		}
		dist := r.json(t)["_href"].(string)
		for _, bad := range []map[string]any{{"sync_referrers": "sometimes"}, {"sync_referrers": nil}} {
			if r := e.call("PATCH", dist, bad); r.status != http.StatusBadRequest || r.json(t)["sync_referrers"] == nil {
				t.Errorf("PATCH %v: %d %s, want 400 about sync_referrers", bad, r.status, r.body)
			}
		}
		sync := func(remote, name string, body map[string]any) {
			t.Helper()
			_, href := e.createRepo(name)
			body["repository"] = href
			r := e.call("POST", remote+"sync/", body)
			if r.status != http.StatusAccepted {
				t.Fatalf("sync %s: %d %s", name, r.status, r.body)
			}
			if tk := e.waitTask(r.json(t)["task"].(string)); tk["state"] != "completed" {
				t.Fatalf("sync %s: %v", name, tk)
			}
			if r := e.call("POST", "/pulp/api/v3/docker-distributions/", map[string]any{"name": name, "base_path": name, "repository": href}); r.status != http.StatusCreated {
				t.Fatalf("distribution %s: %d %s", name, r.status, r.body)
			}
		}
		if r := e.call("POST", dist+"sync/", map[string]any{"repository": "/pulp/api/v3/repositories/x/", "signed_only": "maybe"}); r.status != http.StatusBadRequest || r.json(t)["signed_only"] == nil {
			t.Errorf("signed_only maybe: %d %s, want 400 about signed_only", r.status, r.body)
		}

		sync(dist, "signed", map[string]any{"signed_only": true})
		wantTags := []string{"v1", "v2", regtest.CompanionTag(v1.Digest, ".sig")}
		if got := e.tagsList("signed"); !sameSet(got, wantTags) {
			t.Errorf("tags of signed: %v, want %v", got, wantTags)
		}
		if r := e.get("GET", "/v2/signed/manifests/"+regtest.CompanionTag(v1.Digest, ".sig"), "Accept", ocispec.MediaTypeImageManifest); r.status != http.StatusOK || digest.FromBytes(r.body) != sig.Digest {
			t.Errorf("cosign's signature tag: %d %s", r.status, r.body)
		}
		if got := referrers(t, e, "signed", v2.Digest); len(got) != 1 || got[0].Digest != notary.Digest || got[0].ArtifactType != "application/vnd.cncf.notary.signature" {
			t.Errorf("referrers of v2: %+v, want the notation signature", got)
		}
		if r := e.get("GET", "/v2/signed/blobs/"+notary.Layer.String()); r.status != http.StatusOK || string(r.body) != "notation" {
			t.Errorf("the signature's layer: %d %s", r.status, r.body)
		}

		// Unsigned, plain was skipped under signed_only; it is synced
		// without.
		sync(dist, "all", map[string]any{"signed_only": false})
		if !slices.Contains(e.tagsList("all"), "plain") {
			t.Errorf("plain not synced without signed_only: %v", e.tagsList("all"))
		}

		// sync_referrers=false leaves them out.
		r = e.call("PATCH", dist, map[string]any{"sync_referrers": false, "include_tags": []string{"v*"}})
		if r.status != http.StatusOK || r.json(t)["sync_referrers"] != false {
			t.Fatalf("PATCH sync_referrers: %d %s", r.status, r.body)
		}
		if e.call("GET", dist, nil).json(t)["sync_referrers"] != false {
			t.Errorf("sync_referrers false not kept")
		}
		sync(dist, "bare", map[string]any{})
		if got := e.tagsList("bare"); !sameSet(got, []string{"v1", "v2"}) {
			t.Errorf("tags without referrers: %v", got)
		}
		if got := referrers(t, e, "bare", v2.Digest); len(got) != 0 {
			t.Errorf("referrers synced with sync_referrers false: %+v", got)
		}

		// Mooring's own registry as the upstream: referrers through its
		// referrers API.
		_, subject := e.pushImage("up/app", "v1", "subject", "")
		extra := fmt.Sprintf(`,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","subject":{"mediaType":%q,"digest":%q,"size":%d}`,
			content.MediaTypeOCIManifest, subject, len(e.get("GET", "/v2/up/app/manifests/v1", "Accept", content.MediaTypeOCIManifest).body))
		_, ref := e.pushImage("up/app", "sig", "cosign", extra) // a tag the filters drop
		r = e.call("POST", remotes, map[string]any{"name": "self", "url": e.content.URL, "upstream_name": "up/app",
			"username": mooring.AdminUser, "password": password, "include_tags": []string{"v1"}})
		if r.status != http.StatusCreated {
			t.Fatalf("create remote: %d %s", r.status, r.body)
		}
		sync(r.json(t)["_href"].(string), "copy", map[string]any{"signed_only": true})
		if got := referrers(t, e, "copy", subject); len(got) != 1 || got[0].Digest != ref {
			t.Errorf("referrers synced from Mooring: %+v, want %s", got, ref)
		}
		if got := e.tagsList("copy"); !sameSet(got, []string{"v1"}) {
			t.Errorf("tags synced from Mooring: %v", got)
		}
	})
}

// referrers lists the referrers of d at base path base, from the registry.
func referrers(t *testing.T, e *env, base string, d digest.Digest) []ocispec.Descriptor {
	t.Helper()
	r := e.get("GET", "/v2/"+base+"/referrers/"+d.String())
	var index ocispec.Index
	if r.status != http.StatusOK || json.Unmarshal(r.body, &index) != nil {
		t.Fatalf("referrers of %s at %s: %d %s", d, base, r.status, r.body)
	}
	return index.Manifests
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}
