package remote

import (
	"context"
	"slices"
)

// A resync of an upstream that has not changed should cost its HEAD
// requests and a few reads, and write nothing: no blob lease, no content
// rows, no transaction (which on SQLite takes the database's write lock,
// and on PostgreSQL the repository's row lock). unchanged finds that case
// after the documents are known and before anything is written.

// unchanged reports whether committing f would leave the repository's
// latest version exactly as it is, and do nothing else a commit does:
//
//   - every document was found stored (none needed a GET), and every tag
//     names in the latest version the digest it names upstream;
//   - the latest version holds every document and every blob the
//     documents reference, and no blob the sync would download (under the
//     immediate policy, any on-demand blob; otherwise, an on-demand
//     config): a blob unit that says its bytes are stored is trusted
//     (MarkStored and Reclaim keep that so);
//   - a mirror sync: the latest version holds nothing else;
//   - a stored remote: it is recorded as able to fetch every blob for the
//     repository (remote artifacts);
//   - the version read is still the latest when the reads are done (a
//     version's content never changes, so the answer holds then).
//
// Every read is of the version the sync began with, run.latest.
func (run *syncRun) unchanged(ctx context.Context, f *fetched) (bool, error) {
	docs := slices.Concat(f.manifests, f.lists)
	ids := make([]int64, 0, len(docs))
	for _, e := range docs {
		if e.unit == nil {
			return false, nil
		}
		ids = append(ids, e.unit.ID)
	}
	for _, t := range f.tagged {
		if have, ok := run.have[t.name]; !ok || have.Digest != t.digest {
			return false, nil
		}
	}
	same, err := run.holdsAll(ctx, ids, f)
	if err != nil || !same {
		return false, err
	}
	repo, err := run.s.Repos.Repository(ctx, run.repoID)
	if err != nil {
		return false, &SyncError{Op: "read repository", Ref: run.repoID, Err: err}
	}
	return repo.LatestVersion == run.latest.Number, nil
}

// holdsAll checks the latest version's side of unchanged: its documents
// ids, f's blobs, nothing else when mirroring, the remote artifacts.
func (run *syncRun) holdsAll(ctx context.Context, ids []int64, f *fetched) (bool, error) {
	repos := run.s.Repos
	fail := func(err error) (bool, error) {
		return false, &SyncError{Op: "read repository", Ref: run.repoID, Err: err}
	}
	held, err := repos.PresentIDs(ctx, run.latest, ids)
	if err != nil {
		return fail(err)
	}
	if len(held) < len(ids) {
		return false, nil
	}
	blobs, err := repos.VersionBlobs(ctx, run.latest, digests(f.blobs))
	if err != nil {
		return fail(err)
	}
	fetchable := make([]int64, 0, len(f.blobs))
	for _, b := range f.blobs {
		u, ok := blobs[b.Digest]
		if !ok || u.OnDemand && (run.r.Policy == PolicyImmediate || f.configs[b.Digest]) {
			return false, nil
		}
		if !u.Foreign {
			fetchable = append(fetchable, u.ID)
		}
	}
	if run.mirror {
		sum, err := repos.Summary(ctx, run.repoID, run.latest.Number)
		if err != nil {
			return fail(err)
		}
		total := 0
		for _, n := range sum.Present {
			total += n
		}
		if total != len(f.tagged)+len(ids)+len(f.blobs) {
			return false, nil
		}
	}
	if run.r.ID == "" {
		return true, nil
	}
	ok, err := repos.HasRemoteArtifacts(ctx, run.repoID, run.r.ID, fetchable)
	if err != nil {
		return fail(err)
	}
	return ok, nil
}

// reportUnchanged ends the stages an unchanged sync skips as a sync that
// downloads nothing and finds everything associated already reports
// them.
func (run *syncRun) reportUnchanged(f *fetched) {
	run.reports.start(CodeArtifacts, "Downloading artifacts", 0).Complete()
	rep := run.reports.start(CodeAssociating, "Associating content", f.units())
	rep.Add(f.units())
	rep.Complete()
}

// units counts the content units the sync's version holds.
func (f *fetched) units() int64 {
	return int64(len(f.tagged) + len(f.manifests) + len(f.lists) + len(f.blobs))
}
