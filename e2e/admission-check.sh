#!/usr/bin/env bash
# Checks the cnredis CRDs against a real (throwaway) kube-apiserver + etcd: the CRDs must be accepted
# and become Established, the examples must pass server-side validation, defaults and printer columns
# must show up, and the CEL / schema rules must reject what they are meant to reject.
#
#   e2e/install-kube.sh kube-apiserver etcd kubectl    # once (cached)
#   e2e/admission-check.sh
#
# Environment:
#   CNREDIS_CACHE   cache root used by install-kube.sh (default ~/.cache/cnredis)
#   KUBE_BIN_DIR    directory with kube-apiserver and kubectl (default: newest $CNREDIS_CACHE/kube-v1.35.*/bin)
#   ETCD_BIN        etcd binary (default: newest $CNREDIS_CACHE/etcd-v*/bin/etcd)
#   KEEP_TMP=1      keep the temp dir (certs, logs, kubeconfig) for debugging
#   READY_TIMEOUT   seconds to wait for etcd / the API server (default 120)
#   CRD_DIR         CRDs to install (default manifests/crds; point it at a candidate fix to try it)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
READY_TIMEOUT=${READY_TIMEOUT:-120}
CRD_DIR=${CRD_DIR:-$REPO/manifests/crds}

log() { printf '[admission-check %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

newest_dir() { # newest_dir GLOB... -> the path whose version sorts last
  local p; for p in "$@"; do [[ -e $p ]] && echo "$p"; done | sort -V | tail -1
}
KUBE_BIN_DIR=${KUBE_BIN_DIR:-$(newest_dir "$CACHE"/kube-v1.35.*/bin)}
ETCD_BIN=${ETCD_BIN:-$(newest_dir "$CACHE"/etcd-v*/bin/etcd)}
APISERVER=$KUBE_BIN_DIR/kube-apiserver
KUBECTL_BIN=$KUBE_BIN_DIR/kubectl
for b in "$APISERVER" "$KUBECTL_BIN" "$ETCD_BIN"; do
  [[ -n $b && -x $b ]] || die "missing binary '$b'; run: e2e/install-kube.sh kube-apiserver etcd kubectl"
done
command -v openssl >/dev/null || die "openssl not found"
command -v curl >/dev/null || die "curl not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnredis-admission.XXXXXX")
ETCD_PID=""; APISERVER_PID=""
CLEANED=0
cleanup() {
  local rc=$?
  set +e
  [[ $CLEANED == 1 ]] && exit "$rc"
  CLEANED=1
  local pid
  for pid in $APISERVER_PID $ETCD_PID; do   # apiserver first, then etcd
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ free ports
free_ports() { # prints N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
EOF
}
read -r ETCD_CLIENT_PORT ETCD_PEER_PORT API_PORT <<<"$(free_ports 3)"

# ------------------------------------------------------------------ certificates
PKI=$TMP/pki; mkdir -p "$PKI"
(
  cd "$PKI"
  exec 2>"$PKI/openssl.log"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=cnredis-e2e-ca"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >server.ext
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=kube-apiserver"
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >client.ext
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=cnredis-e2e-admin"
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 -extfile client.ext
  openssl genrsa -out sa.key 2048
  openssl rsa -in sa.key -pubout -out sa.pub
) || { cat "$PKI/openssl.log" >&2; die "certificate generation failed"; }

# ------------------------------------------------------------------ wait helper
# wait_for DESC CMD...: polls CMD until it succeeds or READY_TIMEOUT passes; prints its last output on timeout.
wait_for() {
  local desc=$1; shift
  local deadline=$(( $(date +%s) + READY_TIMEOUT )) out=""
  while :; do
    if out=$("$@" 2>&1); then log "$desc: ready"; return 0; fi
    if (( $(date +%s) >= deadline )); then
      log "$desc: not ready after ${READY_TIMEOUT}s; last output:"
      printf '%s\n' "$out" | tail -40 >&2
      return 1
    fi
    sleep 0.5
  done
}
alive() { kill -0 "$1" 2>/dev/null || { log "process $1 ($2) exited"; tail -50 "$3" >&2; return 1; }; }

# ------------------------------------------------------------------ etcd
log "etcd $("$ETCD_BIN" --version | head -1) on 127.0.0.1:$ETCD_CLIENT_PORT"
"$ETCD_BIN" --name=e2e --data-dir="$TMP/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="e2e=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
  --unsafe-no-fsync --auto-compaction-retention=1 --log-level=warn >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
etcd_ok() { alive "$ETCD_PID" etcd "$TMP/etcd.log" && curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"; }
wait_for etcd etcd_ok || die "etcd did not become healthy (log: $TMP/etcd.log)"

# ------------------------------------------------------------------ kube-apiserver
log "$("$APISERVER" --version) on https://127.0.0.1:$API_PORT"
"$APISERVER" \
  --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 \
  --cert-dir="$TMP/apiserver-certs" \
  --tls-cert-file="$PKI/server.crt" --tls-private-key-file="$PKI/server.key" \
  --client-ca-file="$PKI/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=RBAC \
  --profiling=false \
  >"$TMP/apiserver.log" 2>&1 &
APISERVER_PID=$!

KUBECONFIG=$TMP/kubeconfig; export KUBECONFIG
cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: admin
  user:
    client-certificate: $PKI/admin.crt
    client-key: $PKI/admin.key
contexts:
- name: e2e
  context: {cluster: e2e, user: admin, namespace: default}
current-context: e2e
EOF
kubectl() { "$KUBECTL_BIN" "$@"; }

api_ready() {
  alive "$APISERVER_PID" kube-apiserver "$TMP/apiserver.log" &&
    curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "https://127.0.0.1:$API_PORT/readyz?verbose"
}
wait_for kube-apiserver api_ready || { tail -30 "$TMP/apiserver.log" >&2; die "kube-apiserver not ready"; }
# The default namespace is created by a post-start hook shortly after /readyz; wait for it too.
wait_for "namespace default" kubectl get namespace default -o name || die "namespace default missing"
log "kubectl $(kubectl version --client 2>/dev/null | head -1)"

# ------------------------------------------------------------------ checks
PASSED=0; FAILED=0; FAILED_NAMES=()
pass() { PASSED=$((PASSED + 1)); echo "PASS: $1"; }
fail() { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); echo "FAIL: $1"; }
indent() { sed 's/^/    | /'; }

# check_ok NAME CMD...: the command must succeed.
check_ok() {
  local name=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc -eq 0 ]]; then pass "$name"; printf '%s\n' "$out" | indent
  else fail "$name (exit $rc)"; printf '%s\n' "$out" | indent; fi
}
# check_reject NAME TEXT CMD...: the command must fail with TEXT in its output (stdin is passed on).
check_reject() {
  local name=$1 text=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc -ne 0 ]] && grep -qF -- "$text" <<<"$out"; then
    pass "$name (rejected: \"$text\")"
  elif [[ $rc -eq 0 ]]; then
    fail "$name: was ACCEPTED, expected rejection containing \"$text\""
  else
    fail "$name: rejected (exit $rc) but without \"$text\""
  fi
  printf '%s\n' "$out" | indent
}

