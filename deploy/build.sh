#!/usr/bin/env bash
# Builds the static binaries the images hold into deploy/bin: the example
# store (examples/kvstore) and etcd's server, at the version go.mod pins
# (go.etcd.io/etcd/server/v3, from the Go module cache or proxy).
# Compose then builds the images: docker-compose -f deploy/compose.embedded.yml up --build
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p deploy/bin
build() { # output package
  local tmp
  tmp=$(mktemp deploy/bin/.build.XXXXXX)
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp" "$2"
  mv -f "$tmp" "deploy/bin/$1" # a rename: a concurrent build never sees half a binary
}
build kvstore ./examples/kvstore
build etcd go.etcd.io/etcd/server/v3
echo "built deploy/bin/kvstore and deploy/bin/etcd (static)"
