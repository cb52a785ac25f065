package push

import (
	"context"
	"strings"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// Usage returns the bytes the blobs of namespace ns take: those the latest
// versions of its distributions' repositories hold, each counted once,
// plus the blobs staged in them.
func (s *Service) Usage(ctx context.Context, ns string) (int64, error) {
	dists, err := s.dists.InNamespace(ctx, ns)
	if err != nil {
		return 0, err
	}
	var refs []repository.VersionRef
	var repoIDs []string
	for _, d := range dists {
		if d.RepositoryID == nil {
			continue
		}
		repo, err := s.repos.Repository(ctx, *d.RepositoryID)
		if err != nil {
			return 0, err
		}
		refs = append(refs, latest(repo))
		repoIDs = append(repoIDs, repo.ID)
	}
	used, err := s.repos.BlobBytes(ctx, refs)
	if err != nil || len(repoIDs) == 0 {
		return used, err
	}
	var staged int64
	err = s.db.NewSelect().Model((*stagedBlob)(nil)).ColumnExpr("COALESCE(SUM(size), 0)").
		Where("repository_id IN (?)", bun.In(repoIDs)).Scan(ctx, &staged)
	return used + staged, err
}

// checkQuota refuses a push to name when its namespace uses, with extra
// bytes more, at least Options.NamespaceQuota (more than it, for a push
// that adds no bytes).
func (s *Service) checkQuota(ctx context.Context, name string, extra int64) error {
	if s.opts.NamespaceQuota <= 0 {
		return nil
	}
	ns, _, _ := strings.Cut(name, "/")
	used, err := s.Usage(ctx, ns)
	if err != nil {
		return err
	}
	if used+max(extra, 0) > s.opts.NamespaceQuota {
		return errdef.New(errdef.ErrRegistryDenied, "namespace %q uses %d of its %d bytes", ns, used, s.opts.NamespaceQuota)
	}
	return nil
}
