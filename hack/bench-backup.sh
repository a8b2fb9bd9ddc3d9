#!/usr/bin/env bash
# Backup and restore throughput and the primary's latency during backups, on this host with real
# instance managers and servers and the local versitygw (cmd/cnredis/tests/backup.rs
# bench_backup_and_restore). BENCH_MIB sets the dataset size (default 1024). Needs `make build deps`.
#   BENCH_MIB=1024 hack/bench-backup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CNREDIS_BIN=$PWD/target/x86_64-unknown-linux-gnu/release/cnredis
export CNREDIS_TEST_MEMORY_LIMIT=$(( (${BENCH_MIB:-1024} * 3 + 512) << 20 ))
cargo test --locked -p cnredis --test backup -- --ignored --nocapture bench_backup_and_restore 2>&1 \
  | grep -vE "^\s*$"
