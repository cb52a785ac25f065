package client

import (
	"context"
	"net/http"
)

// ExportRequest exports a repository version to an OCI image layout on
// the server's machine.
type ExportRequest struct {
	// Path is absolute; a directory, or a tar archive ending in ".tar".
	Path string `json:"path"`
	// RepositoryVersion is a version's href; empty: the latest.
	RepositoryVersion string `json:"repository_version,omitempty"`
	// Tags, when set, exports only these.
	Tags []string `json:"tags,omitempty"`
}

// Export enqueues an export of the repository at repoHref.
func (c *Client) Export(ctx context.Context, repoHref string, r ExportRequest) (*TaskRef, error) {
	return send[TaskRef](ctx, c, http.MethodPost, repoHref+"export/", r)
}

// ImportRequest imports an OCI image layout on the server's machine.
type ImportRequest struct {
	// Path is absolute: a directory or a tar archive.
	Path string `json:"path"`
}

// Import enqueues an import into the repository at repoHref.
func (c *Client) Import(ctx context.Context, repoHref string, r ImportRequest) (*TaskRef, error) {
	return send[TaskRef](ctx, c, http.MethodPost, repoHref+"import/", r)
}

// Action enqueues a repository action (Pulp's tag, untag, add, remove,
// copy_tags, copy_manifests, modify) with its body, such as
// {"tag": "v1", "digest": "sha256:…"} for "tag".
func (c *Client) Action(ctx context.Context, repoHref, action string, body any) (*TaskRef, error) {
	return send[TaskRef](ctx, c, http.MethodPost, repoHref+action+"/", body)
}

// Tag enqueues tagging the manifest or list with digest as tag.
func (c *Client) Tag(ctx context.Context, repoHref, tag, digest string) (*TaskRef, error) {
	return c.Action(ctx, repoHref, "tag", map[string]string{"tag": tag, "digest": digest})
}

// Untag enqueues removing tag.
func (c *Client) Untag(ctx context.Context, repoHref, tag string) (*TaskRef, error) {
	return c.Action(ctx, repoHref, "untag", map[string]string{"tag": tag})
}

// CopyTags enqueues copying tags (all when names is empty) and what they
// name from a source repository or version href.
func (c *Client) CopyTags(ctx context.Context, repoHref, source string, sourceIsVersion bool, names []string) (*TaskRef, error) {
	body := map[string]any{}
	if sourceIsVersion {
		body["source_repository_version"] = source
	} else {
		body["source_repository"] = source
	}
	if len(names) > 0 {
		body["names"] = names
	}
	return c.Action(ctx, repoHref, "copy_tags", body)
}

// CleanupOrphans enqueues deleting content no version holds, older than
// protectMinutes (nil: the server's default).
func (c *Client) CleanupOrphans(ctx context.Context, protectMinutes *int) (*TaskRef, error) {
	body := map[string]any{}
	if protectMinutes != nil {
		body["orphan_protection_time"] = *protectMinutes
	}
	return send[TaskRef](ctx, c, http.MethodPost, APIRoot+"orphans/cleanup/", body)
}
