#!/usr/bin/env bash
# Build upstream Kubernetes control-plane binaries (and etcd) from the official Go modules,
# without Docker and without a git checkout, and cache them by version.
#
#   e2e/install-kube.sh                          # everything
#   e2e/install-kube.sh kube-apiserver etcd      # only these components
#
# Components (built in this order, one `go build` each, so earlier ones are usable early):
#   kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kube-proxy
#
# Environment:
#   CNREDIS_CACHE   cache root (default ~/.cache/cnredis); binaries land in
#                   $CNREDIS_CACHE/kube-v<K>/bin and $CNREDIS_CACHE/etcd-v<E>/bin
#   KUBE_VERSION    default 1.35.4 (pinned, so a new upstream patch never changes a build silently;
#                   set it to "latest" for the newest 1.35.x the module proxy lists)
#   ETCD_VERSION    default 3.6.16 (pinned likewise; "latest" for the newest 3.6.x)
#   BUILD_PARALLEL  value for `go build -p` (default: number of CPUs)
#
# Progress goes to stderr; stdout gets only the bin directories (one per line) at the end.
set -euo pipefail

log() { printf '[install-kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ALL_COMPONENTS=(kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kube-proxy)

if [[ $# -gt 0 ]]; then
  for c in "$@"; do
    ok=0
    for a in "${ALL_COMPONENTS[@]}"; do [[ $c == "$a" ]] && ok=1; done
    [[ $ok == 1 ]] || die "unknown component '$c' (known: ${ALL_COMPONENTS[*]})"
  done
fi
wanted() {
  [[ $# -gt 0 ]] || return 1
  local c=$1; shift
  [[ ${#REQUESTED[@]} -eq 0 ]] && return 0
  local r; for r in "${REQUESTED[@]}"; do [[ $r == "$c" ]] && return 0; done
  return 1
}
REQUESTED=("$@")

command -v go >/dev/null || die "go not found"
command -v jq >/dev/null || command -v python3 >/dev/null || die "need jq or python3"

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
export GOWORK=off
PAR=${BUILD_PARALLEL:-$(nproc 2>/dev/null || echo 2)}

CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
mkdir -p "$CACHE"

json_field() { # json_field FIELD  (reads JSON on stdin)
  if command -v jq >/dev/null; then jq -r --arg f "$1" '.[$f] // empty'
  else python3 -c 'import json,sys;print(json.load(sys.stdin).get(sys.argv[1]) or "")' "$1"; fi
}

newest() { # newest MODULE REGEX CACHEPREFIX -> newest listed version matching REGEX (without leading v)
  local listed
  if listed=$(go list -m -versions "$1" 2>/dev/null); then
    tr ' ' '\n' <<<"$listed" | grep -E "$2" | sed 's/^v//' | sort -V | tail -1
  else # offline: fall back to the newest version already in the cache
    log "cannot list versions of $1; using the newest cached $3*"
    local d; for d in "$CACHE/$3"*; do [[ -d $d ]] && basename "$d"; done | sed "s/^$3//" |
      grep -E "${2#^v}" | sort -V | tail -1
  fi
}

# go.sum entries are verified against the checksum database unless it can't be reached.
gosum_check() {
  if [[ -z ${GOSUMDB_CHECKED:-} ]]; then
    GOSUMDB_CHECKED=1
    if ! go mod download -json "$1" >/dev/null 2>&1; then
      log "module download with checksum DB failed; retrying with GOSUMDB=off"
      export GOSUMDB=off
      go mod download -json "$1" >/dev/null || die "cannot download $1"
    fi
  fi
}

# timed_build NAME OUT PKG LDFLAGS [extra go build args...]
timed_build() {
  local name=$1 out=$2 pkg=$3 ld=$4; shift 4
  local tmp="$out.tmp.$$" t0 t1 rc=0 tf
  tf=$(mktemp)
  log "building $name ($pkg) -p $PAR ..."
  t0=$(date +%s)
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -o "$tf" -f '%M' go build -p "$PAR" -trimpath "$@" -ldflags="$ld" -o "$tmp" "$pkg" || rc=$?
  else
    go build -p "$PAR" -trimpath "$@" -ldflags="$ld" -o "$tmp" "$pkg" || rc=$?
  fi
  t1=$(date +%s)
  if [[ $rc -ne 0 ]]; then rm -f "$tmp" "$tf"; die "go build of $name failed (rc=$rc) after $((t1 - t0))s"; fi
  mv -f "$tmp" "$out"
  local peak=""
  [[ -s $tf ]] && peak=" peak-rss(go cmd+children max)=$(( $(tail -1 "$tf") / 1024 ))MiB"
  rm -f "$tf"
  log "built $name in $((t1 - t0))s, size $(du -h "$out" | cut -f1)${peak} -> $out"
  echo "$name $((t1 - t0))s $(stat -c %s "$out")B${peak}" >>"$(dirname "$out")/../build-times.txt"
}

BIN_DIRS=()

# ---------------------------------------------------------------- Kubernetes
KUBE_COMPONENTS=(kube-apiserver kubectl kube-controller-manager kube-scheduler kube-proxy)
need_kube=0
for c in "${KUBE_COMPONENTS[@]}"; do wanted "$c" && need_kube=1; done

KV=""; KBIN=""; KSRC=""; KLD=""
setup_kube() {
  KV=${KUBE_VERSION:-1.35.4}
  if [[ $KV == latest ]]; then
    KV=$(newest k8s.io/kubernetes '^v1\.35\.[0-9]+$' kube-v)
    [[ -n $KV ]] || die "no k8s.io/kubernetes v1.35.x listed by the module proxy"
  fi
  KV=${KV#v}
  local minor=${KV#*.}; minor=${minor%%.*}
  local sv="v0.${KV#1.}"          # staging modules: 1.35.4 -> v0.35.4
  KBIN=$CACHE/kube-v$KV/bin
  KSRC=$CACHE/kube-v$KV/src
  mkdir -p "$KBIN" "$KSRC"
  BIN_DIRS+=("$KBIN")

  local missing=0 c
  for c in "${KUBE_COMPONENTS[@]}"; do wanted "$c" && [[ ! -x $KBIN/$c ]] && missing=1; done
  [[ $missing == 1 ]] || return 0

  log "Kubernetes v$KV (staging modules $sv), wrapper module in $KSRC"
  gosum_check "k8s.io/kubernetes@v$KV"
  if [[ ! -f $KSRC/go.mod ]]; then
    local modfile gov godebug m
    modfile=$(go mod download -json "k8s.io/kubernetes@v$KV" | json_field GoMod)
    [[ -f $modfile ]] || die "could not download go.mod of k8s.io/kubernetes@v$KV"
    gov=$(awk '$1=="go"{print $2; exit}' "$modfile")
    godebug=$(awk '$1=="godebug" && $2 ~ /^default=/{print $2; exit}' "$modfile")
    (
      cd "$KSRC"
      rm -f go.mod go.sum
      go mod init local/kbuild >/dev/null 2>&1
      go mod edit -go="$gov"
      [[ -n $godebug ]] && go mod edit -godebug="$godebug"
      # Replace exactly the modules the release redirects into ./staging (read from its own go.mod).
      for m in $(awk '/=> *\.\/staging\//{for(i=1;i<=NF;i++) if($i ~ /^k8s\.io\//){print $i; break}}' "$modfile"); do
        go mod edit -replace="$m=$m@$sv"
      done
      log "wrapper go.mod: go $gov, ${godebug:-no godebug}, $(grep -c '=>' go.mod) replace directives"
      go get "k8s.io/kubernetes@v$KV" >&2
    ) || { rm -f "$KSRC/go.mod"; die "wrapper module setup failed"; }
  fi

  local bdate p
  bdate=$(date -u ${SOURCE_DATE_EPOCH:+--date=@$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
  KLD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    KLD+=" -X $p.gitVersion=v$KV -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    KLD+=" -X $p.gitTreeState=clean -X $p.buildDate=$bdate"
  done
}

build_kube() {
  local c=$1
  wanted "$c" || return 0
  if [[ -x $KBIN/$c ]]; then log "$c v$KV already cached: $KBIN/$c"; return 0; fi
  local pkg="k8s.io/kubernetes/cmd/$c"
  (cd "$KSRC" && timed_build "$c" "$KBIN/$c" "$pkg" "$KLD" -tags=selinux,notest,grpcnotrace)
  "$KBIN/$c" --version >&2 2>/dev/null || "$KBIN/$c" version --client >&2 || true
}

# ---------------------------------------------------------------- etcd
build_etcd() {
  wanted etcd || return 0
  local ev=${ETCD_VERSION:-3.6.16}
  if [[ $ev == latest ]]; then
    ev=$(newest go.etcd.io/etcd/server/v3 '^v3\.6\.[0-9]+$' etcd-v)
    [[ -n $ev ]] || ev=$(newest go.etcd.io/etcd/server/v3 '^v3\.5\.[0-9]+$' etcd-v)
    [[ -n $ev ]] || die "no go.etcd.io/etcd/server/v3 v3.6.x/v3.5.x listed"
  fi
  ev=${ev#v}
  local ebin=$CACHE/etcd-v$ev/bin esrc=$CACHE/etcd-v$ev/src
  mkdir -p "$ebin" "$esrc"
  BIN_DIRS+=("$ebin")
  if [[ -x $ebin/etcd ]]; then log "etcd v$ev already cached: $ebin/etcd"; return 0; fi
  log "etcd v$ev, wrapper module in $esrc"
  gosum_check "go.etcd.io/etcd/server/v3@v$ev"
  if [[ ! -f $esrc/go.mod ]]; then
    (
      cd "$esrc"
      rm -f go.mod go.sum
      local modfile gov
      modfile=$(go mod download -json "go.etcd.io/etcd/server/v3@v$ev" | json_field GoMod)
      gov=$(awk '$1=="go"{print $2; exit}' "$modfile")
      go mod init local/etcdbuild >/dev/null 2>&1
      go mod edit -go="$gov"
      go get "go.etcd.io/etcd/server/v3@v$ev" >&2
    ) || { rm -f "$esrc/go.mod"; die "etcd wrapper module setup failed"; }
  fi
  (cd "$esrc" && timed_build etcd "$ebin/etcd" go.etcd.io/etcd/server/v3 "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ev")
  "$ebin/etcd" --version >&2 || true
}

# ---------------------------------------------------------------- main
T_START=$(date +%s)
if [[ $need_kube == 1 ]]; then setup_kube; fi
[[ $need_kube == 1 ]] && build_kube kube-apiserver
build_etcd
if [[ $need_kube == 1 ]]; then
  for c in kubectl kube-controller-manager kube-scheduler kube-proxy; do build_kube "$c"; done
fi
log "done in $(( $(date +%s) - T_START ))s"
for d in "${BIN_DIRS[@]}"; do
  log "bin dir: $d ($(ls "$d" | tr '\n' ' '))"
  echo "$d"
done
