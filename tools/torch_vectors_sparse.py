#!/usr/bin/env python3
"""Write SparseAdam conformance vectors (format ``torch-optim-vectors/2``) for fused-optim.

Each case is one ``[rows, cols]`` float32 table (``shape``) updated by ``torch.optim.SparseAdam``
for a few steps. Step ``s``'s gradient is a sparse COO tensor touching the rows
``indices[s]`` (sorted and unique: torch's coalesced form), and ``grads[s]`` holds only those
rows' values, ``len(indices[s]) * cols`` numbers, row-major. ``expected[s]`` is the whole table
after the step and ``expected_state`` holds torch's ``exp_avg`` and ``exp_avg_sq`` (whole
tables) after each step (see ``shared/spec/torch-vectors.md``).

The cases cover: steps that touch one row, steps that touch many or every row, a step that
touches no row (torch skips it but counts the step), rows of 1 value and rows whose length
leaves a tail for every SIMD width, ``maximize``, non-default betas and eps (β1 = 0 included),
gradients large enough that ``g·g`` overflows f32, and gradients produced by
``nn.Embedding(sparse=True)`` with repeated ids: torch's uncoalesced gradient is what the
optimizer receives (it coalesces it itself), and the file records ``grad.coalesce()``'s rows and
summed values, which is what a caller of the crate passes.

Floats are written as in ``tools/torch_vectors.py``: the shortest decimal that parses (as an
f64) to exactly the f32 value, and ``"nan"``, ``"inf"``, ``"-inf"`` for non-finite values.
``hyper`` holds exactly the keyword arguments given to the constructor. Every file is re-read
after writing and checked.

Regenerate the committed vectors (tests/vectors/sparse_adam.json)::

    /root/torchvenv/bin/python tools/torch_vectors_sparse.py --out tests/vectors

Unseen vectors (other seed, sizes, steps and hyperparameters)::

    /root/torchvenv/bin/python tools/torch_vectors_sparse.py --seed 7 --steps 9 \\
        --randomize-hyper --out /tmp/sparse7
    TORCH_VECTORS=/tmp/sparse7/sparse_adam.json cargo test --release --test torch_parity
"""

import argparse
import json
import math
import os

import numpy as np
import torch

FORMAT = "torch-optim-vectors/2"

# (name, hyper, rows, cols, touch pattern, gradient kind, record state)
# touch: "one" (one row per step), "some" (about a third), "many" (most), "all", "mixed"
# (one, none, all and some in turn); kind: "normal", "huge" (some |g| ~ 1e20: g·g overflows),
# "embedding" (nn.Embedding(sparse=True) with repeated ids).
CASES = [
    ("defaults_some_rows", {}, 24, 7, "some", "normal", True),
    ("one_row_per_step", {"lr": 0.01}, 16, 19, "one", "normal", True),
    ("many_rows_tails", {"lr": 0.02}, 9, 67, "many", "normal", False),
    ("all_rows_dim1", {"lr": 0.05}, 33, 1, "all", "normal", True),
    ("mixed_empty_step", {"lr": 0.03}, 12, 16, "mixed", "normal", True),
    ("maximize_betas_eps", {"lr": 0.05, "betas": [0.8, 0.99], "eps": 1e-3, "maximize": True},
     20, 9, "some", "normal", True),
    ("beta1_zero", {"lr": 0.1, "betas": [0.0, 0.5], "eps": 1e-6}, 10, 5, "many", "normal",
     False),
    ("huge_gradients", {"lr": 0.01}, 8, 4, "many", "huge", True),
    ("embedding_repeated_ids", {"lr": 0.02, "betas": [0.85, 0.995]}, 40, 12, "embedding",
     "embedding", True),
    ("large_table_one_percent", {"lr": 0.01}, 200, 32, "percent", "normal", False),
]


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


