#!/usr/bin/env bash
# The burn integration (integrations/burn, its own crate and workspace): format, clippy
# (-D warnings), the tests (same bits as the raw crate, the skip paths, bf16/f16 on Flex,
# zero copy, checkpoints through burn's optimizer record) and doctests, then the spiral example
# and one round of the benchmark as smoke runs. Everything is built once, in release.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
step() { printf '\n--- %s\n' "$*"; }
start=$(date +%s)

cd integrations/burn
export CARGO_TARGET_DIR=$PWD/../../target/burn

step "burn: cargo fmt --check"
cargo fmt --check

step "burn: tests and doctests (release: one build serves tests, example and benchmark)"
cargo test --release

step "burn: example spiral (100 steps)"
cargo run --release --example spiral 100

step "burn: benchmark, one round (smoke run; see docs/burn.md for the measured table)"
cargo run --release --example bench 1

step "burn: cargo clippy --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings

echo "burn part: $(($(date +%s) - start)) s"
