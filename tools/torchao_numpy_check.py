#!/usr/bin/env python3
"""Check torchao vectors against a small numpy model of torchao's low-bit Adam step.

This replays every ``torchao-compiled`` case of a ``torch-optim-vectors/2`` file (by default
``tests/vectors/torchao.json``, written by ``tools/torch_vectors_v2.py``) through a numpy
re-implementation of the algorithm described in ``shared/reference/low-precision.md`` section 1,
and reports, per case, how many recorded parameter values it reproduces bit for bit. It is a
check of that description (and of the vectors), not a test of the crate; only numpy is needed.

The model, all in f32 with numpy f32 scalars (numpy does not contract to FMA):

* state tensors with >= 4096 values and a size that is a multiple of the block are quantized
  per block (8-bit: 256, the dynamic-tree maps; 4-bit: 128, signed dynamic map and linear
  unsigned map; FP8: 256, e4m3fn with scale absmax/448); any other state is a plain tensor of
  the parameter's dtype. Initial quantized state is code 0 with scale 0;
* quantize: ``scale = max(absmax, 1e-12)``, ``y = x / scale``, the branchless binary search for
  the largest code with ``qmap[code] <= y``, then one step up iff
  ``y - qmap[c] >= (qmap[c+1] - qmap[c]) * 0.5``; dequantize: ``qmap[code] * scale``;
* one step: ``p -= (lr*wd) * p`` (AdamW, ``lr*wd`` rounded first) or ``g += wd * p`` (Adam);
  ``bc = 1 - f32(beta) ** step`` (power correctly rounded to f32);
  ``m = lerp(deq(m), g, 1-beta1)``, ``v = lerp(deq(v), g*g, 1-beta2)`` with lerp as the
  compiled code computes it: ``a + (b-a)*w`` for ``w < 0.5`` and ``b + (b-a)*(w-1)`` otherwise
  (the weight and ``-(1-w)`` formed in double, then rounded to f32); state stored quantized,
  but the update uses the unquantized ``m`` and ``v`` (``max(deq(vmax), v)`` for amsgrad):
  ``p -= (lr * (m / bc1)) / (sqrt(v) / sqrt(bc2) + eps)``; bf16 parameters are rounded to
  nearest even at the end of the step.

The code maps are read from ``lowbit-qmaps.json`` (f32 bit patterns); by default the one in
``shared/reference`` beside the repository.

    /root/torchvenv/bin/python tools/torchao_numpy_check.py [FILE ...] [--qmaps PATH]

Exit status 1 if any value differs.
"""

import argparse
import json
import os
import sys

import numpy as np

F32 = np.float32
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FILE = os.path.join(HERE, "..", "tests", "vectors", "torchao.json")
DEFAULT_QMAPS = os.path.join(HERE, "..", "..", "shared", "reference", "lowbit-qmaps.json")

# class -> (state format, is AdamW, block size)
CLASSES = {
    "AdamW8bit": ("int8", True, 256), "Adam8bit": ("int8", False, 256),
    "AdamW4bit": ("int4", True, 128), "Adam4bit": ("int4", False, 128),
    "AdamWFp8": ("fp8", True, 256), "AdamFp8": ("fp8", False, 256),
}
DEFAULTS = {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False}


def load_qmaps(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)

    def table(key):
        return np.array([int(h, 16) for h in raw[key]], dtype=np.uint32).view(F32)

    return {
        ("int8", True): table("int8_signed_m"), ("int8", False): table("int8_unsigned_v"),
        ("int4", True): table("int4_signed_m"), ("int4", False): table("int4_unsigned_v"),
    }


