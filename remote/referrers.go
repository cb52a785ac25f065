package remote

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/mooring-dev/mooring/content"
)

// Signatures, attestations and other referrers travel with the images
// they refer to. After the fetch stage has found the documents of the
// filtered tags, every manifest and list the sync holds brings, unless the
// remote's SkipReferrers is set:
//
//   - its cosign companion tags, <alg>-<hex>.sig, .att and .sbom, whatever
//     the remote's tag filters say (and only those of synced documents:
//     the filters never pick companion tags themselves);
//   - its OCI referrers, the manifests whose subject it is (distribution
//     spec "Listing Referrers"), from the upstream's referrers API or,
//     when it has none (CNCF distribution 2.8), from the referrers tag
//     schema: the index that tag <alg>-<hex> names.
//
// What they bring brings its own in turn (a signature of an SBOM), and
// their blobs are downloaded as the remote's policy says. Referrers tags
// themselves are ordinary tags, synced when the filters keep them.

// SignatureArtifactTypes are the artifact types of referrers that make
// their subject signed for SyncOptions.SignedOnly: cosign's OCI 1.1
// signatures, Notary Project (notation) signatures, and Sigstore bundles
// (cosign 3's format) but those whose annotation
// "dev.sigstore.bundle.predicateType" names an attestation rather than
// cosign's signature predicate. A referrer's artifact type is that of its
// manifest (its artifactType, else its config's media type), fetched and
// checked to have the image as its subject. Nothing is verified: an image
// is signed when such a referrer, or a cosign companion tag
// <alg>-<hex>.sig, exists upstream.
var SignatureArtifactTypes = []string{
	"application/vnd.dev.cosign.artifact.sig.v1+json",
	"application/vnd.cncf.notary.signature",
	sigstoreBundleType,
}

const (
	sigstoreBundleType      = "application/vnd.dev.sigstore.bundle.v0.3+json"
	sigstorePredicateKey    = "dev.sigstore.bundle.predicateType"
	sigstoreSignaturePred   = "https://sigstore.dev/cosign/sign/v1"
	cosignSignatureSuffix   = ".sig"
	zeroDigest              = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	maxReferrersPerDocument = 1000
)

// companionSuffixes end cosign's companion tags: signatures,
// attestations, SBOMs.
var companionSuffixes = []string{cosignSignatureSuffix, ".att", ".sbom"}

// companionSubject returns the digest a cosign companion tag
// (<alg>-<hex>.sig, .att or .sbom) belongs to.
func companionSubject(tag string) (digest.Digest, bool) {
	for _, s := range companionSuffixes {
		if base, ok := strings.CutSuffix(tag, s); ok {
			return tagSubject(base)
		}
	}
	return "", false
}

