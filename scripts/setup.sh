#!/usr/bin/env bash
# One command on a fresh machine: install the system packages the fault
# mechanisms use, add the wasm target, build chaos-host, the reference system
# and the plugins, then run a real campaign on the embedded default (no
# --campaign: the reference system, served by chaos-host itself): the four
# built-in faults, 20 cycles x 100 writes each, partitions through the
# unprivileged proxy network. Extra arguments go to `chaos-host run`
# (e.g. --net netns as root, --cycles 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
scripts/build-plugins.sh
cargo build --locked
exec ./target/debug/chaos-host run \
    --plugin kill_primary_mid_write \
    --plugin partition_minority \
    --plugin drop_random_acks \
    --plugin clock_skew_peer \
    --out chaos-out "$@"
