#!/usr/bin/env bash
# aarch64 (NEON): the crate's unit tests and the bitwise backend tests (portable backend =
# wide::f32x8 on NEON, against the scalar reference) under qemu-aarch64, and the firmware
# cases of embedded/ (f32 and the storage formats) compared with the bits recorded on x86_64
# (embedded/src/expected.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
step() { printf '\n--- %s\n' "$*"; }

step "install qemu-user and the aarch64 cross linker"
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

step "aarch64: unit tests and bitwise backend tests (NEON portable vs scalar)"
# The lib tests include src/format/'s (the 8-bit bucket search against torchao's rule on a
# sweep of about 90 million values: about a minute under qemu-aarch64); the storage-format
# tests run too where the suite exists.
format_tests=()
[ -f tests/formats.rs ] && format_tests=(--test formats)
CARGO_TARGET_DIR=$target_dir/aarch64-ci \
    cargo test --release --target aarch64-unknown-linux-gnu --lib --test backends --test oracle \
    "${format_tests[@]}"

step "aarch64: the firmware cases give the bits recorded on x86_64"
cd embedded
CARGO_TARGET_DIR=$target_dir/aarch64-ci-embedded \
    cargo test --target aarch64-unknown-linux-gnu --lib
