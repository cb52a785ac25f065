package bench

import (
	"context"
	"path/filepath"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage/filesystem"
)

// Mooring is Mooring in the benchmark's own process, as the sync
// benchmarks time it: metadata in a database, blobs on the filesystem and
// one empty repository to sync into.
type Mooring struct {
	DB     *bun.DB // closed by the caller
	Syncer *remote.Syncer
	Repo   *repository.Repository
}

// OpenMooring opens and migrates the database dsn (a PostgreSQL DSN, or
// the path of an SQLite file), keeps blobs under dir/blobs and creates
// repository repo.
func OpenMooring(ctx context.Context, dsn, dir, repo string) (*Mooring, error) {
	bdb, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	m, err := openMooring(ctx, bdb, dir, repo)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	return m, nil
}

func openMooring(ctx context.Context, bdb *bun.DB, dir, repo string) (*Mooring, error) {
	if err := repository.Migrate(ctx, bdb); err != nil {
		return nil, err
	}
	blobs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, err
	}
	repos := repository.NewStore(bdb)
	r, err := repos.CreateRepository(ctx, repo, "")
	if err != nil {
		return nil, err
	}
	return &Mooring{DB: bdb, Syncer: &remote.Syncer{Repos: repos, Blobs: blobs}, Repo: r}, nil
}
