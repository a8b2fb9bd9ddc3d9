#!/usr/bin/env bash
# Smoke test of the local cluster (run by `make test` between cluster-up and cluster-down): a valkey
# Deployment on a PVC behind a Service; a client writes through the Service; the data survives pod
# deletion; a stopped node's pods leave the Service; a pod failing readiness never gets traffic;
# `kubectl logs` works; an unmapped image is ErrImagePull. Prints "N passed, N failed".
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=${KUBECTL:-$(ls -d "${CNREDIS_CACHE:-$HOME/.cache/cnredis}"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)}
KUBELET=${CNREDIS_KUBELET:-$E2E/../target/x86_64-unknown-linux-gnu/release/cnredis-kubelet}
NS=smoke

k() { "$KUBECTL" -n "$NS" "$@"; }

# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"

# run_client NAME SCRIPT: a client pod that runs SCRIPT with sh and exits; prints its logs; fails unless it
# succeeded. SCRIPT may use `retry CMD...`, which tries CMD for up to 20 s, as a client of a Service that
# is only just being programmed into kube-proxy would.
run_client() {
  local name=$1 script=$2
  local prelude='retry() { i=0; until "$@"; do i=$((i + 1)); [ $i -ge 20 ] && return 1; sleep 1; done; }'
  k delete pod "$name" --ignore-not-found --wait=true >/dev/null 2>&1
  k run "$name" --image=cnredis/e2e-client:1 --restart=Never --command -- sh -c "$prelude; $script" >/dev/null || return 1
  finished_pod "$NS" "$name" 60
}

# valkey_started: startedAt of the running, ready valkey container (empty if there is none).
valkey_started() {
  k get pods -l app=valkey -o jsonpath='{range .items[*]}{.status.phase} {.status.containerStatuses[0].ready} {.status.containerStatuses[0].state.running.startedAt}{"\n"}{end}' \
    | awk '$1 == "Running" && $2 == "true" { print $3 }'
}
restarted_since() {
  local now; now=$(valkey_started)
  [[ -n $now && $now != "$1" ]] && return 0
  echo "valkey (phase ready startedAt): $(k get pods -l app=valkey -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses[0].ready} {.status.containerStatuses[0].state}; {end}'), before: $1"
  return 1
}
valkey_pod() { k get pods -l app=valkey --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}'; }
ready_endpoints() { # ready_endpoints SERVICE -> ready endpoint addresses of its EndpointSlices
  k get endpointslices -l "kubernetes.io/service-name=$1" \
    -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}'
}

"$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
"$KUBECTL" create namespace "$NS" >/dev/null
"$KUBECTL" -n "$NS" create serviceaccount default --dry-run=client -o yaml >/dev/null

k apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: valkey}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: valkey}}
  template:
    metadata: {labels: {app: valkey}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: valkey
        image: valkey/valkey:8.1.4
        args: ["--dir", "/data", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"]
        ports: [{containerPort: 6379, name: redis}]
        readinessProbe: {exec: {command: [valkey-cli, ping]}, periodSeconds: 2}
        livenessProbe: {tcpSocket: {port: redis}, periodSeconds: 5}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: Service
metadata: {name: valkey}
spec:
  selector: {app: valkey}
  ports: [{port: 6379, targetPort: redis}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: never-ready}
spec:
  replicas: 1
  selector: {matchLabels: {app: never-ready}}
  template:
    metadata: {labels: {app: never-ready}}
    spec:
      containers:
      - name: valkey
        image: valkey/valkey:8.1.4
        args: ["--protected-mode", "no"]
        readinessProbe: {exec: {command: ["false"]}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: never-ready}
spec:
  selector: {app: never-ready}
  ports: [{port: 6379}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-such-image}
spec:
  containers: [{name: main, image: example.invalid/unmapped:1}]
YAML

wait_until "PVC bound by the local provisioner" 60 bash -c "[[ \$('$KUBECTL' -n $NS get pvc data -o jsonpath='{.status.phase}') == Bound ]]"
wait_until "valkey Deployment available" 90 k wait --for=condition=available deploy/valkey --timeout=5s
wait_until "valkey is a ready endpoint of its Service" 30 bash -c "[[ -n \$('$KUBECTL' -n $NS get endpointslices -l kubernetes.io/service-name=valkey -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}') ]]"

if out=$(run_client writer 'retry valkey-cli -h valkey SET smoke:key "written through the Service" && valkey-cli -h valkey.smoke.svc.cluster.local GET smoke:key'); then
  grep -q "written through the Service" <<<"$out" && ok "client pod wrote and read a key through the Service" || fail "client read back: $out"
else
  fail "client pod failed: $out"
fi

first=$(valkey_pod)
k delete pod "$first" --wait=false >/dev/null
wait_until "a new valkey pod replaces the deleted one" 90 bash -c "p=\$('$KUBECTL' -n $NS get pods -l app=valkey -o jsonpath='{.items[?(@.status.phase==\"Running\")].metadata.name}'); [[ -n \$p && \$p != $first ]] && '$KUBECTL' -n $NS wait --for=condition=ready pod/\$p --timeout=2s"
if out=$(run_client reader 'retry valkey-cli -h valkey GET smoke:key'); then
  grep -q "written through the Service" <<<"$out" && ok "the key survived pod deletion on the same PVC" || fail "after pod deletion the key reads: $out"
else
  fail "reader pod failed: $out"
fi

if "$KUBECTL" -n "$NS" logs deploy/valkey | grep -q "Ready to accept connections"; then
  ok "kubectl logs shows the server's log"
else
  fail "kubectl logs lacks 'Ready to accept connections': $("$KUBECTL" -n "$NS" logs deploy/valkey 2>&1 | tail -3)"
fi

pod=$(valkey_pod); node=$(k get pod "$pod" -o jsonpath='{.spec.nodeName}')
restarts=$(k get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')
"$KUBELET" chaos --socket "$DIR/nodes/$node/chaos.sock" kill-container "$NS" "$pod" valkey >/dev/null \
  && ok "killed the valkey container of $pod" || fail "chaos kill-container $pod"
wait_until "the killed container restarts in place and is ready again" 60 bash -c "[[ \$('$KUBECTL' -n $NS get pod $pod -o jsonpath='{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].ready}') == $((restarts + 1))/true ]]"

wait_until "a pod failing readiness is running but not ready" 60 bash -c "[[ \$('$KUBECTL' -n $NS get pods -l app=never-ready -o jsonpath='{.items[0].status.phase}/{.items[0].status.conditions[?(@.type==\"Ready\")].status}') == Running/False ]]"
if [[ -z $(ready_endpoints never-ready) ]]; then ok "the never-ready pod is no ready endpoint"; else fail "never-ready has ready endpoints: $(ready_endpoints never-ready)"; fi
if out=$(run_client prober 'valkey-cli -h never-ready -t 2 PING'); then
  fail "a client reached the never-ready pod through its Service: $out"
else
  ok "the never-ready Service receives no traffic (client: ${out//$'\n'/ })"
fi

wait_until "an unmapped image gives ErrImagePull" 30 bash -c "[[ \$('$KUBECTL' -n $NS get pod no-such-image -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}') == ErrImagePull ]]"

pod=$(valkey_pod); node=$(k get pod "$pod" -o jsonpath='{.spec.nodeName}'); ip=$(k get pod "$pod" -o jsonpath='{.status.podIP}')
"$KUBELET" chaos --socket "$DIR/nodes/$node/chaos.sock" stop-node --mode freeze >/dev/null && ok "stopped node $node (running $pod)" || fail "chaos stop-node $node"
wait_until "node $node becomes NotReady" 60 bash -c "[[ \$('$KUBECTL' get node $node -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') != True ]]"
wait_until "$pod ($ip) leaves the ready endpoints of the Service" 60 bash -c "! '$KUBECTL' -n $NS get endpointslices -l kubernetes.io/service-name=valkey -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}' | grep -qw $ip"
"$KUBELET" chaos --socket "$DIR/nodes/$node/chaos.sock" start-node >/dev/null && ok "restarted node $node" || fail "chaos start-node $node"
wait_until "node $node is Ready again" 60 bash -c "[[ \$('$KUBECTL' get node $node -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') == True ]]"
wait_until "valkey serves again" 120 k wait --for=condition=available deploy/valkey --timeout=5s
if out=$(run_client reader2 'retry valkey-cli -h valkey GET smoke:key'); then
  grep -q "written through the Service" <<<"$out" && ok "the key is intact after the node came back" || fail "after the node stop the key reads: $out"
else
  fail "reader pod failed after the node stop: $out"
fi

pod=$(valkey_pod); node=$(k get pod "$pod" -o jsonpath='{.spec.nodeName}')
started=$(valkey_started)
"$KUBELET" chaos --socket "$DIR/nodes/$node/chaos.sock" stop-node --mode kill >/dev/null \
  && ok "power loss on node $node (running $pod)" || fail "chaos stop-node --mode kill $node"
"$KUBELET" chaos --socket "$DIR/nodes/$node/chaos.sock" start-node >/dev/null && ok "node $node back" || fail "chaos start-node $node"
# The Deployment still looks available from before: wait for the restarted container itself.
wait_until "valkey restarted after the power loss and is ready" 120 restarted_since "$started"
if out=$(run_client reader3 'retry valkey-cli -h valkey GET smoke:key'); then
  grep -q "written through the Service" <<<"$out" && ok "the key survived the power loss (appendfsync always)" || fail "after the power loss the key reads: $out"
else
  fail "reader pod failed after the power loss: $out"
fi

"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null
echo "$passed passed, $failed failed"
((failed == 0))
