// Package remote keeps the upstream registries Mooring mirrors from
// (remotes) and syncs an upstream repository into a Mooring repository,
// creating a new immutable version.
//
// A Remote has the fields of Pulp's docker remote. Syncer.Sync runs in
// three stages: plan lists the upstream's tags, filters them and finds,
// with HEAD requests, those whose documents are stored already; fetch gets
// the other manifests and manifest lists with their exact bytes and
// streams config and layer blobs into a storage.Driver, with bounded
// concurrency; commit creates the new repository version in one
// transaction, only when something changed. Progress is recorded on a task.Progress, and a
// sync runs as a durable task with SyncTask, SyncHandler and EnqueueSync.
// It is built on oras-go's registry client with its auth and retry
// transports.
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/repository"
)

// Errors returned by this package wrap errdef's sentinels with the id or
// name that failed: errdef.ErrNotFound, errdef.ErrConflict (a name taken),
// and *errdef.FieldError for a field with a bad value.

// Defaults applied by New, by JSON decoding and, for zero values, by
// Store.Create.
const (
	DefaultDownloadConcurrency = 10
	// MaxDownloadConcurrency caps DownloadConcurrency: more parallel
	// downloads from one registry only invite rate limiting.
	MaxDownloadConcurrency = 100
)

// Remote is an upstream repository to sync from, with the fields of Pulp's
// docker remote. Password and SSLClientKey are write-only: they are stored
// and used by Sync, but never encoded to JSON, printed or logged.
type Remote struct {
	// ID is assigned by Store.Create.
	ID string `json:"id" bun:"id,pk"`
	// Name is unique among remotes.
	Name string `json:"name" bun:"name"`
	// URL is the registry's base URL, such as https://registry-1.docker.io;
	// an http:// URL is spoken to in plain HTTP.
	URL string `json:"url" bun:"url"`
	// UpstreamName is the repository on the registry. On Docker Hub a
	// one-segment name such as "busybox" means "library/busybox".
	UpstreamName string `json:"upstream_name" bun:"upstream_name"`
	// WhitelistTags is Pulp 4.0's name for IncludeTags; both are honoured,
	// a tag being included when it matches a pattern of either.
	WhitelistTags []string `json:"whitelist_tags" bun:"whitelist_tags,type:text"`
	// IncludeTags, when not empty, limits a sync to tags matching one of its
	// patterns; ExcludeTags then drops tags matching one of its. A pattern
	// matches a whole tag, '*' standing for any run of characters and '?'
	// for any one character.
	IncludeTags []string `json:"include_tags" bun:"include_tags,type:text"`
	ExcludeTags []string `json:"exclude_tags" bun:"exclude_tags,type:text"`
	// IncludePlatforms, when not empty, limits what a sync takes from each
	// manifest list or OCI index to the manifests for these platforms
	// ("os/architecture[/variant]", such as "linux/arm64/v8"; see
	// ParsePlatform and Platforms.Select) and the attestation manifests
	// describing them. The list itself is kept byte for byte, with its
	// upstream digest, naming children that are not synced; the registry
	// answers MANIFEST_UNKNOWN for those. Manifests that tags name
	// directly are synced whatever their platform.
	IncludePlatforms []string `json:"include_platforms" bun:"include_platforms,type:text"`
	// DownloadConcurrency bounds parallel requests to the upstream
	// (default 10, at most MaxDownloadConcurrency).
	DownloadConcurrency int `json:"download_concurrency" bun:"download_concurrency"`
	// Username and Password authenticate to the registry, by basic auth or
	// to its token service. Password is write-only.
	Username string `json:"username" bun:"username"`
	Password string `json:"-" bun:"password"`
	// SSLCACertificate is PEM CA certificates to trust besides the system's.
	SSLCACertificate string `json:"ssl_ca_certificate" bun:"ssl_ca_certificate"`
	// SSLClientCertificate and SSLClientKey are a PEM client certificate
	// and its key for TLS client authentication. The key is write-only.
	SSLClientCertificate string `json:"ssl_client_certificate" bun:"ssl_client_certificate"`
	SSLClientKey         string `json:"-" bun:"ssl_client_key"`
	// InsecureSkipVerify turns off checking the registry's TLS certificate:
	// Pulp's ssl_validation=false. The zero Remote checks it, so a Remote
	// built by hand is safe. In JSON it is "ssl_validation", inverted.
	InsecureSkipVerify bool `json:"-" bun:"insecure_skip_verify"`
	// ProxyURL is an http, https or socks5 proxy for every request.
	ProxyURL string `json:"proxy_url" bun:"proxy_url"`
	// Policy says when layer blobs are downloaded (Pulp's policy):
	// PolicyImmediate (the default) by the sync; PolicyOnDemand when a
	// client first pulls them, then stored; PolicyStreamed whenever a
	// client pulls them, never stored.
	Policy Policy `json:"policy" bun:"policy"`
	// MaxBandwidth caps, in bytes per second, what all downloads through
	// this remote together read, in every sync and on-demand fetch of this
	// process; 0 is no cap.
	MaxBandwidth int64 `json:"max_bandwidth" bun:"max_bandwidth"`
	// RateLimit caps the requests per second made through this remote
	// (Pulp's rate_limit); 0 is no cap.
	RateLimit int `json:"rate_limit" bun:"rate_limit"`
	// SkipReferrers turns off syncing what refers to the synced manifests
	// (cosign signature, attestation and SBOM tags, OCI referrers; see
	// Syncer.Sync): they are then synced only as tags the filters keep.
	// The zero Remote syncs them. In JSON it is "sync_referrers",
	// inverted (default true).
	SkipReferrers bool `json:"-" bun:"skip_referrers"`
	// PullThroughID, when set, is the pull-through remote this remote was
	// made from by a pull-through cache, which keeps its settings in step.
	PullThroughID string    `json:"-" bun:"pull_through_id,nullzero"`
	CreatedAt     time.Time `json:"created_at" bun:"created_at"`
}

