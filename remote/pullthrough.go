package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
)

// PullThroughRemote is an upstream registry that pull-through caches
// serve, any repository of it (Pulp's container pull-through remote): its
// URL, credentials, TLS and proxy settings, the policy of what it fetches,
// and patterns over the upstream repository names it may serve. Password
// and SSLClientKey are write-only, as a Remote's.
//
// A pull-through cache makes, for each upstream repository pulled through
// it, an ordinary Remote from it (see Remote) and keeps that remote's
// settings in step when this one is updated.
type PullThroughRemote struct {
	bun.BaseModel `bun:"table:pull_through_remotes,alias:ptr"`

	// ID is assigned by Store.CreatePullThrough.
	ID string `json:"id" bun:"id,pk"`
	// Name is unique among pull-through remotes.
	Name string `json:"name" bun:"name"`
	// URL is the registry's base URL, as a Remote's.
	URL string `json:"url" bun:"url"`
	// Policy is PolicyOnDemand (the default: layers are stored once
	// pulled) or PolicyStreamed (never stored).
	Policy Policy `json:"policy" bun:"policy"`
	// Includes, when not empty, limits the upstream repositories served
	// to those matching one of its patterns; Excludes then drops those
	// matching one of its. A pattern matches a whole name, '*' standing
	// for any run of characters ('/' too) and '?' for one. Excludes alone
	// is fine: everything but what it names.
	Includes []string `json:"includes" bun:"includes,type:text"`
	Excludes []string `json:"excludes" bun:"excludes,type:text"`
	// DownloadConcurrency bounds parallel requests of one client (default
	// 10).
	DownloadConcurrency  int    `json:"download_concurrency" bun:"download_concurrency"`
	Username             string `json:"username" bun:"username"`
	Password             string `json:"-" bun:"password"`
	SSLCACertificate     string `json:"ssl_ca_certificate" bun:"ssl_ca_certificate"`
	SSLClientCertificate string `json:"ssl_client_certificate" bun:"ssl_client_certificate"`
	SSLClientKey         string `json:"-" bun:"ssl_client_key"`
	// InsecureSkipVerify is Pulp's ssl_validation=false.
	InsecureSkipVerify bool      `json:"-" bun:"insecure_skip_verify"`
	ProxyURL           string    `json:"proxy_url" bun:"proxy_url"`
	CreatedAt          time.Time `json:"created_at" bun:"created_at"`
}

// NewPullThrough returns a PullThroughRemote with the defaults filled in:
// PolicyOnDemand, DownloadConcurrency 10.
func NewPullThrough(name, url string) *PullThroughRemote {
	return &PullThroughRemote{Name: name, URL: url, Policy: PolicyOnDemand, DownloadConcurrency: DefaultDownloadConcurrency}
}

// String describes the remote for people, without secrets.
func (p PullThroughRemote) String() string {
	return fmt.Sprintf("pull-through remote %q (%s)", p.Name, p.URL)
}

// MarshalJSON encodes the remote without its write-only fields, with
// "ssl_validation".
func (p PullThroughRemote) MarshalJSON() ([]byte, error) {
	type plain PullThroughRemote
	return json.Marshal(struct {
		plain
		SSLValidation bool `json:"ssl_validation"`
	}{plain(p), !p.InsecureSkipVerify})
}

func (p *PullThroughRemote) defaults() {
	if p.Policy == "" {
		p.Policy = PolicyOnDemand
	}
	if p.DownloadConcurrency == 0 {
		p.DownloadConcurrency = DefaultDownloadConcurrency
	}
	for _, l := range []*[]string{&p.Includes, &p.Excludes} {
		if *l == nil {
			*l = []string{}
		}
	}
}

// Remote returns the remote a pull-through cache makes from p for the
// upstream repository upstream, named name.
func (p *PullThroughRemote) Remote(name, upstream string) *Remote {
	return &Remote{
		Name: name, URL: p.URL, UpstreamName: upstream, Policy: p.Policy,
		DownloadConcurrency: p.DownloadConcurrency,
		Username:            p.Username, Password: p.Password,
		SSLCACertificate: p.SSLCACertificate, SSLClientCertificate: p.SSLClientCertificate, SSLClientKey: p.SSLClientKey,
		InsecureSkipVerify: p.InsecureSkipVerify, ProxyURL: p.ProxyURL,
		WhitelistTags: []string{}, IncludeTags: []string{}, ExcludeTags: []string{},
		PullThroughID: p.ID,
	}
}

