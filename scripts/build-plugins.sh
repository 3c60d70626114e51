#!/usr/bin/env bash
# Build every plugin guest crate for wasm32-wasip2 and copy the components to
# plugins/<name>.wasm; example third-party plugins (examples/plugins/*) to
# examples/plugins/<name>.wasm; test guests (tests/guests/*) to
# tests/guests/<name>.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
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
cargo build --locked --release --target wasm32-wasip2 "${args[@]}"
for n in "${names[@]}"; do
    cp "target/wasm32-wasip2/release/$n.wasm" "plugins/$n.wasm"
done
for n in "${examples[@]}"; do
    cp "target/wasm32-wasip2/release/$n.wasm" "examples/plugins/$n.wasm"
done
for n in "${guests[@]}"; do
    cp "target/wasm32-wasip2/release/$n.wasm" "tests/guests/$n.wasm"
done
echo "plugins: ${names[*]}; examples: ${examples[*]}; test guests: ${guests[*]}"
