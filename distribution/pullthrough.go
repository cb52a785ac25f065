package distribution

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// DefaultTagTTL is how long a pull-through cache serves a tag without
// asking its upstream again, when its TagTTL is not set: five minutes.
const DefaultTagTTL = 5 * time.Minute

// PullThroughDistribution is a pull-through cache: a pull of
// <BasePath>/<upstream name>:<tag> serves the upstream repository <upstream
// name> of the pull-through remote RemoteID (a remote.PullThroughRemote),
// creating on the first pull a repository, a remote and a distribution for
// it (Distribution.PullThroughID names this), and recording what is pulled
// in new versions of that repository, layers on-demand.
type PullThroughDistribution struct {
	bun.BaseModel `bun:"table:pull_through_distributions"`

	// ID is assigned by CreatePullThrough.
	ID string `bun:"id,pk"`
	// Name is unique among pull-through distributions.
	Name string `bun:"name"`
	// BasePath is the prefix clients pull under; neither it, nor an
	// ancestor of it, nor a path under it may be another distribution's
	// base path, but for the distributions this one makes.
	BasePath string `bun:"base_path"`
	// RemoteID is the pull-through remote's id. The Store does not check
	// it: it belongs to the remote package (the front door's
	// CreatePullThroughDistribution does).
	RemoteID string `bun:"remote_id"`
	// TagTTLSeconds is how long, in seconds, a tag is served without
	// asking the upstream (one HEAD request) whether it moved; 0 asks on
	// every pull. New and CreatePullThrough set DefaultTagTTL for a
	// negative value.
	TagTTLSeconds int `bun:"tag_ttl"`
	// MaxSize, when set, bounds the bytes stored for what this cache's
	// repositories hold: beyond it, the blobs pulled least recently that
	// only pull-through repositories hold lose their stored bytes (they
	// stay recorded, fetched again when next pulled).
	MaxSize   *int64    `bun:"max_size"`
	CreatedAt time.Time `bun:"created_at"`
}

// TagTTL returns TagTTLSeconds as a duration.
func (p *PullThroughDistribution) TagTTL() time.Duration {
	return time.Duration(p.TagTTLSeconds) * time.Second
}

// PullThroughFilter selects pull-through distributions in ListPullThrough.
type PullThroughFilter struct {
	Name     string
	BasePath string
	RemoteID string
	repository.Page
}

// CreatePullThrough stores a new pull-through distribution; it fills in
// ID and CreatedAt, and TagTTLSeconds when negative.
func (s *Store) CreatePullThrough(ctx context.Context, p *PullThroughDistribution) error {
	p.ID = uuid.NewString()
	p.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	if p.TagTTLSeconds < 0 {
		p.TagTTLSeconds = int(DefaultTagTTL / time.Second)
	}
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		if err := tx.checkPullThrough(ctx, p); err != nil {
			return err
		}
		_, err := tx.db.NewInsert().Model(p).Exec(ctx)
		return tx.pullThroughWriteErr(err)
	})
}

// GetPullThrough returns the pull-through distribution with the given id.
func (s *Store) GetPullThrough(ctx context.Context, id string) (*PullThroughDistribution, error) {
	if uuid.Validate(id) != nil {
		return nil, errdef.New(errdef.ErrNotFound, "pull-through distribution %q not found", id)
	}
	p := new(PullThroughDistribution)
	if err := s.db.NewSelect().Model(p).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, errdef.ErrNotFound, "pull-through distribution %q not found", id)
	}
	return p, nil
}

// ListPullThrough lists pull-through distributions by name, with the
// total matching f.
func (s *Store) ListPullThrough(ctx context.Context, f PullThroughFilter) ([]PullThroughDistribution, int, error) {
	limit, offset, err := page(f.Page)
	if err != nil {
		return nil, 0, err
	}
	out := []PullThroughDistribution{}
	q := s.db.NewSelect().Model(&out).Order("name").Limit(int64(limit)).Offset(int64(offset))
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.BasePath != "" {
		q = q.Where("base_path = ?", f.BasePath)
	}
	if f.RemoteID != "" {
		q = q.Where("remote_id = ?", f.RemoteID)
	}
	n, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, err
	}
	return out, int(n), nil
}

