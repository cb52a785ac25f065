package mooring

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"golang.org/x/sync/singleflight"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/repository"
)

// Pull-through caches: the front door composes a pull-through remote
// (remote package), a pull-through distribution (distribution package)
// and the remote Fetcher into the distribution.PullThrough the Registry
// asks about names under a pull-through base path.

// CreatePullThroughDistribution stores a pull-through distribution (see
// distribution.Store.CreatePullThrough) after checking that its remote is
// a stored pull-through remote: an *errdef.FieldError on "remote" if not.
func (m *Mooring) CreatePullThroughDistribution(ctx context.Context, p *distribution.PullThroughDistribution) error {
	if err := m.checkPullThroughRemote(ctx, p.RemoteID); err != nil {
		return err
	}
	return m.Distributions.CreatePullThrough(ctx, p)
}

// UpdatePullThroughDistribution replaces a pull-through distribution's
// fields (see distribution.Store.UpdatePullThrough), checking its remote
// as CreatePullThroughDistribution does.
func (m *Mooring) UpdatePullThroughDistribution(ctx context.Context, p *distribution.PullThroughDistribution) error {
	if err := m.checkPullThroughRemote(ctx, p.RemoteID); err != nil {
		return err
	}
	if err := m.Distributions.UpdatePullThrough(ctx, p); err != nil {
		return err
	}
	m.pullThrough.forgetChecks()
	return nil
}

func (m *Mooring) checkPullThroughRemote(ctx context.Context, id string) error {
	if id == "" {
		return errdef.Field("remote", "This field is required.")
	}
	if _, err := m.Remotes.GetPullThrough(ctx, id); err != nil {
		if errors.Is(err, errdef.ErrNotFound) {
			return errdef.Field("remote", "Invalid hyperlink - Object does not exist.")
		}
		return err
	}
	return nil
}

// DefaultCacheJanitorInterval is how often RunCacheJanitor writes last-pull
// times and checks the pull-through caches' budgets.
const DefaultCacheJanitorInterval = 10 * time.Second

// RunCacheJanitor writes the registry's last-pull times (without a
// database write per pull, see distribution.Registry.FlushPulls) and keeps
// pull-through caches within their budgets (EnforceCacheBudgets), every
// interval (default DefaultCacheJanitorInterval) and soon after a blob
// fetched on demand is stored, until ctx is done; then it writes the
// last-pull times once more. Run it in every process that serves the
// registry.
func (m *Mooring) RunCacheJanitor(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultCacheJanitorInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := m.Registry.FlushPulls(fctx); err != nil {
				m.log.Warn("writing last-pull times failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
		case <-m.cacheKick:
			// A blob was stored: check the budgets, at most once a second.
			select {
			case <-ctx.Done():
				continue
			case <-time.After(time.Second):
			}
		}
		if err := m.Registry.FlushPulls(ctx); err != nil {
			m.log.Warn("writing last-pull times failed", "err", err)
		}
		if res, err := m.EnforceCacheBudgets(ctx); err != nil {
			m.log.Warn("keeping pull-through caches within budget failed", "err", err)
		} else if res.Blobs > 0 {
			m.log.Info("pull-through caches over budget gave stored bytes back", "blobs", res.Blobs, "bytes", res.Bytes)
		}
	}
}

// EnforceCacheBudgets brings every pull-through distribution with a budget
// (its MaxSize, else Options.CacheMaxSize) within it: while the stored
// bytes of what its repositories hold exceed it, the blobs pulled least
// recently that only pull-through repositories hold lose their stored
// bytes. They stay recorded, and the next pull fetches them again.
// Last-pull times are those written by distribution.Registry.FlushPulls.
func (m *Mooring) EnforceCacheBudgets(ctx context.Context) (repository.ReclaimResult, error) {
	var total repository.ReclaimResult
	for offset := 0; ; offset += repository.MaxLimit {
		pts, _, err := m.Distributions.ListPullThrough(ctx, distribution.PullThroughFilter{Page: repository.Page{Limit: repository.MaxLimit, Offset: offset}})
		if err != nil {
			return total, err
		}
		for _, p := range pts {
			max := m.opts.CacheMaxSize
			if p.MaxSize != nil {
				max = *p.MaxSize
			}
			if max <= 0 {
				continue
			}
			res, err := m.enforceBudget(ctx, &p, max)
			total.Blobs += res.Blobs
			total.Bytes += res.Bytes
			if err != nil {
				return total, err
			}
		}
		if len(pts) < repository.MaxLimit {
			return total, nil
		}
	}
}