// tagSubject returns the digest <alg>:<hex> a tag <alg>-<hex> names, the
// form of the referrers tag schema and of cosign's tags.
func tagSubject(tag string) (digest.Digest, bool) {
	alg, hex, ok := strings.Cut(tag, "-")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// followsSubject reports whether tag is a companion tag that comes with
// its subject rather than by the tag filters.
func (run *syncRun) followsSubject(tag string) bool {
	_, ok := companionSubject(tag)
	return ok && run.r.SyncReferrers()
}

// isSignature reports whether a referrer is a signature (see
// SignatureArtifactTypes). Its own artifact type counts, else its
// config's (image-spec "Guidelines for Artifact Usage"), not what a
// referrers list says: lists may be stale, and some registries fill them
// in from the config alone.
func isSignature(doc content.Document) bool {
	var typ string
	var annotations map[string]string
	switch m := doc.(type) {
	case *content.Manifest:
		typ, annotations = m.ArtifactType, m.Annotations
		if typ == "" && m.Config != nil {
			typ = m.Config.MediaType
		}
	case *content.ManifestList:
		typ, annotations = m.ArtifactType, m.Annotations
	}
	if !slices.Contains(SignatureArtifactTypes, typ) {
		return false
	}
	p, ok := annotations[sigstorePredicateKey]
	return typ != sigstoreBundleType || !ok || p == sigstoreSignaturePred
}

// related finds what refers to the documents a fetcher holds: it answers
// whether they are signed, and adds their companions and referrers.
type related struct {
	fr *fetcher
	// companions are the upstream's companion tags by subject; indexed
	// the subjects that have a referrers tag.
	companions map[digest.Digest][]string
	indexed    map[digest.Digest]bool

	// followed and unsigned are SyncResult's Referrers and Unsigned.
	followed, unsigned int

	mu sync.Mutex
	// api is whether the upstream serves the referrers API, once asked.
	api *bool
	// listed are the referrers found, by subject.
	listed map[digest.Digest][]*docEntry
	// tags are the companion tags found, with their documents.
	tags []taggedDoc
}

// related indexes the upstream's tags the plan listed.
func (fr *fetcher) related() *related {
	rl := &related{fr: fr, companions: map[digest.Digest][]string{}, indexed: map[digest.Digest]bool{},
		listed: map[digest.Digest][]*docEntry{}}
	for _, t := range fr.run.upstreamTags {
		if content.ValidateTagName(t) != nil {
			continue
		}
		if d, ok := companionSubject(t); ok {
			rl.companions[d] = append(rl.companions[d], t)
		} else if d, ok := tagSubject(t); ok {
			rl.indexed[d] = true
		}
	}
	return rl
}

// signedOnly drops, under SyncOptions.SignedOnly, the tags and included
// digests whose documents are not signed, with those documents; children
// are not fetched yet. It returns the tags kept.
func (rl *related) signedOnly(ctx context.Context, tagged []taggedDoc, included []digest.Digest) ([]taggedDoc, error) {
	run := rl.fr.run
	if !run.signedOnly {
		return tagged, nil
	}
	roots := map[digest.Digest]bool{}
	for _, t := range tagged {
		roots[t.digest] = true
	}
	for _, d := range included {
		roots[d] = true
	}
	ds := slices.Sorted(maps.Keys(roots))
	signed := make([]bool, len(ds))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(run.r.DownloadConcurrency)
	for i, d := range ds {
		g.Go(func() (err error) {
			signed[i], err = rl.signed(gctx, d)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	unsigned := map[digest.Digest]bool{}
	rl.fr.mu.Lock()
	for i, d := range ds {
		if !signed[i] {
			unsigned[d] = true
			delete(rl.fr.docs, d)
		}
	}
	rl.fr.mu.Unlock()
	kept := tagged[:0:0]
	for _, t := range tagged {
		if unsigned[t.digest] {
			rl.unsigned++
			run.log.Debug("skipping unsigned image", "tag", t.name, "digest", t.digest)
		} else {
			kept = append(kept, t)
		}
	}
	for _, d := range included {
		if unsigned[d] {
			rl.unsigned++
			run.log.Debug("skipping unsigned image", "digest", d)
		}
	}
	if rl.unsigned > 0 {
		run.log.Info("skipped unsigned images", "remote", run.r, "skipped", rl.unsigned)
	}
	return kept, nil
}

// signed reports whether the document with digest d has a cosign
// signature tag or a signature referrer.
func (rl *related) signed(ctx context.Context, d digest.Digest) (bool, error) {
	for _, t := range rl.companions[d] {
		if strings.HasSuffix(t, cosignSignatureSuffix) {
			return true, nil
		}
	}
	refs, err := rl.referrers(ctx, d)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(refs, func(e *docEntry) bool { return isSignature(e.doc) }), nil
}

// follow adds, until there are no more, the companion tags and referrers
// of every document known, and the children of those that are lists. It
// returns tagged with the companion tags added, sorted by tag.
func (rl *related) follow(ctx context.Context, tagged []taggedDoc) ([]taggedDoc, error) {
	fr := rl.fr
	if !fr.run.r.SyncReferrers() {
		return tagged, nil
	}
	seen := map[digest.Digest]bool{}
	before := fr.count()
	for {
		var pending []digest.Digest
		fr.mu.Lock()
		for d := range fr.docs {
			if !seen[d] {
				seen[d] = true
				pending = append(pending, d)
			}
		}
		fr.mu.Unlock()
		if len(pending) == 0 {
			break
		}
		slices.Sort(pending)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(fr.run.r.DownloadConcurrency)
		for _, d := range pending {
			for _, t := range rl.companions[d] {
				g.Go(func() error { return rl.companion(gctx, t) })
			}
			g.Go(func() error { return rl.addReferrers(gctx, d) })
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		if err := fr.children(ctx); err != nil {
			return nil, err
		}
	}
	rl.followed = fr.count() - before
	out := slices.Concat(tagged, rl.tags)
	slices.SortFunc(out, func(a, b taggedDoc) int { return cmp.Compare(a.name, b.name) })
	return out, nil
}

// companion resolves a companion tag with a HEAD request and takes its
// document from the repository store when stored, else from the
// upstream.
func (rl *related) companion(ctx context.Context, tag string) error {
	run, fr := rl.fr.run, rl.fr
	d, err := run.up.head(ctx, tag)
	if err != nil && ctx.Err() != nil {
		return &SyncError{Op: "resolve tag", Ref: tag, Err: err}
	}
	var e *docEntry
	if err == nil {
		if e, err = run.stored(ctx, d); err != nil {
			return err
		}
		if e != nil {
			e = fr.add(e)
		} else if e, err = fr.get(ctx, d.String(), d); err != nil {
			run.log.Debug("GET by digest failed, fetching by tag", "tag", tag, "err", err)
		}
	}
	if e == nil {
		// Some registries answer HEAD badly: GET by tag, as fetch does.
		if e, err = fr.get(ctx, tag, ""); err != nil {
			return err
		}
	}
	rl.mu.Lock()
	rl.tags = append(rl.tags, taggedDoc{name: tag, digest: e.digest()})
	rl.mu.Unlock()
	return nil
}

// addReferrers adds the referrers of the document with digest d.
func (rl *related) addReferrers(ctx context.Context, d digest.Digest) error {
	refs, err := rl.referrers(ctx, d)
	for _, e := range refs {
		rl.fr.add(e)
	}
	return err
}

// load returns the referrers listed for subject d that are manifests or
// lists whose subject is d, from the repository store when stored, else
// from the upstream.
func (rl *related) load(ctx context.Context, d digest.Digest, listed []ocispec.Descriptor) ([]*docEntry, error) {
	run := rl.fr.run
	var out []*docEntry
	for _, desc := range listed {
		if !content.IsManifest(desc.MediaType) && !content.IsManifestList(desc.MediaType) || desc.Digest.Validate() != nil {
			run.log.Debug("skipping referrer", "subject", d, "digest", desc.Digest, "media_type", desc.MediaType)
			continue
		}
		rl.fr.mu.Lock()
		e := rl.fr.docs[desc.Digest]
		rl.fr.mu.Unlock()
		if e == nil {
			var err error
			if e, err = run.stored(ctx, desc.Digest); err != nil {
				return nil, err
			}
		}
		var fetched content.Document
		if e == nil {
			rl.fr.gets.Add(1)
			var err error
			if fetched, err = run.up.manifest(ctx, desc.Digest.String()); err != nil {
				return nil, &SyncError{Op: "fetch manifest", Ref: desc.Digest.String(), Err: err}
			}
			e = &docEntry{doc: slim(fetched)}
		}
		if s := subject(e.doc); s != d || e.digest() != desc.Digest {
			// Not what the upstream's list said: a referrers index may
			// be stale. The repository's referrers are its subjects'.
			run.log.Debug("skipping referrer of another subject", "subject", d, "digest", desc.Digest, "its_subject", s)
			continue
		}
		if fetched != nil {
			// Stored as it arrives, as the fetch stage's documents are;
			// recorded among them only if followed (addReferrers).
			if err := rl.fr.store.put(ctx, fetched, e); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// subject is the digest of a document's subject, "" when it has none.
func subject(doc content.Document) digest.Digest {
	var s *ocispec.Descriptor
	switch d := doc.(type) {
	case *content.Manifest:
		s = d.Subject
	case *content.ManifestList:
		s = d.Subject
	}
	if s == nil {
		return ""
	}
	return s.Digest
}

// referrers returns the referrers of digest d, once per sync: listed
// through the upstream's referrers API when it has one, else from the
// referrers tag schema for the subjects whose referrers tag the tag list
// holds (so an upstream without the API costs no request for the
// others); then loaded (see load).
func (rl *related) referrers(ctx context.Context, d digest.Digest) ([]*docEntry, error) {
	rl.mu.Lock()
	refs, done := rl.listed[d]
	rl.mu.Unlock()
	if done {
		return refs, nil
	}
	api, err := rl.hasAPI(ctx)
	if err != nil {
		return nil, err
	}
	if api || rl.indexed[d] {
		listed, err := rl.fr.run.up.referrers(ctx, d)
		if err != nil {
			return nil, &SyncError{Op: "list referrers", Ref: d.String(), Err: err}
		}
		if refs, err = rl.load(ctx, d, listed); err != nil {
			return nil, err
		}
	}
	rl.mu.Lock()
	rl.listed[d] = refs
	rl.mu.Unlock()
	return refs, nil
}

// hasAPI asks the upstream once whether it serves the referrers API.
func (rl *related) hasAPI(ctx context.Context) (bool, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.api != nil {
		return *rl.api, nil
	}
	api, err := rl.fr.run.up.referrersAPI(ctx)
	if err != nil {
		return false, &SyncError{Op: "list referrers", Ref: rl.fr.run.r.Upstream(), Err: err}
	}
	rl.api = &api
	return api, nil
}

// count is how many documents the fetcher holds.
func (fr *fetcher) count() int {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return len(fr.docs)
}

// referrersAPI reports whether the upstream serves the referrers API,
// asking, as oras-go does, for the referrers of a digest nothing has: an
// OCI index means yes; 404 (CNCF distribution 2.8), 400, 405, 406 or 501
// mean no, and the referrers tag schema is read instead. Other answers
// fail the sync rather than risk a mirror sync removing referrers it
// could not list.
func (u *upstream) referrersAPI(ctx context.Context) (bool, error) {
	ref := u.repo.Reference
	ref.Reference = zeroDigest
	ctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull)
	var api bool
	err := u.attempt(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/v2/"+ref.Repository+"/referrers/"+zeroDigest, nil)
		if err != nil {
			return err
		}
		resp, err := u.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			api = mt == ocispec.MediaTypeImageIndex
		case http.StatusNotFound, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotAcceptable, http.StatusNotImplemented:
			api = false
		default:
			return statusError(resp)
		}
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return err
	})
	if err != nil {
		return false, err
	}
	if err := u.repo.SetReferrersCapability(api); err != nil {
		return false, fmt.Errorf("referrers API: %w", err)
	}
	return api, nil
}

// referrers lists the referrers of digest d with oras-go, through the
// referrers API or the referrers tag schema as SetReferrersCapability
// said. More than maxReferrersPerDocument is refused: no image has that
// many signatures and attestations, and the list is held in memory.
func (u *upstream) referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := u.attempt(ctx, func() error {
		out = out[:0]
		return u.repo.Referrers(ctx, ocispec.Descriptor{Digest: d}, "", func(page []ocispec.Descriptor) error {
			out = append(out, page...)
			if len(out) > maxReferrersPerDocument {
				return errTooManyReferrers
			}
			return nil
		})
	})
	return out, err
}

var errTooManyReferrers = fmt.Errorf("more than %d referrers", maxReferrersPerDocument)
