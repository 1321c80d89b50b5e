#!/usr/bin/env bash
# The C interface (capi/): Rust tests (header vs exports, hand-derived values, same bits as the
# Rust API in every storage format, error codes, tests/c_smoke_expected.h current), the header
# compiled as C11 (-pedantic -Werror, also for 32-bit arm-none-eabi) and C++, every prototype
# checked by tests/c_abi_check.c, exported symbols == declared functions, the C smoke test
# linked against the static library, and a bare-metal build of the library.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
step() { printf '\n--- %s\n' "$*"; }

step "install C compilers (host and arm-none-eabi) and the bare-metal target"
if ! command -v gcc >/dev/null || ! command -v g++ >/dev/null || ! command -v arm-none-eabi-gcc >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++ gcc-arm-none-eabi >/dev/null
fi
rustup target add thumbv7em-none-eabihf

cd capi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/../target}/capi-ci
lib=$CARGO_TARGET_DIR/release/libfused_optim_capi.a
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "capi: Rust tests"
cargo test

step "capi: static library (release, panic = abort)"
cargo build --release

step "header: C11 -pedantic, every prototype and layout (tests/c_abi_check.c), and C++"
gcc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude tests/c_abi_check.c "$lib" -o "$out/c_abi_check"
"$out/c_abi_check"
printf '#include "fused_optim.h"\nint main() { FoAdam a = fo_adam_default(); FoPiece p{}; return a.amsgrad + (int)p.n; }\n' \
    | g++ -x c++ -std=c++17 -Wall -Wextra -Werror -Iinclude -fsyntax-only -
# The pointer-sized structs (FoStateLayout, FoState, FoPiece) on a 32-bit target too.
arm-none-eabi-gcc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only tests/c_abi_check.c

step "exported symbols == functions declared in the header"
grep -v '^ *\(/\*\|\*\)' include/fused_optim.h | grep -o '\bfo_[a-z0-9_]*(' | tr -d '(' | sort -u >"$out/declared"
nm -g --defined-only "$lib" 2>/dev/null | awk '$2 == "T" && $3 ~ /^fo_/ {print $3}' | sort -u >"$out/exported"
if ! diff "$out/declared" "$out/exported"; then
    echo "FAIL: header declarations (<) and library exports (>) differ"; exit 1
fi
echo "ok: $(wc -l <"$out/exported") functions, declared and exported"

step "C smoke test (tests/c_smoke.c)"
gcc -std=c11 -Wall -Wextra -Werror -Iinclude tests/c_smoke.c "$lib" -lm -o "$out/c_smoke"
"$out/c_smoke"

step "the C library for a Cortex-M4F (no_std, no allocator)"
cargo build --release --target thumbv7em-none-eabihf
