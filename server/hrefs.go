package server

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/mooring-dev/mooring/content"
)

// APIRoot is the prefix of every REST path, Pulp's.
const APIRoot = "/pulp/api/v3/"

func repoHref(id string) string { return APIRoot + "repositories/" + id + "/" }

func versionsHref(repoID string) string { return repoHref(repoID) + "versions/" }

func versionHref(repoID string, n int) string {
	return versionsHref(repoID) + strconv.Itoa(n) + "/"
}

func remoteHref(id string) string { return APIRoot + "remotes/docker/docker/" + id + "/" }

func distributionHref(id string) string { return APIRoot + "docker-distributions/" + id + "/" }

func taskHref(id string) string { return APIRoot + "tasks/" + id + "/" }

// contentKinds maps the URL segment of each content list to its type.
var contentKinds = map[string]content.Type{
	"manifests":          content.TypeManifest,
	"blobs":              content.TypeBlob,
	"manifest-lists":     content.TypeManifestList,
	"manifest-tags":      content.TypeManifestTag,
	"manifest-list-tags": content.TypeManifestListTag,
}

// contentKind is the URL segment of a content type.
func contentKind(t content.Type) string {
	for k, v := range contentKinds {
		if v == t {
			return k
		}
	}
	return ""
}

func contentListHref(t content.Type) string {
	return APIRoot + "content/docker/" + contentKind(t) + "/"
}

func contentHref(t content.Type, id string) string { return contentListHref(t) + id + "/" }

var (
	repoHrefRe    = regexp.MustCompile(`^/pulp/api/v3/repositories/([0-9a-f-]{36})/$`)
	versionHrefRe = regexp.MustCompile(`^/pulp/api/v3/repositories/([0-9a-f-]{36})/versions/(0|[1-9][0-9]{0,8})/$`)
)

func parseRepoHref(path string) (string, bool) {
	m := repoHrefRe.FindStringSubmatch(path)
	if m == nil || !isUUID(m[1]) {
		return "", false
	}
	return m[1], true
}

// parseVersionHref returns "repoID/number".
func parseVersionHref(path string) (string, bool) {
	m := versionHrefRe.FindStringSubmatch(path)
	if m == nil || !isUUID(m[1]) {
		return "", false
	}
	return m[1] + "/" + m[2], true
}

func splitVersionKey(key string) (string, int) {
	n, _ := strconv.Atoi(key[37:])
	return key[:36], n
}

// page is a list response, Pulp's pagination shape.
type page struct {
	Count    int     `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  any     `json:"results"`
}

// newPage links the neighbouring pages of a list as Pulp does: absolute
// URLs keeping the request's other parameters.
func newPage(r *http.Request, results any, count, limit, offset int) page {
	p := page{Count: count, Results: results}
	link := func(off int) *string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		if r.TLS != nil {
			u.Scheme = "https"
		}
		q := r.URL.Query()
		q.Set("limit", strconv.Itoa(limit))
		if off > 0 {
			q.Set("offset", strconv.Itoa(off))
		} else {
			q.Del("offset")
		}
		u.RawQuery = q.Encode()
		s := u.String()
		return &s
	}
	if offset+limit < count {
		p.Next = link(offset + limit)
	}
	if offset > 0 {
		p.Previous = link(max(offset-limit, 0))
	}
	return p
}
