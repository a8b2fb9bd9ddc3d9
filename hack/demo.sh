#!/usr/bin/env bash
# `make demo`: the operator on the local cluster. Brings the cluster up (e2e/cluster.sh), installs the
# operator with its Helm chart (the image cnredis/cnredis maps to the freshly built binary), applies
# manifests/examples/cluster-ha.yaml, waits until the RedisCluster is Ready, prints its status, and writes
# a key through `<cluster>-leader` and reads it from `<cluster>-replica` with the `<cluster>-app` secret.
#
# The cluster stays up afterwards: `make cluster-down` removes it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CNREDIS_E2E_DIR:-/var/tmp/cnredis-e2e}
export KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=$(ls -d "${CNREDIS_CACHE:-$HOME/.cache/cnredis}"/kube-v1.35.*/bin/kubectl | sort -V | tail -1)
HELM=${HELM:-$("$ROOT/hack/install-helm.sh" | tail -1)}
NS=${DEMO_NAMESPACE:-demo}
CLUSTER=sessions

log() { printf '\n[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
k() { "$KUBECTL" "$@"; }

log "local cluster"
"$ROOT/e2e/cluster.sh" up | tail -1

log "helm install cnredis (operator image cnredis/cnredis:dev = target/x86_64-unknown-linux-gnu/release/cnredis)"
"$HELM" upgrade --install cnredis "$ROOT/helm/cnredis" --namespace cnredis-system --create-namespace \
  --set image.tag=dev --set logFormat=text --wait --timeout 120s
k -n cnredis-system get pods -o wide

log "kubectl apply -f manifests/examples/cluster-ha.yaml"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
started=$SECONDS
k -n "$NS" apply -f "$ROOT/manifests/examples/cluster-ha.yaml"
if ! k -n "$NS" wait "redisclusters/$CLUSTER" --for=condition=Ready --timeout=300s; then
  k -n "$NS" get redisclusters,pods -o wide
  k -n "$NS" get redisclusters "$CLUSTER" -o jsonpath='{.status}'; echo
  k -n cnredis-system logs deploy/cnredis --tail=50
  exit 1
fi
log "Ready in $((SECONDS - started)) s"
k -n "$NS" get redisclusters,pods,services,pdb -o wide
k -n "$NS" get redisclusters "$CLUSTER" -o jsonpath='{range .status.instancesStatus[*]}{.name}{"\t"}{.role}{"\tready="}{.ready}{"\tlink="}{.link}{"\toffset="}{.replicationOffset}{"\tnode="}{.node}{"\n"}{end}'

log "write through $CLUSTER-leader, read from $CLUSTER-replica, with the $CLUSTER-app secret"
# shellcheck source=e2e/lib.sh
source "$ROOT/e2e/lib.sh"
# shellcheck disable=SC2016 # expanded in the client pod
if ! app_client "$NS" "$CLUSTER" demo-client 'set -e
  host=$(cat /app/host)
  replica=$(echo $host | sed s/-leader/-replica/)
  echo "uri: $(sed "s/:[^:@]*@/:***@/" /app/uri)"
  echo "SET demo:greeting via $host: $(valkey-cli -h $host set demo:greeting "hello from cnredis")"
  retry sh -c "[ \"\$(valkey-cli -h $replica get demo:greeting)\" = \"hello from cnredis\" ]"
  echo "GET demo:greeting via $replica: $(valkey-cli -h $replica get demo:greeting)"
  echo "role of $replica: $(valkey-cli -h $replica role | head -1)"'; then
  log "the client failed"
  exit 1
fi
log "kubectl cnredis status $CLUSTER (the plugin: target/x86_64-unknown-linux-gnu/release/kubectl-cnredis)"
PATH=$ROOT/target/x86_64-unknown-linux-gnu/release:$PATH k cnredis -n "$NS" status "$CLUSTER"

log "done; the cluster stays up (make cluster-down removes it). KUBECONFIG=$KUBECONFIG"
