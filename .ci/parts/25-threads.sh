#!/usr/bin/env bash
# Multi-core steps (feature `rayon`): clippy, the parallel tests (1, 2, 3 and 8 threads against
# one, on every optimizer and format) and the `parallel` doctests. The default build stays
# no_std with no rayon (the README's test command and the thumbv7em build check that).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy --release --all-targets --features rayon -- -D warnings
cargo test --release --features rayon --test formats -- pieces_on_threads parallel_steps split_errors bad_tensor
cargo test --release --features rayon --doc parallel
cargo run --release --example threads
# What a parallel step allocates (rayon's injector blocks only), printed for docs/threads.md.
cargo test --release --features rayon --test parallel_alloc -- --nocapture