// Policy is a remote's download policy.
type Policy string

// Download policies, Pulp's names.
const (
	// PolicyImmediate: a sync downloads every blob.
	PolicyImmediate Policy = "immediate"
	// PolicyOnDemand: a sync downloads manifests, lists and config blobs
	// and records layers without their bytes; a pull of a layer fetches it
	// from the upstream, streaming it to the client, and stores it.
	PolicyOnDemand Policy = "on_demand"
	// PolicyStreamed: as PolicyOnDemand, but layers are never stored: every
	// pull streams them from the upstream.
	PolicyStreamed Policy = "streamed"
)

// Valid reports whether p is one of the three policies.
func (p Policy) Valid() bool {
	return p == PolicyImmediate || p == PolicyOnDemand || p == PolicyStreamed
}

// Stores reports whether blobs fetched on demand under p are stored:
// for every policy but PolicyStreamed.
func (p Policy) Stores() bool { return p != PolicyStreamed }

// New returns a Remote with the defaults filled in: DownloadConcurrency 10
// and PolicyImmediate (TLS certificates are checked, as in every Remote
// unless InsecureSkipVerify is set).
func New(name, url, upstreamName string) *Remote {
	return &Remote{Name: name, URL: url, UpstreamName: upstreamName,
		DownloadConcurrency: DefaultDownloadConcurrency, Policy: PolicyImmediate}
}

// SSLValidation reports whether the registry's TLS certificate is checked
// (Pulp's ssl_validation).
func (r *Remote) SSLValidation() bool { return !r.InsecureSkipVerify }

// SyncReferrers reports whether a sync brings the signatures,
// attestations and referrers of the manifests it syncs (sync_referrers).
func (r *Remote) SyncReferrers() bool { return !r.SkipReferrers }

