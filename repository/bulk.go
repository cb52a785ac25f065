package repository

import (
	"context"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content"
)

// Calls for many units at once, as a sync of tens of thousands of tags
// makes them: a statement per batch (multi-row INSERTs, IN lists of up to
// batch values), never one per unit.

// TagTarget is a tag to record: its name and the stored manifest or
// manifest list it names.
type TagTarget struct {
	Name   string
	Target *Content
}

// PutTags records tag units as PutTag does, a batch per multi-row
// statement, and returns them, stored, in the order given.
func (s *Store) PutTags(ctx context.Context, tags []TagTarget) ([]Content, error) {
	units := make([]Content, len(tags))
	for i, t := range tags {
		u, err := tagUnit(t.Name, t.Target)
		if err != nil {
			return nil, err
		}
		units[i] = u
	}
	out, err := s.putUnits(ctx, units)
	if err == nil {
		s.analyzeAfter(ctx, "contents", len(out))
	}
	return out, err
}

// PutDocuments records manifests and manifest lists as PutDocument does,
// a batch per transaction of a few multi-row statements, and returns
// their units in the order given (Raw set).
func (s *Store) PutDocuments(ctx context.Context, docs []content.Document) ([]Content, error) {
	out := make([]Content, 0, len(docs))
	for chunk := range slices.Chunk(docs, batch) {
		units := make([]Content, len(chunk))
		refs := make([][]Ref, len(chunk))
		for i, doc := range chunk {
			var err error
			if units[i], refs[i], err = documentUnit(doc); err != nil {
				return nil, err
			}
		}
		err := s.InTx(ctx, func(ctx context.Context, tx *Store) error {
			if _, err := tx.putUnits(ctx, units); err != nil {
				return err
			}
			var all []Ref
			for i, u := range units {
				for j, r := range refs[i] {
					r.ParentID, r.Position = u.ID, j
					all = append(all, r)
				}
			}
			for rs := range slices.Chunk(all, batch) {
				// Refs are a function of the bytes, so an existing set is the same.
				if _, err := tx.db.NewInsert().Model(&rs).On("CONFLICT (parent_id, position) DO NOTHING").Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, units...)
	}
	s.analyzeAfter(ctx, "contents", len(out))
	return out, nil
}

// DocumentsByDigest returns the stored manifests and manifest lists whose
// digests are among ds, in no particular order; digests not stored are
// left out. Only ID, Type, Digest, MediaType and Raw are read: what it
// takes to parse a document and to name its unit, for tens of thousands
// of documents.
func (s *Store) DocumentsByDigest(ctx context.Context, ds []digest.Digest) ([]Content, error) {
	var out []Content
	for chunk := range slices.Chunk(distinct(ds), batch) {
		var units []Content
		err := s.db.NewSelect().Model(&units).Column("id", "type", "digest", "media_type", "raw").
			Where("type IN (?) AND digest IN (?) AND name = ''",
				bun.In([]content.Type{content.TypeManifest, content.TypeManifestList}), bun.In(chunk)).
			Scan(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, units...)
	}
	return out, nil
}

// VersionTag is a tag of a version: its unit and the digest of the
// manifest or list it names.
type VersionTag struct {
	ID     int64         `bun:"id"`
	Name   string        `bun:"name"`
	Digest digest.Digest `bun:"digest"`
}

// VersionTags returns the tags of version v, in no particular order.
func (s *Store) VersionTags(ctx context.Context, v VersionRef) ([]VersionTag, error) {
	var tags []VersionTag
	err := s.db.NewSelect().TableExpr("repository_contents AS rc").
		Join("JOIN contents AS c ON c.id = rc.content_id").
		ColumnExpr("c.id, c.name, c.digest").
		Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
		Where("rc.content_type IN (?)", bun.In(tagTypes)).
		Scan(ctx, &tags)
	return tags, err
}

// PresentIDs returns which of the units ids version v holds.
func (s *Store) PresentIDs(ctx context.Context, v VersionRef, ids []int64) (map[int64]bool, error) {
	out := make(map[int64]bool, len(ids))
	for chunk := range slices.Chunk(ids, batch) {
		var got []int64
		err := s.db.NewSelect().TableExpr("repository_contents AS rc").ColumnExpr("rc.content_id").
			Where("rc.repository_id = ? AND "+rcPresentIn, v.RepositoryID, v.Number, v.Number).
			Where("rc.content_id IN (?)", bun.In(chunk)).
			Scan(ctx, &got)
		if err != nil {
			return nil, err
		}
		for _, id := range got {
			out[id] = true
		}
	}
	return out, nil
}

// VersionBlobs returns the blob units of version v whose digests are among
// ds, foreign layers included, by digest; Raw is not loaded.
func (s *Store) VersionBlobs(ctx context.Context, v VersionRef, ds []digest.Digest) (map[digest.Digest]Content, error) {
	out := make(map[digest.Digest]Content, len(ds))
	for chunk := range slices.Chunk(distinct(ds), batch) {
		var units []Content
		err := s.db.NewSelect().Model(&units).ExcludeColumn("raw").
			Where("type = ? AND name = '' AND digest IN (?)", content.TypeBlob, bun.In(chunk)).
			Where("id IN (SELECT rc.content_id FROM repository_contents AS rc WHERE rc.repository_id = ? AND "+rcPresentIn+")",
				v.RepositoryID, v.Number, v.Number).
			Scan(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range units {
			out[u.Digest] = u
		}
	}
	return out, nil
}

// HasRemoteArtifacts reports whether remote remoteID can fetch every unit
// of ids for repository repoID (AddRemoteArtifacts recorded them all).
func (s *Store) HasRemoteArtifacts(ctx context.Context, repoID, remoteID string, ids []int64) (bool, error) {
	for chunk := range slices.Chunk(distinctIDs(ids), batch) {
		n, err := s.db.NewSelect().Model((*RemoteArtifact)(nil)).
			Where("repository_id = ? AND remote_id = ? AND content_id IN (?)", repoID, remoteID, bun.In(chunk)).
			Count(ctx)
		if err != nil {
			return false, err
		}
		if n < int64(len(chunk)) { // the primary key holds each (unit, repository, remote) once
			return false, nil
		}
	}
	return true, nil
}
