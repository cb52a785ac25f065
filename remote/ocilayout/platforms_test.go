package ocilayout_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/remote/ocilayout"
	"github.com/mooring-dev/mooring/repository"
)

// TestExportSparseList: a list a platform filter left children out of
// cannot make a complete layout; the export says so (a conflict naming
// include_platforms) instead of failing on a missing unit, and the other
// tags still export.
func TestExportSparseList(t *testing.T) {
	m := open(t, dbtest.Open(t, "sqlite"))
	ctx := context.Background()
	host := regtest.StartInProcess(t)
	if _, err := regtest.PushMultiPlatform(ctx, host, "app", "multi", "export",
		ocispec.Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "linux", Architecture: "arm64"}); err != nil {
		t.Fatal(err)
	}
	if _, err := regtest.PushImage(ctx, host, "app", "single", regtest.ImageOpts{Seed: "single"}); err != nil {
		t.Fatal(err)
	}
	repo, err := m.Repositories.CreateRepository(ctx, "filtered", "")
	if err != nil {
		t.Fatal(err)
	}
	r := remote.New("up", "http://"+host, "app")
	r.IncludePlatforms = []string{"linux/amd64"}
	if _, err := m.Sync(ctx, r, repo, remote.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	v := repository.VersionRef{RepositoryID: repo.ID, Number: 1}
	_, err = ocilayout.Export(ctx, m.Repositories, m.Blobs, v, filepath.Join(t.TempDir(), "all"), ocilayout.ExportOptions{})
	if !errors.Is(err, errdef.ErrConflict) || !strings.Contains(err.Error(), "include_platforms") {
		t.Errorf("export of a version with a sparse list: %v; want a conflict naming include_platforms", err)
	}
	res, err := ocilayout.Export(ctx, m.Repositories, m.Blobs, v, filepath.Join(t.TempDir(), "single"), ocilayout.ExportOptions{Tags: []string{"single"}})
	if err != nil || res.Tags != 1 {
		t.Errorf("export of the other tag: %+v, %v", res, err)
	}
}
