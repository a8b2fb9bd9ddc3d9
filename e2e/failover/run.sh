#!/usr/bin/env bash
# The failover chaos suite, on the local cluster with the operator installed (e2e/controller/run.sh
# installs it; run after it, before cluster-down). A 3-instance RedisCluster; for each scenario a client
# pod writes `SET w:N` + `WAIT 1` through -leader (on another node than the primary) while a host-side
# probe asks every instance, inside its own network namespace on 127.0.0.1, whether it takes writes.
# The fault is applied, the suite waits for the outcome, undoes the fault, and checks the invariants:
#   - never two writable primaries (the probe log);
#   - no acknowledged write lost (the writer reads back every key it got an acknowledgement for);
#   - replication offsets never regress: the offset of whichever server takes writes never goes back
#     (the probe's offsets.log), and every instance ends past the highest offset seen before the fault;
#   - a failover happened when the scenario requires one, to the replica of highest offset;
#   - afterwards the cluster is Ready, every instance in sync, the old primary a replica.
# Prints each scenario's client-observed write unavailability (longest gap between acknowledged writes)
# and "N passed, N failed". SCENARIOS (space-separated) picks some of: delete-pod kill-server
# kill-manager cut-network freeze-node power-off-node operator-down full-restart lose-volume switchover
# switchover-kill-target apiserver-down primary-cut-from-apiserver operator-cut-from-primary
# primary-cut-from-control-plane stall-server pause-manager force-delete-on-lost-node
# switchover-promote-fails switchover-demote-fails replica-cut-off apiserver-down-long
# apiserver-down-then-primary-cut stale-target-primary operator-killed-at-{switchover-fenced,
# switchover-lease-moved,switchover-promoted,failover-fenced,failover-chosen,failover-promoted}
# forged-primary-pod (run once after the others: a pod with the cluster's label named as the primary
# while no operator runs is never replicated from) (all by default); RUNS=N SEED=S draws
# N of them at random (`make chaos`). STOP_ON_FAILURE=1 stops after the first failing scenario, the
# cluster left as it is.
# Every fault of a pod or node fails over: a killed server or instance manager restarts the primary from
# its files, which may be behind the replicas, so it waits isolated for the failover (reason
# RestartedPrimary). A fault of the control plane does not: with the API server down (apiserver-down), or
# only the primary cut from it (primary-cut-from-apiserver), the primary holds its lease by the failsafe
# promises of its replicas and keeps taking writes; with only the operator cut from the primary
# (operator-cut-from-primary) the operator sees it renew its lease and does not fail it over. Each such
# fault is held CONTROL_PLANE_FAULT_SECONDS (30). A primary cut from the API server *and* the operator
# but not from its replicas (primary-cut-from-control-plane) is failed over: its replicas stop promising
# once the failover is recorded, and the one promoted waits out its last promise, so the primary's hold
# by promises ends before it takes writes. A primary whose server stalls for STALL_SECONDS (2: a fork of
# a large dataset, `DEBUG SLEEP 2`, a starved CPU) is not failed over either, and writes resume when it
# answers again. A primary whose instance manager is stopped (pause-manager) while its server runs is
# failed over on its expired lease, and the operator fences the server itself first. A primary whose
# pod is force-deleted from a node whose kubelet is gone (force-delete-on-lost-node) is failed over on a
# fence its instance manager acknowledges at the pod's last address, or on its lease: never on the pod's
# absence alone.
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/failover/common.sh
source "$E2E/failover/common.sh"
ALL_SCENARIOS="delete-pod kill-server kill-manager cut-network freeze-node power-off-node operator-down full-restart lose-volume switchover switchover-kill-target apiserver-down primary-cut-from-apiserver operator-cut-from-primary primary-cut-from-control-plane stall-server pause-manager force-delete-on-lost-node switchover-promote-fails switchover-demote-fails replica-cut-off apiserver-down-long apiserver-down-then-primary-cut stale-target-primary operator-killed-at-switchover-fenced operator-killed-at-switchover-lease-moved operator-killed-at-switchover-promoted operator-killed-at-failover-fenced operator-killed-at-failover-chosen operator-killed-at-failover-promoted forged-primary-pod"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
# RUNS=N [SEED=S]: N scenarios drawn at random (reproducibly for a given SEED) instead.
if [[ -n ${RUNS:-} ]]; then
  RANDOM=${SEED:-1}
  read -ra pool <<<"$ALL_SCENARIOS"
  SCENARIOS=$(for ((i = 0; i < RUNS; i++)); do echo -n "${pool[RANDOM % ${#pool[@]}]} "; done)
fi
NS=e2e-failover
C=fo
WORK=$(mktemp -d /tmp/cnredis-failover.XXXX)

k() { "$KUBECTL" -n "$NS" "$@"; }
# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"
PROBE_SELECTOR=cnredis.io/cluster=$C SECRET=$C-app
primary_ip() { k get pod "$(primary)" -o jsonpath='{.status.podIP}'; }

primary() { k get rcl "$C" -o jsonpath='{.status.currentPrimary}'; }

# Ready, every instance in sync, and on three nodes: the operator spreads instances that a scenario left
# sharing a node, and a scenario must not start while it does.
cluster_ready() {
  local status primaries instances nodes
  status=$(k get rcl "$C" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.readyInstances} {.status.phase}')
  primaries=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=primary" -o name | wc -l)
  instances=$(k get rcl "$C" -o jsonpath='{range .status.instancesStatus[*]}{.role}/{.ready}/{.link} {end}')
  nodes=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | grep -c .)
  [[ $status == "True 3 Healthy" && $primaries == 1 && $instances =~ ^(primary/true/\ |replica/true/up\ ){3}$ && $nodes == 3 ]] \
    || { echo "Ready/readyInstances/phase: $status; primary labels: $primaries; instances: $instances; on $nodes nodes; $(k get rcl "$C" -o jsonpath='{.status.phaseReason}')"; return 1; }
}