func (m *Mooring) enforceBudget(ctx context.Context, p *distribution.PullThroughDistribution, max int64) (repository.ReclaimResult, error) {
	var total repository.ReclaimResult
	used, err := m.Distributions.CacheUsage(ctx, p.ID)
	if err != nil || used <= max {
		return total, err
	}
	over := used - max
	for over > 0 {
		cands, err := m.Distributions.Evictable(ctx, p.ID, 500)
		if err != nil || len(cands) == 0 {
			return total, err
		}
		var pick []repository.Content
		var freed int64
		for _, c := range cands {
			if freed >= over {
				break
			}
			pick = append(pick, c)
			freed += c.Size
		}
		res, err := m.Repositories.Reclaim(ctx, m.Blobs, pick)
		total.Blobs += res.Blobs
		total.Bytes += res.Bytes
		if err != nil {
			return total, err
		}
		if res.Blobs == 0 {
			return total, nil // another process gave them back meanwhile
		}
		over -= res.Bytes
	}
	m.log.Info("pull-through cache over budget", "distribution", p.Name, "max_size", max, "used", used, "freed", total.Bytes)
	return total, nil
}

// pullThrough is the distribution.PullThrough of a Mooring.
type pullThrough struct {
	m     *Mooring
	group singleflight.Group

	mu      sync.Mutex
	checked map[string]tagCheck // base path + "\x00" + tag
}

// tagCheck is what the upstream last said of a tag, and when.
type tagCheck struct {
	at   time.Time
	gone bool // the upstream does not have the tag
}

var _ distribution.PullThrough = (*pullThrough)(nil)

// maxTagChecks bounds the tags whose freshness is remembered.
const maxTagChecks = 100000

func (p *pullThrough) check(v *distribution.View, tag string) (tagCheck, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.checked[v.BasePath+"\x00"+tag]
	if !ok || time.Since(c.at) >= v.PullThrough.TagTTL {
		return tagCheck{}, false
	}
	return c, true
}

func (p *pullThrough) checkedNow(v *distribution.View, tag string, gone bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.checked == nil || len(p.checked) >= maxTagChecks {
		p.checked = map[string]tagCheck{}
	}
	p.checked[v.BasePath+"\x00"+tag] = tagCheck{at: time.Now(), gone: gone}
}

// forgetChecks makes every tag stale, as when a distribution's TTL changes.
func (p *pullThrough) forgetChecks() {
	p.mu.Lock()
	p.checked = nil
	p.mu.Unlock()
}

