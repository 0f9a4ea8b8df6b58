#!/usr/bin/env bash
# Regenerates raft.pb.go from raft.proto with gogo/protobuf v1.3.2.
# Installs protoc (Debian's protobuf-compiler) and protoc-gen-gogo when missing.
set -euo pipefail
cd "$(dirname "$0")"
gogo_version=v1.3.2
if ! command -v protoc >/dev/null; then
	apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
fi
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/protoc-gen-gogo" ]; then
	GOFLAGS=-mod=mod go install github.com/gogo/protobuf/protoc-gen-gogo@$gogo_version
fi
gogo_dir=$(go list -m -f '{{.Dir}}' github.com/gogo/protobuf)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PATH="$gobin:$PATH" protoc -I . -I "$gogo_dir" -I "$gogo_dir/protobuf" \
	--gogo_out="paths=source_relative:$out" raft.proto
gofmt "$out/raft.pb.go" >raft.pb.go
