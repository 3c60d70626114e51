#!/usr/bin/env bash
# One command on a fresh machine: add the wasm target, build chaos-host, the
# reference system and the plugins, then run a real campaign on the reference
# system (kill_primary_mid_write, 20 cycles x 100 writes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build --locked
exec ./target/debug/chaos-host run \
    --campaign examples/reference/campaign.toml \
    --plugin plugins/kill_primary_mid_write.wasm \
    --out chaos-out "$@"
