package server

import (
	"net/http"
)

// authenticate checks a request's HTTP Basic credentials against the
// users of the opened Mooring.
func (s *Server) authenticate(r *http.Request) error {
	name, pass, ok := r.BasicAuth()
	if !ok {
		return errUnauthenticated
	}
	return s.users.Authenticate(r.Context(), name, pass)
}
