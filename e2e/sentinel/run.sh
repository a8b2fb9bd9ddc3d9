#!/usr/bin/env bash
# The failover suite's faults against what cnredis is measured against: Valkey Sentinel. On the local
# cluster (no operator needed), a plain 3-pod Valkey group (StatefulSet `sg`, valkey 8.1, RDB with the
# server's default save points and 100Mi volumes, as the cnredis suite's cluster) watched by three
# sentinels (pods `sgs-a|b|c`, one per node, quorum 2). A Valkey pod starts as a replica of whatever the
# sentinels name (waiting while that primary does not answer), as the common Sentinel charts do; the
# first pod starts as primary while no sentinel knows one.
#
# Per scenario, the same writer (SET + WAIT 1, through a Sentinel-aware client that asks the sentinels
# before every write), the same probe of every server in its network namespace, the same faults and the
# same counting as e2e/failover/run.sh: the client's longest gap between acknowledged writes, the
# acknowledged writes missing afterwards, the time two servers took writes. Those are observations,
# printed as `sentinel: ...` lines, not failures: the suite fails only when it cannot run a scenario
# (the group never recovers, the writer never writes). hack/bench-sentinel.sh runs it alternately with
# the cnredis suite and compares.
#
#   DOWN_AFTER_MS=2000 SCENARIOS="kill-server delete-pod cut-network freeze-node" e2e/sentinel/run.sh
#
# DOWN_AFTER_MS is Sentinel's down-after-milliseconds (default 2000: the failover suite's delaySeconds;
# 30000 is the value of Sentinel's sample configuration). FAILOVER_TIMEOUT_MS is its failover-timeout
# (default Sentinel's, 180000): a sentinel that voted for another as failover leader starts no failover
# itself for twice that. KEEP_GROUP=1 leaves the group up for the next run; without it the namespace is
# deleted, and the next run waits until it is gone and builds a new group (hack/bench-sentinel.sh does
# that for a node freeze: a group kept from round to round never came back whole after its second
# freeze, for a reason not traced; a fresh group per round came back whole in 20 of 20).
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/failover/common.sh
source "$E2E/failover/common.sh"
SCENARIOS=${SCENARIOS:-kill-server delete-pod cut-network freeze-node}
DOWN_AFTER_MS=${DOWN_AFTER_MS:-2000}
FAILOVER_TIMEOUT_MS=${FAILOVER_TIMEOUT_MS:-180000}
NS=e2e-sentinel
WORK=$(mktemp -d /tmp/cnredis-sentinel.XXXX)

k() { "$KUBECTL" -n "$NS" "$@"; }
# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"
PROBE_SELECTOR=app=sg SECRET=sg-app

password() { k get secret "$SECRET" -o jsonpath='{.data.password}' | base64 -d; }
sentinel_ips() { k get pods -l app=sgs -o jsonpath='{range .items[*]}{.status.podIP} {end}'; }
# sentinel IP ARGS...: a command to the sentinel at IP (sentinels here have no password).
sentinel() { local ip=$1; shift; timeout 2 "$CLI" -h "$ip" -p 26379 "$@" 2>/dev/null; }
# primary_ip: the primary's address as the first sentinel that answers names it.
primary_ip() {
  local ip m
  for ip in $(sentinel_ips); do
    m=$(sentinel "$ip" SENTINEL get-master-addr-by-name mymaster | head -1)
    [[ -n $m ]] && { echo "$m"; return; }
  done
}
pod_at() { k get pods -l app=sg -o jsonpath="{.items[?(@.status.podIP==\"$1\")].metadata.name}"; }
primary() { pod_at "$(primary_ip)"; }
info() { REDISCLI_AUTH=$(password) timeout 2 "$CLI" -h "$1" INFO replication 2>/dev/null | tr -d '\r'; }

# The group is whole: every sentinel names the same primary, which answers as primary; each other pod
# is a replica with its link up.
group_ready() {
  local ip named="" m pods
  for ip in $(sentinel_ips); do named+="$(sentinel "$ip" SENTINEL get-master-addr-by-name mymaster | head -1) "; done
  m=$(primary_ip)
  [[ -n $m && $named == "$m $m $m " ]] || { echo "sentinels name: '$named'"; return 1; }
  info "$m" | grep -q '^role:master' || { echo "$m: $(info "$m" | grep -E '^(role|connected_slaves|slave)' | tr '\n' ' ')"; return 1; }
  # A replica may replicate from another replica: a replica the sentinels had not discovered yet when
  # they failed over is left following the old primary, which they turn into a replica when it returns.
  pods=$(k get pods -l app=sg -o jsonpath='{range .items[*]}{.status.podIP} {end}')
  for ip in $pods; do
    [[ $ip == "$m" ]] && continue
    [[ " $pods " == *" $(info "$ip" | sed -n 's/^master_host://p') "* ]] && info "$ip" | grep -q '^master_link_status:up' \
      || { echo "$ip: $(info "$ip" | grep -E '^(role|master_host|master_link_status)' | tr '\n' ' ')"; return 1; }
    info "$ip" | grep -q "^master_host:$m" || echo "sentinel: $(pod_at "$ip") replicates from $(pod_at "$(info "$ip" | sed -n 's/^master_host://p')"), not from the primary" >>"$WORK/chained"
  done
  [[ $(wc -w <<<"$pods") == 3 ]] || { echo "server pods with an address: $pods"; return 1; }
  # Every sentinel knows the other two and every replica: they learn of replicas from the primary's INFO
  # every 10 s, and fail over only to one they know (a fault before that finds no replica to promote).
  local known
  for ip in $(sentinel_ips); do
    sentinel "$ip" SENTINEL master mymaster | tr -d '\r' | paste -sd' ' | grep -q 'num-other-sentinels 2' \
      || { echo "sentinel $ip does not know the other two yet"; return 1; }
    known=$(sentinel "$ip" SENTINEL replicas mymaster | tr -d '\r' | paste -sd' ')
    for replica in $pods; do
      [[ $replica == "$m" || $known == *"ip $replica "* ]] || { echo "sentinel $ip does not know replica $replica yet"; return 1; }
    done
  done
}

