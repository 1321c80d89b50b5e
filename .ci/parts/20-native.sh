#!/usr/bin/env bash
# The bitwise backend tests again with every target feature of this CPU enabled at compile
# time, so the portable path runs on wide's AVX code and the scalar tails may use VEX encodings.
set -euo pipefail
RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=target/native \
    cargo test --release --test backends