// MarshalJSON encodes the remote as the REST API shows it: with
// "ssl_validation" and "sync_referrers", and without the write-only fields.
func (r Remote) MarshalJSON() ([]byte, error) {
	type plain Remote
	return json.Marshal(struct {
		plain
		SSLValidation bool `json:"ssl_validation"`
		SyncReferrers bool `json:"sync_referrers"`
	}{plain(r), !r.InsecureSkipVerify, !r.SkipReferrers})
}

// UnmarshalJSON decodes a remote as the REST API receives it: fields left
// out take their defaults (download_concurrency 10, ssl_validation true,
// sync_referrers true), and the write-only "password" and "ssl_client_key" are read although they
// are never written.
func (r *Remote) UnmarshalJSON(data []byte) error {
	type plain Remote
	in := struct {
		*plain
		Password      *string `json:"password"`
		SSLClientKey  *string `json:"ssl_client_key"`
		SSLValidation *bool   `json:"ssl_validation"`
		SyncReferrers *bool   `json:"sync_referrers"`
	}{plain: (*plain)(r)}
	if r.DownloadConcurrency == 0 && r.ID == "" {
		r.DownloadConcurrency = DefaultDownloadConcurrency
	}
	if r.Policy == "" && r.ID == "" {
		r.Policy = PolicyImmediate
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	if in.SSLValidation != nil {
		r.InsecureSkipVerify = !*in.SSLValidation
	}
	if in.SyncReferrers != nil {
		r.SkipReferrers = !*in.SyncReferrers
	}
	if in.Password != nil {
		r.Password = *in.Password
	}
	if in.SSLClientKey != nil {
		r.SSLClientKey = *in.SSLClientKey
	}
	return nil
}

// String describes the remote for people, without secrets.
func (r Remote) String() string {
	return fmt.Sprintf("remote %q (%s, %s)", r.Name, r.URL, r.UpstreamName)
}

// LogValue logs the remote without its secrets.
func (r Remote) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", r.ID), slog.String("name", r.Name),
		slog.String("url", r.URL), slog.String("upstream_name", r.UpstreamName))
}

// dockerHubHosts are the names Docker Hub's registry goes by.
var dockerHubHosts = map[string]bool{
	"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true, "registry.hub.docker.com": true,
}

// Upstream returns the repository name to ask the registry for: on Docker
// Hub a one-segment name such as "busybox" is "library/busybox".
func (r *Remote) Upstream() string {
	u, err := url.Parse(r.URL)
	if err == nil && dockerHubHosts[strings.ToLower(u.Hostname())] && !strings.Contains(r.UpstreamName, "/") {
		return "library/" + r.UpstreamName
	}
	return r.UpstreamName
}

