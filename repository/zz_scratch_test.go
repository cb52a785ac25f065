package repository_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/repository"
)

func TestZZScratch(t *testing.T) {
	d := dbtest.Open(t, "sqlite")
	s := newStore(t, d)
	ctx := context.Background()
	m := putImage(t, s, "x").manifest
	old := time.Now().UTC().Add(-time.Hour)
	var tags []repository.Content
	for i := range 20000 {
		tags = append(tags, repository.Content{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Type: content.TypeManifestTag, Name: fmt.Sprint("t", i), Digest: m.Digest, TaggedID: m.ID, CreatedAt: old})
	}
	for i := 0; i < len(tags); i += 500 {
		c := tags[i : i+500]
		if _, err := d.NewInsert().Model(&c).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var plan []string
	d.NewRaw("EXPLAIN QUERY PLAN DELETE FROM contents WHERE id IN (1,2,3) AND created_at < ? AND NOT EXISTS (SELECT 1 FROM repository_contents AS rc WHERE rc.content_id = contents.id) RETURNING id, type", time.Now()).Scan(ctx, &plan)
	t.Log(plan)
	t0 := time.Now()
	n, err := s.DeleteOrphans(ctx, time.Now(), nil)
	t.Log(n, err, time.Since(t0))
}
