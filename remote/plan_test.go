package remote

import (
	"context"
	"slices"
	"testing"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestPlan: the plan stage of a first sync asks nothing but the tag list;
// after a sync, planning against an unchanged upstream finds every tag's
// document stored, with one HEAD per tag and no manifest GET; a tag moved
// upstream is the only one left to fetch.
func TestPlan(t *testing.T) {
	ctx := context.Background()
	host, url, reqs := stageUpstream(t)
	for _, tag := range []string{"a", "b", "c", "skipped"} {
		push(t, host, tag, regtest.ImageOpts{Seed: tag})
	}
	s, repoID := stageSyncer(t)
	r := New("up", url, "team/app")
	r.ExcludeTags = []string{"skip*"}

	p, err := stageRun(t, s, r, repoID).plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.toFetch(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("first plan fetches %v, want a b c", got)
	}
	if n := reqs.get("HEAD manifests") + reqs.get("GET manifests"); n != 0 {
		t.Errorf("first plan made %d manifest requests, want none", n)
	}

	if _, err := s.Sync(ctx, r, repoID, SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs.reset()
	p, err = stageRun(t, s, r, repoID).plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.tags) != 3 || len(p.toFetch()) != 0 {
		t.Errorf("plan of an unchanged upstream: %d tags, fetches %v; want 3 tags, nothing to fetch", len(p.tags), p.toFetch())
	}
	if get, head := reqs.get("GET manifests"), reqs.get("HEAD manifests"); get != 0 || head != 3 {
		t.Errorf("plan of an unchanged upstream made %d manifest GETs and %d HEADs, want 0 and 3", get, head)
	}

	push(t, host, "b", regtest.ImageOpts{Seed: "b2"})
	p, err = stageRun(t, s, r, repoID).plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.toFetch(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after moving tag b the plan fetches %v, want b", got)
	}
}