// Manifest answers the Registry for a view of a pull-through cache (see
// distribution.PullThrough). A tag checked with the upstream within the
// distribution's TTL is served as the version has it, with no request; a
// stale one costs one HEAD request, and a GET when it moved. Requests for
// one base path and reference are made once however many clients ask at
// once. When the upstream fails, times out or asks for fewer requests, a
// tag the version holds is served as it is (stale-if-error, logged);
// without one, the client gets the failure: 502, 504 or 429.
func (p *pullThrough) Manifest(ctx context.Context, v *distribution.View, reference string, local *repository.Content) (*repository.Content, error) {
	_, byDigest := digest.Parse(reference)
	isTag := byDigest != nil
	if isTag {
		if c, ok := p.check(v, reference); ok {
			switch {
			case c.gone:
				return nil, errdef.New(errdef.ErrManifestUnknown, "%s:%s: the upstream does not have it", v.BasePath, reference)
			case local != nil:
				return local, nil
			}
		}
	}
	ch := p.group.DoChan(v.BasePath+"\x00"+reference, func() (any, error) {
		// Shared by every client waiting: none of them may cancel it.
		return p.refresh(context.WithoutCancel(ctx), v, reference, isTag, local)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*repository.Content), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refresh asks the upstream and records what it answers.
func (p *pullThrough) refresh(ctx context.Context, v *distribution.View, reference string, isTag bool, local *repository.Content) (*repository.Content, error) {
	m := p.m
	log := m.log.With("base_path", v.BasePath, "reference", reference)
	stale := func(err error) (*repository.Content, error) {
		if local == nil {
			return nil, err
		}
		log.Warn("upstream failed; serving the cached manifest (stale-if-error)", "digest", local.Digest, "err", err)
		if isTag {
			p.checkedNow(v, reference, false)
		}
		return local, nil
	}
	ptr, err := m.Remotes.GetPullThrough(ctx, v.PullThrough.RemoteID)
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) {
			err = errdef.New(errdef.ErrNameUnknown, "%s: the pull-through remote of its cache is gone", v.BasePath)
		}
		return stale(err)
	}
	if !ptr.Wants(v.PullThrough.Upstream) {
		return stale(errdef.New(errdef.ErrNameUnknown, "%s: %s does not serve upstream repository %q", v.BasePath, ptr, v.PullThrough.Upstream))
	}
	if local == nil {
		// A pull that finished since v was resolved (the first of the
		// name, say) may have recorded it: then it is fresh, and asks no
		// upstream again.
		if local, err = p.madeMeanwhile(ctx, v, reference); err != nil || local != nil {
			return local, err
		}
	}
	rm := ptr.Remote(v.BasePath, v.PullThrough.Upstream)
	want := reference
	if isTag && local != nil {
		d, err := m.Fetcher.Resolve(ctx, rm, reference)
		switch {
		case errors.Is(err, errdef.ErrManifestUnknown):
			p.checkedNow(v, reference, true)
			return nil, err
		case err != nil:
			return stale(err)
		case d == local.Digest:
			p.checkedNow(v, reference, false)
			return local, nil
		}
		want = d.String() // moved: fetch what it names now
	}
	doc, err := m.Fetcher.Manifest(ctx, rm, want)
	if err != nil {
		if errors.Is(err, errdef.ErrManifestUnknown) && isTag {
			p.checkedNow(v, reference, true)
			return nil, err
		}
		return stale(err)
	}
	tag := ""
	if isTag {
		tag = reference
	}
	unit, err := p.record(ctx, v, ptr, doc, tag)
	if err != nil {
		return stale(err)
	}
	if isTag {
		p.checkedNow(v, reference, false)
	}
	log.Info("pull-through cache recorded a manifest", "digest", unit.Digest)
	return unit, nil
}

// madeMeanwhile returns what reference names in the latest version of the
// repository of v.BasePath, which may be newer than v's (or made since v
// was resolved), when a pull recorded it freshly (a tag checked within the
// TTL, or a digest); nil if none.
func (p *pullThrough) madeMeanwhile(ctx context.Context, v *distribution.View, reference string) (*repository.Content, error) {
	m := p.m
	d, err := m.Distributions.ByBasePath(ctx, v.BasePath)
	if err != nil || d.RepositoryID == nil {
		return nil, nil
	}
	repo, err := m.Repositories.Repository(ctx, *d.RepositoryID)
	if err != nil {
		return nil, err
	}
	ref := repository.VersionRef{RepositoryID: repo.ID, Number: repo.LatestVersion}
	var id int64
	if dg, perr := digest.Parse(reference); perr == nil {
		units, err := m.Repositories.InVersion(ctx, ref, dg, content.TypeManifest, content.TypeManifestList)
		if err != nil || len(units) == 0 {
			return nil, err
		}
		id = units[0].ID
	} else {
		if c, ok := p.check(v, reference); !ok || c.gone {
			return nil, nil
		}
		tag, err := m.Repositories.Tag(ctx, ref, reference)
		if errors.Is(err, errdef.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		id = tag.TaggedID
	}
	return m.Repositories.ContentByID(ctx, id)
}

// record stores doc (and tag, when not empty) in a new version of the
// repository of view v, created with its remote and distribution when
// this is the first pull of v.BasePath. A manifest's config and layers
// are recorded on-demand, fetched through the view's remote when pulled.
func (p *pullThrough) record(ctx context.Context, v *distribution.View, ptr *remote.PullThroughRemote, doc content.Document, tag string) (*repository.Content, error) {
	m := p.m
	repoID, remoteID, err := p.ensure(ctx, v, ptr)
	if err != nil {
		return nil, err
	}
	var lazy, foreign []content.Blob
	if mf, ok := doc.(*content.Manifest); ok {
		blobs := mf.Layers
		if mf.Config != nil {
			blobs = append([]content.Blob{*mf.Config}, blobs...)
		}
		for _, b := range blobs {
			switch {
			case b.Foreign:
				foreign = append(foreign, b)
			case b.Size < 0:
				return nil, errdef.New(errdef.ErrManifestUnknown, "%s is a Docker schema 1 manifest, whose layer sizes are unknown: pull-through caches do not serve it", doc.Descriptor().Digest)
			default:
				lazy = append(lazy, b)
			}
		}
	}
	unit, err := m.Repositories.PutDocument(ctx, doc)
	if err != nil {
		return nil, err
	}
	add := []int64{unit.ID}
	lazyUnits, err := m.Repositories.PutOnDemandBlobs(ctx, lazy)
	if err != nil {
		return nil, err
	}
	foreignUnits, err := m.Repositories.PutBlobs(ctx, foreign)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(lazyUnits))
	for _, u := range lazyUnits {
		ids = append(ids, u.ID)
	}
	if err := m.Repositories.AddRemoteArtifacts(ctx, repoID, remoteID, ids); err != nil {
		return nil, err
	}
	add = append(add, ids...)
	for _, u := range foreignUnits {
		add = append(add, u.ID)
	}
	if tag != "" {
		t, err := m.Repositories.PutTag(ctx, tag, unit)
		if err != nil {
			return nil, err
		}
		add = append(add, t.ID)
	}
	_, err = m.Repositories.NewVersion(ctx, repoID, repository.Change{Add: add})
	if err != nil && !errors.Is(err, repository.ErrNoChange) {
		return nil, err
	}
	m.Registry.Forget(v.BasePath)
	return unit, nil
}

