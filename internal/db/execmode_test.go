package db

import (
	"net/url"
	"testing"
)

// TestExecMode: PostgreSQL connections run bun's statements without
// preparing and caching each, unless the DSN says otherwise.
func TestExecMode(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u@h:5432/d?sslmode=disable": "exec",
		"postgresql://u@h/d":                    "exec",
		"postgres://u@h/d?default_query_exec_mode=cache_statement&search_path=s": "cache_statement",
		"postgres://u:p%40ss@h/d?sslmode=disable&search_path=t_1":                "exec",
	} {
		u, err := url.Parse(execMode(dsn))
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		orig, _ := url.Parse(dsn)
		if got := u.Query().Get("default_query_exec_mode"); got != want {
			t.Errorf("%s: default_query_exec_mode %q, want %q", dsn, got, want)
		}
		for k := range orig.Query() {
			if u.Query().Get(k) != orig.Query().Get(k) {
				t.Errorf("%s: %s changed to %q", dsn, k, u.Query().Get(k))
			}
		}
		if u.User.String() != orig.User.String() || u.Host != orig.Host || u.Path != orig.Path {
			t.Errorf("%s became %s", dsn, u)
		}
	}
}
