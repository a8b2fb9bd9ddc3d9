#!/usr/bin/env bash
# End-to-end test of backups on the local cluster (run by `make e2e` between cluster-up and cluster-down,
# after the operator is installed by e2e/controller/run.sh): a real S3-compatible server (versitygw,
# e2e/s3.sh) on the host, reached by the pods on the bridge address. Checks what a user sees:
#   - a RedisBackup taken under a SET + WAIT 1 writer completes on a replica, its checksum is the sha256 of
#     the object in the bucket, its manifest promises the keys;
#   - an operator restarted during a backup finds it again (one BackupStarted, Completed);
#   - a wrong secret key (rotated in the Secret, picked up without a restart), a missing bucket, an
#     unreachable endpoint, an unknown cluster and a cluster with no healthy instance each fail with
#     their reason in status.error and a Warning event; the rotated-back key works again;
#   - deleting a RedisBackup leaves its artifacts in the bucket;
#   - a new cluster restored from a backup holds exactly the source's keys and values (a digest over every
#     key), its replica syncs from it; a missing backup, a wrong key and a corrupt artifact end in phase
#     Bootstrap failed with the reason, never in an empty Ready cluster;
#   - a schedule every 5 s creates RedisBackups named after their slots, the 30d retention policy removes
#     an old backup's artifacts and keeps the last one before the window, suspend stops it, and its
#     backups go with it (backupOwnerReference: self).
# Prints "N passed, N failed".
set -uo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$E2E/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=${KUBECTL:-$(ls -d "${CNREDIS_CACHE:-$HOME/.cache/cnredis}"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)}
NS=e2e-backup
C=bk

k() { "$KUBECTL" -n "$NS" "$@"; }

# shellcheck source=e2e/lib.sh
source "$E2E/lib.sh"

# The S3 server: its own data directory, purged on exit.
export S3_ROOT=$DIR/s3 S3_STATE_DIR=$DIR/s3-state
"$E2E/s3.sh" up || { echo "FAIL: the S3 server did not start"; exit 1; }
trap '"$E2E/s3.sh" down --purge >/dev/null 2>&1' EXIT
eval "$(S3_ADVERTISE=10.245.0.1 "$E2E/s3.sh" env)"
BUCKET_DIR=$S3_ROOT/$S3_BUCKET

client() { app_client "$NS" "$C" "$1" "$2"; }
phase() { k get rbak "$1" -o jsonpath='{.status.phase}'; }
# ended NAME: the RedisBackup completed or failed.
ended() {
  local p; p=$(phase "$1")
  [[ $p == completed || $p == failed ]] || { echo "phase=${p:-none} $(k get rbak "$1" -o jsonpath='{.status.conditions[0].message}')"; return 1; }
}
# backup NAME [TIMEOUT_SECONDS]: creates a RedisBackup of the cluster.
backup() {
  k apply -f - >/dev/null <<EOF
apiVersion: redis.cnredis.io/v1
kind: RedisBackup
metadata: {name: $1}
spec:
  cluster: {name: ${3:-$C}}
  ${2:+timeoutSeconds: $2}
EOF
}
# expect_failure NAME TEXT: the RedisBackup ends Failed with TEXT in status.error and a BackupFailed event.
expect_failure() {
  wait_until "$1 ended" 120 ended "$1" || return
  local error event
  error=$(k get rbak "$1" -o jsonpath='{.status.error}')
  if [[ $(phase "$1") == failed && $error == *"$2"* ]]; then ok "$1 failed: $error"; else fail "$1: phase $(phase "$1"), error: $error"; fi
  event=$(k get events --field-selector "involvedObject.name=$1,reason=BackupFailed" -o name | wc -l)
  ((event == 1)) && ok "$1: one Warning BackupFailed event" || fail "$1: $event BackupFailed events"
}

