# The developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

TARGET      := x86_64-unknown-linux-gnu
RELEASE_BIN := $(CURDIR)/target/$(TARGET)/release/cnredis
HELM         = $(shell hack/install-helm.sh | tail -1)

.PHONY: all build tools generate test fmt-check clippy unit check-generated chart-test admission-e2e demo clean

all: build

## build: the static release binary target/x86_64-unknown-linux-gnu/release/cnredis
build:
	cargo build --release --locked -p cnredis

## tools: build (once, cached under ~/.cache/cnredis) the tools the checks need
tools:
	@hack/install-helm.sh >/dev/null

## generate: rewrite every generated file (CRDs, docs/api.md, manifests rendered from the chart)
generate: tools
	HELM=$(HELM) cargo xtask generate

## test: everything CI checks
test: fmt-check clippy build unit check-generated chart-test admission-e2e

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --locked --workspace --all-targets -- -D warnings

unit: build
	CNREDIS_BIN=$(RELEASE_BIN) cargo test --locked --workspace

check-generated: tools
	HELM=$(HELM) cargo xtask check

chart-test: tools
	HELM=$(HELM) hack/test-chart.sh

## admission-e2e: the CRDs, examples and admission rules against a real kube-apiserver + etcd
admission-e2e:
	e2e/install-kube.sh kube-apiserver etcd kubectl >/dev/null
	e2e/admission-check.sh

## demo: arrives with the controller (the operator is not implemented in this build)
demo:
	@echo "make demo: the controller is not implemented yet; see the open issues" >&2; exit 1

clean:
	cargo clean