// UpdatePullThrough replaces a pull-through distribution's fields. Its
// base path changes only while it has made no distribution
// (errdef.ErrConflict otherwise).
func (s *Store) UpdatePullThrough(ctx context.Context, p *PullThroughDistribution) error {
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		old, err := tx.GetPullThrough(ctx, p.ID)
		if err != nil {
			return err
		}
		if p.BasePath != old.BasePath {
			made, err := tx.db.NewSelect().Model((*Distribution)(nil)).Where("pull_through_id = ?", p.ID).Exists(ctx)
			if err != nil {
				return err
			}
			if made {
				return errdef.FieldConflict("base_path", "The cache serves names under %q already; delete it and create another to serve elsewhere.", old.BasePath)
			}
		}
		if p.TagTTLSeconds < 0 {
			p.TagTTLSeconds = int(DefaultTagTTL / time.Second)
		}
		if err := tx.checkPullThrough(ctx, p); err != nil {
			return err
		}
		_, err = tx.db.NewUpdate().Model(p).Column("name", "base_path", "remote_id", "tag_ttl", "max_size").WherePK().Exec(ctx)
		return tx.pullThroughWriteErr(err)
	})
}

// DeletePullThrough deletes a pull-through distribution and the
// distributions it made; their repositories and remotes, with their
// content, stay.
func (s *Store) DeletePullThrough(ctx context.Context, id string) error {
	return s.inTx(ctx, func(ctx context.Context, tx *Store) error {
		if _, err := tx.GetPullThrough(ctx, id); err != nil {
			return err
		}
		if _, err := tx.db.NewDelete().Model((*Distribution)(nil)).Where("pull_through_id = ?", id).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.db.NewDelete().Model((*PullThroughDistribution)(nil)).Where("id = ?", id).Exec(ctx)
		return err
	})
}

// SetRemote makes distribution id, one a pull-through distribution made,
// fetch its content through remote remoteID: the front door's cache makes
// the remote again when it was deleted.
func (s *Store) SetRemote(ctx context.Context, id, remoteID string) error {
	res, err := s.db.NewUpdate().Model((*Distribution)(nil)).Set("remote_id = ?", remoteID).
		Where("id = ? AND pull_through_id IS NOT NULL", id).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdef.New(errdef.ErrNotFound, "pull-through cache distribution %q not found", id)
	}
	return nil
}

// PullThroughFor returns the pull-through distribution whose base path is
// an ancestor of basePath, with the upstream repository name basePath
// names under it, or errdef.ErrNameUnknown.
func (s *Store) PullThroughFor(ctx context.Context, basePath string) (*PullThroughDistribution, string, error) {
	anc := ancestors(basePath)[1:] // strictly above
	if len(anc) == 0 {
		return nil, "", errdef.New(errdef.ErrNameUnknown, "%s", basePath)
	}
	p := new(PullThroughDistribution)
	err := s.db.NewSelect().Model(p).Where("base_path IN (?)", bun.In(anc)).
		OrderExpr("length(base_path) DESC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, "", notFound(err, errdef.ErrNameUnknown, "%s", basePath)
	}
	return p, strings.TrimPrefix(basePath, p.BasePath+"/"), nil
}

