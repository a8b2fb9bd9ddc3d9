#!/usr/bin/env bash
# Makes a helm binary available and prints its path as the last line of stdout:
#   HELM=$(hack/install-helm.sh | tail -1)
#
# No prebuilt helm can be downloaded here, so it is built from helm's official Go module (fetched through
# the Go module proxy) with the local Go toolchain. The result is cached per version, so only the first
# run builds. Progress goes to stderr.
set -euo pipefail

HELM_VERSION=v3.22.0

cache_bin_dir="${CNREDIS_CACHE:-$HOME/.cache/cnredis}/bin"
helm_bin="$cache_bin_dir/helm-$HELM_VERSION"

log() { printf 'install-helm: %s\n' "$*" >&2; }

if [[ -x $helm_bin ]]; then
  echo "$helm_bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "go is required to build helm $HELM_VERSION, and it is not on PATH"
  exit 1
fi

# Build with exactly the Go that is installed (no toolchain download), statically, and in module mode
# regardless of what the caller's environment says.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod GO111MODULE=on

log "building helm $HELM_VERSION with $(go env GOVERSION) (first run only; takes a few minutes)"

# helm's Makefile derives the Kubernetes version that `helm template` and `helm lint` assume from the
# client-go it is built against (major+1, minor). Without it helm assumes v1.20.0, and charts with a
# kubeVersion constraint (ours: >=1.29.0-0) fail to render.
helm_gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
client_go=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v\([0-9][0-9]*\)\.\([0-9][0-9]*\)\..*/\1 \2/p' "$helm_gomod")
if [[ -z $client_go ]]; then
  log "could not find the k8s.io/client-go version in $helm_gomod"
  exit 1
fi
read -r cg_major cg_minor <<<"$client_go"
k8s_major=$((cg_major + 1))
k8s_minor=$cg_minor

# The same -X flags as helm's Makefile. A module zip carries no git metadata, so gitCommit stays empty;
# the tree is the released tag's, hence "clean".
ldflags="-w -s"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$k8s_major"
ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$k8s_major"
ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"

mkdir -p "$cache_bin_dir"
# The temp dir sits next to the destination so the final mv is a rename on one filesystem (atomic).
build_dir=$(mktemp -d "$cache_bin_dir/.helm-build.XXXXXX")
trap 'rm -rf "$build_dir"' EXIT

GOBIN="$build_dir" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

built_version=$("$build_dir/helm" version --template '{{ .Version }}')
if [[ $built_version != "$HELM_VERSION" ]]; then
  log "built helm reports version '$built_version', expected '$HELM_VERSION'"
  exit 1
fi

mv -f "$build_dir/helm" "$helm_bin"
log "installed $("$helm_bin" version --short) (assumes Kubernetes v$k8s_major.$k8s_minor)"
echo "$helm_bin"
