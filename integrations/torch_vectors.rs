//! Shared by the adapters' torch parity tests (`integrations/*/tests/torch_parity.rs`, each
//! includes it with `#[path]`): reading the main crate's `torch-optim-vectors/1` files and their
//! pass rule, `|a − e| ≤ 1e-5·|e| + 1e-6·max(1, max|e|)`, NaN and infinities matching exactly.

use fused_optim::Adam;
use serde_json::Value;

/// One number, or "nan"/"inf"/"-inf".
pub(crate) fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("unknown value {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
}

/// A list of numbers, or of "nan"/"inf"/"-inf".
pub(crate) fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| num(x) as f32)
        .collect()
}

/// The parity rule.
pub(crate) fn passes(e: f32, a: f32, scale: f64) -> bool {
    if e.is_nan() || a.is_nan() || e.is_infinite() || a.is_infinite() {
        return (e.is_nan() && a.is_nan()) || e == a;
    }
    (f64::from(a) - f64::from(e)).abs() <= 1e-5 * f64::from(e).abs() + 1e-6 * scale
}

/// torch's `Adam`/`AdamW` with a case's hyperparameters.
pub(crate) fn optimizer(name: &str, hyper: &Value) -> Adam {
    let mut o = if name == "AdamW" {
        Adam::adamw()
    } else {
        Adam::default()
    };
    for (k, v) in hyper.as_object().unwrap() {
        match k.as_str() {
            "lr" => o.lr = num(v),
            "eps" => o.eps = num(v),
            "weight_decay" => o.weight_decay = num(v),
            "betas" => o.betas = (num(&v[0]), num(&v[1])),
            "amsgrad" => o.amsgrad = v.as_bool().unwrap(),
            "maximize" => o.maximize = v.as_bool().unwrap(),
            "decoupled_weight_decay" => o.decoupled_weight_decay = v.as_bool().unwrap(),
            other => panic!("hyperparameter {other} not handled"),
        }
    }
    o
}
