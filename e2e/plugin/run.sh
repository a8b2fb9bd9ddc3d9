#!/usr/bin/env bash
# End-to-end test of the kubectl plugin on the local cluster (run by `make e2e` after the operator is
# installed by e2e/controller/run.sh): `kubectl cnredis ...` through kubectl's plugin mechanism, against a
# real 3-instance cluster with backups to the local S3 server. Checks what an operator on call sees:
#   - version names the plugin and the running operator;
#   - an on-call user with the built-in view role and the chart's cnredis-plugin role sees everything
#     status shows and cannot switch over;
#   - status without a cluster lists the namespace's clusters (-A: every namespace's);
#   - status tells the story of a healthy cluster, of one whose primary is frozen (rows say which
#     instance does not answer, the failover shows), and of one whose operator is stopped;
#   - promote switches over to an in-sync replica and reports it; a replica that has not heard from the
#     primary for longer than maxSyncReplicaLagSeconds is refused, and so are unknown instances;
#   - fence on makes the primary refuse writes (probed on 127.0.0.1 in its pod), fence off lifts it;
#   - backup creates a RedisBackup and follows it to completed; status lists it;
#   - report cluster writes a zip with the cluster's objects, instance reports and logs, the operator's
#     logs, and not one secret value;
#   - restart of a replica recreates it; of the primary is refused; of the cluster rolls every pod;
#   - cli opens valkey-cli on the primary or a named replica (--local: the local kubelet has no exec);
#   - reload after a password rotation: every instance takes the new password at once, none restarts.
# The -o json of each state is kept in $CNREDIS_PLUGIN_RECORD (if set): the golden tests' fixtures come
# from there. Prints "N passed, N failed".
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$E2E/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=${KUBECTL:-$(ls -d "$CACHE"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)}
CLI=${CLI:-$CACHE/images/valkey-8.1/usr/local/bin/valkey-cli}
NS=e2e-plugin
C=pl
WORK=$(mktemp -d)
RECORD=${CNREDIS_PLUGIN_RECORD:-$WORK/record}
mkdir -p "$WORK/bin" "$RECORD"
ln -s "$ROOT/target/x86_64-unknown-linux-gnu/release/kubectl-cnredis" "$WORK/bin/kubectl-cnredis"
export PATH=$WORK/bin:$PATH NO_COLOR=1

k() { "$KUBECTL" -n "$NS" "$@"; }
# cnredis ARGS...: the plugin as a user runs it.
cnredis() { "$KUBECTL" cnredis -n "$NS" "$@"; }

# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"

export S3_ROOT=$DIR/s3-plugin S3_STATE_DIR=$DIR/s3-plugin-state
"$E2E/s3.sh" up || { echo "FAIL: the S3 server did not start"; exit 1; }
frozen=""
cleanup() {
  [[ -n $frozen ]] && for p in $frozen; do kill -CONT "$p" 2>/dev/null; done
  "$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=1 >/dev/null 2>&1
  "$E2E/s3.sh" down --purge >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
eval "$(S3_ADVERTISE=10.245.0.1 "$E2E/s3.sh" env)"

primary() { k get rcl "$C" -o jsonpath='{.status.currentPrimary}'; }
healthy() {
  local s; s=$(k get rcl "$C" -o jsonpath='{.status.phase}/{.status.readyInstances}')
  [[ $s == Healthy/3 ]] || { echo "$s"; return 1; }
}
replica_of() { k get rcl "$C" -o jsonpath='{range .status.instancesStatus[*]}{.name} {.role}{"\n"}{end}' | awk '$2 == "replica" {print $1}' | sed -n "${1}p"; }
netns_of() { echo "cnr-$(k get pod "$1" -o jsonpath='{.metadata.uid}' | tr -d - | cut -c1-12)"; }
pw() { k get secret "$C-app" -o jsonpath='{.data.password}' | base64 -d; }
# write_on POD: a SET on 127.0.0.1 inside POD's network namespace; prints the server's answer.
write_on() { REDISCLI_AUTH=$(pw) timeout 3 ip netns exec "$(netns_of "$1")" "$CLI" -h 127.0.0.1 SET plugin:e2e "$RANDOM" 2>&1; }
# record NAME: keeps the -o json of the cluster's status as NAME.json.
record() { cnredis status "$C" -o json >"$RECORD/$1.json" 2>"$WORK/record.err" || echo "record $1: $(cat "$WORK/record.err")"; }
# row FILE POD ROLE STATUS: the instances table of FILE has POD with ROLE and STATUS.
row() { grep -qE "^$2 +$3 +$4( |$)" "$1" || { echo "no row \"$2 $3 $4\" in:"; cat "$1"; return 1; }; }
# shows FILE TEXT...: FILE contains every TEXT.
shows() {
  local file=$1 text; shift
  for text in "$@"; do grep -qF -- "$text" "$file" || { echo "missing \"$text\" in:"; cat "$file"; return 1; }; done
}

fresh_namespace "$NS"
k create secret generic s3 --from-literal=id="$S3_ACCESS_KEY" --from-literal=key="$S3_SECRET_KEY" >/dev/null
"$KUBECTL" -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: $C}
spec:
  instances: 3
  storage: {size: 100Mi}
  persistence: {mode: rdb}
  stopDelaySeconds: 10
  failover: {delaySeconds: 3}
  backup:
    objectStore:
      destinationPath: s3://$S3_BUCKET/plugin
      endpointURL: $S3_ENDPOINT
      s3Credentials: {accessKeyId: {name: s3, key: id}, secretAccessKey: {name: s3, key: key}}
