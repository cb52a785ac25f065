package push_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/push"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

func newService(t *testing.T, db *bun.DB) (*push.Service, *repository.Store) {
	t.Helper()
	ctx := context.Background()
	if err := push.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repos := repository.NewStore(db)
	var svc *push.Service
	reg := distribution.NewRegistry(distribution.NewStore(db), repos, blobs, distribution.Options{
		Staged: func(ctx context.Context, repoID string, d digest.Digest) (bool, error) {
			return svc.Staged(ctx, repoID, d)
		}})
	svc = push.NewService(db, blobs, reg, push.Options{})
	return svc, repos
}

func randomBlob(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func manifestJSON(config []byte, layers ...[]byte) []byte {
	desc := func(mt string, b []byte) string {
		return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, digest.FromBytes(b), len(b))
	}
	var ls bytes.Buffer
	for i, l := range layers {
		if i > 0 {
			ls.WriteString(",")
		}
		ls.WriteString(desc(ocispec.MediaTypeImageLayerGzip, l))
	}
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":%s,"layers":[%s]}`,
		ocispec.MediaTypeImageManifest, desc(ocispec.MediaTypeImageConfig, config), ls.String())
}

// TestParallelPushesShareFreshLayers pushes 20 images at once into a new
// name, each with the same 5 new layers and one layer and config of its
// own, as 20 `crane append`s would, for several rounds: every push must
// succeed (a blob pushed to a name stays visible to every later manifest
// of that name, whatever commits beside it) and make one version.
func TestParallelPushesShareFreshLayers(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc, repos := newService(t, db)
		rng := rand.New(rand.NewPCG(1, 2))
		const clients, rounds = 20, 3
		for round := range rounds {
			name := fmt.Sprintf("team/app%d", round)
			shared := make([][]byte, 5)
			for i := range shared {
				shared[i] = randomBlob(rng, 2048)
			}
			own := make([][2][]byte, clients)
			for i := range own {
				own[i] = [2][]byte{randomBlob(rng, 512), fmt.Appendf(nil, `{"round":%d,"client":%d}`, round, i)}
			}
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := range clients {
				wg.Go(func() {
					layer, config := own[i][0], own[i][1]
					for _, b := range append(append([][]byte{}, shared...), layer, config) {
						if _, err := svc.PutBlob(ctx, name, digest.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
							errs <- fmt.Errorf("client %d: put blob: %w", i, err)
							return
						}
					}
					p, err := svc.PutManifest(ctx, name, push.Manifest{MediaType: ocispec.MediaTypeImageManifest,
						Raw: manifestJSON(config, append(append([][]byte{}, shared...), layer)...), Reference: fmt.Sprintf("v%d", i)})
					if err != nil {
						errs <- fmt.Errorf("client %d: put manifest: %w", i, err)
						return
					}
					if p.Version == nil {
						errs <- fmt.Errorf("client %d: the push made no version", i)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			repo, err := repos.RepositoryByName(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			_, n, err := repos.ListVersions(ctx, repo.ID, repository.Page{})
			if err != nil || n != clients+1 {
				t.Errorf("round %d: %d versions, %v; want %d (version 0 and one per manifest)", round, n, err, clients+1)
			}
			tags, err := repos.TagNames(ctx, repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion})
			if err != nil || len(tags) != clients {
				t.Errorf("round %d: latest version has tags %v, %v; want %d", round, tags, err, clients)
			}
		}
	})
}

// TestPushErrors: bad input is refused with the registry code a client
// sees, and leaves no version behind.
func TestPushErrors(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc, repos := newService(t, db)
		layer, config := []byte("layer"), []byte(`{"config":true}`)
		if _, err := svc.PutBlob(ctx, "app", digest.FromBytes(config), int64(len(config)), bytes.NewReader(config)); err != nil {
			t.Fatal(err)
		}
		raw := manifestJSON(config, layer)
		for _, c := range []struct {
			what string
			err  error
			call func() error
		}{
			{"a manifest naming a blob never pushed", errdef.ErrManifestBlobUnknown, func() error {
				_, err := svc.PutManifest(ctx, "app", push.Manifest{MediaType: ocispec.MediaTypeImageManifest, Raw: raw, Reference: "v1"})
				return err
			}},
			{"a blob whose bytes do not match its digest", errdef.ErrDigestInvalid, func() error {
				_, err := svc.PutBlob(ctx, "app", digest.FromString("other"), int64(len(layer)), bytes.NewReader(layer))
				return err
			}},
			{"a malformed name", errdef.ErrNameInvalid, func() error {
				_, err := svc.PutBlob(ctx, "App//x", digest.FromBytes(layer), int64(len(layer)), bytes.NewReader(layer))
				return err
			}},
			{"a manifest that is not JSON", errdef.ErrManifestInvalid, func() error {
				_, err := svc.PutManifest(ctx, "app", push.Manifest{MediaType: ocispec.MediaTypeImageManifest, Raw: []byte("{"), Reference: "v1"})
				return err
			}},
			{"a bad tag", errdef.ErrTagInvalid, func() error {
				_, err := svc.PutManifest(ctx, "app", push.Manifest{MediaType: ocispec.MediaTypeImageManifest, Raw: raw, Reference: "-bad"})
				return err
			}},
			{"deleting a manifest the repository lacks", errdef.ErrManifestUnknown, func() error {
				return svc.DeleteManifest(ctx, "app", "v9")
			}},
		} {
			if err := c.call(); !errors.Is(err, c.err) {
				t.Errorf("%s: err = %v, want %v", c.what, err, c.err)
			}
		}
		repo, err := repos.RepositoryByName(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if repo.LatestVersion != 0 {
			t.Errorf("refused pushes made version %d", repo.LatestVersion)
		}
	})
}

func newServiceWith(t *testing.T, db *bun.DB, opts push.Options) *push.Service {
	t.Helper()
	if err := push.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var svc *push.Service
	reg := distribution.NewRegistry(distribution.NewStore(db), repository.NewStore(db), blobs, distribution.Options{
		Staged: func(ctx context.Context, repoID string, d digest.Digest) (bool, error) {
			return svc.Staged(ctx, repoID, d)
		}})
	svc = push.NewService(db, blobs, reg, opts)
	return svc
}

// TestMaxBlobSize: a blob over the limit is refused as it streams, whether
// its size is declared or not, whole or in chunks; nothing over the limit
// is stored, and a blob at the limit goes in.
func TestMaxBlobSize(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc := newServiceWith(t, db, push.Options{MaxBlobSize: 1000})
		big, ok := bytes.Repeat([]byte("x"), 1001), bytes.Repeat([]byte("y"), 1000)
		for _, size := range []int64{1001, -1} {
			if _, err := svc.PutBlob(ctx, "app", digest.FromBytes(big), size, bytes.NewReader(big)); !errors.Is(err, errdef.ErrBlobTooLarge) {
				t.Errorf("PutBlob of 1001 bytes (declared %d) over a 1000-byte limit: %v, want ErrBlobTooLarge", size, err)
			}
		}
		if _, err := svc.PutBlob(ctx, "app", digest.FromBytes(ok), -1, bytes.NewReader(ok)); err != nil {
			t.Errorf("a blob at the limit: %v", err)
		}
		id, err := svc.StartUpload(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AppendUpload(ctx, "app", id, 0, bytes.NewReader(big[:600])); err != nil {
			t.Fatal(err)
		}
		n, err := svc.AppendUpload(ctx, "app", id, 600, bytes.NewReader(big[600:]))
		if !errors.Is(err, errdef.ErrBlobTooLarge) || n > 1000 {
			t.Errorf("chunks summing to 1001 bytes: size %d, %v; want ErrBlobTooLarge and at most 1000 bytes kept", n, err)
		}
		if err := svc.FinishUpload(ctx, "app", id, digest.FromBytes(big)); err == nil {
			t.Error("an upload refused for its size could still be finished")
		}
	})
}

