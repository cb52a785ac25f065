package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/server"
	"github.com/mooring-dev/mooring/server/client"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/task"
)

// serve runs the REST API over db with a task runner, and returns a
// client of it as admin.
func serve(t *testing.T, db *bun.DB) *client.Client {
	t.Helper()
	ctx := context.Background()
	blobs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mooring.New(ctx, db, blobs, mooring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Users.SetPassword(ctx, mooring.AdminUser, "pw"); err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Mooring: m, LayoutPaths: []string{os.TempDir()}})
	api := httptest.NewServer(srv.API())
	t.Cleanup(api.Close)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.NewRunner(task.Options{PollInterval: 20 * time.Millisecond}).Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return client.New(api.URL, client.WithBasicAuth(mooring.AdminUser, "pw"))
}

func TestClient(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		c := serve(t, db)
		repo, err := c.CreateRepository(ctx, client.RepositoryRequest{Name: "foo"})
		if err != nil || repo.Name != "foo" || repo.Href == "" {
			t.Fatalf("CreateRepository = %+v, %v", repo, err)
		}
		if got, err := c.RepositoryByName(ctx, "foo"); err != nil || got.Href != repo.Href {
			t.Errorf("RepositoryByName = %+v, %v", got, err)
		}
		_, err = c.CreateRepository(ctx, client.RepositoryRequest{Name: "foo"})
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 400 || len(ae.Fields["name"]) != 1 || !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("a second foo: %#v", err)
		}
		if _, err := c.RepositoryByName(ctx, "nope"); !client.IsNotFound(err) {
			t.Errorf("RepositoryByName(nope) = %v", err)
		}
		if _, err := client.New(c.BaseURL(), client.WithBasicAuth("admin", "wrong")).Repositories(ctx); !errors.Is(err, errdef.ErrUnauthenticated) {
			t.Errorf("wrong password: %v", err)
		}
		if st, err := client.New(c.BaseURL()).Status(ctx); err != nil || !st.DatabaseConnection.Connected {
			t.Errorf("Status without credentials = %+v, %v", st, err)
		}

		// A task, waited for: an export of the empty version 0.
		out := filepath.Join(t.TempDir(), "layout")
		ref, err := c.Export(ctx, repo.Href, client.ExportRequest{Path: out})
		if err != nil {
			t.Fatal(err)
		}
		var seen int
		tk, err := c.WaitTask(ctx, ref.Task, 20*time.Millisecond, func(*client.Task) { seen++ })
		if err != nil || tk.State != client.TaskCompleted || tk.Err() != nil || seen == 0 || len(tk.CreatedResources) != 1 {
			t.Fatalf("WaitTask = %+v (error %v), %v (seen %d)", tk, tk.Err(), err, seen)
		}
		// Again to the same place: the task fails, and says why.
		ref, _ = c.Export(ctx, repo.Href, client.ExportRequest{Path: out})
		tk, _ = c.WaitTask(ctx, ref.Task, 20*time.Millisecond, nil)
		var te *client.TaskError
		if err := tk.Err(); !errors.As(err, &te) || tk.State != client.TaskFailed || tk.Error == nil {
			t.Errorf("export onto a layout: %+v, %v", tk, err)
		}
		if ref, err := c.DeleteRepository(ctx, repo.Href); err != nil {
			t.Errorf("DeleteRepository: %v", err)
		} else if ref != nil {
			c.WaitTask(ctx, ref.Task, 20*time.Millisecond, nil)
		}
		if _, err := c.Repository(ctx, repo.Href); !client.IsNotFound(err) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestNetrc(t *testing.T) {
	p := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(p, []byte("# comment\nmachine other login o password op\nmachine localhost\n  login admin\n  password s3cret\ndefault login anon password anonpw\n"), 0o600)
	for _, c := range []struct{ host, login, password string }{
		{"localhost", "admin", "s3cret"}, {"other", "o", "op"}, {"elsewhere", "anon", "anonpw"},
	} {
		if l, pw, ok := client.NetrcCredentials(p, c.host); !ok || l != c.login || pw != c.password {
			t.Errorf("%s: %q %q %v", c.host, l, pw, ok)
		}
	}
	if _, _, ok := client.NetrcCredentials(filepath.Join(t.TempDir(), "none"), "localhost"); ok {
		t.Error("credentials from a missing file")
	}
}
