//! The adapter against torch: the main crate's torch vectors (`tests/vectors/adam.json` and
//! `adamw.json`, torch 2.15's fused Adam/AdamW) replayed through burn's per-tensor
//! `SimpleOptimizer::step` of `Fused`, on the Flex device, under the main crate's pass rule:
//! `|a − e| ≤ 1e-5·|e| + 1e-6·max(1, max|e|)`, NaN and infinities matching exactly.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use burn::optim::Optimizer as _;
use burn::tensor::{Device, Tensor, TensorData};
use fused_optim::Adam;
use fused_optim_burn::Fused;
use serde_json::Value;

fn num(v: &Value) -> f64 {
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

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| num(x) as f32)
        .collect()
}

fn passes(e: f32, a: f32, scale: f64) -> bool {
    if e.is_nan() || a.is_nan() || e.is_infinite() || a.is_infinite() {
        return (e.is_nan() && a.is_nan()) || e == a;
    }
    (f64::from(a) - f64::from(e)).abs() <= 1e-5 * f64::from(e).abs() + 1e-6 * scale
}

fn optimizer(name: &str, hyper: &Value) -> Adam {
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

#[test]
fn torch_fused_adam_and_adamw_trajectories_pass_through_the_adapter() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let device = Device::flex();
    let (mut cases, mut values) = (0, 0);
    for file in ["adam.json", "adamw.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let opt = optimizer(case["optimizer"].as_str().unwrap(), &case["hyper"]);
            let lr = opt.lr;
            let fused = Fused::new(opt).unwrap();
            let p0 = floats(&case["params"]);
            let n = p0.len();
            let mut tensor: Tensor<1> = Tensor::from_data(TensorData::new(p0, [n]), &device);
            let mut state = None;
            let grads = case["grads"].as_array().unwrap();
            let expected = case["expected"].as_array().unwrap();
            for (t, (g, e)) in grads.iter().zip(expected).enumerate() {
                let grad: Tensor<1> = Tensor::from_data(TensorData::new(floats(g), [n]), &device);
                let (next, s) = fused.step(lr, tensor, grad, state);
                tensor = next;
                state = s;
                let got = tensor.clone().into_data().try_into_vec::<f32>().unwrap();
                let want = floats(e);
                let scale = want
                    .iter()
                    .filter(|x| x.is_finite())
                    .fold(1.0f64, |m, x| m.max(f64::from(x.abs())));
                for (i, (w, a)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        passes(*w, *a, scale),
                        "{file} {name} step {} [{i}]: {a} vs torch {w}",
                        t + 1
                    );
                }
                values += n;
            }
            // Every step ran (none was skipped as invalid).
            assert_eq!(fused.diagnostics().skipped(), 0, "{file} {name}");
            cases += 1;
        }
    }
    assert_eq!(
        fused_optim_burn::Fused::new(Adam::default())
            .unwrap()
            .diagnostics()
            .skipped(),
        0
    );
    assert!(
        cases >= 8 && values > 1000,
        "{cases} cases, {values} values"
    );
}