// countQueries counts the statements run through db.
type countQueries struct{ n *int }

func (c countQueries) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (c countQueries) AfterQuery(context.Context, *bun.QueryEvent)                        { *c.n++ }

// TestLargeManifestReferences: checking a manifest's references costs a
// few queries per 500 distinct digests, not one per entry (a 4 MiB
// manifest of 27,500 layers took 10 s).
func TestLargeManifestReferences(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc := newServiceWith(t, db, push.Options{})
		const layers = 2000
		blobs := make([][]byte, layers)
		for i := range blobs {
			blobs[i] = fmt.Appendf(nil, "layer %d", i)
			if _, err := svc.PutBlob(ctx, "big", digest.FromBytes(blobs[i]), int64(len(blobs[i])), bytes.NewReader(blobs[i])); err != nil {
				t.Fatal(err)
			}
		}
		config := []byte("{}")
		if _, err := svc.PutBlob(ctx, "big", digest.FromBytes(config), 2, bytes.NewReader(config)); err != nil {
			t.Fatal(err)
		}
		var n int
		db.AddQueryHook(countQueries{&n})
		if _, err := svc.PutManifest(ctx, "big", push.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Raw: manifestJSON(config, blobs...), Reference: "v1"}); err != nil {
			t.Fatal(err)
		}
		if n > 200 {
			t.Errorf("pushing a manifest of %d layers ran %d statements; want far fewer than one per layer", layers, n)
		}
	})
}

