// Command lifecyclebench times the content lifecycle on SQLite and, with
// -dsn (or MOORING_TEST_POSTGRES), on PostgreSQL:
//
//   - copy_tags of 10,000 tags (each naming its own manifest with a
//     config and a layer of its own and a shared base layer: 40,001 units
//     copied), as the task runs it (repository.Store.CopyTags); and, as the
//     peer, what a docker-registry user has instead: copying tags between
//     two repositories of a local docker-registry with oras-go (manifest
//     GET and PUT, blobs mounted across repositories), 8 at a time, for
//     -peer-tags tags;
//   - orphan cleanup (Mooring.CleanupOrphans, no protection time) of
//     100,000 orphaned units — 10,000 blobs, 45,000 manifests, 45,000 tags
//     — and the 10,000 blobs' bytes (64 KiB each), beside 12,000 units a
//     version holds, while 8 clients pull an image (manifest by tag, then
//     its 1 MiB layer) from the registry in the same process: pull
//     requests per second before the cleanup and during it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/uptrace/bun"
	"oras.land/oras-go/v2"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/repository"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("MOORING_TEST_POSTGRES"), "PostgreSQL DSN to run on too (a schema of its own is created and dropped)")
	tags := flag.Int("tags", 10000, "tags copied by copy_tags")
	peerTags := flag.Int("peer-tags", 1000, "tags copied between docker-registry repositories by the peer")
	orphans := flag.Int("orphans", 100000, "orphaned units cleaned up (a tenth blobs, the rest manifests and tags)")
	window := flag.Duration("window", 5*time.Second, "how long pulls are counted before the cleanup")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "lifecyclebench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	dbs := []struct{ name, dsn string }{{"sqlite", filepath.Join(tmp, "sqlite", "mooring.db")}}
	if *dsn != "" {
		dbs = append(dbs, struct{ name, dsn string }{"postgres", *dsn})
	}
	for _, d := range dbs {
		dsn, drop := freshDatabase(ctx, d.dsn)
		m := open(ctx, dsn, filepath.Join(tmp, d.name, "blobs"))
		copyTags(ctx, d.name, m, *tags)
		cleanup(ctx, d.name, m, *orphans, *window)
		m.Close()
		drop()
	}
	peerCopy(ctx, tmp, *peerTags)
}

// freshDatabase returns dsn, or for PostgreSQL a DSN of a new schema, and
// what drops it.
func freshDatabase(ctx context.Context, dsn string) (string, func()) {
	if !mooringdb.IsPostgres(dsn) {
		return dsn, func() {}
	}
	admin, err := mooringdb.Open(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "lcbench_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		log.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		log.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	}
}

func open(ctx context.Context, dsn, blobDir string) *mooring.Mooring {
	m, err := mooring.Open(ctx, dsn, blobDir, mooring.Options{Registry: distribution.Options{TTL: time.Second}})
	if err != nil {
		log.Fatal(err)
	}
	return m
}

// image is a generated manifest and its blobs, with the bytes of its
// config and its own layer.
type image struct {
	raw    []byte
	digest digest.Digest
	blobs  []content.Blob
	bytes  map[digest.Digest][]byte
}

func newImage(seed string, base content.Blob) image {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%q}`, seed))
	layer := []byte("layer of " + seed)
	blobs := []content.Blob{
		{Digest: digest.FromBytes(cfg), Size: int64(len(cfg)), MediaType: content.MediaTypeOCIConfig},
		base,
		{Digest: digest.FromBytes(layer), Size: int64(len(layer)), MediaType: content.MediaTypeOCILayerGzip},
	}
	raw := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d},{"mediaType":%q,"digest":%q,"size":%d}]}`,
		content.MediaTypeOCIManifest, blobs[0].MediaType, blobs[0].Digest, blobs[0].Size,
		blobs[1].MediaType, blobs[1].Digest, blobs[1].Size, blobs[2].MediaType, blobs[2].Digest, blobs[2].Size)
	return image{raw: raw, digest: digest.FromBytes(raw), blobs: blobs,
		bytes: map[digest.Digest][]byte{blobs[0].Digest: cfg, blobs[2].Digest: layer}}
}

