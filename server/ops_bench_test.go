package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/server"
)

// BenchmarkManifestGET serves a manifest by tag from the registry handler
// in process, with metrics (and the request id and log wrapper every
// request gets) and without metrics: the difference is what metrics cost
// a request.
//
//	go test -run '^$' -bench ManifestGET -count 6 ./server/
func BenchmarkManifestGET(b *testing.B) {
	ctx := context.Background()
	db := dbtest.Open(b, "sqlite")
	m := newMooring(b, db, nil, mooring.Options{})
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte("l"), 1024)
	var blobs []content.Blob
	for i, raw := range [][]byte{cfg, layer} {
		d := digest.FromBytes(raw)
		if err := m.Blobs.Put(ctx, d, int64(len(raw)), bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
		mt := content.MediaTypeOCILayerGzip
		if i == 0 {
			mt = content.MediaTypeOCIConfig
		}
		blobs = append(blobs, content.Blob{Digest: d, Size: int64(len(raw)), MediaType: mt})
	}
	raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		content.MediaTypeOCIManifest, blobs[0].MediaType, blobs[0].Digest, blobs[0].Size, blobs[1].MediaType, blobs[1].Digest, blobs[1].Size))
	doc, err := content.Parse(content.MediaTypeOCIManifest, raw)
	if err != nil {
		b.Fatal(err)
	}
	units, err := m.Repositories.PutBlobs(ctx, blobs)
	if err != nil {
		b.Fatal(err)
	}
	man, err := m.Repositories.PutDocument(ctx, doc)
	if err != nil {
		b.Fatal(err)
	}
	tag, err := m.Repositories.PutTag(ctx, "latest", man)
	if err != nil {
		b.Fatal(err)
	}
	repo, err := m.Repositories.CreateRepository(ctx, "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Repositories.NewVersion(ctx, repo.ID, repository.Change{Add: []int64{units[0].ID, units[1].ID, man.ID, tag.ID}}); err != nil {
		b.Fatal(err)
	}
	if err := m.Distributions.Create(ctx, &distribution.Distribution{Name: "bench", BasePath: "bench", RepositoryID: &repo.ID}); err != nil {
		b.Fatal(err)
	}
	for _, off := range []bool{false, true} {
		h := server.New(server.Options{Mooring: m, DisableMetrics: off}).Content()
		b.Run(fmt.Sprintf("metrics=%v", !off), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "/v2/bench/manifests/latest", nil)
					req.Header.Set("Accept", content.MediaTypeOCIManifest)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
					io.Copy(io.Discard, rec.Body)
				}
			})
		})
	}
}