def randomize(hyper, rng):
    """Other valid hyperparameters for the same case (for unseen vectors)."""
    h = dict(hyper)
    h["lr"] = sig(h.get("lr", 1e-3) * 10 ** rng.uniform(-0.5, 0.5))
    h["betas"] = [sig(rng.uniform(0.0, 0.95)), sig(rng.uniform(0.5, 0.9999))]
    if rng.uniform() < 0.5:
        h["eps"] = sig(10 ** rng.uniform(-9, -2))
    if rng.uniform() < 0.3:
        h["maximize"] = not h.get("maximize", False)
    return h


def touched(pattern, rows, step, rng):
    if pattern == "one":
        return [int(rng.integers(rows))]
    if pattern == "all":
        return list(range(rows))
    if pattern == "percent":
        return sorted(rng.choice(rows, size=max(1, rows // 100), replace=False).tolist())
    if pattern == "mixed":
        pattern = ["one", "none", "all", "some"][step % 4]
        if pattern == "none":
            return []
        return touched(pattern, rows, step, rng)
    p = {"some": 0.33, "many": 0.8}[pattern]
    return [r for r in range(rows) if rng.uniform() < p]


def gradient_values(kind, k, cols, rng):
    g = rng.standard_normal((k, cols)).astype(np.float32)
    if kind == "huge":
        g = np.where(rng.uniform(size=g.shape) < 0.1, np.float32(1e20) * np.sign(g), g)
    return g.astype(np.float32)


def sparse_grad(rows_idx, values, rows, cols):
    idx = torch.tensor([rows_idx], dtype=torch.long).reshape(1, len(rows_idx))
    vals = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(
        len(rows_idx), cols)
    return torch.sparse_coo_tensor(idx, vals, (rows, cols), check_invariants=True)


def run_case(name, hyper, rows, cols, pattern, kind, record_state, steps, rng):
    params = rng.standard_normal((rows, cols)).astype(np.float32)
    emb = None
    if kind == "embedding":
        emb = torch.nn.Embedding(rows, cols, sparse=True)
        with torch.no_grad():
            emb.weight.copy_(torch.from_numpy(params))
        p = emb.weight
    else:
        p = torch.nn.Parameter(torch.from_numpy(params.copy()))
    kwargs = dict(hyper)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    opt = torch.optim.SparseAdam([p], **kwargs)
    case_indices, case_grads, expected = [], [], []
    state = {"exp_avg": [], "exp_avg_sq": []}
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        if emb is not None:
            # Repeated ids: the backward pass gives an uncoalesced gradient with duplicates.
            ids = torch.from_numpy(rng.integers(0, rows, size=rows // 2)).long()
            weights = torch.from_numpy(
                rng.standard_normal((len(ids), cols)).astype(np.float32))
            (emb(ids) * weights).sum().backward()
            assert p.grad.is_sparse and not p.grad.is_coalesced()
            c = p.grad.coalesce()
            rows_idx = c._indices()[0].tolist()
            values = c._values().numpy().copy()
        else:
            rows_idx = touched(pattern, rows, step, rng)
            values = gradient_values(kind, len(rows_idx), cols, rng)
            p.grad = sparse_grad(rows_idx, values, rows, cols)
        assert rows_idx == sorted(set(rows_idx)), (name, step)
        opt.step()
        case_indices.append(rows_idx)
        case_grads.append(np.asarray(values, dtype=np.float32).reshape(-1))
        expected.append(p.detach().numpy().reshape(-1).copy())
        st = opt.state[p]
        for key in state:
            state[key].append(st[key].numpy().reshape(-1).copy())
    case = {
        "name": name, "optimizer": "SparseAdam", "implementation": "single", "exact": False,
        "hyper": hyper, "shape": [rows, cols], "params": params.reshape(-1),
        "indices": case_indices, "grads": case_grads, "expected": expected,
    }
    if record_state:
        case["expected_state"] = state
    return case


def write_file(path, cases):
    """One case per block, one array per line: readable diffs, compact files."""
    def floats(xs):
        return json.dumps([f32(x) for x in xs], separators=(",", ":"))

    def compact(v):
        return json.dumps(v, separators=(",", ":"))

    lines = ["{", f'"format":{json.dumps(FORMAT)},',
             f'"torch":{json.dumps(torch.__version__.split("+")[0])},', '"cases":[']
    for k, c in enumerate(cases):
        keys = ("name", "optimizer", "implementation", "exact", "hyper", "shape")
        lines.append("{" + ",".join(f"{json.dumps(key)}:{compact(c[key])}" for key in keys) + ",")
        lines.append(f'"params":{floats(c["params"])},')
        lines.append('"indices":[')
        lines.append(",\n".join(compact(i) for i in c["indices"]))
        lines.append('],"grads":[')
        lines.append(",\n".join(floats(g) for g in c["grads"]))
        lines.append('],"expected":[')
        lines.append(",\n".join(floats(e) for e in c["expected"]))
        if "expected_state" in c:
            lines.append('],"expected_state":{')
            names = list(c["expected_state"])
            for j, name in enumerate(names):
                lines.append(f'{json.dumps(name)}:[')
                lines.append(",\n".join(floats(e) for e in c["expected_state"][name]))
                lines.append("]" + ("," if j + 1 < len(names) else ""))
            lines.append("}}" + ("," if k + 1 < len(cases) else ""))
        else:
            lines.append("]}" + ("," if k + 1 < len(cases) else ""))
    lines.append("]}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return check_file(path)


def check_file(path):
    """Re-read a written file: shapes, sorted-unique in-range indices, every number exactly
    an f32, unique names. Returns (cases, values)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    assert data["format"] == FORMAT, path
    names = [c["name"] for c in data["cases"]]
    assert len(names) == len(set(names)), (path, "duplicate names")
    values = 0
    for c in data["cases"]:
        rows, cols = c["shape"]
        n = rows * cols
        steps = len(c["grads"])
        assert steps == len(c["expected"]) == len(c["indices"]) and steps > 0, c["name"]
        assert len(c["params"]) == n, c["name"]
        for idx, g in zip(c["indices"], c["grads"]):
            assert idx == sorted(set(idx)) and all(0 <= i < rows for i in idx), c["name"]
            assert len(g) == len(idx) * cols, c["name"]
        arrays = [c["params"], *c["grads"], *c["expected"]]
        for name, rows_ in c.get("expected_state", {}).items():
            assert len(rows_) == steps and all(len(r) == n for r in rows_), (c["name"], name)
            arrays.extend(rows_)
        assert all(len(e) == n for e in c["expected"]), c["name"]
        for row in arrays:
            finite = np.array([x for x in row if not isinstance(x, str)], dtype=np.float64)
            assert np.array_equal(finite.astype(np.float32).astype(np.float64), finite), c["name"]
            assert all(x in ("nan", "inf", "-inf") for x in row if isinstance(x, str)), c["name"]
            values += len(row)
    return len(data["cases"]), values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=20150, help="base seed (default 20150)")
    ap.add_argument("--out", required=True, help="directory for sparse_adam.json")
    ap.add_argument("--steps", type=int, default=6, help="steps per case (default 6)")
    ap.add_argument("--randomize-hyper", action="store_true",
                    help="draw other valid hyperparameters from the seed")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    cases = []
    for index, (name, hyper, rows, cols, pattern, kind, record) in enumerate(CASES):
        rng = np.random.default_rng([args.seed, index])
        if args.randomize_hyper:
            hyper = randomize(hyper, rng)
        cases.append(run_case(name, hyper, rows, cols, pattern, kind, record, args.steps, rng))
    path = os.path.join(args.out, "sparse_adam.json")
    n_cases, n_values = write_file(path, cases)
    print(f"{path}: {n_cases} cases, {n_values} values, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
