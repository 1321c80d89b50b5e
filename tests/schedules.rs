//! The closed-form schedules against what `torch.optim.lr_scheduler` (2.15) actually outputs:
//! `get_last_lr()` after construction and after each `step()`, recorded by
//! `tools/torch_schedules.py` into `tests/schedule_vectors/schedules.json`.
//!
//! torch computes most schedules recursively from the previous rate, so its values carry the
//! rounding of every earlier step; the closed forms here do not. The tolerance is therefore
//! `1e-12 ×` the largest value of the case (a few hundred f64 roundings are ~1e-14).
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use fused_optim::Error;
use fused_optim::schedule::{
    Anneal, CosineAnnealingLr, ExponentialLr, LinearLr, MultiStepLr, OneCycleLr, StepLr,
    WarmupCosine,
};
use serde_json::Value;

const REL_TOL: f64 = 1e-12;

fn load() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schedule_vectors/schedules.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["torch"].as_str().unwrap().starts_with("2.15"),
        "vectors from another torch"
    );
    v["cases"].as_array().unwrap().clone()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("missing {key}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("missing {key}"))
}

fn series(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Compares `ours(t)` with torch's series for every epoch; returns the worst relative error.
fn compare(name: &str, what: &str, torch: &[f64], ours: impl Fn(u64) -> f64) -> f64 {
    let peak = torch.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut worst = 0.0f64;
    for (t, &want) in torch.iter().enumerate() {
        let got = ours(t as u64);
        let err = (got - want).abs() / peak.max(f64::MIN_POSITIVE);
        assert!(
            err <= REL_TOL,
            "{name} {what} epoch {t}: ours {got:e}, torch {want:e}"
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn every_case_matches_torch() {
    let cases = load();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut worst = 0.0f64;
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let kind = c["kind"].as_str().unwrap();
        let p = &c["params"];
        let base = f(c, "base_lr");
        let lr = series(c, "lr");
        *seen.entry(kind.to_owned()).or_default() += 1;
        let w = match kind {
            "StepLR" => {
                let s = StepLr {
                    base_lr: base,
                    step_size: u(p, "step_size"),
                    gamma: f(p, "gamma"),
                };
                compare(name, "lr", &lr, |t| s.lr(t).unwrap())
            }
            "MultiStepLR" => {
                let ms: Vec<u64> = p["milestones"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_u64().unwrap())
                    .collect();
                let s = MultiStepLr {
                    base_lr: base,
                    milestones: &ms,
                    gamma: f(p, "gamma"),
                };
                compare(name, "lr", &lr, |t| s.lr(t).unwrap())
            }
            "ExponentialLR" => {
                let s = ExponentialLr {
                    base_lr: base,
                    gamma: f(p, "gamma"),
                };
                compare(name, "lr", &lr, |t| s.lr(t).unwrap())
            }
            "CosineAnnealingLR" => {
                let s = CosineAnnealingLr {
                    base_lr: base,
                    t_max: u(p, "T_max"),
                    eta_min: f(p, "eta_min"),
                };
                compare(name, "lr", &lr, |t| s.lr(t).unwrap())
            }
            "LinearLR" => {
                let s = LinearLr {
                    base_lr: base,
                    start_factor: f(p, "start_factor"),
                    end_factor: f(p, "end_factor"),
                    total_iters: u(p, "total_iters"),
                };
                compare(name, "lr", &lr, |t| s.lr(t).unwrap())
            }
            "OneCycleLR" => {
                let s = OneCycleLr {
                    max_lr: f(p, "max_lr"),
                    total_steps: u(p, "total_steps"),
                    pct_start: f(p, "pct_start"),
                    anneal_strategy: match p["anneal_strategy"].as_str().unwrap() {
                        "cos" => Anneal::Cos,
                        "linear" => Anneal::Linear,
                        other => panic!("unknown strategy {other}"),
                    },
                    base_momentum: f(p, "base_momentum"),
                    max_momentum: f(p, "max_momentum"),
                    div_factor: f(p, "div_factor"),
                    final_div_factor: f(p, "final_div_factor"),
                    three_phase: p["three_phase"].as_bool().unwrap(),
                };
                assert_eq!(lr.len() as u64, s.total_steps + 1);
                let total = s.total_steps;
                assert_eq!(
                    s.lr(total + 1),
                    Err(Error::StepOutOfRange {
                        step: total + 1,
                        last: total
                    })
                );
                let m = series(c, "momentum");
                compare(name, "lr", &lr, |t| s.lr(t).unwrap()).max(compare(
                    name,
                    "momentum",
                    &m,
                    |t| s.momentum(t).unwrap(),
                ))
            }
            "WarmupCosine" => {
                let s = WarmupCosine {
                    base_lr: base,
                    start_factor: f(p, "start_factor"),
                    warmup_iters: u(p, "warmup_iters"),
                    t_max: u(p, "T_max"),
                    eta_min: f(p, "eta_min"),
                };
                compare(name, "lr", &lr, |t| s.lr(t).unwrap())
            }
            other => panic!("unknown schedule kind {other}"),
        };
        worst = worst.max(w);
    }
    // every schedule is covered, several times
    for kind in [
        "StepLR",
        "MultiStepLR",
        "ExponentialLR",
        "CosineAnnealingLR",
        "LinearLR",
        "OneCycleLR",
        "WarmupCosine",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) >= 3,
            "{kind}: {seen:?}"
        );
    }
    eprintln!(
        "{} schedule cases; worst difference from torch: {worst:e} of the peak",
        cases.len()
    );
}

#[test]
fn invalid_schedules_are_errors() {
    let bad = |r: Result<f64, Error>, name: &str| match r {
        Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected invalid {name}, got {other:?}"),
    };
    bad(
        StepLr {
            base_lr: 0.1,
            step_size: 0,
            gamma: 0.1,
        }
        .lr(3),
        "step_size",
    );
    bad(
        StepLr {
            base_lr: -0.1,
            step_size: 1,
            gamma: 0.1,
        }
        .lr(3),
        "base_lr",
    );
    bad(
        MultiStepLr {
            base_lr: 0.1,
            milestones: &[1],
            gamma: f64::NAN,
        }
        .lr(3),
        "gamma",
    );
    bad(
        ExponentialLr {
            base_lr: f64::NAN,
            gamma: 0.5,
        }
        .lr(3),
        "base_lr",
    );
    bad(
        CosineAnnealingLr {
            base_lr: 0.1,
            t_max: 0,
            eta_min: 0.0,
        }
        .lr(3),
        "T_max",
    );
    let lin = LinearLr {
        base_lr: 0.1,
        start_factor: 0.5,
        end_factor: 1.0,
        total_iters: 5,
    };
    // torch: start_factor in (0, 1], end_factor in [0, 1]
    bad(
        LinearLr {
            start_factor: 0.0,
            ..lin
        }
        .lr(1),
        "start_factor",
    );
    bad(
        LinearLr {
            start_factor: 1.5,
            ..lin
        }
        .lr(1),
        "start_factor",
    );
    bad(
        LinearLr {
            end_factor: -0.5,
            ..lin
        }
        .lr(1),
        "end_factor",
    );
    bad(
        LinearLr {
            end_factor: 1.5,
            ..lin
        }
        .lr(1),
        "end_factor",
    );
    let oc = OneCycleLr::default();
    bad(
        OneCycleLr {
            total_steps: 0,
            ..oc
        }
        .lr(0),
        "total_steps",
    );
    bad(
        OneCycleLr {
            pct_start: -0.1,
            ..oc
        }
        .lr(0),
        "pct_start",
    );
    bad(
        OneCycleLr {
            pct_start: 1.1,
            ..oc
        }
        .lr(0),
        "pct_start",
    );
    bad(
        OneCycleLr {
            div_factor: 0.0,
            ..oc
        }
        .lr(0),
        "div_factor",
    );
    let wc = WarmupCosine {
        base_lr: 1.0,
        start_factor: 0.1,
        warmup_iters: 5,
        t_max: 10,
        eta_min: 0.0,
    };
    bad(
        WarmupCosine {
            start_factor: 0.0,
            ..wc
        }
        .lr(0),
        "start_factor",
    );
    bad(WarmupCosine { t_max: 0, ..wc }.lr(0), "T_max");
    // pct_start = 1 makes the last phase empty: torch divides by zero at the last epoch
    let full = OneCycleLr {
        pct_start: 1.0,
        total_steps: 10,
        ..oc
    };
    assert!(full.lr(9).is_ok());
    assert!(matches!(full.lr(10), Err(Error::InvalidCombination(_))));
}
