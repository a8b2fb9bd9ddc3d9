#!/usr/bin/env bash
# A real S3-compatible object store on the host for the backup end-to-end tests: the Versity S3 gateway
# (versitygw, built by e2e/install-versitygw.sh) with its posix backend, one directory per bucket.
#
#   e2e/s3.sh up              start it in the background (idempotent) and create the bucket
#   e2e/s3.sh down [--purge]  stop it; --purge also removes the data and the state directory
#   e2e/s3.sh env             shell exports for clients: eval "$(e2e/s3.sh env)"
#   e2e/s3.sh status          running or not (exit 0 / 1)
#
# Environment (the same values must be given to up, env and down):
#   S3_ADDR        listen address <ip>:<port> (default 0.0.0.0:7070: every host address, so pods reach it
#                  on the cluster bridge address 10.245.0.1 and host-side tools on 127.0.0.1)
#   S3_ADVERTISE   host (IP) put into S3_ENDPOINT; default: the S3_ADDR ip if it is not 0.0.0.0, else
#                  10.245.0.1 when that address is on the host (cluster up), else 127.0.0.1
#   S3_ACCESS_KEY  root access key (default cnredis-e2e)
#   S3_SECRET_KEY  root secret key (default a fixed test secret, below)
#   S3_REGION      default us-east-1
#   S3_BUCKET      bucket created by `up` (default backups)
#   S3_ROOT        posix backend root, one sub-directory per bucket (default /var/tmp/cnredis-s3)
#   S3_STATE_DIR   pid file, log, metadata sidecar (default /var/tmp/cnredis-s3-state; never inside
#                  S3_ROOT, where every directory is a bucket)
#   S3_META        object metadata store: auto (default: user xattrs on S3_ROOT when that filesystem
#                  supports them, else a sidecar directory), xattr, sidecar or nometa
#   S3_START_TIMEOUT  seconds `up` waits for the gateway to answer (default 30)
#   VERSITYGW      the binary (default: whatever e2e/install-versitygw.sh prints; it builds on first use)
#
# Progress goes to stderr; `env` prints only the exports on stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[s3 %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

S3_ADDR=${S3_ADDR:-0.0.0.0:7070}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-cnredis-e2e}
S3_SECRET_KEY=${S3_SECRET_KEY:-cnredis-e2e-test-secret-not-for-production}
S3_REGION=${S3_REGION:-us-east-1}
S3_BUCKET=${S3_BUCKET:-backups}
S3_ROOT=${S3_ROOT:-/var/tmp/cnredis-s3}
S3_STATE_DIR=${S3_STATE_DIR:-/var/tmp/cnredis-s3-state}
S3_META=${S3_META:-auto}
S3_START_TIMEOUT=${S3_START_TIMEOUT:-30}

