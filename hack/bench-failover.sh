#!/usr/bin/env bash
# Client-observed failover figures: runs the chaos suite (e2e/failover/run.sh) REPEAT times per scenario
# on the local cluster with the operator installed (`make demo` or `make chaos` leave both up), and
# prints, per scenario, the distribution of the writer's longest gap between acknowledged writes and of
# the operator's record (first failing poll -> promotion), plus the invariant violations counted.
#
#   hack/bench-failover.sh                      # REPEAT=20 SCENARIOS="delete-pod kill-server"
#   REPEAT=5 SCENARIOS="cut-network freeze-node" hack/bench-failover.sh
#   SEED=7 REPEAT=20 SCENARIOS="..." hack/bench-failover.sh   # the same runs, in a random order
#   SUMMARY_ONLY=1 hack/bench-failover.sh       # the summary of the last log (e.g. of an interrupted run)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEAT=${REPEAT:-20}
SCENARIOS=${SCENARIOS:-delete-pod kill-server}
LOG=${LOG:-/tmp/cnredis-bench-failover.log}

runs=""
for ((i = 0; i < REPEAT; i++)); do runs+="$SCENARIOS "; done
if [[ -n ${SEED:-} ]]; then
  # Shuffled (Fisher-Yates), reproducibly for a given SEED: every fault follows every other.
  RANDOM=$SEED
  read -ra deck <<<"$runs"
  for ((i = ${#deck[@]} - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1))); t=${deck[i]}; deck[i]=${deck[j]}; deck[j]=$t
  done
  runs="${deck[*]}"
fi
status=0
if [[ -z ${SUMMARY_ONLY:-} ]]; then
  SCENARIOS=$runs "$ROOT/e2e/failover/run.sh" >"$LOG" 2>&1
  status=$?
else
  runs=$(grep -oP '^== failover suite: \K.*' "$LOG")
fi

# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

echo "REPEAT=$REPEAT SCENARIOS=\"$SCENARIOS\" ($(date -u +%F), log $LOG; $(grep -c '^== [a-z-]*$' "$LOG") scenarios run)"
for scenario in $(tr ' ' '\n' <<<"$runs" | sort -u); do
  mapfile -t gaps < <(grep -oP "^timing: $scenario: longest gap between acknowledged writes: \K[0-9]+" "$LOG")
  mapfile -t operator < <(grep -A3 "^ok: $scenario: .* replaced" "$LOG" | grep -oP 'lastFailover: .* \K[0-9]+(?=ms)')
  distribution "$scenario: client longest gap" "${gaps[@]}"
  distribution "$scenario: operator, first failing poll -> promotion" "${operator[@]}"
  mapfile -t resumed < <(grep -oP "^timing: $scenario: the resumed primary took writes for \K[0-9]+" "$LOG")
  ((${#resumed[@]} == 0)) || distribution "$scenario: resumed old primary, first answer -> fenced" "${resumed[@]}"
  echo "  lost acknowledged writes: $(grep -c "^FAIL: $scenario: writer" "$LOG") runs with losses;" \
    "two writable primaries: $(grep -c "^FAIL: $scenario: two writable" "$LOG") runs;" \
    "offsets gone back: $(grep -c "^FAIL: $scenario: .*offset" "$LOG") runs;" \
    "acknowledged writes checked: $(grep -oP "^ok: $scenario: no acknowledged write lost \(acknowledged=\K[0-9]+" "$LOG" | awk '{ s += $1 } END { print s + 0 }')"
done
grep -E '^[0-9]+ passed' "$LOG"
exit $status
