package remote_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/task"
)

// Sync a repository from an upstream registry, then sync it again: the
// second sync finds nothing changed and creates no version.
func ExampleSyncer_Sync() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mooring-example")
	defer os.RemoveAll(dir)

	// An upstream registry with one image tagged "1.0": two layers and a
	// config (go-containerregistry's in-memory registry and random image).
	upstream := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer upstream.Close()
	img, err := random.Image(1024, 2)
	if err != nil {
		log.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(upstream.URL, "http://")+"/library/hello:1.0", name.Insecure)
	if err != nil {
		log.Fatal(err)
	}
	if err := ggcr.Write(ref, img); err != nil {
		log.Fatal(err)
	}

	// Mooring's metadata database and blob store.
	bdb, err := repository.Open(ctx, dir+"/mooring.db")
	if err != nil {
		log.Fatal(err)
	}
	defer bdb.Close()
	blobs, err := filesystem.New(dir + "/blobs")
	if err != nil {
		log.Fatal(err)
	}
	repos := repository.NewStore(bdb)
	repo, err := repos.CreateRepository(ctx, "hello", "")
	if err != nil {
		log.Fatal(err)
	}

	syncer := &remote.Syncer{Repos: repos, Blobs: blobs}
	r := remote.New("hello-upstream", upstream.URL, "library/hello")
	for range 2 {
		// A Progress of its own for each sync, read once it returns.
		progress := &task.Progress{}
		res, err := syncer.Sync(ctx, r, repo.ID, remote.SyncOptions{Progress: progress})
		if err != nil {
			log.Fatal(err)
		}
		for _, rep := range progress.Reports() {
			fmt.Printf("  %s: %d/%d %s\n", rep.Code, rep.Done, rep.Total, rep.State)
		}
		if res.Version == nil {
			fmt.Printf("unchanged; %d manifest GETs, %d blobs downloaded\n", res.ManifestRequests, res.BlobsDownloaded)
		} else {
			fmt.Printf("version %d: %d tag, %d manifest, %d blobs\n", res.Version.Number, res.Tags, res.Manifests, res.Blobs)
		}
	}
	// Output:
	//   downloading.tag_list: 1/1 completed
	//   processing.tag: 1/1 completed
	//   downloading.artifacts: 3/3 completed
	//   associating.content: 5/5 completed
	// version 1: 1 tag, 1 manifest, 3 blobs
	//   downloading.tag_list: 1/1 completed
	//   processing.tag: 1/1 completed
	//   downloading.artifacts: 0/0 completed
	//   associating.content: 5/5 completed
	// unchanged; 0 manifest GETs, 0 blobs downloaded
}
