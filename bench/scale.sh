#!/bin/sh
# Scale-out figures: sync time of 10 repositories with 1, 2 and 3
# worker-only processes on one PostgreSQL and one S3 bucket (versitygw),
# and blob GET throughput from S3 streamed through Mooring vs redirected to
# presigned URLs. Needs PostgreSQL (-dsn, default $MOORING_TEST_POSTGRES or
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable), versitygw and
# the Debian package docker-registry. Arguments go to the program
# (bench/scalebench): -runs 3, -procs 1,2,3, -workers 2, -d 10s, -c 8, …
set -eu
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "docker-registry not installed (apt-get install docker-registry)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/mooring" ./examples/server
go build -o "$bin/scalebench" ./bench/scalebench
"$bin/scalebench" -mooring "$bin/mooring" "$@"
