package remote_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
)

// TestIncludePlatformsValidation: entries are os/architecture[/variant];
// anything else is a *errdef.FieldError about include_platforms that says
// what is wrong, before anything is stored.
func TestIncludePlatformsValidation(t *testing.T) {
	for _, good := range [][]string{nil, {}, {"linux/amd64"}, {"linux/arm64/v8", "windows/amd64", "linux/ppc64le"}, {"unknown/unknown"}} {
		r := remote.New("r", "https://registry.example", "app")
		r.IncludePlatforms = good
		if err := r.Validate(); err != nil {
			t.Errorf("include_platforms %q: %v", good, err)
		}
	}
	for _, tc := range []struct{ entry, says string }{
		{"linux", "names no architecture"},
		{"linux/amd64/v8/x", "more than three parts"},
		{"", "names no architecture"},
		{"linux/", "architecture is empty"},
		{"/amd64", "os is empty"},
		{"linux/arm64/", "variant is empty"},
		{"Linux/AMD64", "'L' is not allowed"},
		{"linux/amd 64", "' ' is not allowed"},
	} {
		r := remote.New("r", "https://registry.example", "app")
		r.IncludePlatforms = []string{"linux/amd64", tc.entry}
		err := r.Validate()
		var fe *errdef.FieldError
		if !errors.As(err, &fe) || fe.Field != "include_platforms" || !errors.Is(err, errdef.ErrInvalid) || !bytes.Contains([]byte(fe.Message), []byte(tc.says)) {
			t.Errorf("include_platforms %q: %v; want a FieldError about include_platforms saying %q", tc.entry, err, tc.says)
		}
	}
}

// TestPlatformsSelect: the entries of a list a filter keeps, by platform
// (variants defaulted as containerd does), with the attestations of the
// images kept and nested indexes without a platform.
func TestPlatformsSelect(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	img := func(name string, p ocispec.Platform) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d(name), Platform: &p}
	}
	att := func(name, of string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d(name),
			Platform:    &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{remote.AnnotationReferenceType: remote.ReferenceTypeAttestation, remote.AnnotationReferenceDigest: d(of).String()}}
	}
	entries := []ocispec.Descriptor{
		img("amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}), att("att-amd64", "amd64"),
		img("arm64", ocispec.Platform{OS: "linux", Architecture: "arm64"}), att("att-arm64", "arm64"),
		img("armv7", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}), att("att-armv7", "armv7"),
		img("armv6", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}),
		img("win", ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1"}),
		img("x86_64", ocispec.Platform{OS: "linux", Architecture: "x86_64"}),
		{MediaType: ocispec.MediaTypeImageIndex, Digest: d("nested")},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d("no-platform")},
		// Not an attestation of anything kept, nor well formed.
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d("bad-att"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{remote.AnnotationReferenceType: remote.ReferenceTypeAttestation, remote.AnnotationReferenceDigest: "nonsense"}},
	}
	for _, tc := range []struct {
		filter []string
		want   []string
	}{
		{nil, []string{"amd64", "att-amd64", "arm64", "att-arm64", "armv7", "att-armv7", "armv6", "win", "x86_64", "nested", "no-platform", "bad-att"}},
		{[]string{"linux/amd64", "linux/arm64/v8"}, []string{"amd64", "att-amd64", "arm64", "att-arm64", "x86_64", "nested"}},
		{[]string{"linux/arm"}, []string{"armv7", "att-armv7", "armv6", "nested"}},
		{[]string{"linux/arm/v7"}, []string{"armv7", "att-armv7", "nested"}},
		{[]string{"linux/arm64/v7"}, []string{"nested"}},
		{[]string{"windows/amd64"}, []string{"win", "nested"}},
		{[]string{"unknown/unknown"}, []string{"att-amd64", "att-arm64", "att-armv7", "nested", "bad-att"}},
	} {
		ps, err := remote.ParsePlatforms(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		var got []digest.Digest
		for _, e := range ps.Select(entries) {
			got = append(got, e.Digest)
		}
		var want []digest.Digest
		for _, w := range tc.want {
			want = append(want, d(w))
		}
		if !slices.Equal(got, want) {
			t.Errorf("filter %q kept %d entries, want %d: %v", tc.filter, len(got), len(want), tc.want)
		}
	}
}

// sixPlatforms are the platforms of the index the filter tests sync.
var sixPlatforms = []ocispec.Platform{
	{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "arm", Variant: "v6"},
	{OS: "linux", Architecture: "ppc64le"}, {OS: "linux", Architecture: "s390x"},
}

