// Command server runs Mooring on one machine: the REST API (Pulp's
// /pulp/api/v3/) on localhost:24817, the registry that docker and podman
// pull from on localhost:24816, SQLite and filesystem storage under
// -data-dir, and in-process task workers.
//
// Every flag may also be set through an environment variable
// MOORING_<NAME>, such as MOORING_API_ADDR. An empty address turns that
// service off and -workers 0 turns the workers off, so the pieces can run
// as separate processes sharing a PostgreSQL database and storage.
//
// To scale out, run several processes with the same -database (a
// postgres:// DSN) and the same -storage, an S3 bucket given as
// s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION, with credentials from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Any process serves the API
// and the registry, and the workers of all processes share one task queue.
// -storage-redirect sends registry blob GETs to presigned S3 URLs instead
// of streaming the bytes through the server.
//
// The REST API's admin user gets its password from MOORING_ADMIN_PASSWORD,
// set or reset at every start; without it, the first start generates one
// and prints it once.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/internal/secrets"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/server"
	"github.com/mooring-dev/mooring/storage/s3"
	"github.com/mooring-dev/mooring/task"
)

type config struct {
	apiAddr     string
	contentAddr string
	origin      string
	dataDir     string
	database    string
	storage     string     // a directory, unless s3 is set
	s3          *s3.Config // from an s3:// -storage
	redirect    bool
	workers     int
	heartbeat   time.Duration
	deadAfter   time.Duration
	uploadAfter time.Duration
	maxBlob     int64
	quota       int64
	tokenKey    string
	secretFile  string
	targets     remote.Targets
	logLevel    string
	resetAdmin  bool
	metrics     bool
	layoutPaths []string
	// cleanupEvery, when positive, enqueues an orphan cleanup that often,
	// keeping what was stored within cleanupProtect.
	cleanupEvery   time.Duration
	cleanupProtect time.Duration
	// cacheMaxSize is the budget of pull-through caches without their own.
	cacheMaxSize int64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mooring:", err)
		os.Exit(1)
	}
}