// Validate checks every field and returns a *FieldError for the first that
// is wrong.
func (r *Remote) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &errdef.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(r.Name) == "" {
		return bad("name", "must not be empty")
	}
	if len(r.Name) > 255 {
		return bad("name", "must be at most 255 characters")
	}
	if r.URL == "" {
		return bad("url", "must not be empty")
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return bad("url", "%s", urlError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("url", "scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return bad("url", "has no host")
	}
	if u.User != nil {
		return bad("url", "must not hold credentials; use username and password")
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "v2" {
		return bad("url", "must be the registry's base URL, without a path")
	}
	if r.UpstreamName == "" {
		return bad("upstream_name", "must not be empty")
	}
	if err := content.ValidateRepositoryName(r.Upstream()); err != nil {
		return bad("upstream_name", "%v", err)
	}
	for field, patterns := range map[string][]string{"whitelist_tags": r.WhitelistTags, "include_tags": r.IncludeTags, "exclude_tags": r.ExcludeTags} {
		for _, p := range patterns {
			if p == "" || len(p) > 256 {
				return bad(field, "pattern %q must be 1 to 256 characters", p)
			}
		}
	}
	if _, err := ParsePlatforms(r.IncludePlatforms); err != nil {
		return err
	}
	if r.MaxBandwidth < 0 {
		return bad("max_bandwidth", "must not be negative")
	}
	if r.RateLimit < 0 {
		return bad("rate_limit", "must not be negative")
	}
	if r.DownloadConcurrency < 1 || r.DownloadConcurrency > MaxDownloadConcurrency {
		return bad("download_concurrency", "must be between 1 and %d, not %d", MaxDownloadConcurrency, r.DownloadConcurrency)
	}
	if !r.Policy.Valid() {
		return bad("policy", "must be %q, %q or %q, not %q", PolicyImmediate, PolicyOnDemand, PolicyStreamed, r.Policy)
	}
	if r.Password != "" && r.Username == "" {
		return bad("username", "is required with a password")
	}
	if r.SSLCACertificate != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(r.SSLCACertificate)) {
			return bad("ssl_ca_certificate", "holds no PEM certificate")
		}
	}
	if (r.SSLClientCertificate == "") != (r.SSLClientKey == "") {
		return bad("ssl_client_certificate", "ssl_client_certificate and ssl_client_key go together")
	}
	if r.SSLClientCertificate != "" {
		if _, err := tls.X509KeyPair([]byte(r.SSLClientCertificate), []byte(r.SSLClientKey)); err != nil {
			return bad("ssl_client_key", "%v", err)
		}
	}
	if r.ProxyURL != "" {
		p, err := url.Parse(r.ProxyURL)
		if err != nil {
			return bad("proxy_url", "%s", urlError(err))
		}
		switch p.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return bad("proxy_url", "scheme must be http, https or socks5, not %q", p.Scheme)
		}
		if p.Host == "" {
			return bad("proxy_url", "has no host")
		}
	}
	return nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates the tables of this package, after the
// repository tables it refers to. It is idempotent and safe to call from
// several processes at once.
func Migrate(ctx context.Context, d *bun.DB) error {
	// Remotes record what they can fetch in the repository tables.
	if err := repository.Migrate(ctx, d); err != nil {
		return err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, d, db.Migrations{Set: "remote", FS: sub})
}

// Store reads and writes remotes. It works on a *bun.DB or inside a
// transaction.
type Store struct {
	db     bun.IDB
	sealer Sealer // nil: secrets stored as they are
}

// NewStore returns a Store over db. The tables must exist (see Migrate).
func NewStore(db bun.IDB) *Store { return &Store{db: db} }

// Filter selects remotes in List. Limit <= 0 means 100; it is capped at
// 1000.
type Filter struct {
	// Name is an exact name; "" selects every remote.
	Name   string
	Limit  int
	Offset int
}

// Create validates r, fills in its ID, CreatedAt and zero-valued defaults
// (DownloadConcurrency, Policy), and stores it. A taken name gives
// errdef.ErrConflict.
func (s *Store) Create(ctx context.Context, r *Remote) error {
	r.defaults()
	r.normalize()
	if err := r.Validate(); err != nil {
		return err
	}
	r.ID = uuid.NewString()
	r.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	sealed, err := s.sealedCopy(r)
	if err != nil {
		return err
	}
	if _, err := s.db.NewInsert().Model(sealed).ModelTableExpr("remotes").Exec(ctx); err != nil {
		r.ID = ""
		if db.IsUniqueViolation(err) {
			return errdef.New(errdef.ErrConflict, "a remote named %q already exists", r.Name)
		}
		return err
	}
	return nil
}

// defaults fills in zero-valued fields that have a default.
func (r *Remote) defaults() {
	if r.DownloadConcurrency == 0 {
		r.DownloadConcurrency = DefaultDownloadConcurrency
	}
	if r.Policy == "" {
		r.Policy = PolicyImmediate
	}
}

// normalize gives nil lists a stored form of [] rather than null.
func (r *Remote) normalize() {
	for _, l := range []*[]string{&r.WhitelistTags, &r.IncludeTags, &r.ExcludeTags, &r.IncludePlatforms} {
		if *l == nil {
			*l = []string{}
		}
	}
}

