#!/usr/bin/env bash
# Build every plugin guest crate for wasm32-wasip2 and copy the components to
# plugins/<name>.wasm; example third-party plugins (examples/plugins/*) to
# examples/plugins/<name>.wasm; test guests (tests/guests/*) to
# tests/guests/<name>.wasm; and the built-in plugins (plugins/*) also to
# crates/builtins/wasm/<name>.wasm, which chaos-host embeds (include_bytes!).
#
# The build is reproducible: the same sources, Cargo.lock and toolchain give
# byte-identical components in any directory on any machine. Panic messages
# keep source paths, so the checkout and the cargo registry are remapped to
# fixed names; the flags apply to the wasm32-wasip2 target only (with
# --target, cargo gives build scripts and proc-macros no RUSTFLAGS), so the
# host's build cache is untouched. scripts/test.sh fails when
# crates/builtins/wasm then differs from what is committed.
#
# It builds in $CARGO_TARGET_DIR/guests (default target/guests) with the same
# flags and crates as tests/components/build.rs, which builds them for the
# e2e tests (`cargo test` needs no script first): whichever runs second finds
# every component fresh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
sep=$'\x1f'
# When several prefixes match, rustc applies the last: general ones first.
flags="--remap-path-prefix=$cargo_home=/cargo-home"
for src in "$cargo_home"/registry/src/*/; do
    [ -d "$src" ] && flags+="$sep--remap-path-prefix=${src%/}=/cargo-registry"
done
flags+="$sep--remap-path-prefix=$root=/chaos-host"
# Exactly these flags: an inherited RUSTFLAGS would change the bytes.
unset RUSTFLAGS
export CARGO_ENCODED_RUSTFLAGS="$flags"
rustup target add wasm32-wasip2 >/dev/null
names=()
for dir in plugins/*/; do
    [ -f "$dir/Cargo.toml" ] && names+=("$(basename "$dir")")
done
examples=()
for dir in examples/plugins/*/; do
    [ -f "$dir/Cargo.toml" ] && examples+=("$(basename "$dir")")
done
guests=()
for dir in tests/guests/*/; do
    [ -f "$dir/Cargo.toml" ] && guests+=("$(basename "$dir")")
done
args=()
for n in "${names[@]}" "${examples[@]}" "${guests[@]}"; do args+=(-p "$n"); done
tdir="${CARGO_TARGET_DIR:-target}/guests"
cargo build --locked --release --target wasm32-wasip2 --target-dir "$tdir" "${args[@]}"
# The built-ins are replaced only by the toolchain that built the committed
# ones (another rustc gives other bytes, not newer plugins), unless asked:
# CHAOS_UPDATE_BUILTINS=1 rebuilds them with this one.
mkdir -p crates/builtins/wasm
update_builtins=true
built_with=$(cat crates/builtins/wasm/TOOLCHAIN 2>/dev/null || true)
if [ -n "$built_with" ] && [ "$built_with" != "$(rustc -V)" ] && [ -z "${CHAOS_UPDATE_BUILTINS:-}" ]; then
    update_builtins=false
    echo "build-plugins: crates/builtins/wasm were built with $built_with, this is $(rustc -V): left as they are (CHAOS_UPDATE_BUILTINS=1 replaces them)" >&2
fi
for n in "${names[@]}"; do
    cp "$tdir/wasm32-wasip2/release/$n.wasm" "plugins/$n.wasm"
    if $update_builtins; then
        cp "$tdir/wasm32-wasip2/release/$n.wasm" "crates/builtins/wasm/$n.wasm"
    fi
done
if $update_builtins; then
    rustc -V > crates/builtins/wasm/TOOLCHAIN
fi
for n in "${examples[@]}"; do
    cp "$tdir/wasm32-wasip2/release/$n.wasm" "examples/plugins/$n.wasm"
done
for n in "${guests[@]}"; do
    cp "$tdir/wasm32-wasip2/release/$n.wasm" "tests/guests/$n.wasm"
done
echo "plugins: ${names[*]}; examples: ${examples[*]}; test guests: ${guests[*]}"