// slowReader hands out its bytes a chunk at a time with a pause between.
type slowReader struct {
	chunks [][]byte
	pause  time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// TestLongAppendIsNotSwept: one PATCH that streams for longer than the
// upload timeout, with sweeps running beside it, is not taken for
// abandoned: the upload finishes with all its bytes.
func TestLongAppendIsNotSwept(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		// The timeout is short, but long enough for the keep-alive's
		// writes on a loaded machine; the append lasts six times as long.
		svc := newServiceWith(t, db, push.Options{UploadTimeout: 250 * time.Millisecond})
		id, err := svc.StartUpload(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		var chunks [][]byte
		var all []byte
		for i := range 12 {
			c := bytes.Repeat([]byte{byte('a' + i)}, 100)
			chunks, all = append(chunks, c), append(all, c...)
		}
		sweepCtx, stop := context.WithCancel(ctx)
		swept := make(chan struct{})
		go func() {
			defer close(swept)
			for sweepCtx.Err() == nil {
				svc.SweepUploads(sweepCtx)
				time.Sleep(5 * time.Millisecond)
			}
		}()
		n, err := svc.AppendUpload(ctx, "app", id, 0, &slowReader{chunks: chunks, pause: 125 * time.Millisecond})
		stop()
		<-swept
		if err != nil || n != int64(len(all)) {
			t.Fatalf("a 1.5 s append with a 250 ms upload timeout: size %d, %v", n, err)
		}
		if err := svc.FinishUpload(ctx, "app", id, digest.FromBytes(all)); err != nil {
			t.Errorf("finishing the long upload: %v", err)
		}
	})
}

// TestNamespaceQuota: pushes into a namespace stop with DENIED, saying
// how much is used, once its blobs would pass the quota; other namespaces
// are not affected, and what is in stays.
func TestNamespaceQuota(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		svc := newServiceWith(t, db, push.Options{NamespaceQuota: 3000})
		put := func(name string, n int, seed byte) error {
			b := bytes.Repeat([]byte{seed}, n)
			_, err := svc.PutBlob(ctx, name, digest.FromBytes(b), int64(n), bytes.NewReader(b))
			return err
		}
		if err := put("team/a", 1000, 'a'); err != nil {
			t.Fatal(err)
		}
		if err := put("team/b", 1500, 'b'); err != nil {
			t.Fatal(err)
		}
		err := put("team/a", 1000, 'c')
		if !errors.Is(err, errdef.ErrRegistryDenied) || !strings.Contains(err.Error(), "uses 2500 of its 3000 bytes") {
			t.Errorf("a push past the quota: %v, want DENIED saying 2500 of 3000 are used", err)
		}
		if err := put("other/a", 2000, 'd'); err != nil {
			t.Errorf("another namespace: %v", err)
		}
		if used, err := svc.Usage(ctx, "team"); err != nil || used != 2500 {
			t.Errorf("Usage(team) = %d, %v; want 2500", used, err)
		}
	})
}
