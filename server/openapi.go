package server

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.json
var openapiDoc []byte

// getDocs serves the OpenAPI 3 description of the REST API.
func (s *Server) getDocs(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(openapiDoc)
	return nil
}

// OpenAPI returns the OpenAPI 3 document describing the REST API, the one
// served at /pulp/api/v3/docs/api.json.
func OpenAPI() ([]byte, error) { return append([]byte(nil), openapiDoc...), nil }