// TestIncludePlatformsSync syncs a six-platform index with attestations
// through a remote filtered to two platforms: the version holds the index
// byte for byte, with its digest, but only the two images, their
// attestations and their blobs; ListedManifests says which entries are
// there. A resync changes nothing; a wider filter adds children; a mirror
// sync with a narrower one removes them from the new version.
func TestIncludePlatformsSync(t *testing.T) {
	host := regtest.StartInProcess(t)
	mp, err := regtest.PushMultiPlatform(context.Background(), host, "library/app", "1.0", "platforms", sixPlatforms...)
	if err != nil {
		t.Fatal(err)
	}
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		remotes := remote.NewStore(db)
		r := remote.New("app", "http://"+host, "library/app")
		r.IncludePlatforms = []string{"linux/amd64", "linux/arm64/v8"}
		if err := remotes.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got, err := remotes.Get(ctx, r.ID); err != nil || !slices.Equal(got.IncludePlatforms, r.IncludePlatforms) {
			t.Fatalf("stored include_platforms = %v (%v), want %v", got.IncludePlatforms, err, r.IncludePlatforms)
		}

		res := f.sync(t, r, remote.SyncOptions{})
		if res.ManifestLists != 1 || res.Manifests != 4 || res.Blobs != 8 {
			t.Errorf("sync: %d lists, %d manifests, %d blobs; want 1, 4 (2 images, 2 attestations), 8", res.ManifestLists, res.Manifests, res.Blobs)
		}
		list := checkList(t, f, mp)
		want := []int{0, 1} // of sixPlatforms
		checkChildren(t, f, mp, list, want)
		v := repository.VersionRef{RepositoryID: f.repoID, Number: f.latest(t)}
		if named, err := f.repos.NamedByList(ctx, v, mp.Images[2].Digest); err != nil || !named {
			t.Errorf("NamedByList(filtered child) = %v, %v; want true", named, err)
		}
		if named, err := f.repos.NamedByList(ctx, v, digest.FromString("elsewhere")); err != nil || named {
			t.Errorf("NamedByList(unrelated digest) = %v, %v; want false", named, err)
		}

		if res := f.sync(t, r, remote.SyncOptions{}); res.Version != nil {
			t.Errorf("resync with the same filter made version %d", res.Version.Number)
		}
		if res := f.sync(t, r, remote.SyncOptions{Mirror: true}); res.Version != nil {
			t.Errorf("mirror resync with the same filter made version %d", res.Version.Number)
		}

		r.IncludePlatforms = []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7"}
		if res := f.sync(t, r, remote.SyncOptions{}); res.Version == nil {
			t.Fatal("a wider filter made no version")
		}
		checkChildren(t, f, mp, checkList(t, f, mp), []int{0, 1, 2})

		r.IncludePlatforms = []string{"linux/arm64"}
		if res := f.sync(t, r, remote.SyncOptions{}); res.Version != nil {
			t.Errorf("an additive sync with a narrower filter made version %d; it only adds", res.Version.Number)
		}
		if res := f.sync(t, r, remote.SyncOptions{Mirror: true}); res.Version == nil {
			t.Fatal("a mirror sync with a narrower filter made no version")
		}
		checkChildren(t, f, mp, checkList(t, f, mp), []int{1})

		r.IncludePlatforms = nil
		f.sync(t, r, remote.SyncOptions{Mirror: true})
		checkChildren(t, f, mp, checkList(t, f, mp), []int{0, 1, 2, 3, 4, 5})
	})
}

// checkList checks that the latest version holds the index, tagged 1.0,
// with the upstream's bytes, and returns its unit.
func checkList(t *testing.T, f *fixture, mp *regtest.MultiPlatform) *repository.Content {
	t.Helper()
	lists := f.units(t, content.TypeManifestList)
	if len(lists) != 1 || lists[0].Digest != mp.Index.Digest {
		t.Fatalf("lists in the version: %v, want %s", lists, mp.Index.Digest)
	}
	u, err := f.repos.ContentByID(context.Background(), lists[0].ID)
	if err != nil || !bytes.Equal(u.Raw, mp.Raw) {
		t.Errorf("the list's bytes differ from the upstream's (%v)", err)
	}
	if tags := f.tags(t); tags["1.0"] != mp.Index.Digest {
		t.Errorf("tags %v, want 1.0 naming %s", tags, mp.Index.Digest)
	}
	return u
}

// checkChildren checks that the latest version holds exactly the images
// of sixPlatforms[want], their attestations and their blobs, and that
// ListedManifests says so.
func checkChildren(t *testing.T, f *fixture, mp *regtest.MultiPlatform, list *repository.Content, want []int) {
	t.Helper()
	var wantDigests []digest.Digest
	for _, i := range want {
		wantDigests = append(wantDigests, mp.Images[i].Digest, mp.Attestations[i].Digest)
	}
	slices.Sort(wantDigests)
	var got []digest.Digest
	for _, u := range f.units(t, content.TypeManifest) {
		got = append(got, u.Digest)
	}
	slices.Sort(got)
	if !slices.Equal(got, wantDigests) {
		t.Errorf("manifests in version %d: %d, want %d (platforms %v with attestations)", f.latest(t), len(got), len(wantDigests), want)
	}
	if blobs := f.units(t, content.TypeBlob); len(blobs) != 4*len(want) {
		t.Errorf("blobs in version %d: %d, want %d", f.latest(t), len(blobs), 4*len(want))
	}
	v := repository.VersionRef{RepositoryID: f.repoID, Number: f.latest(t)}
	listed, err := f.repos.ListedManifests(context.Background(), list.ID, &v)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 12 {
		t.Fatalf("ListedManifests: %d entries, want 12", len(listed))
	}
	for i, l := range listed {
		present := slices.Contains(wantDigests, l.Digest)
		if (l.Unit != nil) != present || l.Position != i || (l.Unit != nil && l.Unit.Digest != l.Digest) {
			t.Errorf("entry %d (%s, %v): present %v, want %v", i, l.Digest, l.Platform, l.Unit != nil, present)
		}
	}
	if p := listed[2].Platform; p == nil || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("entry 2's platform = %v, want linux/arm64/v8", p)
	}
}