// ensure returns the repository and remote of view v's base path,
// creating them and its distribution on its first pull: once, however
// many clients of however many processes race, because creators take a
// lock on the pull-through distribution's row (PostgreSQL) or the
// database's write lock (SQLite) and look again first.
func (p *pullThrough) ensure(ctx context.Context, v *distribution.View, ptr *remote.PullThroughRemote) (repoID, remoteID string, err error) {
	m := p.m
	if d, err := m.Distributions.ByBasePath(ctx, v.BasePath); err == nil {
		if repoID, remoteID, err = cached(d, v); err != nil {
			return "", "", err
		}
		if _, err = m.Remotes.Get(ctx, remoteID); !errors.Is(err, errdef.ErrNotFound) {
			return repoID, remoteID, err
		}
		// Its remote was deleted (nothing on-demand needed it): make it
		// again, below.
	}
	err = m.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if tx.Dialect().Name() == dialect.PG {
			var id string
			err := tx.NewSelect().Table("pull_through_distributions").Column("id").Where("id = ?", v.PullThrough.ID).For("UPDATE").Scan(ctx, &id)
			if errors.Is(err, sql.ErrNoRows) {
				return errdef.New(errdef.ErrNameUnknown, "%s: its pull-through distribution is gone", v.BasePath)
			}
			if err != nil {
				return err
			}
		}
		dists := distribution.NewStore(tx)
		if d, err := dists.ByBasePath(ctx, v.BasePath); err == nil {
			if repoID, remoteID, err = cached(d, v); err != nil {
				return err
			}
			if _, err := remote.NewStore(tx).Get(ctx, remoteID); !errors.Is(err, errdef.ErrNotFound) {
				return err // made meanwhile
			}
			rm, err := p.cacheRemote(ctx, remote.NewStore(tx), v, ptr)
			if err != nil {
				return err
			}
			remoteID = rm.ID
			return dists.SetRemote(ctx, d.ID, rm.ID)
		}
		repo, err := p.cacheRepository(ctx, repository.NewStore(tx), v, ptr)
		if err != nil {
			return err
		}
		rm, err := p.cacheRemote(ctx, remote.NewStore(tx), v, ptr)
		if err != nil {
			return err
		}
		ptID := v.PullThrough.ID
		d := &distribution.Distribution{Name: v.BasePath, BasePath: v.BasePath, RepositoryID: &repo.ID, PullThroughID: &ptID, RemoteID: &rm.ID}
		if err := dists.Create(ctx, d); err != nil {
			return fmt.Errorf("pull-through cache %s: %w", v.BasePath, err)
		}
		repoID, remoteID = repo.ID, rm.ID
		return nil
	})
	if err != nil {
		var fe *errdef.FieldError
		if errors.As(err, &fe) {
			// A name or path taken by something else: not the client's
			// fault, nor a server failure.
			return "", "", errdef.New(errdef.ErrRegistryDenied, "cannot cache %s: %s", v.BasePath, fe.Message)
		}
		return "", "", err
	}
	m.Registry.Forget(v.BasePath)
	m.log.Info("pull-through cache created a repository", "base_path", v.BasePath, "upstream", v.PullThrough.Upstream, "repository", repoID)
	return repoID, remoteID, nil
}

