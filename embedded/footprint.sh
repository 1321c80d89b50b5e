#!/usr/bin/env bash
# Flash and stack per optimizer on a Cortex-M4F (thumbv7em-none-eabihf, release profile of
# this crate: opt-level "s", fat LTO), or on the target given. Prints a Markdown table.
#
# flash: flash bytes (text + rodata) of src/bin/footprint_<name> minus those of footprint_none (the same harness
#        without the step), so it counts the plan (f64 scalars, libm, soft-float f64 helpers),
#        validation and the kernel with every option compiled in (the configuration is read
#        through a volatile load).
# stack: painted below the stack pointer before two steps (plan + apply), measured under QEMU
#        mps2-an386 afterwards; the deepest byte written.
# Two builds: as is (flash and stack of a firmware with this one optimizer) and with the
# feature footprint-runtime, where every binary (the baseline too) also links the f64
# routines shared by all optimizers' per-step scalars, so the difference is the optimizer's own
# code (plan, validation, kernel).
#
# Usage: ./footprint.sh [TARGET]: thumbv7em-none-eabihf (the default, QEMU mps2-an386),
# riscv32imac-unknown-none-elf or riscv32imafc-unknown-none-elf (QEMU virt; there "flash" is
# the same text + rodata, which the RISC-V firmware keeps in RAM), thumbv8m.main-none-eabihf
# (QEMU mps2-an505).
set -euo pipefail
cd "$(dirname "$0")"
base=${CARGO_TARGET_DIR:-target}
target=${1:-thumbv7em-none-eabihf}
case $target in
    thumbv7em-none-eabihf)
        qemu=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4) ;;
    thumbv8m.main-none-eabihf)
        qemu=(qemu-system-arm -machine mps2-an505 -cpu cortex-m33) ;;
    riscv32imac-unknown-none-elf)
        qemu=(qemu-system-riscv32 -machine virt -cpu rv32,f=false,d=false -bios none) ;;
    riscv32imafc-unknown-none-elf)
        qemu=(qemu-system-riscv32 -machine virt -bios none) ;;
    *) echo "footprint.sh: no QEMU machine for $target" >&2; exit 2 ;;
esac
qemu+=(-nographic -monitor none -serial none -semihosting-config enable=on,target=native -kernel)
# Berkeley "text": everything in flash (vector table, code, read-only data).
size() { llvm-size "$1" | awk 'NR == 2 {print $1}'; }
names=$(cd src/bin && ls footprint_*.rs | sed 's/footprint_\(.*\)\.rs/\1/' | grep -v '^none$' | sort)

declare -A flash stack
for variant in best runtime; do
    dir="$base/footprint-$variant"
    feat=(); [ "$variant" = runtime ] && feat=(--features footprint-runtime)
    CARGO_TARGET_DIR="$dir" cargo build --release --target "$target" --bins "${feat[@]}" >&2
    bin="$dir/$target/release"
    none=$(size "$bin/footprint_none")
    for n in $names; do
        out=$(timeout 60 "${qemu[@]}" "$bin/footprint_$n" 2>&1) || { echo "footprint_$n failed: $out" >&2; exit 1; }
        stack[$n,$variant]=$(echo "$out" | sed -n 's/.*stack \([0-9]*\) bytes.*/\1/p')
        flash[$n,$variant]=$(( $(size "$bin/footprint_$n") - none ))
    done
done
pow=$(llvm-nm -S --size-sort -t d "$base/footprint-best/$target/release/footprint_adam" \
      | awk '/4libm4math3pow3pow/ {print $2+0}')
echo "| optimizer | flash | stack | flash beyond the shared f64 runtime |"
echo "|---|---:|---:|---:|"
for n in $names; do
    echo "| $n | ${flash[$n,best]} B | ${stack[$n,best]} B | ${flash[$n,runtime]} B |"
done
echo
none_best=$(size "$base/footprint-best/$target/release/footprint_none")
none_runtime=$(size "$base/footprint-runtime/$target/release/footprint_none")
echo "Harness without a step (subtracted): $none_best B. Shared f64 runtime (linked once per firmware): $((none_runtime - none_best)) B, of which libm::pow ${pow:-?} B."
