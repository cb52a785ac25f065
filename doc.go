// Package mooring is the root of the Mooring module: a library-first Go SDK
// that mirrors container images from upstream registries into repositories
// with immutable versions and serves them to docker and podman.
//
// The packages, from the bottom up:
//
//   - content: blobs, manifests, manifest lists and tags; parsing and validation.
//   - storage: a content-addressed blob store interface and its drivers.
//   - repository: repositories, immutable versions, content membership (bun).
//   - remote, task, distribution: syncing from upstreams, durable background
//     tasks, and what a base path serves.
//   - server: the REST API and the registry API over HTTP.
//   - examples/server: the binary users run.
//
// Dependencies point down that list only; depcheck_test.go keeps it so.
package mooring
