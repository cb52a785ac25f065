package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/task"
)

var (
	amd64 = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// pushSample pushes a Docker image, an OCI image and a manifest list of two
// more to repo, and returns tag -> digest.
func pushSample(t *testing.T, host, repo string) map[string]ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	out := map[string]ocispec.Descriptor{}
	push := func(tag string, o regtest.ImageOpts) ocispec.Descriptor {
		d, err := regtest.PushImage(ctx, host, repo, tag, o)
		if err != nil {
			t.Fatal(err)
		}
		if tag != "" {
			out[tag] = d
		}
		return d
	}
	push("docker", regtest.ImageOpts{Layers: 2, Seed: "docker"})
	push("oci", regtest.ImageOpts{Layers: 3, Seed: "oci", Format: regtest.OCI})
	a := push("", regtest.ImageOpts{Layers: 2, Seed: "multi-amd64", Platform: amd64})
	b := push("", regtest.ImageOpts{Layers: 2, Seed: "multi-arm64", Platform: arm64})
	l, err := regtest.PushIndex(ctx, host, repo, "multi", regtest.Docker, a, b)
	if err != nil {
		t.Fatal(err)
	}
	out["multi"] = l
	return out
}

func TestSync(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		host, url, reqs := upstream(t)
		want := pushSample(t, host, "team/app")

		progress := &task.Progress{}
		r := remote.New("up", url, "team/app")
		res := f.sync(t, r, remote.SyncOptions{Progress: progress})
		if res.Version == nil || res.Version.Number != 1 {
			t.Fatalf("first sync made version %v, want 1", res.Version)
		}
		if res.Tags != 3 || res.Manifests != 4 || res.ManifestLists != 1 || res.Blobs != 2+3+2+2+4 {
			t.Errorf("result %+v: want 3 tags, 4 manifests, 1 list, 13 blobs", *res)
		}
		got := f.tags(t)
		for tag, d := range want {
			if got[tag] != d.Digest {
				t.Errorf("tag %s = %s, want %s", tag, got[tag], d.Digest)
			}
		}
		if len(got) != 3 {
			t.Errorf("tags = %v", keys(got))
		}
		f.checkBlob(t, regtest.LayerDescriptor("multi-arm64", 1, 1024, "").Digest, regtest.LayerReader("multi-arm64", 1, 1024))
		// Manifests are stored byte for byte, children of the list too.
		for _, tag := range []string{"docker", "multi"} {
			u, err := f.repos.ContentByDigest(ctx, map[string]content.Type{"docker": content.TypeManifest, "multi": content.TypeManifestList}[tag], want[tag].Digest)
			if err != nil {
				t.Fatal(err)
			}
			if content.IsManifest(u.MediaType) == (tag == "multi") || int64(len(u.Raw)) != want[tag].Size {
				t.Errorf("%s stored as %s, %d bytes", tag, u.MediaType, len(u.Raw))
			}
		}
		reports := progress.Reports()
		codes := []string{remote.CodeTagList, remote.CodeTags, remote.CodeArtifacts, remote.CodeAssociating}
		if len(reports) != len(codes) {
			t.Fatalf("reports %+v, want %v", reports, codes)
		}
		for i, rep := range reports {
			if rep.Code != codes[i] || rep.State != task.StateCompleted || rep.Done != rep.Total {
				t.Errorf("report %d ended %+v, want %s completed with done == total", i, rep, codes[i])
			}
		}
		if reports[2].Total != 13 {
			t.Errorf("artifacts report %+v, want 13 downloads", reports[2])
		}

		// Resync of an unchanged upstream: HEADs only, nothing downloaded,
		// no version.
		reqs.reset()
		res = f.sync(t, r, remote.SyncOptions{})
		if res.Version != nil || f.latest(t) != 1 {
			t.Errorf("resync made version %v", res.Version)
		}
		if n := reqs.get("GET manifests"); n != 0 || res.ManifestRequests != 0 {
			t.Errorf("resync made %d manifest GETs (result says %d), want 0", n, res.ManifestRequests)
		}
		if n := reqs.get("GET blobs"); n != 0 || res.BlobsDownloaded != 0 {
			t.Errorf("resync downloaded %d blobs", n)
		}
		if n := reqs.get("HEAD manifests"); n != 3 {
			t.Errorf("resync made %d HEADs, want one per tag", n)
		}

		// A moved tag: one new manifest, its new layer, a new version in
		// which the tag names it.
		reqs.reset()
		moved, err := regtest.PushImage(ctx, host, "team/app", "docker", regtest.ImageOpts{Layers: 2, Seed: "docker2"})
		if err != nil {
			t.Fatal(err)
		}
		res = f.sync(t, r, remote.SyncOptions{})
		if res.Version == nil || res.Version.Number != 2 || f.tags(t)["docker"] != moved.Digest {
			t.Errorf("after moving a tag: version %v, tags %v", res.Version, f.tags(t))
		}
		if n := reqs.get("GET manifests"); n != 1 {
			t.Errorf("moved tag took %d manifest GETs, want 1", n)
		}
		if res.BlobsDownloaded != 3 {
			t.Errorf("moved tag downloaded %d blobs, want its 2 layers and config", res.BlobsDownloaded)
		}
		// Additive: the old manifest stays.
		if _, err := f.repos.ContentByDigest(ctx, content.TypeManifest, want["docker"].Digest); err != nil {
			t.Error(err)
		}
		if n := len(f.units(t, content.TypeManifest)); n != 5 {
			t.Errorf("additive sync holds %d manifests, want 5", n)
		}
	})
}

