# Shared by the end-to-end scripts (sourced): counting checks and waiting for conditions.
passed=0 failed=0

ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# wait_until DESCRIPTION TIMEOUT_S CMD...: polls CMD until it succeeds; on timeout prints its last output.
wait_until() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout)) out
  while true; do
    if out=$("$@" 2>&1); then ok "$what (after $((SECONDS + timeout - deadline))s)"; return 0; fi
    if ((SECONDS >= deadline)); then fail "$what: not within ${timeout}s; last saw: ${out:0:800}"; return 1; fi
    sleep 1
  done
}
