#!/usr/bin/env bash
# The candle integration (integrations/candle, crate fused-optim-candle): formatting, clippy with
# warnings denied, its tests (same bits as the raw crate for every optimizer, dtype, rounding and
# state format; errors; checkpoint round trips) and doc tests, the docs without warnings, and the
# spiral example for a few epochs. One dev-profile build serves tests, docs and the example.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}/candle
# A clean build, once: no debug info and no incremental state to write (faster to compile).
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0
step() { printf '\n--- [%ss] %s\n' "$SECONDS" "$*"; }

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cd integrations/candle

step "candle: cargo fmt --check"
cargo fmt --check

step "candle: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "candle: tests and doc tests"
cargo test

step "candle: docs (warnings denied)"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps

step "candle: the spiral example, briefly"
cargo run --example spiral -- --epochs 10
step "candle: done"
