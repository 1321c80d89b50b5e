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

Storage formats: ``--formats f32,bf16-state,int8-state,int4-state,fp8-state,bf16,bf16-int8``
(names in ``FORMATS`` below; ``--optimizers`` then takes ``adam``, ``adamw`` or
``torchao-adamw``, default ``adamw``) times our step with each format (one driver per format,
``--params/--grads/--state``) and its own memory floor (the driver's byte floor: every byte of
parameters, gradients and state read, parameters and state written), against torch's fused
AdamW in f32 and in bf16 (bf16 parameters, gradients and state), torchao's compiled
``AdamW8bit`` and bitsandbytes' ``AdamW8bit`` (each skipped when not importable; ``--no-lowbit``
skips both). The low-bit contenders take about half a second per step on ResNet-18, so they run
in only ``--slow-rounds`` of the rounds (default 5), spread over the run. ``--summary FILE``
writes one JSON object per workload × optimizer × format (see ``summary_rows``).

Sparse mode: ``--sparse 1000000x64`` (``ROWSxDIM``; ``--touch-pct P``, default 1) times
``SparseAdam`` on one embedding table with ``P`` percent of its rows touched per step (the same
rows every step, spread evenly over the table, sorted and unique: torch's coalesced gradient)
against ``torch.optim.SparseAdam`` (its only implementation, the for-loop) on the same table and
rows, and the driver's floor for those rows (read the rows' parameters, gradient values and
both state planes, write parameters and state, no arithmetic).

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


# Pause before each timed repetition in --threads mode (see `settle`).
SETTLE_S = 0.1

