package mooring_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/remote"
)

// A pull-through cache of an upstream registry: pulls of hub/<name>:<tag>
// serve the upstream's <name>:<tag>, recording it in a repository of its
// own on the first pull; layers are fetched when first pulled.
func ExampleMooring_CreatePullThroughDistribution() {
	ctx := context.Background()
	upstream := startUpstream() // holds library/hello:latest
	dir, _ := os.MkdirTemp("", "mooring-example")
	defer os.RemoveAll(dir)
	m, err := mooring.Open(ctx, filepath.Join(dir, "mooring.db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ptr := remote.NewPullThrough("upstream", upstream)
	if err := m.Remotes.CreatePullThrough(ctx, ptr); err != nil {
		log.Fatal(err)
	}
	pt := &distribution.PullThroughDistribution{Name: "hub", BasePath: "hub", RemoteID: ptr.ID, TagTTLSeconds: 300}
	if err := m.CreatePullThroughDistribution(ctx, pt); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(m.RegistryHandler(registryapi.Options{}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v2/hub/library/hello/manifests/latest")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	repo, err := m.Repositories.RepositoryByName(ctx, "hub/library/hello")
	if err != nil {
		log.Fatal(err)
	}
	sum, _ := m.Repositories.Summary(ctx, repo.ID, repo.LatestVersion)
	fmt.Println(resp.Status, "version", repo.LatestVersion, "blobs", sum.Present["docker.manifest-blob"], "tags", sum.Present["docker.manifest-tag"])
	// Output:
	// 200 OK version 1 blobs 3 tags 1
}