echo "== CRDs"
CRD_OUT=""; CRD_RC=0
log "CRDs from $CRD_DIR"
CRD_OUT=$(kubectl apply --server-side -f "$CRD_DIR/" 2>&1) || CRD_RC=$?
if [[ $CRD_RC -eq 0 ]]; then pass "CRDs created (server-side apply)"; else fail "CRDs created (server-side apply), exit $CRD_RC; API server message:"; fi
printf '%s\n' "$CRD_OUT" | indent
check_ok "CRDs Established" kubectl wait --for condition=established --timeout=60s -f "$CRD_DIR/"
# kubectl maps kinds through discovery; make sure the new types are served before using them.
if [[ $CRD_RC -eq 0 ]]; then
  wait_for "cnredis API discovery" kubectl get redisclusters,redisbackups,redisscheduledbackups -o name || true
fi

echo "== examples (server-side dry run)"
for f in "$REPO"/manifests/examples/*.yaml; do
  check_ok "dry-run accepted: examples/$(basename "$f")" kubectl apply --server-side --dry-run=server -f "$f"
done

echo "== create examples/cluster-ha.yaml"
check_ok "create RedisCluster sessions" kubectl apply --server-side -f "$REPO/manifests/examples/cluster-ha.yaml"
echo "--- kubectl get rediscluster sessions -o yaml"
kubectl get rediscluster sessions -o yaml 2>&1 || true
echo "--- kubectl get redisclusters"
kubectl get redisclusters 2>&1 || true
echo "--- kubectl get redisclusters -o wide"
kubectl get redisclusters -o wide 2>&1 || true
# Defaults: fields not in the manifest must be filled in by the API server.
stored_spec=$(kubectl get rediscluster sessions -o jsonpath='{.spec}' 2>&1 || true)
if grep -q '"mode":"standalone"' <<<"$stored_spec" && grep -q '"logLevel"' <<<"$stored_spec"; then
  pass "defaults visible on sessions (spec.mode, spec.logLevel, ...)"
else
  fail "defaults visible on sessions: spec is: $stored_spec"
fi

echo "== rejections (real admission)"
rc_manifest() { # rc_manifest NAME SPEC-YAML (indented 2 spaces)
  printf 'apiVersion: redis.cnredis.io/v1\nkind: RedisCluster\nmetadata:\n  name: %s\nspec:\n%s\n' "$1" "$2"
}
check_reject "instances: 0" "instances must be between 1 and 16" \
  kubectl create -f - < <(rc_manifest bad-instances '  instances: 0')
check_reject "parameters.port" "parameter port is managed by cnredis and cannot be set" \
  kubectl create -f - < <(rc_manifest bad-params $'  instances: 1\n  parameters:\n    port: "7000"')
check_reject "mode: sentinel" "mode must be standalone" \
  kubectl create -f - < <(rc_manifest bad-mode $'  instances: 1\n  mode: sentinel')
long_name=$(printf 'a%.0s' $(seq 1 51))
check_reject "name of ${#long_name} characters" "at most 50 characters" \
  kubectl create -f - < <(rc_manifest "$long_name" '  instances: 1')
check_reject "storage.size shrink 1Gi -> 512Mi" "storage.size can grow but not shrink" \
  kubectl patch rediscluster sessions --type=merge -p '{"spec":{"storage":{"size":"512Mi"}}}'
check_ok "create RedisBackup orders-before-migration" kubectl create -f "$REPO/manifests/examples/backup.yaml"
check_reject "RedisBackup spec.cluster.name update" "cannot change" \
  kubectl patch redisbackup orders-before-migration --type=merge -p '{"spec":{"cluster":{"name":"other"}}}'
check_reject "RedisScheduledBackup 5-field schedule" "schedule needs six fields" \
  kubectl create -f - <<'EOF'
apiVersion: redis.cnredis.io/v1
kind: RedisScheduledBackup
metadata:
  name: bad-schedule
spec:
  cluster:
    name: orders
  schedule: "0 2 * * *"
EOF
check_reject "unknown field spec.replicas (--validate=strict)" 'unknown field "spec.replicas"' \
  kubectl apply --validate=strict -f - < <(rc_manifest bad-unknown $'  instances: 1\n  replicas: 3')

echo
if [[ $FAILED -gt 0 ]]; then
  echo "failed checks:"; printf '  - %s\n' "${FAILED_NAMES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