// bulkImages records n images as units, in bulk (the benchmark's setup,
// not what it times), with tags t0…, and returns the ids of every unit.
func bulkImages(ctx context.Context, m *mooring.Mooring, prefix string, n int, created time.Time) []int64 {
	base := content.Blob{Digest: digest.FromString(prefix + " base"), Size: 1 << 20, MediaType: content.MediaTypeOCILayerGzip}
	var ids []int64
	for start := 0; start < n; start += 500 {
		var imgs []image
		var blobs []content.Blob
		for i := start; i < min(start+500, n); i++ {
			im := newImage(fmt.Sprintf("%s-%d", prefix, i), base)
			imgs = append(imgs, im)
			blobs = append(blobs, im.blobs...)
		}
		units, err := m.Repositories.PutBlobs(ctx, blobs)
		if err != nil {
			log.Fatal(err)
		}
		for _, u := range units {
			ids = append(ids, u.ID)
		}
		docs := make([]repository.Content, len(imgs))
		for i, im := range imgs {
			docs[i] = repository.Content{UUID: uuidOf(im.digest), Type: content.TypeManifest, Digest: im.digest,
				MediaType: content.MediaTypeOCIManifest, Size: int64(len(im.raw)), Raw: im.raw, SchemaVersion: 2, CreatedAt: created}
		}
		insert(ctx, m.DB, &docs)
		var refs []repository.Ref
		tags := make([]repository.Content, len(imgs))
		for i, im := range imgs {
			for j, b := range im.blobs {
				role := repository.RoleLayer
				if j == 0 {
					role = repository.RoleConfig
				}
				refs = append(refs, repository.Ref{ParentID: docs[i].ID, Position: j, Role: role, ChildDigest: b.Digest, MediaType: b.MediaType, Size: b.Size})
			}
			tags[i] = repository.Content{UUID: uuidOf(digest.FromString(prefix + fmt.Sprint(start+i))), Type: content.TypeManifestTag,
				Name: fmt.Sprintf("t%d", start+i), Digest: im.digest, MediaType: content.MediaTypeOCIManifest, TaggedID: docs[i].ID, CreatedAt: created}
			ids = append(ids, docs[i].ID)
		}
		insert(ctx, m.DB, &refs)
		insert(ctx, m.DB, &tags)
		for _, t := range tags {
			ids = append(ids, t.ID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func uuidOf(d digest.Digest) string {
	h := d.Encoded()
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// insert inserts rows, reading back the ids of units.
func insert[T any](ctx context.Context, db *bun.DB, rows *[]T) {
	q := db.NewInsert().Model(rows)
	if _, units := any(rows).(*[]repository.Content); units {
		q = q.Returning("id")
	}
	if _, err := q.Exec(ctx); err != nil {
		log.Fatal(err)
	}
}

// copyTags times copy_tags of n tags from one repository into an empty
// one.
func copyTags(ctx context.Context, dbName string, m *mooring.Mooring, n int) {
	src, err := m.Repositories.CreateRepository(ctx, "copy-src", "")
	if err != nil {
		log.Fatal(err)
	}
	ids := bulkImages(ctx, m, "copy", n, time.Now().UTC())
	if _, err := m.Repositories.NewVersion(ctx, src.ID, repository.Change{Add: ids}); err != nil {
		log.Fatal(err)
	}
	dst, err := m.Repositories.CreateRepository(ctx, "copy-dst", "")
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	v, err := m.Repositories.CopyTags(ctx, dst.ID, repository.Source{RepositoryID: src.ID}, nil)
	if err != nil {
		log.Fatal(err)
	}
	took := time.Since(start)
	sum, err := m.Repositories.Summary(ctx, dst.ID, v.Number)
	if err != nil {
		log.Fatal(err)
	}
	units := 0
	for _, k := range sum.Present {
		units += k
	}
	fmt.Printf("%-8s copy_tags of %d tags: %v (%d units in the new version; %.0f tags/s)\n", dbName, n, took.Round(time.Millisecond), units, float64(n)/took.Seconds())
}

// cleanup times an orphan cleanup of orphans units and a tenth as many
// blobs while clients pull, and compares the pull rate before and during.
func cleanup(ctx context.Context, dbName string, m *mooring.Mooring, orphans int, window time.Duration) {
	// Served: one image with a 1 MiB layer; and 12,000 units a version holds.
	repo, err := m.Repositories.CreateRepository(ctx, "served", "")
	if err != nil {
		log.Fatal(err)
	}
	layer := bytes.Repeat([]byte("served layer "), 1<<20/13)
	ld := digest.FromBytes(layer)
	if err := m.Blobs.Put(ctx, ld, int64(len(layer)), bytes.NewReader(layer)); err != nil {
		log.Fatal(err)
	}
	served := newImage("served", content.Blob{Digest: ld, Size: int64(len(layer)), MediaType: content.MediaTypeOCILayerGzip})
	for d, b := range served.bytes {
		if err := m.Blobs.Put(ctx, d, int64(len(b)), bytes.NewReader(b)); err != nil {
			log.Fatal(err)
		}
	}
	kept := bulkImages(ctx, m, "kept", 3000, time.Now().UTC().Add(-time.Hour))
	units, err := m.Repositories.PutBlobs(ctx, served.blobs)
	if err != nil {
		log.Fatal(err)
	}
	doc, err := content.Parse(content.MediaTypeOCIManifest, served.raw)
	if err != nil {
		log.Fatal(err)
	}
	mu, err := m.Repositories.PutDocument(ctx, doc)
	if err != nil {
		log.Fatal(err)
	}
	tag, err := m.Repositories.PutTag(ctx, "latest", mu)
	if err != nil {
		log.Fatal(err)
	}
	add := append(kept, mu.ID, tag.ID)
	for _, u := range units {
		add = append(add, u.ID)
	}
	if _, err := m.Repositories.NewVersion(ctx, repo.ID, repository.Change{Add: add}); err != nil {
		log.Fatal(err)
	}
	if err := m.Distributions.Create(ctx, &distribution.Distribution{Name: "served", BasePath: "served", RepositoryID: &repo.ID}); err != nil {
		log.Fatal(err)
	}

	// Orphans: a tenth blobs with 64 KiB of bytes each, the rest manifests
	// and tags (half each) using those blobs, none in any version.
	nBlobs := orphans / 10
	old := time.Now().UTC().Add(-48 * time.Hour)
	var blobs []content.Blob
	for i := range nBlobs {
		b := make([]byte, 64<<10)
		copy(b, fmt.Sprintf("orphan blob %d", i))
		d := digest.FromBytes(b)
		if err := m.Blobs.Put(ctx, d, int64(len(b)), bytes.NewReader(b)); err != nil {
			log.Fatal(err)
		}
		blobs = append(blobs, content.Blob{Digest: d, Size: int64(len(b)), MediaType: content.MediaTypeOCILayerGzip})
	}
	if _, err := m.Repositories.PutBlobs(ctx, blobs); err != nil {
		log.Fatal(err)
	}
	orphanDocs(ctx, m, blobs, (orphans-nBlobs)/2, old)

	srv := httptest.NewServer(m.RegistryHandler(registryapi.Options{}))
	defer srv.Close()
	p := startPulls(srv.URL, served, 8)
	time.Sleep(window)
	before := p.rate()
	start := time.Now()
	res, err := m.CleanupOrphans(ctx, mooring.CleanupOptions{ProtectionTime: mooring.NoProtection})
	took := time.Since(start)
	during := p.rate()
	p.stop()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-8s orphan cleanup: %v: %d units (%v), %d blobs, %d MiB freed\n", dbName, took.Round(time.Millisecond),
		res.UnitsDeleted, res.Units, res.BlobsDeleted, res.BytesFreed>>20)
	fmt.Printf("%-8s pulls (manifest + 1 MiB layer, 8 clients): %.0f req/s before, %.0f req/s during the cleanup (%.0f%%), %d failed\n",
		dbName, before, during, 100*during/before, p.failed.Load())
}

// orphanDocs records n manifests, each using two of blobs, and a tag for
// each, in bulk, stored at created.
func orphanDocs(ctx context.Context, m *mooring.Mooring, blobs []content.Blob, n int, created time.Time) {
	for start := 0; start < n; start += 500 {
		var docs, tags []repository.Content
		var refs []repository.Ref
		for i := start; i < min(start+500, n); i++ {
			cfg, l := blobs[i%len(blobs)], blobs[(i+1)%len(blobs)]
			raw := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}],"annotations":{"n":"%d"}}`,
				content.MediaTypeOCIManifest, content.MediaTypeOCIConfig, cfg.Digest, cfg.Size, l.MediaType, l.Digest, l.Size, i)
			d := digest.FromBytes(raw)
			docs = append(docs, repository.Content{UUID: uuidOf(d), Type: content.TypeManifest, Digest: d, MediaType: content.MediaTypeOCIManifest,
				Size: int64(len(raw)), Raw: raw, SchemaVersion: 2, CreatedAt: created})
		}
		insert(ctx, m.DB, &docs)
		for i, doc := range docs {
			cfg, l := blobs[(start+i)%len(blobs)], blobs[(start+i+1)%len(blobs)]
			refs = append(refs,
				repository.Ref{ParentID: doc.ID, Position: 0, Role: repository.RoleConfig, ChildDigest: cfg.Digest, MediaType: content.MediaTypeOCIConfig, Size: cfg.Size},
				repository.Ref{ParentID: doc.ID, Position: 1, Role: repository.RoleLayer, ChildDigest: l.Digest, MediaType: l.MediaType, Size: l.Size})
			tags = append(tags, repository.Content{UUID: uuidOf(digest.FromString("orphan tag " + doc.Digest.String())), Type: content.TypeManifestTag,
				Name: fmt.Sprintf("o%d", start+i), Digest: doc.Digest, MediaType: doc.MediaType, TaggedID: doc.ID, CreatedAt: created})
		}
		insert(ctx, m.DB, &refs)
		insert(ctx, m.DB, &tags)
	}
}

// pulls is clients pulling an image in a loop, counting requests.
type pulls struct {
	n, failed atomic.Int64
	done      chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	since     time.Time
	at        int64
}

func startPulls(base string, im image, clients int) *pulls {
	p := &pulls{done: make(chan struct{}), since: time.Now()}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	get := func(path, accept string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			p.failed.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.failed.Add(1)
			return
		}
		p.n.Add(1)
	}
	for range clients {
		p.wg.Go(func() {
			for {
				select {
				case <-p.done:
					return
				default:
				}
				get("/v2/served/manifests/latest", ocispec.MediaTypeImageManifest)
				get("/v2/served/blobs/"+im.blobs[1].Digest.String(), "")
			}
		})
	}
	return p
}

// rate returns the requests per second since the last call (or the start).
func (p *pulls) rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	now, n := time.Now(), p.n.Load()
	r := float64(n-p.at) / now.Sub(p.since).Seconds()
	p.since, p.at = now, n
	return r
}

func (p *pulls) stop() {
	close(p.done)
	p.wg.Wait()
}

// peerCopy copies n tags between two repositories of a local
// docker-registry with oras-go, 8 at a time: a manifest GET and PUT per
// tag, its blobs mounted from the source repository.
func peerCopy(ctx context.Context, tmp string, n int) {
	reg, err := regtest.RunDistribution(filepath.Join(tmp, "registry"))
	if err != nil {
		log.Printf("peer: %v (apt-get install docker-registry)", err)
		return
	}
	defer reg.Stop()
	base := regtest.ImageOpts{Seed: "peer-base", LayerSize: 1 << 10}
	for i := range n {
		if _, err := regtest.PushImage(ctx, reg.Host, "peer/src", fmt.Sprintf("t%d", i), regtest.ImageOpts{Seed: fmt.Sprintf("peer-%d", i), LayerSize: 64, Base: &base}); err != nil {
			log.Fatal(err)
		}
	}
	src, _ := regtest.Repository(reg.Host, "peer/src")
	dst, _ := regtest.Repository(reg.Host, "peer/dst")
	opts := oras.CopyOptions{CopyGraphOptions: oras.CopyGraphOptions{Concurrency: 1,
		MountFrom: func(context.Context, ocispec.Descriptor) ([]string, error) { return []string{"peer/src"}, nil }}}
	start := time.Now()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tag := fmt.Sprintf("t%d", i)
			if _, err := oras.Copy(ctx, src, tag, dst, tag, opts); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	fmt.Printf("peer     docker-registry, %d tags copied between repositories with oras-go (8 at a time): %v (%.0f tags/s)\n",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds())
}
