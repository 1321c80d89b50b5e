#!/usr/bin/env bash
# The burn integration (integrations/burn, its own crate and workspace): format, clippy and
# rustdoc (-D warnings), the tests (same bits as the raw crate, the skip paths, bf16/f16 on
# Flex, zero copy, checkpoints through burn's optimizer record, the lean driver) and doctests,
# which also compile the examples, then the spiral example as a smoke run. burn is large, so the part
# builds in the dev profile without debug info (the benchmark, run by hand with --release, is
# only compiled here; its table is in docs/burn.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
step() { printf '\n--- %s\n' "$*"; }
start=$(date +%s)

cd integrations/burn
export CARGO_TARGET_DIR=$PWD/../../target/burn
export CARGO_PROFILE_DEV_DEBUG=false CARGO_INCREMENTAL=0

step "burn: cargo fmt --check"
cargo fmt --check

step "burn: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "burn: docs (-D warnings)"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps

step "burn: tests and doctests (also builds the examples)"
cargo test

step "burn: example spiral (100 steps)"
cargo run --example spiral 100

echo "burn part: $(($(date +%s) - start)) s"