// checkPullThrough validates p, then its base path against every other
// distribution's.
func (s *Store) checkPullThrough(ctx context.Context, p *PullThroughDistribution) error {
	switch {
	case strings.TrimSpace(p.Name) == "":
		return errdef.Field("name", "This field may not be blank.")
	case len(p.Name) > 255:
		return errdef.Field("name", "Ensure this field has no more than 255 characters.")
	case p.RemoteID == "":
		return errdef.Field("remote", "This field is required.")
	case p.MaxSize != nil && *p.MaxSize <= 0:
		return errdef.Field("max_size", "Ensure this value is greater than 0, or null for no limit.")
	}
	if err := content.ValidateRepositoryName(p.BasePath); err != nil {
		return errdef.Field("base_path", "%v", err)
	}
	var clash []string
	err := s.db.NewSelect().Model((*PullThroughDistribution)(nil)).Column("base_path").
		Where("id <> ?", p.ID).WhereGroup(" AND ", overlapping(p.BasePath)).
		Order("base_path").Limit(1).Scan(ctx, &clash)
	if err != nil {
		return err
	}
	if len(clash) == 0 {
		err = s.db.NewSelect().Model((*Distribution)(nil)).Column("base_path").
			Where("(pull_through_id IS NULL OR pull_through_id <> ?)", p.ID).WhereGroup(" AND ", overlapping(p.BasePath)).
			Order("base_path").Limit(1).Scan(ctx, &clash)
		if err != nil {
			return err
		}
	}
	if len(clash) > 0 {
		if clash[0] == p.BasePath {
			return errdef.FieldConflict("base_path", "distribution with this base path already exists.")
		}
		return errdef.FieldConflict("base_path", "Overlaps with existing distribution base path %q: no base path may be a prefix of another.", clash[0])
	}
	return nil
}

// checkUnderPullThrough keeps a distribution clear of pull-through base
// paths: only a distribution a pull-through distribution made may be
// under it, and none may be above one.
func (s *Store) checkUnderPullThrough(ctx context.Context, d *Distribution) error {
	var clash []PullThroughDistribution
	err := s.db.NewSelect().Model(&clash).WhereGroup(" AND ", overlapping(d.BasePath)).Order("base_path").Scan(ctx)
	if err != nil {
		return err
	}
	for _, p := range clash {
		if d.PullThroughID != nil && *d.PullThroughID == p.ID && strings.HasPrefix(d.BasePath, p.BasePath+"/") {
			continue
		}
		return errdef.FieldConflict("base_path", "Overlaps with pull-through distribution %q at base path %q: pulls under it are its cache.", p.Name, p.BasePath)
	}
	if d.PullThroughID != nil && len(clash) == 0 {
		return errdef.Field("base_path", "a pull-through cache's distribution must be under its base path")
	}
	return nil
}

func (s *Store) pullThroughWriteErr(err error) error {
	if err == nil {
		return nil
	}
	if d := s.writeErr(err, &Distribution{}); d != err {
		return d
	}
	return err
}

// CachedRepositories returns the ids of the repositories the distributions
// pull-through distribution id made serve.
func (s *Store) CachedRepositories(ctx context.Context, id string) ([]string, error) {
	ids := []string{}
	err := s.db.NewSelect().Model((*Distribution)(nil)).Column("repository_id").
		Where("pull_through_id = ? AND repository_id IS NOT NULL", id).Order("repository_id").Scan(ctx, &ids)
	return ids, err
}

// cachedBlobs selects the stored blobs that the latest versions of
// pull-through distribution id's repositories hold.
func cachedBlobs(q *bun.SelectQuery, id string) *bun.SelectQuery {
	return q.Where("c.type = ? AND c.on_demand = ? AND c.foreign_layer = ?", content.TypeBlob, false, false).
		Where(`c.id IN (SELECT rc.content_id FROM repository_contents AS rc
			JOIN distributions AS d ON d.repository_id = rc.repository_id
			WHERE d.pull_through_id = ? AND rc.version_removed IS NULL)`, id)
}

// CacheUsage returns the bytes stored for the blobs that the latest
// versions of pull-through distribution id's repositories hold, each
// blob counted once: what its MaxSize bounds.
func (s *Store) CacheUsage(ctx context.Context, id string) (int64, error) {
	var n int64
	err := cachedBlobs(s.db.NewSelect().TableExpr("contents AS c").ColumnExpr("COALESCE(SUM(c.size), 0)"), id).Scan(ctx, &n)
	return n, err
}