setup() {
  "$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  k get secret "$SECRET" >/dev/null 2>&1 \
    || k create secret generic "$SECRET" --from-literal=password="$(head -c 18 /dev/urandom | base64 | tr -d '+/=')" >/dev/null
  local node
  for node in a b c; do
    k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: sgs-$node, labels: {app: sgs}}
spec:
  nodeName: cnredis-$node
  # Kept through a node freeze, as a DaemonSet's pods are: a pod that is evicted here is not recreated.
  tolerations:
    - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}
    - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}
  containers:
    - name: sentinel
      image: valkey/valkey:8.1
      command: [sh, -c, 'printf "port 26379\n" > /tmp/sentinel.conf; exec valkey-server /tmp/sentinel.conf --sentinel']
YAML
  done
  sentinels_up() { local ips; ips=$(sentinel_ips); [[ $(wc -w <<<"$ips") == 3 ]] && for ip in $ips; do sentinel "$ip" PING | grep -q PONG || return 1; done; }
  wait_until "three sentinels answer" 120 sentinels_up || return 1
  # The server pods: ask the sentinels for the primary; none known yet and this is sg-0: be it.
  k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sg}
spec:
  serviceName: sg
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: sg}}
  template:
    metadata: {labels: {app: sg}}
    spec:
      terminationGracePeriodSeconds: 10
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: sg}}, topologyKey: kubernetes.io/hostname}
      containers:
        - name: valkey
          image: valkey/valkey:8.1
          env:
            - {name: SENTINELS, value: "$(sentinel_ips)"}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
          command: [sh, -c]
          args:
            - |
              pw=\$(cat /app/password)
              printf 'port 6379\ndir /data\nrequirepass %s\nmasterauth %s\nsave 3600 1 300 100 60 10000\n' "\$pw" "\$pw" > /tmp/valkey.conf
              while :; do
                m=""
                for s in \$SENTINELS; do
                  m=\$(env -u REDISCLI_AUTH timeout 1 valkey-cli -h \$s -p 26379 SENTINEL get-master-addr-by-name mymaster 2>/dev/null | head -1)
                  [ -n "\$m" ] && break
                done
                [ -z "\$m" ] && [ "\$(hostname)" = sg-0 ] && break
                [ -n "\$m" ] && [ "\$m" = "\$POD_IP" ] && break
                if [ -n "\$m" ] && REDISCLI_AUTH=\$pw timeout 1 valkey-cli -h \$m PING 2>/dev/null | grep -q PONG; then
                  echo "replicaof \$m 6379" >> /tmp/valkey.conf; break
                fi
                echo "waiting for a primary that answers (sentinels name '\$m')"; sleep 1
              done
              exec valkey-server /tmp/valkey.conf
          volumeMounts:
            - {name: data, mountPath: /data}
            - {name: app, mountPath: /app, readOnly: true}
      volumes: [{name: app, secret: {secretName: $SECRET}}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 100Mi}}}
YAML
  first_up() { local ip; ip=$(k get pod sg-0 -o jsonpath='{.status.podIP}' 2>/dev/null); [[ -n $ip ]] && info "$ip" | grep -q '^role:master'; }
  wait_until "sg-0 runs as primary" 120 first_up || return 1
  local pw; pw=$(password)
  for ip in $(sentinel_ips); do
    sentinel "$ip" SENTINEL MONITOR mymaster "$(k get pod sg-0 -o jsonpath='{.status.podIP}')" 6379 2 >/dev/null
    sentinel "$ip" SENTINEL SET mymaster auth-pass "$pw" >/dev/null
  done
}

