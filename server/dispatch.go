package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mooring-dev/mooring/distribution/registryapi"
	"github.com/mooring-dev/mooring/task"
)

// handlerFunc is what every route runs: it parses, calls the SDK once and
// encodes, returning an error for the dispatcher to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// maxBodyBytes caps what is read of any request body.
const maxBodyBytes = 1 << 20

// restHandler wraps a REST handler: authentication, the body cap, and
// error rendering in Pulp's shapes.
func (s *Server) restHandler(name string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.ContentLength != 0 {
			// A JSON body of at most 1 MiB: a trickle is cut off.
			defer registryapi.GuardBody(w, r, registryapi.DefaultMinBodyRate, s.bodyWindow())()
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		setRoute(r, name)
		var err error
		if !publicRoutes[name] {
			err = s.authenticate(r)
			if user, _, _ := r.BasicAuth(); err == nil {
				var admin bool
				if admin, err = s.users.IsAdmin(r.Context(), user); err == nil {
					r = r.WithContext(task.WithUser(context.WithValue(r.Context(), userKey{}, requester{user, admin}), user))
				}
			}
			if err == nil && !userRoutes[name] {
				err = s.hideFromUser(w, r, name)
			}
		}
		if err == nil {
			err = checkQuery(r.URL.Query())
		}
		if err == nil {
			err = h(w, r)
		}
		if errors.Is(err, errShown) {
			err = nil
		}
		if err != nil {
			s.renderRESTError(w, r, name, err)
		}
		if err != nil && s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.DebugContext(r.Context(), "api request failed", "route", name, "method", r.Method, "path", r.URL.Path, "duration", time.Since(start), "err", err)
		}
	})
}

func (s *Server) renderRESTError(w http.ResponseWriter, r *http.Request, route string, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errTooLarge
	}
	if fe, ok := asFieldError(err); ok {
		writeJSON(w, http.StatusBadRequest, fe)
		return
	}
	status, detail := restStatus(err)
	registryapi.SetRetryAfter(w, err)
	switch status {
	case http.StatusInternalServerError:
		s.log.ErrorContext(r.Context(), "api request failed", "route", route, "method", r.Method, "path", r.URL.Path, "err", err)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="Mooring"`)
	}
	writeJSON(w, status, map[string]string{"detail": detail})
}

// writeJSON encodes v as the response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"detail":"Internal server error."}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