def bf16_round(x):
    """f32 -> nearest-even bf16, kept as f32 (finite inputs)."""
    bits = x.astype(F32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(F32)


def e4m3fn_round(y):
    """Round f32 values with |y| <= ~448 to float8 e4m3fn (nearest even), as f32."""
    y = y.astype(F32)
    _, e = np.frexp(y)  # |y| = mant * 2**e with mant in [0.5, 1)
    e = np.maximum(e - 1, -6)  # exponent of the leading bit; subnormals below 2**-6
    quantum = np.ldexp(np.float64(1.0), e - 3)
    r = np.round(y.astype(np.float64) / quantum) * quantum  # exact: power-of-two scaling
    return np.minimum(np.abs(r), 448.0).astype(F32) * np.sign(y).astype(F32)


class Quantized:
    """Block-quantized state: codes (or e4m3fn values) plus one f32 scale per block."""

    def __init__(self, n, fmt, block, qmap):
        self.fmt, self.block, self.qmap = fmt, block, qmap
        self.codes = np.zeros(n, dtype=np.int64) if qmap is not None else None
        self.fp8 = np.zeros(n, dtype=F32) if qmap is None else None
        self.scale = np.zeros(n // block, dtype=F32)

    def dequantize(self):
        values = self.qmap[self.codes] if self.qmap is not None else self.fp8
        return (values.reshape(-1, self.block) * self.scale[:, None]).reshape(-1)

    def store(self, x):
        blocks = x.reshape(-1, self.block)
        absmax = np.max(np.abs(blocks), axis=1)
        if self.qmap is None:
            self.scale = np.maximum(absmax, F32(1e-12)) / F32(448.0)
            self.fp8 = e4m3fn_round(blocks / self.scale[:, None]).reshape(-1)
            return
        self.scale = np.maximum(absmax, F32(1e-12))
        y = (blocks / self.scale[:, None]).reshape(-1)
        q = self.qmap
        top = len(q) - 1
        # Branchless binary search: the largest code with q[code] <= y (0 below q[0]).
        codes = np.zeros(y.shape, dtype=np.int64)
        half = len(q) // 2
        while half >= 1:
            probe = codes + half
            codes = codes + np.where(y >= q[np.minimum(probe, top)], half, 0)
            half //= 2
        up = np.minimum(codes + 1, top)
        down_val, up_val = q[codes], q[up]
        codes = np.where((y - down_val) >= (up_val - down_val) * F32(0.5), up, codes)
        self.codes = codes


class Plain:
    """Unquantized state in the parameter's dtype."""

    def __init__(self, n, bf16):
        self.values = np.zeros(n, dtype=F32)
        self.bf16 = bf16

    def dequantize(self):
        return self.values

    def store(self, x):
        self.values = bf16_round(x) if self.bf16 else x.astype(F32)


def lerp(a, b, w):
    """The compiled aten.lerp.Scalar: w is a Python float (a double)."""
    diff = b - a
    if w >= 0.5 or w <= -0.5:
        return b + diff * F32(-(1.0 - w))
    return a + diff * F32(w)


def pow_f32(base, step):
    """f32(base) ** step, correctly rounded to f32."""
    return F32(np.float64(F32(base)) ** np.float64(step))


def replay(case, qmaps):
    fmt, is_adamw, block = CLASSES[case["optimizer"]]
    h = dict(DEFAULTS, weight_decay=1e-2 if is_adamw else 0.0)
    h.update(case["hyper"])
    beta1, beta2 = h["betas"]
    lr, wd, eps = F32(h["lr"]), F32(h["weight_decay"]), F32(h["eps"])
    bf16 = case.get("dtype", "float32") == "bfloat16"
    p = np.array(case["params"], dtype=F32)
    n = p.size

    def new_state(signed):
        if n >= 4096 and n % block == 0:
            return Quantized(n, fmt, block, None if fmt == "fp8" else qmaps[(fmt, signed)])
        return Plain(n, bf16)

    m_state, v_state = new_state(True), new_state(False)
    vmax_state = new_state(False) if h["amsgrad"] else None
    out = []
    for k, g_row in enumerate(case["grads"], start=1):
        g = np.array(g_row, dtype=F32)
        step = F32(k)
        if is_adamw:
            p = p - (lr * wd) * p
        else:
            g = g + wd * p
        bc1 = F32(1.0) - pow_f32(beta1, step)
        bc2 = F32(1.0) - pow_f32(beta2, step)
        m = lerp(m_state.dequantize(), g, 1 - beta1)
        v = lerp(v_state.dequantize(), g * g, 1 - beta2)
        m_state.store(m)
        v_state.store(v)
        if vmax_state is not None:
            v = np.maximum(vmax_state.dequantize(), v)
            vmax_state.store(v)
        denom = np.sqrt(v) / np.sqrt(bc2) + eps
        p = p - (lr * (m / bc1)) / denom
        if bf16:
            p = bf16_round(p)
        out.append(p.astype(F32))
    return out


def bits_equal(a, b):
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", default=[DEFAULT_FILE])
    ap.add_argument("--qmaps", default=DEFAULT_QMAPS, help="lowbit-qmaps.json")
    args = ap.parse_args()
    qmaps = load_qmaps(args.qmaps)

    total_values = total_bad = 0
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for case in data["cases"]:
            if case.get("implementation") != "torchao-compiled":
                continue
            got = replay(case, qmaps)
            values = bad = 0
            first = None
            for s, (row, mine) in enumerate(zip(case["expected"], got)):
                want = np.array([float(x) for x in row], dtype=F32)
                same = bits_equal(want, mine)
                values += same.size
                bad += int((~same).sum())
                if first is None and not same.all():
                    i = int(np.flatnonzero(~same)[0])
                    first = f"step {s} element {i}: torchao {want[i]!r}, numpy {mine[i]!r}"
            total_values += values
            total_bad += bad
            print(f"{case['name']} ({case['optimizer']}, {case.get('dtype', 'float32')}, "
                  f"{len(case['params'])} values): {bad} of {values} values differ"
                  + (f"; first at {first}" if first else ""))
    print(f"total: {total_bad} of {total_values} values differ")
    sys.exit(1 if total_bad else 0)


if __name__ == "__main__":
    main()
