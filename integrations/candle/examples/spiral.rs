//! Two interleaved spirals, classified by a small MLP trained with candle's autograd: once with
//! this adapter's AdamW, once with `candle_nn::AdamW`, from the same initial weights on the same
//! data, both with the crate's warmup-cosine schedule. The two are the same algorithm, so their
//! losses track each other up to rounding. The data is generated; nothing is downloaded.
//!
//! ```text
//! cargo run --release --example spiral [-- --epochs N]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use candle_core::{D, DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, Optimizer as _, VarBuilder, VarMap, linear, loss};
use fused_optim::schedule::WarmupCosine;
use fused_optim_candle::{Config, FusedOptimizer};

/// `n` points per class on two spirals (class 0 and its mirror image, class 1), with a little
/// deterministic jitter.
fn spirals(n: usize) -> Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(4 * n);
    let mut ys = Vec::with_capacity(2 * n);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut jitter = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    for class in 0..2u32 {
        for i in 0..n {
            let t = i as f32 / n as f32 * 3.0 * std::f32::consts::PI + 0.3;
            let r = t / (3.0 * std::f32::consts::PI);
            let sign = if class == 0 { 1.0 } else { -1.0 };
            xs.push(sign * r * t.cos() + jitter());
            xs.push(sign * r * t.sin() + jitter());
            ys.push(class);
        }
    }
    Ok((
        Tensor::from_vec(xs, (2 * n, 2), &Device::Cpu)?,
        Tensor::from_vec(ys, 2 * n, &Device::Cpu)?,
    ))
}

struct Mlp {
    layers: [Linear; 3],
}

impl Mlp {
    fn new(vb: &VarBuilder) -> Result<Self> {
        Ok(Mlp {
            layers: [
                linear(2, 64, vb.pp("fc1"))?,
                linear(64, 64, vb.pp("fc2"))?,
                linear(64, 2, vb.pp("fc3"))?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.layers[0].forward(x)?.tanh()?;
        let h = self.layers[1].forward(&h)?.tanh()?;
        self.layers[2].forward(&h)
    }
}

fn accuracy(model: &Mlp, x: &Tensor, y: &Tensor) -> Result<f32> {
    let pred = model.forward(x)?.argmax(D::Minus1)?;
    let right = pred.eq(y)?.to_dtype(DType::F32)?.mean_all()?;
    right.to_scalar::<f32>()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let epochs: u64 = args
        .iter()
        .position(|a| a == "--epochs")
        .map(|i| args[i + 1].parse().expect("--epochs N"))
        .unwrap_or(300);
    let (x, y) = spirals(500)?;
    let lr = 1e-2;

    // Model A (fused-optim) and model B (candle_nn) start from the same weights.
    let map_a = VarMap::new();
    let model_a = Mlp::new(&VarBuilder::from_varmap(&map_a, DType::F32, &Device::Cpu))?;
    let mut map_b = VarMap::new();
    let model_b = Mlp::new(&VarBuilder::from_varmap(&map_b, DType::F32, &Device::Cpu))?;
    let init: Vec<(String, Tensor)> = map_a
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap()))
        .collect();
    map_b.set(init.iter().map(|(k, v)| (k, v)))?;

    // AdamW with torch's defaults and a warmup-cosine schedule.
    let adamw = fused_optim::Adam {
        lr,
        ..fused_optim::Adam::adamw()
    };
    let sched = WarmupCosine {
        base_lr: lr,
        start_factor: 0.1,
        warmup_iters: epochs / 20,
        t_max: epochs - epochs / 20,
        eta_min: lr / 100.0,
    };
    let mut opt_a = FusedOptimizer::from_varmap(&map_a, Config::new(adamw))?;
    let params_b = candle_nn::ParamsAdamW {
        lr,
        ..Default::default()
    };
    let mut opt_b = candle_nn::AdamW::new(map_b.all_vars(), params_b)?;

    println!("two spirals, 1000 points, MLP 2-64-64-2 (tanh), full batch, {epochs} epochs");
    println!("epoch | lr (WarmupCosine) | loss, fused-optim AdamW | loss, candle_nn::AdamW");
    let (mut time_a, mut time_b) = (0.0, 0.0);
    for epoch in 0..epochs {
        let rate = sched.lr(epoch).map_err(candle_core::Error::wrap)?;
        opt_a.set_learning_rate(rate);
        opt_b.set_learning_rate(rate);
        let loss_a = loss::cross_entropy(&model_a.forward(&x)?, &y)?;
        let grads_a = loss_a.backward()?;
        let t = Instant::now();
        opt_a.step(&grads_a)?;
        time_a += t.elapsed().as_secs_f64();

        let loss_b = loss::cross_entropy(&model_b.forward(&x)?, &y)?;
        let grads_b = loss_b.backward()?;
        let t = Instant::now();
        opt_b.step(&grads_b)?;
        time_b += t.elapsed().as_secs_f64();

        if epoch % (epochs / 8).max(1) == 0 || epoch + 1 == epochs {
            println!(
                "{epoch:5} | {:.5} | {:.5} | {:.5}",
                opt_a.learning_rate(),
                loss_a.to_scalar::<f32>()?,
                loss_b.to_scalar::<f32>()?
            );
        }
    }
    let (acc_a, acc_b) = (accuracy(&model_a, &x, &y)?, accuracy(&model_b, &x, &y)?);
    println!(
        "accuracy: fused-optim {:.1} %, candle_nn {:.1} %",
        acc_a * 100.0,
        acc_b * 100.0
    );
    // The same algorithm: the weights differ only by rounding (candle_nn computes in a
    // different order, with one tensor op per term).
    let (data_a, data_b) = (map_a.data().lock().unwrap(), map_b.data().lock().unwrap());
    let mut max_diff = 0.0f32;
    for (name, va) in data_a.iter() {
        let d = (va.as_tensor() - data_b[name].as_tensor())?
            .abs()?
            .max_all()?;
        max_diff = max_diff.max(d.to_scalar::<f32>()?);
    }
    println!("largest weight difference between the two runs: {max_diff:.2e}");
    println!(
        "optimizer time per step: fused-optim {:.1} µs, candle_nn {:.1} µs",
        time_a / epochs as f64 * 1e6,
        time_b / epochs as f64 * 1e6
    );
    Ok(())
}
