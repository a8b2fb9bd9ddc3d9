#!/usr/bin/env bash
# Build the Versity S3 gateway (versitygw, an S3-compatible server) from its Go module and cache it by
# version. The backup end-to-end tests use it as their object store (see e2e/s3.sh).
#
#   e2e/install-versitygw.sh        # prints the binary's path as its last stdout line
#
# Environment:
#   CNREDIS_CACHE       cache root (default ~/.cache/cnredis); the binary lands in
#                       $CNREDIS_CACHE/versitygw-v<V>/bin/versitygw
#   VERSITYGW_VERSION   default 1.8.0 (pinned, so a new upstream release never changes a build silently)
#   BUILD_PARALLEL      value for `go install -p` (default: number of CPUs)
#
# Uses whatever GOPROXY the environment already has. Progress goes to stderr; stdout gets only the
# binary's path.
set -euo pipefail

log() { printf '[install-versitygw %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go not found"

export GOTOOLCHAIN=local CGO_ENABLED=0
# No -mod=mod here: `go install pkg@version` builds outside any main module and rejects -mod.
export GOFLAGS="-buildvcs=false"
export GOWORK=off
PAR=${BUILD_PARALLEL:-$(nproc 2>/dev/null || echo 2)}

V=${VERSITYGW_VERSION:-1.8.0}
V=${V#v}
MOD=github.com/versity/versitygw
PKG=$MOD/cmd/versitygw

CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
BIN_DIR=$CACHE/versitygw-v$V/bin
BIN=$BIN_DIR/versitygw

if [[ -x $BIN ]]; then
  log "versitygw v$V already cached: $BIN"
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN_DIR"

# Module downloads are verified against the checksum database unless it can't be reached.
if ! go mod download -json "$MOD@v$V" >/dev/null 2>&1; then
  log "module download with checksum DB failed; retrying with GOSUMDB=off"
  export GOSUMDB=off
  go mod download -json "$MOD@v$V" >/dev/null || die "cannot download $MOD@v$V"
fi

TMP_GOBIN=$(mktemp -d "$BIN_DIR/.gobin.XXXXXX")
trap 'rm -rf "$TMP_GOBIN"' EXIT

bdate=$(date -u ${SOURCE_DATE_EPOCH:+--date=@$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
LD="-s -w -X main.Version=v$V -X main.Build=v$V -X main.BuildTime=$bdate"

log "building versitygw v$V ($PKG) -p $PAR ..."
t0=$(date +%s)
rc=0
GOBIN=$TMP_GOBIN go install -p "$PAR" -trimpath -ldflags="$LD" "$PKG@v$V" >&2 || rc=$?
t1=$(date +%s)
[[ $rc -eq 0 ]] || die "go install of versitygw v$V failed (rc=$rc) after $((t1 - t0))s"
[[ -x $TMP_GOBIN/versitygw ]] || die "go install produced no $TMP_GOBIN/versitygw"

# Same directory, so the rename is atomic: a concurrent reader sees either no binary or the whole one.
mv -f "$TMP_GOBIN/versitygw" "$BIN"
log "built versitygw v$V in $((t1 - t0))s, size $(du -h "$BIN" | cut -f1) -> $BIN"
echo "versitygw $((t1 - t0))s $(stat -c %s "$BIN")B" >>"$BIN_DIR/../build-times.txt"
"$BIN" --version >&2 || true
echo "$BIN"