YAML

# --- version, help
if cnredis version >"$WORK/version" 2>&1 && shows "$WORK/version" "kubectl-cnredis 0.1.0" "operator: cnredis-system/cnredis-" >/dev/null; then
  ok "version: $(tr '\n' ';' <"$WORK/version")"
else
  fail "version: $(cat "$WORK/version")"
fi
"$KUBECTL" cnredis --help >"$WORK/help" 2>&1 && shows "$WORK/help" status promote fence restart reload cli backup >/dev/null \
  && ok "kubectl finds the plugin: kubectl cnredis --help lists its commands" || fail "help: $(head -5 "$WORK/help")"
cnredis status missing >"$WORK/missing" 2>&1
[[ $? -ne 0 ]] && shows "$WORK/missing" "RedisCluster missing not found in namespace $NS" >/dev/null \
  && ok "status of an unknown cluster: $(cat "$WORK/missing")" || fail "status of an unknown cluster: $(cat "$WORK/missing")"

wait_until "cluster healthy" 240 healthy || { k get rcl "$C" -o yaml; exit 1; }

# --- status of a healthy cluster
old=$(primary) r1=$(replica_of 1) r2=$(replica_of 2)
cnredis status "$C" >"$WORK/status" 2>&1
if shows "$WORK/status" "Healthy" "Instance API: expires" "Backups" >/dev/null && grep -qE "^Primary: +$old since" "$WORK/status" \
  && row "$WORK/status" "$old" primary ready >/dev/null && row "$WORK/status" "$r1" replica ready >/dev/null \
  && row "$WORK/status" "$r2" replica ready >/dev/null; then
  ok "status shows the healthy cluster"
else
  fail "status of the healthy cluster: $(cat "$WORK/status")"
fi
cat "$WORK/status"
record healthy
# Without a cluster: the namespace's clusters, or every namespace's (-A), one line each.
cnredis status >"$WORK/list" 2>&1 && grep -qE "^$C +3/3 +Healthy +$old " "$WORK/list" \
  && ok "status without a cluster lists $C" || fail "status without a cluster: $(cat "$WORK/list")"
"$KUBECTL" cnredis status -A >"$WORK/list-all" 2>&1 && grep -qE "^$NS +$C +3/3 +Healthy" "$WORK/list-all" \
  && head -1 "$WORK/list-all" | grep -q "^NAMESPACE" && ok "status -A lists $C with its namespace" \
  || fail "status -A: $(cat "$WORK/list-all")"
cat "$WORK/list-all"

