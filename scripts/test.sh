#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and end-to-end tests
# that run real campaigns against real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo fmt --all --check
cargo clippy --locked -p chaos-host -p quorum-kv -p native_pause --all-targets -- -D warnings
cargo clippy --locked --target wasm32-wasip2 -p chaos-host-sdk -p kill_primary_mid_write -p convergence -p drop_random_acks -p partition_minority -p clock_skew_peer -p crash_restart -p power_failure -p disk_full_peer -p fsync_error_peer -p slow_disk -p misbehave -p future_contract -p contract_0_1_0 -p contract_0_1_1 -p bench_calls -p bad_figure -p asymmetric_partition -- -D warnings
# The SDK as crates.io would get it: packaged (its WIT inside) and built
# from the package, and its documented example compiled.
cargo package --locked -p chaos-host-sdk
cargo test --locked --doc -p chaos-host-sdk
# The end-to-end tests run the real binaries.
cargo build --locked
# Traps are slow with backtraces on; tests do not need them.
RUST_BACKTRACE=0 cargo test --locked -p chaos-host -p quorum-kv