[[ $S3_ADDR == *:* ]] || die "S3_ADDR must be <ip>:<port>, got '$S3_ADDR'"
BIND_IP=${S3_ADDR%:*}
PORT=${S3_ADDR##*:}
[[ $PORT =~ ^[0-9]+$ ]] || die "bad port in S3_ADDR '$S3_ADDR'"
[[ -z $BIND_IP ]] && BIND_IP=0.0.0.0

PIDFILE=$S3_STATE_DIR/versitygw.pid
LOGFILE=$S3_STATE_DIR/versitygw.log
SIDECAR=$S3_STATE_DIR/sidecar
HEALTH=/health

# Where this host itself reaches the gateway (for the readiness probe and bucket creation).
local_ip() { [[ $BIND_IP == 0.0.0.0 ]] && echo 127.0.0.1 || echo "$BIND_IP"; }

advertise_ip() {
  if [[ -n ${S3_ADVERTISE:-} ]]; then echo "$S3_ADVERTISE"
  elif [[ $BIND_IP != 0.0.0.0 ]]; then echo "$BIND_IP"
  elif ip -4 -o addr show 2>/dev/null | awk '{print $4}' | grep -qx '10\.245\.0\.1/[0-9]*'; then echo 10.245.0.1
  else echo 127.0.0.1
  fi
}

# running: prints the pid of our gateway if the pid file names a live versitygw process.
running() {
  [[ -s $PIDFILE ]] || return 1
  local pid; pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'versitygw' || return 1
  echo "$pid"
}

healthy() { curl -fsS -o /dev/null --max-time 2 "http://$(local_ip):$PORT$HEALTH"; }

# s3_curl METHOD PATH [curl args...]: a SigV4-signed request as the root user; prints the HTTP status.
s3_curl() {
  local method=$1 path=$2; shift 2
  local m=(-X "$method")
  [[ $method == HEAD ]] && m=(--head) # -X HEAD would wait for the body its Content-Length announces
  curl -sS -o "$S3_STATE_DIR/last-response" -w '%{http_code}' --max-time 10 "${m[@]}" \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "http://$(local_ip):$PORT$path"
}

xattr_ok() { # xattr_ok DIR: can DIR's filesystem hold user.* extended attributes?
  python3 - "$1" <<'PY' 2>/dev/null
import os, sys, tempfile
with tempfile.NamedTemporaryFile(dir=sys.argv[1]) as f:
    os.setxattr(f.name, "user.cnredis-probe", b"1")
    assert os.getxattr(f.name, "user.cnredis-probe") == b"1"
PY
}

log_tail() { [[ -f $LOGFILE ]] && { log "last lines of $LOGFILE:"; tail -n 40 "$LOGFILE" | sed 's/^/    /' >&2; }; return 0; }

ensure_bucket() {
  local code
  code=$(s3_curl HEAD "/$S3_BUCKET") || die "HEAD bucket request failed"
  if [[ $code == 200 ]]; then log "bucket $S3_BUCKET exists"; return 0; fi
  [[ $code == 404 ]] || die "HEAD /$S3_BUCKET answered HTTP $code"
  code=$(s3_curl PUT "/$S3_BUCKET") || die "CreateBucket request failed"
  case $code in
    200) log "created bucket $S3_BUCKET" ;;
    409) log "bucket $S3_BUCKET already there ($(grep -o '<Code>[^<]*' "$S3_STATE_DIR/last-response" | sed 's/<Code>//'))" ;;
    *) cat "$S3_STATE_DIR/last-response" >&2 2>/dev/null || true; die "CreateBucket $S3_BUCKET answered HTTP $code" ;;
  esac
  code=$(s3_curl HEAD "/$S3_BUCKET") || die "HEAD bucket request failed"
  [[ $code == 200 ]] || die "bucket $S3_BUCKET not visible after CreateBucket (HEAD answered HTTP $code)"
}

