package server_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/server"
)

// Serving the REST API and the registry from one database and blob store,
// then creating a repository as `http POST :24817/pulp/api/v3/repositories/
// name=foo` would.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mooring-server-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, err := mooring.Open(ctx, filepath.Join(dir, "mooring.db"), filepath.Join(dir, "blobs"), mooring.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if err := m.Users.SetPassword(ctx, mooring.AdminUser, "admin"); err != nil {
		log.Fatal(err)
	}
	srv := server.New(server.Options{Mooring: m})
	api := httptest.NewServer(srv.API())
	defer api.Close()
	registry := httptest.NewServer(srv.Content())
	defer registry.Close()

	req, _ := http.NewRequest("POST", api.URL+"/pulp/api/v3/repositories/", strings.NewReader(`{"name": "foo"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	resp, err = http.Get(registry.URL + "/v2/foo/tags/list")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, strings.TrimSpace(string(body)))
	// Output:
	// 201 Created
	// 404 Not Found {"errors":[{"code":"NAME_UNKNOWN","detail":null,"message":"repository name not known to registry: foo"}]}
}
