#!/usr/bin/env bash
# RISC-V (see docs/targets.md):
#  - the bit-identity firmware of embedded/ (every optimizer and storage format, on the scalar,
#    portable and best backends and as two pieces) runs on riscv32imac-unknown-none-elf (the
#    ESP32-C3 class; QEMU virt with the F and D extensions switched off, so soft-float) and on
#    riscv32imafc-unknown-none-elf (hardware single precision), machine mode, semihosting, and
#    every value must match the bits recorded on x86_64 (embedded/src/expected.rs);
#  - the check of the check: a deliberately flipped bit must fail the riscv32imac run;
#  - the footprint table (flash and stack per optimizer) on riscv32imac;
#  - riscv64gc-unknown-linux-gnu: the core crate's unit tests and the bitwise backend and oracle
#    tests under qemu-riscv64, and the firmware cases against the x86_64 bits there too.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
root=$PWD
tdir=${CARGO_TARGET_DIR:-$root/target}
step() { printf '\n--- %s\n' "$*"; }

step "install QEMU (system and user), the riscv64 cross linker, LLVM binutils, the targets"
need=()
command -v qemu-system-riscv32 >/dev/null || need+=(qemu-system-misc)
command -v qemu-riscv64 >/dev/null || need+=(qemu-user)
command -v riscv64-linux-gnu-gcc >/dev/null || need+=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)
command -v llvm-size >/dev/null || need+=(llvm)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    # One package set at a time: asked for together, apt's resolver has refused some mixes here.
    for p in "${need[@]}"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
    done
fi
rustup target add riscv32imac-unknown-none-elf riscv32imafc-unknown-none-elf riscv64gc-unknown-linux-gnu

cd embedded
export CARGO_TARGET_DIR=$tdir/riscv-ci
qemu_virt=(qemu-system-riscv32 -machine virt -bios none -nographic -monitor none -serial none
           -semihosting-config enable=on,target=native -kernel)
qemu_imac=(qemu-system-riscv32 -machine virt -cpu rv32,f=false,d=false -bios none -nographic
           -monitor none -serial none -semihosting-config enable=on,target=native -kernel)

step "firmware on riscv32imac (soft-float; QEMU virt without F/D): same bits as x86_64"
cargo build --release --target riscv32imac-unknown-none-elf --bin fused-optim-firmware
elf=$CARGO_TARGET_DIR/riscv32imac-unknown-none-elf/release/fused-optim-firmware
timeout 300 "${qemu_imac[@]}" "$elf" | tail -1
echo "ok: QEMU exit status 0"

step "check of the check: a flipped bit must fail the riscv32imac run"
cargo build --release --target riscv32imac-unknown-none-elf --bin fused-optim-firmware --features mismatch-canary
if timeout 300 "${qemu_imac[@]}" "$elf" >qemu.log 2>&1; then
    cat qemu.log; rm -f qemu.log; echo "FAIL: the run with a flipped bit passed"; exit 1
fi
grep -c '^FAIL' qemu.log | sed 's/^/mismatches reported: /'
rm -f qemu.log

step "firmware on riscv32imafc (hardware f32): same bits as x86_64"
cargo build --release --target riscv32imafc-unknown-none-elf --bin fused-optim-firmware
elf=$CARGO_TARGET_DIR/riscv32imafc-unknown-none-elf/release/fused-optim-firmware
# grep -c reads everything (grep -q would stop early, and pipefail would see SIGPIPE).
fpu=$(llvm-objdump -d "$elf" | grep -cE '\bf(add|mul|div|sqrt)\.s\b' || true)
echo "single-precision FPU instructions (fadd/fmul/fdiv/fsqrt.s) in the firmware: $fpu"
[ "$fpu" -gt 0 ] || { echo "FAIL: no FPU instruction in the riscv32imafc firmware"; exit 1; }
timeout 300 "${qemu_virt[@]}" "$elf" | tail -1
echo "ok: QEMU exit status 0"

step "footprint per optimizer (riscv32imac-unknown-none-elf, release)"
./footprint.sh riscv32imac-unknown-none-elf

cd "$root"
step "riscv64gc: unit tests and bitwise backend and oracle tests under qemu-riscv64"
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUNNER="qemu-riscv64 -L /usr/riscv64-linux-gnu"
CARGO_TARGET_DIR=$tdir/riscv64-ci \
    cargo test --release --target riscv64gc-unknown-linux-gnu --lib --test backends --test oracle

step "riscv64gc: the firmware cases give the bits recorded on x86_64"
cd embedded
CARGO_TARGET_DIR=$tdir/riscv64-ci-embedded cargo test --target riscv64gc-unknown-linux-gnu --lib
