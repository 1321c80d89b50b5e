#!/usr/bin/env python3
"""Compare fused-optim's optimizer step with torch.optim on the CPU, in one run.

Usage (from the repository root)::

    python3 -m venv /root/torchvenv                  # once: any path will do
    /root/torchvenv/bin/pip install torch            # a CPU build is enough
    /root/torchvenv/bin/python bench/compare.py      # full run, a few minutes
    /root/torchvenv/bin/python bench/compare.py --quick   # smoke run, well under a minute

Options: ``--workloads 64Ki,resnet18``, ``--optimizers adam,adagrad``, ``--rounds N``,
``--target-ms MS`` (length of one repetition), ``--json FILE`` (every sample, one JSON object
per line), ``--no-build`` (reuse the driver built last time), ``--align 64`` (start our buffers
on 64-byte boundaries, as torch's allocator does; by default they start wherever the system
allocator puts a ``Vec``, 16-byte aligned with glibc, as most Rust callers' buffers do).

What it does:

* builds ``examples/bench_driver.rs`` with ``cargo build --release`` (default flags: whatever
  ``RUSTFLAGS`` is set to is passed through, so leave it unset to measure the default build,
  which picks AVX2 or AVX-512 at run time);
* for every workload and optimizer, starts one driver process (our side: one plan per step,
  applied to every tensor, timing the whole step, and the memory floor over the same tensors)
  and builds ``torch.optim`` optimizers over tensors of the same shapes, with gradients set:
  ``fused=True`` where torch has it, ``foreach=True``, and the for-loop (``foreach=False``);
  torch runs on one thread (``torch.set_num_threads(1)``), timing ``opt.step()`` alone;
* after calibrating each contender to about ``--target-ms`` per repetition, runs them
  interleaved, one repetition each in turn (ours, floor, fused, foreach, for-loop, ours, ...),
  for ``--rounds`` rounds, so slow drifts of a shared machine hit every contender alike;
* prints a Markdown table of the medians (time per optimizer step) with the ratios
  ``torch fused / ours`` (how many times faster ours is; the fastest torch variant where torch
  has no fused kernel) and ``ours / floor`` (1.00 = as fast as moving the bytes), each the
  median of the per-round ratios, so a slow stretch of a shared machine cancels out.

Hyperparameters are torch's defaults (SGD: ``lr=1e-3, momentum=0.9``), the same as the
crate's. Workloads: single tensors of 4 Ki, 64 Ki and 16 Mi elements; the 62 parameter tensors
of torchvision's ResNet-18 (11 689 512 parameters, shapes written out below); a small CNN
(6 tensors, 5 258 parameters); a 1-20-1 MLP (4 tensors, 61 parameters).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resnet18_shapes() -> list[tuple[int, ...]]:
    """torchvision.models.resnet18()'s parameter shapes, in named_parameters() order."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]  # conv1, bn1
    in_ch = 64
    for out_ch, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for block in range(2):
            cin = in_ch if block == 0 else out_ch
            shapes += [(out_ch, cin, 3, 3), (out_ch,), (out_ch,)]  # conv1, bn1
            shapes += [(out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]  # conv2, bn2
            if block == 0 and (stride != 1 or cin != out_ch):
                shapes += [(out_ch, cin, 1, 1), (out_ch,), (out_ch,)]  # downsample conv, bn
        in_ch = out_ch
    shapes += [(1000, 512), (1000,)]  # fc
    return shapes


WORKLOADS: dict[str, list[tuple[int, ...]]] = {
    "4Ki": [(4096,)],
    "64Ki": [(65536,)],
    "16Mi": [(16 << 20,)],
    "resnet18": resnet18_shapes(),
    # conv 8x1x3x3 + bias, conv 16x8x3x3 + bias, linear 10x400 + bias
    "cnn": [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (10, 400), (10,)],
    # 1-20-1 MLP
    "mlp": [(20, 1), (20,), (1, 20), (1,)],
}
LABELS = {
    "4Ki": "one tensor, 4 Ki",
    "64Ki": "one tensor, 64 Ki",
    "16Mi": "one tensor, 16 Mi",
    "resnet18": "ResNet-18 (62 tensors, 11.7 M)",
    "cnn": "small CNN (6 tensors, 5 258)",
    "mlp": "MLP 1-20-1 (4 tensors, 61)",
}

# Our name -> (torch class name, keyword arguments). Defaults are torch's (and ours).
OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "sgd-momentum": ("SGD", {"lr": 1e-3, "momentum": 0.9}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {}),
    "rmsprop": ("RMSprop", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
    "radam": ("RAdam", {}),
}

QUICK_WORKLOADS = ["4Ki", "64Ki", "cnn", "mlp"]
QUICK_OPTIMIZERS = ["adam", "sgd-momentum", "adagrad", "nadam"]


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def check_workloads() -> None:
    counts = {k: (len(v), sum(map(numel, v))) for k, v in WORKLOADS.items()}
    assert counts["resnet18"] == (62, 11_689_512), counts["resnet18"]
    assert counts["cnn"] == (6, 5258), counts["cnn"]
    assert counts["mlp"] == (4, 61), counts["mlp"]


def build_driver() -> Path:
    """Builds the release driver and returns its path (from cargo's own report)."""
    cmd = ["cargo", "build", "--release", "--example", "bench_driver", "--message-format=json"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg["target"]["name"] == "bench_driver":
                return Path(msg["executable"])
    raise SystemExit("cargo did not report the bench_driver executable")


def driver_path_cached() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return Path(target) / "release" / "examples" / "bench_driver"


class Ours:
    """One driver process: `step` and `floor` repetitions on request."""

    def __init__(self, exe: Path, optimizer: str, sizes: list[int], target_ms: float, align: int):
        args = [str(exe), optimizer, ",".join(map(str, sizes)), "--target-ms", str(target_ms)]
        args += ["--align", str(align)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.setup = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench_driver exited early ({self.proc.wait()})")
        return json.loads(line)

    def rep(self, kind: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(kind + "\n")
        self.proc.stdin.flush()
        msg = self._read()
        assert msg["kind"] == kind, msg
        return msg["ns_per_step"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


class Torch:
    """One torch.optim optimizer over fresh tensors of the workload's shapes."""

    def __init__(self, torch, name: str, kwargs: dict, shapes, variant: str, target_ms: float):
        gen = torch.Generator().manual_seed(42)
        self.params = []
        for shape in shapes:
            p = torch.nn.Parameter(torch.rand(shape, generator=gen) * 2 - 1)
            p.grad = (torch.rand(shape, generator=gen) * 2 - 1) * 0.1
            self.params.append(p)
        flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
        self.opt = getattr(torch.optim, name)(self.params, **kwargs, **flags[variant])
        self.iters = calibrate(self.run, target_ms)

    def run(self, iters: int) -> float:
        step = self.opt.step
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            step()
        return time.perf_counter_ns() - t0

    def rep(self) -> float:
        return self.run(self.iters) / self.iters


def calibrate(run, target_ms: float) -> int:
    """Iterations per repetition: the driver's rule (warm up, double, best of three)."""
    target = target_ms * 1e6
    run(1)
    iters = 1
    while iters < (1 << 40) and run(iters) < target / 4:
        iters *= 2
    best = min(run(iters) for _ in range(3))
    return max(1, round(target / (best / iters)))


def has_fused(torch, name: str) -> bool:
    import inspect

    return "fused" in inspect.signature(getattr(torch.optim, name)).parameters


def measure(torch, exe, workload, optimizer, rounds, target_ms, align, sink) -> dict:
    shapes = WORKLOADS[workload]
    sizes = [numel(s) for s in shapes]
    tname, kwargs = OPTIMIZERS[optimizer]
    variants = (["fused"] if has_fused(torch, tname) else []) + ["foreach", "for-loop"]
    ours = Ours(exe, optimizer, sizes, target_ms, align)
    contenders: dict[str, object] = {}
    try:
        for v in variants:
            contenders[v] = Torch(torch, tname, kwargs, shapes, v, target_ms)
        samples: dict[str, list[float]] = {k: [] for k in ["ours", "floor", *variants]}
        for r in range(rounds):
            # A B A B: one repetition of each contender in turn, every round.
            samples["ours"].append(ours.rep("step"))
            samples["floor"].append(ours.rep("floor"))
            for v in variants:
                samples[v].append(contenders[v].rep())
        for k, xs in samples.items():
            for i, x in enumerate(xs):
                sink({"workload": workload, "optimizer": optimizer, "who": k, "round": i, "ns": x})
    finally:
        ours.close()
        contenders.clear()
        gc.collect()
    med = {k: statistics.median(xs) for k, xs in samples.items()}
    # Ratios from the same round (paired), then their median: robust to the machine's drift.
    best_torch = "fused" if "fused" in variants else min(variants, key=lambda v: med[v])
    med["speedup"] = statistics.median(t / o for t, o in zip(samples[best_torch], samples["ours"]))
    med["over_floor"] = statistics.median(o / f for o, f in zip(samples["ours"], samples["floor"]))
    med["backend"] = ours.setup["backend"]
    med["elements"] = sum(sizes)
    med["tensors"] = len(sizes)
    return med


def fmt_time(ns: float | None) -> str:
    if ns is None:
        return "–"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns / 1e6:.3g} ms"


def floor_makes_sense(workload: str) -> bool:
    """The floor is a bandwidth bound: meaningful where tensors are large, not where a step is a
    few dozen elements and per-call overhead is all there is."""
    shapes = WORKLOADS[workload]
    return sum(map(numel, shapes)) / len(shapes) >= 4096


def table(results: list[tuple[str, str, dict]]) -> str:
    rows = [
        "| workload | optimizer | ours | memory floor | torch fused | torch foreach | torch for-loop "
        "| torch fused ÷ ours | ours ÷ floor |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for workload, optimizer, m in results:
        fused = m.get("fused")
        speedup = f"{m['speedup']:.3g}×" if fused is not None else f"({m['speedup']:.3g}×)"
        show_floor = floor_makes_sense(workload)
        rows.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                LABELS[workload],
                optimizer,
                fmt_time(m["ours"]),
                fmt_time(m["floor"]) if show_floor else "–",
                fmt_time(fused),
                fmt_time(m["foreach"]),
                fmt_time(m["for-loop"]),
                speedup,
                f"{m['over_floor']:.2f}" if show_floor else "–",
            )
        )
    return "\n".join(rows)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True, check=True).stdout
        fields = dict(
            (k.strip(), v.strip()) for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l)
        )
        return f"{fields.get('Model name', '?')}, {fields.get('CPU(s)', '?')} CPUs"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run")
    ap.add_argument("--workloads", help="comma-separated, from: " + ",".join(WORKLOADS))
    ap.add_argument("--optimizers", help="comma-separated, from: " + ",".join(OPTIMIZERS))
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 11, quick 2)")
    ap.add_argument("--target-ms", type=float, help="one repetition (default 30, quick 5)")
    ap.add_argument("--json", type=Path, help="write every sample to this file (JSON lines)")
    ap.add_argument("--no-build", action="store_true", help="reuse the last driver build")
    ap.add_argument(
        "--align",
        type=int,
        default=0,
        help="start our buffers at this many bytes (torch's are 64-byte aligned); default: "
        "wherever the allocator puts them",
    )
    a = ap.parse_args()
    check_workloads()

    workloads = a.workloads.split(",") if a.workloads else (
        QUICK_WORKLOADS if a.quick else list(WORKLOADS))
    optimizers = a.optimizers.split(",") if a.optimizers else (
        QUICK_OPTIMIZERS if a.quick else list(OPTIMIZERS))
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}")
    for o in optimizers:
        if o not in OPTIMIZERS:
            ap.error(f"unknown optimizer {o!r}")
    rounds = a.rounds or (2 if a.quick else 11)
    target_ms = a.target_ms or (5.0 if a.quick else 30.0)

    exe = driver_path_cached() if a.no_build else build_driver()
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    sink_file = a.json.open("w") if a.json else None

    def sink(obj: dict) -> None:
        if sink_file:
            sink_file.write(json.dumps(obj) + "\n")

    started = datetime.datetime.now(datetime.timezone.utc)
    results = []
    backend = "?"
    for w in workloads:
        for o in optimizers:
            m = measure(torch, exe, w, o, rounds, target_ms, a.align, sink)
            backend = m["backend"]
            results.append((w, o, m))
            print(
                f"{w:>9} {o:<13} ours {fmt_time(m['ours']):>10}  floor {fmt_time(m['floor']):>10}  "
                + "  ".join(f"{k} {fmt_time(m.get(k)):>10}" for k in ["fused", "foreach", "for-loop"]),
                file=sys.stderr,
                flush=True,
            )
    if sink_file:
        sink_file.close()

    flags = os.environ.get("RUSTFLAGS")
    build = f"RUSTFLAGS={flags!r}" if flags else "default build"
    print(
        f"Median time per optimizer step, {rounds} interleaved rounds of ~{target_ms:g} ms each; "
        f"{cpu_model()}; one thread; ours on `{backend}` ({build}), "
        f"torch {torch.__version__}; {started:%Y-%m-%d}.\n"
    )
    print(table(results))
    print(
        "\nTimes are medians over the rounds. Ratios are medians of the per-round ratios "
        "(measured back to back). `torch fused ÷ ours`: how many times faster our step is than "
        "`torch.optim` with `fused=True`; in parentheses, against the fastest torch variant where "
        "torch has no fused kernel. `ours ÷ floor`: our step against streaming the same bytes "
        "with no arithmetic (shown where tensors are large enough for bandwidth to matter)."
    )


if __name__ == "__main__":
    main()
