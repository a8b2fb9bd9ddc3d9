#!/usr/bin/env bash
# Runs every shell block of the runbooks (docs/runbooks/*.md, ```sh fences), in document order, against a
# real cluster, so that a runbook cannot drift from the product (run by `make e2e` after the operator is
# installed). The runbooks name their clusters `sessions` and `orders` "in the current namespace": this
# script makes them in the namespace `runbooks`, sets it as the kubeconfig context's namespace, puts the
# kubectl plugin on PATH, and provides what the runbooks take as given: backups to the local S3 server
# with credentials in the Secret `backup-credentials`, a schedule `orders-nightly` and a completed backup
# `orders-before-migration`. In a block, `NAME` (a RedisBackup's name in the runbooks) stands for the
# newest RedisBackup. A comment on the line before a fence says how to run it:
#   <!-- runbook-test: until-stopped N -->   runs until stopped (`-w`): ran N seconds, then stopped
#   <!-- runbook-test: skip REASON -->       not run, with why
#   <!-- runbook-test: given STATE -->       run after given_STATE (below) put the cluster in that state
#   <!-- runbook-test: expect RE && RE -->   run; a line of its output matches each extended regular expression
# Every other block must exit 0 within 120 s. After the blocks, the restore the runbook started must
# reach Healthy. Prints "N passed, N failed".
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$E2E/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
REAL_KUBECTL=${KUBECTL:-$(ls -d "$CACHE"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)}
NS=runbooks
# In an order that leaves each runbook the state it assumes (after switchover.md, sessions-2 is a replica).
ALL_RUNBOOKS="switchover restart scaling storage password fencing stuck failover backup restore"
RUNBOOKS=${RUNBOOKS:-$ALL_RUNBOOKS}
WORK=$(mktemp -d)
mkdir -p "$WORK/bin"
ln -s "$ROOT/target/x86_64-unknown-linux-gnu/release/kubectl-cnredis" "$WORK/bin/kubectl-cnredis"
ln -s "$REAL_KUBECTL" "$WORK/bin/kubectl"
# `kubectl cnredis cli` from this machine to the pod's IP: the local kubelet has no exec.
ln -s "$CACHE/images/valkey-8.1/usr/local/bin/valkey-cli" "$WORK/bin/valkey-cli"
export CNREDIS_CLI_LOCAL=1
cp "$DIR/admin.kubeconfig" "$WORK/kubeconfig"
export KUBECONFIG=$WORK/kubeconfig PATH=$WORK/bin:$PATH NO_COLOR=1
KUBECTL=kubectl
kubectl config set-context --current --namespace="$NS" >/dev/null

# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"

export S3_ROOT=$DIR/s3-runbooks S3_STATE_DIR=$DIR/s3-runbooks-state
"$E2E/s3.sh" up >/dev/null || { echo "FAIL: the S3 server did not start"; exit 1; }
trap '"$E2E/s3.sh" down --purge >/dev/null 2>&1; rm -rf "$WORK"' EXIT
eval "$(S3_ADVERTISE=10.245.0.1 "$E2E/s3.sh" env)"

healthy() {
  local s; s=$(kubectl get rcl "$1" -o jsonpath='{.status.phase}/{.status.readyInstances}')
  [[ $s == Healthy/3 ]] || { echo "$1: $s"; return 1; }
}
phase_is() {
  local p; p=$(kubectl get rcl "$1" -o jsonpath='{.status.phase}')
  [[ $p == "$2" ]] || { echo "$1: $p"; return 1; }
}
# given_STATE: what a `given STATE` block acts on.
given_waiting_for_the_user() {
  kubectl patch rcl sessions --type merge -p '{"spec":{"primaryUpdateStrategy":"supervised"}}' >/dev/null
  kubectl annotate rcl sessions cnredis.io/restartedAt="$(date -u +%FT%T.%NZ)" --overwrite >/dev/null
  wait_until "sessions waits for the user" 240 phase_is sessions "Waiting for the user"
}
backup_done() { [[ $(kubectl get rbak "$1" -o jsonpath='{.status.phase}') == completed ]]; }

fresh_namespace "$NS"
kubectl create secret generic backup-credentials \
  --from-literal=ACCESS_KEY_ID="$S3_ACCESS_KEY" --from-literal=SECRET_ACCESS_KEY="$S3_SECRET_KEY" >/dev/null
for cluster in sessions orders; do
  kubectl apply -f - >/dev/null <<YAML
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: $cluster}
spec:
  instances: 3
  storage: {size: 100Mi}
  stopDelaySeconds: 10
  backup:
    objectStore:
      destinationPath: s3://$S3_BUCKET/runbooks
      endpointURL: $S3_ENDPOINT
      s3Credentials:
        accessKeyId: {name: backup-credentials, key: ACCESS_KEY_ID}
        secretAccessKey: {name: backup-credentials, key: SECRET_ACCESS_KEY}
