package server

import (
	"context"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/repository"
)

// listedJSON says which entries of a manifest list are present: a sync
// with include_platforms keeps the list whole, with its upstream digest,
// but only some of the manifests it names.
type listedJSON struct {
	// ManifestsPresent and ManifestsMissing count the list's entries
	// whose manifest is, and is not, present.
	ManifestsPresent *int `json:"manifests_present,omitempty"`
	ManifestsMissing *int `json:"manifests_missing,omitempty"`
	// Entries are the list's entries, in order.
	Entries *[]listEntryJSON `json:"entries,omitempty"`
}

// listEntryJSON is one entry of a manifest list.
type listEntryJSON struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	// Platform is "os/architecture[/variant]", null when the entry has
	// none.
	Platform *string `json:"platform"`
	Present  bool    `json:"present"`
	// Manifest is the href of the manifest or list, when present.
	Manifest *string `json:"manifest"`
}

// listEntries fills in a list's entries, present when version in holds
// them (when in is nil: when they are stored).
func (s *Server) listEntries(ctx context.Context, c *repository.Content, in *repository.VersionRef, out *contentJSON) error {
	if c.Type != content.TypeManifestList {
		return nil
	}
	listed, err := s.repos.ListedManifests(ctx, c.ID, in)
	if err != nil {
		return err
	}
	entries := make([]listEntryJSON, len(listed))
	present := 0
	for i, l := range listed {
		e := listEntryJSON{Digest: l.Digest.String(), MediaType: l.MediaType}
		if p := l.Platform; p != nil {
			name := p.OS + "/" + p.Architecture
			if p.Variant != "" {
				name += "/" + p.Variant
			}
			e.Platform = &name
		}
		if l.Unit != nil {
			h := contentHref(l.Unit.Type, l.Unit.UUID)
			e.Present, e.Manifest = true, &h
			present++
		}
		entries[i] = e
	}
	missing := len(listed) - present
	out.ManifestsPresent, out.ManifestsMissing, out.Entries = &present, &missing, &entries
	return nil
}