// envDefault returns MOORING_<NAME> if set, else def.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv("MOORING_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func parseFlags() (config, error) {
	var c config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&c.apiAddr, "api-addr", envDefault("api-addr", "localhost:24817"), "REST API address; empty turns it off (env MOORING_API_ADDR)")
	fs.StringVar(&c.contentAddr, "content-addr", envDefault("content-addr", "localhost:24816"), "registry (pull) address; empty turns it off (env MOORING_CONTENT_ADDR)")
	fs.StringVar(&c.origin, "content-origin", envDefault("content-origin", ""), "host[:port] clients pull from, shown in each distribution's registry_path (a load balancer's, when several processes serve the registry); default -content-addr, localhost for an unspecified host (env MOORING_CONTENT_ORIGIN)")
	fs.StringVar(&c.dataDir, "data-dir", envDefault("data-dir", "./mooring-data"), "directory for the default database and storage (env MOORING_DATA_DIR)")
	fs.StringVar(&c.database, "database", envDefault("database", ""), "database DSN: an SQLite path or postgres://…; default <data-dir>/mooring.db (env MOORING_DATABASE)")
	fs.StringVar(&c.storage, "storage", envDefault("storage", ""), "blob storage: a directory (or file://DIR), or s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION with credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; default <data-dir>/blobs (env MOORING_STORAGE)")
	redirect, err := strconv.ParseBool(envDefault("storage-redirect", "false"))
	if err != nil {
		return c, fmt.Errorf("MOORING_STORAGE_REDIRECT: want true or false")
	}
	fs.BoolVar(&c.redirect, "storage-redirect", redirect, "answer registry blob GETs with a redirect to a presigned URL of the storage (s3:// only) instead of streaming them (env MOORING_STORAGE_REDIRECT)")
	workers := envDefault("workers", "2")
	fs.StringVar(&workers, "workers", workers, "task workers in this process; 0 turns them off (env MOORING_WORKERS)")
	heartbeat := envDefault("task-heartbeat", "5s")
	fs.StringVar(&heartbeat, "task-heartbeat", heartbeat, "how often task workers prove they are alive; the same in every process (env MOORING_TASK_HEARTBEAT)")
	allow := envDefault("upstream-allow", "")
	fs.StringVar(&allow, "upstream-allow", allow, "networks (CIDR), addresses, host names and *.suffix patterns (comma-separated) remotes may connect to; empty: all but -upstream-deny (env MOORING_UPSTREAM_ALLOW)")
	deny := envDefault("upstream-deny", "169.254.0.0/16,fe80::/10")
	fs.StringVar(&deny, "upstream-deny", deny, "networks (CIDR), addresses, host names and *.suffix patterns (comma-separated) remotes may not connect to, networks checked after name resolution; default link-local, where cloud metadata services answer; add 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7 to forbid private ranges (env MOORING_UPSTREAM_DENY)")
	fs.StringVar(&c.secretFile, "secret-key-file", envDefault("secret-key-file", ""), "file of base64 32-byte keys, one a line, sealing remote passwords, client keys and proxy URLs in the database (the first seals, all open; rotate by adding a new key first); default <data-dir>/secret.key, made on first start, when the database is the default SQLite file; give every process on a shared database the same file (env MOORING_SECRET_KEY_FILE)")
	fs.StringVar(&c.tokenKey, "token-key-file", envDefault("token-key-file", ""), "PEM file with the ECDSA P-256 key registry tokens are signed with; default: a key generated once and kept in the database, shared by every process (env MOORING_TOKEN_KEY_FILE)")
	quota := envDefault("namespace-quota", "0")
	fs.StringVar(&quota, "namespace-quota", quota, "most bytes the blobs of one namespace (first path segment) may take, pushes past it refused with DENIED (suffixes K, M, G, T); 0 is no quota, the default (env MOORING_NAMESPACE_QUOTA)")
	maxBlob := envDefault("max-blob-size", "0")
	fs.StringVar(&maxBlob, "max-blob-size", maxBlob, "largest blob a push may store, in bytes (suffixes K, M, G, T: powers of 1024); 0 is no limit, the default (env MOORING_MAX_BLOB_SIZE)")
	cacheMax := envDefault("cache-max-size", "0")
	fs.StringVar(&cacheMax, "cache-max-size", cacheMax, "bytes each pull-through distribution without a max_size of its own may keep stored (suffixes K, M, G, T); beyond it, the least recently pulled blobs are given back and fetched again when next pulled; 0 is no limit, the default (env MOORING_CACHE_MAX_SIZE)")
	uploadAfter := envDefault("upload-timeout", "1h")
	fs.StringVar(&uploadAfter, "upload-timeout", uploadAfter, "how long a registry blob upload may go untouched before it is discarded with its bytes (env MOORING_UPLOAD_TIMEOUT)")
	cleanupEvery := envDefault("orphan-cleanup-interval", "0")
	fs.StringVar(&cleanupEvery, "orphan-cleanup-interval", cleanupEvery, "run an orphan cleanup task this often (such as 24h), deleting content no repository version holds and the blobs nothing needs; 0, the default, only when asked through the API (env MOORING_ORPHAN_CLEANUP_INTERVAL)")
	cleanupProtect := envDefault("orphan-protection-time", "24h")
	fs.StringVar(&cleanupProtect, "orphan-protection-time", cleanupProtect, "what scheduled orphan cleanups keep because it was stored more recently (Pulp's orphan_protection_time); 0 keeps nothing (env MOORING_ORPHAN_PROTECTION_TIME)")
	deadAfter := envDefault("task-dead-after", "30s")
	fs.StringVar(&deadAfter, "task-dead-after", deadAfter, "how long without a heartbeat before a worker's running tasks are failed; the same in every process, at least twice -task-heartbeat (env MOORING_TASK_DEAD_AFTER)")
	fs.StringVar(&c.logLevel, "log-level", envDefault("log-level", "info"), "debug, info, warn or error (env MOORING_LOG_LEVEL)")
	metrics, err := strconv.ParseBool(envDefault("metrics", "true"))
	if err != nil {
		return c, fmt.Errorf("MOORING_METRICS: want true or false")
	}
	fs.BoolVar(&c.metrics, "metrics", metrics, "serve Prometheus metrics at /metrics on both ports and count every request; false turns them off (env MOORING_METRICS)")
	layoutPaths := envDefault("allowed-paths", "")
	fs.StringVar(&layoutPaths, "allowed-paths", layoutPaths, "comma-separated absolute directories inside which the REST API may export and import OCI image layouts; none by default (env MOORING_ALLOWED_PATHS)")
	fs.BoolVar(&c.resetAdmin, "reset-admin-password", false, "set the password of the REST API user admin to MOORING_ADMIN_PASSWORD, or to a new generated one that is printed, and exit without serving")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	n, err := strconv.Atoi(workers)
	if err != nil || n < 0 {
		return c, fmt.Errorf("-workers %q: want a whole number", workers)
	}
	c.workers = n
	if c.maxBlob, err = parseSize(maxBlob); err != nil {
		return c, fmt.Errorf("-max-blob-size %q: %w", maxBlob, err)
	}
	if c.quota, err = parseSize(quota); err != nil {
		return c, fmt.Errorf("-namespace-quota %q: %w", quota, err)
	}
	t, err := remote.ParseTargets(allow, deny)
	if err != nil {
		return c, fmt.Errorf("-upstream-allow/-upstream-deny: %w", err)
	}
	c.targets = *t
	if c.cacheMaxSize, err = parseSize(cacheMax); err != nil {
		return c, fmt.Errorf("-cache-max-size %q: %w", cacheMax, err)
	}
	for _, d := range []struct {
		name, s string
		to      *time.Duration
	}{{"task-heartbeat", heartbeat, &c.heartbeat}, {"task-dead-after", deadAfter, &c.deadAfter}, {"upload-timeout", uploadAfter, &c.uploadAfter}} {
		if *d.to, err = time.ParseDuration(d.s); err != nil || *d.to <= 0 {
			return c, fmt.Errorf("-%s %q: want a positive duration such as 5s", d.name, d.s)
		}
	}
	if c.deadAfter < 2*c.heartbeat {
		return c, fmt.Errorf("-task-dead-after %v: want at least twice -task-heartbeat (%v)", c.deadAfter, c.heartbeat)
	}
	for _, d := range []struct {
		name, s string
		to      *time.Duration
	}{{"orphan-cleanup-interval", cleanupEvery, &c.cleanupEvery}, {"orphan-protection-time", cleanupProtect, &c.cleanupProtect}} {
		if *d.to, err = time.ParseDuration(d.s); err != nil || *d.to < 0 {
			return c, fmt.Errorf("-%s %q: want a duration such as 24h, or 0", d.name, d.s)
		}
	}
	if c.database == "" {
		c.database = filepath.Join(c.dataDir, "mooring.db")
		if c.secretFile == "" {
			c.secretFile = filepath.Join(c.dataDir, "secret.key")
		}
	}
	for _, p := range strings.Split(layoutPaths, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			return c, fmt.Errorf("-allowed-paths %q: want absolute directories", p)
		}
		c.layoutPaths = append(c.layoutPaths, filepath.Clean(p))
	}
	if c.origin == "" {
		c.origin = publicOrigin(c.contentAddr)
	}
	if err := mooring.CheckDatabase(c.database); err != nil {
		return c, fmt.Errorf("-database: %w", err)
	}
	if c.storage == "" {
		c.storage = filepath.Join(c.dataDir, "blobs")
	}
	loc, err := mooring.ParseStorage(c.storage)
	if err != nil {
		return c, fmt.Errorf("-storage: %w", err)
	}
	c.s3 = loc.S3
	if c.redirect && c.s3 == nil {
		return c, errors.New("-storage-redirect needs S3 storage (-storage s3://…): the filesystem driver cannot hand out URLs")
	}
	return c, nil
}

