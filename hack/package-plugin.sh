#!/usr/bin/env bash
# Packages the kubectl plugin for krew: dist/kubectl-cnredis_v<version>_linux_amd64.tar.gz (the static
# binary from `make build`) and dist/cnredis.yaml, manifests/krew/cnredis.yaml with its version, URL and
# the archive's sha256 filled in. BASE_URL is where a release uploads the archive.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/x86_64-unknown-linux-gnu/release/kubectl-cnredis
[[ -x $BIN ]] || { echo "no $BIN: run make build first" >&2; exit 1; }
version=v$("$BIN" --version | awk '{print $2}')
BASE_URL=${BASE_URL:-https://github.com/cnredis/cnredis/releases/download/$version}
archive=kubectl-cnredis_${version}_linux_amd64.tar.gz
mkdir -p "$ROOT/dist"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$BIN" "$stage/kubectl-cnredis"
# Reproducible: fixed owner, mode and time.
tar -C "$stage" --owner=0 --group=0 --mode=0755 --mtime=@0 -czf "$ROOT/dist/$archive" kubectl-cnredis
sha=$(sha256sum "$ROOT/dist/$archive" | cut -d' ' -f1)
sed -e "s|^  version: VERSION$|  version: $version|" -e "s|uri: URL$|uri: $BASE_URL/$archive|" \
  -e "s|sha256: SHA256$|sha256: $sha|" -e '/^#/d' "$ROOT/manifests/krew/cnredis.yaml" >"$ROOT/dist/cnredis.yaml"
echo "dist/$archive ($sha)"
echo "dist/cnredis.yaml"
