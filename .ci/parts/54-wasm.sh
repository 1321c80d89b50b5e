#!/usr/bin/env bash
# wasm (see docs/targets.md): wasm32-wasip1 with simd128, so the portable backend runs on wasm
# SIMD (wide::f32x8 as two v128 lanes), under Node.js's WASI (node:wasi, preview1):
#  - the core crate's unit tests and the bitwise backend and oracle tests (every backend
#    against the scalar reference, the scalar reference against torch's recorded values);
#  - the firmware cases of embedded/ (every optimizer and storage format, on every backend and
#    as two pieces) against the bits recorded on x86_64 (embedded/src/expected.rs);
#  - the wasm binaries contain simd128 instructions (the portable backend is not the scalar
#    loop in disguise).
# A panic aborts a wasm test binary (no unwinding on wasm32-wasip1): any failing test fails it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
root=$PWD
tdir=${CARGO_TARGET_DIR:-$root/target}
step() { printf '\n--- %s\n' "$*"; }

step "Node.js (WASI runner), LLVM binutils and the wasm32-wasip1 target"
if ! command -v node >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null
fi
if ! command -v llvm-objdump >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm >/dev/null
fi
node --version
rustup target add wasm32-wasip1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The WASI runner: the whole file system preopened (the tests read no files; cargo's paths are
# absolute), the test harness's exit code as node's.
cat >"$work/run.mjs" <<'JS'
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';
const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: process.env,
                        preopens: { '/': '/' }, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
JS
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128"
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $work/run.mjs"

# The root Cargo.toml asks for proptest without its `fork` feature (wait-timeout does not
# build for WASI), so the core tests build for wasm as they are.
src=$root

step "wasm32-wasip1 + simd128: unit tests and bitwise backend and oracle tests"
(cd "$src" && CARGO_TARGET_DIR=$tdir/wasm-ci \
    cargo test --release --target wasm32-wasip1 --lib --test backends --test oracle)

step "wasm32-wasip1 + simd128: the portable backend is wasm SIMD"
wasm=$(ls -t "$tdir"/wasm-ci/wasm32-wasip1/release/deps/backends-*.wasm | head -1)
count=$(llvm-objdump -d "$wasm" | grep -cE 'f32x4\.(add|mul|sub|div|sqrt)' || true)
echo "f32x4 arithmetic instructions in $(basename "$wasm"): $count"
[ "$count" -gt 0 ] || { echo "FAIL: no simd128 arithmetic in the wasm test binary"; exit 1; }

step "wasm32-wasip1 + simd128: the firmware cases give the bits recorded on x86_64"
cd "$root/embedded"
CARGO_TARGET_DIR=$tdir/wasm-ci-embedded cargo test --target wasm32-wasip1 --lib
