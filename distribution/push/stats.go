package push

import (
	"context"
	"fmt"
)

// UploadsInProgress returns how many blob uploads are open across every
// process sharing the database: started and neither finished, canceled
// nor discarded as stale.
func (s *Service) UploadsInProgress(ctx context.Context) (int, error) {
	n, err := s.db.NewSelect().Model((*upload)(nil)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count uploads: %w", err)
	}
	return int(n), nil
}
