#!/usr/bin/env bash
# The local test cluster of e2e/README.md: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kube-proxy as host processes, the bridge cnredis0, the StorageClass cnredis-local and three process
# kubelets (cnredis-a/b/c), without containers.
#
#   e2e/cluster.sh up        start what is not running yet (idempotent); prints `export KUBECONFIG=...`
#   e2e/cluster.sh down      stop everything, clean the host (netns, veths, iptables, mounts, bridge), remove
#                            $CNREDIS_E2E_DIR except pv/ (PV data survives a down/up, like a node restart;
#                            the API objects do not: etcd is wiped); exits non-zero listing any leftover
#   e2e/cluster.sh down --purge   the same and remove pv/ too
#   e2e/cluster.sh status    each component's process, /readyz, the nodes
#
# Environment:
#   CNREDIS_E2E_DIR     state directory (default /var/tmp/cnredis-e2e)
#   CNREDIS_CACHE       cache root of install-kube.sh / install-deps.sh (default ~/.cache/cnredis)
#   CNREDIS_KUBELET     cnredis-kubelet binary (default target/x86_64-unknown-linux-gnu/release/cnredis-kubelet);
#                       without it the control plane comes up without nodes
#   CNREDIS_KUBELET_ARGS  extra arguments for every kubelet (word-split)
#   READY_TIMEOUT       seconds to wait for each component (default 90)
#   NODES_TIMEOUT       seconds to wait for the three nodes to be Ready (default 120)
#
# Ports: etcd 127.0.0.1:2379/2380, kube-apiserver :6443 (all addresses; advertised as 10.245.0.1),
# kube-controller-manager 127.0.0.1:10257, kube-scheduler 127.0.0.1:10259, kube-proxy healthz
# 127.0.0.1:10256 and metrics 127.0.0.1:10249, kubelets <node-ip>:10250.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E=$REPO/e2e
CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
DIR=${DIR%/}
READY_TIMEOUT=${READY_TIMEOUT:-90}
NODES_TIMEOUT=${NODES_TIMEOUT:-120}
KUBE_VERSION=${KUBE_VERSION:-1.35.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KBIN=$CACHE/kube-v$KUBE_VERSION/bin
ETCD_BIN=$CACHE/etcd-v$ETCD_VERSION/bin/etcd
KUBECTL_BIN=$KBIN/kubectl
KUBELET_BIN=${CNREDIS_KUBELET:-$REPO/target/x86_64-unknown-linux-gnu/release/cnredis-kubelet}
OPERATOR_BIN=$REPO/target/x86_64-unknown-linux-gnu/release/cnredis
IMAGES_DIR=$CACHE/images

PKI=$DIR/pki
LOGS=$DIR/logs
PIDS=$DIR/pids
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig

BRIDGE=cnredis0
API_IP=10.245.0.1
API_URL=https://$API_IP:6443
NODES=(cnredis-a cnredis-b cnredis-c)
declare -A NODE_IP=([cnredis-a]=10.245.0.11 [cnredis-b]=10.245.0.12 [cnredis-c]=10.245.0.13)
declare -A NODE_ZONE=([cnredis-a]=a [cnredis-b]=b [cnredis-c]=c)
SERVICE_CIDR=10.96.0.0/16
CLUSTER_CIDR=10.244.0.0/16
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

T_START=$(date +%s)
log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
kubectl() { "$KUBECTL_BIN" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# ------------------------------------------------------------------ processes
# Our processes are recognised by their program name (argv[0]'s base name) AND the state directory in
# their command line, so an etcd or kube-apiserver of another script (admission-check.sh) is never touched.
ours() { # ours PROGRAM [ARG ARG...] -> pids (with ARG ARG... as consecutive arguments, when given)
  local prog=$1; shift
  local want=""; [[ $# -gt 0 ]] && want=$'\n'$(printf '%s\n' "$@")
  local f pid args joined
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    mapfile -d '' -t args 2>/dev/null <"$f" || continue
    [[ ${#args[@]} -gt 0 && ${args[0]##*/} == "$prog" ]] || continue
    printf -v joined '%s\n' "${args[@]}"
    joined=$'\n'$joined
    [[ $joined == *"$DIR/"* ]] || continue
    [[ -z $want || $joined == *"$want"* ]] || continue
    echo "$pid"
  done
}
running() { [[ -n $(ours "$1") ]]; }
# component_pids NAME: kubelet-<node> is the cnredis-kubelet with `--node <node>`; the others are programs
component_pids() {
  case $1 in
    kubelet-*) ours cnredis-kubelet --node "${1#kubelet-}" ;;
    *) ours "$1" ;;
  esac
}

# start NAME BINARY ARGS... (no-op if already running); the log goes to logs/NAME.log, the pid to pids/NAME.pid
start() {
  local name=$1 bin=$2; shift 2
  local pid
  pid=$(component_pids "$name" | head -1)
  if [[ -n $pid ]]; then
    log "$name already running (pid $pid)"; echo "$pid" >"$PIDS/$name.pid"; return 0
  fi
  mkdir -p "$LOGS" "$PIDS"
  printf '\n===== %s start: %s %s\n' "$(date -Is)" "$bin" "$*" >>"$LOGS/$name.log"
  # setsid: own session, so the component outlives this script and the terminal.
  setsid "$bin" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!)"
}
pidfile_pids() { [[ -f $PIDS/$1.pid ]] && cat "$PIDS/$1.pid" || true; }

# wait_for DESC NAME CHECK... : polls CHECK until it succeeds; NAME's process must stay alive; on timeout
# or death prints the last output of CHECK and the tail of logs/NAME.log.
wait_for() {
  local desc=$1 name=$2 timeout=${WAIT_TIMEOUT:-$READY_TIMEOUT}; shift 2
  local deadline=$(( $(date +%s) + timeout )) out="" pid=""
  [[ -n $name ]] && pid=$(pidfile_pids "$name")
  while :; do
    if out=$("$@" 2>&1); then log "$desc: ready ($(( $(date +%s) - T_START ))s)"; return 0; fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "$desc: process $name (pid $pid) exited; last lines of $LOGS/$name.log:"
      tail -40 "$LOGS/$name.log" >&2
      return 1
    fi
    if (( $(date +%s) >= deadline )); then
      log "$desc: not ready after ${timeout}s; last check output:"
      printf '%s\n' "$out" | tail -20 >&2
      if [[ -n $name ]]; then log "last lines of $LOGS/$name.log:"; tail -40 "$LOGS/$name.log" >&2; fi
      return 1
    fi
    sleep 0.5
  done
}

# stop_procs DESC TIMEOUT PIDS...: SIGTERM, wait, SIGKILL what is left
stop_procs() {
  local desc=$1 timeout=$2; shift 2
  [[ $# -gt 0 ]] || return 0
  log "stopping $desc (pids $*)"
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$(( $(date +%s) + timeout )) alive
  while :; do
    alive=(); local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    [[ ${#alive[@]} -eq 0 ]] && return 0
    if (( $(date +%s) >= deadline )); then
      log "$desc still running after ${timeout}s: SIGKILL ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      sleep 0.2
      return 0
    fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------ PKI
# EC P-256 keys (PKCS#8) for every TLS certificate (instant to make); RSA 2048 for service-account tokens.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# cert NAME SUBJECT EXTFILE-CONTENT: pki/NAME.{key,crt} signed by the CA
cert() {
  local name=$1 subj=$2 ext=$3
  new_key "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
CLIENT_EXT=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'
SERVER_EXT=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth'

# name|subject of every client certificate
client_certs() {
  echo "admin|/O=system:masters/CN=cnredis-e2e-admin"
  echo "kube-controller-manager|/CN=system:kube-controller-manager"
  echo "kube-scheduler|/CN=system:kube-scheduler"
  echo "kube-proxy|/CN=system:kube-proxy"
  echo "apiserver-kubelet-client|/O=system:masters/CN=kube-apiserver-kubelet-client"
  echo "front-proxy-client|/CN=front-proxy-client"
  local n; for n in "${NODES[@]}"; do echo "node-$n|/O=system:nodes/CN=system:node:$n"; done
}
all_cert_names() {
  echo apiserver
  client_certs | cut -d'|' -f1
  local n; for n in "${NODES[@]}"; do echo "kubelet-serving-$n"; done
}

pki_valid() {
  [[ -s $PKI/ca.crt && -s $PKI/ca.key && -s $PKI/sa.key && -s $PKI/sa.pub ]] || return 1
  openssl x509 -in "$PKI/ca.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  local n files=()
  for n in $(all_cert_names); do
    [[ -s $PKI/$n.crt && -s $PKI/$n.key ]] || return 1
    files+=("$PKI/$n.crt")
  done
  # one openssl call verifies them all against the CA (and their dates)
  local out; out=$(openssl verify -CAfile "$PKI/ca.crt" "${files[@]}" 2>&1) || return 1
  [[ $(grep -c ': OK$' <<<"$out") -eq ${#files[@]} ]] || return 1
  for n in $(all_cert_names); do
    openssl x509 -in "$PKI/$n.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  done
}

make_pki() {
  if pki_valid; then log "PKI: kept $PKI"; return 0; fi
  local c
  for c in "${CONTROL_PLANE[@]}"; do
    running "$c" && die "PKI in $PKI is missing or invalid while $c runs: run '$0 down' first"
  done
  log "PKI: generating in $PKI"
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  new_key "$PKI/ca.key"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=cnredis-e2e-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "$SERVER_EXT
subjectAltName=IP:$API_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  local name subj
  while IFS='|' read -r name subj; do cert "$name" "$subj" "$CLIENT_EXT"; done < <(client_certs)
  local n
  for n in "${NODES[@]}"; do
    cert "kubelet-serving-$n" "/O=system:nodes/CN=system:node:$n" "$SERVER_EXT
subjectAltName=IP:${NODE_IP[$n]},DNS:$n"
  done
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
  pki_valid || die "PKI generation produced invalid certificates"
}

# write_if_changed FILE < content: leaves FILE (and its mtime) alone when the content is the same;
# kube-proxy exits when its config file is written to, the others would reload for nothing.
write_if_changed() {
  local file=$1 tmp=$1.tmp.$$
  mkdir -p "$(dirname "$file")"
  cat >"$tmp"
  chmod 600 "$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv -f "$tmp" "$file"; fi
}

# kubeconfig FILE CERT-NAME USER: certificates embedded, so the file stands alone
kubeconfig() {
  local file=$1 name=$2 user=$3
  write_if_changed "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cnredis-e2e
  cluster:
    server: $API_URL
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI/$name.key")
contexts:
- name: cnredis-e2e
  context: {cluster: cnredis-e2e, user: $user, namespace: default}
current-context: cnredis-e2e
EOF
}
make_kubeconfigs() {
  kubeconfig "$ADMIN_KUBECONFIG" admin admin
  kubeconfig "$DIR/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
  kubeconfig "$DIR/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
  kubeconfig "$DIR/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  local n; for n in "${NODES[@]}"; do kubeconfig "$DIR/nodes/$n/kubeconfig" "node-$n" "system:node:$n"; done
}

# ------------------------------------------------------------------ network
net_up() {
  sysctl -qw net.ipv4.ip_forward=1
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    log "bridge $BRIDGE created"
  fi
  ip link set "$BRIDGE" up
  local a have
  have=$(ip -4 -o addr show dev "$BRIDGE" | awk '{print $4}')
  for a in "$API_IP/24" "${NODE_IP[cnredis-a]}/24" "${NODE_IP[cnredis-b]}/24" "${NODE_IP[cnredis-c]}/24"; do
    grep -qxF "$a" <<<"$have" || ip addr add "$a" dev "$BRIDGE"
  done
  # Traffic to a pod or service address with nothing behind it must die here, never leave by the default
  # route: pod IPs have /32 routes to their veths, the rest of the pod range is a blackhole; service IPs
  # are rewritten by kube-proxy's DNAT after this route is chosen, and unmatched ones die on the portless
  # bridge (a blackhole would fail the host's own connections before the DNAT could run).
  ip route replace blackhole 10.244.0.0/16
  ip route replace 10.96.0.0/16 dev "$BRIDGE"
  # Pods talk to pods, services and this host only: anything they send elsewhere is dropped here rather
  # than forwarded, un-NATed, out of the machine.
  iptables -N CNREDIS-E2E-EGRESS 2>/dev/null || iptables -F CNREDIS-E2E-EGRESS
  iptables -A CNREDIS-E2E-EGRESS -d 10.244.0.0/16 -j RETURN
  iptables -A CNREDIS-E2E-EGRESS -d 10.245.0.0/24 -j RETURN
  iptables -A CNREDIS-E2E-EGRESS -j DROP
  iptables -C FORWARD -s 10.244.0.0/16 -j CNREDIS-E2E-EGRESS 2>/dev/null || iptables -I FORWARD 1 -s 10.244.0.0/16 -j CNREDIS-E2E-EGRESS
}

# ------------------------------------------------------------------ checks
etcd_ok() { curl -fsS --max-time 2 http://127.0.0.1:2379/health | grep -q '"health":"true"'; }
api_curl() {
  curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL$1"
}
api_ok() { api_curl /readyz >/dev/null; }
kcm_ok() { curl -fsSk --max-time 2 https://127.0.0.1:10257/healthz >/dev/null; }
sched_ok() { curl -fsSk --max-time 2 https://127.0.0.1:10259/healthz >/dev/null; }
# kube-proxy is ready once it programmed the kubernetes Service (and /livez answers; /healthz is 503 while
# its Node, cnredis-a, does not exist)
proxy_ok() {
  curl -fsS --max-time 2 http://127.0.0.1:10256/livez >/dev/null &&
    iptables -w 5 -t nat -S KUBE-SERVICES 2>/dev/null | grep -q -- '-d 10.96.0.1/32'
}
default_ns_ok() { kubectl get serviceaccount default -n default -o name && kubectl get configmap kube-root-ca.crt -n default -o name; }
nodes_ready() { # all three nodes Ready=True
  local out; out=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}') || return 1
  echo "$out"
  local n; for n in "${NODES[@]}"; do grep -qx "$n=True" <<<"$out" || return 1; done
}
kubelet_built() { [[ -x $KUBELET_BIN ]]; }

healthy() { # everything that should run runs and answers
  local c
  for c in "${CONTROL_PLANE[@]}"; do [[ -n $(component_pids "$c") ]] || return 1; done
  [[ -f $ADMIN_KUBECONFIG ]] && api_ok && kcm_ok && sched_ok && proxy_ok || return 1
  if kubelet_built; then
    local n; for n in "${NODES[@]}"; do [[ -n $(component_pids "kubelet-$n") ]] || return 1; done
    nodes_ready >/dev/null || return 1
  fi
}

# ------------------------------------------------------------------ up
refresh_operator_image() {
  local dst=$IMAGES_DIR/cnredis/usr/local/bin/cnredis
  mkdir -p "$(dirname "$dst")"
  if [[ -x $OPERATOR_BIN ]]; then
    if [[ ! -e $dst || $(stat -c %d:%i "$OPERATOR_BIN") != $(stat -c %d:%i "$dst") ]]; then
      rm -f "$dst"; ln "$OPERATOR_BIN" "$dst" 2>/dev/null || cp -p "$OPERATOR_BIN" "$dst"
      log "image cnredis: $dst <- $OPERATOR_BIN"
    fi
  else
    log "note: $OPERATOR_BIN not built: image cnredis/cnredis has no binary"
  fi
}

kubelet_args() { # kubelet_args NODE -> one argument per line
  local n=$1
  printf '%s\n' run --node "$n" --zone "${NODE_ZONE[$n]}" --node-ip "${NODE_IP[$n]}" \
    --kubeconfig "$DIR/nodes/$n/kubeconfig" --state-dir "$DIR/nodes/$n" \
    --tls-cert "$PKI/kubelet-serving-$n.crt" --tls-key "$PKI/kubelet-serving-$n.key" \
    --images "$E2E/images.yaml" --images-dir "$IMAGES_DIR" --client-ca "$PKI/ca.crt"
  if [[ $n == cnredis-a ]]; then printf '%s\n' --provisioner --pv-root "$DIR/pv"; fi
  local extra; for extra in ${CNREDIS_KUBELET_ARGS:-}; do echo "$extra"; done
}

cluster_objects() {
  kubectl apply -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: cnredis-local
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: e2e.cnredis.io/local
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
---
# The kubelet of cnredis-a is the provisioner of cnredis-local: the Node authorizer alone does not let a
# node create PVs or watch all claims.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cnredis-e2e:local-provisioner
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, update, patch]
- apiGroups: [""]
  resources: [persistentvolumeclaims/status]
  verbs: [get, update, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cnredis-e2e:local-provisioner
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cnredis-e2e:local-provisioner
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: system:node:cnredis-a
EOF
  log "StorageClass cnredis-local (default) and the provisioner's RBAC applied"
}

write_kube_proxy_config() {
  write_if_changed "$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $DIR/kube-proxy.kubeconfig
mode: iptables
# one kube-proxy in the host network namespace serves all three nodes; it takes cnredis-a's name and IP
hostnameOverride: cnredis-a
bindAddress: ${NODE_IP[cnredis-a]}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $CLUSTER_CIDR
detectLocalMode: ClusterCIDR
nodePortAddresses: [10.245.0.0/24]
iptables:
  localhostNodePorts: false   # would set net.ipv4.conf.all.route_localnet=1 on the host
  minSyncPeriod: 1s   # kube-proxy's default, written out: 0s here would mean the default too
  syncPeriod: 30s
# zero: leave every conntrack sysctl as it is (some are read-only here)
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  tcpBeLiberal: false
  udpTimeout: 0s
  udpStreamTimeout: 0s
oomScoreAdj: 0
EOF
}

cmd_up() {
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces, iptables, mounts)"
  "$E2E/install-deps.sh"
  # install-kube.sh: quiet when everything is cached, its progress shown when it has to build
  local kout
  if kout=$("$E2E/install-kube.sh" 2>&1 >/dev/null); then
    grep -q 'building' <<<"$kout" && printf '%s\n' "$kout" >&2
  else
    printf '%s\n' "$kout" >&2; die "install-kube.sh failed"
  fi
  local b; for b in "$ETCD_BIN" "$KBIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,kubectl}; do
    [[ -x $b ]] || die "missing $b (install-kube.sh failed?)"
  done
  mkdir -p "$DIR" "$LOGS" "$PIDS" "$DIR/pv" "$DIR/nodes"
  refresh_operator_image
  if healthy; then
    log "already up and healthy"
    echo "export KUBECONFIG=$ADMIN_KUBECONFIG PATH=$KBIN:\$PATH   # kubectl v$KUBE_VERSION"
    return 0
  fi

  net_up
  make_pki
  make_kubeconfigs
  write_kube_proxy_config

  # --- etcd
  start etcd "$ETCD_BIN" --name=cnredis-e2e --data-dir="$DIR/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=cnredis-e2e=http://127.0.0.1:2380 --initial-cluster-state=new \
    --unsafe-no-fsync --auto-compaction-mode=periodic --auto-compaction-retention=5m \
    --snapshot-count=10000 --log-level=warn
  wait_for etcd etcd etcd_ok || die "etcd not healthy"

  # --- kube-apiserver
  start kube-apiserver "$KBIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$API_IP" \
    --cert-dir="$DIR/apiserver-certs" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --default-not-ready-toleration-seconds=10 --default-unreachable-toleration-seconds=10 \
    --requestheader-client-ca-file="$PKI/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false
  wait_for kube-apiserver kube-apiserver api_ok || die "kube-apiserver not ready"

  # --- kube-controller-manager
  local kcm_kc=$DIR/kube-controller-manager.kubeconfig
  start kube-controller-manager "$KBIN/kube-controller-manager" \
    --kubeconfig="$kcm_kc" --authentication-kubeconfig="$kcm_kc" --authorization-kubeconfig="$kcm_kc" \
    --bind-address=127.0.0.1 --secure-port=10257 --cert-dir="$DIR/kcm-certs" \
    --controllers='*' --use-service-account-credentials \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --allocate-node-cidrs --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --node-monitor-period=2s --node-monitor-grace-period=16s \
    --leader-elect=false --terminated-pod-gc-threshold=50 --profiling=false \
    --flex-volume-plugin-dir="$DIR/kcm-flexvolume"

  # --- kube-scheduler
  local sched_kc=$DIR/kube-scheduler.kubeconfig
  start kube-scheduler "$KBIN/kube-scheduler" \
    --kubeconfig="$sched_kc" --authentication-kubeconfig="$sched_kc" --authorization-kubeconfig="$sched_kc" \
    --bind-address=127.0.0.1 --secure-port=10259 --cert-dir="$DIR/scheduler-certs" \
    --leader-elect=false --profiling=false

  # --- kube-proxy (started now, waited for last: it looks up its Node, cnredis-a, for up to 30 s)
  start kube-proxy "$KBIN/kube-proxy" --config="$DIR/kube-proxy.yaml"

  wait_for kube-controller-manager kube-controller-manager kcm_ok || die "kube-controller-manager not healthy"
  wait_for kube-scheduler kube-scheduler sched_ok || die "kube-scheduler not healthy"
  wait_for "ServiceAccount default + ConfigMap kube-root-ca.crt" kube-controller-manager default_ns_ok ||
    die "controller-manager did not populate namespace default"
  cluster_objects

  # --- kubelets
  if kubelet_built; then
    local n args
    for n in "${NODES[@]}"; do
      mkdir -p "$DIR/nodes/$n"
      mapfile -t args < <(kubelet_args "$n")
      start "kubelet-$n" "$KUBELET_BIN" "${args[@]}"
    done
    WAIT_TIMEOUT=$NODES_TIMEOUT wait_for "3 nodes Ready" kubelet-cnredis-a nodes_ready || {
      for n in cnredis-b cnredis-c; do log "last lines of $LOGS/kubelet-$n.log:"; tail -20 "$LOGS/kubelet-$n.log" >&2 || true; done
      die "nodes not Ready"
    }
  else
    log "kubelet not built ($KUBELET_BIN): the control plane is up without nodes"
  fi

  wait_for kube-proxy kube-proxy proxy_ok || die "kube-proxy did not program the kubernetes Service"
  if grep -qiE '^E[0-9]{4} .*(sysctl|read-only|conntrack)' "$LOGS/kube-proxy.log"; then
    log "warning: kube-proxy logged errors:"; grep -iE '^E[0-9]{4} .*(sysctl|read-only|conntrack)' "$LOGS/kube-proxy.log" | tail -5 >&2
  fi

  log "up in $(( $(date +%s) - T_START ))s"
  kubectl get nodes -o wide >&2 2>/dev/null || true
  echo "export KUBECONFIG=$ADMIN_KUBECONFIG PATH=$KBIN:\$PATH   # kubectl v$KUBE_VERSION"
}

# ------------------------------------------------------------------ down
# Pod network namespaces and host veths. The kubelet's own tests (cargo test -p cnredis-kubelet) make
# cnr-* namespaces too, with their state elsewhere: a cnr-* namespace is ours when a process in it
# mentions the state directory in its command line or mount table, or when it has no process left.
netns_all() { ip netns list 2>/dev/null | awk '{print $1}' | grep '^cnr-' || true; }
proc_mentions_dir() { # proc_mentions_dir PID
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$DIR/" && return 0
  grep -qF "$DIR/" "/proc/$1/mountinfo" 2>/dev/null
}
netns_is_ours() {
  local pids p
  pids=$(ip netns pids "$1" 2>/dev/null | grep -vx 1 || true)
  [[ -z $pids ]] && return 0
  for p in $pids; do proc_mentions_dir "$p" && return 0; done
  return 1
}
netns_ours() { local ns; for ns in $(netns_all); do netns_is_ours "$ns" && echo "$ns"; done; return 0; }
netns_foreign() { local ns; for ns in $(netns_all); do netns_is_ours "$ns" || echo "$ns"; done; return 0; }
# host veths cnr*, except those whose pod end is in a foreign cnr-* namespace
veths_ours() {
  local foreign; foreign=" $(netns_foreign | tr '\n' ' ') "
  ip -o -d link show type veth 2>/dev/null | awk '{
      name = $2; sub(/:$/, "", name); sub(/@.*/, "", name); ns = ""
      for (i = 1; i < NF; i++) if ($i == "link-netns") ns = $(i + 1)
      if (name ~ /^cnr/) print name, ns
    }' | while read -r v ns; do [[ -n $ns && $foreign == *" $ns "* ]] || echo "$v"; done
}
mounts_ours() { # mount points under $DIR, deepest first
  awk -v d="$DIR/" 'index($5, d) == 1 || $5 == substr(d, 1, length(d) - 1) {print $5}' /proc/self/mountinfo |
    awk '{print length($0) " " $0}' | sort -rn | cut -d' ' -f2- | uniq
}
kube_chains() { # TABLE/CHAIN of every KUBE-* chain, for iptables and ip6tables
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      "$ipt" -w 5 -t "$t" -S 2>/dev/null | awk -v p="$ipt/$t" '$1 == "-N" && $2 ~ /^KUBE-/ {print p "/" $2}'
    done
  done
}
# Processes of pods: in a foreign mount namespace whose mount table mentions the state directory
# (container roots, volumes), or in a cnr-* network namespace.
pod_procs() {
  local self_mnt f pid mnt
  self_mnt=$(readlink /proc/self/ns/mnt)
  for f in /proc/[0-9]*/ns/mnt; do
    pid=${f#/proc/}; pid=${pid%/ns/mnt}
    [[ $pid == 1 ]] && continue
    # a namespace we cannot read (the sandbox's own processes) or our own: not a pod
    mnt=$(readlink "$f" 2>/dev/null) || continue
    [[ -n $mnt && $mnt != "$self_mnt" ]] || continue
    grep -qF "$DIR/" "/proc/$pid/mountinfo" 2>/dev/null && echo "$pid"
  done
  local ns; for ns in $(netns_ours); do ip netns pids "$ns" 2>/dev/null || true; done | grep -vx 1 || true
}

clean_iptables() {
  if [[ -x $KBIN/kube-proxy ]]; then
    local out
    out=$("$KBIN/kube-proxy" --cleanup 2>&1) || { log "kube-proxy --cleanup reported errors:"; printf '%s\n' "$out" | grep -E '^E' | tail -5 >&2 || true; }
  fi
  local ipt t c
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      local rules chains
      rules=$("$ipt" -w 5 -t "$t" -S 2>/dev/null) || continue
      chains=$(awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}' <<<"$rules")
      [[ -n $chains ]] || continue
      # rules in other chains that jump to KUBE-* chains, then the chains themselves
      local r
      while IFS= read -r r; do
        [[ -n $r ]] || continue
        eval "\"$ipt\" -w 5 -t $t ${r/#-A /-D }" 2>/dev/null || true
      done < <(grep -E '^-A ' <<<"$rules" | grep -vE '^-A KUBE-' | grep -E -- '-j KUBE-' || true)
      for c in $chains; do "$ipt" -w 5 -t "$t" -F "$c" 2>/dev/null || true; done
      for c in $chains; do "$ipt" -w 5 -t "$t" -X "$c" 2>/dev/null || true; done
    done
  done
}

leftovers() { # prints what is left, one item per line
  local p pid
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy cnredis-kubelet; do
    for pid in $(ours "$p"); do echo "process $p pid $pid"; done
  done
  for pid in $(pod_procs | sort -u); do echo "pod process pid $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-80)"; done
  local x
  for x in $(netns_ours); do echo "netns $x"; done
  for x in $(veths_ours); do echo "veth $x"; done
  for x in $(mounts_ours); do echo "mount $x"; done
  for x in $(kube_chains); do echo "iptables chain $x"; done
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "bridge $BRIDGE"
  iptables -S CNREDIS-E2E-EGRESS >/dev/null 2>&1 && echo "iptables chain CNREDIS-E2E-EGRESS"
  ip route show type blackhole 10.244.0.0/16 | grep -q . && echo "route blackhole 10.244.0.0/16"
  return 0
}
warn_foreign() {
  local f; f=$(netns_foreign | tr '\n' ' ')
  [[ -n ${f// /} ]] && log "note: left alone cnr-* network namespaces of another user (no process in them mentions $DIR): $f"
  return 0
}

cmd_down() {
  local purge=0
  [[ ${1:-} == --purge ]] && purge=1
  [[ $(id -u) == 0 ]] || die "needs root"
  local n pids=()
  # 1. kubelets (they stop and clean their pods on SIGTERM); not their `cnredis-kubelet container-init`s
  mapfile -t pids < <(ours cnredis-kubelet run --node)
  stop_procs kubelets "${KUBELET_STOP_TIMEOUT:-60}" "${pids[@]}"
  # 2. the control plane: its clients together, then the API server, then etcd
  local group c
  for group in "kube-proxy kube-scheduler kube-controller-manager" kube-apiserver etcd; do
    pids=()
    for c in $group; do mapfile -t -O "${#pids[@]}" pids < <(ours "$c"); done
    stop_procs "${group// /, }" 20 "${pids[@]}"
  done
  # 3. whatever pods are left
  mapfile -t pids < <(pod_procs | sort -u)
  if [[ ${#pids[@]} -gt 0 ]]; then log "killing leftover pod processes: ${pids[*]}"; kill -KILL "${pids[@]}" 2>/dev/null || true; sleep 0.3; fi
  local ns
  for ns in $(netns_ours); do
    ip netns pids "$ns" 2>/dev/null | grep -vx 1 | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || log "cannot delete netns $ns"
  done
  local v; for v in $(veths_ours); do ip link delete "$v" 2>/dev/null || true; done
  # 4. iptables
  clean_iptables
  # 5. mounts, deepest first
  local m
  for m in $(mounts_ours); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"; done
  # 6. bridge
  ip route del blackhole 10.244.0.0/16 2>/dev/null || true
  iptables -D FORWARD -s 10.244.0.0/16 -j CNREDIS-E2E-EGRESS 2>/dev/null || true
  iptables -F CNREDIS-E2E-EGRESS 2>/dev/null && iptables -X CNREDIS-E2E-EGRESS 2>/dev/null || true
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
  # 7. state (never while something is mounted below it: rm would go through a bind mount into PV data)
  if [[ -d $DIR ]]; then
    if [[ -n $(mounts_ours) ]]; then
      log "mounts left under $DIR: not removing it"
    elif [[ $purge == 1 ]]; then
      rm -rf "$DIR"
    else
      find "$DIR" -mindepth 1 -maxdepth 1 ! -name pv -exec rm -rf {} +
    fi
  fi
  # 8. verify
  warn_foreign
  local left; left=$(leftovers)
  if [[ -n $left ]]; then
    log "LEFTOVERS after down:"; printf '  %s\n' "$left" | sed 's/^  //;s/^/  /' >&2
    exit 1
  fi
  log "down in $(( $(date +%s) - T_START ))s; nothing left$([[ $purge == 0 && -d $DIR/pv ]] && echo " (kept $DIR/pv)")"
}

# ------------------------------------------------------------------ status
cmd_status() {
  local c pid
  for c in "${CONTROL_PLANE[@]}"; do
    pid=$(ours "$c" | head -1)
    if [[ -n $pid ]]; then printf '%-26s running (pid %s, rss %s MiB)\n' "$c" "$pid" $(( $(ps -o rss= -p "$pid") / 1024 ))
    else printf '%-26s not running\n' "$c"; fi
  done
  local n
  for n in "${NODES[@]}"; do
    pid=$(component_pids "kubelet-$n" | head -1)
    if [[ -n $pid ]]; then printf '%-26s running (pid %s)\n' "kubelet $n" "$pid"
    elif kubelet_built; then printf '%-26s not running\n' "kubelet $n"
    else printf '%-26s not built\n' "kubelet $n"; fi
  done
  if [[ -f $ADMIN_KUBECONFIG ]] && api_curl /readyz >/dev/null 2>&1; then
    echo "kube-apiserver /readyz    ok ($API_URL)"
    kubectl get nodes -o wide 2>&1 || true
    echo "export KUBECONFIG=$ADMIN_KUBECONFIG PATH=$KBIN:\$PATH   # kubectl v$KUBE_VERSION"
  else
    echo "kube-apiserver /readyz    unreachable"
    return 1
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up | down [--purge] | status" >&2; exit 2 ;;
esac