func run() error {
	c, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDurations}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	remote.RestrictTargets(&c.targets)
	// The data directory holds the database and keys: its owner's alone.
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("-data-dir: %w", err)
	}
	secretKeys, err := readSecretKeys(c.secretFile)
	if err != nil {
		return err
	}
	if secretKeys == "" {
		log.Warn("remote secrets are stored unsealed: give -secret-key-file (the same file to every process)")
	}
	m, err := mooring.Open(ctx, c.database, c.storage, mooring.Options{SecretKeys: secretKeys, Logger: log, UploadTimeout: c.uploadAfter, MaxBlobSize: c.maxBlob, NamespaceQuota: c.quota, CacheMaxSize: c.cacheMaxSize, WorkerTimeout: c.deadAfter, TokenKeyFile: c.tokenKey})
	if err != nil {
		return err
	}
	defer m.Close()
	if c.resetAdmin {
		return resetAdminPassword(ctx, m)
	}
	if c.s3 != nil {
		log.Info("blob storage", "bucket", c.s3.Bucket, "prefix", c.s3.Prefix, "endpoint", c.s3.Endpoint, "redirect", c.redirect)
	} else {
		log.Info("blob storage", "dir", c.storage)
	}

	srv := server.New(server.Options{Mooring: m, ContentOrigin: c.origin, Logger: log, RedirectBlobs: c.redirect, DisableMetrics: !c.metrics, LayoutPaths: c.layoutPaths})
	if c.contentAddr != "" {
		go m.Push.RunJanitor(ctx)
		// Last-pull times and pull-through cache budgets.
		go m.RunCacheJanitor(ctx, 0)
	}

	// Every address is bound before the admin password is generated, so
	// that a start which fails prints no password nobody can then use.
	type service struct {
		name string
		ln   net.Listener
		h    http.Handler
	}
	var services []service
	for _, svc := range []struct {
		name, addr string
		h          http.Handler
	}{{"api", c.apiAddr, srv.API()}, {"content", c.contentAddr, srv.Content()}} {
		if svc.addr == "" {
			log.Info("service off", "service", svc.name)
			continue
		}
		ln, err := net.Listen("tcp", svc.addr)
		if err != nil {
			for _, s := range services {
				s.ln.Close()
			}
			return fmt.Errorf("%s service: %w", svc.name, err)
		}
		services = append(services, service{svc.name, ln, svc.h})
	}
	generated, err := m.Users.EnsureAdmin(ctx, os.Getenv("MOORING_ADMIN_PASSWORD"))
	if err != nil {
		return fmt.Errorf("admin user: %w", err)
	}
	if generated != "" {
		printPassword(generated, "Generated")
	}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	var servers []*http.Server
	for _, svc := range services {
		ln := svc.ln
		hs := &http.Server{
			Handler:           svc.h,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, hs)
		log.Info("listening", "service", svc.name, "addr", ln.Addr().String())
		wg.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s service: %w", svc.name, err)
			}
		})
	}
	var runnerDone chan error
	if c.workers > 0 {
		runner := srv.NewRunner(task.Options{Workers: c.workers, Heartbeat: c.heartbeat, DeadAfter: c.deadAfter, Logger: log})
		runnerDone = make(chan error, 1)
		go func() { runnerDone <- runner.Run(ctx) }()
		if c.cleanupEvery > 0 {
			protect := c.cleanupProtect
			if protect == 0 {
				protect = mooring.NoProtection
			}
			log.Info("orphan cleanup scheduled", "every", c.cleanupEvery, "protection", c.cleanupProtect)
			go m.RunOrphanCleanups(ctx, c.cleanupEvery, protect)
		}
	} else {
		log.Info("task workers off")
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("service failed; shutting down", "err", err)
		stop()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, hs := range servers {
		hs.Shutdown(shutdownCtx)
	}
	wg.Wait()
	if runnerDone != nil {
		if rerr := <-runnerDone; rerr != nil && err == nil {
			err = rerr
		}
	}
	log.Info("stopped")
	return err
}

