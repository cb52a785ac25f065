package mooring

import (
	"context"

	"github.com/mooring-dev/mooring/remote/ocilayout"
	"github.com/mooring-dev/mooring/repository"
)

// Export writes version v of a repository (or the tags opts names) to an
// OCI image layout at dst, a directory or, ending in ".tar", a tar
// archive; see ocilayout.Export. A task Runner from NewRunner runs the
// same as a task (ocilayout.EnqueueExport).
func (m *Mooring) Export(ctx context.Context, v repository.VersionRef, dst string, opts ocilayout.ExportOptions) (*ocilayout.ExportResult, error) {
	return ocilayout.Export(ctx, m.Repositories, m.Blobs, v, dst, opts)
}

// Import makes a new version of repository repoID with what the OCI image
// layout at src holds, every digest checked; see ocilayout.Import. The
// registry serves the new version at once. A task Runner from NewRunner
// runs the same as a task (ocilayout.EnqueueImport).
func (m *Mooring) Import(ctx context.Context, repoID, src string, opts ocilayout.ImportOptions) (*ocilayout.ImportResult, error) {
	res, err := ocilayout.Import(ctx, m.Repositories, m.Blobs, repoID, src, opts)
	if res != nil && res.Version != nil {
		m.Registry.ForgetRepository(ctx, repoID)
	}
	return res, err
}
