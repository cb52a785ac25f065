// Package mooring is the front door of the Mooring SDK, which mirrors
// container images from upstream registries into repositories with
// immutable versions and serves them to docker and podman.
//
// Open opens Mooring on a database (SQLite path or postgres:// DSN) and a
// blob store (directory, file://DIR or s3://…) and returns the services:
// repositories, remotes, distributions, tasks, push, the registry view
// and a registry http.Handler. Sync mirrors a remote into a repository in
// one call.
//
// The packages, from the bottom up:
//
//   - content/errdef: the one error vocabulary every package wraps.
//   - content: blobs, manifests, manifest lists and tags; parsing and validation.
//   - storage: a content-addressed blob store interface and its drivers.
//   - repository, task: repositories, immutable versions, content
//     membership (bun); durable background tasks and their progress.
//   - remote, distribution: syncing from upstreams; what a base path
//     serves, pushes (distribution/push) and the /v2/ handler
//     (distribution/registryapi).
//   - mooring (this package): the front door composing them.
//   - server: the REST API wrapping the front door.
//   - examples/server: the binary users run; examples/embed: a program
//     embedding Mooring.
//
// Dependencies point down that list only; depcheck_test.go keeps it so.
package mooring
