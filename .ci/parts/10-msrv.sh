#!/usr/bin/env bash
# The library builds on its stated MSRV (Cargo.toml rust-version), for the host and for a
# Cortex-M4F.
set -euo pipefail
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
rustup toolchain install "$msrv" --profile minimal
rustup target add --toolchain "$msrv" thumbv7em-none-eabihf
CARGO_TARGET_DIR=target/msrv cargo +"$msrv" build --lib
CARGO_TARGET_DIR=target/msrv cargo +"$msrv" build --lib --release --target thumbv7em-none-eabihf
echo "MSRV $msrv: ok"
