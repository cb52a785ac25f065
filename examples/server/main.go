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
// The REST API's admin user gets its password from MOORING_ADMIN_PASSWORD,
// set or reset at every start; without it, the first start generates one
// and prints it once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

	mooringdb "github.com/mooring-dev/mooring/internal/db"
	"github.com/mooring-dev/mooring/server"
	"github.com/mooring-dev/mooring/storage/filesystem"
	"github.com/mooring-dev/mooring/task"
)

type config struct {
	apiAddr     string
	contentAddr string
	dataDir     string
	database    string
	storage     string
	workers     int
	logLevel    string
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
	fs.StringVar(&c.dataDir, "data-dir", envDefault("data-dir", "./mooring-data"), "directory for the default database and storage (env MOORING_DATA_DIR)")
	fs.StringVar(&c.database, "database", envDefault("database", ""), "database DSN: an SQLite path or postgres://…; default <data-dir>/mooring.db (env MOORING_DATABASE)")
	fs.StringVar(&c.storage, "storage", envDefault("storage", ""), "blob storage directory; default <data-dir>/blobs (env MOORING_STORAGE)")
	workers := envDefault("workers", "2")
	fs.StringVar(&workers, "workers", workers, "task workers in this process; 0 turns them off (env MOORING_WORKERS)")
	fs.StringVar(&c.logLevel, "log-level", envDefault("log-level", "info"), "debug, info, warn or error (env MOORING_LOG_LEVEL)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return c, err
	}
	n, err := strconv.Atoi(workers)
	if err != nil || n < 0 {
		return c, fmt.Errorf("-workers %q: want a whole number", workers)
	}
	c.workers = n
	if c.database == "" {
		c.database = filepath.Join(c.dataDir, "mooring.db")
	}
	if c.storage == "" {
		c.storage = filepath.Join(c.dataDir, "blobs")
	}
	c.storage = strings.TrimPrefix(c.storage, "file://")
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
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	db, err := mooringdb.Open(ctx, c.database)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := server.Migrate(ctx, db); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	generated, err := server.EnsureAdmin(ctx, db, os.Getenv("MOORING_ADMIN_PASSWORD"))
	if err != nil {
		return fmt.Errorf("admin user: %w", err)
	}
	if generated != "" {
		// Printed once, on stdout, never logged.
		fmt.Printf("Generated password for the REST API user %q: %s\n", server.AdminUser, generated)
	}
	blobs, err := filesystem.New(c.storage)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}

	srv := server.New(server.Options{DB: db, Blobs: blobs, ContentOrigin: publicOrigin(c.contentAddr), Logger: log})

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	var servers []*http.Server
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
			return fmt.Errorf("%s service: %w", svc.name, err)
		}
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
		runner := task.NewRunner(db, task.Options{Workers: c.workers, Logger: log})
		srv.RegisterTasks(runner)
		runnerDone = make(chan error, 1)
		go func() { runnerDone <- runner.Run(ctx) }()
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
