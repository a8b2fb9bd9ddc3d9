#!/usr/bin/env bash
# Chart checks beyond `cargo xtask check` (which proves the rendered chart equals manifests/):
# lint, and the values schema rejecting typos and bad values with a clear message.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=${HELM:-helm}
chart=helm/cnredis
failures=0

"$HELM" lint --strict "$chart"

expect_rejected() {
  local what=$1 expected=$2; shift 2
  local out
  if out=$("$HELM" template cnredis "$chart" --namespace cnredis-system "$@" 2>&1); then
    echo "FAIL: $what: helm template accepted $*"
    failures=$((failures + 1))
  elif ! grep -qF -- "$expected" <<<"$out"; then
    echo "FAIL: $what: expected an error containing '$expected', got: $out"
    failures=$((failures + 1))
  else
    echo "ok: $what is rejected: $(grep -F -- "$expected" <<<"$out" | head -1)"
  fi
}

expect_rendered() {
  local what=$1 expected=$2; shift 2
  local out
  if ! out=$("$HELM" template cnredis "$chart" --namespace cnredis-system "$@" 2>&1); then
    echo "FAIL: $what: helm template failed: $out"
    failures=$((failures + 1))
  elif ! grep -qF -- "$expected" <<<"$out"; then
    echo "FAIL: $what: rendered output lacks '$expected'"
    failures=$((failures + 1))
  else
    echo "ok: $what renders '$expected'"
  fi
}

expect_rejected "a misspelt value" "additional properties 'logFormatt' not allowed" --set logFormatt=json
expect_rejected "an unknown log format" "value must be one of 'json', 'text'" --set logFormat=xml
expect_rejected "zero replicas" "replicaCount" --set replicaCount=0
expect_rendered "watched namespaces" "--watch-namespaces=team-a,team-b" --set 'watchNamespaces={team-a,team-b}'
expect_rendered "leader election off" "--leader-elect=false" --set leaderElection.enabled=false
expect_rendered "the image tag" 'image: "cnredis/cnredis:9.9.9"' --set image.tag=9.9.9
expect_rendered "roles for people, aggregated into view" "rbac.authorization.k8s.io/aggregate-to-view"
expect_rendered "the plugin's role" "name: cnredis-plugin"
if ! without=$("$HELM" template cnredis "$chart" --namespace cnredis-system --set rbac.userRoles=false 2>&1); then
  echo "FAIL: rbac.userRoles=false does not render: $without"
  failures=$((failures + 1))
elif grep -q "aggregate-to-view" <<<"$without"; then
  echo "FAIL: rbac.userRoles=false still renders the roles for people"
  failures=$((failures + 1))
else
  echo "ok: rbac.userRoles=false renders no roles for people"
fi
expect_rejected "rbac.userRoles that is no boolean" "userRoles" --set rbac.userRoles=maybe

if (( failures > 0 )); then
  echo "chart checks: $failures failed"
  exit 1
fi
echo "chart checks: all passed"
