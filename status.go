package mooring

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/task"
)

// Health says whether the database and the blob storage answer: nil
// errors when they do.
type Health struct {
	Database error
	Storage  error
}

// Ready reports whether both answer.
func (h Health) Ready() bool { return h.Database == nil && h.Storage == nil }

// emptyDigest is what the storage check asks about: stored or not, an
// answer proves the store is reachable.
var emptyDigest = digest.FromBytes(nil)

// Check asks the database and the blob storage whether they answer, each
// within 5 seconds (or ctx's deadline, if sooner).
func (m *Mooring) Check(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var h Health
	if err := m.DB.PingContext(ctx); err != nil {
		h.Database = err
	}
	if _, err := m.Blobs.Stat(ctx, emptyDigest); err != nil && !errors.Is(err, errdef.ErrNotFound) {
		h.Storage = err
	}
	return h
}

// ComponentVersion is the version of one part of a running Mooring.
type ComponentVersion struct {
	Component string `json:"component"`
	Version   string `json:"version"`
}

// Status is what GET /pulp/api/v3/status/ reports, as Pulp's status does:
// versions, whether the database and storage answer, and the task
// workers online.
type Status struct {
	Versions []ComponentVersion
	Health   Health
	// Workers are the task workers, of every process sharing the
	// database, whose last heartbeat is within the worker timeout.
	Workers []task.Worker
}

// Status returns the versions of this program's Mooring and Go, the
// health of the database and storage, and the task workers online.
// Workers online are not listed when the database does not answer.
func (m *Mooring) Status(ctx context.Context) *Status {
	st := &Status{Versions: Versions(), Health: m.Check(ctx), Workers: []task.Worker{}}
	if st.Health.Database == nil {
		if ws, err := m.Tasks.Workers(ctx, time.Now().Add(-m.workerTimeout)); err == nil {
			st.Workers = ws
		} else {
			st.Health.Database = err
		}
	}
	return st
}

// modulePath is this module's path, looked up in the build information.
const modulePath = "github.com/mooring-dev/mooring"

// Versions returns the version of Mooring built into this program (its
// module version, "(devel)" when built from a checkout) and of Go.
func Versions() []ComponentVersion {
	v := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == modulePath {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				v = d.Version
			}
		}
	}
	return []ComponentVersion{{"mooring", v}, {"go", runtime.Version()}}
}
