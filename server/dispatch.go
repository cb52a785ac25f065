package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
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
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		err := s.authenticate(r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			s.renderRESTError(w, r, name, err)
		}
		s.log.Debug("api request", "route", name, "method", r.Method, "path", r.URL.Path, "duration", time.Since(start), "err", err)
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
	switch status {
	case http.StatusInternalServerError:
		s.log.Error("api request failed", "route", route, "method", r.Method, "path", r.URL.Path, "err", err)
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
