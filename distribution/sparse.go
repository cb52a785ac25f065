package distribution

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content/errdef"
)

// filtered returns the error for a manifest reference that version v does
// not hold: when it is a digest a manifest list of v names, and the list
// came from a sync (not a pull-through cache, which fetches such children
// when pulled, nor a repository that takes pushes, where a child is
// missing because it was deleted), MANIFEST_UNKNOWN saying that the
// remote's platform filter left it out (remote.Remote.IncludePlatforms);
// else unknown. It runs only on a miss, and costs one indexed query.
func (r *Registry) filtered(ctx context.Context, v *View, reference string, unknown error) error {
	d, err := digest.Parse(reference)
	if err != nil || v.PullThrough.ID != "" {
		return unknown
	}
	named, err := r.repos.NamedByList(ctx, *v.ref(), d)
	if err != nil {
		return err
	}
	if !named {
		return unknown
	}
	if r.opts.Pushed != nil {
		pushed, err := r.opts.Pushed(ctx, v.RepositoryID)
		if err != nil {
			return err
		}
		if pushed {
			return unknown
		}
	}
	return errdef.New(errdef.ErrManifestUnknown, "manifest %s was filtered out by the remote's platform filter", d)
}
