# The developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

TARGET      := x86_64-unknown-linux-gnu
RELEASE_BIN := $(CURDIR)/target/$(TARGET)/release/cnredis
HELM         = $(shell hack/install-helm.sh | tail -1)
# The tests' build: the instance manager's failpoints compiled in (crates/instance/src/failpoint.rs).
TEST_FEATURES := --features cnredis/failpoints

.PHONY: all build tools deps generate test fmt-check clippy deps-check unit check-generated chart-test admission-e2e e2e e2e-smoke chaos cluster-up cluster-down cluster-status demo clean

all: build

## build: the static release binaries (cnredis, the kubectl plugin kubectl-cnredis, and the local
## cluster's cnredis-kubelet)
## (with the failpoints the chaos suite arms: `crates/instance/src/failpoint.rs`, inert unless armed)
build:
	cargo build --release --locked $(TEST_FEATURES) -p cnredis -p kubectl-cnredis -p cnredis-kubelet

## tools: build (once, cached under ~/.cache/cnredis) the tools the checks need
tools:
	@hack/install-helm.sh >/dev/null

## deps: the engines, system packages and S3 server (versitygw) the tests run (cached under ~/.cache/cnredis)
deps:
	e2e/install-deps.sh >/dev/null
	e2e/install-versitygw.sh >/dev/null

## generate: rewrite every generated file (CRDs, docs/api.md, manifests rendered from the chart)
generate: tools
	HELM=$(HELM) cargo xtask generate

## test: everything CI checks
test: fmt-check clippy deps-check build unit check-generated chart-test admission-e2e e2e

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --locked --workspace --all-targets $(TEST_FEATURES) -- -D warnings

## deps-check: the plugin and the API crate link only what they need; k8s-openapi is built for the
## Kubernetes version the e2e runs
deps-check:
	hack/check-deps.sh

## unit: unit tests, and the instance manager's integration tests against real servers
unit: build deps
	CNREDIS_BIN=$(RELEASE_BIN) cargo test --locked --workspace $(TEST_FEATURES)

check-generated: tools
	HELM=$(HELM) cargo xtask check

chart-test: tools
	HELM=$(HELM) hack/test-chart.sh

## admission-e2e: the CRDs, examples and admission rules against a real kube-apiserver + etcd
admission-e2e:
	e2e/install-kube.sh kube-apiserver etcd kubectl >/dev/null
	e2e/admission-check.sh

## cluster-up / cluster-down / cluster-status: the local Kubernetes cluster (e2e/README.md)
cluster-up: build
	e2e/cluster.sh up

cluster-down:
	e2e/cluster.sh down

cluster-status:
	e2e/cluster.sh status

## e2e: on the local cluster, its smoke test, the instance manager's primary-lease test against its API
## server, the operator's end-to-end test, backups to a real S3 server (e2e/backup/run.sh), the kubectl
## plugin's commands (e2e/plugin/run.sh), every command block of the runbooks (e2e/runbooks/run.sh) and
## the failover chaos suite (e2e/failover/run.sh); the cluster is torn down (and checked to leave
## nothing) either way
e2e: build deps tools
	e2e/cluster.sh up
	status=0; e2e/smoke/run.sh || status=$$?; \
	CNREDIS_E2E_KUBECONFIG=/var/tmp/cnredis-e2e/admin.kubeconfig CNREDIS_BIN=$(RELEASE_BIN) \
	  cargo test --locked -p cnredis --test lease -- --ignored || status=$$?; \
	HELM=$(HELM) e2e/controller/run.sh || status=$$?; \
	e2e/backup/run.sh || status=$$?; \
	e2e/plugin/run.sh || status=$$?; \
	e2e/runbooks/run.sh || status=$$?; \
	e2e/failover/run.sh || status=$$?; \
	e2e/cluster.sh down || status=$$?; exit $$status

## e2e-smoke: the former name of `e2e`
e2e-smoke: e2e

## chaos: randomized failover scenarios on the local cluster (left up): make chaos SEED=7 RUNS=20
chaos: build tools deps
	e2e/cluster.sh up
	KUBECONFIG=/var/tmp/cnredis-e2e/admin.kubeconfig $(HELM) upgrade --install cnredis helm/cnredis \
	  --namespace cnredis-system --create-namespace \
	  --set image.tag=dev --set logFormat=text --wait --timeout 120s >/dev/null
	SEED=$(or $(SEED),1) RUNS=$(or $(RUNS),10) e2e/failover/run.sh

## demo: the local cluster, the operator installed with Helm, a 3-instance RedisCluster, a write through
## -leader read back from -replica (the cluster stays up: make cluster-down)
demo: build tools deps
	HELM=$(HELM) hack/demo.sh

clean:
	cargo clean