YAML
done
kubectl apply -f - >/dev/null <<YAML
apiVersion: redis.cnredis.io/v1
kind: RedisScheduledBackup
metadata: {name: orders-nightly}
spec:
  cluster: {name: orders}
  schedule: "0 0 2 * * *"
YAML
wait_until "sessions healthy" 240 healthy sessions || exit 1
wait_until "orders healthy" 240 healthy orders || exit 1
kubectl cnredis backup orders --backup-name orders-before-migration --timeout 120 >/dev/null 2>&1
wait_until "backup orders-before-migration completed" 60 backup_done orders-before-migration

# blocks FILE: each ```sh block as "LINE<TAB>DIRECTIVE<TAB>base64(CODE)".
blocks() {
  python3 - "$1" <<'PY'
import base64, re, sys
lines = open(sys.argv[1]).read().split("\n")
i = 0
while i < len(lines):
    if lines[i].strip() == "```sh":
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        m = re.match(r"<!-- runbook-test: (.*) -->", lines[j].strip()) if j >= 0 else None
        directive = m.group(1) if m else "run"
        k = i + 1
        while lines[k].strip() != "```":
            k += 1
        code = "\n".join(lines[i + 1:k])
        print(f"{i + 1}\t{directive}\t{base64.b64encode(code.encode()).decode()}")
        i = k
    i += 1
PY
}

# A runbook nobody added to the list would never be run.
for file in "$ROOT"/docs/runbooks/*.md; do
  name=$(basename "$file" .md)
  [[ " $ALL_RUNBOOKS " == *" $name "* ]] || fail "docs/runbooks/$name.md is not in ALL_RUNBOOKS of $0"
done

for runbook in $RUNBOOKS; do
  file=$ROOT/docs/runbooks/$runbook.md
  while IFS=$'\t' read -r line directive code; do
    code=$(echo "$code" | base64 -d)
    where="$runbook.md:$line"
    newest=$(kubectl get rbak --sort-by=.metadata.creationTimestamp -o jsonpath='{.items[-1:].metadata.name}')
    code=${code//NAME/$newest}
    case $directive in
      skip*) echo "skipped: $where (${directive#skip })"; continue ;;
      until-stopped*)
        timeout "${directive#until-stopped }" bash -euo pipefail -c "$code" >"$WORK/out" 2>&1
        rc=$?; [[ $rc == 124 ]] && rc=0 ;;
      given*)
        given=given_${directive#given }
        "${given//-/_}" >"$WORK/out" 2>&1 || { fail "$where: given ${directive#given }: $(cat "$WORK/out")"; continue; }
        timeout 120 bash -euo pipefail -c "$code" >"$WORK/out" 2>&1; rc=$? ;;
      expect*)
        timeout 120 bash -euo pipefail -c "$code" >"$WORK/out" 2>&1; rc=$?
        patterns=${directive#expect }
        while [[ $rc == 0 && -n $patterns ]]; do
          pattern=${patterns%% && *}; [[ $patterns == *" && "* ]] && patterns=${patterns#* && } || patterns=""
          grep -qE -- "$pattern" "$WORK/out" || { echo "(no line of the output matches /$pattern/)" >>"$WORK/out"; rc=1; }
        done ;;
      run) timeout 120 bash -euo pipefail -c "$code" >"$WORK/out" 2>&1; rc=$? ;;
      *) fail "$where: unknown directive '$directive'"; continue ;;
    esac
    if [[ $rc == 0 ]]; then
      ok "$where: $(head -c 160 "$WORK/out" | tr '\n' ' ')"
    else
      fail "$where exited $rc: $code
$(cat "$WORK/out")"
    fi
  done < <(blocks "$file")
  # The next runbook starts from a healthy, unfenced cluster that updates its primary by itself.
  kubectl annotate rcl sessions orders cnredis.io/fencedInstances- >/dev/null 2>&1
  kubectl patch rcl sessions --type merge -p '{"spec":{"primaryUpdateStrategy":"unsupervised"}}' >/dev/null
  wait_until "$runbook: sessions healthy again" 120 healthy sessions
done

if [[ " $RUNBOOKS " == *" restore "* ]]; then
  wait_until "the restore restore.md started (orders-restored) is healthy" 240 healthy orders-restored
  recovered=$(kubectl get rcl orders-restored -o jsonpath='{.status.recovery.backupId}')
  [[ $recovered == orders-before-migration ]] && ok "orders-restored was restored from $recovered" \
    || fail "orders-restored recovery: $(kubectl get rcl orders-restored -o jsonpath='{.status.recovery}')"
fi

kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
echo "$passed passed, $failed failed"
((failed == 0))
