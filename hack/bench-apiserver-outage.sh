#!/usr/bin/env bash
# Many clusters through one API-server outage: CLUSTERS (10) RedisClusters of INSTANCES (3) instances
# on the local cluster with the operator installed (`make demo` leaves both up), a writer per cluster
# (`SET` + `WAIT 1 500` on one connection, every 200 ms, run on the host inside the primary pod's
# network namespace), then kube-apiserver paused (SIGSTOP: every call to it hangs) for OUTAGE_SECONDS
# (60). Prints, per cluster, the writes acknowledged (`WAIT` ≥ 1), the longest gap between them from
# 5 s before the outage to 10 s after it, and whether the primary changed or a failover was recorded;
# exits 1 unless every cluster kept its primary and no gap exceeded GAP_MS (2000). The clusters are
# deleted afterwards unless KEEP=1.
#
#   hack/bench-apiserver-outage.sh
#   CLUSTERS=4 OUTAGE_SECONDS=30 hack/bench-apiserver-outage.sh
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E=$ROOT/e2e
# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"
# shellcheck source=e2e/failover/common.sh
source "$E2E/failover/common.sh"
CLUSTERS=${CLUSTERS:-10}
INSTANCES=${INSTANCES:-3}
OUTAGE_SECONDS=${OUTAGE_SECONDS:-60}
GAP_MS=${GAP_MS:-2000}
NS=bench-outage
WORK=$(mktemp -d /tmp/cnredis-outage.XXXX)
k() { "$KUBECTL" -n "$NS" "$@"; }
names=$(for ((i = 1; i <= CLUSTERS; i++)); do echo "out$i"; done)

"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
for c in $names; do
  apply_cluster "$NS" "$c" rdb
  k patch rcl "$c" --type=merge -p "{\"spec\":{\"instances\":$INSTANCES}}" >/dev/null
done
all_ready() {
  local ready
  ready=$(k get rcl -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -cx True)
  ((ready == CLUSTERS)) || { echo "$ready of $CLUSTERS clusters Ready"; return 1; }
}
wait_until "$CLUSTERS clusters of $INSTANCES instances Ready" 900 all_ready || exit 1

# writer CLUSTER: one line a write, "epoch_ms ack|refused REPLY".
writer() {
  local c=$1 pod netns pw
  pod=$(k get rcl "$c" -o jsonpath='{.status.currentPrimary}')
  netns=$(netns_of "$pod")
  pw=$(k get secret "$c-app" -o jsonpath='{.data.password}' | base64 -d)
  local n=0 reply
  while [[ ! -e $WORK/stop ]]; do
    n=$((n + 1))
    reply=$(printf 'SET bench:%s %s\nWAIT 1 500\n' "$n" "$n" \
      | REDISCLI_AUTH=$pw timeout 2 ip netns exec "$netns" "$CLI" -h 127.0.0.1 2>&1 | tr '\n' ' ')
    if [[ $reply =~ ^OK\ [1-9] ]]; then echo "$(date +%s%3N) ack $reply"; else echo "$(date +%s%3N) refused $reply"; fi
    sleep 0.2
  done >"$WORK/$c.log"
}
declare -A primary_before failover_before
for c in $names; do
  primary_before[$c]=$(k get rcl "$c" -o jsonpath='{.status.currentPrimary}')
  failover_before[$c]=$(k get rcl "$c" -o jsonpath='{.status.lastFailover.completed}')
  writer "$c" &
done
acked() { for c in $names; do grep -q ' ack ' "$WORK/$c.log" 2>/dev/null || { echo "no ack yet from $c"; return 1; }; done; }
wait_until "every writer acknowledged" 30 acked || { touch "$WORK/stop"; wait; exit 1; }
sleep 5

apiserver=$(cat "$DIR/pids/kube-apiserver.pid")
start_ms=$(date +%s%3N)
kill -STOP "$apiserver" || { echo "cannot pause kube-apiserver ($apiserver)"; touch "$WORK/stop"; wait; exit 1; }
echo "kube-apiserver ($apiserver) paused for ${OUTAGE_SECONDS}s"
sleep "$OUTAGE_SECONDS"
kill -CONT "$apiserver"
end_ms=$(date +%s%3N)
echo "kube-apiserver resumed"
sleep 10
touch "$WORK/stop"; wait

status=0
printf '%-8s %8s %14s %10s  %s\n' cluster acks "longest gap" refused "primary / failover"
for c in $names; do
  from=$((start_ms - 5000)) to=$((end_ms + 10000))
  gap=$(awk -v f="$from" -v t="$to" '$2 == "ack" && $1 >= f && $1 <= t { if (last && $1 - last > g) g = $1 - last; last = $1 } END { print g + 0 }' "$WORK/$c.log")
  acks=$(awk -v f="$from" -v t="$to" '$2 == "ack" && $1 >= f && $1 <= t' "$WORK/$c.log" | wc -l)
  refused=$(awk -v f="$from" -v t="$to" '$2 == "refused" && $1 >= f && $1 <= t' "$WORK/$c.log" | wc -l)
  primary=$(k get rcl "$c" -o jsonpath='{.status.currentPrimary}')
  failover=$(k get rcl "$c" -o jsonpath='{.status.lastFailover.completed}')
  verdict="kept ${primary}"
  [[ $primary != "${primary_before[$c]}" || $failover != "${failover_before[$c]}" ]] && { verdict="FAILED OVER ${primary_before[$c]} -> $primary"; status=1; }
  ((gap > GAP_MS)) && { verdict+="; GAP over ${GAP_MS} ms"; status=1; }
  printf '%-8s %8s %11s ms %10s  %s\n' "$c" "$acks" "$gap" "$refused" "$verdict"
done
gaps=$(for c in $names; do awk -v f="$((start_ms - 5000))" -v t="$((end_ms + 10000))" '$2 == "ack" && $1 >= f && $1 <= t { if (last && $1 - last > g) g = $1 - last; last = $1 } END { print g + 0 }' "$WORK/$c.log"; done | sort -n)
echo "longest gaps (ms), sorted: $(tr '\n' ' ' <<<"$gaps")"
echo "events: $(k get events --field-selector reason=PrimaryFailsafe -o name | wc -l) PrimaryFailsafe, $(k get events --field-selector reason=PrimaryFailsafeEnded -o name | wc -l) PrimaryFailsafeEnded"
[[ -n ${KEEP:-} ]] || k delete rcl --all --wait=false >/dev/null
((status == 0)) && echo "all $CLUSTERS clusters kept taking writes" || echo "FAILED (logs in $WORK)"
exit $status