# The grace a primary that was paused (frozen) past its lease has, once it runs again, before its lease
# watchdog fences it: the fence is the watchdog's first act on resuming, but a write that was waiting
# in the server's socket can be served first. stale-writes.py measures it; docs/runbooks/fencing.md.
RESUME_GRACE_MS=${RESUME_GRACE_MS:-250}
# The longest a client may go without an acknowledged write in a switchover scenario: 0.2-1.2 s on the
# development machine (docs/benchmarks.md), the rest margin for a loaded one. A switchover that fences
# before its target is in sync takes 5.5-8.4 s when the target needs a full sync.
SWITCHOVER_GAP_MS=${SWITCHOVER_GAP_MS:-5000}
# The longest a client may go without an acknowledged write while the control plane is down (the goal of
# docs/architecture.md, "Failsafe"), and how long the API server stays down.
CONTROL_PLANE_GAP_MS=${CONTROL_PLANE_GAP_MS:-2000}
CONTROL_PLANE_FAULT_SECONDS=${CONTROL_PLANE_FAULT_SECONDS:-30}
# apiserver-down-long: the API server down for two minutes (four lease periods of the failsafe hold).
LONG_OUTAGE_SECONDS=${LONG_OUTAGE_SECONDS:-120}
# switchover-promote-fails: the switchover gives its target 10 s to promote, then rolls back; the longest a
# client may go without an acknowledged write meanwhile.
ROLLBACK_GAP_MS=${ROLLBACK_GAP_MS:-20000}
# operator-killed-at-*: the longest a client may go without an acknowledged write when the operator exits
# in the middle of a switchover or failover and its restarted container takes it up.
OPERATOR_RESTART_GAP_MS=${OPERATOR_RESTART_GAP_MS:-30000}
# stall-server: how long the primary's server is paused, and the longest a client may then go without
# an acknowledged write (the stall, plus the margin of the control-plane faults).
STALL_SECONDS=${STALL_SECONDS:-2}
STALL_GAP_MS=$(( STALL_SECONDS * 1000 + CONTROL_PLANE_GAP_MS ))

# netns_rules add|del NETNS RULE...: iptables rules (each a quoted string) in a pod's network namespace.
netns_rules() {
  local action=$1 netns=$2 rule; shift 2
  for rule in "$@"; do
    # shellcheck disable=SC2086
    ip netns exec "$netns" iptables "$( [[ $action == add ]] && echo -I || echo -D )" $rule || return 1
  done
}
# failpoint arm|disarm POD NAME: make POD's instance manager fail the call NAME (a build with failpoints,
# crates/instance/src/failpoint.rs): a line in the file cnredis-failpoints of its data directory.
failpoint() {
  local action=$1 pod=$2 name=$3 pid file
  pid=$(manager_pid "$pod"); [[ -n $pid ]] || return 1
  file=/proc/$pid/root/data/cnredis-failpoints
  if [[ $action == arm ]]; then echo "$name" >>"$file"; else rm -f "$file"; fi
}
# apiserver_pid: the local cluster's kube-apiserver, which a scenario pauses (SIGSTOP) and resumes.
apiserver_pid() { cat "$DIR/pids/kube-apiserver.pid"; }
# A primary cut from everything but itself: every packet in and out of its network namespace but loopback.
CUT_OFF=("INPUT ! -i lo -j DROP" "OUTPUT ! -o lo -j DROP")
# A probe line is written when its round ends: up to three calls of at most 0.5 s after it asked.
PROBE_ROUND_MS=1500

offsets() { k get rcl "$C" -o jsonpath='{range .status.instancesStatus[*]}{.name}={.replicationOffset} {end}'; }

echo "== failover suite: $SCENARIOS"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
# The failover settings a user gets (delaySeconds 3, primaryLeaseSeconds 6); FAILOVER_SPEC overrides
# them, e.g. FAILOVER_SPEC='failover: {delaySeconds: 2}'.
apply_cluster "$NS" "$C" rdb "${FAILOVER_SPEC:-}"
wait_until "3 instances Ready" 240 cluster_ready || exit 1
probe_loop & probe=$!

