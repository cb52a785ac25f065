package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
)

// REST authorization for users who are not administrators: what their
// roles give them (mooring.Permissions), nothing else. An object a user
// may not see is not found (404), so nobody learns what exists; one it
// sees but may not change is forbidden (403). Lists show what it may see.

// restRule decides a route for a user who is not an administrator; nil
// lets the handler run (lists filter themselves, see visible).
type restRule func(s *Server, r *http.Request, user string) error

// repoRule requires need on the repository in the path.
func repoRule(need string) restRule {
	return func(s *Server, r *http.Request, user string) error {
		return s.requireRepo(r.Context(), user, mux.Vars(r)["id"], need)
	}
}

// distRule requires need on the distribution in the path.
func distRule(need string) restRule {
	return func(s *Server, r *http.Request, user string) error {
		d, err := s.dists.Get(r.Context(), mux.Vars(r)["id"])
		if err != nil {
			return err
		}
		p := s.m.Permissions()
		if ok, err := p.Distribution(r.Context(), user, d, mooring.PermRead); err != nil || !ok {
			return notFoundOr(err)
		}
		if ok, err := p.Distribution(r.Context(), user, d, need); err != nil || !ok {
			return forbiddenOr(err)
		}
		return nil
	}
}

// creatorRule requires a global creator; others do not see remotes.
func creatorRule(s *Server, r *http.Request, user string) error {
	ok, err := s.m.Permissions().Creator(r.Context(), user)
	if err != nil || ok {
		return err
	}
	switch {
	case mux.Vars(r)["id"] != "":
		return notFoundOr(nil)
	case r.Method == http.MethodPost:
		return errForbidden
	}
	return errEmptyList
}

// taskRule lets users see and cancel the tasks they enqueued.
func taskRule(s *Server, r *http.Request, user string) error {
	t, err := s.tasks.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if t.CreatedBy != user {
		return notFoundOr(nil)
	}
	return nil
}

func allow(*Server, *http.Request, string) error { return nil }

var restRules = map[string]restRule{
	"repositories-list": allow, "distributions-list": allow, "tasks-list": allow, "content-list": contentRule,
	"remotes-sync": allow, "distributions-create": allow, // their handlers check the objects in the body
	"repositories-create": creatorRule,
	"remotes-list":        creatorRule, "remotes-create": creatorRule, "remotes-detail": creatorRule,
	"remotes-update": creatorRule, "remotes-delete": creatorRule,

	"repositories-detail": repoRule(mooring.PermRead), "versions-list": repoRule(mooring.PermRead),
	"versions-detail": repoRule(mooring.PermRead), "repositories-list-roles": repoRule(mooring.PermRead),
	"repositories-update": repoRule(mooring.PermOwn), "repositories-delete": repoRule(mooring.PermOwn),
	"versions-delete": repoRule(mooring.PermWrite), "repositories-tag": repoRule(mooring.PermWrite),
	"repositories-untag": repoRule(mooring.PermWrite), "repositories-add": repoRule(mooring.PermWrite),
	"repositories-remove": repoRule(mooring.PermWrite), "repositories-copy-tags": repoRule(mooring.PermWrite),
	"repositories-copy-manifests": repoRule(mooring.PermWrite), "repositories-modify": repoRule(mooring.PermWrite),

	"distributions-detail": distRule(mooring.PermRead), "distributions-list-roles": distRule(mooring.PermRead),
	"distributions-update": distRule(mooring.PermOwn), "distributions-delete": distRule(mooring.PermOwn),

	"tasks-detail": taskRule, "tasks-cancel": taskRule,
}

// errEmptyList is a rule's answer for a list the user sees nothing of.
var errEmptyList = errors.New("nothing to list")

// contentRule lets a user list the content of a version of a repository
// it may see; any other content listing is empty to it.
func contentRule(s *Server, r *http.Request, user string) error {
	href := r.URL.Query().Get("repository_version")
	if href == "" {
		for _, k := range []string{"repository_version_added", "repository_version_removed"} {
			if href == "" {
				href = r.URL.Query().Get(k)
			}
		}
	}
	key, ok := parseVersionHref(href)
	if !ok {
		return errEmptyList
	}
	id, _ := splitVersionKey(key)
	if err := s.requireRepo(r.Context(), user, id, mooring.PermRead); err != nil {
		return errEmptyList
	}
	return nil
}

var errForbidden = errdef.New(errdef.ErrDenied, "You do not have permission to perform this action.")

func notFoundOr(err error) error {
	if err != nil {
		return err
	}
	return errdef.New(errdef.ErrNotFound, "not found")
}

func forbiddenOr(err error) error {
	if err != nil {
		return err
	}
	return errForbidden
}

// requireRepo answers 404 when user may not see repository repoID and 403
// when it may see it but not do need.
func (s *Server) requireRepo(ctx context.Context, user, repoID, need string) error {
	if user == "" {
		return nil // the dispatcher let an administrator or a public route through
	}
	p := s.m.Permissions()
	if ok, err := p.Repository(ctx, user, repoID, mooring.PermRead); err != nil || !ok {
		return notFoundOr(err)
	}
	if ok, err := p.Repository(ctx, user, repoID, need); err != nil || !ok {
		return forbiddenOr(err)
	}
	return nil
}

// scopedUser is the user whose permissions a handler must apply: "" for
// an administrator, who may do everything.
func (s *Server) scopedUser(r *http.Request) string {
	if requestAdmin(r.Context()) {
		return ""
	}
	return requestUser(r.Context())
}

// visible returns the repositories and distributions the request's user
// may see, nil for all.
func (s *Server) visible(r *http.Request) (repos, dists []string, err error) {
	user := s.scopedUser(r)
	if user == "" {
		return nil, nil, nil
	}
	return s.m.Permissions().Visible(r.Context(), user)
}