# --- an on-call user: the built-in view role (the chart's cnredis-view aggregates into it) and
# cnredis-plugin, bound in this namespace only
k create serviceaccount oncall >/dev/null
k create rolebinding oncall-view --clusterrole=view --serviceaccount="$NS:oncall" >/dev/null
k create rolebinding oncall-plugin --clusterrole=cnredis-plugin --serviceaccount="$NS:oncall" >/dev/null
cp "$KUBECONFIG" "$WORK/oncall.kubeconfig"
"$KUBECTL" --kubeconfig "$WORK/oncall.kubeconfig" config set-credentials oncall --token="$(k create token oncall)" >/dev/null
"$KUBECTL" --kubeconfig "$WORK/oncall.kubeconfig" config set-context --current --user=oncall >/dev/null
oncall() { KUBECONFIG=$WORK/oncall.kubeconfig "$KUBECTL" cnredis -n "$NS" "$@"; }
view_aggregated() { "$KUBECTL" auth can-i list redisclusters.redis.cnredis.io -n "$NS" --as="system:serviceaccount:$NS:oncall" >/dev/null 2>&1; }
wait_until "the view role includes RedisClusters" 60 view_aggregated
oncall status "$C" >"$WORK/oncall-status" 2>&1
if row "$WORK/oncall-status" "$old" primary ready >/dev/null && row "$WORK/oncall-status" "$r1" replica ready >/dev/null \
  && shows "$WORK/oncall-status" "Instance API: expires" >/dev/null; then
  ok "an on-call user with view + cnredis-plugin sees the instances' reports and the certificate"
else
  fail "status as the on-call user: $(cat "$WORK/oncall-status")"
fi
oncall promote "$C" "$r1" --no-wait >"$WORK/oncall-promote" 2>&1
[[ $? -ne 0 ]] && grep -qi forbidden "$WORK/oncall-promote" && [[ $(primary) == "$old" ]] \
  && ok "view + cnredis-plugin cannot switch over: $(head -c 160 "$WORK/oncall-promote")" \
  || fail "promote as the on-call user: $(cat "$WORK/oncall-promote")"

# --- promote
cnredis promote "$C" "$C-9" >"$WORK/unknown" 2>&1
[[ $? -ne 0 ]] && shows "$WORK/unknown" "refusing to promote: $C-9 is not an instance of cluster $C" >/dev/null \
  && ok "promote of an unknown instance refused: $(cat "$WORK/unknown")" || fail "promote of an unknown instance: $(cat "$WORK/unknown")"

# A replica that hears nothing from the primary (its packets dropped in its own namespace) for longer
# than maxSyncReplicaLagSeconds (10 s) is refused.
primary_ip=$(k get pod "$old" -o jsonpath='{.status.podIP}')
lag_ns=$(netns_of "$r2")
ip netns exec "$lag_ns" iptables -I INPUT -s "$primary_ip" -j DROP
ip netns exec "$lag_ns" iptables -I OUTPUT -d "$primary_ip" -j DROP
# lag_of POD: seconds since POD last heard from its primary, and its link, from its own report in
# `status -o json`.
lag_of() {
  cnredis status "$C" -o json | python3 -c 'import json, sys
r = json.load(sys.stdin)["instances"].get(sys.argv[1], {}).get("report") or {}
rep = r.get("replication", {})
print(rep.get("lagSeconds", -1), rep.get("link", "none"))' "$1"
}
lagging() { local l link; read -r l link < <(lag_of "$r2"); ((l > 10)) || [[ $link != up ]] || { echo "lagSeconds=$l link=$link"; return 1; }; }
wait_until "$r2 last heard from the primary more than 10 s ago" 90 lagging
if cnredis promote "$C" "$r2" --no-wait >"$WORK/lagging" 2>&1; then
  fail "promote of the lagging $r2 accepted: $(cat "$WORK/lagging")"
else
  shows "$WORK/lagging" "is not in sync" >/dev/null && ok "promote of the lagging $r2 refused: $(cat "$WORK/lagging")" \
    || fail "promote of the lagging $r2: $(cat "$WORK/lagging")"
fi
record lagging
[[ $(k get rcl "$C" -o jsonpath='{.status.targetPrimary}') == "$old" ]] && ok "a refused promote changes nothing" \
  || fail "targetPrimary changed after a refused promote"
ip netns exec "$lag_ns" iptables -D INPUT -s "$primary_ip" -j DROP
ip netns exec "$lag_ns" iptables -D OUTPUT -d "$primary_ip" -j DROP
wait_until "$r2 back in sync" 120 healthy

if cnredis promote "$C" "$r1" --timeout 120 >"$WORK/promote" 2>&1 && [[ $(primary) == "$r1" ]]; then
  ok "promote $r1: $(tail -1 "$WORK/promote")"
else
  fail "promote $r1: $(cat "$WORK/promote")"
