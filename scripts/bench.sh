#!/usr/bin/env bash
# The benchmark: build what it measures, then print the figures table.
#   bash scripts/bench.sh               # 20 cycles per class, ~2 minutes
#   bash scripts/bench.sh --protocol    # seed 002's 80,000 writes, ~20 minutes
# Extra arguments go to `chaos-bench` (--json FILE, --driver-writes N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
command -v wrk >/dev/null || {
    echo "bench: installing wrk (the driver's yardstick)"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
}
scripts/build-plugins.sh
# The default members: chaos-bench and the chaos-host binary it runs as
# children, side by side in one target dir, and quorum-kv.
cargo build --locked
# Backtraces make every wasm trap slow; a bench must not pay for them.
RUST_BACKTRACE=0 exec ./target/debug/chaos-bench "$@"
