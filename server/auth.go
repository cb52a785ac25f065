package server

import (
	"net"
	"net/http"
)

// authenticate checks a request's HTTP Basic credentials against the
// users of the opened Mooring.
func (s *Server) authenticate(r *http.Request) error {
	name, pass, ok := r.BasicAuth()
	if !ok {
		return errUnauthenticated
	}
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	return s.users.Authenticate(r.Context(), client, name, pass)
}