// Wants reports whether p serves upstream repository name: it matches an
// include pattern (any name when there are none) and no exclude pattern.
func (p *PullThroughRemote) Wants(name string) bool {
	if len(p.Includes) > 0 {
		in := false
		for _, pat := range p.Includes {
			if match(pat, name) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, pat := range p.Excludes {
		if match(pat, name) {
			return false
		}
	}
	return true
}

// Validate checks every field and returns a *errdef.FieldError for the
// first that is wrong.
func (p *PullThroughRemote) Validate() error {
	if p.Policy != PolicyOnDemand && p.Policy != PolicyStreamed {
		return errdef.Field("policy", "a pull-through remote's policy is %q or %q, not %q", PolicyOnDemand, PolicyStreamed, p.Policy)
	}
	for field, patterns := range map[string][]string{"includes": p.Includes, "excludes": p.Excludes} {
		for _, pat := range patterns {
			if pat == "" || len(pat) > 256 {
				return errdef.Field(field, "pattern %q must be 1 to 256 characters", pat)
			}
		}
	}
	// The rest as any remote made from it, for a name that is valid.
	return p.Remote(p.Name, "library/busybox").Validate()
}

// CreatePullThrough validates p, fills in its ID, CreatedAt and
// zero-valued defaults, and stores it. A taken name is errdef.ErrConflict.
func (s *Store) CreatePullThrough(ctx context.Context, p *PullThroughRemote) error {
	p.defaults()
	if err := p.Validate(); err != nil {
		return err
	}
	p.ID = uuid.NewString()
	p.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	sealed := *p
	if err := s.seal(sealed.secretFields()); err != nil {
		return err
	}
	if _, err := s.db.NewInsert().Model(&sealed).Exec(ctx); err != nil {
		p.ID = ""
		if db.IsUniqueViolation(err) {
			return errdef.New(errdef.ErrConflict, "a pull-through remote named %q already exists", p.Name)
		}
		return err
	}
	return nil
}

// GetPullThrough returns the pull-through remote with the given id,
// secrets included.
func (s *Store) GetPullThrough(ctx context.Context, id string) (*PullThroughRemote, error) {
	p := new(PullThroughRemote)
	if err := s.db.NewSelect().Model(p).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "pull-through remote %q", id)
	}
	return p, s.open(p.secretFields())
}

// ListPullThrough returns pull-through remotes ordered by name, with the
// total count matching f.
func (s *Store) ListPullThrough(ctx context.Context, f Filter) ([]PullThroughRemote, int, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, 0, errdef.Field("limit", "limit and offset must not be negative")
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	out := []PullThroughRemote{}
	q := s.db.NewSelect().Model(&out).Order("name").Limit(int64(min(f.Limit, 1000))).Offset(int64(f.Offset))
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	n, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		if err := s.open(out[i].secretFields()); err != nil {
			return nil, 0, err
		}
	}
	return out, int(n), nil
}

// UpdatePullThrough validates p and replaces the stored pull-through
// remote with the same ID, and brings the remotes made from it in step
// (URL, policy, credentials, TLS and proxy), in one transaction.
func (s *Store) UpdatePullThrough(ctx context.Context, p *PullThroughRemote) error {
	p.defaults()
	if err := p.Validate(); err != nil {
		return err
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		stored := new(PullThroughRemote)
		if err := tx.NewSelect().Model(stored).Where("id = ?", p.ID).Scan(ctx); err != nil {
			return notFound(err, "pull-through remote %q", p.ID)
		}
		p.CreatedAt = stored.CreatedAt
		sealed := *p
		if err := s.seal(sealed.secretFields()); err != nil {
			return err
		}
		_, err := tx.NewUpdate().Model(&sealed).ExcludeColumn("id", "created_at").WherePK().Exec(ctx)
		if db.IsUniqueViolation(err) {
			return errdef.New(errdef.ErrConflict, "a pull-through remote named %q already exists", p.Name)
		}
		if err != nil {
			return err
		}
		tmpl, err := s.sealedCopy(p.Remote("", ""))
		if err != nil {
			return err
		}
		_, err = tx.NewUpdate().Model(tmpl).ModelTableExpr("remotes AS remote").
			Column("url", "policy", "download_concurrency", "username", "password", "ssl_ca_certificate",
				"ssl_client_certificate", "ssl_client_key", "insecure_skip_verify", "proxy_url").
			Where("pull_through_id = ?", p.ID).Exec(ctx)
		return err
	})
}

// DeletePullThrough removes the pull-through remote with the given id. The
// remotes made from it stay, serving what was pulled. While something uses
// it (a pull-through distribution) it is errdef.ErrConflict naming what.
func (s *Store) DeletePullThrough(ctx context.Context, id string) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		p := new(PullThroughRemote)
		if err := tx.NewSelect().Model(p).Where("id = ?", id).Scan(ctx); err != nil {
			return notFound(err, "pull-through remote %q", id)
		}
		var users []struct {
			Kind string `bun:"kind"`
			Name string `bun:"name"`
		}
		if err := tx.NewSelect().Table("pull_through_remote_users").Column("kind", "name").
			Where("remote_id = ?", id).Order("kind", "name").Scan(ctx, &users); err != nil {
			return err
		}
		if len(users) > 0 {
			names := make([]string, len(users))
			for i, u := range users {
				names[i] = fmt.Sprintf("%s %q", u.Kind, u.Name)
			}
			return errdef.New(errdef.ErrConflict, "pull-through remote %q is used by %s; delete %s first",
				p.Name, strings.Join(names, ", "), plural(len(users), "it", "them"))
		}
		if _, err := tx.NewUpdate().Table("remotes").Set("pull_through_id = NULL").Where("pull_through_id = ?", id).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewDelete().Model((*PullThroughRemote)(nil)).Where("id = ?", id).Exec(ctx)
		return err
	})
}
