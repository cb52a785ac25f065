package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/bench"
	"github.com/mooring-dev/mooring/distribution"
	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/repository"
)

// tagsListRuns is how many times each tag list is fetched; the median is
// printed beside the first (cold) fetch.
const tagsListRuns = 5

// tagsList times fetching every tag of the synced repository from
// Mooring's registry and of the upstream from docker-registry, page by
// page and in one request.
func tagsList(ctx context.Context, cfg config, m *mooring.Mooring, repo *repository.Repository, upstreamHost string) error {
	err := m.Distributions.Create(ctx, &distribution.Distribution{Name: "mirror", BasePath: "mirror", RepositoryID: &repo.ID})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(m.RegistryHandler(registryapi.Options{}))
	defer srv.Close()
	for _, n := range []int{cfg.page, 0} {
		what := fmt.Sprintf("tags/list ?n=%d, every page", n)
		if n == 0 {
			what = "tags/list without n"
		}
		var line string
		for _, target := range []struct{ name, base, repo string }{
			{"mooring", srv.URL, "mirror"}, {"docker-registry", "http://" + upstreamHost, upstreamRepo},
		} {
			var times []time.Duration
			var pages, tags int
			for range tagsListRuns {
				start := time.Now()
				var err error
				if pages, tags, err = listAll(target.base, target.repo, n); err != nil {
					return fmt.Errorf("%s %s: %w", target.name, what, err)
				}
				times = append(times, time.Since(start))
			}
			line += fmt.Sprintf("  %s %v (first %v; %d tags in %d requests)", target.name,
				bench.Median(times).Round(time.Microsecond), times[0].Round(time.Microsecond), tags, pages)
		}
		fmt.Fprintf(cfg.out, "%-26s%s\n", what, line)
	}
	return nil
}

// listAll follows the Link headers of repo's tag list from the first page
// of n tags (all tags when n is 0) and returns how many requests it made
// and tags it got.
func listAll(base, repo string, n int) (pages, tags int, err error) {
	next := base + "/v2/" + repo + "/tags/list"
	if n > 0 {
		next += fmt.Sprintf("?n=%d", n)
	}
	for next != "" {
		resp, err := http.Get(next)
		if err != nil {
			return pages, tags, err
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return pages, tags, fmt.Errorf("GET %s: %s %v", next, resp.Status, err)
		}
		pages++
		tags += len(body.Tags)
		next, err = nextLink(next, resp.Header.Get("Link"))
		if err != nil {
			return pages, tags, err
		}
	}
	return pages, tags, nil
}

// nextLink resolves the URL of a Link header (`<url>; rel="next"`)
// against the request's; "" when there is none.
func nextLink(from, link string) (string, error) {
	if link == "" {
		return "", nil
	}
	start, end := 0, len(link)
	for i, c := range link {
		if c == '<' {
			start = i + 1
		}
		if c == '>' {
			end = i
			break
		}
	}
	ref, err := url.Parse(link[start:end])
	if err != nil {
		return "", err
	}
	base, err := url.Parse(from)
	if err != nil {
		return "", err
	}
	return base.ResolveReference(ref).String(), nil
}
