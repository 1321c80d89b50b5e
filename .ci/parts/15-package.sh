#!/usr/bin/env bash
# The published package must work on its own: `cargo package`, then the README's test command
# inside the unpacked crate (its tests read tests/vectors, tests/fuzz and docs/, which must ship).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
cargo package --no-verify --allow-dirty --quiet
crate="$(ls -t target/package/fused-optim-*.crate | head -n 1)"
echo "package: $crate, $(du -h "$crate" | cut -f1) compressed, $(tar -tzf "$crate" | wc -l) files"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$crate" -C "$work"
cd "$work"/fused-optim-*/
# The unpacked crate's own Cargo.lock, in a target directory of its own (sharing the main
# tree's would let the two copies of the crate overwrite each other's build fingerprints).
CARGO_TARGET_DIR="$root/target/package-test" cargo test --release --locked
