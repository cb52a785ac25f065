package server

import (
	"net"
	"net/http"

	"github.com/mooring-dev/mooring/distribution/registryapi"
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

// basicOnly is the registry's Authenticator when tokens are unavailable:
// anonymous pulls, HTTP Basic for the rest.
func (s *Server) basicOnly(r *http.Request, a registryapi.Access) error {
	if a.Action == registryapi.ActionPull || a.Action == registryapi.ActionCatalog {
		return nil
	}
	return s.authenticate(r)
}
