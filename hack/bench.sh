#!/usr/bin/env bash
# Figures for docs/benchmarks.md, measured side by side in one run on the local cluster with the operator
# installed (run `make demo` or `make cluster-up` + the chart first):
#   1. apply -> Ready for 1 and 3 instances (RUNS each, alternating);
#   2. write unavailability of SWITCHOVERS switchovers on a 3-instance cluster (the operator's measure,
#      fence to promotion, from its log), p50/p99;
#   3. the operator's RSS idle and with CLUSTERS one-instance clusters;
#   4. reconcile durations p50/p99 from the operator's histogram (bucket upper bounds).
#
#   hack/bench.sh            RUNS=3 SWITCHOVERS=20 CLUSTERS=20
set -euo pipefail
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=$(ls -d "${CNREDIS_CACHE:-$HOME/.cache/cnredis}"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)
RUNS=${RUNS:-3} SWITCHOVERS=${SWITCHOVERS:-20} CLUSTERS=${CLUSTERS:-20}
NS=bench
k() { "$KUBECTL" -n "$NS" "$@"; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# quantile Q < numbers: the Q-th quantile (nearest rank) of the numbers on stdin.
quantile() { sort -n | awk -v q="$1" '{ v[NR] = $1 } END { i = int(q * NR + 0.999999); if (i < 1) i = 1; print v[i] }'; }

cluster() { # cluster NAME INSTANCES
  k apply -f - >/dev/null <<EOF
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: $1}
spec: {instances: $2, storage: {size: 50Mi}, persistence: {mode: rdb}, stopDelaySeconds: 10}
EOF
}
ready() { [[ $(k get rcl "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; }
wait_ready() { local deadline=$((SECONDS + 300)); until ready "$1"; do ((SECONDS < deadline)) || { log "$1 not Ready"; return 1; }; sleep 0.2; done; }
operator_pid() { pgrep -f 'cnredis controller' | head -1; }
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$(operator_pid)/status"; }
operator_metrics() {
  local ip; ip=$("$KUBECTL" -n cnredis-system get pod -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[0].status.podIP}')
  curl -s "http://$ip:8080/metrics"
}

"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
k delete rcl --all --wait=true >/dev/null 2>&1 || true

log "operator RSS idle"
idle_rss=$(rss_mib)

log "apply -> Ready, $RUNS runs of 1 and 3 instances"
declare -a ready1 ready3
for run in $(seq 1 "$RUNS"); do
  for n in 1 3; do
    name=ready-$n-$run
    start=$(date +%s%N); cluster "$name" "$n"; wait_ready "$name"; end=$(date +%s%N)
    ms=$(((end - start) / 1000000))
    if ((n == 1)); then ready1+=("$ms"); else ready3+=("$ms"); fi
    log "  $n instance(s): ${ms} ms"
    k delete rcl "$name" --wait=true >/dev/null
  done
done

log "$SWITCHOVERS switchovers on a 3-instance cluster"
cluster sw 3; wait_ready sw
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for i in $(seq 1 "$SWITCHOVERS"); do
  current=$(k get rcl sw -o jsonpath='{.status.currentPrimary}')
  target=$(k get pods -l cnredis.io/cluster=sw,cnredis.io/role=replica -o jsonpath='{.items[0].metadata.name}')
  k patch rcl sw --subresource=status --type=merge -p "{\"status\":{\"targetPrimary\":\"$target\"}}" >/dev/null
  deadline=$((SECONDS + 120))
  until [[ $(k get rcl sw -o jsonpath='{.status.currentPrimary}') == "$target" ]] && ready sw; do
    ((SECONDS < deadline)) || { log "switchover $i to $target did not finish"; exit 1; }
    sleep 0.2
  done
  log "  $i: $current -> $target"
done
mapfile -t unavailable < <("$KUBECTL" -n cnredis-system logs deploy/cnredis --since-time="$since" \
  | sed 's/\x1b\[[0-9;]*m//g' | grep 'switchover completed' | grep -o 'unavailable_ms=[0-9]*' | cut -d= -f2)
k delete rcl sw --wait=true >/dev/null

log "$CLUSTERS one-instance clusters"
for i in $(seq 1 "$CLUSTERS"); do cluster "many-$i" 1; done
for i in $(seq 1 "$CLUSTERS"); do wait_ready "many-$i"; done
sleep_until=$((SECONDS + 30)); while ((SECONDS < sleep_until)); do sleep 1; done # 30 s of steady reconciles
busy_rss=$(rss_mib)
metrics=$(operator_metrics)
k delete rcl --all --wait=false >/dev/null

# Reconcile duration quantiles from the cumulative histogram: the smallest bucket bound holding q of all.
histogram_quantile() {
  echo "$metrics" | grep '^cnredis_reconcile_duration_seconds_bucket' \
    | sed -E 's/.*le="([^"]+)"\} ([0-9.e+]+).*/\1 \2/' \
    | awk -v q="$1" '{ le[NR] = $1; c[NR] = $2 } END { total = c[NR]; for (i = 1; i <= NR; i++) if (c[i] >= q * total) { print le[i]; exit } }'
}
reconciles=$(echo "$metrics" | grep '^cnredis_reconciles_total' | awk '{print $2}')

cat <<EOF
apply -> Ready, 1 instance  (ms): ${ready1[*]}   median $(printf '%s\n' "${ready1[@]}" | quantile 0.5)
apply -> Ready, 3 instances (ms): ${ready3[*]}   median $(printf '%s\n' "${ready3[@]}" | quantile 0.5)
switchover write unavailability (ms, ${#unavailable[@]} runs): p50 $(printf '%s\n' "${unavailable[@]}" | quantile 0.5)  p99 $(printf '%s\n' "${unavailable[@]}" | quantile 0.99)  max $(printf '%s\n' "${unavailable[@]}" | quantile 1)
  all: ${unavailable[*]}
operator RSS: idle ${idle_rss} MiB, with $CLUSTERS clusters ${busy_rss} MiB
reconciles: $reconciles; duration p50 <= $(histogram_quantile 0.5) s, p99 <= $(histogram_quantile 0.99) s
EOF
