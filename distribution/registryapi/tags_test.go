package registryapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/repository"
)

// TestTagsList: without n every tag comes back, as CNCF distribution
// answers (clients that ignore Link read one answer as the whole list);
// with n, pages carry a Link to the next page only when one follows.
func TestTagsList(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := mooring.Open(ctx, filepath.Join(dir, "db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	doc, err := content.Parse("application/vnd.oci.image.index.v1+json", raw)
	if err != nil {
		t.Fatal(err)
	}
	unit, err := m.Repositories.PutDocument(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	const tags = 1001
	add := []int64{unit.ID}
	for i := range tags {
		tag, err := m.Repositories.PutTag(ctx, fmt.Sprintf("t%05d", i), unit)
		if err != nil {
			t.Fatal(err)
		}
		add = append(add, tag.ID)
	}
	repo, err := m.Repositories.CreateRepository(ctx, "many", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Repositories.NewVersion(ctx, repo.ID, repository.Change{Add: add}); err != nil {
		t.Fatal(err)
	}
	if err := m.Distributions.Create(ctx, &distribution.Distribution{Name: "many", BasePath: "many", RepositoryID: &repo.ID}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.RegistryHandler(registryapi.Options{}))
	defer srv.Close()
	get := func(query string) ([]string, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v2/many/tags/list" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Tags []string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET tags%s: %s %v", query, resp.Status, err)
		}
		return body.Tags, resp.Header.Get("Link")
	}
	if all, link := get(""); len(all) != tags || link != "" {
		t.Errorf("without n: %d tags, Link %q; want all %d and no Link", len(all), link, tags)
	}
	if page, link := get("?n=1000"); len(page) != 1000 || link == "" {
		t.Errorf("n=1000: %d tags, Link %q; want 1000 and a Link", len(page), link)
	}
	if page, link := get("?n=1000&last=t00999"); len(page) != 1 || page[0] != "t01000" || link != "" {
		t.Errorf("the last page: %v, Link %q; want [t01000] and no Link", page, link)
	}
	if page, link := get("?n=1&last=t00999"); len(page) != 1 || link != "" {
		t.Errorf("a full last page: %v, Link %q; want no Link to an empty page", page, link)
	}
}
