#!/usr/bin/env bash
# cnredis and Valkey Sentinel side by side, in one run on the local cluster with the operator installed
# (`make demo` or `make chaos` leave both up): for each round and each scenario, the cnredis failover
# suite (e2e/failover/run.sh) and then its Sentinel counterpart (e2e/sentinel/run.sh) get the same fault
# under the same writer and probe. Prints, per scenario and side, the distribution of the client's
# longest gap between acknowledged writes and of the time two servers took writes, the runs that lost
# acknowledged writes (and how many), and the runs that failed over.
#
#   hack/bench-sentinel.sh        # REPEAT=5 DOWN_AFTER_MS=2000 SCENARIOS="kill-server delete-pod cut-network freeze-node"
#   REPEAT=2 DOWN_AFTER_MS=30000 SCENARIOS=kill-server hack/bench-sentinel.sh
# (FAILOVER_TIMEOUT_MS, Sentinel's failover-timeout, is 180000 unless given: see e2e/sentinel/run.sh.)
# Sentinel's group is kept from round to round, except after the scenarios in FRESH_GROUP (default
# freeze-node): a group kept through node freezes did not come back whole after the second, so it is
# torn down and the next round builds a new one (about 15 s more per round).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEAT=${REPEAT:-5}
SCENARIOS=${SCENARIOS:-kill-server delete-pod cut-network freeze-node}
export DOWN_AFTER_MS=${DOWN_AFTER_MS:-2000} FAILOVER_TIMEOUT_MS=${FAILOVER_TIMEOUT_MS:-180000}
LOG=${LOG:-/tmp/cnredis-bench-sentinel}
FRESH_GROUP=${FRESH_GROUP-freeze-node}
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

# SUMMARY_ONLY=1: only the summary, of the logs an earlier (possibly interrupted) run left.
if [[ -z ${SUMMARY_ONLY:-} ]]; then
  : >"$LOG.cnredis.log"; : >"$LOG.sentinel.log"
  for ((i = 0; i < REPEAT; i++)); do
    for scenario in $SCENARIOS; do
      KEEP_CLUSTER=1 SCENARIOS=$scenario "$ROOT/e2e/failover/run.sh" >>"$LOG.cnredis.log" 2>&1
      keep=1; [[ " $FRESH_GROUP " == *" $scenario "* ]] && keep=""
      KEEP_GROUP=$keep SCENARIOS=$scenario "$ROOT/e2e/sentinel/run.sh" >>"$LOG.sentinel.log" 2>&1
    done
  done
fi

echo "REPEAT=$REPEAT SCENARIOS=\"$SCENARIOS\" DOWN_AFTER_MS=$DOWN_AFTER_MS FAILOVER_TIMEOUT_MS=$FAILOVER_TIMEOUT_MS ($(date -u +%F), logs $LOG.*.log)"
for scenario in $SCENARIOS; do
  echo "== $scenario"
  for side in cnredis sentinel; do
    log=$LOG.$side.log
    mapfile -t gaps < <(grep -oP "^timing: $scenario: longest gap between acknowledged writes: \K[0-9]+" "$log")
    mapfile -t doubles < <(grep -oP "^timing: $scenario: two writable primaries for \K[0-9]+" "$log")
    if [[ $side == cnredis ]]; then
      writes=$(grep -P "^(ok: $scenario: no acknowledged write lost|FAIL: $scenario: writer)" "$log" | grep -oP 'acknowledged=[0-9]+ missing=[0-9]+')
      failovers=$(grep -c "^ok: $scenario: .* replaced" "$log")
    else
      writes=$(grep "^sentinel: $scenario: primary" "$log" | grep -oP 'acknowledged=[0-9]+ missing=[0-9]+')
      failovers=$(grep "^sentinel: $scenario: primary" "$log" | tr -d ';' | awk '$4 != $6' | wc -l)
    fi
    distribution "$side: $scenario: client longest gap" "${gaps[@]}"
    distribution "$side: $scenario: two writable primaries" "${doubles[@]}"
    echo "  $side: runs that failed over: $failovers of ${#gaps[@]};" \
      "runs that lost acknowledged writes: $(grep -c 'missing=[1-9]' <<<"$writes");" \
      "lost/acknowledged: $(awk -F'[= ]' '{ a += $2; m += $4 } END { print m + 0 "/" a + 0 }' <<<"$writes")"
  done
done
grep -E '^[0-9]+ passed' "$LOG.cnredis.log" | awk '{ p += $1; f += $3 } END { print "cnredis suite: " p " passed, " f " failed" }'
grep -E '^[0-9]+ passed' "$LOG.sentinel.log" | awk '{ p += $1; f += $3 } END { print "Sentinel suite (harness checks): " p " passed, " f " failed" }'
