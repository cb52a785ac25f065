package server

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
)

// route is one named endpoint: path template, methods, handler.
type route struct {
	name    string
	path    string
	methods []string
	h       func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// userRe matches a username in a path.
const userRe = `{username:[^/]+}`

// idRe matches the UUIDs objects are named by.
const idRe = `{id:[0-9a-fA-F-]{36}}`

// apiRoutes are the REST API's endpoints, Pulp's paths (pulpcore and
// pulp_docker 4.0 beta).
var apiRoutes = []route{
	{"docs", "/pulp/api/v3/docs/api.json", []string{"GET", "HEAD"}, (*Server).getDocs},
	{"status", "/pulp/api/v3/status/", []string{"GET", "HEAD"}, (*Server).getStatus},

	{"repositories-list", "/pulp/api/v3/repositories/", []string{"GET", "HEAD"}, (*Server).listRepositories},
	{"repositories-create", "/pulp/api/v3/repositories/", []string{"POST"}, (*Server).createRepository},
	{"repositories-reclaim-space", "/pulp/api/v3/repositories/reclaim_space/", []string{"POST"}, (*Server).reclaimSpace},
	{"repositories-detail", "/pulp/api/v3/repositories/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getRepository},
	{"repositories-update", "/pulp/api/v3/repositories/" + idRe + "/", []string{"PUT", "PATCH"}, (*Server).updateRepository},
	{"repositories-delete", "/pulp/api/v3/repositories/" + idRe + "/", []string{"DELETE"}, (*Server).deleteRepository},
	{"repositories-export", "/pulp/api/v3/repositories/" + idRe + "/export/", []string{"POST"}, (*Server).exportRepository},
	{"repositories-import", "/pulp/api/v3/repositories/" + idRe + "/import/", []string{"POST"}, (*Server).importRepository},
	{"versions-list", "/pulp/api/v3/repositories/" + idRe + "/versions/", []string{"GET", "HEAD"}, (*Server).listVersions},
	{"versions-detail", "/pulp/api/v3/repositories/" + idRe + "/versions/{number:[0-9]{1,9}}/", []string{"GET", "HEAD"}, (*Server).getVersion},
	{"versions-delete", "/pulp/api/v3/repositories/" + idRe + "/versions/{number:[0-9]{1,9}}/", []string{"DELETE"}, (*Server).deleteVersion},
	{"repositories-tag", "/pulp/api/v3/repositories/" + idRe + "/tag/", []string{"POST"}, repositoryAction(repository.ActionTag)},
	{"repositories-untag", "/pulp/api/v3/repositories/" + idRe + "/untag/", []string{"POST"}, repositoryAction(repository.ActionUntag)},
	{"repositories-add", "/pulp/api/v3/repositories/" + idRe + "/add/", []string{"POST"}, repositoryAction(repository.ActionAdd)},
	{"repositories-remove", "/pulp/api/v3/repositories/" + idRe + "/remove/", []string{"POST"}, repositoryAction(repository.ActionRemove)},
	{"repositories-copy-tags", "/pulp/api/v3/repositories/" + idRe + "/copy_tags/", []string{"POST"}, repositoryAction(repository.ActionCopyTags)},
	{"repositories-copy-manifests", "/pulp/api/v3/repositories/" + idRe + "/copy_manifests/", []string{"POST"}, repositoryAction(repository.ActionCopyManifests)},
	{"repositories-modify", "/pulp/api/v3/repositories/" + idRe + "/modify/", []string{"POST"}, repositoryAction(repository.ActionModify)},
	{"orphans-cleanup", "/pulp/api/v3/orphans/cleanup/", []string{"POST"}, (*Server).cleanupOrphans},

	{"remotes-list", "/pulp/api/v3/remotes/docker/docker/", []string{"GET", "HEAD"}, (*Server).listRemotes},
	{"remotes-create", "/pulp/api/v3/remotes/docker/docker/", []string{"POST"}, (*Server).createRemote},
	{"remotes-detail", "/pulp/api/v3/remotes/docker/docker/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getRemote},
	{"remotes-update", "/pulp/api/v3/remotes/docker/docker/" + idRe + "/", []string{"PUT", "PATCH"}, (*Server).updateRemote},
	{"remotes-delete", "/pulp/api/v3/remotes/docker/docker/" + idRe + "/", []string{"DELETE"}, (*Server).deleteRemote},
	{"remotes-sync", "/pulp/api/v3/remotes/docker/docker/" + idRe + "/sync/", []string{"POST"}, (*Server).syncRemote},

	{"pull-through-remotes-list", "/pulp/api/v3/remotes/docker/pull-through/", []string{"GET", "HEAD"}, (*Server).listPullThroughRemotes},
	{"pull-through-remotes-create", "/pulp/api/v3/remotes/docker/pull-through/", []string{"POST"}, (*Server).createPullThroughRemote},
	{"pull-through-remotes-detail", "/pulp/api/v3/remotes/docker/pull-through/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getPullThroughRemote},
	{"pull-through-remotes-update", "/pulp/api/v3/remotes/docker/pull-through/" + idRe + "/", []string{"PUT", "PATCH"}, (*Server).updatePullThroughRemote},
	{"pull-through-remotes-delete", "/pulp/api/v3/remotes/docker/pull-through/" + idRe + "/", []string{"DELETE"}, (*Server).deletePullThroughRemote},

	{"content-list", "/pulp/api/v3/content/docker/{kind:manifests|blobs|manifest-lists|manifest-tags|manifest-list-tags}/", []string{"GET", "HEAD"}, (*Server).listContent},
	{"content-detail", "/pulp/api/v3/content/docker/{kind:manifests|blobs|manifest-lists|manifest-tags|manifest-list-tags}/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getContent},

	{"distributions-list", "/pulp/api/v3/docker-distributions/", []string{"GET", "HEAD"}, (*Server).listDistributions},
	{"distributions-create", "/pulp/api/v3/docker-distributions/", []string{"POST"}, (*Server).createDistribution},
	{"distributions-detail", "/pulp/api/v3/docker-distributions/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getDistribution},
	{"distributions-update", "/pulp/api/v3/docker-distributions/" + idRe + "/", []string{"PUT", "PATCH"}, (*Server).updateDistribution},
	{"distributions-delete", "/pulp/api/v3/docker-distributions/" + idRe + "/", []string{"DELETE"}, (*Server).deleteDistribution},

	{"pull-through-distributions-list", "/pulp/api/v3/docker-pull-through-distributions/", []string{"GET", "HEAD"}, (*Server).listPullThroughDistributions},
	{"pull-through-distributions-create", "/pulp/api/v3/docker-pull-through-distributions/", []string{"POST"}, (*Server).createPullThroughDistribution},
	{"pull-through-distributions-detail", "/pulp/api/v3/docker-pull-through-distributions/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getPullThroughDistribution},
	{"pull-through-distributions-update", "/pulp/api/v3/docker-pull-through-distributions/" + idRe + "/", []string{"PUT", "PATCH"}, (*Server).updatePullThroughDistribution},
	{"pull-through-distributions-delete", "/pulp/api/v3/docker-pull-through-distributions/" + idRe + "/", []string{"DELETE"}, (*Server).deletePullThroughDistribution},

	{"task-schedules-list", "/pulp/api/v3/task-schedules/", []string{"GET", "HEAD"}, (*Server).listSchedules},
	{"task-schedules-create", "/pulp/api/v3/task-schedules/", []string{"POST"}, (*Server).createSchedule},
	{"task-schedules-detail", "/pulp/api/v3/task-schedules/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getSchedule},
	{"task-schedules-update", "/pulp/api/v3/task-schedules/" + idRe + "/", []string{"PUT", "PATCH"}, (*Server).updateSchedule},
	{"task-schedules-delete", "/pulp/api/v3/task-schedules/" + idRe + "/", []string{"DELETE"}, (*Server).deleteSchedule},

	{"distributions-add-role", "/pulp/api/v3/docker-distributions/" + idRe + "/add_role/", []string{"POST"}, (*Server).addObjectRole},
	{"distributions-remove-role", "/pulp/api/v3/docker-distributions/" + idRe + "/remove_role/", []string{"POST"}, (*Server).removeObjectRole},
	{"distributions-list-roles", "/pulp/api/v3/docker-distributions/" + idRe + "/list_roles/", []string{"GET", "HEAD"}, (*Server).listObjectRoles},
	{"repositories-add-role", "/pulp/api/v3/repositories/" + idRe + "/add_role/", []string{"POST"}, (*Server).addObjectRole},
	{"repositories-remove-role", "/pulp/api/v3/repositories/" + idRe + "/remove_role/", []string{"POST"}, (*Server).removeObjectRole},
	{"repositories-list-roles", "/pulp/api/v3/repositories/" + idRe + "/list_roles/", []string{"GET", "HEAD"}, (*Server).listObjectRoles},
	{"users-list", "/pulp/api/v3/users/", []string{"GET", "HEAD"}, (*Server).listUsers},
	{"users-create", "/pulp/api/v3/users/", []string{"POST"}, (*Server).createUser},
	{"users-detail", "/pulp/api/v3/users/" + userRe + "/", []string{"GET", "HEAD"}, (*Server).getUser},
	{"users-update", "/pulp/api/v3/users/" + userRe + "/", []string{"PUT", "PATCH"}, (*Server).updateUser},
	{"users-delete", "/pulp/api/v3/users/" + userRe + "/", []string{"DELETE"}, (*Server).deleteUser},
	{"user-roles-list", "/pulp/api/v3/users/" + userRe + "/roles/", []string{"GET", "HEAD"}, (*Server).listUserRoles},
	{"user-roles-add", "/pulp/api/v3/users/" + userRe + "/roles/", []string{"POST"}, (*Server).addUserRole},
	{"user-roles-remove", "/pulp/api/v3/users/" + userRe + "/roles/remove/", []string{"POST"}, (*Server).removeUserRole},

	{"tasks-list", "/pulp/api/v3/tasks/", []string{"GET", "HEAD"}, (*Server).listTasks},
	{"tasks-detail", "/pulp/api/v3/tasks/" + idRe + "/", []string{"GET", "HEAD"}, (*Server).getTask},
	{"tasks-cancel", "/pulp/api/v3/tasks/" + idRe + "/", []string{"PATCH"}, (*Server).cancelTask},
}

func (s *Server) apiRouter() http.Handler {
	r := mux.NewRouter()
	for _, rt := range apiRoutes {
		r.Handle(rt.path, s.restHandler(rt.name, s.bind(rt.h))).Methods(rt.methods...).Name(rt.name)
	}
	r.NotFoundHandler = s.restHandler("not-found", func(w http.ResponseWriter, req *http.Request) error {
		// Like Django's APPEND_SLASH: a GET without the trailing slash is
		// sent to the path with it, when that is a route.
		if (req.Method == http.MethodGet || req.Method == http.MethodHead) && !strings.HasSuffix(req.URL.Path, "/") {
			alt := req.Clone(req.Context())
			alt.URL.Path += "/"
			var m mux.RouteMatch
			if r.Match(alt, &m) && m.MatchErr == nil {
				u := *req.URL
				u.Path = alt.URL.Path
				http.Redirect(w, req, u.String(), http.StatusMovedPermanently)
				return nil
			}
		}
		return errNotFound
	})
	r.MethodNotAllowedHandler = s.restHandler("method-not-allowed", func(_ http.ResponseWriter, r *http.Request) error {
		return errdef.New(errdef.ErrRegistryUnsupported, `Method "%s" not allowed.`, r.Method)
	})
	return r
}

func (s *Server) bind(h func(*Server, http.ResponseWriter, *http.Request) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error { return h(s, w, r) }
}