// publicOrigin is the host:port clients pull from, for registry_path:
// an unspecified host becomes localhost.
func publicOrigin(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// parseSize reads a byte count such as 512, 64K or 10G (powers of 1024).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if i := strings.IndexAny(s, "KMGTkmgt"); i >= 0 && i == len(s)-1 {
		mult = int64(1) << (10 * (strings.IndexByte("KMGT", strings.ToUpper(s[i:])[0]) + 1))
		s = s[:i]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("want a number of bytes such as 0, 500M or 10G")
	}
	return n * mult, nil
}

// resetAdminPassword sets the admin user's password to
// MOORING_ADMIN_PASSWORD, or to a generated one it prints.
func resetAdminPassword(ctx context.Context, m *mooring.Mooring) error {
	password := os.Getenv("MOORING_ADMIN_PASSWORD")
	how := "New"
	if password == "" {
		password = rand.Text()
		how = "Generated new"
	}
	if err := m.Users.SetPassword(ctx, mooring.AdminUser, password); err != nil {
		return fmt.Errorf("admin user: %w", err)
	}
	if how == "New" {
		fmt.Printf("Set the password of the REST API user %q from MOORING_ADMIN_PASSWORD.\n", mooring.AdminUser)
		return nil
	}
	printPassword(password, how)
	return nil
}

// printPassword shows a generated admin password once, on stdout (never in
// the logs), as the ~/.netrc lines that httpie and the mooring command read.
func printPassword(password, how string) {
	fmt.Printf("%s password for the REST API user %q: %s\n", how, mooring.AdminUser, password)
	fmt.Printf("Put it in ~/.netrc for httpie and the mooring command:\n\n"+
		"machine localhost\nlogin %s\npassword %s\n\n"+
		"It is not shown again; -reset-admin-password sets a new one, and MOORING_ADMIN_PASSWORD chooses it.\n",
		mooring.AdminUser, password)
}

// readableDurations logs durations as text such as "1.5s" rather than as
// nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// readSecretKeys reads the key file; the default one under the data
// directory is made, 0600 in a 0700 directory, on first start.
func readSecretKeys(path string) (string, error) {
	if path == "" {
		return os.Getenv("MOORING_SECRET_KEYS"), nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, kerr := secrets.NewKey()
		if kerr != nil {
			return "", kerr
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("-secret-key-file: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return readSecretKeys(path) // made meanwhile by another process
		}
		if err != nil {
			return "", fmt.Errorf("-secret-key-file: %w", err)
		}
		defer f.Close()
		_, err = f.WriteString("# Mooring secret keys: the first seals, all open.\n" + key + "\n")
		return key, err
	}
	if err != nil {
		return "", fmt.Errorf("-secret-key-file: %w", err)
	}
	return string(raw), nil
}
