#!/usr/bin/env bash
# A C firmware (see docs/targets.md): capi/tests/c_smoke.c, the C smoke test that 70-capi runs
# on the host, linked with libfused_optim_capi.a built for thumbv7em-none-eabihf, newlib with
# ARM semihosting (rdimon) and the start-up and memory map in capi/firmware/, runs on a
# Cortex-M4F under QEMU mps2-an386. It checks values derived by hand and the storage-format
# bits in capi/tests/c_smoke_expected.h, which the capi test c_smoke_expected_values_are_current
# computes through the Rust API (70-capi runs it); main's return value is QEMU's exit status.
# The check of the check: the same program with one flipped expected bit must fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
step() { printf '\n--- %s\n' "$*"; }

step "install arm-none-eabi-gcc with newlib, qemu-system-arm and the target"
if ! command -v arm-none-eabi-gcc >/dev/null || [ ! -d /usr/lib/arm-none-eabi/newlib ]; then
    apt-get update -qq
    for p in gcc-arm-none-eabi libnewlib-arm-none-eabi; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
    done
fi
if ! command -v qemu-system-arm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
rustup target add thumbv7em-none-eabihf

cd capi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/../target}/c-firmware-ci
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "the C library for a Cortex-M4F"
cargo build --release --target thumbv7em-none-eabihf
lib=$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/libfused_optim_capi.a

cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 -std=c11 -Wall -Wextra -Werror
        -Iinclude)
ldflags=(--specs=rdimon.specs -T firmware/link.ld -Wl,--gc-sections -Wl,--no-warn-execstack)
qemu=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none
      -semihosting-config enable=on,target=native -kernel)

step "C smoke test on a Cortex-M4F (QEMU mps2-an386)"
arm-none-eabi-gcc "${cflags[@]}" firmware/startup.c tests/c_smoke.c "$lib" -lm "${ldflags[@]}" -o "$out/c_smoke.elf"
arm-none-eabi-size "$out/c_smoke.elf"
timeout 120 "${qemu[@]}" "$out/c_smoke.elf"
echo "ok: QEMU exit status 0"

step "check of the check: one flipped expected bit must fail the run"
cp tests/c_smoke.c "$out/"
# The first word of torchao_adamw8bit_out_scales, its lowest bit flipped.
awk '/torchao_adamw8bit_out_scales\[/ { print; flip = 1; next }
     flip && match($0, /0x[0-9a-f]+u/) {
         w = substr($0, RSTART, RLENGTH - 1)
         last = substr(w, length(w), 1)
         i = index("0123456789abcdef", last) - 1
         new = substr("1032547698badcfe", i + 1, 1)
         $0 = substr($0, 1, RSTART + RLENGTH - 3) new substr($0, RSTART + RLENGTH - 1)
         flip = 0
     }
     { print }' tests/c_smoke_expected.h >"$out/c_smoke_expected.h"
if [ "$(diff tests/c_smoke_expected.h "$out/c_smoke_expected.h" | grep -c '^>')" != 1 ]; then
    echo "FAIL: the canary header does not differ in exactly one line"; exit 1
fi
arm-none-eabi-gcc "${cflags[@]}" firmware/startup.c "$out/c_smoke.c" "$lib" -lm "${ldflags[@]}" -o "$out/canary.elf"
if timeout 120 "${qemu[@]}" "$out/canary.elf"; then
    echo "FAIL: the run with a flipped expected bit passed"; exit 1
fi
echo "ok: the run with a flipped expected bit failed"