# operator_leads: the one operator pod holds the leader Lease. A replaced operator stands by until the
# Lease of the pod it replaced runs out; a scenario started before would measure that wait.
operator_leads() {
  local pods holder
  pods=$("$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[*].metadata.name}')
  holder=$("$KUBECTL" -n cnredis-system get lease cnredis-operator-leader -o jsonpath='{.spec.holderIdentity}')
  [[ -n $holder && $pods == "$holder" ]] || { echo "operator pods: $pods; leader: ${holder:-none}"; return 1; }
}

# server_cli POD ARGS...: a command to the server of POD, from inside its network namespace, with the
# cluster's password; its output without carriage returns.
server_cli() {
  local pod=$1; shift
  [[ -n ${server_password:-} ]] || server_password=$(k get secret "$C-app" -o jsonpath='{.data.password}' | base64 -d)
  REDISCLI_AUTH=$server_password timeout 2 ip netns exec "$(netns_of "$pod")" "$CLI" -h 127.0.0.1 "$@" 2>/dev/null | tr -d '\r'
}

# operator_restarts: how many times the kubelet restarted the operator's container.
operator_restarts() {
  "$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[*].status.containerStatuses[0].restartCount}'
}
# operator_stood_down: how many times the operator's container stood down (its log, all processes of it).
operator_stood_down() {
  "$KUBECTL" -n cnredis-system logs deploy/cnredis 2>/dev/null | grep -c "standing down"
}

# operator_off NODE: the operator runs on another node than NODE (freeze-node stops the primary's node;
# an operator stopped with it is operator-down's case, and would wait for its pod to be evicted).
operator_off() {
  local ops=(-n cnredis-system) on
  on=$("$KUBECTL" "${ops[@]}" get pods -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[*].spec.nodeName}')
  [[ $on == *"$1"* ]] || return 0
  "$KUBECTL" cordon "$1" >/dev/null
  "$KUBECTL" "${ops[@]}" delete pods -l app.kubernetes.io/name=cnredis --wait=true >/dev/null
  "$KUBECTL" "${ops[@]}" rollout status deploy/cnredis --timeout=120s >/dev/null
  wait_until "the new operator leads" 60 operator_leads
  "$KUBECTL" uncordon "$1" >/dev/null
  echo "  (the operator moved off $1 to $("$KUBECTL" "${ops[@]}" get pods -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[*].spec.nodeName}'))"
}

for scenario in $SCENARIOS; do
  [[ $scenario == forged-primary-pod ]] && continue # after the loop
  echo "== $scenario"
  old=$(primary); node=$(node_of "$old")
  [[ $scenario == freeze-node || $scenario == power-off-node ]] && operator_off "$node"
  writer_node=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -vx "$node" | head -1)
  round=$((${round:-0} + 1)); w="w-$(date +%H%M%S)-$round-$scenario"
  start_writer "$w" "$writer_node"
  writing() { (( $(acks "$w") >= 20 )) || { echo "acks: $(acks "$w"); $(k get pod "$w" -o jsonpath='{.status.phase}')"; return 1; }; }
  wait_until "writer acknowledged 20 writes" 60 writing || continue
  # The probe saw the old primary, and only it, take writes just before the fault: a probe that sees
  # nothing would pass "never two writable primaries" blind.
  seen_before() { awk -v now="$(date +%s%3N)" -v p="$old" '$1 >= now - 3000 && NF == 2 && $2 == p' "$WORK/probe.log" | grep -q . || { echo "last probe lines: $(tail -2 "$WORK/probe.log" | tr '\n' ';')"; return 1; }; }
  wait_until "the probe sees $old alone writable" 15 seen_before || fail "$scenario: the probe never saw $old writable before the fault"
  # The old primary pings its replicas every second (the engines' default: 10 s) until a fence stops
  # it: a PING sent by a fenced primary after the failover's choice would leave a replica ahead of the
  # one promoted, resynced in full (checked below), and one a second makes that likely.
  server_cli "$old" CONFIG SET repl-ping-replica-period 1 >/dev/null || echo "  (could not set the ping period of $old)"
  before_offsets=$(offsets)
  # Each pod's uid and container restarts: a replica restarted since (moved back by the spread of
  # instances once a node returns, say) comes back with an empty master_replid2, as if resynced in full.
  before_pods=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}/{.status.containerStatuses[0].restartCount} {end}')
  before_failover=$(k get rcl "$C" -o jsonpath='{.status.lastFailover.completed}')
  fault_ms=$(date +%s%3N)
  expect_failover=yes
  case $scenario in
    delete-pod) k delete pod "$old" --wait=false >/dev/null ;;
    kill-server)
      # The server is a child of the instance manager, which restarts it at once, isolated: its RDB may
      # be behind the replicas, so the operator fails over (reason RestartedPrimary).
      pid=$(server_pid "$old")
      [[ -n $pid ]] && kill -9 "$pid" && ok "killed valkey-server ($pid) of $old" || fail "no valkey-server process of $old" ;;
    kill-manager) chaos "$node" kill-container "$NS" "$old" server ;;
    operator-down)
      # The primary fails while no operator runs: the new one fails over once it is up.
      "$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=0 >/dev/null
      no_operator() { [[ -z $("$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o name) ]]; }
      wait_until "$scenario: operator stopped" 60 no_operator
      k delete pod "$old" --wait=true >/dev/null
      ok "$scenario: $old deleted while no operator runs"
      "$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=1 >/dev/null ;;
    full-restart) k delete pods -l "cnredis.io/cluster=$C" --wait=false >/dev/null ;;
    cut-network) chaos "$node" cut-network "$NS" "$old" ;;
    # Power loss: every process of the node dies at once and its heartbeats stop, until it comes back.
    power-off-node) chaos "$node" stop-node --mode kill ;;
    lose-volume)
      # The primary's data is gone for good: its PVC (so its volume) and its pod are deleted. A new instance
      # replaces it, on a new, empty volume, and syncs from the new primary.
      k delete pvc "$old" --wait=false >/dev/null && k delete pod "$old" --wait=false >/dev/null
      ok "$scenario: deleted the PVC and the pod of $old" ;;
    switchover)
      # A planned switchover (what a rolling update does, or a user patching targetPrimary), measured as the
      # client sees it: from the patch to writes acknowledged by the new primary through -leader.
      target=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
      k patch rcl "$C" --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$target\"}}" >/dev/null
      ok "$scenario: switchover to $target asked"
      expect_failover=switchover ;;
    switchover-kill-target)
      # A planned switchover whose target's server is killed as it starts: the restarted target follows
      # the fenced primary, catches up, and the switchover completes; no acknowledged write is lost.
      target=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
      pid=$(server_pid "$target")
      k patch rcl "$C" --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$target\"}}" >/dev/null
      [[ -n $pid ]] && kill -9 "$pid" && ok "$scenario: switchover to $target asked, its valkey-server ($pid) killed" \
        || fail "$scenario: no valkey-server process of $target"
      expect_failover=switchover ;;
    apiserver-down|apiserver-down-long)
      # The whole control plane down: the API server paused (every call to it hangs, as when it or etcd
      # is stuck) for CONTROL_PLANE_FAULT_SECONDS (LONG_OUTAGE_SECONDS), held as a fault for that long.
      # Nothing may fail over.
      seconds=$CONTROL_PLANE_FAULT_SECONDS; [[ $scenario == apiserver-down-long ]] && seconds=$LONG_OUTAGE_SECONDS
      apiserver=$(apiserver_pid) restarts=$(operator_restarts) stood_down=$(operator_stood_down)
      kill -STOP "$apiserver" && ok "$scenario: kube-apiserver ($apiserver) paused for ${seconds}s" \
        || fail "$scenario: cannot pause kube-apiserver"
      sleep "$seconds"
      kill -CONT "$apiserver"; resumed_ms=$(date +%s%3N)
      echo "  kube-apiserver resumed; acknowledged writes so far: $(acks "$w")"
      if [[ $scenario == apiserver-down-long ]]; then
        # The operator cannot renew its leader Lease for 120 s: it stands down by restarting in place
        # (crates/controller/src/leader.rs), not by exiting into the kubelet's restart back-off, and
        # leads again soon after the API server is back.
        wait_until "$scenario: the operator leads again" 30 operator_leads \
          && echo "timing: $scenario: API server back -> operator leads: $(( $(date +%s%3N) - resumed_ms )) ms"
        (( $(operator_stood_down) > stood_down )) && ok "$scenario: the operator stood down during the outage" \
          || fail "$scenario: no 'standing down' in the operator's log"
        [[ $(operator_restarts) == "$restarts" ]] && ok "$scenario: the operator's container never exited (restarts: $restarts)" \
          || fail "$scenario: the operator's container exited (restarts: $restarts -> $(operator_restarts))"
      fi
      expect_failover=no ;;
    apiserver-down-then-primary-cut)
      # Two faults at once: the API server down, then the primary cut off from everything. Its failsafe
      # hold ends with the first round of promises nobody answers, so it fences itself; nobody can take
      # the lease until the API server is back, then the operator fails over. Writes stop meanwhile:
      # that is the price of never having two primaries.
      apiserver=$(apiserver_pid); netns=$(netns_of "$old")
      kill -STOP "$apiserver" && ok "$scenario: kube-apiserver ($apiserver) paused" || fail "$scenario: cannot pause kube-apiserver"
      sleep 5
      netns_rules add "$netns" "${CUT_OFF[@]}" && ok "$scenario: $old cut off from everything, with the API server down" \
        || fail "$scenario: cannot cut $old off"
      sleep "$CONTROL_PLANE_FAULT_SECONDS"
      kill -CONT "$apiserver"
      echo "  kube-apiserver resumed after $(( ($(date +%s%3N) - fault_ms) / 1000 )) s; acknowledged writes so far: $(acks "$w")" ;;
    replica-cut-off)
      # A replica cut off from everything: the writer's WAIT 1 is met by the other replica, nothing
      # fails over, and the replica catches up once it is back.
      replica=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
      netns=$(netns_of "$replica")
      netns_rules add "$netns" "${CUT_OFF[@]}" && ok "$scenario: $replica cut off for ${CONTROL_PLANE_FAULT_SECONDS}s" \
        || fail "$scenario: cannot cut $replica off"
      sleep "$CONTROL_PLANE_FAULT_SECONDS"
      echo "  while cut off: $(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}')"
      netns_rules del "$netns" "${CUT_OFF[@]}"
      expect_failover=no ;;
    stale-target-primary)
      # A switchover asked to a replica that lags (its replication link blocked, while it still reaches
      # the API server and the operator), then the primary lost: the failover must take the replica in
      # sync, never the stale target, which would drop acknowledged writes.
      stale=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
      netns=$(netns_of "$stale"); rules=("OUTPUT ! -o lo -p tcp --dport 6379 -j DROP" "INPUT ! -i lo -p tcp --sport 6379 -j DROP")
      netns_rules add "$netns" "${rules[@]}" || fail "$scenario: cannot block the replication of $stale"
      # Out of sync once it has not heard from the primary for maxSyncReplicaLagSeconds (10 s).
      lagging() { local link lag; link=$(k get rcl "$C" -o jsonpath="{.status.instancesStatus[?(@.name==\"$stale\")].link}"); lag=$(k get rcl "$C" -o jsonpath="{.status.instancesStatus[?(@.name==\"$stale\")].lagSeconds}"); [[ $link != up ]] || ((${lag:-0} > 10)) || { echo "link $link, lagSeconds ${lag:-?}"; return 1; }; }
      wait_until "$scenario: $stale out of sync" 60 lagging
      k patch rcl "$C" --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$stale\"}}" >/dev/null
      waiting() { k get rcl "$C" -o jsonpath='{.status.phaseReason}' | grep -q "waiting for $stale"; }
      wait_until "$scenario: the switchover to $stale waits for it" 30 waiting
      fault_ms=$(date +%s%3N)
      k delete pod "$old" --wait=false >/dev/null && ok "$scenario: $old deleted while targetPrimary names the lagging $stale" ;;
    operator-killed-at-*)
      # The operator exits at one step of a switchover or of a failover (a failpoint compiled into the
      # tests' build, crates/controller/src/failpoint.rs), as if killed there; its restarted container
      # must take the switchover or failover up from the status, the Lease and the labels.
      step=${scenario#operator-killed-at-}
      # The kubelet restarts an exited container at once only the first time, then after a back-off
      # that doubles at every exit (10 s, 20 s, 40 s, ...). So it starts from a pod whose container
      # never exited.
      if [[ $(operator_restarts) != 0 ]]; then
        "$KUBECTL" -n cnredis-system delete pods -l app.kubernetes.io/name=cnredis --wait=true >/dev/null
        "$KUBECTL" -n cnredis-system rollout status deploy/cnredis --timeout=120s >/dev/null
        wait_until "$scenario: a fresh operator pod leads" 60 operator_leads
      fi
      k annotate rcl "$C" "cnredis.io/failpoint-exit=$step" --overwrite >/dev/null
      if [[ $step == switchover-* ]]; then
        target=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
        k patch rcl "$C" --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$target\"}}" >/dev/null
        ok "$scenario: switchover to $target asked, the operator to exit at $step"
        expect_failover=switchover
      else
        k delete pod "$old" --wait=false >/dev/null
        ok "$scenario: $old deleted, the operator to exit at $step"
      fi ;;
    switchover-promote-fails)
      # A switchover whose target cannot be promoted (its instance manager fails the call, after the
      # lease moved to it): the switchover is rolled back within its bound and the old primary takes
      # writes again; nothing is left without a primary.
      target=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
      failpoint arm "$target" promote || fail "$scenario: cannot arm the failpoint of $target"
      k patch rcl "$C" --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$target\"}}" >/dev/null
      ok "$scenario: switchover to $target asked, its promotion made to fail"
      expect_failover=rollback ;;
    switchover-demote-fails)
      # A switchover whose old primary fails its demotion call: the target is the primary at once, and
      # the old one follows it by itself, from the status.
      target=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[0].metadata.name}')
      failpoint arm "$old" demote || fail "$scenario: cannot arm the failpoint of $old"
      k patch rcl "$C" --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$target\"}}" >/dev/null
      ok "$scenario: switchover to $target asked, the demotion of $old made to fail"
      expect_failover=switchover ;;
    primary-cut-from-apiserver)
      # Only the primary loses the API server (its packets to it are dropped: the kubernetes Service on
      # 443 and the server's own 6443); its replicas and clients still reach it.
      netns=$(netns_of "$old")
      rules=("OUTPUT -p tcp --dport 443 -j DROP" "OUTPUT -p tcp --dport 6443 -j DROP")
      netns_rules add "$netns" "${rules[@]}" && ok "$scenario: $old cut from the API server for ${CONTROL_PLANE_FAULT_SECONDS}s" \
        || fail "$scenario: cannot cut $old from the API server"
      sleep "$CONTROL_PLANE_FAULT_SECONDS"
      echo "  $old while cut off: $(curl -sk --max-time 2 "https://$(primary_ip):8000/v1/status" | grep -o '"lease":"[a-zA-Z]*"')"
      netns_rules del "$netns" "${rules[@]}"
      expect_failover=no ;;
    primary-cut-from-control-plane)
      netns=$(netns_of "$old")
      operator_ip=$("$KUBECTL" -n cnredis-system get pod -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[0].status.podIP}')
      rules=("OUTPUT -p tcp --dport 443 -j DROP" "OUTPUT -p tcp --dport 6443 -j DROP" "INPUT -s $operator_ip -j DROP" "OUTPUT -d $operator_ip -j DROP")
      netns_rules add "$netns" "${rules[@]}" && ok "$scenario: $old cut from the API server and the operator ($operator_ip), not from its replicas" \
        || fail "$scenario: cannot cut $old" ;;
    operator-cut-from-primary)
      # Only the operator loses the primary (every packet between them dropped in the primary's network
      # namespace); the primary still reaches the API server, its replicas and its clients.
      netns=$(netns_of "$old")
      operator_ip=$("$KUBECTL" -n cnredis-system get pod -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[0].status.podIP}')
      rules=("INPUT -s $operator_ip -j DROP" "OUTPUT -d $operator_ip -j DROP")
      netns_rules add "$netns" "${rules[@]}" && ok "$scenario: the operator ($operator_ip) cut from $old for ${CONTROL_PLANE_FAULT_SECONDS}s" \
        || fail "$scenario: cannot cut the operator from $old"
      sleep "$CONTROL_PLANE_FAULT_SECONDS"
      echo "  while cut off: $(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}; primaryFailing: {.status.primaryFailing.reason}')"
      netns_rules del "$netns" "${rules[@]}"
      expect_failover=no ;;
    stall-server)
      # The server stops answering for a moment (SIGSTOP), as in a long fork or `DEBUG SLEEP`: its
      # instance manager's commands and the operator's status calls time out meanwhile, but nothing may
      # fail over. The writer's WAIT keeps its connection; writes resume as soon as the server does.
      pid=$(server_pid "$old")
      [[ -n $pid ]] && kill -STOP "$pid" && ok "$scenario: valkey-server ($pid) of $old paused for ${STALL_SECONDS}s" \
        || fail "$scenario: no valkey-server process of $old"
      sleep "$STALL_SECONDS"
      kill -CONT "$pid"
      expect_failover=no ;;
    force-delete-on-lost-node)
      # The primary's kubelet is gone (crashed, or cut from the API server) while its pods run on, and
      # the pod is force-deleted, as one does to get a pod of a lost node rescheduled: the object is gone
      # at once, its processes are not. The pod's disappearance proves nothing of them: the operator must
      # fence them at their last address or wait for the lease.
      chaos "$node" stop-node --mode kubelet
      not_ready() { local ready; ready=$("$KUBECTL" get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'); [[ $ready != True ]] || { echo "$node Ready: $ready"; return 1; }; }
      wait_until "$scenario: $node NotReady" 90 not_ready
      fault_ms=$(date +%s%3N)
      k delete pod "$old" --grace-period=0 --force >/dev/null 2>&1 && ok "$scenario: $old force-deleted on NotReady $node, its processes running" \
        || fail "$scenario: cannot force-delete $old" ;;
    pause-manager)
      # The primary's instance manager stops (SIGSTOP: hung, or starved) while its server runs on: no
      # renewal, no watchdog. The lease lapses and the operator fails over; the old server must not go on
      # taking writes beside the new primary.
      pid=$(manager_pid "$old")
      [[ -n $pid ]] && kill -STOP "$pid" && ok "$scenario: the instance manager ($pid) of $old paused" \
        || fail "$scenario: no instance manager process of $old" ;;
    freeze-node)
      # A client connected to the primary has a write waiting in its socket when the node freezes
      # (stale-writes.py): how long does the server, once resumed, take writes before its watchdog fences it?
      netns=$(netns_of "$old")
      chaos "$node" stop-node --mode freeze
      REDISCLI_AUTH=$(k get secret "$C-app" -o jsonpath='{.data.password}' | base64 -d) STALE_WRITES_DEADLINE=20 \
        timeout 150 ip netns exec "$netns" python3 "$E2E/failover/stale-writes.py" 6379 >"$WORK/stale.log" 2>&1 &
      stale=$!
      queued() { grep -q connected "$WORK/stale.log" || { cat "$WORK/stale.log"; return 1; }; }
      wait_until "$scenario: a client connection waits on the frozen $old" 10 queued ;;
  esac
  if [[ $expect_failover == yes ]]; then
    moved() { local p; p=$(primary); [[ -n $p && $p != "$old" ]] && k get pod "$p" -o jsonpath='{.metadata.labels.cnredis\.io/role}' | grep -qx primary || { echo "primary: $p; $(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}')"; return 1; }; }
    wait_until "$scenario: failed over from $old" 90 moved && echo "timing: $scenario: fault -> new primary labelled: $(( $(date +%s%3N) - fault_ms )) ms (operator-observed)"
  elif [[ $expect_failover == switchover ]]; then
    # A switchover whose target was killed waits for it to be back in sync, so the cluster can look Ready
    # (still on the old primary) before the switchover has even begun: wait for its end, not for Ready.
    switched() { local p; p=$(primary); [[ $p == "$target" ]] && k get pod "$p" -o jsonpath='{.metadata.labels.cnredis\.io/role}' | grep -qx primary || { echo "primary: $p; $(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}')"; return 1; }; }
    wait_until "$scenario: switched over to $target" 90 switched
  elif [[ $expect_failover == rollback ]]; then
    rolled_back() { [[ $(k get rcl "$C" -o jsonpath='{.status.targetPrimary}') == "$old" ]] && k get events --field-selector "involvedObject.name=$C,reason=SwitchoverFailed" -o jsonpath='{.items[*].message}' | grep -q "$target could not be promoted" || { echo "targetPrimary: $(k get rcl "$C" -o jsonpath='{.status.targetPrimary}'); $(k get rcl "$C" -o jsonpath='{.status.phase}: {.status.phaseReason}')"; return 1; }; }
    wait_until "$scenario: the switchover to $target rolled back" 60 rolled_back \
      && echo "timing: $scenario: asked -> rolled back: $(( $(date +%s%3N) - fault_ms )) ms (operator-observed)"
    failpoint disarm "$target" promote
  fi
  grace_pod="" grace_until=0
  case $scenario in
    cut-network) chaos "$node" restore-network "$NS" "$old" ;;
    force-delete-on-lost-node)
      proof=$(k get rcl "$C" -o jsonpath='{.status.lastFailover.fenceProof}')
      [[ $proof != PodGone ]] && ok "$scenario: the fence was proven otherwise than by the pod's absence ($proof)" \
        || fail "$scenario: a force-deleted pod was taken for stopped (fenceProof $proof)"
      chaos "$node" start-node ;;
    pause-manager)
      kill -CONT "$pid"
      fenced=$(k get events --field-selector "involvedObject.name=$C,reason=PrimaryFenced" -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep "^$old takes" | tail -1)
      [[ $fenced == *"fenced by the operator"* ]] && ok "$scenario: the operator fenced the server of $old itself ($fenced)" \
        || fail "$scenario: the operator did not fence the server of $old: ${fenced:-no PrimaryFenced Event}" ;;
    primary-cut-from-control-plane) netns_rules del "$netns" "${rules[@]}" ;;
    apiserver-down-then-primary-cut) netns_rules del "$netns" "${CUT_OFF[@]}" ;;
    stale-target-primary)
      netns_rules del "$netns" "${rules[@]}"
      [[ $(primary) != "$stale" ]] && ok "$scenario: the failover took $(primary), not the lagging target $stale" \
        || fail "$scenario: the lagging $stale was promoted" ;;
    operator-killed-at-*)
      # Only the failpoint removes the annotation, and it exits right after: its container restarted
      # and took the switchover or failover up.
      exited() { local a; a=$(k get rcl "$C" -o jsonpath='{.metadata.annotations.cnredis\.io/failpoint-exit}'); [[ -z $a ]] || { echo "annotation: '$a'"; return 1; }; }
      wait_until "$scenario: the operator exited at $step" 10 exited ;;
    switchover-demote-fails)
      failpoint disarm "$old" demote
      completed=$(k get events --field-selector "involvedObject.name=$C,reason=SwitchoverCompleted" -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep "^$target is the primary" | tail -1)
      [[ $completed == *"did not answer its demotion"* ]] && ok "$scenario: completed without the demotion call ($completed)" \
        || fail "$scenario: the demotion failpoint was not hit: ${completed:-no SwitchoverCompleted Event}"
      follows() { local role; role=$(k get rcl "$C" -o jsonpath="{.status.instancesStatus[?(@.name==\"$old\")].role}"); [[ $role == replica ]] || { echo "$old is '$role'"; return 1; }; }
      wait_until "$scenario: $old follows $target by itself" 60 follows ;;
    power-off-node) chaos "$node" start-node ;;
    freeze-node)
      chaos "$node" start-node
      grace_pod=$old grace_until=$(( $(date +%s%3N) + RESUME_GRACE_MS + PROBE_ROUND_MS ))
      wait "$stale"
      result=$(tail -1 "$WORK/stale.log")
      window=$(sed -n 's/.*window_ms=\([0-9]*\).*/\1/p' <<<"$result")
      echo "timing: $scenario: the resumed primary took writes for ${window:-?} ms before its fence ($result)"
      [[ -n $window && $result =~ end=(NOREPLICAS|READONLY|closed) && $window -le $RESUME_GRACE_MS ]] \
        && ok "$scenario: the resumed $old refused writes within ${RESUME_GRACE_MS} ms" \
        || fail "$scenario: the resumed $old kept taking writes: $result" ;;
  esac
  # The writer sees the new primary through -leader before the cluster is whole again.
  more_acks=$(( $(acks "$w") + 20 ))
  writing_again() { (( $(acks "$w") >= more_acks )) || { echo "acks: $(acks "$w")"; return 1; }; }
  wait_until "$scenario: writes acknowledged again" 90 writing_again
  wait_until "$scenario: cluster Ready again, every instance in sync" 180 cluster_ready
  new=$(primary)
  if [[ $expect_failover == yes ]]; then
    [[ $new != "$old" ]] && ok "$scenario: $new replaced $old" || fail "$scenario: $old is still the primary"
    record=$(k get rcl "$C" -o jsonpath='{.status.lastFailover.from}>{.status.lastFailover.to} {.status.lastFailover.reason} {.status.lastFailover.fenceProof} {.status.lastFailover.writeUnavailableMs}ms')
    echo "  lastFailover: $record; offsets before the fault: $before_offsets"
    # Counted by the operator that completed it (not after operator-killed-at-*: its process restarted).
    [[ $scenario == operator-killed-at-* ]] || {
    operator_ip=$("$KUBECTL" -n cnredis-system get pod -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[0].status.podIP}')
    counted=$(curl -s "http://$operator_ip:8080/metrics" | grep '^cnredis_failovers_completed_total')
    [[ -n $counted ]] && ok "$scenario: metrics: $(tr '\n' ' ' <<<"$counted")" || fail "$scenario: no cnredis_failovers_completed_total metric"
    }
    old_is_replica() { local role; role=$(k get rcl "$C" -o jsonpath="{.status.instancesStatus[?(@.name==\"$old\")].role}"); [[ $role == replica ]] || { echo "$old is '$role'"; return 1; }; }
    # An instance whose pod and volume are both gone is replaced by a new one (the next serial).
    old_replaced() { [[ -z $(k get pod "$old" -o name 2>/dev/null) && $(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o name | wc -l) == 2 ]] || { echo "pods: $(k get pods -l "cnredis.io/cluster=$C" -o name | tr '\n' ' ')"; return 1; }; }
    if [[ $scenario == lose-volume ]]; then
      wait_until "$scenario: $old replaced by a new instance, a replica" 60 old_replaced
    else
      wait_until "$scenario: the old primary $old is a replica" 60 old_is_replica
    fi
    # Was the promoted replica the most advanced? Then the other replica continued from it by a partial
    # resynchronisation (it shares the new primary's master_replid2); one ahead of it was resynced in full.
    # Judged only for a replica that did not restart meanwhile (a restart clears master_replid2 too), and
    # not where the third instance lagged on purpose (stale-target-primary).
    third=$(tr ' ' '\n' <<<"$before_offsets" | cut -d= -f1 | grep . | grep -vx -e "$old" -e "$new" | head -1)
    if [[ $scenario != stale-target-primary && -n $third ]]; then
      now_pods=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}/{.status.containerStatuses[0].restartCount} {end}')
      was=$(tr ' ' '\n' <<<"$before_pods" | grep "^$third=") is=$(tr ' ' '\n' <<<"$now_pods" | grep "^$third=")
      if [[ -z $was || $was != "$is" ]]; then
        echo "  resync: $third restarted or was replaced ($was -> ${is:-gone}): not judged"
      else
        replid2() { server_cli "$1" INFO replication | sed -n 's/^master_replid2://p'; }
        a=$(replid2 "$third"); b=$(replid2 "$new")
        [[ -n $a && $a == "$b" && $a != 0000000000000000000000000000000000000000 ]] \
          && ok "$scenario: $third continued from $new by a partial resync" \
          || fail "$scenario: $third, never restarted, was resynced in full from $new (master_replid2 '$a', of $new '$b'): it was ahead of $new"
      fi
    fi
  elif [[ $expect_failover == no ]]; then
    [[ $new == "$old" ]] && ok "$scenario: no failover, $old kept its role and data" || fail "$scenario: failed over to $new"
    last_failover=$(k get rcl "$C" -o jsonpath='{.status.lastFailover.completed}')
    [[ $last_failover == "$before_failover" ]] && ok "$scenario: no failover started or completed (lastFailover: ${last_failover:-none})" \
      || fail "$scenario: a failover completed at $last_failover ($(k get rcl "$C" -o jsonpath='{.status.lastFailover}'))"
  elif [[ $expect_failover == rollback ]]; then
    [[ $new == "$old" ]] && ok "$scenario: $old is still the primary after the rollback" || fail "$scenario: the primary is $new"
  elif [[ $expect_failover == switchover ]]; then
    [[ $new == "$target" ]] && ok "$scenario: the switchover to $target completed" \
      || fail "$scenario: the primary is $new, not $target: $(k get events --field-selector "involvedObject.name=$C,reason=SwitchoverFailed" -o jsonpath='{.items[*].message}')"
  fi
  # Offsets never regress: every instance is now past the highest offset any had before the fault.
  before_max=$(tr ' ' '\n' <<<"$before_offsets" | cut -d= -f2 | sort -n | tail -1)
  after_min=$(offsets | tr ' ' '\n' | grep = | cut -d= -f2 | sort -n | head -1)
  ((after_min >= before_max)) && ok "$scenario: replication offsets moved on ($before_max before, lowest now $after_min)" \
    || fail "$scenario: an offset regressed: before $before_offsets, now $(offsets)"
  # From the last probe round before the fault: the old primary's offset then is the floor.
  regressions=$(offset_regressions "$((fault_ms - 1000))" "$grace_pod" "$grace_until")
  [[ -z $regressions ]] && ok "$scenario: the writable primary's offset never went back ($(awk -v f="$((fault_ms - 1000))" '$1 >= f' "$WORK/offsets.log" | wc -l) samples)" \
    || fail "$scenario: a writable primary's offset went back: $(head -3 <<<"$regressions")"
  stop_writer "$w"
  summary=$(tail -1 "$WORK/$w.log")
  if [[ $summary == acknowledged=*missing=0 ]]; then ok "$scenario: no acknowledged write lost ($summary)"; else fail "$scenario: writer: $(tail -3 "$WORK/$w.log")"; fi
  gap=$(longest_gap "$w" "$((fault_ms - 5000))")
  echo "timing: $scenario: longest gap between acknowledged writes: $gap ms; in it: $(gap_attempts "$w" "$((fault_ms - 5000))")"
  # A switchover refuses writes only while the old primary is fenced and its target catches up: a target
  # that drops out meanwhile (switchover-kill-target) interrupts it at once, it does not hold writes back.
  if [[ $expect_failover == switchover && $scenario != operator-killed-at-* ]]; then
    ((gap <= SWITCHOVER_GAP_MS)) && ok "$scenario: writes refused for at most ${SWITCHOVER_GAP_MS} ms at a stretch ($gap ms)" \
      || fail "$scenario: writes refused for $gap ms at a stretch (bound ${SWITCHOVER_GAP_MS} ms): $(k get events --field-selector "involvedObject.name=$C" -o jsonpath='{range .items[*]}{.reason}: {.message}{"\n"}{end}' | grep -i switchover | tail -4)"
  fi
  if [[ $scenario == operator-killed-at-* ]]; then
    ((gap <= OPERATOR_RESTART_GAP_MS)) && ok "$scenario: writes refused for at most ${OPERATOR_RESTART_GAP_MS} ms at a stretch ($gap ms)" \
      || fail "$scenario: writes refused for $gap ms at a stretch (bound ${OPERATOR_RESTART_GAP_MS} ms)"
  elif [[ $expect_failover == rollback ]]; then
    ((gap <= ROLLBACK_GAP_MS)) && ok "$scenario: writes refused for at most ${ROLLBACK_GAP_MS} ms at a stretch ($gap ms)" \
      || fail "$scenario: writes refused for $gap ms at a stretch (bound ${ROLLBACK_GAP_MS} ms)"
  elif [[ $scenario == stall-server ]]; then
    ((gap <= STALL_GAP_MS)) && ok "$scenario: writes resumed after the ${STALL_SECONDS}s stall (longest gap $gap ms, bound ${STALL_GAP_MS} ms)" \
      || fail "$scenario: writes stopped for $gap ms at a stretch (bound ${STALL_GAP_MS} ms)"
  elif [[ $expect_failover == no ]]; then
    ((gap <= CONTROL_PLANE_GAP_MS)) && ok "$scenario: writes never stopped for more than ${CONTROL_PLANE_GAP_MS} ms ($gap ms)" \
      || fail "$scenario: writes stopped for $gap ms at a stretch (bound ${CONTROL_PLANE_GAP_MS} ms)"
  fi
  echo "timing: $scenario: two writable primaries for $(two_primaries_ms "$fault_ms") ms (probe-observed, a resumed primary's window included)"
  doubles=$(two_primaries "$fault_ms" "$grace_pod" "$grace_until")
  apart=""; [[ -n $grace_pod ]] && apart="; $grace_pod just after resuming measured apart"
  [[ -z $doubles ]] && ok "$scenario: never two writable primaries ($(awk -v f="$fault_ms" '$1 >= f' "$WORK/probe.log" | wc -l) probes$apart)" \
    || fail "$scenario: two writable primaries: $(head -3 <<<"$doubles")"
  k delete pod "$w" --ignore-not-found --wait=false >/dev/null
  # STOP_ON_FAILURE=1: leave the cluster as the first failing scenario left it.
  [[ -n ${STOP_ON_FAILURE:-} ]] && ((failed > 0)) && break
