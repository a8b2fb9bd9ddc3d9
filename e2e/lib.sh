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

# finished_pod NAMESPACE NAME TIMEOUT_S: waits for a run-to-completion pod to end, prints its logs, and
# succeeds when it Succeeded. Uses $KUBECTL.
finished_pod() {
  local ns=$1 name=$2 deadline=$((SECONDS + $3)) phase=""
  while ((SECONDS < deadline)); do
    phase=$("$KUBECTL" -n "$ns" get pod "$name" -o jsonpath='{.status.phase}' 2>/dev/null)
    [[ $phase == Succeeded || $phase == Failed ]] && break
    sleep 1
  done
  "$KUBECTL" -n "$ns" logs "$name" 2>&1
  [[ $phase == Succeeded ]]
}

# app_client NAMESPACE CLUSTER NAME SCRIPT: runs SCRIPT (sh) in a client pod that mounts the
# <CLUSTER>-app secret at /app, as an application would, with REDISCLI_AUTH set from it and
# `retry CMD...` (up to 30 s) available; prints its output and succeeds when SCRIPT does.
app_client() {
  local ns=$1 cluster=$2 name=$3 script
  script=$(printf '%s' "$4" | base64 -w0)
  "$KUBECTL" -n "$ns" delete pod "$name" --ignore-not-found --wait=true >/dev/null 2>&1
  "$KUBECTL" -n "$ns" apply -f - >/dev/null <<YAML || return 1
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  restartPolicy: Never
  containers:
    - name: client
      image: cnredis/e2e-client:1
      command: [sh, -c]
      args:
        - |
          export REDISCLI_AUTH=\$(cat /app/password)
          retry() { i=0; until "\$@"; do i=\$((i + 1)); [ \$i -ge 30 ] && return 1; sleep 1; done; }
          eval "\$(echo $script | base64 -d)"
      volumeMounts: [{name: app, mountPath: /app, readOnly: true}]
  volumes: [{name: app, secret: {secretName: $cluster-app}}]
YAML
  finished_pod "$ns" "$name" 90
}

# apply_cluster NAMESPACE NAME PERSISTENCE [SPEC_LINE]: a 3-instance RedisCluster on 100Mi volumes, with
# the given persistence mode, a 10 s stop delay, and SPEC_LINE (one more `key: value` of its spec).
apply_cluster() {
  "$KUBECTL" -n "$1" apply -f - >/dev/null <<YAML
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: $2}
spec:
  instances: 3
  storage: {size: 100Mi}
  persistence: {mode: $3}
  stopDelaySeconds: 10
  ${4:-}
YAML
}

# fresh_namespace NS: creates namespace NS, first waiting (up to 180 s) for one an earlier run left
# terminating to be gone. Uses $KUBECTL.
fresh_namespace() {
  local ns=$1
  gone() { ! "$KUBECTL" get namespace "$ns" -o name 2>/dev/null | grep -q .; }
  gone || wait_until "namespace $ns of an earlier run gone" 180 gone || return 1
  "$KUBECTL" create namespace "$ns" >/dev/null
}
