#!/usr/bin/env bash
# Cortex-M33 and Cortex-M0 (see docs/targets.md):
#  - the bit-identity firmware of embedded/ runs on a Cortex-M33 (thumbv8m.main-none-eabihf,
#    QEMU mps2-an505, secure state): every case and path as on the Cortex-M4F;
#  - on a Cortex-M0 (thumbv6m-none-eabi, soft-float; QEMU microbit, the nRF51's 256 KiB of
#    flash and 16 KiB of RAM) the feature `microbit` runs the 21 f32 cases (every optimizer)
#    on the scalar, portable and best backends and skips the 11 storage-format cases (their
#    code does not fit the flash): every value must match the bits recorded on x86_64;
#  - the check of the check: a flipped bit must fail both runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
step() { printf '\n--- %s\n' "$*"; }

step "install qemu-system-arm and the targets"
if ! command -v qemu-system-arm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
rustup target add thumbv8m.main-none-eabihf thumbv6m-none-eabi

cd embedded
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/../target}/cortex-m-ci
semi=(-nographic -monitor none -serial none -semihosting-config enable=on,target=native -kernel)

run() { # label, target, qemu machine args (as one word), cargo features
    local label=$1 target=$2 machine=$3 features=$4
    local elf=$CARGO_TARGET_DIR/$target/release/fused-optim-firmware
    # shellcheck disable=SC2086 # the machine arguments are words
    local qemu=(qemu-system-arm $machine "${semi[@]}")

    step "firmware on a $label: same bits as x86_64"
    cargo build --release --target "$target" --bin fused-optim-firmware --features "$features"
    timeout 300 "${qemu[@]}" "$elf" >qemu.log 2>&1 || { cat qemu.log; rm -f qemu.log; exit 1; }
    grep '^skip' qemu.log || true
    tail -1 qemu.log
    echo "ok: QEMU exit status 0"

    step "check of the check on the $label: a flipped bit must fail the run"
    cargo build --release --target "$target" --bin fused-optim-firmware --features "$features,mismatch-canary"
    if timeout 300 "${qemu[@]}" "$elf" >qemu.log 2>&1; then
        cat qemu.log; rm -f qemu.log; echo "FAIL: the run with a flipped bit passed"; exit 1
    fi
    grep -c '^FAIL' qemu.log | sed 's/^/mismatches reported: /'
    rm -f qemu.log
}

run "Cortex-M33 (QEMU mps2-an505)" thumbv8m.main-none-eabihf "-machine mps2-an505 -cpu cortex-m33" ""
run "Cortex-M0 (QEMU microbit, soft-float)" thumbv6m-none-eabi "-machine microbit" microbit
