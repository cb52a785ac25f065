#!/bin/sh
# Compares pull serving: manifest GET requests/s and 64 MiB blob GET
# throughput of Mooring's registry against Debian's docker-registry (CNCF
# distribution), same machine, same content, wrk with 32 connections.
# Needs the Debian packages docker-registry and wrk. Arguments go to the
# program: -d 10s (per wrk run), -c 32, -t 2, -layer-mib 64.
set -eu
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "docker-registry not installed (apt-get install docker-registry)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/mooring" ./examples/server
go build -o "$bin/servebench" ./bench/servebench
"$bin/servebench" -mooring "$bin/mooring" "$@"
