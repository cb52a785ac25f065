package repository

import (
	"context"
	"fmt"

	"github.com/mooring-dev/mooring/content/errdef"
)

// narrowed is a change with what the latest version already settles taken
// out, read before the version's transaction: the units to add that the
// latest version holds already, and the units to remove that it does not
// hold. A sync that re-adds 50,000 units to change 500 then locks the
// repository for 500, not 50,000.
type narrowed struct {
	// latest is the number of the version the change was narrowed against.
	latest int
	ch     Change
}

// narrow reads the repository's latest version and narrows ch against it,
// outside any transaction. It returns nil when ch starts from another
// version (Base) or is exact. It fails with ErrNoChange when ch changes nothing and
// that version is still the latest once the reads are done (its content
// is immutable, so the answer holds for that moment), and with
// errdef.ErrInvalid for a unit both added and removed.
func (s *Store) narrow(ctx context.Context, repoID string, ch Change) (*narrowed, error) {
	if ch.Base != nil || ch.Exact {
		// An exact change removes what it does not name: narrowing its
		// additions would remove them.
		return nil, nil
	}
	removed := make(map[int64]bool, len(ch.Remove))
	for _, id := range ch.Remove {
		removed[id] = true
	}
	for _, id := range ch.Add {
		if removed[id] {
			return nil, errdef.New(errdef.ErrInvalid, "content %d is both added and removed", id)
		}
	}
	repo, err := s.Repository(ctx, repoID)
	if err != nil {
		return nil, err
	}
	v := VersionRef{RepositoryID: repoID, Number: repo.LatestVersion}
	held, err := s.PresentIDs(ctx, v, append(ch.Add[:len(ch.Add):len(ch.Add)], ch.Remove...))
	if err != nil {
		return nil, err
	}
	n := &narrowed{latest: repo.LatestVersion}
	for _, id := range ch.Add {
		if !held[id] {
			n.ch.Add = append(n.ch.Add, id)
		}
	}
	for _, id := range ch.Remove {
		if held[id] {
			n.ch.Remove = append(n.ch.Remove, id)
		}
	}
	if len(n.ch.Add)+len(n.ch.Remove) > 0 {
		return n, nil
	}
	// Nothing to do, if the version read is still the latest.
	if now, err := s.Repository(ctx, repoID); err != nil || now.LatestVersion != n.latest {
		return nil, err
	}
	return nil, fmt.Errorf("%w: repository %q already holds exactly that content", ErrNoChange, repo.Name)
}

// change returns the change to apply to a repository whose latest version
// is now latest: the narrowed one if it was narrowed against that version,
// else the caller's whole.
func (n *narrowed) change(latest int, whole Change) Change {
	if n == nil || n.latest != latest {
		return whole
	}
	return n.ch
}