fi
cat "$WORK/promote"
wait_until "healthy after the switchover" 120 healthy
cnredis promote "$C" "$r1" >"$WORK/again" 2>&1 && shows "$WORK/again" "$r1 is already the primary" >/dev/null \
  && ok "promote of the primary is a no-op" || fail "promote of the primary: $(cat "$WORK/again")"

# --- fence
new=$(primary)
write_on "$new" | grep -q OK && ok "$new takes writes before the fence" || fail "$new before the fence: $(write_on "$new")"
cnredis fence on "$C" "$new" --timeout 60 >"$WORK/fence" 2>&1 && ok "fence on $new: $(tr '\n' ';' <"$WORK/fence")" \
  || fail "fence on: $(cat "$WORK/fence")"
refuses() { local a; a=$(write_on "$new"); [[ $a != OK ]] || { echo "$a"; return 1; }; echo "$a"; }
wait_until "the fenced primary refuses writes" 30 refuses && echo "  answer: $(write_on "$new")"
cnredis status "$C" >"$WORK/fenced-status" 2>&1
shows "$WORK/fenced-status" "[\"$new\"] (cnredis.io/fencedInstances)" "fenced" >/dev/null && ok "status shows the fence" \
  || fail "status with a fence: $(cat "$WORK/fenced-status")"
record fenced
# Promoting away from a fenced primary is allowed (the fence is on the old one); promoting a fenced one is not.
cnredis fence on "$C" "$old" --no-wait >/dev/null 2>&1
cnredis promote "$C" "$old" >"$WORK/fenced-promote" 2>&1
[[ $? -ne 0 ]] && shows "$WORK/fenced-promote" "$old is fenced" >/dev/null && ok "promote of a fenced instance refused" \
  || fail "promote of a fenced instance: $(cat "$WORK/fenced-promote")"
cnredis fence off "$C" '*' --timeout 60 >"$WORK/unfence" 2>&1 && ok "fence off: $(tr '\n' ';' <"$WORK/unfence")" \
  || fail "fence off: $(cat "$WORK/unfence")"
takes() { local a; a=$(write_on "$new"); [[ $a == OK ]] || { echo "$a"; return 1; }; }
wait_until "$new takes writes again" 30 takes
wait_until "healthy after the fence" 60 healthy

# --- backup
if cnredis backup "$C" --backup-name first --timeout 120 >"$WORK/backup" 2>"$WORK/backup.err" \
  && [[ $(k get rbak first -o jsonpath='{.status.phase}') == completed ]]; then
  ok "backup first completed: $(grep completed "$WORK/backup.err")"
else
  fail "backup: $(cat "$WORK/backup" "$WORK/backup.err")"
fi
cnredis status "$C" >"$WORK/backup-status" 2>&1
shows "$WORK/backup-status" "Last successful: 20" "first" "completed" >/dev/null && ok "status lists the backup" \
  || fail "status after a backup: $(cat "$WORK/backup-status")"
record backed-up

# --- report
if cnredis report cluster "$C" -f "$WORK/report.zip" >"$WORK/report" 2>&1; then
  ok "report: $(cat "$WORK/report")"
else
  fail "report: $(cat "$WORK/report")"
fi
pods=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{.items[*].metadata.name}')
if python3 - "$WORK/report.zip" "$(pw)" $pods >"$WORK/report-check" 2>&1 <<'PY'
import base64, sys, zipfile
path, password, pods = sys.argv[1], sys.argv[2], sys.argv[3:]
z = zipfile.ZipFile(path)
names = [n.split("/", 1)[1] for n in z.namelist()]
want = ["README.txt", "status.txt", "cluster.yaml", "pods.yaml", "pvcs.yaml", "services.yaml",
        "secrets-redacted.yaml", "primary-lease.yaml", "backups.yaml", "events.yaml"]
want += [f"instances/{p}.json" for p in pods] + [f"logs/{p}/server.log" for p in pods]
missing = [w for w in want if w not in names]
operator_logs = [n for n in names if n.startswith("operator/")]
leaks = [n for n in z.namelist() for secret in (password, base64.b64encode(password.encode()).decode())
         if secret in z.read(n).decode(errors="replace")]
print(f"{len(names)} files; missing: {missing}; operator logs: {operator_logs}; files holding the password: {leaks}")
sys.exit(1 if missing or not operator_logs or leaks else 0)
PY
then
  ok "the report holds the expected files and no secret value: $(cat "$WORK/report-check")"
