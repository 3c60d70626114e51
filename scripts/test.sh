#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and end-to-end tests
# that run real campaigns against real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
# The built-ins chaos-host embeds must be what their sources build (the build
# is reproducible): a plugin changed without its crates/builtins/wasm copy is stale.
# Bytes depend on the compiler too: another toolchain cannot check them, so
# it says so and tests the committed ones.
built_with=$(cat crates/builtins/wasm/TOOLCHAIN 2>/dev/null || true)
if [ -n "$built_with" ] && [ "$built_with" != "$(rustc -V)" ]; then
    # build-plugins.sh left them alone.
    echo "test.sh: WARNING: crates/builtins/wasm were built with $built_with, this is $(rustc -V): their reproducibility is not checked here; testing the committed ones" >&2
elif ! git diff --quiet --exit-code -- crates/builtins/wasm \
    || [ -n "$(git ls-files --others --exclude-standard -- crates/builtins/wasm)" ]; then
    echo "test.sh: built-ins are stale: run scripts/build-plugins.sh and commit crates/builtins/wasm" >&2
    git status --short -- crates/builtins/wasm >&2
    if ! git diff --quiet -- crates/builtins/wasm/TOOLCHAIN; then
        echo "test.sh: (they were built with $(git show HEAD:crates/builtins/wasm/TOOLCHAIN 2>/dev/null || echo 'another toolchain'), this is $(rustc -V): build with that toolchain, or commit the rebuild)" >&2
    fi
    exit 1
fi
cargo fmt --all --check
cargo clippy --locked -p chaos-builtins -p chaos-model -p chaos-journal -p chaos-ssh -p chaos-mechanisms -p chaos-lifecycle -p chaos-effects -p chaos-plugin -p chaos-core -p chaos-host -p chaos-bench -p quorum-kv -p native_pause -p test-components --all-targets -- -D warnings
cargo clippy --locked --target wasm32-wasip2 -p chaos-host-sdk -p kill_primary_mid_write -p convergence -p drop_random_acks -p partition_minority -p clock_skew_peer -p crash_restart -p power_failure -p disk_full_peer -p fsync_error_peer -p slow_disk -p slow_link -p lossy_link -p bandwidth_cap -p misbehave -p future_contract -p contract_0_1_0 -p contract_0_1_1 -p contract_0_2_0 -p client_misbehave -p bench_calls -p bad_figure -p link_fault -p asymmetric_partition -p quorum_kv_client -p nats_client -p history_loop -p linearizable -p set_full -p clock_drift_peer -- -D warnings
# The SDK as crates.io would get it: packaged (its WIT inside) and built
# from the package, and its documented example compiled.
cargo package --locked -p chaos-host-sdk
cargo test --locked --doc -p chaos-host-sdk
# The end-to-end tests run the real binaries.
cargo build --locked
# The checker plugins' cores are plain Rust, unit-tested natively. A cargo
# invocation of their own: built together with the host, feature
# unification would compile wasmtime a second time (6 minutes here).
cargo test --locked -p linearizable -p set_full
# Traps are slow with backtraces on; tests do not need them.
RUST_BACKTRACE=0 cargo test --locked -p chaos-builtins -p chaos-model -p chaos-journal -p chaos-ssh -p chaos-mechanisms -p chaos-lifecycle -p chaos-effects -p chaos-plugin -p chaos-core -p chaos-host -p quorum-kv
