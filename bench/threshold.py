#!/usr/bin/env python3
"""Measures where splitting a step across threads starts to pay, to choose
`parallel::MIN_PARALLEL`.

For each tensor size, two `bench_driver` processes run the same optimizer step through
`parallel::apply_with_threshold`: one on a rayon pool of 1 thread, one on a pool of N threads
with the threshold at 0 (always split). Their repetitions are interleaved, and the table gives
the medians and the median of the per-round ratios (1 thread ÷ N threads; above 1, splitting
pays). Both paths pay `ThreadPool::install`'s hand-off to the pool, as a caller of
`parallel::apply` does; only the split differs.

    python3 bench/threshold.py                      # adam and sgd, 2 threads
    python3 bench/threshold.py --optimizers adamw --threads 2 --rounds 31

Needs only Rust (no torch). Quote the run's machine and load with the numbers.
"""
from __future__ import annotations

import argparse
import os
import sys

from compare import Ours, build_driver, driver_path_cached, median_of, paired

SIZES = [2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizers", default="sgd,adam", help="comma-separated bench_driver names")
    ap.add_argument("--threads", type=int, default=2, help="the split side's pool size")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--target-ms", type=float, default=20.0)
    ap.add_argument("--no-build", action="store_true", help="reuse the last driver build")
    args = ap.parse_args()
    exe = driver_path_cached() if args.no_build else build_driver()
    print(f"load average {os.getloadavg()[0]:.1f} before", file=sys.stderr)
    for opt in args.optimizers.split(","):
        print(f"\n{opt}, f32, one tensor, 1 thread vs {args.threads} threads (split at any size):\n")
        print(f"| elements | 1 thread | {args.threads} threads | 1 ÷ {args.threads} |")
        print("|--:|--:|--:|--:|")
        for n in SIZES:
            one = Ours(exe, opt, [n], args.target_ms, 0, ["--threads", "1"])
            many = Ours(exe, opt, [n], args.target_ms, 0,
                        ["--threads", str(args.threads), "--min-parallel", "0"])
            xs, ys = [], []
            try:
                for _ in range(args.rounds):
                    xs.append(one.rep("step"))
                    ys.append(many.rep("step"))
            finally:
                one.close()
                many.close()
            print(f"| {n} | {median_of(xs) / 1e3:.2f} µs | {median_of(ys) / 1e3:.2f} µs "
                  f"| {paired(xs, ys):.2f}× |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} after", file=sys.stderr)


if __name__ == "__main__":
    main()
