package mooring_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/remote"
)

// Mirror an upstream repository and serve it in-process: open, create a
// repository, sync, create a distribution, serve.
func Example() {
	ctx := context.Background()
	upstream := startUpstream() // any registry: Docker Hub, quay.io, a local docker-registry
	dir, _ := os.MkdirTemp("", "mooring-example")
	defer os.RemoveAll(dir)

	m, err := mooring.Open(ctx, filepath.Join(dir, "mooring.db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	repo, err := m.Repositories.CreateRepository(ctx, "foo", "")
	if err != nil {
		log.Fatal(err)
	}
	res, err := m.Sync(ctx, &remote.Remote{Name: "hello", URL: upstream, UpstreamName: "library/hello"}, repo, remote.SyncOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Distributions.Create(ctx, &distribution.Distribution{Name: "foo", BasePath: "foo", RepositoryID: &repo.ID}); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", m.RegistryHandler(registryapi.Options{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	fmt.Println("version", res.Version.Number, "tags", res.Tags, "manifests", res.Manifests)
	resp, err := http.Get(srv.URL + "/v2/foo/tags/list")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, strings.TrimSpace(string(body)))
	// Output:
	// version 1 tags 2 manifests 1
	// 200 OK {"name":"foo","tags":["1.0","latest"]}
}

// startUpstream serves an in-memory registry holding library/hello:1.0 and
// :latest, one random image, and returns its URL.
func startUpstream() string {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	img, err := random.Image(1024, 2)
	if err != nil {
		log.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tag := range []string{"1.0", "latest"} {
		ref, err := name.ParseReference(host+"/library/hello:"+tag, name.Insecure)
		if err != nil {
			log.Fatal(err)
		}
		if err := ggcr.Write(ref, img); err != nil {
			log.Fatal(err)
		}
	}
	return srv.URL
}