// Get returns the remote with the given id, secrets included (Sync needs
// them; JSON encoding leaves them out).
func (s *Store) Get(ctx context.Context, id string) (*Remote, error) {
	r := new(Remote)
	if err := s.db.NewSelect().Model(r).ModelTableExpr("remotes AS remote").Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "remote %q", id)
	}
	return r, s.open(r.secretFields())
}

// GetByName returns the remote with the given name.
func (s *Store) GetByName(ctx context.Context, name string) (*Remote, error) {
	r := new(Remote)
	if err := s.db.NewSelect().Model(r).ModelTableExpr("remotes AS remote").Where("name = ?", name).Scan(ctx); err != nil {
		return nil, notFound(err, "remote named %q", name)
	}
	return r, s.open(r.secretFields())
}

// List returns remotes ordered by name, with the total count matching f.
func (s *Store) List(ctx context.Context, f Filter) ([]Remote, int, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, 0, &errdef.FieldError{Field: "limit", Message: "limit and offset must not be negative"}
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	out := []Remote{}
	q := s.db.NewSelect().Model(&out).ModelTableExpr("remotes AS remote").Order("name").Limit(int64(f.Limit)).Offset(int64(f.Offset))
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

// Update validates r and replaces the stored remote with the same ID; ID
// and CreatedAt are kept as stored. A taken name gives errdef.ErrConflict.
func (s *Store) Update(ctx context.Context, r *Remote) error {
	r.normalize()
	if err := r.Validate(); err != nil {
		return err
	}
	sealed, err := s.sealedCopy(r)
	if err != nil {
		return err
	}
	res, err := s.db.NewUpdate().Model(sealed).ModelTableExpr("remotes AS remote").ExcludeColumn("id", "created_at").
		Where("id = ?", r.ID).Exec(ctx)
	if err != nil {
		if db.IsUniqueViolation(err) {
			return errdef.New(errdef.ErrConflict, "a remote named %q already exists", r.Name)
		}
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdef.New(errdef.ErrNotFound, "remote %q", r.ID)
	}
	stored, err := s.Get(ctx, r.ID)
	if err != nil {
		return err
	}
	r.CreatedAt = stored.CreatedAt
	return nil
}

// Delete removes the remote with the given id. Repositories synced from it
// keep their content. While on-demand content of a repository can be
// fetched through this remote only (see repository.Store.NeedingRemote),
// the remote stays and the error is errdef.ErrConflict naming the
// repositories: deleting it would make their content unpullable.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		r := new(Remote)
		q := tx.NewSelect().Model(r).ModelTableExpr("remotes AS remote").Where("id = ?", id)
		if tx.Dialect().Name() == dialect.PG {
			q = q.For("UPDATE") // a sync recording content through it waits
		}
		if err := q.Scan(ctx); err != nil {
			return notFound(err, "remote %q", id)
		}
		repos := repository.NewStore(tx)
		names, err := repos.NeedingRemote(ctx, id)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			return errdef.New(errdef.ErrConflict, "remote %q is the only source of on-demand content held by %s %s; "+
				"delete %s, or sync %s with the immediate policy, first",
				r.Name, plural(len(names), "repository", "repositories"), quoteAll(names),
				plural(len(names), "it", "them"), plural(len(names), "it", "them"))
		}
		if err := repos.DeleteRemoteArtifacts(ctx, id); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model((*Remote)(nil)).ModelTableExpr("remotes AS remote").Where("id = ?", id).Exec(ctx)
		return err
	})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// quoteAll returns names quoted and separated by commas.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: "+format, append([]any{errdef.ErrNotFound}, args...)...)
	}
	return err
}

// urlError says what is wrong with a URL without repeating it: it may hold
// credentials, which are never echoed.
func urlError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return "is not a valid URL: " + ue.Err.Error()
	}
	return "is not a valid URL"
}
