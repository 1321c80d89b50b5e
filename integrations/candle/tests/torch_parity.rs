//! The adapter against torch: the main crate's torch vectors (`tests/vectors/adam.json` and
//! `adamw.json`, torch 2.15's fused Adam/AdamW) replayed through `FusedOptimizer` on candle
//! `Var`s, with each step's gradient from a real `backward()` (the loss `Σ p·g` has gradient
//! `g` exactly), under the main crate's pass rule: `|a − e| ≤ 1e-5·|e| + 1e-6·max(1, max|e|)`,
//! NaN and infinities matching exactly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer as _;
use fused_optim_candle::{Config, FusedOptimizer};
use serde_json::Value;

#[path = "../../torch_vectors.rs"]
mod torch_vectors;
use torch_vectors::{floats, optimizer, passes};

#[test]
fn torch_fused_adam_and_adamw_trajectories_pass_through_the_adapter() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let mut cases = 0;
    let mut values = 0;
    for file in ["adam.json", "adamw.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let opt = optimizer(case["optimizer"].as_str().unwrap(), &case["hyper"]);
            let p0 = floats(&case["params"]);
            let n = p0.len();
            let var = Var::from_tensor(&Tensor::from_vec(p0, n, &Device::Cpu).unwrap()).unwrap();
            let mut fused =
                FusedOptimizer::from_named(vec![("p".into(), var.clone())], Config::new(opt))
                    .unwrap();
            let grads = case["grads"].as_array().unwrap();
            let expected = case["expected"].as_array().unwrap();
            for (t, (g, e)) in grads.iter().zip(expected).enumerate() {
                let g = Tensor::from_vec(floats(g), n, &Device::Cpu).unwrap();
                let loss = var.as_tensor().mul(&g).unwrap().sum_all().unwrap();
                let store = loss.backward().unwrap();
                fused.step(&store).unwrap();
                let want = floats(e);
                let got: Vec<f32> = var.as_tensor().to_vec1().unwrap();
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
            cases += 1;
        }
    }
    assert!(
        cases >= 8 && values > 1000,
        "{cases} cases, {values} values"
    );
}
