#!/usr/bin/env bash
# Flash and stack per optimizer on a Cortex-M4F (thumbv7em-none-eabihf, release profile of
# this crate: opt-level "s", fat LTO). Prints a Markdown table.
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
set -euo pipefail
cd "$(dirname "$0")"
base=${CARGO_TARGET_DIR:-target}
qemu=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none
      -semihosting-config enable=on,target=native -kernel)
# Berkeley "text": everything in flash (vector table, code, read-only data).
size() { llvm-size "$1" | awk 'NR == 2 {print $1}'; }
names=$(cd src/bin && ls footprint_*.rs | sed 's/footprint_\(.*\)\.rs/\1/' | grep -v '^none$' | sort)

declare -A flash stack
for variant in best runtime; do
    dir="$base/footprint-$variant"
    feat=(); [ "$variant" = runtime ] && feat=(--features footprint-runtime)
    CARGO_TARGET_DIR="$dir" cargo build --release --target thumbv7em-none-eabihf --bins "${feat[@]}" >&2
    bin="$dir/thumbv7em-none-eabihf/release"
    none=$(size "$bin/footprint_none")
    for n in $names; do
        out=$(timeout 60 "${qemu[@]}" "$bin/footprint_$n" 2>&1) || { echo "footprint_$n failed: $out" >&2; exit 1; }
        stack[$n,$variant]=$(echo "$out" | sed -n 's/.*stack \([0-9]*\) bytes.*/\1/p')
        flash[$n,$variant]=$(( $(size "$bin/footprint_$n") - none ))
    done
done
pow=$(llvm-nm -S --size-sort -t d "$base/footprint-best/thumbv7em-none-eabihf/release/footprint_adam" \
      | awk '/4libm4math3pow3pow/ {print $2+0}')
echo "| optimizer | flash | stack | flash beyond the shared f64 runtime |"
echo "|---|---:|---:|---:|"
for n in $names; do
    echo "| $n | ${flash[$n,best]} B | ${stack[$n,best]} B | ${flash[$n,runtime]} B |"
done
echo
none_best=$(size "$base/footprint-best/thumbv7em-none-eabihf/release/footprint_none")
none_runtime=$(size "$base/footprint-runtime/thumbv7em-none-eabihf/release/footprint_none")
echo "Harness without a step (subtracted): $none_best B. Shared f64 runtime (linked once per firmware): $((none_runtime - none_best)) B, of which libm::pow ${pow:-?} B."
