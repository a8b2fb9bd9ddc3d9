#!/usr/bin/env bash
# End-to-end test of the operator on the local cluster (run by `make e2e-controller` inside `make test`,
# between cluster-up and cluster-down): installs the operator with its Helm chart and checks what a user
# sees of a RedisCluster: it becomes Ready with one primary and in-sync replicas; a key written through
# -leader is read from -replica with the -app secret; a deleted replica pod comes back on its volume with
# its data; instances crowded onto one node while another was cordoned are spread again; a deleted PVC is replaced by a new serial that re-syncs; scaling 3 -> 5 -> 2 never removes
# the primary; an invalid spec is rejected at admission with its message; the operator restarted while
# it rolls and scales resumes; a restore from a missing backup is refused with no instance created; deleting the RedisCluster removes everything it owns. Prints "N passed, N failed"
# and the timings it measured.
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$E2E/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=${KUBECTL:-$(ls -d "${CNREDIS_CACHE:-$HOME/.cache/cnredis}"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)}
HELM=${HELM:-$("$ROOT/hack/install-helm.sh" | tail -1)}
NS=e2e-operator
C=e2e

k() { "$KUBECTL" -n "$NS" "$@"; }

# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"

# cluster_is INSTANCES: the RedisCluster is Ready with INSTANCES ready instances, one primary.
cluster_is() {
  local want=$1 ready instances primaries status
  status=$(k get rcl "$C" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.readyInstances} {.status.instances}')
  read -r ready instances total <<<"$status"
  primaries=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=primary" -o name | wc -l)
  if [[ $ready == True && $instances == "$want" && $total == "$want" && $primaries == 1 ]]; then return 0; fi
  echo "Ready=$ready readyInstances=$instances instances=$total primaries=$primaries phase=$(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}')"
  return 1
}

primary() { k get rcl "$C" -o jsonpath='{.status.currentPrimary}'; }
pod_ip() { k get pod "$1" -o jsonpath='{.status.podIP}'; }
password() { k get secret "$C-app" -o jsonpath='{.data.password}' | base64 -d; }

# client NAME SCRIPT: SCRIPT in an application-like client pod of the cluster (e2e/lib.sh app_client).
client() { app_client "$NS" "$C" "$1" "$2"; }

# has_key IP KEY VALUE: the server at IP returns VALUE for KEY.
has_key() {
  client "check-$RANDOM" "retry sh -c '[ \"\$(valkey-cli -h $1 get $2)\" = \"$3\" ]' && echo found $2 on $1"
}

echo "== operator"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
# Events of an earlier run on a kept cluster (KEEP_CLUSTER=1) would answer for this one.
k delete events --all >/dev/null 2>&1
if "$HELM" upgrade --install cnredis "$ROOT/helm/cnredis" --namespace cnredis-system --create-namespace \
  --set image.tag=dev --set logFormat=text --wait --timeout 120s >/dev/null; then
  ok "helm install: the operator is ready"
else
  fail "helm install"
  "$KUBECTL" -n cnredis-system get pods -o wide
  "$KUBECTL" -n cnredis-system logs deploy/cnredis --tail=40
fi

echo "== admission"
out=$(k apply -f - 2>&1 <<EOF
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: invalid}
spec: {instances: 0}
EOF
)
if [[ $out == *"instances must be between 1 and 16"* ]]; then ok "instances: 0 rejected: ${out##*: }"; else fail "instances: 0 not rejected: $out"; fi

echo "== a restore from a backup that does not exist is refused, never started empty"
k apply -f - >/dev/null <<EOF
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: restored}
spec:
  instances: 2
  bootstrap: {recovery: {backup: {name: nightly}}}
EOF
refused() {
  local phase; phase=$(k get rcl restored -o jsonpath='{.status.phase}: {.status.phaseReason}')
  [[ $phase == "Bootstrap failed: cannot restore: RedisBackup nightly does not exist"* ]] || { echo "phase: $phase"; return 1; }
}
if wait_until "the restoring cluster is in phase Bootstrap failed" 60 refused; then
  pods=$(k get pods -l cnredis.io/cluster=restored -o name)
  [[ -z $pods ]] && ok "no instance was created for it" || fail "instances created: $pods"
  ready=$(k get rcl restored -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
  [[ $ready != True ]] && ok "it is not Ready (Ready=${ready:-absent})" || fail "a refused restore reports Ready"
  warned=$(k get events --field-selector "involvedObject.name=restored,reason=BootstrapFailed" -o jsonpath='{.items[0].message}')
  [[ -n $warned ]] && ok "Warning BootstrapFailed: $warned" || fail "no BootstrapFailed event"
fi
k delete rcl restored --wait=true >/dev/null

echo "== a 3-instance cluster"
started=$SECONDS
apply_cluster "$NS" "$C" rdb+aof
wait_until "3 instances Ready, one primary" 240 cluster_is 3 && echo "timing: apply -> Ready (3 instances): $((SECONDS - started)) s"
P=$(primary)
[[ $P == "$C-1" ]] && ok "the first instance is the primary ($P)" || fail "primary is '$P', expected $C-1"
roles=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.labels.cnredis\.io/role} {end}')
[[ $roles == "$C-1=primary $C-2=replica $C-3=replica " ]] && ok "role labels: $roles" || fail "role labels: $roles"
for s in leader replica any; do
  k get service "$C-$s" >/dev/null 2>&1 && ok "service $C-$s" || fail "service $C-$s missing"
