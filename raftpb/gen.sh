#!/usr/bin/env bash
# Regenerates raft.pb.go from raft.proto with gogo/protobuf v1.3.2.
# Installs protoc (Debian's protobuf-compiler) and protoc-gen-gogo when missing.
#
#   gen.sh          rewrite raft.pb.go (make proto)
#   gen.sh --check  regenerate into a temporary directory and fail if the
#                   committed raft.pb.go differs (make proto-check)
set -euo pipefail
cd "$(dirname "$0")"

check=false
case "${1:-}" in
'') ;;
--check) check=true ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

gogo_version=v1.3.2
if ! command -v protoc >/dev/null; then
	echo "gen.sh: installing protoc (Debian's protobuf-compiler)" >&2
	sudo=
	if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then
		sudo=sudo
	fi
	$sudo apt-get update -qq && $sudo apt-get install -y -qq protobuf-compiler >/dev/null
fi
gobin=$(go env GOBIN)
if [ -z "$gobin" ]; then
	gobin=$(go env GOPATH)/bin
fi
if [ ! -x "$gobin/protoc-gen-gogo" ]; then
	echo "gen.sh: installing protoc-gen-gogo $gogo_version" >&2
	GOFLAGS=-mod=mod go install github.com/gogo/protobuf/protoc-gen-gogo@$gogo_version
fi
# The module's own copy of gogo/protobuf provides gogo.proto; on a fresh
# machine it may not be in the module cache yet.
go mod download github.com/gogo/protobuf
gogo_dir=$(go list -m -f '{{.Dir}}' github.com/gogo/protobuf)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PATH="$gobin:$PATH" protoc -I . -I "$gogo_dir" -I "$gogo_dir/protobuf" \
	--gogo_out="paths=source_relative:$out" raft.proto

if ! $check; then
	gofmt "$out/raft.pb.go" >raft.pb.go
	exit 0
fi
gofmt "$out/raft.pb.go" >"$out/raft.pb.go.fmt"
if ! diff -u raft.pb.go "$out/raft.pb.go.fmt" >"$out/diff"; then
	echo "raftpb/raft.pb.go is stale: it differs from what raft.proto generates ($(protoc --version))." >&2
	echo "Run 'make proto' and commit the result. The difference:" >&2
	head -40 "$out/diff" >&2
	exit 1
fi
echo "raftpb/raft.pb.go is up to date with raft.proto ($(protoc --version))"