else
  fail "report contents: $(cat "$WORK/report-check")"
fi

# --- cli: on the primary by default, on a named instance, from this machine (--local: the local
# cluster's kubelet has no exec, the way the default goes in)
ln -sf "$CLI" "$WORK/bin/valkey-cli"
cnredis cli "$C" --local -- SET plugin:cli hello >"$WORK/cli-set" 2>&1 && shows "$WORK/cli-set" OK >/dev/null \
  && ok "cli --local writes on the primary" || fail "cli --local SET: $(cat "$WORK/cli-set")"
replica_has() { cnredis cli "$C" "$(replica_of 1)" --local -- GET plugin:cli 2>&1 | grep -qx hello; }
wait_until "cli --local reads the write on $(replica_of 1)" 20 replica_has
cnredis cli "$C" "$(replica_of 1)" --local -- ROLE >"$WORK/cli-role" 2>&1 && [[ $(head -1 "$WORK/cli-role") == slave ]] \
  && ok "cli --local on a named replica: $(tr '\n' ' ' <"$WORK/cli-role")" || fail "cli ROLE on a replica: $(cat "$WORK/cli-role")"
cnredis cli "$C" "$C-9" --local -- PING >"$WORK/cli-unknown" 2>&1
[[ $? -ne 0 ]] && shows "$WORK/cli-unknown" "$C-9 is not a running pod of $C" >/dev/null \
  && ok "cli on an unknown instance refused: $(cat "$WORK/cli-unknown")" || fail "cli on an unknown instance: $(cat "$WORK/cli-unknown")"
# The default goes through `kubectl exec`: with a kubectl that records its arguments, the exact command;
# with the real one, the local kubelet's refusal (the error docs/plugin.md shows).
printf '#!/bin/sh\necho "$@" >"%s"\n' "$WORK/exec-args" >"$WORK/recording-kubectl" && chmod +x "$WORK/recording-kubectl"
KUBECTL=$WORK/recording-kubectl timeout 20 "$KUBECTL" cnredis -n "$NS" cli "$C" -- PING --raw </dev/null >/dev/null 2>&1
want="--namespace=$NS exec -i $(primary) -c server -- /controller/cnredis instance cli -- PING --raw"
[[ $(cat "$WORK/exec-args" 2>/dev/null) == "$want" ]] && ok "cli runs: kubectl $want" \
  || fail "cli ran kubectl $(cat "$WORK/exec-args" 2>/dev/null), not $want"
timeout 20 "$KUBECTL" cnredis -n "$NS" cli "$C" -- PING </dev/null >"$WORK/cli-exec" 2>&1
[[ $? -ne 0 ]] && grep -q "error stream protocol error" "$WORK/cli-exec" \
  && ok "cli through kubectl exec fails where the kubelet has no exec: $(head -c 200 "$WORK/cli-exec")" \
  || fail "cli through exec on the local cluster: $(cat "$WORK/cli-exec")"

# --- reload after a password rotation: every instance takes the new password, nothing restarts
before=$(k get pods -l cnredis.io/cluster="$C" -o jsonpath='{range .items[*]}{.metadata.uid}{end}')
old_pw=$(pw)
k patch secret "$C-auth" --type merge -p '{"stringData":{"password":"rotated-by-the-plugin-test"}}' >/dev/null
cnredis reload "$C" --timeout 60 >"$WORK/reload" 2>&1 && shows "$WORK/reload" "3/3 instances applied the reload" >/dev/null \
  && ok "reload: $(tr '\n' ';' <"$WORK/reload")" || fail "reload: $(cat "$WORK/reload")"
[[ $(pw) == rotated-by-the-plugin-test ]] && ok "$C-app holds the new password" || fail "$C-app password not rotated"
for pod in $(k get pods -l cnredis.io/cluster="$C" -o jsonpath='{.items[*].metadata.name}'); do
  new_ok=$(REDISCLI_AUTH=rotated-by-the-plugin-test timeout 3 ip netns exec "$(netns_of "$pod")" "$CLI" -h 127.0.0.1 PING 2>&1)
  old_no=$(REDISCLI_AUTH=$old_pw timeout 3 ip netns exec "$(netns_of "$pod")" "$CLI" -h 127.0.0.1 PING 2>&1)
  [[ $new_ok == PONG && $old_no != PONG ]] && ok "$pod takes the new password and refuses the old one right after reload" \
    || fail "$pod after reload: new password -> $new_ok; old password -> $old_no"