// cached returns the repository and remote of distribution d, which must
// be the pull-through cache's of view v.
func cached(d *distribution.Distribution, v *distribution.View) (string, string, error) {
	if d.PullThroughID == nil || *d.PullThroughID != v.PullThrough.ID || d.RepositoryID == nil || d.RemoteID == nil {
		return "", "", errdef.New(errdef.ErrRegistryDenied, "%s is served by distribution %q, not by its pull-through cache", v.BasePath, d.Name)
	}
	return *d.RepositoryID, *d.RemoteID, nil
}

// cacheRepository creates the repository of a cached base path, named
// after it; one of that name left behind by a deleted distribution, which
// nothing serves, is taken over.
func (p *pullThrough) cacheRepository(ctx context.Context, repos *repository.Store, v *distribution.View, ptr *remote.PullThroughRemote) (*repository.Repository, error) {
	repo, err := repos.RepositoryByName(ctx, v.BasePath)
	if errors.Is(err, errdef.ErrNotFound) {
		return repos.CreateRepository(ctx, v.BasePath, fmt.Sprintf("Pull-through cache of %s/%s", ptr.URL, v.PullThrough.Upstream))
	}
	if err != nil {
		return nil, err
	}
	holders, err := repos.Holders(ctx, repo.ID)
	if err != nil {
		return nil, err
	}
	if len(holders) > 0 {
		return nil, errdef.New(errdef.ErrRegistryDenied, "cannot cache %s: repository %q exists and is served by %s", v.BasePath, repo.Name, holders[0])
	}
	return repo, nil
}

// cacheRemote creates the remote of a cached base path, named after it,
// from the pull-through remote; one of that name made from the same
// pull-through remote is taken over, its settings brought in step.
func (p *pullThrough) cacheRemote(ctx context.Context, remotes *remote.Store, v *distribution.View, ptr *remote.PullThroughRemote) (*remote.Remote, error) {
	rm := ptr.Remote(v.BasePath, v.PullThrough.Upstream)
	old, err := remotes.GetByName(ctx, rm.Name)
	if errors.Is(err, errdef.ErrNotFound) {
		return rm, remotes.Create(ctx, rm)
	}
	if err != nil {
		return nil, err
	}
	if old.PullThroughID != ptr.ID {
		return nil, errdef.New(errdef.ErrRegistryDenied, "cannot cache %s: a remote named %q exists and was not made by %s", v.BasePath, old.Name, ptr)
	}
	rm.ID, rm.CreatedAt = old.ID, old.CreatedAt
	return rm, remotes.Update(ctx, rm)
}

// fetcherOptions are Options.Fetch with the Mooring's logger, and a hook
// that wakes RunCacheJanitor when a blob fetched on demand is stored.
func (m *Mooring) fetcherOptions() remote.FetcherOptions {
	fopts := m.opts.Fetch
	if fopts.Logger == nil {
		fopts.Logger = m.log
	}
	onStored := fopts.OnStored
	fopts.OnStored = func(d digest.Digest, size int64) {
		select {
		case m.cacheKick <- struct{}{}:
		default:
		}
		if onStored != nil {
			onStored(d, size)
		}
	}
	return fopts
}

// fetchBlob is the registry's distribution.BlobFetcher.
func (m *Mooring) fetchBlob(ctx context.Context, repoID string, b content.Blob) (io.ReadSeekCloser, error) {
	rb, err := m.Fetcher.FetchBlob(ctx, repoID, b)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return rb, nil
}
