#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for a short, bounded time, starting from the committed
# corpus (tests/fuzz/corpus, inside the package so the stable replay ships with it), and fails on a finding. Needs a nightly toolchain: without one this check is skipped
# with a message. cargo-fuzz is installed when missing (a couple of minutes to build).
# The same target logic also runs on stable in `cargo test` (tests/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."

secs="${FUZZ_SECONDS:-10}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain, skipped (tests/fuzz_corpus.rs still replays the corpus)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    if ! timeout 900 cargo +nightly install cargo-fuzz --locked; then
        echo "fuzz: cargo-fuzz could not be installed, skipped"
        exit 0
    fi
fi

cd fuzz
cargo +nightly fuzz build -O
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
    echo "--- fuzz $target for ${secs}s"
    mkdir -p "$work/$target"
    cp ../tests/fuzz/corpus/"$target"/* "$work/$target"/
    # A crash, a panic (a differential mismatch) or a timeout exits non-zero and fails CI;
    # the reproducer is left in fuzz/artifacts/$target/.
    if ! cargo +nightly fuzz run -O "$target" "$work/$target" -- \
        -max_total_time="$secs" -timeout=20 -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 80 "$work/$target.log"
        echo "fuzz: finding in $target"
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$work/$target.log" || true
done
echo "fuzz: every target ran ${secs}s without a finding"