echo "== Sentinel suite (down-after-milliseconds $DOWN_AFTER_MS, failover-timeout $FAILOVER_TIMEOUT_MS): $SCENARIOS"
ns_gone() { local phase; phase=$("$KUBECTL" get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null); [[ $phase != Terminating ]] || { echo "namespace $NS: $phase"; return 1; }; }
wait_until "no namespace $NS left terminating by an earlier run" 300 ns_gone || exit 1
k get statefulset sg >/dev/null 2>&1 || setup || exit 1
for ip in $(sentinel_ips); do
  sentinel "$ip" SENTINEL SET mymaster down-after-milliseconds "$DOWN_AFTER_MS" failover-timeout "$FAILOVER_TIMEOUT_MS" >/dev/null
done
wait_until "Sentinel group ready: a primary, 2 replicas in sync" 240 group_ready || exit 1
probe_loop & probe=$!

for scenario in $SCENARIOS; do
  echo "== $scenario"
  old=$(primary); old_ip=$(primary_ip); node=$(node_of "$old")
  writer_node=$(k get pods -l app=sg -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -vx "$node" | head -1)
  round=$((${round:-0} + 1)); w="s-$(date +%H%M%S)-$round-$scenario"
  start_writer "$w" "$writer_node" "$(sentinel_ips)"
  writing() { (( $(acks "$w") >= 20 )) || { echo "acks: $(acks "$w"); $(k get pod "$w" -o jsonpath='{.status.phase}')"; return 1; }; }
  wait_until "writer acknowledged 20 writes" 60 writing || continue
  fault_ms=$(date +%s%3N)
  case $scenario in
    kill-server)
      # The server is the container's process: the kubelet starts the container again.
      pid=$(server_pid "$old")
      [[ -n $pid ]] && kill -9 "$pid" && ok "killed valkey-server ($pid) of $old" || fail "no valkey-server process of $old" ;;
    delete-pod) k delete pod "$old" --wait=false >/dev/null ;;
    cut-network) chaos "$node" cut-network "$NS" "$old" ;;
    freeze-node) chaos "$node" stop-node --mode freeze ;;
    *) fail "unknown scenario $scenario"; continue ;;
  esac
  # A cut or frozen primary stays so until the sentinels have promoted another (or for good measure).
  if [[ $scenario == cut-network || $scenario == freeze-node ]]; then
    moved() { local m; m=$(primary_ip); [[ -n $m && $m != "$old_ip" ]] || { echo "sentinels name $m"; return 1; }; }
    wait_until "$scenario: Sentinel failed over from $old" $((DOWN_AFTER_MS / 1000 + 90)) moved \
      && echo "timing: $scenario: fault -> sentinels name a new primary: $(( $(date +%s%3N) - fault_ms )) ms"
    case $scenario in
      cut-network) chaos "$node" restore-network "$NS" "$old" ;;
      freeze-node) chaos "$node" start-node ;;
    esac
  fi
  more_acks=$(( $(acks "$w") + 20 ))
  writing_again() { (( $(acks "$w") >= more_acks )) || { echo "acks: $(acks "$w")"; return 1; }; }
  wait_until "$scenario: writes acknowledged again" $((DOWN_AFTER_MS / 1000 + 120)) writing_again
  if [[ -n ${KEEP_GROUP:-} ]]; then
    wait_until "$scenario: Sentinel group ready again" 240 group_ready
  else
    # Torn down after this run: whether it came back whole is an observation, not a harness failure.
    again=$SECONDS; until group_ready >/dev/null 2>&1 || ((SECONDS - again >= 30)); do sleep 1; done
    group_ready >/dev/null 2>&1 && echo "sentinel: $scenario: group whole again after $((SECONDS - again)) s" \
      || echo "sentinel: $scenario: group not whole again within 30 s: $(group_ready 2>&1 | head -1)"
  fi
  new=$(primary)
  [[ -s $WORK/chained ]] && tail -1 "$WORK/chained" && rm "$WORK/chained"
  stop_writer "$w"
  summary=$(grep '^acknowledged=' "$WORK/$w.log" | tail -1)
  [[ -n $summary ]] && ok "$scenario: the writer read back its writes ($summary)" || fail "$scenario: writer: $(tail -3 "$WORK/$w.log")"
  echo "sentinel: $scenario: primary $old -> $new; ${summary:-no summary}"
  echo "timing: $scenario: longest gap between acknowledged writes: $(longest_gap "$w" "$((fault_ms - 5000))") ms"
  echo "timing: $scenario: two writable primaries for $(two_primaries_ms "$fault_ms") ms (probe-observed)"
  doubles=$(two_primaries "$fault_ms")
  [[ -n $doubles ]] && echo "sentinel: $scenario: two writable primaries seen: $(head -2 <<<"$doubles" | tr '\n' ';')"
  k delete pod "$w" --ignore-not-found --wait=false >/dev/null
done

touch "$WORK/probe.stop"; wait "$probe"
[[ -n ${KEEP_GROUP:-} ]] || "$KUBECTL" delete namespace "$NS" --wait=false >/dev/null
echo
echo "$passed passed, $failed failed"
((failed == 0)) || k get pods -o wide 2>&1
((failed == 0))
