package push_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution/push"
	"github.com/mooring-dev/mooring/internal/dbtest"
)

// TestManifestWaitsForBlobDeletion: a manifest push that uses a blob
// whose deletion by orphan cleanup is in flight waits for it to end, then
// fails with MANIFEST_BLOB_UNKNOWN, making no version; a blob staged
// since is found, and the push succeeds.
func TestManifestWaitsForBlobDeletion(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc, repos := newService(t, db)
		config, layer := []byte(`{"architecture":"amd64"}`), []byte("a layer being reclaimed")
		for _, b := range [][]byte{config, layer} {
			if _, err := svc.PutBlob(ctx, "app", digest.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
		// The layer is unstaged, and a sweep has recorded its deletion.
		if err := svc.DeleteBlob(ctx, "app", digest.FromBytes(layer)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO blob_deletions (digest, sweep_id, started_at) VALUES (?, 'test', ?)",
			digest.FromBytes(layer), time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		m := push.Manifest{MediaType: ocispec.MediaTypeImageManifest, Raw: manifestJSON(config, layer), Reference: "v1"}
		done := make(chan error, 1)
		go func() {
			_, err := svc.PutManifest(ctx, "app", m)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("PutManifest returned (%v) while the deletion of a blob it uses was in flight", err)
		case <-time.After(150 * time.Millisecond):
		}
		if _, err := db.ExecContext(ctx, "DELETE FROM blob_deletions WHERE digest = ?", digest.FromBytes(layer)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, errdef.ErrManifestBlobUnknown) {
			t.Fatalf("PutManifest after the blob was reclaimed: %v, want MANIFEST_BLOB_UNKNOWN", err)
		}
		repo, err := repos.RepositoryByName(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if repo.LatestVersion != 0 {
			t.Errorf("a refused manifest made version %d", repo.LatestVersion)
		}
		// Pushed again, the blob is found.
		if _, err := svc.PutBlob(ctx, "app", digest.FromBytes(layer), int64(len(layer)), bytes.NewReader(layer)); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutManifest(ctx, "app", m); err != nil {
			t.Fatalf("PutManifest once the blob is pushed again: %v", err)
		}
	})
}