done
after=$(k get pods -l cnredis.io/cluster="$C" -o jsonpath='{range .items[*]}{.metadata.uid}{end}')
[[ $before == "$after" ]] && ok "no pod was recreated by the reload" || fail "pods changed across the reload"
wait_until "cluster healthy after the rotation" 60 healthy

# --- status with the operator stopped
"$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=0 >/dev/null
no_operator() { [[ -z $("$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o name) ]]; }
wait_until "operator stopped" 60 no_operator
cnredis status "$C" >"$WORK/no-operator" 2>&1
shows "$WORK/no-operator" "no operator pod found" >/dev/null && row "$WORK/no-operator" "$new" primary ready >/dev/null && ok "status without an operator says so" \
  || fail "status without an operator: $(cat "$WORK/no-operator")"
record operator-down
"$KUBECTL" -n cnredis-system scale deploy/cnredis --replicas=1 >/dev/null
operator_ready() { "$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}' | grep -q True; }
wait_until "operator back" 120 operator_ready

# --- status while the primary is frozen: it does not answer, the operator fails over
frozen=$(ip netns pids "$(netns_of "$new")")
for p in $frozen; do kill -STOP "$p"; done
started=$SECONDS
cnredis status "$C" >"$WORK/frozen" 2>&1
took=$((SECONDS - started))
((took <= 10)) && shows "$WORK/frozen" "$new" "no answer within 4s" >/dev/null \
  && ok "status with a frozen primary answers in ${took}s and names it" || fail "status with a frozen primary (${took}s): $(cat "$WORK/frozen")"
cat "$WORK/frozen"
record primary-frozen
moved() { local p; p=$(primary); [[ -n $p && $p != "$new" ]] || { echo "primary=$p"; return 1; }; }
wait_until "failed over from the frozen $new" 120 moved
cnredis status "$C" >"$WORK/failed-over" 2>&1
shows "$WORK/failed-over" "Last failover:" "$new -> $(primary)" >/dev/null && ok "status shows the failover" \
  || fail "status after the failover: $(cat "$WORK/failed-over")"
record failed-over
for p in $frozen; do kill -CONT "$p"; done
frozen=""
wait_until "healthy after the frozen primary returned" 180 healthy

# --- restart
p=$(primary) r=$(replica_of 1)
cnredis restart "$C" "$p" >"$WORK/restart-primary" 2>&1
[[ $? -ne 0 ]] && shows "$WORK/restart-primary" "is the primary of $C" >/dev/null && ok "restart of the primary refused" \
  || fail "restart of the primary: $(cat "$WORK/restart-primary")"
uid=$(k get pod "$r" -o jsonpath='{.metadata.uid}')
if cnredis restart "$C" "$r" --timeout 120 >"$WORK/restart-one" 2>&1 && [[ $(k get pod "$r" -o jsonpath='{.metadata.uid}') != "$uid" ]]; then
  ok "restart $r: $(tail -1 "$WORK/restart-one")"
else
  fail "restart $r: $(cat "$WORK/restart-one")"
fi
wait_until "healthy after restarting $r" 120 healthy
if cnredis restart "$C" --timeout 300 >"$WORK/restart" 2>&1; then
  ok "rolling restart: $(tail -1 "$WORK/restart")"
else
  fail "rolling restart: $(cat "$WORK/restart")"
fi
cat "$WORK/restart"
at=$(k get rcl "$C" -o jsonpath='{.metadata.annotations.cnredis\.io/restartedAt}')
stamped=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.annotations.cnredis\.io/restartedAt}{"\n"}{end}' | grep -cx "$at")
[[ $stamped == 3 ]] && ok "every pod was recreated by the rolling restart" || fail "pods restarted at $at: $stamped of 3"
cnredis status "$C" -v >"$WORK/verbose" 2>&1
shows "$WORK/verbose" "Configuration" "Instance details" "persistence" >/dev/null && ok "status -v adds configuration and details" \
  || fail "status -v: $(cat "$WORK/verbose")"

k delete rcl "$C" --wait=false >/dev/null 2>&1
k delete rbak --all --wait=false >/dev/null 2>&1
k delete namespace "$NS" --wait=false >/dev/null 2>&1
echo "$passed passed, $failed failed"
((failed == 0))
