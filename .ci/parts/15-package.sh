#!/usr/bin/env bash
# The published package must work on its own: `cargo package`, then, inside the unpacked crate,
# the tests that read files (tests/vectors, tests/fuzz, docs/, examples/), which must ship.
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
# The tests that read files outside src/ (vectors, the fuzz corpus, schedules, examples) and the
# doctests (docs/ guides included): the rest ran on the tree already.
export CARGO_TARGET_DIR="$root/target/package-test"
cargo test --release --locked \
    --test torch_parity --test fuzz_corpus --test schedules --test seed_experiment \
    --test format_convergence
cargo test --release --locked --doc
