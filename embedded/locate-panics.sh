#!/usr/bin/env bash
# Lists where the panic paths of a firmware build come from: builds with the `locate-panics`
# feature (a panic handler that links), finds every call into `core::panicking` and prints the
# inlined call chain (function, file:line) of each call site.
# Usage: embedded/locate-panics.sh [BIN] [TARGET] (extra cargo flags via $LOCATE_FLAGS).
set -uo pipefail
cd "$(dirname "$0")"
bin=${1:-fused-optim-firmware}
target=${2:-thumbv7em-none-eabihf}
dir=${CARGO_TARGET_DIR:-target}
# shellcheck disable=SC2086
cargo build --release --target "$target" --features locate-panics --bin "$bin" ${LOCATE_FLAGS:-} >&2 || exit 1
elf="$dir/$target/release/$bin"
objdump=$(command -v llvm-objdump || command -v rust-objdump)
addr2line=$(command -v llvm-addr2line || command -v addr2line)
# Addresses of the panic entry points.
targets=$(llvm-nm "$elf" | awk '/panicking/ {print $1}' | sed 's/^0*//')
[ -n "$targets" ] || { echo "no panic entry point in $elf"; exit 0; }
pattern=$(printf '0x%s|' $targets); pattern=${pattern%|}
"$objdump" -d --no-show-raw-insn "$elf" \
    | grep -E "\s(bl|b|bl\.w|b\.w|beq|bne|bhs|blo|bhi|bls)(\.w)?\s+($pattern)\b" \
    | grep -v panicking.*: \
    | while IFS=: read -r addr rest; do
        addr=$(echo "$addr" | tr -d ' ')
        callee=$(echo "$rest" | sed -n 's/.*<\(.*\)>.*/\1/p')
        # Calls from one panic function to another are not sources.
        caller=$("$addr2line" -f -e "$elf" "0x$addr" | head -1)
        case "$caller" in *panicking*|*panic_fmt*|*rust_begin_unwind*) continue ;; esac
        echo "call at 0x$addr to $callee, inlined from (innermost first):"
        "$addr2line" -i -f -C -e "$elf" "0x$addr" | paste - - | sed 's/^/    /'
    done
