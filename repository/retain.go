package repository

import (
	"context"
	"slices"

	"github.com/mooring-dev/mooring/content/errdef"
)

// checkRetain validates a RetainVersions count.
func checkRetain(n int) error {
	if n < 0 {
		return errdef.Field("retain_repo_versions", "Ensure this value is greater than or equal to 1.")
	}
	return nil
}

// retain deletes the versions of repo older than its RetainVersions
// newest, oldest first, except the versions something pins (a
// distribution serving that version: see Holders), and returns how many
// it deleted. Each deleted version's changes fold into the next, so the
// versions left hold exactly what they held. The caller holds repo's
// lock, in a transaction.
func (s *Store) retain(ctx context.Context, repo *Repository) (int, error) {
	if repo.RetainVersions <= 0 {
		return 0, nil
	}
	var versions []Version
	if err := s.db.NewSelect().Model(&versions).ExcludeColumn("counts").
		Where("repository_id = ?", repo.ID).Order("number DESC").Scan(ctx); err != nil {
		return 0, err
	}
	if len(versions) <= repo.RetainVersions {
		return 0, nil
	}
	var pinned []string
	if err := s.db.NewSelect().Model((*Holder)(nil)).Column("version_id").
		Where("repository_id = ? AND version_id IS NOT NULL", repo.ID).Scan(ctx, &pinned); err != nil {
		return 0, err
	}
	old := versions[repo.RetainVersions:]
	slices.Reverse(old)
	deleted := 0
	for i := range old {
		if slices.Contains(pinned, old[i].ID) {
			continue
		}
		if err := s.deleteVersion(ctx, repo, &old[i]); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, nil
}