func TestSyncFilters(t *testing.T) {
	host, url, _ := upstream(t)
	ctx := context.Background()
	for _, tag := range []string{"1.0", "1.1", "1.10", "2.0", "latest", "1.1-rc1", "edge"} {
		if _, err := regtest.PushImage(ctx, host, "lib/x", tag, regtest.ImageOpts{Seed: "same"}); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	for _, tc := range []struct {
		include, whitelist, exclude []string
		want                        string
	}{
		{nil, nil, nil, "1.0 1.1 1.1-rc1 1.10 2.0 edge latest"},
		{[]string{"1.?"}, nil, nil, "1.0 1.1"},
		{[]string{"1.*"}, nil, []string{"*-rc*"}, "1.0 1.1 1.10"},
		{nil, []string{"latest", "edge"}, nil, "edge latest"},
		{[]string{"2.*"}, []string{"latest"}, nil, "2.0 latest"},
		{nil, nil, []string{"1.*"}, "2.0 edge latest"},
		{[]string{"nothing"}, nil, nil, ""},
	} {
		t.Run(fmt.Sprint(tc.include, tc.whitelist, tc.exclude), func(t *testing.T) {
			// Each case syncs into a repository of its own.
			r, err := f.repos.CreateRepository(ctx, fmt.Sprint("filter", tc.include, tc.whitelist, tc.exclude), "")
			if err != nil {
				t.Fatal(err)
			}
			f.repoID = r.ID
			rm := remote.New("x", url, "lib/x")
			rm.IncludeTags, rm.WhitelistTags, rm.ExcludeTags = tc.include, tc.whitelist, tc.exclude
			f.sync(t, rm, remote.SyncOptions{})
			if got := strings.Join(keys(f.tags(t)), " "); got != tc.want {
				t.Errorf("synced tags %q, want %q", got, tc.want)
			}
		})
	}
}

// paginate serves tag lists n at a time with Link headers, as Docker Hub
// does, whatever page size the client asks for.
func paginate(n int, h http.Handler, pages *int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			h.ServeHTTP(w, r)
			return
		}
		*pages++
		q := r.URL.Query()
		q.Set("n", fmt.Sprint(n+1)) // one more tells whether there is a next page
		r.URL.RawQuery = q.Encode()
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		var body struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := jsonUnmarshal(rec.body.Bytes(), &body); err != nil || rec.status != 0 && rec.status != 200 {
			w.WriteHeader(rec.status)
			w.Write(rec.body.Bytes())
			return
		}
		if len(body.Tags) > n {
			body.Tags = body.Tags[:n]
			w.Header().Set("Link", fmt.Sprintf(`<%s?n=%d&last=%s>; rel="next"`, r.URL.Path, n, body.Tags[n-1]))
		}
		w.Header().Set("Content-Type", "application/json")
		jsonEncode(w, body)
	})
}

func TestSyncPagination(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		h := regtest.InProcessHandler()
		host := strings.TrimPrefix(serve(t, h), "http://")
		var want []string
		for i := range 7 {
			tag := fmt.Sprintf("v%d", i)
			want = append(want, tag)
			if _, err := regtest.PushImage(ctx, host, "paged", tag, regtest.ImageOpts{Seed: tag}); err != nil {
				t.Fatal(err)
			}
		}
		pages := 0
		url := serve(t, paginate(3, h, &pages))
		f.sync(t, remote.New("p", url, "paged"), remote.SyncOptions{})
		if got := keys(f.tags(t)); !slices.Equal(got, want) {
			t.Errorf("synced %v, want %v", got, want)
		}
		if pages != 3 {
			t.Errorf("read %d pages of tags, want 3", pages)
		}
	})
}