done
pdbs=$(k get pdb -l "cnredis.io/cluster=$C" -o name | sort | tr '\n' ' ')
[[ $pdbs == "poddisruptionbudget.policy/$C-primary poddisruptionbudget.policy/$C-replicas " ]] && ok "PDBs: $pdbs" || fail "PDBs: $pdbs"
events=$(k get events --field-selector "involvedObject.name=$C" -o jsonpath='{range .items[*]}{.reason} {end}')
[[ $events == *PrimaryElected* && $events == *InstanceCreated* ]] && ok "events: $events" || fail "events: $events"
issued=$(k get events --field-selector "involvedObject.name=$C,reason=CertificateIssued" -o jsonpath='{range .items[*]}{.series.count}{end}')
[[ -z $issued ]] && ok "the instance API certificate was issued once" || fail "certificate issued $issued times"

echo "== write through -leader, read from -replica"
if client writer "set -e
  valkey-cli -h \$(cat /app/host) set e2e:key first
  retry sh -c '[ \"\$(valkey-cli -h $C-replica get e2e:key)\" = first ]'
  echo read back from $C-replica"; then ok "write to -leader, read from -replica"; else fail "write/read through services"; fi

echo "== a deleted replica pod comes back on its volume"
uid=$(k get pod "$C-3" -o jsonpath='{.metadata.uid}')
k delete pod "$C-3" --wait=false >/dev/null
recreated() {
  local now; now=$(k get pod "$C-3" -o jsonpath='{.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
  [[ -n $now && $now != "$uid"* && $now == *True ]] || { echo "pod: $now"; return 1; }
}
wait_until "$C-3 recreated and ready" 120 recreated
wait_until "cluster Ready again" 120 cluster_is 3
has_key "$(pod_ip "$C-3")" e2e:key first && ok "$C-3 kept its data" || fail "$C-3 lost e2e:key"

echo "== instances crowded onto one node by an outage are spread again"
# A replica recreated while its node is cordoned lands beside another instance (the anti-affinity is a
# preference); once the node takes pods again, the operator restarts that replica for the scheduler to
# place it there.
nodes_of() { k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name}@{.spec.nodeName} {end}'; }
distinct_nodes() { k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | grep -c .; }
moved_events() { k get events --field-selector "involvedObject.name=$C,reason=InstanceMoved" -o jsonpath='{range .items[*]}{.message}{"\n"}{end}'; }
R=$C-3
R_NODE=$(k get pod "$R" -o jsonpath='{.spec.nodeName}')
"$KUBECTL" cordon "$R_NODE" >/dev/null
uid=$(k get pod "$R" -o jsonpath='{.metadata.uid}')
k delete pod "$R" --wait=false >/dev/null
wait_until "$R recreated and ready beside another instance" 120 recreated
wait_until "cluster Ready again" 120 cluster_is 3
crowded=$(nodes_of)
if [[ $(distinct_nodes) == 2 ]]; then ok "while $R_NODE is cordoned, two instances share a node: $crowded"; else fail "expected two instances on one node: $crowded"; fi
[[ -z $(moved_events) ]] && ok "nothing is moved while no node could take it" || fail "moved with no free node: $(moved_events)"
"$KUBECTL" uncordon "$R_NODE" >/dev/null
started=$SECONDS
spread_again() {
  [[ $(distinct_nodes) == 3 ]] && cluster_is 3 >/dev/null || { echo "pods: $(nodes_of); $(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}')"; return 1; }
}
if wait_until "the instances on three nodes again, cluster Ready" 180 spread_again; then
  ok "spread again in $((SECONDS - started)) s: $(nodes_of)"
fi
moved=$(moved_events)
[[ $moved == *"spreading instances: "*"shares"*"and $R_NODE has none"* ]] && ok "InstanceMoved: $moved" || fail "InstanceMoved events: '$moved'"
[[ $(primary) == "$P" ]] && ok "the primary stayed $P" || fail "the primary changed to $(primary)"
for pod in $C-2 $C-3; do
  has_key "$(pod_ip "$pod")" e2e:key first && ok "$pod has its data" || fail "$pod lost e2e:key"
done

echo "== a deleted PVC gives a new serial that re-syncs"
k delete pvc "$C-2" --wait=false >/dev/null
new_serial() { k get pod "$C-4" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; }
wait_until "$C-4 replaces $C-2" 180 new_serial
wait_until "cluster Ready with 3 instances" 120 cluster_is 3
k get pod "$C-2" >/dev/null 2>&1 && fail "$C-2 still exists" || ok "$C-2 is gone"
has_key "$(pod_ip "$C-4")" e2e:key first && ok "$C-4 re-synced the data" || fail "$C-4 has no e2e:key"

echo "== rolling update (valkey 8.1 -> 9.1) under a client writing with WAIT 1"
# The writer: SET w:N, WAIT 1 (one replica acknowledged), logs every acknowledged N with the time; stops
# when e2e:stop appears, then checks every acknowledged key is still there.
client writer-rollout "host=\$(cat /app/host); n=0; acked=''; last=\$(date +%s%3N); gap=0; failures=0
  while :; do
    n=\$((n + 1))
    out=\$(printf 'SET w:%s %s\nWAIT 1 2000\nGET e2e:stop\n' \$n \$n | valkey-cli -h \$host 2>&1 | tr '\n' ' ')
    set -- \$out
    if [ \"\$1\" = OK ] && [ \"\${2:-0}\" -ge 1 ] 2>/dev/null; then
      now=\$(date +%s%3N); [ \$((now - last)) -gt \$gap ] && gap=\$((now - last)); last=\$now; acked=\"\$acked \$n\"
    else failures=\$((failures + 1)); sleep 0.05; fi
    [ \"\${3:-}\" = 1 ] && break
    [ \$n -ge 20000 ] && break
  done
  count=\$(echo \$acked | wc -w)
  missing=\$(for i in \$acked; do echo GET w:\$i; done | valkey-cli -h \$host | grep -c '^\$')
  echo acknowledged=\$count failed_attempts=\$failures longest_gap_ms=\$gap missing=\$missing
  [ \$count -gt 0 ] && [ \$missing -eq 0 ]" >/tmp/e2e-writer.log 2>&1 &
writer=$!
writer_running() { [[ $(k get pod writer-rollout -o jsonpath='{.status.phase}' 2>/dev/null) == Running ]]; }
wait_until "writer running" 60 writer_running
before=$(primary)
k patch rcl "$C" --type merge -p '{"spec":{"imageName":"valkey/valkey:9.1.2"}}' >/dev/null
started=$SECONDS
rollout_started() { k get events --field-selector "involvedObject.name=$C,reason=InstanceRestarted" -o name | grep -q .; }
wait_until "rolling update started" 60 rollout_started
"$KUBECTL" -n cnredis-system delete pod -l app.kubernetes.io/name=cnredis --wait=false >/dev/null
ok "operator pod deleted mid-rollout"
all_updated() {
  local images; images=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.spec.containers[0].image} {end}')
  [[ $images != *8.1.4* ]] && cluster_is 3 || { echo "images: $images"; return 1; }
}
wait_until "every instance runs valkey 9.1.2, cluster Ready" 420 all_updated && echo "timing: rolling update of 3 instances: $((SECONDS - started)) s"
after=$(primary)
[[ $after != "$before" ]] && ok "the primary moved by switchover: $before -> $after" || fail "primary did not change ($after)"
client stopper "valkey-cli -h \$(cat /app/host) set e2e:stop 1" >/dev/null || fail "could not stop the writer"
if wait "$writer"; then ok "no acknowledged write lost: $(tail -1 /tmp/e2e-writer.log)"; else fail "writer: $(tail -3 /tmp/e2e-writer.log)"; fi
echo "timing: write unavailability during the rolling update: $(grep -o 'longest_gap_ms=[0-9]*' /tmp/e2e-writer.log)"
order=$(k get events --field-selector "involvedObject.name=$C" --sort-by=.metadata.creationTimestamp \
  -o jsonpath='{range .items[*]}{.reason}:{.message}{"\n"}{end}' | grep -E '^(InstanceRestarted|Switchover)' | sed 's/ with the new pod spec//')
echo "$order" | sed 's/^/  event: /'
first_two=$(echo "$order" | head -2 | cut -d' ' -f3 | tr -d ':' | tr '\n' ' ')
switch_line=$(echo "$order" | grep -n SwitchoverCompleted | head -1 | cut -d: -f1)
last_removed=$(echo "$order" | grep -n "InstanceRestarted" | tail -1 | cut -d: -f1)
if [[ -n $switch_line && -n $last_removed && $last_removed -gt $switch_line && $first_two != *"$before"* ]]; then
  ok "order: replicas first ($first_two), then the switchover, then the old primary"
else
  fail "rolling update order: $order"
fi
k delete pod writer-rollout stopper --ignore-not-found --wait=false >/dev/null

echo "== storage grows online"
k patch rcl "$C" --type merge -p '{"spec":{"storage":{"size":"200Mi"}}}' >/dev/null
grown() {
  local sizes; sizes=$(k get pvc -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.status.capacity.storage} {end}')
  [[ $sizes == "200Mi 200Mi 200Mi " ]] && cluster_is 3 || { echo "capacities: $sizes"; return 1; }
}
wait_until "every PVC grown to 200Mi, cluster Ready" 120 grown
resized=$(k get events --field-selector "involvedObject.name=$C,reason=VolumeResizing" -o name | wc -l)
((resized > 0)) && ok "VolumeResizing events: $resized" || fail "no VolumeResizing event"

echo "== scale 3 -> 5 (the operator restarted midway) -> 2"
started=$SECONDS
k patch rcl "$C" --type merge -p '{"spec":{"instances":5}}' >/dev/null
first_new() { k get pod "$C-5" >/dev/null 2>&1; }
wait_until "scale-up started" 60 first_new
"$KUBECTL" -n cnredis-system delete pod -l app.kubernetes.io/name=cnredis --wait=false >/dev/null
ok "operator pod deleted while scaling"
wait_until "5 instances Ready" 300 cluster_is 5 && echo "timing: scale 3 -> 5: $((SECONDS - started)) s"
k patch rcl "$C" --type merge -p '{"spec":{"instances":2}}' >/dev/null
wait_until "2 instances Ready" 240 cluster_is 2
remaining=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name} {end}')
P=$(primary)
[[ $remaining == *"$P "* && $remaining != *"$C-5 "* && $remaining != *"$C-6 "* ]] \
  && ok "scale-down kept the primary $P and removed the highest serials: $remaining" || fail "remaining pods: $remaining (primary $P)"
pvcs=$(k get pvc -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name} {end}')
[[ $pvcs == "$remaining" ]] && ok "their PVCs were deleted (pvcRetentionPolicy Delete): $pvcs" || fail "PVCs: $pvcs"
has_key "$(pod_ip "$(primary)")" e2e:key first && ok "data intact after scaling" || fail "data lost after scaling"
# Each instance has its own instance-API certificate, naming its pod only; a removed instance's is gone.
secrets=$(k get secrets -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name} {end}' | tr ' ' '\n' | grep -- '-api$' | sort | tr '\n' ' ')
want=$(for pod in $remaining; do echo "$pod-api"; done | sort | tr '\n' ' ')
[[ $secrets == "$want" ]] && ok "instance-API certificates: $secrets" || fail "instance-API Secrets: $secrets, instances: $remaining"
san=$(k get secret "$P-api" -o jsonpath='{.data.tls\.crt}' | base64 -d | openssl x509 -noout -ext subjectAltName 2>&1 | tail -n +2 | tr -d ' ')
[[ $san == "DNS:$P.$C-any.$NS.svc" ]] && ok "$P's certificate names $P only: $san" || fail "$P's certificate names: $san"

echo "== deleting the RedisCluster removes what it owns"
k delete rcl "$C" --wait=true >/dev/null
nothing_left() {
  local left; left=$(k get pods,pvc,services,secrets,pdb,serviceaccounts,roles,rolebindings -l "cnredis.io/cluster=$C" -o name 2>&1)
  [[ -z $left ]] || { echo "$left" | tr '\n' ' '; return 1; }
}
wait_until "pods, PVCs, services, secrets, PDBs and RBAC of $C removed" 120 nothing_left

echo
echo "$passed passed, $failed failed"
if ((failed > 0)); then
  echo "--- operator log (tail)"
  "$KUBECTL" -n cnredis-system logs deploy/cnredis --tail=60 2>&1
  echo "--- cluster"
  k get rcl,pods,pvc -o wide 2>&1
fi
((failed == 0))