// Evictable returns up to limit stored blobs of pull-through distribution
// id's repositories (see CacheUsage) that only pull-through repositories
// hold, in any version, least recently pulled first (by the last-pull
// times FlushPulls wrote; a blob never pulled counts from when it was
// recorded).
func (s *Store) Evictable(ctx context.Context, id string, limit int) ([]repository.Content, error) {
	units := []repository.Content{}
	q := s.db.NewSelect().TableExpr("contents AS c").ColumnExpr("c.id, c.uuid, c.type, c.digest, c.media_type, c.size, c.foreign_layer, c.on_demand, c.created_at").
		Join("LEFT JOIN blob_pulls AS p ON p.digest = c.digest")
	q = cachedBlobs(q, id).
		Where(`NOT EXISTS (SELECT 1 FROM repository_contents AS h WHERE h.content_id = c.id AND h.repository_id NOT IN
			(SELECT d2.repository_id FROM distributions AS d2 WHERE d2.pull_through_id IS NOT NULL AND d2.repository_id IS NOT NULL))`).
		OrderExpr("COALESCE(p.pulled_at, c.created_at), c.id").Limit(int64(limit))
	if err := q.Scan(ctx, &units); err != nil {
		return nil, err
	}
	return units, nil
}

// blobPull is when a blob was last pulled.
type blobPull struct {
	bun.BaseModel `bun:"table:blob_pulls"`

	Digest   string    `bun:"digest,pk"`
	PulledAt time.Time `bun:"pulled_at"`
}

// pullThroughManifest serves a manifest at a view of a pull-through cache:
// by digest from the version when it holds it, else through
// Options.PullThrough, which decides whether a tag is fresh.
func (r *Registry) pullThroughManifest(ctx context.Context, v *View, reference string) (*Manifest, error) {
	var local *Manifest
	if v.RepositoryID != "" {
		m, err := r.manifest(ctx, v, reference)
		switch {
		case err == nil:
			local = m
		case !errors.Is(err, errdef.ErrManifestUnknown):
			return nil, err
		}
	}
	if _, err := digest.Parse(reference); err == nil && local != nil {
		return local, nil // a digest names the same bytes forever
	}
	var unit *repository.Content
	if local != nil {
		unit = &repository.Content{ID: local.id, Type: local.Type, Digest: local.Digest, MediaType: local.MediaType, Raw: local.Raw}
	}
	c, err := r.opts.PullThrough.Manifest(ctx, v, reference, unit)
	if err != nil {
		return nil, err
	}
	if local != nil && c.ID == local.id {
		return local, nil
	}
	return &Manifest{Digest: c.Digest, MediaType: c.MediaType, Raw: c.Raw, Type: c.Type, id: c.ID}, nil
}

// maxPulls bounds the last-pull times kept between two FlushPulls.
const maxPulls = 100000

// recordPull notes that blob d was pulled now, in memory: FlushPulls
// writes the notes in batches, so that a pull costs no database write.
func (r *Registry) recordPull(d digest.Digest) {
	now := time.Now().UTC()
	r.pullsMu.Lock()
	if r.pulls == nil {
		r.pulls = map[digest.Digest]time.Time{}
	}
	if _, ok := r.pulls[d]; ok || len(r.pulls) < maxPulls {
		r.pulls[d] = now
	}
	r.pullsMu.Unlock()
}

// FlushPulls writes when each blob pulled since the last call was last
// pulled (through this Registry), a few hundred rows a statement: the
// order in which a pull-through cache over its budget gives stored bytes
// back. The front door's janitor calls it every few seconds.
func (r *Registry) FlushPulls(ctx context.Context) error {
	r.pullsMu.Lock()
	pulls := r.pulls
	r.pulls = nil
	r.pullsMu.Unlock()
	rows := make([]blobPull, 0, len(pulls))
	for d, t := range pulls {
		rows = append(rows, blobPull{Digest: d.String(), PulledAt: t})
	}
	for chunk := range slices.Chunk(rows, 500) {
		_, err := r.dists.db.NewInsert().Model(&chunk).
			On("CONFLICT (digest) DO UPDATE").Set("pulled_at = EXCLUDED.pulled_at").
			Where("blob_pull.pulled_at < EXCLUDED.pulled_at").Exec(ctx)
		if err != nil {
			return fmt.Errorf("record blob pulls: %w", err)
		}
	}
	return nil
}
