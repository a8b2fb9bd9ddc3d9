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
k -n "$NS" delete pod demo-client --ignore-not-found --wait=true >/dev/null
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: demo-client}
spec:
  restartPolicy: Never
  containers:
    - name: client
      image: cnredis/e2e-client:1
      command: [sh, -c]
      args:
        - |
          set -e
          export REDISCLI_AUTH=\$(cat /app/password)
          host=\$(cat /app/host)
          replica=\$(echo \$host | sed s/-leader/-replica/)
          echo "uri: \$(sed 's/:[^:@]*@/:***@/' /app/uri)"
          echo "SET demo:greeting via \$host: \$(valkey-cli -h \$host set demo:greeting 'hello from cnredis')"
          i=0; until [ "\$(valkey-cli -h \$replica get demo:greeting)" = "hello from cnredis" ]; do
            i=\$((i+1)); [ \$i -ge 20 ] && exit 1; sleep 1; done
          echo "GET demo:greeting via \$replica: \$(valkey-cli -h \$replica get demo:greeting)"
          echo "role of \$replica: \$(valkey-cli -h \$replica role | head -1)"
      volumeMounts: [{name: app, mountPath: /app, readOnly: true}]
  volumes: [{name: app, secret: {secretName: $CLUSTER-app}}]
EOF
for _ in $(seq 1 90); do
  phase=$(k -n "$NS" get pod demo-client -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
k -n "$NS" logs demo-client
[[ $phase == Succeeded ]] || { log "the client failed (phase $phase)"; exit 1; }
log "done; the cluster stays up (make cluster-down removes it). KUBECONFIG=$KUBECONFIG"
