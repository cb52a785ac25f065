package repository_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

func versionNumbers(t testing.TB, s *repository.Store, repoID string) []int {
	t.Helper()
	vs, _, err := s.ListVersions(context.Background(), repoID, repository.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, v := range vs {
		out = append(out, v.Number)
	}
	slices.Sort(out)
	return out
}

// TestRetainVersions: a repository keeps its N newest versions, and each
// keeps exactly its content when older ones go.
func TestRetainVersions(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		r, err := s.CreateRepositoryWith(ctx, repository.RepositorySpec{Name: "r", RetainVersions: 3})
		if err != nil {
			t.Fatal(err)
		}
		if r.RetainVersions != 3 {
			t.Fatalf("RetainVersions = %d, want 3", r.RetainVersions)
		}
		var want [][]string
		for i := range 6 {
			f := putImage(t, s, string(rune('a'+i)))
			v, err := s.AddContent(ctx, r.ID, []repository.UnitRef{ref(f.manifest)})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, holds(t, s, r.ID, v.Number))
		}
		if got := versionNumbers(t, s, r.ID); !slices.Equal(got, []int{4, 5, 6}) {
			t.Fatalf("versions = %v, want [4 5 6]", got)
		}
		for n := 4; n <= 6; n++ {
			if got := holds(t, s, r.ID, n); !slices.Equal(got, want[n-1]) {
				t.Errorf("version %d holds %v, want %v", n, got, want[n-1])
			}
			sum, err := s.Summary(ctx, r.ID, n)
			if err != nil {
				t.Fatal(err)
			}
			if total := sum.Present["docker.manifest"]; total != n {
				t.Errorf("version %d summary: %d manifests present, want %d", n, total, n)
			}
		}
		// Lowering the count deletes at once; 0 keeps everything again.
		one := 1
		if r, err = s.UpdateRepository(ctx, r.ID, repository.RepositoryUpdate{RetainVersions: &one}); err != nil {
			t.Fatal(err)
		}
		if got := versionNumbers(t, s, r.ID); !slices.Equal(got, []int{6}) {
			t.Fatalf("versions after retain 1 = %v, want [6]", got)
		}
		if got := holds(t, s, r.ID, 6); !slices.Equal(got, want[5]) {
			t.Errorf("version 6 holds %v, want %v", got, want[5])
		}
		zero := 0
		if _, err = s.UpdateRepository(ctx, r.ID, repository.RepositoryUpdate{RetainVersions: &zero}); err != nil {
			t.Fatal(err)
		}
		f := putImage(t, s, "z")
		if _, err := s.AddContent(ctx, r.ID, []repository.UnitRef{ref(f.manifest)}); err != nil {
			t.Fatal(err)
		}
		if got := versionNumbers(t, s, r.ID); !slices.Equal(got, []int{6, 7}) {
			t.Fatalf("versions with retain 0 = %v, want [6 7]", got)
		}
		neg := -1
		_, err = s.UpdateRepository(ctx, r.ID, repository.RepositoryUpdate{RetainVersions: &neg})
		var fe *errdef.FieldError
		if !errors.As(err, &fe) || fe.Field != "retain_repo_versions" {
			t.Errorf("retain -1: %v, want a field error", err)
		}
	})
}
