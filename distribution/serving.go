package distribution

import (
	"context"
	"strings"
)

// BasePathsOf returns the base paths of the distributions that follow
// repository repoID's latest version, sorted.
func (s *Store) BasePathsOf(ctx context.Context, repoID string) ([]string, error) {
	paths := []string{}
	err := s.db.NewSelect().Model((*Distribution)(nil)).Column("base_path").
		Where("repository_id = ?", repoID).Order("base_path").Scan(ctx, &paths)
	return paths, err
}

// ForgetRepository drops the cached resolution of every base path that
// follows repository repoID, so that a version just created is served at
// once by this process (others see it within Options.TTL).
func (r *Registry) ForgetRepository(ctx context.Context, repoID string) error {
	paths, err := r.dists.BasePathsOf(ctx, repoID)
	for _, p := range paths {
		r.Forget(p)
	}
	return err
}

// InNamespace returns the distributions whose base path is ns or under
// ns + "/".
func (s *Store) InNamespace(ctx context.Context, ns string) ([]Distribution, error) {
	var out []Distribution
	err := s.db.NewSelect().Model(&out).Where(`base_path = ? OR base_path LIKE ? ESCAPE '\'`, ns, likePrefix(ns)+"/%").Order("base_path").Scan(ctx)
	return out, err
}

// likePrefix escapes the LIKE wildcards of a literal prefix.
func likePrefix(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Serving returns the distributions that serve repository repoID: its
// latest version, or a version of it pinned.
func (s *Store) Serving(ctx context.Context, repoID string) ([]Distribution, error) {
	var out []Distribution
	err := s.db.NewSelect().Model(&out).
		Where("repository_id = ? OR repository_version_id IN (SELECT id FROM repository_versions WHERE repository_id = ?)", repoID, repoID).
		Order("base_path").Scan(ctx)
	return out, err
}
