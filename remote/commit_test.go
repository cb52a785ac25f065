package remote

import (
	"context"
	"testing"

	"github.com/mooring-dev/mooring/internal/regtest"
)

// TestCommit: the commit stage creates one version of what was fetched;
// committing the same content again, additive or mirror, creates none.
func TestCommit(t *testing.T) {
	ctx := context.Background()
	host, url, _ := stageUpstream(t)
	push(t, host, "a", regtest.ImageOpts{Seed: "a", Layers: 2})
	push(t, host, "b", regtest.ImageOpts{Seed: "b"})
	s, repoID := stageSyncer(t)
	r := New("up", url, "team/app")

	run := stageRun(t, s, r, repoID)
	p, err := run.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := run.fetch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := run.commit(ctx, f, false)
	if err != nil || v == nil || v.Number != 1 {
		t.Fatalf("first commit: version %v, %v; want version 1", v, err)
	}
	for _, mirror := range []bool{false, true} {
		v, err := stageRun(t, s, r, repoID).commit(ctx, f, mirror)
		if err != nil || v != nil {
			t.Errorf("commit again (mirror %v): version %v, %v; want none", mirror, v, err)
		}
	}
	repo, err := s.Repos.Repository(ctx, repoID)
	if err != nil || repo.LatestVersion != 1 {
		t.Errorf("latest version %v, %v; want 1", repo, err)
	}
}