done

touch "$WORK/probe.stop"; wait "$probe"
# The failover Events and metrics, when a scenario failed over (switchovers are not failovers).
if tr ' ' '\n' <<<"$SCENARIOS" | grep -v '^$' | grep -Eqv '^(switchover.*|operator-killed-at-switchover-.*|apiserver-down(-long)?|primary-cut-from-apiserver|operator-cut-from-primary|stall-server|replica-cut-off|forged-primary-pod)$'; then
  events=$(k get events --field-selector "involvedObject.name=$C" -o jsonpath='{range .items[*]}{.reason} {end}')
  [[ $events == *FailoverStarted* && $events == *PrimaryFenced* && $events == *FailoverCompleted* ]] \
    && ok "events: $(tr ' ' '\n' <<<"$events" | sort | uniq -c | tr -s ' \n' ' ')" || fail "events: $events"
fi
if [[ " $SCENARIOS " == *" forged-primary-pod "* ]]; then
  echo "== forged-primary-pod"
  # A pod with the cluster's label, named as the primary while the primary's pod is gone and no operator
  # runs to recreate it: each replica's manager sees the primary's address change to the forged pod's,
  # and must not replicate from it (nor send it the replication password): the instance API at that
  # address does not hold the primary's certificate (crates/instance/src/manager.rs, verify_primary).
  old=$(primary) replicas=$(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=replica" -o jsonpath='{.items[*].metadata.name}')
  "$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=0 >/dev/null
  no_operator() { [[ -z $("$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o name) ]]; }
  wait_until "forged-primary-pod: operator stopped" 60 no_operator
  k delete pod "$old" --wait=true >/dev/null
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $old, labels: {cnredis.io/cluster: $C}}
spec:
  containers:
  - {name: forged, image: 'valkey/valkey:8.1', command: [valkey-server, --port, '6379', --protected-mode, 'no']}
EOF
  forged_runs() { [[ $(k get pod "$old" -o jsonpath='{.status.phase}') == Running && -n $(k get pod "$old" -o jsonpath='{.status.podIP}') ]] || { echo "$(k get pod "$old" -o jsonpath='{.status.phase}')"; return 1; }; }
  if wait_until "forged-primary-pod: a forged $old runs" 60 forged_runs; then
    forged=$(k get pod "$old" -o jsonpath='{.status.podIP}')
    refused() {
      local r line
      for r in $replicas; do
        line=$(k logs "$r" 2>/dev/null | grep "not following $forged:6379" | tail -1)
        [[ -n $line ]] || { echo "$r: no refusal logged; master_host $(server_cli "$r" INFO replication | sed -n 's/^master_host://p')"; return 1; }
      done
    }
    wait_until "forged-primary-pod: every replica refused to follow $old at $forged" 30 refused \
      && echo "  $(k logs "${replicas%% *}" 2>/dev/null | grep -o "not following $forged:6379[^\"]*" | tail -1)"
    for r in $replicas; do
      host=$(server_cli "$r" INFO replication | sed -n 's/^master_host://p')
      [[ $host != "$forged" ]] && ok "forged-primary-pod: $r does not replicate from the forged pod (master_host $host)" \
        || fail "forged-primary-pod: $r replicates from the forged pod at $forged"
    done
  fi
  k delete pod "$old" --wait=true >/dev/null
  "$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=1 >/dev/null
  wait_until "forged-primary-pod: the cluster is Ready again" 240 cluster_ready
fi

# Kept for a look when something failed (the cluster is torn down after the suite anyway).
# KEEP_CLUSTER=1 keeps it for the next invocation (hack/bench-sentinel.sh alternates with Sentinel's).
((failed > 0)) || [[ -n ${KEEP_CLUSTER:-} ]] || k delete rcl "$C" --wait=false >/dev/null

echo
echo "$passed passed, $failed failed"
if ((failed > 0)); then
  echo "--- operator log (tail)"
  "$KUBECTL" -n cnredis-system logs deploy/cnredis --tail=80 2>&1
  k get rcl,pods -o wide 2>&1
  k get rcl "$C" -o yaml 2>&1 | sed -n '/^status:/,$p' | head -60
fi
((failed == 0))
