package registryapi

import (
	"io"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/distribution/push"
)

// putManifest answers PUT /v2/<name>/manifests/<reference> ("Pushing
// manifests") with push.Service.PutManifest.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request) error {
	name, ref := mux.Vars(r)["name"], mux.Vars(r)["reference"]
	if err := h.authorize(r, Access{Name: name, Action: ActionPush}); err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, content.MaxManifestSize+1))
	if err != nil {
		return err
	}
	p, err := h.push.PutManifest(pushContext(r), name, push.Manifest{
		MediaType: r.Header.Get("Content-Type"), Raw: raw, Reference: ref, Tags: r.URL.Query()["tag"]})
	if err != nil {
		return err
	}
	hd := w.Header()
	for _, t := range p.Tags {
		if t != ref {
			hd.Add("OCI-Tag", t)
		}
	}
	hd.Set("Location", location(name, "manifests", p.Digest.String()))
	hd.Set("Docker-Content-Digest", p.Digest.String())
	if p.Subject != nil {
		hd.Set("OCI-Subject", p.Subject.Digest.String())
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteManifest answers DELETE /v2/<name>/manifests/<reference>: by digest
// the manifest and the tags naming it, by tag the tag alone, leave in a new
// version.
func (h *handler) deleteManifest(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	if err := h.authorize(r, Access{Name: name, Action: ActionDelete}); err != nil {
		return err
	}
	if err := h.push.DeleteManifest(r.Context(), name, mux.Vars(r)["reference"]); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