cmd_up() {
  command -v curl >/dev/null || die "curl not found"
  command -v python3 >/dev/null || die "python3 not found"
  mkdir -p "$S3_STATE_DIR" "$S3_ROOT"
  case $(realpath -m "$S3_STATE_DIR")/ in
    "$(realpath -m "$S3_ROOT")"/*) die "S3_STATE_DIR ($S3_STATE_DIR) must not be inside S3_ROOT ($S3_ROOT)" ;;
  esac

  local pid
  if pid=$(running); then
    if healthy; then
      log "versitygw already running (pid $pid) on $S3_ADDR"
      ensure_bucket
      log "endpoint http://$(advertise_ip):$PORT"
      return 0
    fi
    log "versitygw pid $pid is alive but does not answer; restarting it"
    cmd_down
    mkdir -p "$S3_STATE_DIR" "$S3_ROOT"
  fi
  if healthy 2>/dev/null; then
    die "something else already answers on $(local_ip):$PORT (not the gateway of $PIDFILE); stop it or set S3_ADDR"
  fi

  local bin=${VERSITYGW:-}
  if [[ -z $bin ]]; then bin=$("$HERE/install-versitygw.sh" | tail -1); fi
  [[ -x $bin ]] || die "versitygw binary '$bin' not executable"

  local meta=$S3_META backend_opts=()
  if [[ $meta == auto ]]; then
    if xattr_ok "$S3_ROOT"; then meta=xattr; else meta=sidecar; fi
  fi
  case $meta in
    xattr) ;;
    sidecar) mkdir -p "$SIDECAR"; backend_opts+=(--sidecar "$SIDECAR") ;;
    nometa) backend_opts+=(--nometa) ;;
    *) die "S3_META must be auto, xattr, sidecar or nometa, not '$meta'" ;;
  esac
  log "metadata store: $meta$([[ $meta == sidecar ]] && echo " ($SIDECAR)")"

  # Global options before the backend command (urfave/cli parses them per command level).
  local args=(--port "$S3_ADDR" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --region "$S3_REGION"
    --health "$HEALTH" posix "${backend_opts[@]}" "$S3_ROOT")
  printf '=== %s versitygw %s\n' "$(date -u +%FT%TZ)" "${args[*]/$S3_SECRET_KEY/<secret>}" >>"$LOGFILE"
  # setsid: its own session, so it outlives this shell and the caller's process group.
  setsid "$bin" "${args[@]}" </dev/null >>"$LOGFILE" 2>&1 &
  pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$PIDFILE"
  log "started versitygw pid $pid on $S3_ADDR, root $S3_ROOT, log $LOGFILE"

  local deadline=$((SECONDS + S3_START_TIMEOUT))
  until healthy 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log_tail; rm -f "$PIDFILE"; die "versitygw exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      log_tail; kill -KILL "$pid" 2>/dev/null || true; rm -f "$PIDFILE"
      die "versitygw did not answer on http://$(local_ip):$PORT$HEALTH within ${S3_START_TIMEOUT}s; killed pid $pid"
    fi
    sleep 0.1
  done
  running >/dev/null || die "pid $pid answers but is not versitygw?"
  log "versitygw answers on http://$(local_ip):$PORT"
  ensure_bucket
  log "endpoint http://$(advertise_ip):$PORT"
}

cmd_down() {
  local purge=0
  [[ ${1:-} == --purge ]] && purge=1
  local pid
  if pid=$(running); then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then log "versitygw pid $pid ignores SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.1
    done
    log "stopped versitygw pid $pid"
  else
    log "versitygw not running"
  fi
  rm -f "$PIDFILE"
  if [[ $purge == 1 ]]; then
    local d
    for d in "$S3_ROOT" "$S3_STATE_DIR"; do
      case $(realpath -m "$d") in
        / | /var | /var/tmp | /tmp | /root | /home | "$HOME") die "refusing to remove '$d'" ;;
      esac
      rm -rf "$d"
    done
    log "purged $S3_ROOT and $S3_STATE_DIR"
  fi
}

cmd_env() {
  printf 'export S3_ENDPOINT=%q\n' "http://$(advertise_ip):$PORT"
  printf 'export S3_ACCESS_KEY=%q\n' "$S3_ACCESS_KEY"
  printf 'export S3_SECRET_KEY=%q\n' "$S3_SECRET_KEY"
  printf 'export S3_BUCKET=%q\n' "$S3_BUCKET"
  printf 'export S3_REGION=%q\n' "$S3_REGION"
}

cmd_status() {
  local pid
  if pid=$(running) && healthy 2>/dev/null; then
    echo "running pid $pid on $S3_ADDR, endpoint http://$(advertise_ip):$PORT, root $S3_ROOT"
  elif [[ -n ${pid:-} ]]; then
    echo "pid $pid alive but not answering on $(local_ip):$PORT"; return 1
  else
    echo "not running"; return 1
  fi
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  env) shift; cmd_env ;;
  status) shift; cmd_status ;;
  *) echo "usage: $0 up | down [--purge] | env | status" >&2; exit 2 ;;
esac
