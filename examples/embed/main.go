// Command embed is a service of its own that embeds Mooring: it opens
// Mooring on SQLite and a temporary directory, mirrors an upstream
// repository into a repository "mirror", pushes an image it builds itself
// into "built/hello", and serves both on its own http.ServeMux, next to a
// route of its own (/hello). It is its own Go module, built against the
// repository root, as a program outside Mooring would be.
//
//	go run . -upstream http://127.0.0.1:5000 -repository library/busybox -listen 127.0.0.1:8080
//	skopeo inspect --tls-verify=false docker://127.0.0.1:8080/mirror:latest
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/push"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/remote"
)

func main() {
	upstream := flag.String("upstream", "https://registry-1.docker.io", "upstream registry URL")
	repository := flag.String("repository", "library/busybox", "upstream repository to mirror")
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *upstream, *repository, *listen); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, upstream, upstreamRepo, listen string) error {
	dir, err := os.MkdirTemp("", "mooring-embed")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Open Mooring, sync the upstream into "mirror" and serve it there.
	m, err := mooring.Open(ctx, dir+"/mooring.db", dir+"/blobs", mooring.Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	repo, err := m.Repositories.CreateRepository(ctx, "mirror", "")
	if err != nil {
		return err
	}
	res, err := m.Sync(ctx, &remote.Remote{Name: "upstream", URL: upstream, UpstreamName: upstreamRepo}, repo, remote.SyncOptions{})
	if err != nil {
		return err
	}
	if err := m.Distributions.Create(ctx, &distribution.Distribution{Name: "mirror", BasePath: "mirror", RepositoryID: &repo.ID}); err != nil {
		return err
	}
	fmt.Printf("synced %d tags into mirror\n", res.Tags)

	// Push an image built here; the first push creates "built/hello".
	pushed, err := pushImage(ctx, m.Push, "built/hello", "v1")
	if err != nil {
		return err
	}
	fmt.Printf("pushed built/hello:v1 %s\n", pushed)

	// Serve the registry API next to a route of this service's own.
	mux := http.NewServeMux()
	mux.Handle("/v2/", m.RegistryHandler(registryapi.Options{}))
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello from the embedding service") })
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// pushImage pushes a one-layer OCI image to name:tag and returns its
// manifest's digest.
func pushImage(ctx context.Context, p *push.Service, name, tag string) (digest.Digest, error) {
	layer, err := tarOf("hello.txt", "built by the embedding service\n")
	if err != nil {
		return "", err
	}
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, digest.FromBytes(layer))
	for _, b := range [][]byte{layer, config} {
		if _, err := p.PutBlob(ctx, name, digest.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			return "", err
		}
	}
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, digest.FromBytes(config), len(config),
		ocispec.MediaTypeImageLayer, digest.FromBytes(layer), len(layer))
	res, err := p.PutManifest(ctx, name, push.Manifest{MediaType: ocispec.MediaTypeImageManifest, Raw: manifest, Reference: tag})
	if err != nil {
		return "", err
	}
	return res.Digest, nil
}

// tarOf returns an uncompressed tar holding one file.
func tarOf(name, body string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		return nil, err
	}
	err := tw.Close()
	return buf.Bytes(), err
}