WORKLOADS: dict[str, list[tuple[int, ...]]] = {
    "4Ki": [(4096,)],
    "64Ki": [(65536,)],
    # The threads mode's mid-sized tensor.
    "256Ki": [(262144,)],
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
    "256Ki": "one tensor, 256 Ki",
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
    "rprop": ("Rprop", {}),
    "asgd": ("ASGD", {}),
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
    """Builds the release driver and returns its path (from cargo's own report). Cargo inherits
    the environment, so ``CARGO_TARGET_DIR`` picks the target directory, as for any build."""
    # The rayon feature adds `--threads N` (parallel::apply) and changes nothing else.
    cmd = ["cargo", "build", "--release", "--features", "rayon", "--example", "bench_driver",
           "--message-format=json"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg["target"]["name"] == "bench_driver":
                return Path(msg["executable"])
    raise SystemExit("cargo did not report the bench_driver executable")


def driver_path_cached() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    target = target if target.is_absolute() else ROOT / target  # cargo runs in ROOT
    return target / "release" / "examples" / "bench_driver"


class Ours:
    """One driver process: `step` and `floor` repetitions on request."""

    def __init__(
        self,
        exe: Path,
        optimizer: str,
        sizes: list[int],
        target_ms: float,
        align: int,
        extra: list[str] | None = None,
    ):
        args = [str(exe), optimizer, ",".join(map(str, sizes)), "--target-ms", str(target_ms)]
        args += ["--align", str(align)] + (extra or [])
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
    if "fused" in variants:
        med["vs_fused"] = statistics.median(o / t for o, t in zip(samples["ours"], samples["fused"]))
    med["planes"] = ours.setup["planes"]
    med["backend"] = ours.setup["backend"]
    med["elements"] = sum(sizes)
    med["tensors"] = len(sizes)
    return med


# ---------------------------------------------------------------------------------------------
# Sparse gradients (--sparse)


class TorchSparse:
    """torch.optim.SparseAdam over one [rows, dim] table whose gradient touches `rows` rows."""

    def __init__(self, torch, rows: int, dim: int, touched: int, target_ms: float):
        gen = torch.Generator().manual_seed(42)
        self.p = torch.nn.Parameter(torch.rand((rows, dim), generator=gen) * 2 - 1)
        idx = torch.tensor([k * rows // touched for k in range(touched)], dtype=torch.long)
        values = (torch.rand((touched, dim), generator=gen) * 2 - 1) * 0.1
        self.p.grad = torch.sparse_coo_tensor(idx.unsqueeze(0), values, (rows, dim),
                                              is_coalesced=True, check_invariants=True)
        self.opt = torch.optim.SparseAdam([self.p])
        self.iters = calibrate(self.run, target_ms)

    def run(self, iters: int) -> float:
        step = self.opt.step
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            step()
        return time.perf_counter_ns() - t0

    def rep(self) -> float:
        return self.run(self.iters) / self.iters


def measure_sparse(torch, exe, rows, dim, pct, rounds, target_ms, align, sink) -> dict:
    ours = Ours(exe, "sparse-adam", [rows, dim], target_ms, align, ["--touch-pct", str(pct)])
    theirs = None
    try:
        touched = ours.setup["touched_rows"]
        theirs = TorchSparse(torch, rows, dim, touched, target_ms)
        samples: dict[str, list[float]] = {"ours": [], "floor": [], "torch": []}
        for r in range(rounds):
            samples["ours"].append(ours.rep("step"))
            samples["floor"].append(ours.rep("floor"))
            samples["torch"].append(theirs.rep())
        for k, xs in samples.items():
            for i, x in enumerate(xs):
                sink({"workload": f"sparse-{rows}x{dim}-{pct:g}pct", "optimizer": "sparse-adam",
                      "who": k, "round": i, "ns": x})
    finally:
        ours.close()
        theirs = None
        gc.collect()
    med = {k: statistics.median(xs) for k, xs in samples.items()}
    med["speedup"] = statistics.median(t / o for t, o in zip(samples["torch"], samples["ours"]))
    med["over_floor"] = statistics.median(o / f for o, f in zip(samples["ours"], samples["floor"]))
    med["backend"] = ours.setup["backend"]
    med["touched_rows"] = touched
    return med


# ---------------------------------------------------------------------------------------------
# Storage formats (--formats)

# Name -> (params, grads, state) as the driver's --params/--grads/--state take them.
FORMATS: dict[str, tuple[str, str, str]] = {
    "f32": ("f32", "f32", "f32"),
    "bf16-state": ("f32", "f32", "bf16"),
    "f16-state": ("f32", "f32", "f16"),
    "int8-state": ("f32", "f32", "int8"),
    "int4-state": ("f32", "f32", "int4"),
    "fp8-state": ("f32", "f32", "fp8"),
    # bf16 parameters, gradients and state, as torch's fused kernels keep them for bf16 params.
    "bf16": ("bf16", "bf16", "bf16"),
    "bf16-int8": ("bf16", "bf16", "int8"),
    "bf16-int4": ("bf16", "bf16", "int4"),
    "bf16-fp8": ("bf16", "bf16", "fp8"),
    # bf16 parameters with stochastic rounding / a Kahan compensation buffer, bf16 state.
    "bf16-sr": ("bf16-sr", "bf16", "bf16"),
    "bf16-kahan": ("bf16-kahan", "bf16", "bf16"),
}
DEFAULT_FORMATS = ["f32", "bf16-state", "int8-state", "int4-state", "fp8-state", "bf16", "bf16-int8"]

# Our optimizer name (formats mode) -> (torch.optim class, torchao class, bitsandbytes class,
# the formula our step computes). `torchao-adamw` is the crate's TorchaoAdam (torchao's order of
# operations and f32 scalars); `adam`/`adamw` are torch.optim's formula.
FORMAT_OPTIMIZERS: dict[str, tuple[str, str, str, str]] = {
    "adamw": ("AdamW", "AdamW8bit", "AdamW8bit", "torch"),
    "adam": ("Adam", "Adam8bit", "Adam8bit", "torch"),
    "torchao-adamw": ("AdamW", "AdamW8bit", "AdamW8bit", "torchao"),
}


def state_bytes(opt) -> int:
    """Bytes of optimizer state, summed over every parameter: values, codes and block scales.
    Not counted: step counters and the 256-entry code tables (`qmap`), which are constants."""

    def tensor_bytes(t) -> int:
        if hasattr(t, "__tensor_flatten__"):  # torchao's OptimState8bit & co: codes, scale, qmap
            names, _ = t.__tensor_flatten__()
            return sum(tensor_bytes(getattr(t, n)) for n in names if n != "qmap")
        return t.numel() * t.element_size()

    total = 0
    for st in opt.state.values():
        for k, v in st.items():
            if k == "step" or k.startswith("qmap") or not hasattr(v, "numel"):
                continue
            total += tensor_bytes(v)
    return total


class TorchContender:
    """A torch-side optimizer over fresh tensors of the workload's shapes, gradients set."""

    def __init__(self, torch, make, shapes, dtype, target_ms: float):
        gen = torch.Generator().manual_seed(42)
        self.params = []
        for shape in shapes:
            p = torch.nn.Parameter((torch.rand(shape, generator=gen) * 2 - 1).to(dtype))
            p.grad = ((torch.rand(shape, generator=gen) * 2 - 1) * 0.1).to(dtype)
            self.params.append(p)
        self.opt = make(self.params)
        t0 = time.perf_counter()
        self.opt.step()  # creates the state (and, for torchao, compiles)
        self.first_step_s = time.perf_counter() - t0
        self.state_bytes = state_bytes(self.opt)
        self.iters = calibrate(self.run, target_ms)

    def run(self, iters: int) -> float:
        step = self.opt.step
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            step()
        return time.perf_counter_ns() - t0

    def rep(self) -> float:
        return self.run(self.iters) / self.iters


def format_contenders(torch, optimizer: str, lowbit: bool):
    """(key, label, factory, dtype, slow) for every torch-side contender of the formats mode;
    a contender whose library is not importable is left out, with a note on stderr."""
    tname, ao_name, bnb_name, _ = FORMAT_OPTIMIZERS[optimizer]
    cls = getattr(torch.optim, tname)
    fused = {"fused": True} if has_fused(torch, tname) else {"foreach": True}
    kind = "fused" if "fused" in fused else "foreach"
    out = [
        ("torch_f32", f"torch {kind} {tname} f32", lambda ps: cls(ps, **fused), torch.float32, False),
        (
            "torch_bf16",
            f"torch {kind} {tname} bf16 (params, grads, state)",
            lambda ps: cls(ps, **fused),
            torch.bfloat16,
            False,
        ),
    ]
    if not lowbit:
        return out
    try:
        import torchao.optim as ao

        ao_cls = getattr(ao, ao_name)
        out.append(("torchao", f"torchao {ao_name} (compiled)", lambda ps: ao_cls(ps), torch.float32, True))
    except Exception as e:  # noqa: BLE001 - any import failure means: skip this contender
        print(f"torchao not usable, skipped: {e}", file=sys.stderr)
    try:
        import bitsandbytes as bnb

        bnb_cls = getattr(bnb.optim, bnb_name)
        out.append(("bnb", f"bitsandbytes {bnb_name} {bnb.__version__} (CPU)", lambda ps: bnb_cls(ps), torch.float32, True))
    except Exception as e:  # noqa: BLE001
        print(f"bitsandbytes not usable, skipped: {e}", file=sys.stderr)
    return out


def paired(xs: list[float | None], ys: list[float | None]) -> float | None:
    """Median of x/y over the rounds where both were measured."""
    r = [x / y for x, y in zip(xs, ys) if x is not None and y is not None]
    return statistics.median(r) if r else None


def median_of(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return statistics.median(v) if v else None


def slow_round_set(rounds: int, slow_rounds: int) -> set[int]:
    """`slow_rounds` round indices spread evenly over `rounds` (always including the middle)."""
    k = max(0, min(rounds, slow_rounds))
    return {min(rounds - 1, (2 * i + 1) * rounds // (2 * k)) for i in range(k)} if k else set()


def measure_formats(
    torch, exe, workload, optimizer, formats, rounds, slow_rounds, target_ms, align, lowbit, threads, sink
) -> dict:
    """One workload × optimizer: a driver per format (step, byte floor; the crate's floor too for
    f32) and the torch-side contenders, all interleaved round by round. Returns medians and the
    per-round samples (`samples[who]`, `None` where a contender did not run that round)."""
    shapes = WORKLOADS[workload]
    sizes = [numel(s) for s in shapes]
    elements = sum(sizes)
    drivers: dict[str, Ours] = {}
    contenders: dict[str, TorchContender] = {}
    labels: dict[str, str] = {}
    slow: set[str] = set()
    first_step: dict[str, float] = {}
    try:
        for f in formats:
            pf, gf, sf = FORMATS[f]
            extra = ["--params", pf, "--grads", gf, "--state", sf]
            drivers[f] = Ours(exe, optimizer, sizes, target_ms, align, extra)
        for key, label, make, dtype, is_slow in format_contenders(torch, optimizer, lowbit):
            print(f"  setting up {label} ...", file=sys.stderr, flush=True)
            contenders[key] = TorchContender(torch, make, shapes, dtype, target_ms)
            labels[key] = label
            first_step[key] = contenders[key].first_step_s
            if is_slow:
                slow.add(key)
        slow_set = slow_round_set(rounds, slow_rounds)
        samples: dict[str, list[float | None]] = {}

        def put(who: str, r: int, ns: float | None) -> None:
            samples.setdefault(who, [None] * rounds)[r] = ns
            if ns is not None:
                sink({"workload": workload, "optimizer": optimizer, "who": who, "round": r, "ns": ns,
                      "threads": threads, "loadavg": os.getloadavg()[0]})

        for r in range(rounds):
            for f, d in drivers.items():
                put(f"ours:{f}", r, d.rep("step"))
                put(f"floor:{f}", r, d.rep("floor-bytes"))
                if FORMATS[f] == ("f32", "f32", "f32"):
                    put("floor-crate:f32", r, d.rep("floor-crate"))
            for key, c in contenders.items():
                if key in slow and r not in slow_set:
                    put(key, r, None)
                    continue
                put(key, r, c.rep())
            print(f"  round {r + 1}/{rounds} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    finally:
        for d in drivers.values():
            d.close()
        setups = {f: d.setup for f, d in drivers.items()}
        cstate = {k: c.state_bytes for k, c in contenders.items()}
        contenders.clear()
        gc.collect()
    base = samples.get("torch_f32")
    rows = []
    for f in formats:
        ours, floor = samples[f"ours:{f}"], samples[f"floor:{f}"]
        row = {
            "format": f,
            "formats": FORMATS[f],
            "formula": FORMAT_OPTIMIZERS[optimizer][3],
            "ours": median_of(ours),
            "floor": median_of(floor),
            "over_floor": paired(ours, floor),
            "vs_torch_f32": paired(ours, base) if base else None,
            "vs_torch_bf16": paired(ours, samples["torch_bf16"]) if "torch_bf16" in samples else None,
            "torchao_over_ours": paired(samples["torchao"], ours) if "torchao" in samples else None,
            "bnb_over_ours": paired(samples["bnb"], ours) if "bnb" in samples else None,
            "state_bytes_per_param": setups[f]["state_bytes"] / elements,
            "state_formats": setups[f]["state_formats"],
            "backend": setups[f]["backend"],
        }
        if f"floor-crate:{f}" in samples:
            row["floor_crate"] = median_of(samples[f"floor-crate:{f}"])
            row["bytes_over_crate"] = paired(floor, samples[f"floor-crate:{f}"])
        rows.append(row)
    others = []
    for key in labels:
        others.append({
            "key": key,
            "label": labels[key],
            "median": median_of(samples[key]),
            "vs_torch_f32": paired(samples[key], base) if base else None,
            "runs": sum(x is not None for x in samples[key]),
            "state_bytes_per_param": cstate[key] / elements,
            "first_step_s": first_step[key],
        })
    return {
        "workload": workload,
        "optimizer": optimizer,
        "threads": threads,
        "elements": elements,
        "tensors": len(sizes),
        "rows": rows,
        "contenders": others,
        "samples": samples,
    }


def settle() -> None:
    """Lets every thread of the previous contender go idle before the next one is timed:
    torch's OpenMP workers and rayon's workers spin for a while after their last task, and on
    a 2-core machine a spinning thread takes a core from the next measurement."""
    time.sleep(SETTLE_S)


def measure_threads(torch, exe, workload, optimizer, thread_counts, rounds, target_ms, align, sink) -> list[dict]:
    """One workload × optimizer in f32 at every thread count: a driver per count (our step
    through `parallel::apply` on a pool of N threads, and the crate's floor split the same way)
    and torch's fused (or foreach) optimizer under `torch.set_num_threads(N)`, all interleaved
    round by round. Returns one result per count, in `measure_formats`' shape (so
    `summary_rows` serves both), each with `speedup_vs_1` (ours at 1 thread ÷ ours at N)."""
    shapes = WORKLOADS[workload]
    sizes = [numel(s) for s in shapes]
    elements = sum(sizes)
    drivers: dict[int, Ours] = {}
    torches: dict[int, TorchContender] = {}
    key, label, make, dtype, _ = format_contenders(torch, optimizer, False)[0]
    try:
        for n in thread_counts:
            drivers[n] = Ours(exe, optimizer, sizes, target_ms, align, ["--threads", str(n)])
            torch.set_num_threads(n)
            torches[n] = TorchContender(torch, make, shapes, dtype, target_ms)
        samples: dict[str, list[float]] = {}

        def put(who: str, n: int, r: int, ns: float) -> None:
            samples.setdefault(f"{who}:{n}", []).append(ns)
            sink({"workload": workload, "optimizer": optimizer, "who": who, "round": r, "ns": ns,
                  "threads": n, "loadavg": os.getloadavg()[0]})

        for r in range(rounds):
            for n in thread_counts:
                torch.set_num_threads(n)
                settle()
                put("ours", n, r, drivers[n].rep("step"))
                settle()
                put("floor", n, r, drivers[n].rep("floor"))
                settle()
                put(key, n, r, torches[n].rep())
            print(f"  round {r + 1}/{rounds} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    finally:
        for d in drivers.values():
            d.close()
        setups = {n: d.setup for n, d in drivers.items()}
        torches.clear()
        gc.collect()
        torch.set_num_threads(1)
    out = []
    one = samples.get(f"ours:{thread_counts[0]}") if thread_counts[0] == 1 else None
    for n in thread_counts:
        ours, floor, base = samples[f"ours:{n}"], samples[f"floor:{n}"], samples[f"{key}:{n}"]
        row = {
            "format": "f32",
            "formats": FORMATS["f32"],
            "formula": FORMAT_OPTIMIZERS[optimizer][3],
            "ours": median_of(ours),
            "floor": median_of(floor),
            "over_floor": paired(ours, floor),
            "vs_torch_f32": paired(ours, base),
            "state_bytes_per_param": setups[n]["state_bytes"] / elements,
            "backend": setups[n]["backend"],
        }
        out.append({
            "workload": workload,
            "optimizer": optimizer,
            "threads": n,
            "elements": elements,
            "tensors": len(sizes),
            "rows": [row],
            "contenders": [{"key": key, "label": label, "median": median_of(base)}],
            "speedup_vs_1": paired(one, ours) if one else None,
            "samples": samples,
        })
    return out


def threads_table(results: list[dict]) -> str:
    lines = [
        "| workload | optimizer | threads | ours | floor | ours ÷ floor | torch | ours ÷ torch | "
        "ours at 1 thread ÷ ours |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for res in results:
        row, torch_c = res["rows"][0], res["contenders"][0]
        lines.append(
            f"| {LABELS.get(res['workload'], res['workload'])} | {res['optimizer']} | "
            f"{res['threads']} | {fmt_time(row['ours'])} | {fmt_time(row['floor'])} | "
            f"{ratio(row['over_floor'], '.2f', '')} | {fmt_time(torch_c['median'])} | "
            f"{ratio(row['vs_torch_f32'], '.3f', '')} | {ratio(res['speedup_vs_1'], '.2f')} |"
        )
    return "\n".join(lines)


def summary_rows(results: list[dict]) -> list[dict]:
    """The summary records of formats-mode results (from `measure_formats`, at any thread
    count): one per workload × optimizer × format. Times in seconds per step (medians);
    `vs_torch_fused_f32` = ours ÷ torch fused f32 at the same thread count and `vs_floor` =
    ours ÷ the format's floor, each the median of the per-round ratios."""
    out = []
    for res in results:
        base = next((c for c in res["contenders"] if c["key"] == "torch_f32"), None)
        for row in res["rows"]:
            out.append({
                "workload": res["workload"],
                "optimizer": res["optimizer"],
                "format": row["format"],
                "threads": res["threads"],
                "ours_s": row["ours"] / 1e9,
                "floor_s": row["floor"] / 1e9,
                "torch_fused_f32_s": base["median"] / 1e9 if base and base["median"] else None,
                "vs_torch_fused_f32": row["vs_torch_f32"],
                "vs_floor": row["over_floor"],
                "state_bytes_per_param": row["state_bytes_per_param"],
            })
    return out


def legacy_summary(results: list[tuple[str, str, dict]], threads: int) -> list[dict]:
    """Summary records of the default (all-f32) mode, in `summary_rows`' shape; `floor_s` is the
    crate's `memory_floor` there, and the torch fields are None where torch has no fused kernel."""
    out = []
    for workload, optimizer, m in results:
        fused = m.get("fused")
        out.append({
            "workload": workload,
            "optimizer": optimizer,
            "format": "f32",
            "threads": threads,
            "ours_s": m["ours"] / 1e9,
            "floor_s": m["floor"] / 1e9,
            "torch_fused_f32_s": fused / 1e9 if fused is not None else None,
            "vs_torch_fused_f32": m.get("vs_fused"),
            "vs_floor": m["over_floor"],
            "state_bytes_per_param": 4.0 * m["planes"],
        })
    return out


def write_summary(path: Path, results: list[dict]) -> None:
    path.write_text(json.dumps(summary_rows(results), indent=1) + "\n")


def ratio(x: float | None, digits: str = ".3g", suffix: str = "×") -> str:
    return "–" if x is None else f"{x:{digits}}{suffix}"


def formats_tables(results: list[dict]) -> str:
    rows = [
        "| workload | format | params / grads / state | formula | state B/param | ours | floor "
        "| ours ÷ floor | ours ÷ torch fused f32 | ours ÷ torch fused bf16 | torchao 8-bit ÷ ours "
        "| bnb 8-bit ÷ ours |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for res in results:
        for r in res["rows"]:
            rows.append(
                "| {} | {} | {} | {} | {:.3f} | {} | {} | {} | {} | {} | {} | {} |".format(
                    LABELS[res["workload"]],
                    r["format"],
                    " / ".join(r["formats"]),
                    f"{r['formula']} ({res['optimizer']})",
                    r["state_bytes_per_param"],
                    fmt_time(r["ours"]),
                    fmt_time(r["floor"]),
                    ratio(r["over_floor"], ".2f", ""),
                    ratio(r["vs_torch_f32"], ".3f", ""),
                    ratio(r["vs_torch_bf16"], ".3f", ""),
                    ratio(r["torchao_over_ours"]),
                    ratio(r["bnb_over_ours"]),
                )
            )
    rows += [
        "",
        "| workload | contender | time per step | ÷ torch fused f32 | rounds run | state B/param | first step |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for res in results:
        for c in res["contenders"]:
            rows.append(
                "| {} | {} | {} | {} | {} | {:.3f} | {:.3g} s |".format(
                    LABELS[res["workload"]],
                    c["label"],
                    fmt_time(c["median"]),
                    ratio(c["vs_torch_f32"], ".3f", ""),
                    c["runs"],
                    c["state_bytes_per_param"],
                    c["first_step_s"],
                )
            )
    checks = [(res, r) for res in results for r in res["rows"] if "floor_crate" in r]
    if checks:
        rows += [
            "",
            "| workload | f32 byte floor (driver) | crate `memory_floor` | byte ÷ crate |",
            "|---|--:|--:|--:|",
        ]
        for res, r in checks:
            rows.append(
                "| {} | {} | {} | {} |".format(
                    LABELS[res["workload"]],
                    fmt_time(r["floor"]),
                    fmt_time(r["floor_crate"]),
                    ratio(r["bytes_over_crate"], ".3f", ""),
                )
            )
    return "\n".join(rows)


def fmt_time(ns: float | None) -> str:
    if ns is None:
        return "–"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.3g} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e9:.3g} s"


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
    ap.add_argument(
        "--optimizers",
        help="comma-separated, from: " + ",".join(OPTIMIZERS)
        + "; with --formats: " + ",".join(FORMAT_OPTIMIZERS),
    )
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
    ap.add_argument(
        "--formats",
        help="storage formats mode, comma-separated, from: " + ",".join(FORMATS)
        + " (workloads default to 16Mi,resnet18, optimizers to adamw)",
    )
    ap.add_argument(
        "--slow-rounds",
        type=int,
        default=5,
        help="with --formats: rounds in which torchao/bitsandbytes run (default 5)",
    )
    ap.add_argument("--no-lowbit", action="store_true", help="with --formats: skip torchao and bitsandbytes")
    ap.add_argument("--summary", type=Path, help="write the summary records (JSON list) to this file")
    ap.add_argument(
        "--threads",
        help="thread counts mode, comma-separated (e.g. 1,2): ours through parallel::apply and "
        "torch under set_num_threads at each count, interleaved, in f32 (workloads default to "
        "256Ki,resnet18,16Mi, optimizers to adam)",
    )
    ap.add_argument(
        "--sparse",
        help="sparse mode: SparseAdam on one ROWSxDIM embedding table (e.g. 1000000x64) against "
        "torch.optim.SparseAdam",
    )
    ap.add_argument(
        "--touch-pct", type=float, default=1.0,
        help="with --sparse: percentage of the rows each step touches (default 1)",
    )
    a = ap.parse_args()
    check_workloads()

    formats = a.formats.split(",") if a.formats else None
    if formats:
        for f in formats:
            if f not in FORMATS:
                ap.error(f"unknown format {f!r}")
    default_workloads = ["16Mi", "resnet18"] if formats else (
        QUICK_WORKLOADS if a.quick else [w for w in WORKLOADS if w != "256Ki"])
    workloads = a.workloads.split(",") if a.workloads else default_workloads
    default_optimizers = ["adamw"] if formats else (
        QUICK_OPTIMIZERS if a.quick else list(OPTIMIZERS))
    optimizers = a.optimizers.split(",") if a.optimizers else default_optimizers
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}")
    for o in optimizers:
        if o not in (FORMAT_OPTIMIZERS if formats else OPTIMIZERS):
            ap.error(f"unknown optimizer {o!r}" + (" for --formats" if formats else ""))
    rounds = a.rounds or (2 if a.quick else 11)
    target_ms = a.target_ms or (5.0 if a.quick else 30.0)
    threads = 1

    exe = driver_path_cached() if a.no_build else build_driver()
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    sink_file = a.json.open("w") if a.json else None

    def sink(obj: dict) -> None:
        if sink_file:
            sink_file.write(json.dumps(obj) + "\n")

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    flags = os.environ.get("RUSTFLAGS")
    build = f"RUSTFLAGS={flags!r}" if flags else "default build"

    if a.sparse:
        try:
            rows, dim = (int(x) for x in a.sparse.lower().split("x"))
        except ValueError:
            ap.error(f"--sparse takes ROWSxDIM, not {a.sparse!r}")
        m = measure_sparse(torch, exe, rows, dim, a.touch_pct, rounds, target_ms, a.align, sink)
        if sink_file:
            sink_file.close()
        print(
            f"Median time per optimizer step, {rounds} interleaved rounds of ~{target_ms:g} ms each; "
            f"{cpu_model()}; one thread; ours on `{m['backend']}` ({build}), torch "
            f"{torch.__version__}; {started:%Y-%m-%d}.\n"
        )
        print("| table | rows touched | ours | floor | torch SparseAdam | torch ÷ ours | ours ÷ floor |")
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {rows} × {dim} | {m['touched_rows']} ({a.touch_pct:g}%) | {fmt_time(m['ours'])} | "
            f"{fmt_time(m['floor'])} | {fmt_time(m['torch'])} | {ratio(m['speedup'])} | "
            f"{m['over_floor']:.2f} |"
        )
        return

    if a.threads:
        counts = [int(t) for t in a.threads.split(",")]
        tworkloads = a.workloads.split(",") if a.workloads else ["256Ki", "resnet18", "16Mi"]
        toptimizers = a.optimizers.split(",") if a.optimizers else ["adam"]
        for w in tworkloads:
            if w not in WORKLOADS:
                ap.error(f"unknown workload {w!r}")
        for o in toptimizers:
            if o not in FORMAT_OPTIMIZERS:
                ap.error(f"unknown optimizer {o!r} for --threads")
        tresults = []
        for w in tworkloads:
            for o in toptimizers:
                print(f"{w} {o}: threads {counts}", file=sys.stderr, flush=True)
                tresults += measure_threads(torch, exe, w, o, counts, rounds, target_ms, a.align, sink)
        if sink_file:
            sink_file.close()
        if a.summary:
            write_summary(a.summary, tresults)
        load_after = os.getloadavg()
        backend = tresults[0]["rows"][0]["backend"] if tresults else "?"
        print(
            f"Median time per optimizer step, {rounds} interleaved rounds of ~{target_ms:g} ms each; "
            f"{cpu_model()}; {os.cpu_count()} CPUs; ours on `{backend}` ({build}) through "
            f"`parallel::apply`, torch {torch.__version__} fused under `set_num_threads`; "
            f"{started:%Y-%m-%d}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.\n"
        )
        print(threads_table(tresults))
        print(
            "\n`floor`: the crate's memory floor split across the same threads. Ratios are medians "
            "of per-round ratios. `ours at 1 thread ÷ ours`: the speedup over our one-thread step "
            "(through the same pool code with one thread)."
        )
        return

    if formats:
        fresults = []
        for w in workloads:
            for o in optimizers:
                print(f"{w} {o}: starting {len(formats)} drivers", file=sys.stderr, flush=True)
                res = measure_formats(
                    torch, exe, w, o, formats, rounds, a.slow_rounds, target_ms, a.align,
                    not a.no_lowbit, threads, sink,
                )
                fresults.append(res)
                for r in res["rows"]:
                    print(
                        f"{w:>9} {o:<13} {r['format']:<11} ours {fmt_time(r['ours']):>10}  "
                        f"floor {fmt_time(r['floor']):>10}  ÷torch-f32 {ratio(r['vs_torch_f32'], '.3f', '')}",
                        file=sys.stderr,
                        flush=True,
                    )
        if sink_file:
            sink_file.close()
        if a.summary:
            write_summary(a.summary, fresults)
        backend = fresults[0]["rows"][0]["backend"] if fresults else "?"
        load_after = os.getloadavg()
        print(
            f"Median time per optimizer step, {rounds} interleaved rounds of ~{target_ms:g} ms each "
            f"(torchao/bitsandbytes in {len(slow_round_set(rounds, a.slow_rounds))} of them); "
            f"{cpu_model()}; {threads} thread; ours on `{backend}` ({build}), torch "
            f"{torch.__version__}; {started:%Y-%m-%d}; load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after.\n"
        )
        print(formats_tables(fresults))
        print(
            "\nTimes are medians over the rounds; ratios are medians of the per-round ratios "
            "(measured in the same round). `floor`: the format's byte floor (the driver reads every "
            "byte of parameters, gradients and state, codes and scales included, and writes "
            "parameters and state, with no arithmetic). State bytes per parameter count values, "
            "codes and block scales (not step counters or code tables); block formats go to "
            "tensors of at least 4096 values that fill whole blocks, as torchao does, the others "
            "keep their state in the parameters' dtype. Formula `torch`: torch.optim's AdamW "
            "(the crate's `Adam::adamw()`, whatever the storage); `torchao`: the crate's "
            "`TorchaoAdam` (torchao's order of operations, f32 scalars)."
        )
        return

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
    if a.summary:
        a.summary.write_text(json.dumps(legacy_summary(results, threads), indent=1) + "\n")

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
