#!/usr/bin/env python3
"""Write reduced-precision conformance vectors (format ``torch-optim-vectors/2``) for fused-optim.

Two families of files, each case one flat parameter fed seeded gradients for a few steps, with
the parameters recorded after every ``step()`` (see ``shared/spec/torch-vectors.md``):

* ``fused_bf16.json`` / ``fused_f16.json``: torch's fused CPU kernels (``fused=True``) for SGD,
  Adam, AdamW and Adagrad with ``bfloat16`` / ``float16`` parameters and gradients. torch keeps
  the optimizer state in the parameter's dtype and computes each element in f32, rounding once
  per store; the cases carry no ``"state"`` key (state as torch keeps it). Next to ordinary
  cases (updates well above the dtype's resolution) there are ``*_sub_ulp`` cases whose
  parameters mostly have magnitude 1..4 and whose updates are smaller than half a unit in the
  last place, so a parameter only moves if the implementation rounds exactly like torch.
* ``torchao.json``: torchao's low-bit optimizers (``AdamW8bit``, ``Adam8bit``, ``AdamW4bit``,
  ``Adam4bit``, ``AdamWFp8``, ``AdamFp8``) run through their default ``torch.compile`` path on
  the CPU (``"implementation": "torchao-compiled"``); ``"state"`` names the class's state
  format (``int8``, ``int4`` or ``fp8``). torchao quantizes a state tensor only when it has at
  least 4096 values and its size is a multiple of the block (256 for 8-bit and FP8, 128 for
  4-bit); any other tensor silently falls back to a plain ``zeros_like(param)`` state (f32 for
  f32 parameters), exactly as bitsandbytes does. The ``*_small`` case (1000 values by default)
  records that fallback and still says ``"state": "int8"``, because that is the class used.
  bf16 cases use the default ``bf16_stochastic_round=False`` (round to nearest even).
  torchao 0.18 cannot run ``amsgrad=True`` on quantized state (its state tensor subclasses do
  not implement ``aten.maximum``, compiled or eager), so amsgrad appears only in a case below
  the threshold. ``Adam4bit`` and ``AdamFp8`` are supported here but left out of the committed
  file to keep it small (their step differs from ``AdamW4bit`` / ``AdamWFp8`` only as
  ``Adam8bit`` differs from ``AdamW8bit``).

* ``rprop.json`` / ``asgd.json``: ``torch.optim.Rprop`` and ``torch.optim.ASGD`` on the CPU's
  default single-tensor path (``"single"``, ``foreach=False``), each option covered (maximize,
  weight_decay, non-default etas and step_sizes, a ``t0`` small enough that averaging starts
  within the steps) and one ``foreach=True`` case each, all float32 (see the note at
  ``RA_CASES`` on bf16), with torch's state after every step in ``expected_state`` (Rprop:
  ``prev``, ``step_size``; ASGD: ``ax``). Their lengths are fixed (``--ra-large`` for the large
  ones). The generator also reports whether ``foreach=True`` gives the same bits as the
  single-tensor path (torch 2.15: yes for Rprop, no for ASGD).

Floats are written as in ``tools/torch_vectors.py``: the shortest decimal that parses (as an
f64) to exactly the f32 value, and ``"nan"``, ``"inf"``, ``"-inf"`` for non-finite values; bf16
and f16 values are written as the f32 values they convert to exactly. ``hyper`` holds exactly
the keyword arguments given to the constructor, so an absent key means the class's default.
Every file is re-read after writing and checked (each number exactly an f32, and exactly a
bf16 / f16 value for such cases); a summary line per file gives its cases and values.

Setup (torch and torchao are needed only to regenerate the vectors; the torchao cases need a
C++ compiler for inductor)::

    python3 -m venv /root/torchvenv
    /root/torchvenv/bin/pip install torch==2.15.* torchao==0.18.* numpy

Regenerate the committed vectors (tests/vectors/fused_bf16.json, fused_f16.json, torchao.json,
rprop.json, asgd.json)::

    /root/torchvenv/bin/python tools/torch_vectors_v2.py --out tests/vectors

Unseen vectors for checking the crate (other seed, lengths, steps and hyperparameters)::

    /root/torchvenv/bin/python tools/torch_vectors_v2.py --seed 7 --lengths 2,9,24,40 \\
        --large 4133 --steps 12 --ao-steps 4 --randomize-hyper --out /tmp/vectors7
    TORCH_VECTORS=$(ls /tmp/vectors7/*.json | paste -sd:) \\
        cargo test --release --test torch_parity

``--which fused``, ``--which torchao`` or ``--which rprop_asgd`` writes only one family. The torchao cases compile one
kernel per distinct (class, shape, dtype, hyperparameters), a few seconds to a few tens of
seconds each on the CPU; inductor's on-disk cache makes a second run faster.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

FORMAT = "torch-optim-vectors/2"
LENGTHS = [1, 7, 17, 33]
LARGE = "large"  # placeholder length replaced by --large

TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
FUSED_FILES = {"bfloat16": "fused_bf16", "float16": "fused_f16"}
# Learning rates whose updates stay below half an ulp of a parameter of magnitude >= 1
# (bf16: ulp(1) = 2**-7, f16: ulp(1) = 2**-10).
SUB_ULP_LR = {"bfloat16": 1e-3, "float16": 1e-4}

AO_STATE = {
    "AdamW8bit": "int8", "Adam8bit": "int8", "AdamW4bit": "int4", "Adam4bit": "int4",
    "AdamWFp8": "fp8", "AdamFp8": "fp8",
}
AO_BLOCK = {"int8": 256, "int4": 128, "fp8": 256}
AO_MIN_QUANTIZED = 4096  # torchao keeps plain state below this many values

DEFAULT_LR = {"SGD": 1e-3, "Adam": 1e-3, "AdamW": 1e-3, "Adagrad": 1e-2}
DEFAULT_LR.update({name: 1e-3 for name in AO_STATE})


def fused_cases(dtype):
    """(name, optimizer, hyper, length or None for the next of --lengths, input kind)."""
    tiny = SUB_ULP_LR[dtype]
    return [
        ("sgd_plain", "SGD", {"lr": 0.05}, None, "normal"),
        ("sgd_momentum", "SGD", {"lr": 0.02, "momentum": 0.9}, None, "normal"),
        ("sgd_dampening", "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}, None, "normal"),
        ("sgd_nesterov", "SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True}, None, "normal"),
        ("sgd_weight_decay", "SGD",
         {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}, None, "normal"),
        ("sgd_maximize", "SGD",
         {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01, "maximize": True}, None, "normal"),
        ("sgd_sub_ulp", "SGD", {"lr": tiny, "momentum": 0.9}, None, "sub_ulp"),
        ("sgd_nesterov_large", "SGD",
         {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, LARGE, "normal"),
        ("adam_defaults", "Adam", {}, None, "normal"),
        ("adam_lr", "Adam", {"lr": 0.05}, None, "normal"),
        ("adam_amsgrad", "Adam", {"lr": 0.02, "amsgrad": True}, None, "normal"),
        ("adam_l2", "Adam", {"lr": 0.02, "weight_decay": 0.1}, None, "normal"),
        ("adam_decoupled", "Adam",
         {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True}, None, "normal"),
        ("adam_maximize_eps", "Adam",
         {"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-3, "maximize": True}, None, "normal"),
        ("adam_sub_ulp", "Adam", {"lr": tiny}, None, "sub_ulp"),
        ("adam_amsgrad_l2_large", "Adam",
         {"lr": 0.01, "betas": [0.9, 0.99], "weight_decay": 0.05, "amsgrad": True}, LARGE,
         "normal"),
        ("adamw_defaults", "AdamW", {}, None, "normal"),
        ("adamw_lr_wd", "AdamW", {"lr": 0.05, "weight_decay": 0.1}, None, "normal"),
        ("adamw_amsgrad", "AdamW",
         {"lr": 0.02, "weight_decay": 0.05, "amsgrad": True}, None, "normal"),
        ("adamw_sub_ulp", "AdamW", {"lr": tiny}, None, "sub_ulp"),
        ("adagrad_defaults", "Adagrad", {}, None, "normal"),
        ("adagrad_lr_decay", "Adagrad",
         {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}, None, "normal"),
        ("adagrad_weight_decay", "Adagrad", {"lr": 0.05, "weight_decay": 0.1}, None, "normal"),
        ("adagrad_maximize", "Adagrad",
         {"lr": 0.05, "eps": 1e-6, "initial_accumulator_value": 0.5, "maximize": True}, None,
         "normal"),
        ("adagrad_sub_ulp", "Adagrad", {"lr": tiny}, None, "sub_ulp"),
    ]


# (name, torchao class, hyper, dtype, size: "block" | "double" | "small").
# "block" is --ao-length (4096) values, "double" --ao-large-length (8192, run for
# --ao-large-steps), "small" --ao-small-length (1000: below 4096, so plain f32 state).
AO_CASES = [
    ("adamw8bit_defaults", "AdamW8bit", {}, "float32", "block"),
    # 1 - beta1 = 0.6 >= 0.5: the compiled lerp takes its other branch,
    # end + (end - start) * f32(-(1 - w)), for the first moment.
    ("adamw8bit_betas_eps", "AdamW8bit",
     {"lr": 5e-3, "betas": [0.4, 0.95], "eps": 1e-6, "weight_decay": 0.0}, "float32", "block"),
    ("adam8bit_l2", "Adam8bit", {"lr": 1e-2, "weight_decay": 0.05}, "float32", "double"),
    ("adamw8bit_bf16", "AdamW8bit", {"lr": 2e-2, "weight_decay": 0.1}, "bfloat16", "block"),
    ("adamw8bit_small", "AdamW8bit", {"lr": 1e-2}, "float32", "small"),
    # amsgrad only below the threshold: torchao 0.18 cannot run amsgrad=True on quantized
    # state (its state subclasses do not implement aten.maximum; eager and compiled alike).
    ("adamw8bit_small_amsgrad", "AdamW8bit",
     {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}, "float32", "small"),
    ("adamw4bit_lr_wd", "AdamW4bit",
     {"lr": 1e-2, "betas": [0.9, 0.99], "weight_decay": 0.05}, "float32", "block"),
    ("adamwfp8_bf16", "AdamWFp8", {"lr": 1e-2, "eps": 1e-7}, "bfloat16", "block"),
]


# (name, optimizer, hyper, implementation, dtype, length or None for the next of --lengths,
#  input kind). Rprop's first step moves by lr, later ones by the adapted step sizes; ASGD's
#  averaging starts at the first step t > t0 + 2.
RA_CASES = [
    ("rprop_defaults", "Rprop", {}, "single", "float32", 7, "normal"),
    ("rprop_maximize", "Rprop", {"lr": 0.05, "maximize": True}, "single", "float32", 17,
     "normal"),
    ("rprop_etas_step_sizes", "Rprop",
     {"lr": 0.02, "etas": [0.3, 1.7], "step_sizes": [1e-3, 0.1]}, "single", "float32", 33,
     "normal"),
    # lr above the maximum: the first step clamps it.
    ("rprop_lr_clamped", "Rprop", {"lr": 1.0, "step_sizes": [1e-6, 0.5]}, "single", "float32",
     9, "normal"),
    # Zeros, sign flips every step, products that underflow in f32.
    ("rprop_signs", "Rprop", {"lr": 0.01, "etas": [0.6, 1.1]}, "single", "float32", 40,
     "signs"),
    ("rprop_large", "Rprop", {"lr": 0.03, "etas": [0.4, 1.3], "step_sizes": [1e-4, 1.0]},
     "single", "float32", LARGE, "normal"),
    ("rprop_foreach", "Rprop", {"lr": 0.03, "etas": [0.4, 1.3], "maximize": True}, "foreach",
     "float32", 24, "signs"),
    ("asgd_defaults", "ASGD", {}, "single", "float32", 7, "normal"),
    ("asgd_t0", "ASGD", {"lr": 0.05, "t0": 3}, "single", "float32", 17, "normal"),
    ("asgd_lambd_alpha", "ASGD", {"lr": 0.1, "lambd": 0.5, "alpha": 1.0, "t0": 0}, "single",
     "float32", 33, "normal"),
    ("asgd_weight_decay", "ASGD", {"lr": 0.02, "weight_decay": 0.1, "t0": 2}, "single",
     "float32", 9, "normal"),
    ("asgd_maximize", "ASGD",
     {"lr": 0.01, "maximize": True, "t0": 1, "weight_decay": 0.05, "lambd": 0.01}, "single",
     "float32", 24, "normal"),
    ("asgd_large", "ASGD", {"lr": 0.03, "t0": 4, "alpha": 0.5, "lambd": 0.1}, "single",
     "float32", LARGE, "normal"),
    ("asgd_foreach", "ASGD", {"lr": 0.05, "t0": 2, "weight_decay": 0.1}, "foreach", "float32",
     17, "normal"),
]
RA_STATE = {"Rprop": ("prev", "step_size"), "ASGD": ("ax",)}
RA_FILES = {"Rprop": "rprop", "ASGD": "asgd"}
# No bf16 cases: torch's for-loop Rprop and ASGD (neither has a fused kernel) round every
# operation to bf16 (Rprop even its etas: bf16(1.2) = 1.203125), where the crate computes each
# element in f32 and rounds once per store, as torch's fused kernels do. Measured with
# torch 2.15: ASGD's parameters and `ax` then differ by 3 bf16 ulps within a few steps, more
# than the 2 the spec allows; Rprop's step sizes drift the same way.


def f32(x):
    """A float32 value as a Python float (exact), or its string form when non-finite."""
    x = float(np.float32(x))
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def sig(x, digits=4):
    return float(f"{x:.{digits}g}")


def randomize(hyper, optimizer, rng, amsgrad_ok=True):
    """Other valid hyperparameters for the same case shape (for unseen vectors).
    `amsgrad_ok=False` never turns amsgrad on (torchao cannot run it on quantized state)."""
    h = dict(hyper)
    if optimizer in ("Rprop", "ASGD"):
        return randomize_rprop_asgd(h, optimizer, rng)
    h["lr"] = sig(h.get("lr", DEFAULT_LR[optimizer]) * 10 ** rng.uniform(-0.5, 0.5))
    adam_like = optimizer not in ("SGD", "Adagrad")
    if adam_like:
        # Now and then a beta below 0.5, where torchao's compiled lerp switches formula.
        low = 0.2 if rng.uniform() < 0.2 else 0.5
        h["betas"] = [sig(rng.uniform(low, 0.95)), sig(rng.uniform(low if low < 0.5 else 0.9,
                                                                    0.9999))]
    if optimizer != "SGD" and ("eps" in h or rng.uniform() < 0.5):
        h["eps"] = sig(10 ** rng.uniform(-9, -3))
    if h.get("momentum", 0) != 0:
        h["momentum"] = sig(rng.uniform(0.1, 0.95))
    if h.get("dampening", 0) != 0:
        h["dampening"] = sig(rng.uniform(0.05, 0.5))
    if h.get("weight_decay", 0) != 0 or rng.uniform() < 0.3:
        h["weight_decay"] = sig(rng.uniform(0.01, 0.2))
    if optimizer == "Adagrad":
        h["lr_decay"] = sig(rng.uniform(0.0, 0.1))
        h["initial_accumulator_value"] = sig(rng.uniform(0.0, 0.5))
    flags = set()
    if optimizer in ("SGD", "Adam", "AdamW", "Adagrad"):
        flags.add("maximize")
    if adam_like and amsgrad_ok:
        flags.add("amsgrad")
    if optimizer == "Adam":
        flags.add("decoupled_weight_decay")
    for flag in sorted(flags):
        if rng.uniform() < 0.3:
            h[flag] = not h.get(flag, False)
    return h


def randomize_rprop_asgd(h, optimizer, rng):
    h["lr"] = sig(h.get("lr", 1e-2) * 10 ** rng.uniform(-0.5, 0.5))
    if optimizer == "Rprop":
        if "etas" in h or rng.uniform() < 0.5:
            h["etas"] = [sig(rng.uniform(0.1, 0.9)), sig(rng.uniform(1.05, 2.0))]
        if "step_sizes" in h or rng.uniform() < 0.5:
            h["step_sizes"] = [sig(10 ** rng.uniform(-7, -3)), sig(10 ** rng.uniform(-1.5, 1))]
    else:
        if "t0" in h or rng.uniform() < 0.5:
            h["t0"] = int(rng.integers(0, 6))
        if "lambd" in h or rng.uniform() < 0.5:
            h["lambd"] = sig(10 ** rng.uniform(-4, 0))
        if "alpha" in h or rng.uniform() < 0.5:
            h["alpha"] = sig(rng.uniform(0.0, 1.5))
        if h.get("weight_decay", 0) != 0 or rng.uniform() < 0.3:
            h["weight_decay"] = sig(rng.uniform(0.01, 0.2))
    if rng.uniform() < 0.3:
        h["maximize"] = not h.get("maximize", False)
    return h


def to_dtype(x, dtype):
    """f32 array -> values of `dtype` (round to nearest even), as a float32 numpy array."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(TORCH_DTYPES[dtype])
    return t.float().numpy()


