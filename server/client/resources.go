package client

import (
	"context"
	"net/http"
	"time"
)

// Repository is a repository as the API shows it.
type Repository struct {
	Href              string    `json:"_href"`
	Created           time.Time `json:"_created"`
	VersionsHref      string    `json:"_versions_href"`
	LatestVersionHref string    `json:"_latest_version_href"`
	Name              string    `json:"name"`
	Description       *string   `json:"description"`
}

// RepositoryRequest creates or changes a repository; nil fields are left
// out (PATCH leaves them as they are).
type RepositoryRequest struct {
	Name        string  `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
}

const repositoriesPath = APIRoot + "repositories/"

// ListRepositories returns a page of repositories.
func (c *Client) ListRepositories(ctx context.Context, o ListOptions) (*Page[Repository], error) {
	return list[Repository](ctx, c, repositoriesPath, o)
}

// Repositories returns every repository, following pages.
func (c *Client) Repositories(ctx context.Context) ([]Repository, error) {
	return all[Repository](ctx, c, repositoriesPath, ListOptions{})
}

// RepositoryByName returns the repository named name.
func (c *Client) RepositoryByName(ctx context.Context, name string) (*Repository, error) {
	return byName[Repository](ctx, c, repositoriesPath, "repository", name)
}

// Repository returns the repository at href.
func (c *Client) Repository(ctx context.Context, href string) (*Repository, error) {
	return get[Repository](ctx, c, href)
}

// CreateRepository creates a repository.
func (c *Client) CreateRepository(ctx context.Context, r RepositoryRequest) (*Repository, error) {
	return send[Repository](ctx, c, http.MethodPost, repositoriesPath, r)
}

// UpdateRepository changes the fields of r that are set (PATCH).
func (c *Client) UpdateRepository(ctx context.Context, href string, r RepositoryRequest) (*Repository, error) {
	return send[Repository](ctx, c, http.MethodPatch, href, r)
}

// DeleteRepository deletes a repository: the task that does it, or nil
// when it was deleted at once.
func (c *Client) DeleteRepository(ctx context.Context, href string) (*TaskRef, error) {
	return c.deleteMaybeTask(ctx, href)
}

// SummaryEntry counts content of one type in a version, with the href
// listing it.
type SummaryEntry struct {
	Count int    `json:"count"`
	Href  string `json:"href"`
}

// Version is a repository version.
type Version struct {
	Href           string    `json:"_href"`
	Created        time.Time `json:"_created"`
	Number         int       `json:"number"`
	BaseVersion    *string   `json:"base_version"`
	ContentSummary *struct {
		Added   map[string]SummaryEntry `json:"added"`
		Removed map[string]SummaryEntry `json:"removed"`
		Present map[string]SummaryEntry `json:"present"`
	} `json:"content_summary"`
}

// ListVersions returns a page of a repository's versions, newest first.
func (c *Client) ListVersions(ctx context.Context, repoHref string, o ListOptions) (*Page[Version], error) {
	return list[Version](ctx, c, repoHref+"versions/", o)
}

// Version returns the version at href.
func (c *Client) Version(ctx context.Context, href string) (*Version, error) {
	return get[Version](ctx, c, href)
}

// DeleteVersion deletes a version: the task that does it, or nil when it
// was deleted at once.
func (c *Client) DeleteVersion(ctx context.Context, href string) (*TaskRef, error) {
	return c.deleteMaybeTask(ctx, href)
}

// Remote is a docker remote. Passwords and keys are never shown.
type Remote struct {
	Href                string    `json:"_href"`
	Created             time.Time `json:"_created"`
	Name                string    `json:"name"`
	URL                 string    `json:"url"`
	UpstreamName        string    `json:"upstream_name"`
	IncludeTags         []string  `json:"include_tags"`
	ExcludeTags         []string  `json:"exclude_tags"`
	DownloadConcurrency int       `json:"download_concurrency"`
	Username            *string   `json:"username"`
	SSLValidation       bool      `json:"ssl_validation"`
	ProxyURL            *string   `json:"proxy_url"`
	Policy              string    `json:"policy,omitempty"`
	SyncReferrers       bool      `json:"sync_referrers"`
	IncludePlatforms    []string  `json:"include_platforms"`
}

// RemoteRequest is the fields of a remote to set. For PATCH only the
// fields set are sent; a map[string]any body does the same for fields
// this type does not name.
type RemoteRequest struct {
	Name                 string    `json:"name,omitempty"`
	URL                  string    `json:"url,omitempty"`
	UpstreamName         string    `json:"upstream_name,omitempty"`
	IncludeTags          *[]string `json:"include_tags,omitempty"`
	ExcludeTags          *[]string `json:"exclude_tags,omitempty"`
	DownloadConcurrency  *int      `json:"download_concurrency,omitempty"`
	Username             *string   `json:"username,omitempty"`
	Password             *string   `json:"password,omitempty"`
	SSLCACertificate     *string   `json:"ssl_ca_certificate,omitempty"`
	SSLClientCertificate *string   `json:"ssl_client_certificate,omitempty"`
	SSLClientKey         *string   `json:"ssl_client_key,omitempty"`
	SSLValidation        *bool     `json:"ssl_validation,omitempty"`
	ProxyURL             *string   `json:"proxy_url,omitempty"`
	Policy               string    `json:"policy,omitempty"`
	SyncReferrers        *bool     `json:"sync_referrers,omitempty"`
	IncludePlatforms     *[]string `json:"include_platforms,omitempty"`
}

const remotesPath = APIRoot + "remotes/docker/docker/"

// ListRemotes returns a page of remotes.
func (c *Client) ListRemotes(ctx context.Context, o ListOptions) (*Page[Remote], error) {
	return list[Remote](ctx, c, remotesPath, o)
}

// RemoteByName returns the remote named name.
func (c *Client) RemoteByName(ctx context.Context, name string) (*Remote, error) {
	return byName[Remote](ctx, c, remotesPath, "remote", name)
}

// Remote returns the remote at href.
func (c *Client) Remote(ctx context.Context, href string) (*Remote, error) {
	return get[Remote](ctx, c, href)
}

// CreateRemote creates a remote.
func (c *Client) CreateRemote(ctx context.Context, r RemoteRequest) (*Remote, error) {
	return send[Remote](ctx, c, http.MethodPost, remotesPath, r)
}

// UpdateRemote changes the fields body sets (PATCH): a RemoteRequest or a
// map of fields.
func (c *Client) UpdateRemote(ctx context.Context, href string, body any) (*Remote, error) {
	return send[Remote](ctx, c, http.MethodPatch, href, body)
}

// DeleteRemote deletes a remote.
func (c *Client) DeleteRemote(ctx context.Context, href string) (*TaskRef, error) {
	return c.deleteMaybeTask(ctx, href)
}

// SyncRequest says which repository a sync goes into, and how.
type SyncRequest struct {
	Repository string `json:"repository"`
	Mirror     bool   `json:"mirror,omitempty"`
	// SignedOnly skips images without a signature.
	SignedOnly bool `json:"signed_only,omitempty"`
	// RetryPatience is how many seconds the sync may wait, at a time, for
	// the upstream's rate limit; 0 is the server's default (2 minutes).
	RetryPatience int `json:"retry_patience,omitempty"`
}

// Sync enqueues a sync of the remote at remoteHref.
func (c *Client) Sync(ctx context.Context, remoteHref string, r SyncRequest) (*TaskRef, error) {
	return send[TaskRef](ctx, c, http.MethodPost, remoteHref+"sync/", r)
}

// Distribution serves a repository (its latest version) or a version at a
// base path.
type Distribution struct {
	Href              string    `json:"_href"`
	Created           time.Time `json:"_created"`
	Name              string    `json:"name"`
	BasePath          string    `json:"base_path"`
	Repository        *string   `json:"repository"`
	RepositoryVersion *string   `json:"repository_version"`
	RegistryPath      string    `json:"registry_path"`
}

// DistributionRequest creates or changes a distribution.
type DistributionRequest struct {
	Name              string  `json:"name,omitempty"`
	BasePath          string  `json:"base_path,omitempty"`
	Repository        *string `json:"repository,omitempty"`
	RepositoryVersion *string `json:"repository_version,omitempty"`
}

const distributionsPath = APIRoot + "docker-distributions/"

// ListDistributions returns a page of distributions.
func (c *Client) ListDistributions(ctx context.Context, o ListOptions) (*Page[Distribution], error) {
	return list[Distribution](ctx, c, distributionsPath, o)
}

// DistributionByName returns the distribution named name.
func (c *Client) DistributionByName(ctx context.Context, name string) (*Distribution, error) {
	return byName[Distribution](ctx, c, distributionsPath, "distribution", name)
}

// Distribution returns the distribution at href.
func (c *Client) Distribution(ctx context.Context, href string) (*Distribution, error) {
	return get[Distribution](ctx, c, href)
}

// CreateDistribution creates a distribution.
func (c *Client) CreateDistribution(ctx context.Context, d DistributionRequest) (*Distribution, error) {
	return send[Distribution](ctx, c, http.MethodPost, distributionsPath, d)
}

// UpdateDistribution changes the fields body sets (PATCH).
func (c *Client) UpdateDistribution(ctx context.Context, href string, body any) (*Distribution, error) {
	return send[Distribution](ctx, c, http.MethodPatch, href, body)
}

// DeleteDistribution deletes a distribution.
func (c *Client) DeleteDistribution(ctx context.Context, href string) (*TaskRef, error) {
	return c.deleteMaybeTask(ctx, href)
}

// Content is a content unit: a manifest, manifest list, blob or tag.
type Content struct {
	Href           string    `json:"_href"`
	Created        time.Time `json:"_created"`
	Type           string    `json:"_type"`
	Digest         string    `json:"digest"`
	MediaType      string    `json:"media_type"`
	Size           *int64    `json:"size,omitempty"`
	Name           *string   `json:"name,omitempty"`
	TaggedManifest *string   `json:"tagged_manifest,omitempty"`
}

// ContentKinds are the content lists, by the URL segment naming them.
var ContentKinds = []string{"manifests", "manifest-lists", "blobs", "manifest-tags", "manifest-list-tags"}

// ListContent returns a page of content of one kind (ContentKinds), with
// the API's filters (repository_version, repository_version_added,
// repository_version_removed, digest, name, media_type).
func (c *Client) ListContent(ctx context.Context, kind string, o ListOptions) (*Page[Content], error) {
	return list[Content](ctx, c, APIRoot+"content/docker/"+kind+"/", o)
}

// Status is the server's status.
type Status struct {
	Versions []struct {
		Component string `json:"component"`
		Version   string `json:"version"`
	} `json:"versions"`
	OnlineWorkers []struct {
		Name          string    `json:"name"`
		Hostname      string    `json:"hostname"`
		PID           int       `json:"pid"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
	} `json:"online_workers"`
	DatabaseConnection struct {
		Connected bool `json:"connected"`
	} `json:"database_connection"`
	Storage struct {
		Connected bool `json:"connected"`
	} `json:"storage"`
}

// Status returns the server's status; it needs no credentials.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return get[Status](ctx, c, APIRoot+"status/")
}
