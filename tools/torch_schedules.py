#!/usr/bin/env python3
"""Generates tests/schedule_vectors/schedules.json from torch.optim.lr_scheduler.

For each case it builds the torch scheduler on a one-parameter optimizer and records
`get_last_lr()[0]` right after construction (epoch 0) and after each `scheduler.step()`
(epochs 1, 2, ...): exactly what torch's chainable (recursive) implementation outputs. For
OneCycleLR it also records the momentum it writes (`momentum` for SGD, `betas[0]` for Adam).

Usage: python tools/torch_schedules.py > tests/schedule_vectors/schedules.json
"""
import json
import sys
import warnings

import torch
from torch.optim import SGD, Adam
from torch.optim import lr_scheduler as S

warnings.filterwarnings("ignore")


def optimizer(lr, kind="sgd"):
    p = torch.nn.Parameter(torch.zeros(1))
    if kind == "adam":
        return Adam([p], lr=lr)
    return SGD([p], lr=lr, momentum=0.9)


def momentum_of(opt):
    g = opt.param_groups[0]
    return g["betas"][0] if "betas" in g else g["momentum"]


def run(sched, opt, epochs, with_momentum=False):
    lrs, moms = [float(sched.get_last_lr()[0])], [float(momentum_of(opt))]
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(float(sched.get_last_lr()[0]))
        moms.append(float(momentum_of(opt)))
    return (lrs, moms) if with_momentum else (lrs, None)


cases = []


def case(name, kind, base_lr, params, epochs, build, opt_kind="sgd", with_momentum=False):
    opt = optimizer(base_lr, opt_kind)
    lrs, moms = run(build(opt), opt, epochs, with_momentum)
    c = {"name": name, "kind": kind, "base_lr": base_lr, "params": params, "lr": lrs}
    if moms is not None:
        c["momentum"] = moms
        c["optimizer"] = opt_kind
    cases.append(c)


# StepLR
for base, step_size, gamma, n in [(0.1, 3, 0.5, 20), (1.0, 7, 0.1, 30), (0.05, 1, 0.9, 15)]:
    case(f"step_{step_size}_{gamma}", "StepLR", base, {"step_size": step_size, "gamma": gamma}, n,
         lambda o, s=step_size, g=gamma: S.StepLR(o, step_size=s, gamma=g))

# MultiStepLR (duplicates count twice; order does not matter)
for base, ms, gamma, n in [(0.1, [3, 7, 7, 12], 0.3, 20), (1.0, [10, 2, 5], 0.1, 15), (0.5, [], 0.1, 5)]:
    case(f"multistep_{'_'.join(map(str, ms)) or 'none'}", "MultiStepLR", base,
         {"milestones": ms, "gamma": gamma}, n,
         lambda o, m=ms, g=gamma: S.MultiStepLR(o, milestones=m, gamma=g))

# ExponentialLR
for base, gamma, n in [(0.1, 0.9, 50), (1e-3, 0.99, 300), (2.0, 1.0, 5)]:
    case(f"exponential_{gamma}", "ExponentialLR", base, {"gamma": gamma}, n,
         lambda o, g=gamma: S.ExponentialLR(o, gamma=g))

# CosineAnnealingLR (also past T_max: the schedule keeps following the cosine)
for base, t_max, eta_min, n in [(0.1, 10, 0.001, 35), (1e-3, 50, 0.0, 120), (0.5, 1, 0.0, 6),
                                (0.02, 7, 0.01, 30)]:
    case(f"cosine_{t_max}_{eta_min}", "CosineAnnealingLR", base, {"T_max": t_max, "eta_min": eta_min},
         n, lambda o, t=t_max, e=eta_min: S.CosineAnnealingLR(o, T_max=t, eta_min=e))

# LinearLR
for base, start, end, total, n in [(0.1, 1 / 3, 1.0, 5, 10), (0.05, 0.05, 1.0, 40, 50),
                                   (1.0, 1.0, 0.1, 10, 15), (0.3, 0.5, 0.0, 4, 8), (0.1, 0.25, 1.0, 0, 4)]:
    case(f"linear_{start:.3g}_{end}_{total}", "LinearLR", base,
         {"start_factor": start, "end_factor": end, "total_iters": total}, n,
         lambda o, s=start, e=end, t=total: S.LinearLR(o, start_factor=s, end_factor=e, total_iters=t))

# OneCycleLR: epochs 0..=total_steps (torch refuses to step further)
onecycle = [
    dict(max_lr=0.1, total_steps=100),
    dict(max_lr=0.1, total_steps=100, anneal_strategy="linear"),
    dict(max_lr=0.1, total_steps=100, three_phase=True),
    dict(max_lr=0.01, total_steps=57, three_phase=True, anneal_strategy="linear", pct_start=0.4),
    dict(max_lr=1.0, total_steps=40, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
         base_momentum=0.8, max_momentum=0.9),
    dict(max_lr=0.3, total_steps=10, pct_start=0.0),
]
for i, kw in enumerate(onecycle):
    full = dict(pct_start=0.3, anneal_strategy="cos", base_momentum=0.85, max_momentum=0.95,
                div_factor=25.0, final_div_factor=1e4, three_phase=False)
    full.update(kw)
    for opt_kind in ["sgd", "adam"]:
        case(f"onecycle_{i}_{opt_kind}", "OneCycleLR", 0.123, full, kw["total_steps"],
             lambda o, k=kw: S.OneCycleLR(o, **k), opt_kind=opt_kind, with_momentum=True)

# Warmup then cosine: SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup])
for base, start, warmup, t_max, eta_min, n in [(0.1, 0.01, 10, 90, 1e-5, 110), (3e-4, 0.1, 5, 20, 0.0, 40),
                                               (1.0, 0.5, 1, 3, 0.1, 10)]:
    def build(o, s=start, w=warmup, t=t_max, e=eta_min):
        a = S.LinearLR(o, start_factor=s, end_factor=1.0, total_iters=w)
        b = S.CosineAnnealingLR(o, T_max=t, eta_min=e)
        return S.SequentialLR(o, [a, b], milestones=[w])
    case(f"warmup_cosine_{warmup}_{t_max}", "WarmupCosine", base,
         {"start_factor": start, "warmup_iters": warmup, "T_max": t_max, "eta_min": eta_min}, n, build)

json.dump({"generator": "tools/torch_schedules.py", "torch": torch.__version__, "cases": cases},
          sys.stdout, indent=1)
sys.stdout.write("\n")
