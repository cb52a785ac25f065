package registryapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring/content/errdef"
)

// route is one named endpoint: path template, methods, handler.
type route struct {
	name    string
	path    string
	methods []string
	h       func(h *handler, w http.ResponseWriter, r *http.Request) error
}

// nameRe is the repository name grammar of the distribution spec, without
// capturing groups (gorilla/mux forbids them): base paths may contain '/'.
const nameRe = `{name:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*}`

// routes are the registry's endpoints (distribution spec: pull, push,
// content management, referrers).
var routes = []route{
	{"base", "/v2/", []string{"GET", "HEAD"}, (*handler).getBase},
	{"base-no-slash", "/v2", []string{"GET", "HEAD"}, (*handler).getBase},
	{"catalog", "/v2/_catalog", []string{"GET", "HEAD"}, (*handler).getCatalog},
	{"tags", "/v2/" + nameRe + "/tags/list", []string{"GET", "HEAD"}, (*handler).getTags},
	{"manifest", "/v2/" + nameRe + "/manifests/{reference}", []string{"GET", "HEAD"}, (*handler).getManifest},
	{"blob", "/v2/" + nameRe + "/blobs/{digest}", []string{"GET", "HEAD"}, (*handler).getBlob},
	{"referrers", "/v2/" + nameRe + "/referrers/{digest}", []string{"GET", "HEAD"}, (*handler).getReferrers},

	// Push and delete (distribution spec "Push", "Content Management"),
	// for whom the Authenticator lets in.
	{"upload-start", "/v2/" + nameRe + "/blobs/uploads/", []string{"POST"}, (*handler).startUpload},
	{"upload-status", "/v2/" + nameRe + "/blobs/uploads/{uuid}", []string{"GET", "HEAD"}, (*handler).uploadStatus},
	{"upload-patch", "/v2/" + nameRe + "/blobs/uploads/{uuid}", []string{"PATCH"}, (*handler).patchUpload},
	{"upload-finish", "/v2/" + nameRe + "/blobs/uploads/{uuid}", []string{"PUT"}, (*handler).finishUpload},
	{"upload-cancel", "/v2/" + nameRe + "/blobs/uploads/{uuid}", []string{"DELETE"}, (*handler).cancelUpload},
	{"blob-delete", "/v2/" + nameRe + "/blobs/{digest}", []string{"DELETE"}, (*handler).deleteBlob},
	{"manifest-put", "/v2/" + nameRe + "/manifests/{reference}", []string{"PUT"}, (*handler).putManifest},
	{"manifest-delete", "/v2/" + nameRe + "/manifests/{reference}", []string{"DELETE"}, (*handler).deleteManifest},
}

func (h *handler) router() http.Handler {
	// No path cleaning: "a//b" is an invalid name, not a redirect to "a/b".
	r := mux.NewRouter().SkipClean(true)
	for _, rt := range routes {
		f := rt.h
		r.Handle(rt.path, h.serve(rt.name, func(w http.ResponseWriter, req *http.Request) error { return f(h, w, req) })).
			Methods(rt.methods...).Name(rt.name)
	}
	if ta, ok := h.opts.Auth.(*TokenAuth); ok {
		token := h.serve("token", ta.ServeToken)
		r.Handle("/token/", token).Name("token")
		r.Handle("/token", token)
	}
	r.NotFoundHandler = h.serve("not-found", h.unmatched)
	r.MethodNotAllowedHandler = h.serve("method-not-allowed", func(_ http.ResponseWriter, r *http.Request) error {
		return errdef.New(errdef.ErrRegistryUnsupported, "method %s is not supported on %s", r.Method, r.URL.Path)
	})
	return r
}
