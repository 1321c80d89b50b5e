#!/usr/bin/env bash
# Bare-metal checks (see docs/embedded-and-c.md):
#  - the main crate builds for thumbv7em-none-eabihf and thumbv6m-none-eabi (no FPU);
#  - the firmware in embedded/ (every optimizer, run-time lengths, no allocator) links for both
#    with a panic handler that refers to an undefined symbol: any panic path fails the link;
#    also at opt-level 3 and "z", and with overflow checks in the crate's own code;
#  - the check of the check: a deliberate panic path must fail the link;
#  - the firmware runs under QEMU mps2-an386 (Cortex-M4F) and every value must match the bits
#    recorded on x86_64 (and a deliberately flipped bit must fail the run): every optimizer in
#    f32, and the storage formats (torchao's 8-bit AdamW and torch's AdamW with int8 state over
#    two blocks, bf16 parameters with stochastic rounding and with Kahan compensation, bf16/f16
#    state, int4 and float8), each also as two pieces of one tensor;
#  - the host test that keeps embedded/src/expected.rs current;
#  - on the Cortex-M the 8-bit code search is the bisection: no bucket table is linked;
#  - the footprint table (flash and stack per optimizer, and 8-bit AdamW with bf16 parameters).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
root=$PWD
tdir=${CARGO_TARGET_DIR:-$root/target}/embedded-ci
step() { printf '\n--- %s\n' "$*"; }

step "install qemu-system-arm, the LLVM binutils and the bare-metal targets"
pkgs=()
command -v qemu-system-arm >/dev/null || pkgs+=(qemu-system-arm)
for tool in llvm-nm llvm-size llvm-objdump llvm-addr2line; do
    command -v "$tool" >/dev/null || { pkgs+=(llvm); break; }
done
if [ ${#pkgs[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi

step "main crate: cross builds"
cargo build --release --target thumbv7em-none-eabihf
cargo build --release --target thumbv6m-none-eabi

cd embedded
export CARGO_TARGET_DIR=$tdir

step "firmware: host test (expected.rs is current; every x86_64 backend agrees)"
cargo test --lib

step "firmware: link-time panic check, thumbv7em-none-eabihf and thumbv6m-none-eabi"
panic_symbol=fused_optim_firmware_has_a_panic_path
try_link() { # label, cargo args...: the build must link
    local label=$1; shift
    if ! cargo build --release "$@" 2>build.log; then
        cat build.log
        if grep -q "$panic_symbol" build.log; then
            echo "FAIL ($label): a panic path is left; where it comes from:"
            LOCATE_FLAGS="${*:3}" ./locate-panics.sh fused-optim-firmware "${2:-thumbv7em-none-eabihf}" || true
        fi
        rm -f build.log
        exit 1
    fi
    rm -f build.log
    echo "ok: $label links with no panic path"
}
try_link "thumbv7em-none-eabihf, opt-level s" --target thumbv7em-none-eabihf
try_link "thumbv6m-none-eabi, opt-level s" --target thumbv6m-none-eabi
CARGO_PROFILE_RELEASE_OPT_LEVEL=3 try_link "thumbv7em-none-eabihf, opt-level 3" --target thumbv7em-none-eabihf
CARGO_PROFILE_RELEASE_OPT_LEVEL=z try_link "thumbv7em-none-eabihf, opt-level z" --target thumbv7em-none-eabihf
try_link "thumbv7em-none-eabihf, overflow checks in fused-optim and the firmware" \
    --target thumbv7em-none-eabihf \
    --config profile.release.package.fused-optim.overflow-checks=true \
    --config profile.release.package.fused-optim-firmware.overflow-checks=true

step "firmware: no allocator linked"
elf=$tdir/thumbv7em-none-eabihf/release/fused-optim-firmware
cargo build --release --target thumbv7em-none-eabihf
if llvm-nm "$elf" | grep -Ei '__rust_alloc|__rg_alloc|__rdl_alloc|alloc::alloc'; then
    echo "FAIL: allocator symbols in the firmware"; exit 1
fi
echo "ok: no allocator symbol"

step "check of the check: a deliberate panic path must fail the link"
if cargo build --release --target thumbv7em-none-eabihf --features panic-canary 2>build.log; then
    rm -f build.log; echo "FAIL: the firmware with a panic path linked"; exit 1
fi
grep -q "undefined symbol: $panic_symbol" build.log || { cat build.log; rm -f build.log; exit 1; }
rm -f build.log
echo "ok: the link failed with 'undefined symbol: $panic_symbol'"

qemu=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none
      -semihosting-config enable=on,target=native -kernel)

step "firmware on a Cortex-M4F (QEMU mps2-an386): same bits as x86_64"
cargo build --release --target thumbv7em-none-eabihf
timeout 300 "${qemu[@]}" "$elf"
echo "ok: QEMU exit status 0"

step "check of the check: a flipped bit must fail the QEMU run"
cargo build --release --target thumbv7em-none-eabihf --features mismatch-canary
if timeout 300 "${qemu[@]}" "$elf" >qemu.log 2>&1; then
    cat qemu.log; rm -f qemu.log; echo "FAIL: the run with a flipped bit passed"; exit 1
fi
grep -c '^FAIL' qemu.log | sed 's/^/mismatches reported: /'
rm -f qemu.log
cargo build --release --target thumbv7em-none-eabihf   # leave the honest binary behind

step "8-bit codes on the Cortex-M: bisection over the thresholds, no bucket table"
fp=$tdir/footprint-check
CARGO_TARGET_DIR=$fp cargo build --release --target thumbv7em-none-eabihf --bin footprint_adamw8bit_bf16_sr
fpelf=$fp/thumbv7em-none-eabihf/release/footprint_adamw8bit_bf16_sr
if llvm-nm -C "$fpelf" | grep -i 'BUCKETS'; then
    echo "FAIL: an 8-bit bucket table is linked into the Cortex-M firmware"; exit 1
fi
llvm-nm -C -S --size-sort -t d "$fpelf" | grep -E 'INT(8|4)_(UN)?SIGNED_MAP' \
    || { echo "FAIL: the 8-bit code maps are missing (is the format code linked at all?)"; exit 1; }
echo "ok: no bucket table; the code maps above are the only code tables"

step "footprint per optimizer (thumbv7em-none-eabihf, release)"
./footprint.sh