echo "== a cluster that backs up to s3://$S3_BUCKET/e2e on $S3_ENDPOINT"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
k create secret generic s3 --from-literal=id="$S3_ACCESS_KEY" --from-literal=key="$S3_SECRET_KEY" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
apply_cluster "$NS" "$C" rdb "backup: {objectStore: {destinationPath: s3://$S3_BUCKET/e2e, endpointURL: '$S3_ENDPOINT', s3Credentials: {accessKeyId: {name: s3, key: id}, secretAccessKey: {name: s3, key: key}}}}"
ready() {
  local status; status=$(k get rcl "$C" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.readyInstances}')
  [[ $status == "True 3" ]] || { echo "Ready/readyInstances: $status"; return 1; }
}
wait_until "cluster $C Ready with 3 instances" 240 ready
client seed "for i in \$(seq 1 5000); do echo \"SET seed:\$i value-\$i\"; done | valkey-cli -h \$(cat /app/host) --pipe | tail -1" \
  && ok "5000 keys written" || fail "seeding the cluster"

echo "== a backup under a SET + WAIT 1 writer"
client writer-backup "host=\$(cat /app/host); n=0; acked=0
  while :; do
    n=\$((n + 1))
    out=\$(printf 'SET w:%s %s\nWAIT 1 2000\nGET e2e:stop\n' \$n \$n | valkey-cli -h \$host 2>&1 | tr '\n' ' ')
    set -- \$out
    [ \"\$1\" = OK ] && [ \"\${2:-0}\" -ge 1 ] 2>/dev/null && acked=\$((acked + 1))
    [ \"\${3:-}\" = 1 ] && break
    [ \$n -ge 20000 ] && break
  done
  echo acknowledged=\$acked" >/tmp/e2e-backup-writer.log 2>&1 &
writer=$!
writer_running() { [[ $(k get pod writer-backup -o jsonpath='{.status.phase}' 2>/dev/null) == Running ]]; }
wait_until "writer running" 60 writer_running
backup first
if wait_until "first ended" 120 ended first; then
  [[ $(phase first) == completed ]] && ok "first Completed" || fail "first: $(k get rbak first -o jsonpath='{.status.phase}: {.status.error}')"
  read -r instance checksum size path engine <<<"$(k get rbak first -o jsonpath='{.status.instance} {.status.checksum} {.status.sizeBytes} {.status.destinationPath} {.status.engineVersion}')"
  role=$(k get pod "$instance" -o jsonpath='{.metadata.labels.cnredis\.io/role}')
  [[ $role == replica ]] && ok "taken on a replica ($instance)" || fail "taken on $instance, role $role"
  [[ $path == "s3://$S3_BUCKET/e2e/$C/first/" ]] && ok "destinationPath $path" || fail "destinationPath $path"
  stored=$BUCKET_DIR/e2e/$C/first
  actual="sha256:$(sha256sum "$stored/dump.rdb" 2>/dev/null | cut -d' ' -f1)"
  [[ $actual == "$checksum" ]] && ok "status.checksum is the sha256 of the object in the bucket ($checksum)" \
    || fail "checksum $checksum, object $actual"
  [[ $(stat -c %s "$stored/dump.rdb" 2>/dev/null) == "$size" ]] && ok "status.sizeBytes $size is the object's size" || fail "size $size"
  keys=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"])' "$stored/manifest.json" 2>&1)
  ((keys >= 5000)) 2>/dev/null && ok "the manifest promises $keys keys ($engine)" || fail "manifest keys: $keys"
  events=$(k get events --field-selector "involvedObject.name=first" -o jsonpath='{range .items[*]}{.reason} {end}')
  [[ $events == *BackupStarted*BackupCompleted* || $events == *BackupCompleted*BackupStarted* ]] && ok "events: $events" || fail "events: $events"
fi
client stopper "valkey-cli -h \$(cat /app/host) set e2e:stop 1" >/dev/null || fail "could not stop the writer"
if wait "$writer"; then ok "the writer kept writing during the backup: $(tail -1 /tmp/e2e-backup-writer.log)"; else fail "writer: $(tail -3 /tmp/e2e-backup-writer.log)"; fi

echo "== the operator restarted during a backup"
# rdb-key-save-delay (µs per key) makes the snapshot of 5000+ keys last about 27 s on every instance, so the
# operator is replaced while its backup runs. (At 1 ms per key, about 5 s, a loaded CI machine once polled
# past the whole Running phase: "not within 30s; last saw: phase: completed".)
save_delay() {
  client "delay-$RANDOM" "for ip in $(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{.items[*].status.podIP}'); do valkey-cli -h \$ip config set rdb-key-save-delay $1 || exit 1; done" >/dev/null
}
save_delay 5000 && ok "snapshots slowed down" || fail "CONFIG SET rdb-key-save-delay"
backup during-restart
is_running() { [[ $(phase during-restart) == running ]] || { echo "phase: $(phase during-restart)"; return 1; }; }
wait_until "during-restart running" 30 is_running
operator_before=$("$KUBECTL" -n cnredis-system get pods -l app.kubernetes.io/name=cnredis -o name)
"$KUBECTL" -n cnredis-system delete pod -l app.kubernetes.io/name=cnredis --wait=true >/dev/null
[[ $(phase during-restart) == running ]] && ok "still running after the operator $operator_before is gone" \
  || fail "during-restart is $(phase during-restart) once the operator is gone"
if wait_until "during-restart ended" 180 ended during-restart; then
  [[ $(phase during-restart) == completed ]] && ok "during-restart Completed" || fail "during-restart: $(k get rbak during-restart -o jsonpath='{.status.error}')"
  started=$(k get events --field-selector "involvedObject.name=during-restart,reason=BackupStarted" -o jsonpath='{range .items[*]}{.count}{end}')
  [[ $started == 1 || -z $started ]] && ok "started once" || fail "BackupStarted count: $started"
  took=$(k get rbak during-restart -o jsonpath='{.status.startedAt} -> {.status.stoppedAt}')
  echo "timing: during-restart $took"
fi
save_delay 0 || fail "resetting rdb-key-save-delay"

echo "== bad inputs"
backup no-cluster "" nope
expect_failure no-cluster "RedisCluster nope does not exist"

# A wrong secret key, as a rotation to a bad value: the pods read it without a restart.
k create secret generic s3 --from-literal=id="$S3_ACCESS_KEY" --from-literal=key=wrong-secret \
  --dry-run=client -o yaml | k apply -f - >/dev/null
# secret_in POD: the secret key the pod's instance manager reads (the local kubelet's volume files).
secret_in() {
  local uid; uid=$(k get pod "$1" -o jsonpath='{.metadata.uid}')
  cat "$DIR"/nodes/*/pods/"$uid"/volumes/object-store-backup/SECRET_ACCESS_KEY 2>&1
}
# every_pod_reads KEY: every instance pod's credentials file holds KEY.
every_pod_reads() {
  local pod
  for pod in $(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{.items[*].metadata.name}'); do
    [[ $(secret_in "$pod") == "$1" ]] || { echo "$pod reads $(secret_in "$pod")"; return 1; }
  done
}
restarts_before=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.uid} {end}')
wait_until "the rotated key reached every pod" 90 every_pod_reads wrong-secret
backup wrong-secret
expect_failure wrong-secret SignatureDoesNotMatch
k create secret generic s3 --from-literal=id="$S3_ACCESS_KEY" --from-literal=key="$S3_SECRET_KEY" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
wait_until "the right key is back in every pod" 90 every_pod_reads "$S3_SECRET_KEY"

k patch rcl "$C" --type merge -p '{"spec":{"backup":{"objectStore":{"destinationPath":"s3://no-such-bucket/e2e"}}}}' >/dev/null
backup missing-bucket
expect_failure missing-bucket NoSuchBucket
k patch rcl "$C" --type merge -p "{\"spec\":{\"backup\":{\"objectStore\":{\"destinationPath\":\"s3://$S3_BUCKET/e2e\",\"endpointURL\":\"http://10.245.0.1:7079\"}}}}" >/dev/null
backup unreachable
expect_failure unreachable "Connection refused"
k patch rcl "$C" --type merge -p "{\"spec\":{\"backup\":{\"objectStore\":{\"endpointURL\":\"$S3_ENDPOINT\"}}}}" >/dev/null

k annotate rcl "$C" 'cnredis.io/fencedInstances=["*"]' --overwrite >/dev/null
all_fenced() { [[ $(k get pods -l "cnredis.io/cluster=$C,cnredis.io/role=primary" -o name) == "" ]]; }
wait_until "every instance fenced" 60 all_fenced
backup nothing-healthy 10
expect_failure nothing-healthy "no healthy replica or primary to back up"
k annotate rcl "$C" 'cnredis.io/fencedInstances-' >/dev/null
wait_until "cluster $C Ready again" 120 ready

echo "== after the bad inputs, with the key rotated back, without a restart"
backup second
wait_until "second ended" 120 ended second && [[ $(phase second) == completed ]] && ok "second Completed" \
  || fail "second: $(k get rbak second -o jsonpath='{.status.phase}: {.status.error}')"
restarts_after=$(k get pods -l "cnredis.io/cluster=$C" -o jsonpath='{range .items[*]}{.metadata.uid} {end}')
[[ $restarts_after == "$restarts_before" ]] && ok "no pod was recreated for the rotations" || fail "pods changed: $restarts_before -> $restarts_after"

echo "== deleting a RedisBackup leaves its artifacts"
k delete rbak first --wait=true >/dev/null
[[ -s $BUCKET_DIR/e2e/$C/first/dump.rdb && -s $BUCKET_DIR/e2e/$C/first/manifest.json ]] \
  && ok "s3://$S3_BUCKET/e2e/$C/first/ is still there" || fail "artifacts of first gone: $(ls "$BUCKET_DIR/e2e/$C" 2>&1)"

export S3_LOCAL=http://127.0.0.1:${S3_ENDPOINT##*:}
echo "== restore round trip: a new cluster from a backup holds exactly its keys and values"
# digest CLUSTER: sha256 over every "key<TAB>value" line, sorted, computed in a client pod of CLUSTER.
digest() {
  app_client "$NS" "$1" "digest-$RANDOM" "h=\$(cat /app/host); valkey-cli -h \$h --scan | sort > /tmp/keys
    sed 's/^/GET /' /tmp/keys | valkey-cli -h \$h > /tmp/values
    echo \$(wc -l < /tmp/keys) \$(paste /tmp/keys /tmp/values | sha256sum | cut -d' ' -f1)" | tail -1
}
source_digest=$(digest "$C")
backup for-restore
wait_until "for-restore ended" 120 ended for-restore
read -r source_keys source_sum <<<"$source_digest"
((source_keys > 5000)) && ok "source: $source_keys keys, digest ${source_sum:0:16}" || fail "source digest: $source_digest"
restored_cluster() {
  k apply -f - >/dev/null <<EOF
apiVersion: redis.cnredis.io/v1
kind: RedisCluster
metadata: {name: $1}
spec:
  instances: 2
  storage: {size: 100Mi}
  persistence: {mode: rdb+aof}
  stopDelaySeconds: 10
  bootstrap: {recovery: $2}
EOF
}
restored_cluster restored "{backup: {name: for-restore}}"
restored_ready() {
  local status; status=$(k get rcl restored -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.readyInstances} {.status.phase}: {.status.phaseReason}')
  [[ $status == "True 2 "* ]] || { echo "$status"; return 1; }
}
started=$SECONDS
wait_until "restored: Ready with 2 instances" 240 restored_ready && echo "timing: apply -> Ready (restored, 2 instances): $((SECONDS - started)) s"
read -r restored_keys restored_sum <<<"$(digest restored)"
[[ $restored_keys == "$source_keys" && $restored_sum == "$source_sum" ]] \
  && ok "restored: the same $restored_keys keys and values (digest ${restored_sum:0:16})" \
  || fail "restored: $restored_keys keys ${restored_sum:0:16}, source $source_keys ${source_sum:0:16}"
promised=$(k get rcl restored -o jsonpath='{.status.recovery.keys} {.status.recovery.backupId} {.status.recovery.cluster}')
[[ $promised == "$source_keys for-restore $C" ]] && ok "status.recovery: $promised (the manifest's keys)" || fail "status.recovery: $promised, source keys $source_keys"
replica=$(k get pods -l cnredis.io/cluster=restored,cnredis.io/role=replica -o jsonpath='{.items[0].metadata.name}')
[[ -n $replica ]] && ok "the replica $replica synced from the restored primary" || fail "no replica"
events=$(k get events --field-selector involvedObject.name=restored -o jsonpath='{range .items[*]}{.reason} {end}')
[[ $events == *RestorePlanned* ]] && ok "events: $events" || fail "events: $events"

echo "== restores that cannot work stop before or at the first instance, with the reason"
# refused NAME TEXT: the cluster is in phase Bootstrap failed with TEXT in its reason, and not Ready.
refused() {
  local phase; phase=$(k get rcl "$1" -o jsonpath='{.status.phase}: {.status.phaseReason}')
  [[ $phase == "Bootstrap failed: "*"$2"* ]] || { echo "$phase"; return 1; }
}
source_of() { echo "{source: {objectStore: {destinationPath: 's3://$S3_BUCKET/e2e', endpointURL: '$S3_ENDPOINT', s3Credentials: {accessKeyId: {name: ${2:-s3}, key: id}, secretAccessKey: {name: ${2:-s3}, key: key}}}, clusterName: $C, backupId: $1}}"; }
restored_cluster no-such-backup "$(source_of no-such-backup)"
wait_until "no-such-backup: Bootstrap failed, NoSuchKey" 60 refused no-such-backup NoSuchKey
[[ -z $(k get pods -l cnredis.io/cluster=no-such-backup -o name) ]] && ok "no-such-backup: no instance created" || fail "no-such-backup: pods exist"
k create secret generic s3-wrong --from-literal=id="$S3_ACCESS_KEY" --from-literal=key=wrong --dry-run=client -o yaml | k apply -f - >/dev/null
restored_cluster wrong-key "$(source_of for-restore s3-wrong)"
wait_until "wrong-key: Bootstrap failed, SignatureDoesNotMatch" 60 refused wrong-key SignatureDoesNotMatch
# A corrupt artifact: the snapshot replaced in the bucket after its manifest was written.
backup to-corrupt
wait_until "to-corrupt ended" 120 ended to-corrupt
python3 - <<'PY'
import os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_LOCAL"], aws_access_key_id=os.environ["S3_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["S3_SECRET_KEY"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"))
s3.put_object(Bucket=os.environ["S3_BUCKET"], Key="e2e/bk/to-corrupt/dump.rdb", Body=b"REDIS0011 not the snapshot")
PY
restored_cluster corrupt "$(source_of to-corrupt)"
wait_until "corrupt: Bootstrap failed, checksum mismatch found by the first instance" 90 refused corrupt "does not match its manifest"
k get rcl corrupt -o jsonpath='  {.status.phase}: {.status.phaseReason}{"\n"}'
ready=$(k get rcl corrupt -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
[[ $ready != True ]] && ok "corrupt: not Ready (Ready=${ready:-absent})" || fail "corrupt: Ready"
k delete rcl restored no-such-backup wrong-key corrupt --wait=true >/dev/null

echo "== a schedule every 5 seconds, with a 30d retention policy"
# Two backups that look 40 and 35 days old, put in the bucket through S3: retention removes the older
# and keeps the newer, the last one completed before the 30-day window opened (what a restore to a
# point inside the window would need).
old_backup() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys, datetime, boto3
from botocore.config import Config
name, days = sys.argv[1], int(sys.argv[2])
at = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
s3 = boto3.client("s3", endpoint_url=os.environ["S3_LOCAL"], aws_access_key_id=os.environ["S3_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["S3_SECRET_KEY"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"))
key = f"e2e/bk/{name}/"
s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key + "dump.rdb", Body=b"not a real snapshot")
manifest = dict(version=1, cluster="bk", clusterUid=os.environ["UID_BK"], backup=name, instance="bk-2",
                role="replica", engine="valkey", engineVersion="8.1.8", file="dump.rdb", format="rdb",
                sizeBytes=19, checksum="sha256:0", replicationId="0", replicationOffset=0, keys=0,
                startedAt=at, stoppedAt=at)
s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key + "manifest.json", Body=json.dumps(manifest).encode())
PY
}
export S3_LOCAL=http://127.0.0.1:${S3_ENDPOINT##*:} UID_BK; UID_BK=$(k get rcl "$C" -o jsonpath='{.metadata.uid}')
old_backup old-40d 40 && old_backup old-35d 35 && ok "two old backups put in the bucket" || fail "putting old backups"
k patch rcl "$C" --type merge -p '{"spec":{"backup":{"retentionPolicy":"30d"}}}' >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: redis.cnredis.io/v1
kind: RedisScheduledBackup
metadata: {name: every5}
spec:
  cluster: {name: $C}
  schedule: "*/5 * * * * *"
  backupOwnerReference: self
EOF
two_scheduled() {
  local done; done=$(k get rbak -l cnredis.io/scheduledBackup=every5 -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase} {end}')
  [[ $(grep -o '=completed' <<<"$done" | wc -l) -ge 2 ]] || { echo "$done"; return 1; }
}
wait_until "two scheduled backups completed" 90 two_scheduled
names=$(k get rbak -l cnredis.io/scheduledBackup=every5 -o jsonpath='{range .items[*]}{.metadata.name} {end}')
[[ $names =~ ^(every5-[0-9]{14}\ )+$ ]] && ok "named after their slots: $names" || fail "names: $names"
removed() { [[ ! -e $BUCKET_DIR/e2e/$C/old-40d ]] || { echo "old-40d: $(ls "$BUCKET_DIR/e2e/$C/old-40d" 2>&1)"; return 1; }; }
wait_until "retention removed old-40d's artifacts from the bucket" 30 removed
[[ -s $BUCKET_DIR/e2e/$C/old-35d/manifest.json ]] && ok "old-35d kept: the last backup before the window" || fail "old-35d removed"
[[ -s $BUCKET_DIR/e2e/$C/second/dump.rdb ]] && ok "recent backups kept" || fail "second removed"
note=$(k get events --field-selector "involvedObject.name=$C,reason=BackupsRemoved" -o jsonpath='{.items[0].message}')
[[ $note == *old-40d* && $note != *old-35d* ]] && ok "event BackupsRemoved: $note" || fail "BackupsRemoved: $note"
read -r last next <<<"$(k get rsbak every5 -o jsonpath='{.status.lastScheduleTime} {.status.nextScheduleTime}')"
[[ -n $last && -n $next && $next > $last ]] && ok "status: last $last, next $next" || fail "status: last=$last next=$next"
k patch rsbak every5 --type merge -p '{"spec":{"suspend":true}}' >/dev/null
suspended() { [[ $(k get rsbak every5 -o jsonpath='{.status.conditions[0].reason}/{.status.nextScheduleTime}') == Suspended/ ]]; }
wait_until "suspended: no next slot" 30 suspended
k delete rsbak every5 --wait=true >/dev/null
collected() { local left; left=$(k get rbak -l cnredis.io/scheduledBackup=every5 -o name); [[ -z $left ]] || { echo "$left"; return 1; }; }
wait_until "its RedisBackups deleted with it (backupOwnerReference: self)" 60 collected

k get rbak 2>&1 | sed 's/^/  /'
k delete rcl "$C" --wait=true >/dev/null
echo
echo "$passed passed, $failed failed"
if ((failed > 0)); then
  echo "--- operator log (tail)"
  "$KUBECTL" -n cnredis-system logs deploy/cnredis --tail=60 2>&1
  echo "--- backups"
  k get rbak -o yaml 2>&1 | grep -E 'name:|phase|error|message' | head -60
fi
((failed == 0))
