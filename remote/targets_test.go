package remote_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// TestTargets: a remote whose upstream resolves to a denied network is
// refused before any request, with ErrDenied; allowed again, it syncs.
func TestTargets(t *testing.T) {
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	host := regtest.StartInProcess(t)
	ctx := context.Background()
	if _, err := regtest.PushImage(ctx, host, "library/hello", "1.0", regtest.ImageOpts{Layers: 1, Seed: "targets"}); err != nil {
		t.Fatal(err)
	}
	deny, err := remote.ParsePrefixes("127.0.0.0/8, ::1")
	if err != nil {
		t.Fatal(err)
	}
	remote.RestrictTargets(&remote.Targets{Deny: deny})
	t.Cleanup(func() { remote.RestrictTargets(remote.DefaultTargets()) })
	// "localhost" resolves to a loopback address: refused after resolution.
	r := remote.New("local", "http://localhost:"+port(host), "library/hello")
	_, err = f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{})
	if !errors.Is(err, errdef.ErrDenied) {
		t.Fatalf("sync from a denied network: %v, want ErrDenied", err)
	}
	remote.RestrictTargets(remote.DefaultTargets())
	if res := f.sync(t, remote.New("local", "http://"+host, "library/hello"), remote.SyncOptions{}); res.Tags != 1 {
		t.Errorf("allowed again: %d tags", res.Tags)
	}
	hosts, err := remote.ParseTargets("", "localhost, *.internal")
	if err != nil || len(hosts.DenyHosts) != 2 {
		t.Fatalf("ParseTargets: %+v, %v", hosts, err)
	}
	remote.RestrictTargets(hosts)
	if _, err := f.syncer.Sync(ctx, r, f.repoID, remote.SyncOptions{}); !errors.Is(err, errdef.ErrDenied) {
		t.Errorf("sync from a denied host name: %v, want ErrDenied", err)
	}
	remote.RestrictTargets(remote.DefaultTargets())
	if _, err := remote.ParsePrefixes("10.0.0.0/8, nonsense"); err == nil {
		t.Error("ParsePrefixes accepted nonsense")
	}
}

func port(hostport string) string {
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			return hostport[i+1:]
		}
	}
	return ""
}
