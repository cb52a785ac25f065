#!/bin/sh
# Times Mooring's first sync and resync of a 100-tag repository with two
# manifest lists against `skopeo sync --all --src docker --dest docker`
# between two local docker-registry (CNCF distribution) servers, and prints
# the figures and their ratio. Needs the Debian packages docker-registry and
# skopeo. Arguments go to the program: -runs N, -dsn postgres://..., -no-skopeo.
set -eu
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "docker-registry not installed (apt-get install docker-registry)" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "skopeo not installed (apt-get install skopeo)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/syncbench" ./bench/syncbench
"$bin/syncbench" "$@"
