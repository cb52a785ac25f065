package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/task"
)

// The plan stage decides what a sync is about: which upstream tags, and
// which of their documents the repository store already holds, found
// without a manifest GET.

// plan is the outcome of the plan stage.
type plan struct {
	// tags are the upstream's tags that the remote's filters keep, sorted.
	tags []plannedTag
	// tagReport counts tags whose document is known; the fetch stage
	// finishes it.
	tagReport *task.Report
	// digests are manifests the include patterns name by digest, synced
	// whether or not a tag names them.
	digests []digest.Digest
}

// plannedTag is an upstream tag and what is known of it before any GET.
type plannedTag struct {
	name string
	// digest is what a HEAD request said the tag names; empty when the
	// repository did not have the tag (so no HEAD was made) or the HEAD
	// failed.
	digest digest.Digest
	// stored is the document of digest, when the repository store holds it.
	stored *docEntry
}

// toFetch returns the tags whose documents the fetch stage must GET.
func (p *plan) toFetch() []string {
	var names []string
	for _, t := range p.tags {
		if t.stored == nil {
			names = append(names, t.name)
		}
	}
	return names
}

// plan lists and filters the upstream's tags, and checks those the
// repository's latest version has with a HEAD request each (resolveKnown).
func (run *syncRun) plan(ctx context.Context) (*plan, error) {
	names, err := run.listTags(ctx)
	if err != nil {
		return nil, err
	}
	have, err := run.s.Repos.VersionTags(ctx, run.latest)
	if err != nil {
		return nil, &SyncError{Op: "read repository", Ref: run.repoID, Err: fmt.Errorf("read tags: %w", err)}
	}
	run.have = make(map[string]repository.VersionTag, len(have))
	for _, t := range have {
		run.have[t.Name] = t
	}
	p := &plan{tags: make([]plannedTag, len(names)), digests: run.r.includedDigests()}
	p.tagReport = run.reports.start(CodeTags, "Processing tags", int64(len(names)))
	var known []*plannedTag
	for i, name := range names {
		t := &p.tags[i]
		t.name = name
		if _, ok := run.have[name]; ok {
			known = append(known, t)
		}
	}
	if err := run.resolveKnown(ctx, p, known); err != nil {
		return nil, err
	}
	return p, nil
}

// listTags returns the upstream's valid tags that the remote's filters
// keep, sorted.
func (run *syncRun) listTags(ctx context.Context) ([]string, error) {
	rep := run.reports.start(CodeTagList, "Downloading tag list", 0)
	all, err := run.up.tags(ctx)
	if err != nil {
		return nil, &SyncError{Op: "list tags", Ref: run.r.Upstream(), Err: err}
	}
	run.upstreamTags = all
	tags := make([]string, 0, len(all))
	for _, t := range all {
		if err := content.ValidateTagName(t); err != nil {
			run.log.Warn("skipping upstream tag", "tag", t, "err", err)
			continue
		}
		if run.r.wantTag(t) && !run.followsSubject(t) {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	rep.SetTotal(int64(len(tags)))
	rep.Add(int64(len(tags)))
	rep.Complete()
	return tags, nil
}

// stored returns the document with digest d if the repository store has
// it, with its unit; nil if not.
func (run *syncRun) stored(ctx context.Context, d digest.Digest) (*docEntry, error) {
	for _, t := range []content.Type{content.TypeManifest, content.TypeManifestList} {
		c, err := run.s.Repos.ContentByDigest(ctx, t, d)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, &SyncError{Op: "read stored manifest", Ref: d.String(), Err: err}
		}
		doc, err := content.ParseDigest(c.MediaType, c.Raw, d)
		if err != nil {
			return nil, &SyncError{Op: "read stored manifest", Ref: d.String(), Err: fmt.Errorf("stored %s: %w", t, err)}
		}
		c.Raw = nil
		return &docEntry{doc: slim(doc), unit: c}, nil
	}
	return nil, nil
}
