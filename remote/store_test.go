package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/remote"
)

func migrated(t *testing.T, db *bun.DB) {
	t.Helper()
	if err := remote.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if err := remote.Migrate(context.Background(), db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
}

func TestStore(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		migrated(t, db)
		s := remote.NewStore(db)
		r := remote.New("hub-busybox", "https://registry-1.docker.io", "busybox")
		r.Username, r.Password = "alice", "s3cret"
		r.IncludeTags = []string{"1.*", "latest"}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.ID == "" || r.CreatedAt.IsZero() {
			t.Fatalf("Create did not fill ID and CreatedAt: %+v", r)
		}
		if got := r.Upstream(); got != "library/busybox" {
			t.Errorf("Upstream() = %q, want library/busybox", got)
		}
		got, err := s.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Password != "s3cret" || got.InsecureSkipVerify || got.DownloadConcurrency != 10 || len(got.IncludeTags) != 2 || got.ExcludeTags == nil {
			t.Errorf("Get = %+v", *got)
		}
		if !got.CreatedAt.Equal(r.CreatedAt) {
			t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, r.CreatedAt)
		}
		// Secrets never leave through JSON, fmt or slog.
		js, _ := json.Marshal(got)
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("sync", "remote", got)
		for what, out := range map[string]string{"json": string(js), "fmt": fmt.Sprintf("%v %+v %s", *got, *got, got), "slog": logged.String()} {
			if strings.Contains(out, "s3cret") {
				t.Errorf("%s shows the password: %s", what, out)
			}
		}
		if err := s.Create(ctx, remote.New("hub-busybox", "https://quay.io", "x/y")); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("duplicate name: err = %v, want errdef.ErrConflict", err)
		}
		other := remote.New("quay", "https://quay.io", "coreos/etcd")
		if err := s.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		list, n, err := s.List(ctx, remote.Filter{})
		if err != nil || n != 2 || len(list) != 2 || list[0].Name != "hub-busybox" {
			t.Errorf("List = %v, %d, %v", list, n, err)
		}
		list, n, err = s.List(ctx, remote.Filter{Name: "quay"})
		if err != nil || n != 1 || list[0].ID != other.ID {
			t.Errorf("List(name=quay) = %v, %d, %v", list, n, err)
		}
		byName, err := s.GetByName(ctx, "quay")
		if err != nil || byName.ID != other.ID {
			t.Errorf("GetByName = %v, %v", byName, err)
		}
		got.Name, got.DownloadConcurrency = "hub", 3
		if err := s.Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.Get(ctx, r.ID); again.Name != "hub" || again.DownloadConcurrency != 3 || again.Password != "s3cret" {
			t.Errorf("after Update: %+v", again)
		}
		got.Name = "quay"
		if err := s.Update(ctx, got); !errors.Is(err, errdef.ErrConflict) {
			t.Errorf("Update to a taken name: err = %v, want errdef.ErrConflict", err)
		}
		if err := s.Delete(ctx, other.ID); err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			s.Delete(ctx, other.ID),
			func() error { _, err := s.Get(ctx, other.ID); return err }(),
			func() error { _, err := s.GetByName(ctx, "quay"); return err }(),
			s.Update(ctx, other),
		} {
			if !errors.Is(err, errdef.ErrNotFound) {
				t.Errorf("after Delete: err = %v, want errdef.ErrNotFound", err)
			}
		}
	})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(r *remote.Remote)
	}{
		{"", func(r *remote.Remote) {}},
		{"name", func(r *remote.Remote) { r.Name = " " }},
		{"url", func(r *remote.Remote) { r.URL = "" }},
		{"url", func(r *remote.Remote) { r.URL = "ftp://example.com" }},
		{"url", func(r *remote.Remote) { r.URL = "https://u:p@example.com" }},
		{"url", func(r *remote.Remote) { r.URL = "https://example.com/v2/foo" }},
		{"upstream_name", func(r *remote.Remote) { r.UpstreamName = "" }},
		{"upstream_name", func(r *remote.Remote) { r.UpstreamName = "Upper/Case" }},
		{"include_tags", func(r *remote.Remote) { r.IncludeTags = []string{""} }},
		{"download_concurrency", func(r *remote.Remote) { r.DownloadConcurrency = 0 }},
		{"download_concurrency", func(r *remote.Remote) { r.DownloadConcurrency = 1000 }},
		{"username", func(r *remote.Remote) { r.Password = "x" }},
		{"ssl_ca_certificate", func(r *remote.Remote) { r.SSLCACertificate = "not pem" }},
		{"ssl_client_certificate", func(r *remote.Remote) { r.SSLClientKey = "key" }},
		{"ssl_client_key", func(r *remote.Remote) { r.SSLClientCertificate, r.SSLClientKey = "x", "y" }},
		{"proxy_url", func(r *remote.Remote) { r.ProxyURL = "gopher://proxy" }},
		{"proxy_url", func(r *remote.Remote) { r.ProxyURL = "http://" }},
	} {
		r := remote.New("n", "https://example.com", "a/b")
		tc.edit(r)
		err := r.Validate()
		var fe *errdef.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("valid remote: %v", err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, errdef.ErrInvalid)):
			t.Errorf("%+v: err = %v, want a FieldError on %s", *r, err, tc.field)
		}
	}
}

func TestRemoteJSON(t *testing.T) {
	var r remote.Remote
	if err := json.Unmarshal([]byte(`{"name":"n","url":"https://quay.io","upstream_name":"a/b","password":"pw","ssl_client_key":"k","username":"u"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.InsecureSkipVerify || r.DownloadConcurrency != 10 || r.Password != "pw" || r.SSLClientKey != "k" {
		t.Errorf("decoded %+v: want defaults and the write-only fields", r)
	}
	var off remote.Remote
	if err := json.Unmarshal([]byte(`{"ssl_validation":false,"download_concurrency":2}`), &off); err != nil {
		t.Fatal(err)
	}
	if !off.InsecureSkipVerify || off.SSLValidation() {
		t.Errorf(`"ssl_validation": false decoded to %+v, want certificate checks off`, off)
	}
	if (remote.Remote{}).InsecureSkipVerify {
		t.Error("the zero Remote skips TLS verification")
	}
	out, _ := json.Marshal(r)
	if !strings.Contains(string(out), `"ssl_validation":true`) {
		t.Errorf("encoded %s lacks ssl_validation true", out)
	}
	if strings.Contains(string(out), "pw") || strings.Contains(string(out), `"k"`) {
		t.Errorf("encoded %s shows a secret", out)
	}
}