func TestSyncSchema1AndForeignLayers(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		host, url, reqs := upstream(t)
		s1, err := regtest.PushSchema1(ctx, host, "legacy", "old", regtest.ImageOpts{Layers: 2, LayerSize: 3000, Seed: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		win, err := regtest.PushImage(ctx, host, "legacy", "windows", regtest.ImageOpts{Layers: 1, Seed: "win", ForeignLayers: 2})
		if err != nil {
			t.Fatal(err)
		}
		res := f.sync(t, remote.New("l", url, "legacy"), remote.SyncOptions{})
		tags := f.tags(t)
		if tags["old"] != s1.Digest || tags["windows"] != win.Digest {
			t.Errorf("tags %v, want old=%s windows=%s", tags, s1.Digest, win.Digest)
		}
		// schema 1 states no layer sizes: the stored units have the real ones.
		blobs := map[string]int64{}
		foreign := 0
		for _, b := range f.units(t, content.TypeBlob) {
			blobs[string(b.Digest)] = b.Size
			if b.Foreign {
				foreign++
				if len(b.URLs) != 1 {
					t.Errorf("foreign layer %s recorded without its URL", b.Digest)
				}
				if _, err := f.blobs.Stat(ctx, b.Digest); err == nil {
					t.Errorf("foreign layer %s was downloaded", b.Digest)
				}
			}
		}
		l0 := regtest.LayerDescriptor("s1", 0, 3000, "")
		if blobs[string(l0.Digest)] != 3000 {
			t.Errorf("schema 1 layer recorded with size %d, want 3000", blobs[string(l0.Digest)])
		}
		f.checkBlob(t, l0.Digest, regtest.LayerReader("s1", 0, 3000))
		if foreign != 2 {
			t.Errorf("%d foreign layers recorded, want 2", foreign)
		}
		// 2 schema-1 layers, and the windows image's layer and config.
		if res.BlobsDownloaded != 4 || reqs.get("GET blobs") != 4 {
			t.Errorf("downloaded %d blobs in %d GETs, want 4", res.BlobsDownloaded, reqs.get("GET blobs"))
		}
		if res := f.sync(t, remote.New("l", url, "legacy"), remote.SyncOptions{}); res.Version != nil {
			t.Errorf("resync made version %d", res.Version.Number)
		}
	})
}

func TestSyncMirror(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db)
		host, url, _ := upstream(t)
		want := pushSample(t, host, "team/app")
		r := remote.New("up", url, "team/app")
		f.sync(t, r, remote.SyncOptions{})

		// Dropping "multi" upstream (here: by filter) and mirroring removes
		// the list, its children and their blobs, and nothing else.
		r.ExcludeTags = []string{"multi"}
		res := f.sync(t, r, remote.SyncOptions{Mirror: true})
		if res.Version == nil {
			t.Fatal("mirror sync made no version")
		}
		if got := strings.Join(keys(f.tags(t)), " "); got != "docker oci" {
			t.Errorf("tags after mirror: %s", got)
		}
		if n := len(f.units(t, content.TypeManifestList)); n != 0 {
			t.Errorf("%d manifest lists left", n)
		}
		if n := len(f.units(t, content.TypeManifest)); n != 2 {
			t.Errorf("%d manifests left, want 2", n)
		}
		if n := len(f.units(t, content.TypeBlob)); n != 2+1+3+1 {
			t.Errorf("%d blobs left, want 7", n)
		}
		// Mirroring again changes nothing; additive brings "multi" back.
		if res := f.sync(t, r, remote.SyncOptions{Mirror: true}); res.Version != nil {
			t.Errorf("second mirror sync made version %d", res.Version.Number)
		}
		r.ExcludeTags = nil
		f.sync(t, r, remote.SyncOptions{})
		if f.tags(t)["multi"] != want["multi"].Digest {
			t.Errorf("multi not back: %v", f.tags(t))
		}
	})
}

func TestSyncErrors(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host, url, _ := upstream(t)
	pushSample(t, host, "team/app")
	ctx := context.Background()
	if _, err := f.syncer.Sync(ctx, remote.New("x", url, "no/such"), f.repoID, remote.SyncOptions{}); err == nil {
		t.Error("syncing a missing upstream repository succeeded")
	} else if se := (*remote.SyncError)(nil); !errors.As(err, &se) || se.Op != "list tags" || !strings.Contains(err.Error(), "no/such") {
		t.Errorf("err = %v, want a SyncError listing tags of no/such", err)
	}
	// Sync's errors are *SyncError whatever the step, with the cause's kind.
	for _, c := range []struct {
		what, repoID string
		r            *remote.Remote
		op           string
		kind         error
	}{
		{"a missing repository", "no-such-repo", remote.New("x", url, "team/app"), "read repository", errdef.ErrNotFound},
		{"an invalid remote", f.repoID, remote.New("x", "ftp://x", "team/app"), "check remote", errdef.ErrInvalid},
	} {
		_, err := f.syncer.Sync(ctx, c.r, c.repoID, remote.SyncOptions{})
		if se, ok := err.(*remote.SyncError); !ok || se.Op != c.op || !errors.Is(err, c.kind) {
			t.Errorf("syncing %s: err = %#v, want a *SyncError %q wrapping %v", c.what, err, c.op, c.kind)
		}
	}
	if f.latest(t) != 0 {
		t.Errorf("failed syncs made version %d", f.latest(t))
	}
}