def fused_inputs(n, steps, kind, dtype, rng):
    if kind == "sub_ulp":
        # Mostly magnitudes 1..4 (updates below half an ulp), a few small ones that do move.
        mag = np.where(rng.uniform(size=n) < 0.8, rng.uniform(1.0, 4.0, n),
                       np.abs(rng.normal(0.0, 0.05, n)))
        params = mag * rng.choice([-1.0, 1.0], n)
        grads = [rng.standard_normal(n) * 0.1 for _ in range(steps)]
    else:
        params = rng.standard_normal(n)
        grads = [rng.standard_normal(n) for _ in range(steps)]
    return to_dtype(params, dtype), [to_dtype(g, dtype) for g in grads]


def ao_inputs(n, steps, dtype, rng):
    """Realistic gradients: normal values under a log-uniform per-element scale (1e-4..3),
    a per-256-block factor (1e-2..10) so blocks have different absmax, a few large outliers and
    some exact zeros; together they reach most of the 8-bit and 4-bit code buckets."""
    params = rng.standard_normal(n) * 0.5
    blocks = -(-n // 256)
    grads = []
    for _ in range(steps):
        block_scale = np.repeat(10 ** rng.uniform(-2.0, 1.0, blocks), 256)[:n]
        g = rng.standard_normal(n) * 10 ** rng.uniform(-4.0, 0.5, n) * block_scale
        g = np.where(rng.uniform(size=n) < 0.002, g * 100.0, g)
        g = np.where(rng.uniform(size=n) < 0.005, 0.0, g)
        grads.append(g)
    return to_dtype(params, dtype), [to_dtype(g, dtype) for g in grads]


def constructor_kwargs(hyper):
    kwargs = dict(hyper)
    for key in ("betas", "etas", "step_sizes"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return kwargs


def signs_inputs(n, steps, rng):
    """Rprop's edge cases: gradients whose signs flip often, exact zeros, and tiny values whose
    products with the previous gradient underflow to 0 in f32."""
    params = rng.standard_normal(n)
    grads = []
    for _ in range(steps):
        g = rng.standard_normal(n)
        g = np.where(rng.uniform(size=n) < 0.15, 0.0, g)
        g = np.where(rng.uniform(size=n) < 0.1, np.sign(g) * 1e-25, g)
        grads.append(g)
    return to_dtype(params, "float32"), [to_dtype(g, "float32") for g in grads]


def run_with_state(opt_class, kwargs, params, grads, dtype, names):
    """As `run`, also recording the named state tensors after every step."""
    tdt = TORCH_DTYPES[dtype]
    p = torch.nn.Parameter(torch.from_numpy(params.copy()).to(tdt))
    opt = opt_class([p], **kwargs)
    out, states = [], {name: [] for name in names}
    for g in grads:
        p.grad = torch.from_numpy(g.copy()).to(tdt)
        opt.step()
        out.append(p.detach().float().numpy().copy())
        for name in names:
            states[name].append(opt.state[p][name].detach().float().numpy().copy())
    return out, states


def run(opt_class, kwargs, params, grads, dtype):
    tdt = TORCH_DTYPES[dtype]
    p = torch.nn.Parameter(torch.from_numpy(params.copy()).to(tdt))
    opt = opt_class([p], **kwargs)
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy()).to(tdt)
        opt.step()
        out.append(p.detach().float().numpy().copy())
    return out, opt.state[p]


def write_file(path, cases, extra_top=()):
    """One case per block, one array per line: readable diffs, compact files."""
    def floats(xs):
        return json.dumps([f32(x) for x in xs], separators=(",", ":"))

    head = [("format", FORMAT), ("torch", torch.__version__.split("+")[0]), *extra_top]
    lines = ["{"] + [f"{json.dumps(k)}:{json.dumps(v)}," for k, v in head] + ['"cases":[']
    for k, c in enumerate(cases):
        keys = [key for key in ("name", "optimizer", "implementation", "exact", "dtype", "state",
                                "hyper") if key in c]
        lines.append("{" + ",".join(
            f"{json.dumps(key)}:{json.dumps(c[key], separators=(',', ':'))}"
            for key in keys) + ",")
        lines.append(f'"params":{floats(c["params"])},')
        lines.append('"grads":[')
        lines.append(",\n".join(floats(g) for g in c["grads"]))
        lines.append('],"expected":[')
        lines.append(",\n".join(floats(e) for e in c["expected"]))
        if "expected_state" in c:
            lines.append('],"expected_state":{')
            named = [f'{json.dumps(name)}:[\n' + ",\n".join(floats(r) for r in rows) + "\n]"
                     for name, rows in c["expected_state"].items()]
            lines.append(",\n".join(named))
            lines.append("}}" + ("," if k + 1 < len(cases) else ""))
        else:
            lines.append("]}" + ("," if k + 1 < len(cases) else ""))
    lines.append("]}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return check_file(path)


def check_file(path):
    """Re-read a written file: every number exactly an f32, and exactly a value of the case's
    dtype; names unique. Returns (cases, values)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    assert data["format"] == FORMAT, path
    names = [c["name"] for c in data["cases"]]
    assert len(names) == len(set(names)), (path, "duplicate names")
    values = 0
    for c in data["cases"]:
        dtype = c.get("dtype", "float32")
        steps = len(c["grads"])
        assert steps == len(c["expected"]) and steps > 0, (path, c["name"])
        rows = [c["params"], *c["grads"], *c["expected"]]
        for name, state_rows in c.get("expected_state", {}).items():
            assert len(state_rows) == steps, (path, c["name"], name)
            rows.extend(state_rows)
        assert all(len(r) == len(c["params"]) for r in rows), (path, c["name"])
        for row in rows:
            finite = np.array([x for x in row if not isinstance(x, str)], dtype=np.float64)
            values += len(row)
            as32 = finite.astype(np.float32)
            assert np.array_equal(as32.astype(np.float64), finite), (path, c["name"])
            if dtype == "bfloat16":
                assert not np.any(as32.view(np.uint32) & 0xFFFF), (path, c["name"], "not bf16")
            elif dtype == "float16":
                assert np.array_equal(as32.astype(np.float16).astype(np.float32), as32), (
                    path, c["name"], "not f16")
            for x in row:
                assert not isinstance(x, str) or x in ("nan", "inf", "-inf"), (path, x)
    return len(data["cases"]), values


def generate_fused(args, lengths):
    written = []
    for file_index, (dtype, stem) in enumerate(FUSED_FILES.items()):
        cases = []
        next_length = 0
        for index, (name, optimizer, hyper, n, kind) in enumerate(fused_cases(dtype)):
            # Each case has its own stream (seed, file, case).
            rng = np.random.default_rng([args.seed, file_index, index])
            if n is None:
                n = lengths[next_length % len(lengths)]
                next_length += 1
            steps = args.steps
            if n == LARGE:
                n, steps = args.large, args.large_steps
            if args.randomize_hyper:
                hyper = randomize(hyper, optimizer, rng)
            params, grads = fused_inputs(n, steps, kind, dtype, rng)
            kwargs = constructor_kwargs(hyper)
            kwargs["fused"] = True
            expected, _ = run(getattr(torch.optim, optimizer), kwargs, params, grads, dtype)
            cases.append({
                "name": name, "optimizer": optimizer, "implementation": "fused", "exact": True,
                "dtype": dtype, "hyper": hyper, "params": params, "grads": grads,
                "expected": expected,
            })
        written.append((os.path.join(args.out, f"{stem}.json"), cases, ()))
    return written


def generate_torchao(args):
    import torchao
    import torchao.optim

    sizes = {"block": (args.ao_length, args.ao_steps),
             "double": (args.ao_large_length, args.ao_large_steps),
             "small": (args.ao_small_length, args.ao_steps)}
    cases = []
    for index, (name, cls_name, hyper, dtype, size) in enumerate(AO_CASES):
        rng = np.random.default_rng([args.seed, len(FUSED_FILES), index])
        n, steps = sizes[size]
        state = AO_STATE[cls_name]
        quantized = n >= AO_MIN_QUANTIZED and n % AO_BLOCK[state] == 0
        if size != "small" and not quantized:
            sys.exit(f"{name}: {n} values would not be quantized by torchao "
                     f"(needs >= {AO_MIN_QUANTIZED} and a multiple of {AO_BLOCK[state]})")
        if args.randomize_hyper:
            hyper = randomize(hyper, cls_name, rng, amsgrad_ok=not quantized)
        if hyper.get("amsgrad") and quantized:
            sys.exit(f"{name}: torchao 0.18 cannot run amsgrad=True on quantized state")
        params, grads = ao_inputs(n, steps, dtype, rng)
        started = time.time()
        expected, opt_state = run(getattr(torchao.optim, cls_name), constructor_kwargs(hyper),
                                  params, grads, dtype)
        kinds = sorted({type(v).__name__ for k, v in opt_state.items() if k != "step"})
        print(f"  {name}: {n} values, {steps} steps, state {'/'.join(kinds)}, "
              f"{time.time() - started:.1f} s", flush=True)
        cases.append({
            "name": name, "optimizer": cls_name, "implementation": "torchao-compiled",
            "exact": True, "dtype": dtype, "state": state, "hyper": hyper, "params": params,
            "grads": grads, "expected": expected,
        })
    return [(os.path.join(args.out, "torchao.json"), cases,
             (("torchao", torchao.__version__.split("+")[0]),))]


def generate_rprop_asgd(args):
    files = {stem: [] for stem in RA_FILES.values()}
    for index, (name, optimizer, hyper, implementation, dtype, n, kind) in enumerate(RA_CASES):
        rng = np.random.default_rng([args.seed, len(FUSED_FILES) + 1, index])
        steps = args.steps
        if n == LARGE:
            n, steps = args.ra_large, args.large_steps
        if args.randomize_hyper:
            hyper = randomize(hyper, optimizer, rng)
        if kind == "signs":
            params, grads = signs_inputs(n, steps, rng)
        else:
            params, grads = fused_inputs(n, steps, "normal", dtype, rng)
        names = RA_STATE[optimizer]
        opt_class = getattr(torch.optim, optimizer)
        kwargs = constructor_kwargs(hyper)
        runs = {}
        for path in ("single", "foreach"):
            runs[path] = run_with_state(opt_class, dict(kwargs, foreach=path == "foreach"),
                                        params, grads, dtype, names)
        same = all(np.array_equal(a.view(np.uint32), b.view(np.uint32))
                   for a, b in zip(runs["single"][0] + [r for rows in runs["single"][1].values()
                                                        for r in rows],
                                   runs["foreach"][0] + [r for rows in runs["foreach"][1].values()
                                                         for r in rows]))
        print(f"  {name}: foreach {'bit-identical to' if same else 'differs from'} single",
              flush=True)
        expected, states = runs[implementation]
        case = {
            "name": name, "optimizer": optimizer, "implementation": implementation,
            # Rprop's operations (mul, sign, clamp, addcmul) have no FMA; ASGD's add(alpha) has.
            "exact": optimizer == "Rprop" and dtype == "float32", "dtype": dtype,
            "hyper": hyper, "params": params, "grads": grads, "expected": expected,
        }
        case["expected_state"] = states
        files[RA_FILES[optimizer]].append(case)
    return [(os.path.join(args.out, f"{stem}.json"), cases, ()) for stem, cases in files.items()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=20150, help="base seed (default 20150)")
    ap.add_argument("--out", required=True, help="directory for the *.json files")
    ap.add_argument("--which", choices=("fused", "torchao", "rprop_asgd", "all"), default="all",
                    help="which files to write (default all)")
    ap.add_argument("--steps", type=int, default=10, help="steps of the fused cases (default 10)")
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                    help="comma-separated lengths, dealt to the fused cases in turn")
    ap.add_argument("--large", type=int, default=4099,
                    help="length of the large fused cases (default 4099)")
    ap.add_argument("--ra-large", type=int, default=1031,
                    help="length of the large Rprop and ASGD cases (default 1031)")
    ap.add_argument("--large-steps", type=int, default=8,
                    help="steps of the large fused cases (default 8)")
    ap.add_argument("--ao-length", type=int, default=4096,
                    help="length of most torchao cases (default 4096)")
    ap.add_argument("--ao-steps", type=int, default=5, help="steps of those (default 5)")
    ap.add_argument("--ao-large-length", type=int, default=8192,
                    help="length of the larger torchao cases (default 8192)")
    ap.add_argument("--ao-large-steps", type=int, default=3, help="steps of those (default 3)")
    ap.add_argument("--ao-small-length", type=int, default=1000,
                    help="length of the torchao case below the quantization threshold "
                         "(default 1000)")
    ap.add_argument("--randomize-hyper", action="store_true",
                    help="draw other valid hyperparameters from the seed")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    lengths = [int(x) for x in args.lengths.split(",") if x]
    os.makedirs(args.out, exist_ok=True)

    generators = {"fused": lambda: generate_fused(args, lengths),
                  "torchao": lambda: generate_torchao(args),
                  "rprop_asgd": lambda: generate_rprop_asgd(args)}
    for family, generate in generators.items():
        if args.which not in (family, "all"):
            continue
        started = time.time()
        print(f"{family}:", flush=True)
        files = generate()
        for path, cases, extra in files:
            n_cases, n_values = write_file(path, cases, extra)
            print(f"{path}: {n_cases} cases, {n_values} values, {os.path.getsize(path)} bytes",
                  flush=True)
        print(f"{family}: {time.time() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
