#!/usr/bin/env bash
# What each binary links, checked: the kubectl plugin and the API crate stay small, and the Kubernetes API
# version the types are built for is the one the e2e runs. Fails with what it found.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
fail() { echo "check-deps: $*" >&2; status=1; }

# Crates (names, without versions) a package links in normal builds for the release target.
linked() {
  cargo tree --locked -p "$1" -e normal --prefix none --target x86_64-unknown-linux-gnu \
    | sed 's/ (\*)//; s/ v[0-9].*//' | sort -u
}

plugin=$(linked kubectl-cnredis)
for crate in reqwest object_store rcgen x509-parser redis axum; do
  grep -qx "$crate" <<<"$plugin" && fail "the kubectl plugin links $crate (it needs only the wire types)"
done
count=$(wc -l <<<"$plugin")
(( count <= 170 )) || fail "the kubectl plugin links $count crates (at most 170 expected)"
echo "kubectl-cnredis links $count crates"

api=$(linked cnredis-api)
for crate in kube-client kube-runtime hyper tokio; do
  grep -qx "$crate" <<<"$api" && fail "cnredis-api links $crate (the API types need only kube's derive)"
done
echo "cnredis-api links $(wc -l <<<"$api") crates"

# The k8s-openapi API version feature is the e2e's Kubernetes minor version.
kube_minor=$(sed -n 's/.*KV=\${KUBE_VERSION:-1\.\([0-9]*\)\..*/\1/p' e2e/install-kube.sh)
feature=$(sed -n 's/^k8s-openapi = .*"v1_\([0-9]*\)".*/\1/p' Cargo.toml)
[[ -n $kube_minor && $kube_minor == "$feature" ]] \
  || fail "k8s-openapi is built for v1_${feature:-?} but the e2e runs Kubernetes 1.${kube_minor:-?}"
echo "k8s-openapi v1_$feature, e2e Kubernetes 1.$kube_minor"
exit $status
