package remote_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// rateLimitedImages pushes three images of a config and two layers each
// (9 blobs, none shared) as v1, v2 and v3: a fresh sync of them asks 13
// times (tag list, 3 manifests, 9 blobs).
func rateLimitedImages(t *testing.T, host, repo string) {
	t.Helper()
	for _, tag := range []string{"v1", "v2", "v3"} {
		if _, err := regtest.PushImage(context.Background(), host, repo, tag, regtest.ImageOpts{Layers: 2, Seed: repo + tag}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkBlobsOnce fails unless each of the 9 blobs was downloaded (GET
// answered 200) exactly once through the proxy.
func checkBlobsOnce(t *testing.T, p *regtest.QuotaProxy) {
	t.Helper()
	gets := p.BlobGETs()
	if len(gets) != 9 {
		t.Errorf("%d distinct blobs downloaded, want 9: %v", len(gets), gets)
	}
	for d, n := range gets {
		if n != 1 {
			t.Errorf("blob %s downloaded %d times, want once", d, n)
		}
	}
}

// TestRateLimit syncs through a proxy that rations requests as Docker Hub
// and the IETF draft do, in front of CNCF distribution.
func TestRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for quota windows of seconds by design")
	}
	if _, err := exec.LookPath(regtest.DistributionBinary); err != nil && os.Getenv(dbtest.EnvRequire) != "" {
		t.Fatalf("%s is set but %s is not installed", dbtest.EnvRequire, regtest.DistributionBinary)
	}
	host := regtest.StartDistribution(t)

	// A quota of 5 requests a second cannot serve the 13 requests at once,
	// but renews within the sync's patience: the sync spends it, waits for
	// the reset when it runs out, and never gets a 429.
	for _, c := range []struct {
		name    string
		headers regtest.QuotaHeaders
	}{{"quota runs low/IETF", regtest.IETFQuotaHeaders}, {"quota runs low/Docker Hub", regtest.DockerHubQuotaHeaders}} {
		t.Run(c.name, func(t *testing.T) {
			repo := "low/" + strings.ReplaceAll(strings.ToLower(c.name[len("quota runs low/"):]), " ", "")
			rateLimitedImages(t, host, repo)
			p := regtest.StartQuotaProxy(t, host, regtest.QuotaOptions{Limit: 5, Window: time.Second, Headers: c.headers})
			f := newFixture(t, dbtest.Open(t, "sqlite"))
			res := f.sync(t, remote.New("low", p.URL, repo), remote.SyncOptions{})
			if res.Tags != 3 || res.BlobsDownloaded != 9 {
				t.Errorf("synced %+v, want 3 tags and 9 blobs", *res)
			}
			if n := p.TooMany(); n != 0 {
				t.Errorf("the upstream answered 429 %d times; the sync should have slowed down instead", n)
			}
			checkBlobsOnce(t, p)
		})
	}

	// A quota of 10 requests in 3 s does not serve the 13 requests, and its
	// reset is beyond the sync's patience of 1 s: the sync stops saying
	// when to go on and how far it got. Synced again after then, it
	// finishes, downloading only the blobs the first did not.
	for _, c := range []struct {
		name    string
		headers regtest.QuotaHeaders
	}{
		// RateLimit headers: the sync stops before the quota is exceeded.
		{"quota used up/headers", regtest.IETFQuotaHeaders},
		// Only 429 with Retry-After: the sync stops at the first.
		{"quota used up/Retry-After", regtest.NoQuotaHeaders},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := "up/" + strings.ToLower(c.name[len("quota used up/"):])
			rateLimitedImages(t, host, repo)
			p := regtest.StartQuotaProxy(t, host, regtest.QuotaOptions{Limit: 10, Window: 3 * time.Second, Headers: c.headers})
			f := newFixture(t, dbtest.Open(t, "sqlite"))
			r := remote.New("up", p.URL, repo)
			opts := remote.SyncOptions{RetryPatience: time.Second}
			_, err := f.syncer.Sync(context.Background(), r, f.repoID, opts)
			stopped := time.Now()
			var se *remote.SyncError
			var rle *remote.RateLimitError
			var ra *errdef.RetryAfter
			if !errors.As(err, &se) || !errors.As(err, &rle) || !errors.Is(err, errdef.ErrTooManyRequests) || !errors.As(err, &ra) {
				t.Fatalf("sync over quota: %v (%T), want a *SyncError with a *RateLimitError, ErrTooManyRequests and a RetryAfter", err, err)
			}
			t.Log(err)
			if rle.Until.Before(stopped) || rle.Until.After(stopped.Add(3*time.Second)) || ra.After <= time.Second || ra.After > 3*time.Second {
				t.Errorf("continue at %v (%v after), stopped at %v: want within the 3 s window, beyond the 1 s patience", rle.Until, ra.After, stopped)
			}
			blobs := len(p.BlobGETs())
			if rle.Tags != 3 || rle.TagsDone != 3 || rle.ManifestsFetched != 3 || rle.Blobs != 9 || rle.BlobsDone != blobs || blobs == 9 {
				t.Errorf("stopped at %d of %d tags, %d manifests, %d of %d blobs; the upstream served %d blobs", rle.TagsDone, rle.Tags, rle.ManifestsFetched, rle.BlobsDone, rle.Blobs, blobs)
			}
			for _, want := range []string{rle.Until.UTC().Format(time.RFC3339), "3 of 3 tags", fmt.Sprintf("%d of 9 blobs downloaded", blobs)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			switch n := p.TooMany(); {
			case c.headers != regtest.NoQuotaHeaders && n != 0:
				t.Errorf("the upstream answered 429 %d times although its headers said the quota was used up", n)
			case c.headers == regtest.NoQuotaHeaders && (n == 0 || n > r.DownloadConcurrency):
				t.Errorf("the upstream answered 429 %d times: want at least one, and no more than the requests in flight then (%d)", n, r.DownloadConcurrency)
			}
			if f.latest(t) != 0 {
				t.Fatalf("a version was created by the stopped sync")
			}

			time.Sleep(time.Until(rle.Until))
			res := f.sync(t, r, opts)
			if res.Version == nil || res.Tags != 3 || res.BlobsDownloaded != 9-blobs {
				t.Errorf("second sync: %+v; want 3 tags and the %d blobs the first did not download", *res, 9-blobs)
			}
			checkBlobsOnce(t, p)
		})
	}

	// Docker Hub counts manifest GETs only, and says so only on manifest
	// requests. A quota of 3 serves the first sync of 3 tags exactly;
	// used up for an hour, it still lets a sync of the unchanged
	// repository through (HEAD requests do not count), and stops a sync
	// that needs one more manifest, saying when to go on.
	t.Run("Docker Hub", func(t *testing.T) {
		rateLimitedImages(t, host, "hub/app")
		p := regtest.StartQuotaProxy(t, host, regtest.QuotaOptions{Limit: 3, Window: time.Hour, Headers: regtest.DockerHubQuotaHeaders, OnlyManifestGETs: true})
		f := newFixture(t, dbtest.Open(t, "sqlite"))
		r := remote.New("hub", p.URL, "hub/app")
		if res := f.sync(t, r, remote.SyncOptions{}); res.Tags != 3 || res.BlobsDownloaded != 9 {
			t.Errorf("first sync: %+v, want 3 tags and 9 blobs", *res)
		}
		if res := f.sync(t, r, remote.SyncOptions{}); res.Version != nil || res.ManifestRequests != 0 {
			t.Errorf("sync of the unchanged repository with the quota used up: %+v, want no change and no manifest GET", *res)
		}
		if _, err := regtest.PushImage(context.Background(), host, "hub/app", "v4", regtest.ImageOpts{Layers: 2, Seed: "hub/appv4"}); err != nil {
			t.Fatal(err)
		}
		_, err := f.syncer.Sync(context.Background(), r, f.repoID, remote.SyncOptions{})
		var rle *remote.RateLimitError
		if !errors.As(err, &rle) || time.Until(rle.Until) < 59*time.Minute || rle.TagsDone != 3 || rle.Tags != 4 {
			t.Fatalf("sync of a new tag with the quota used up: %v; want a RateLimitError at 3 of 4 tags, an hour away", err)
		}
		if n := p.TooMany(); n != 0 {
			t.Errorf("the upstream answered 429 %d times", n)
		}
	})

	// 429 with a Retry-After of at most 1 s, within the default patience
	// (2 minutes): the sync waits and succeeds.
	t.Run("short Retry-After", func(t *testing.T) {
		rateLimitedImages(t, host, "short/app")
		p := regtest.StartQuotaProxy(t, host, regtest.QuotaOptions{Limit: 5, Window: time.Second})
		f := newFixture(t, dbtest.Open(t, "sqlite"))
		f.syncer.Retry = remote.RetryPolicy{} // DefaultRetryPolicy
		res := f.sync(t, remote.New("short", p.URL, "short/app"), remote.SyncOptions{})
		if res.Tags != 3 || res.BlobsDownloaded != 9 {
			t.Errorf("synced %+v, want 3 tags and 9 blobs", *res)
		}
		if p.TooMany() == 0 {
			t.Error("no 429 was answered: the test did not test waiting")
		}
		checkBlobsOnce(t, p)
	})
}

// TestRateLimitOnDemand: a blob pulled on demand while the upstream's
// quota is used up for an hour is refused at once with ErrTooManyRequests
// and the hour as its Retry-After, and the upstream is not asked.
func TestRateLimitOnDemand(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host := regtest.StartInProcess(t)
	if _, err := regtest.PushImage(ctx, host, "team/app", "v1", regtest.ImageOpts{Seed: "ondemand-quota"}); err != nil {
		t.Fatal(err)
	}
	// The on_demand sync asks 4 times: tag list, whether the upstream
	// has the referrers API, manifest, config.
	p := regtest.StartQuotaProxy(t, host, regtest.QuotaOptions{Limit: 4, Window: time.Hour, Headers: regtest.IETFQuotaHeaders})
	lazySync(t, f, p.URL, "team/app", remote.PolicyOnDemand)
	layer := regtest.LayerDescriptor("ondemand-quota", 0, 1024, "")
	_, err := f.readAll(ctx, f.fetcher(remote.FetcherOptions{}), layer.Digest, layer.Size)
	var ra *errdef.RetryAfter
	if !errors.Is(err, errdef.ErrTooManyRequests) || !errors.As(err, &ra) || ra.After < 59*time.Minute || ra.After > time.Hour {
		t.Errorf("pull with the quota used up for an hour: %v, want ErrTooManyRequests with a Retry-After of an hour", err)
	}
	if n, gets := p.TooMany(), len(p.BlobGETs()); n != 0 || gets != 1 {
		t.Errorf("the upstream answered 429 %d times and served %d blobs; want no 429 and the config only", n, gets)
	}
}
