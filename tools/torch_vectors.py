#!/usr/bin/env python3
"""Write PyTorch conformance vectors (format ``torch-optim-vectors/1``) for fused-optim.

Each case builds one ``torch.optim`` optimizer over a single flat float32 parameter, feeds it
seeded random gradients for a number of steps, and records the parameters after every
``step()``. The format is described in the crate's parity test (``tests/torch_parity.rs``):
floats are exactly float32 values written as JSON numbers, non-finite values as the strings
``"nan"``, ``"inf"`` and ``"-inf"``; ``hyper`` holds exactly the keyword arguments given to the
torch constructor, so an absent key means torch's default.

Paths: where torch has a fused CPU kernel (SGD, Adam, AdamW, Adagrad) the case runs with
``fused=True`` (``"implementation": "fused"``); every other optimizer runs the single-tensor
for-loop with ``foreach=False`` (``"single"``). ``--path single`` forces the for-loop for all.
``"exact"`` is informational: true for the paths built only from correctly rounded operations
(the fused kernels and the SGD for-loop), false where torch uses its own ``Tensor.sqrt`` or
``reciprocal`` outside a fused kernel.

Setup (torch is needed only to regenerate the vectors)::

    python3 -m venv /root/torchvenv
    /root/torchvenv/bin/pip install torch numpy

Regenerate the committed vectors (one file per optimizer)::

    /root/torchvenv/bin/python tools/torch_vectors.py --out tests/vectors

Unseen vectors for checking the crate (other seed, lengths, steps and hyperparameters)::

    /root/torchvenv/bin/python tools/torch_vectors.py --seed 7 --lengths 2,9,24,40,65 \\
        --large 2053 --steps 30 --randomize-hyper --out /tmp/vectors7
    TORCH_VECTORS=$(ls /tmp/vectors7/*.json | paste -sd:) \\
        cargo test --release --test torch_parity
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

FORMAT = "torch-optim-vectors/1"
FUSED_ON_CPU = {"SGD", "Adam", "AdamW", "Adagrad"}
LENGTHS = [1, 7, 15, 16, 17, 31, 33]
LARGE = "large"  # placeholder length replaced by --large

# (name, optimizer, hyper, length or None for the next one of --lengths, special inputs)
CASES = [
    ("sgd_defaults", "SGD", {}, None, None),
    ("sgd_plain", "SGD", {"lr": 0.01}, None, None),
    ("sgd_momentum", "SGD", {"lr": 0.01, "momentum": 0.9}, None, None),
    ("sgd_dampening", "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}, None, None),
    ("sgd_nesterov", "SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True}, None, None),
    ("sgd_weight_decay", "SGD", {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.1}, None, None),
    ("sgd_plain_weight_decay", "SGD", {"lr": 0.03, "weight_decay": 0.2}, None, None),
    ("sgd_maximize", "SGD",
     {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01, "maximize": True}, None, None),
    ("sgd_nesterov_large", "SGD",
     {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, LARGE, None),
    ("sgd_nonfinite", "SGD", {"lr": 0.1, "momentum": 0.9}, 7, "nonfinite"),
    ("adam_defaults", "Adam", {}, None, None),
    ("adam_lr", "Adam", {"lr": 0.01}, None, None),
    ("adam_amsgrad", "Adam", {"lr": 0.01, "amsgrad": True}, None, None),
    ("adam_l2", "Adam", {"lr": 0.01, "weight_decay": 0.1}, None, None),
    ("adam_decoupled", "Adam",
     {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, None, None),
    ("adam_maximize_eps", "Adam",
     {"lr": 0.005, "betas": [0.8, 0.99], "eps": 1e-3, "maximize": True}, None, None),
    ("adam_amsgrad_l2_large", "Adam",
     {"lr": 0.01, "betas": [0.9, 0.99], "weight_decay": 0.05, "amsgrad": True}, LARGE, None),
    ("adam_nonfinite", "Adam", {"lr": 0.01}, 7, "nonfinite"),
    ("adamw_defaults", "AdamW", {}, None, None),
    ("adamw_amsgrad", "AdamW", {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True}, None, None),
    ("adamw_maximize_eps", "AdamW",
     {"lr": 0.01, "eps": 1e-6, "betas": [0.85, 0.995], "maximize": True}, None, None),
    ("adagrad_defaults", "Adagrad", {}, None, None),
    ("adagrad_lr_decay", "Adagrad",
     {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}, None, None),
    ("adagrad_weight_decay", "Adagrad", {"lr": 0.05, "weight_decay": 0.1}, None, None),
    ("adagrad_maximize", "Adagrad",
     {"lr": 0.05, "eps": 1e-6, "initial_accumulator_value": 0.5, "maximize": True}, None, None),
    ("adadelta_defaults", "Adadelta", {}, None, None),
    ("adadelta_rho_weight_decay", "Adadelta",
     {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.05}, None, None),
    ("adadelta_maximize", "Adadelta", {"maximize": True}, None, None),
    ("rmsprop_defaults", "RMSprop", {}, None, None),
    ("rmsprop_centered_momentum", "RMSprop",
     {"lr": 0.01, "centered": True, "momentum": 0.9}, None, None),
    ("rmsprop_centered", "RMSprop", {"centered": True, "alpha": 0.95}, None, None),
    ("rmsprop_momentum_weight_decay", "RMSprop",
     {"momentum": 0.5, "weight_decay": 0.1, "alpha": 0.9}, None, None),
    ("rmsprop_maximize", "RMSprop", {"lr": 0.005, "eps": 1e-4, "maximize": True}, None, None),
    ("adamax_defaults", "Adamax", {}, None, None),
    ("adamax_weight_decay", "Adamax",
     {"lr": 0.01, "betas": [0.8, 0.99], "weight_decay": 0.1}, None, None),
    ("adamax_maximize", "Adamax", {"eps": 1e-4, "maximize": True}, None, None),
    ("nadam_defaults", "NAdam", {}, None, None),
    ("nadam_l2", "NAdam", {"lr": 0.01, "weight_decay": 0.1}, None, None),
    ("nadam_decoupled", "NAdam",
     {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True,
      "momentum_decay": 0.01}, None, None),
    ("nadam_maximize", "NAdam", {"betas": [0.85, 0.99], "maximize": True}, None, None),
    ("radam_defaults", "RAdam", {}, None, None),
    ("radam_l2", "RAdam", {"lr": 0.01, "weight_decay": 0.1}, None, None),
    ("radam_decoupled", "RAdam",
     {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, None, None),
    ("radam_maximize", "RAdam", {"betas": [0.8, 0.99], "eps": 1e-6, "maximize": True}, None, None),
]

FILE_STEMS = {
    "SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "Adagrad": "adagrad",
    "Adadelta": "adadelta", "RMSprop": "rmsprop", "Adamax": "adamax", "NAdam": "nadam",
    "RAdam": "radam",
}


DEFAULT_LR = {
    "SGD": 1e-3, "Adam": 1e-3, "AdamW": 1e-3, "Adagrad": 1e-2, "Adadelta": 1.0, "RMSprop": 1e-2,
    "Adamax": 2e-3, "NAdam": 2e-3, "RAdam": 1e-3,
}


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


def randomize(hyper, optimizer, rng):
    """Other valid hyperparameters for the same case shape (for unseen vectors)."""
    h = dict(hyper)
    h["lr"] = sig(h.get("lr", DEFAULT_LR[optimizer]) * 10 ** rng.uniform(-0.5, 0.5))
    if optimizer in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam"):
        h["betas"] = [sig(rng.uniform(0.5, 0.95)), sig(rng.uniform(0.9, 0.9999))]
    if optimizer != "SGD" and ("eps" in h or rng.uniform() < 0.5):
        h["eps"] = sig(10 ** rng.uniform(-9, -3))
    if h.get("momentum", 0) != 0:
        h["momentum"] = sig(rng.uniform(0.1, 0.95))
    if h.get("dampening", 0) != 0:
        h["dampening"] = sig(rng.uniform(0.05, 0.5))
    if h.get("weight_decay", 0) != 0 or rng.uniform() < 0.3:
        h["weight_decay"] = sig(rng.uniform(0.01, 0.2))
    if optimizer == "RMSprop":
        h["alpha"] = sig(rng.uniform(0.8, 0.999))
    if optimizer == "Adadelta":
        h["rho"] = sig(rng.uniform(0.5, 0.95))
    if optimizer == "Adagrad":
        h["lr_decay"] = sig(rng.uniform(0.0, 0.1))
        h["initial_accumulator_value"] = sig(rng.uniform(0.0, 0.5))
    if optimizer == "NAdam":
        h["momentum_decay"] = sig(rng.uniform(1e-3, 1e-2))
    flags = {"maximize"}
    if optimizer in ("Adam", "AdamW"):
        flags.add("amsgrad")
    if optimizer in ("Adam", "NAdam", "RAdam"):
        flags.add("decoupled_weight_decay")
    if optimizer == "RMSprop":
        flags.add("centered")
    for flag in sorted(flags):
        if rng.uniform() < 0.3:
            h[flag] = not h.get(flag, False)
    return h


def inputs(n, steps, special, rng):
    params = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(steps)]
    if special == "nonfinite":
        # +inf, NaN and -inf gradients in three elements, at three different steps.
        for step, i, value in ((2, 0, np.inf), (4, min(1, n - 1), np.nan), (6, min(2, n - 1), -np.inf)):
            if step < steps:
                grads[step][i] = value
    return params, grads


def run_torch(optimizer, implementation, hyper, params, grads):
    kwargs = dict(hyper)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    if implementation == "fused":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = False
    p = torch.nn.Parameter(torch.from_numpy(params.copy()))
    opt = getattr(torch.optim, optimizer)([p], **kwargs)
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def write_file(path, cases):
    """One case per block, one array per line: readable diffs, compact files."""
    def floats(xs):
        return json.dumps([f32(x) for x in xs], separators=(",", ":"))

    lines = ["{", f'"format":"{FORMAT}",', f'"torch":{json.dumps(torch.__version__.split("+")[0])},',
             '"cases":[']
    for k, c in enumerate(cases):
        lines.append("{" + ",".join(
            f"{json.dumps(key)}:{json.dumps(c[key], separators=(',', ':'))}"
            for key in ("name", "optimizer", "implementation", "exact", "hyper")) + ",")
        lines.append(f'"params":{floats(c["params"])},')
        lines.append('"grads":[')
        lines.append(",\n".join(floats(g) for g in c["grads"]))
        lines.append('],"expected":[')
        lines.append(",\n".join(floats(e) for e in c["expected"]))
        lines.append("]}" + ("," if k + 1 < len(cases) else ""))
    lines.append("]}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    # Self-check: the file parses and every number is exactly a float32.
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for c in data["cases"]:
        for row in [c["params"], *c["grads"], *c["expected"]]:
            for x in row:
                assert isinstance(x, str) or float(np.float32(x)) == x, (path, c["name"], x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=20150, help="base seed (default 20150)")
    ap.add_argument("--out", required=True, help="directory for the *.json files")
    ap.add_argument("--steps", type=int, default=24, help="steps per case (default 24)")
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                    help="comma-separated lengths, dealt to the cases in turn")
    ap.add_argument("--large", type=int, default=1031, help="length of the large cases")
    ap.add_argument("--large-steps", type=int, default=20, help="steps of the large cases")
    ap.add_argument("--randomize-hyper", action="store_true",
                    help="draw other valid hyperparameters from the seed")
    ap.add_argument("--path", choices=("auto", "single"), default="auto",
                    help="auto: fused where torch has a CPU kernel; single: for-loop everywhere")
    ap.add_argument("--optimizers", default="",
                    help="comma-separated torch class names to write (default: all)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    lengths = [int(x) for x in args.lengths.split(",") if x]
    wanted = set(x for x in args.optimizers.split(",") if x) or set(FILE_STEMS)
    unknown = wanted - set(FILE_STEMS)
    if unknown:
        sys.exit(f"unknown optimizer(s): {', '.join(sorted(unknown))}")
    os.makedirs(args.out, exist_ok=True)

    files = {}
    next_length = 0
    for index, (name, optimizer, hyper, n, special) in enumerate(CASES):
        # Each case has its own stream, so selecting optimizers does not change the others.
        rng = np.random.default_rng([args.seed, index])
        if n is None:
            n = lengths[next_length % len(lengths)]
            next_length += 1
        steps = args.steps
        if n == LARGE:
            n, steps = args.large, args.large_steps
        if optimizer not in wanted:
            continue
        if args.randomize_hyper:
            hyper = randomize(hyper, optimizer, rng)
        implementation = ("fused" if optimizer in FUSED_ON_CPU and args.path == "auto"
                          else "single")
        exact = implementation == "fused" or optimizer == "SGD"
        params, grads = inputs(n, steps, special, rng)
        expected = run_torch(optimizer, implementation, hyper, params, grads)
        files.setdefault(FILE_STEMS[optimizer], []).append({
            "name": name, "optimizer": optimizer, "implementation": implementation,
            "exact": exact, "hyper": hyper, "params": params, "grads": grads,
            "expected": expected,
        })
    for stem, cases in sorted(files.items()):
        path = os.path.join(args.out, f"{stem}.json")
        write_file(path, cases)
        print(f"{path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
