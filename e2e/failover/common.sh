# Shared by the failover suite (e2e/failover/run.sh) and its Sentinel counterpart (e2e/sentinel/run.sh),
# sourced first (after setting E2E, the e2e directory): the local cluster's paths, and the same writer,
# probe and counting for both, so their figures compare. Before calling the functions, the caller
# sources e2e/lib.sh and sets k() (kubectl in its namespace), NS, WORK (a scratch directory) and:
#   PROBE_SELECTOR  label selector of the pods that run a server (probed for writability);
#   SECRET          a Secret with `password` (and, for cnredis, `host`: the -leader Service) that the
#                   writer mounts at /app;
#   primary_ip()    the address the writer's final "stop" key is written to.

ROOT=$(cd "$E2E/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
CACHE=${CNREDIS_CACHE:-$HOME/.cache/cnredis}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=${KUBECTL:-$(ls -d "$CACHE"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)}
KUBELET=${KUBELET:-$ROOT/target/x86_64-unknown-linux-gnu/release/cnredis-kubelet}
CLI=${CLI:-$CACHE/images/valkey-8.1/usr/local/bin/valkey-cli}

# The probe: every 200 ms, every server pod is asked in its own network namespace whether it takes a
# write (DEL of a key that never exists: refused by replicas, fenced and isolated servers; and, a no-op,
# never replicated) — twice, in one order and then in the reverse order, and it counts as writable in
# that round only if it said yes both times. So two pods counted in one round were both writable at one
# moment (each said yes before and after the other did), where one pass alone also counts a primary
# fenced just after its probe and a successor promoted just before its own (a switchover's fence ->
# promote can take less than one pass). Each line of probe.log: epoch_ms and the writable pods. A
# writable pod is also asked its replication offset: "epoch_ms pod offset" in offsets.log.
# cli_in NETNS ARGS...: valkey-cli on 127.0.0.1 inside NETNS, with the probe's password ($pw).
cli_in() { REDISCLI_AUTH=$pw timeout 0.5 ip netns exec "$1" "$CLI" -h 127.0.0.1 "${@:2}" 2>/dev/null; }
writable_now() { cli_in "$1" DEL cnredis:probe:never; }

probe_loop() {
  local pw netns=() names=() refreshed=0
  pw=$(k get secret "$SECRET" -o jsonpath='{.data.password}' | base64 -d)
  while [[ ! -e $WORK/probe.stop ]]; do
    if ((SECONDS - refreshed >= 2)); then
      # Bounded: while the API server is down the probe goes on with the pods it knew.
      local listed
      refreshed=$SECONDS
      listed=$(k get pods -l "$PROBE_SELECTOR" --request-timeout=1s -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}' 2>/dev/null)
      if [[ -n $listed ]]; then
        names=(); netns=()
        while read -r name uid; do
          [[ -n $name ]] || continue
          names+=("$name"); netns+=("cnr-$(echo "${uid//-/}" | cut -c1-12)")
        done <<<"$listed"
      fi
    fi
    local i writable="" out first=()
    for i in "${!names[@]}"; do first[i]=$(writable_now "${netns[$i]}"); done
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do
      [[ ${first[i]} == 0 && $(writable_now "${netns[$i]}") == 0 ]] || continue
      writable+=" ${names[$i]}"
      out=$(cli_in "${netns[$i]}" INFO replication | sed -n 's/^master_repl_offset:\([0-9]*\).*/\1/p')
      [[ -n $out ]] && echo "$(date +%s%3N) ${names[$i]} $out" >>"$WORK/offsets.log"
    done
    echo "$(date +%s%3N)$writable" >>"$WORK/probe.log"
    sleep 0.2
  done
}

# start_writer NAME NODE [SENTINELS]: the writer pod, pinned to NODE: SET w:N + WAIT 1 until e2e:stop
# exists, printing "ack N epoch_ms" per acknowledged write; then reads back every acknowledged key. It
# writes to /app/host (cnredis: the -leader Service) or, given SENTINELS (space-separated addresses),
# asks them for the primary before every write, the first that answers within 1 s winning: the most
# eager rediscovery a Sentinel-aware client can do (a real one asks again only when a call fails).
start_writer() {
  local name=$1 node=$2 sentinels=${3:-} script
  script=$(base64 -w0 <<'SH'
# find_primary: sets host. A sentinel that answered goes first next time, as Sentinel clients do.
find_primary() {
  [ -n "$SENTINELS" ] || { host=$(cat /app/host); return; }
  for s in $SENTINELS; do
    host=$(env -u REDISCLI_AUTH timeout 1 valkey-cli -h "$s" -p 26379 SENTINEL get-master-addr-by-name mymaster 2>/dev/null | head -1)
    [ -n "$host" ] && { SENTINELS="$s $(echo $SENTINELS | tr ' ' '\n' | grep -vx "$s" | tr '\n' ' ')"; return; }
  done
}
n=0; acked=""
while :; do
  n=$((n + 1))
  find_primary
  began=$(date +%s%3N)
  out=$(printf 'SET w:%s %s\nWAIT 1 1000\nGET e2e:stop\n' "$RUN:$n" "$n" | timeout 3 valkey-cli -h "$host" 2>&1 | tr '\n' ' ')
  set -- $out
  if [ "${1:-}" = OK ] && [ "${2:-0}" -ge 1 ] 2>/dev/null; then
    echo "ack $n $(date +%s%3N)"; acked="$acked $n"
  else
    echo "err $n $(date +%s%3N) $began ${out:-(no answer within 3 s)}" | cut -c1-160
    sleep 0.05
  fi
  [ "${3:-}" = "$RUN" ] && break
done
find_primary
# Counted as found only when read back as the number written: a read that fails (refused, an error
# reply) finds nothing, so it counts every acknowledged write missing rather than none.
total=$(echo $acked | wc -w)
found=$(for i in $acked; do echo "GET w:$RUN:$i"; done | valkey-cli -h "$host" 2>/dev/null | grep -cx '[0-9][0-9]*')
missing=$((total - found))
echo "acknowledged=$total missing=$missing"
[ "$missing" -eq 0 ]
SH
)
  k delete pod "$name" --ignore-not-found --wait=true >/dev/null 2>&1
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  restartPolicy: Never
  nodeName: $node
  containers:
    - name: client
      image: cnredis/e2e-client:1
      command: [sh, -c]
      args: ['export REDISCLI_AUTH=\$(cat /app/password) RUN=$name SENTINELS="$sentinels"; echo $script | base64 -d > /tmp/w.sh; sh /tmp/w.sh']
      volumeMounts: [{name: app, mountPath: /app, readOnly: true}]
  volumes: [{name: app, secret: {secretName: $SECRET}}]
YAML
}

acks() { k logs "$1" 2>/dev/null | grep -c '^ack '; }

# stop_writer NAME: writes the stop key to the primary and keeps the writer's log in $WORK/NAME.log.
stop_writer() {
  local name=$1 pw
  pw=$(k get secret "$SECRET" -o jsonpath='{.data.password}' | base64 -d)
  # The primary may be fenced for a moment (a switchover the operator retries): ask until one takes it.
  stop_written() { local out; out=$(REDISCLI_AUTH=$pw timeout 5 "$CLI" -h "$(primary_ip)" SET e2e:stop "$name" 2>&1); [[ $out == OK ]] || { echo "$out"; return 1; }; }
  wait_until "$name: stop key written" 60 stop_written
  finished_pod "$NS" "$name" 60 >"$WORK/$name.log" 2>&1
}

# longest_gap WRITER FROM_MS: the longest time between two acknowledged writes from FROM_MS on.
longest_gap() {
  grep '^ack ' "$WORK/$1.log" | awk -v from="$2" '$3 >= from { if (last && $3 - last > gap) gap = $3 - last; last = $3 } END { print gap + 0 }'
}

# gap_attempts WRITER FROM_MS: what the writer's failed attempts within that longest gap got, in order,
# repeats folded ("+120..+1180 ms: 2 x SET ok, WAIT answered 0 (each 1003-1010 ms)", times from the last
# acknowledged write before the gap): where a gap's time went.
gap_attempts() {
  awk -v from="$2" '
    $1 == "ack" && $3 >= from { if (last && $3 - last > gap) { gap = $3 - last; start = last; end = $3 } last = $3 }
    $1 == "err" { errs[++m] = $0 }
    function flush() {
      if (n) printf "+%d..+%d ms: %d x %s (each %d-%d ms); ", t0 - start, t1 - start, n, prev, dmin, dmax
      n = 0
    }
    END {
      for (i = 1; i <= m; i++) {
        split(errs[i], f, " ")
        if (f[3] <= start || f[3] >= end) continue
        what = errs[i]; sub(/^err [0-9]+ [0-9]+ [0-9]+ ?/, "", what)
        if (what ~ /^OK 0 /) what = "SET ok, WAIT answered 0"
        gsub(/[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+(:[0-9]+)?/, "ADDR", what)
        took = f[3] - f[4]
        if (what != prev) { flush(); prev = what; t0 = f[4]; dmin = took; dmax = took }
        n++; t1 = f[3]; if (took < dmin) dmin = took; if (took > dmax) dmax = took
      }
      flush()
      printf "then acknowledged at +%d ms\n", end - start
    }' "$WORK/$1.log"
}

# two_primaries FROM_MS [POD UNTIL_MS]: probe lines from FROM_MS on with two or more writable pods; a
# line until UNTIL_MS whose only extra writable pod is POD does not count (a resumed primary, see
# freeze-node).
two_primaries() {
  awk -v from="$1" -v pod="${2:-}" -v until="${3:-0}" '$1 >= from && NF > 2 {
    if ($1 <= until && NF == 3 && ($2 == pod || $3 == pod)) next; print }' "$WORK/probe.log"
}

# two_primaries_ms FROM_MS: how long, from FROM_MS on, two or more pods took writes, as the probe saw it
# (each probe line that saw two stands for the time since the line before it).
two_primaries_ms() {
  awk -v from="$1" '$1 >= from { if (NF > 2 && last) total += $1 - last; last = $1 } END { print total + 0 }' "$WORK/probe.log"
}

# offset_regressions FROM_MS [POD UNTIL_MS]: the writable servers' offsets (offsets.log) from FROM_MS on
# that went back: lower than the highest a writable server had before by more than OFFSET_SLACK bytes
# (default 4096: the tail an old primary took but never replicated, writes no WAIT acknowledged, with the
# replication stream's REPLCONF GETACKs). A restarted primary serving its stale RDB, or a follower of an
# empty or behind primary, goes back by all it missed. POD until UNTIL_MS is measured apart (a resumed
# primary, see freeze-node).
offset_regressions() {
  [[ -e $WORK/offsets.log ]] || return 0
  awk -v from="$1" -v pod="${2:-}" -v until="${3:-0}" -v slack="${OFFSET_SLACK:-4096}" '$1 >= from {
    if ($1 <= until && $2 == pod) next
    if ($3 + slack < high) print $1, $2, $3, "< " high, "(" high_pod ")"
    if ($3 > high) { high = $3; high_pod = $2 } }' "$WORK/offsets.log"
}

node_of() { k get pod "$1" -o jsonpath='{.spec.nodeName}'; }
# chaos NODE ARGS...: a fault through NODE's kubelet (`cnredis-kubelet chaos --help`).
# A fault the kubelet refuses is a failure of the scenario, said at once (not 90 s later as "no failover").
chaos() {
  local node=$1; shift
  "$KUBELET" chaos --socket "$DIR/nodes/$node/chaos.sock" "$@" >/dev/null 2>"$WORK/chaos.err" \
    || { fail "chaos on $node, $*: not applied: $(grep -m1 '^Error' "$WORK/chaos.err")"; return 1; }
}

# netns_of POD: the network namespace the local cluster's kubelet made for POD (e2e/README.md).
netns_of() { echo "cnr-$(k get pod "$1" -o jsonpath='{.metadata.uid}' | tr -d - | cut -c1-12)"; }

# server_pid POD: the pid of the valkey-server process in POD.
# manager_pid POD: the pid of POD's instance manager (`cnredis instance run`, the container's first process).
manager_pid() {
  ip netns pids "$(netns_of "$1")" 2>/dev/null \
    | while read -r p; do [[ $(cat /proc/$p/comm 2>/dev/null) == cnredis ]] && echo "$p"; done | head -1
}
server_pid() {
  ip netns pids "$(netns_of "$1")" 2>/dev/null \
    | while read -r p; do [[ $(cat /proc/$p/comm 2>/dev/null) == valkey-server ]] && echo "$p"; done | head -1
}
