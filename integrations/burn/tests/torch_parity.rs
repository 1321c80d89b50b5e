//! The adapter against torch: the main crate's torch vectors (`tests/vectors/adam.json` and
//! `adamw.json`, torch 2.15's fused Adam/AdamW) replayed through burn's per-tensor
//! `step` of `Fused`, on the Flex device, under the main crate's pass rule:
//! `|a − e| ≤ 1e-5·|e| + 1e-6·max(1, max|e|)`, NaN and infinities matching exactly.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use burn::optim::Optimizer as _;
use burn::tensor::{Device, Tensor, TensorData};
use fused_optim_burn::Fused;
use serde_json::Value;

#[path = "../../torch_vectors.rs"]
mod torch_vectors;
use torch_vectors::{floats, optimizer, passes};

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
    assert!(
        cases >= 8 && values > 1000,
        "{cases} cases, {values} values"
    );
}
