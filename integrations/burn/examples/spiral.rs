//! Two interleaved spirals, classified by a small MLP trained with burn's autodiff and
//! fused-optim's AdamW, next to burn's own AdamW on the same data, initialisation and
//! hyperparameters (torch.optim.AdamW's defaults, lr = 1e-2).
//!
//! `cargo run --release --example spiral [steps]` (default 300 steps; a few seconds).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Tanh};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

/// A 2-64-64-1 MLP with tanh activations; the output is a logit.
#[derive(Module, Debug)]
struct Net {
    l1: Linear,
    l2: Linear,
    l3: Linear,
    act: Tanh,
}

impl Net {
    fn new(device: &Device) -> Self {
        Net {
            l1: LinearConfig::new(2, 64).init(device),
            l2: LinearConfig::new(64, 64).init(device),
            l3: LinearConfig::new(64, 1).init(device),
            act: Tanh::new(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.act.forward(self.l1.forward(x));
        let h = self.act.forward(self.l2.forward(h));
        self.l3.forward(h)
    }
}

/// `n` points per arm of two spirals, labels ±1, with a little deterministic jitter.
fn spirals(n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut jitter = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.08
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for arm in 0..2 {
        for i in 0..n {
            let t = i as f32 / n as f32;
            let angle = t * 3.0 * core::f32::consts::PI + arm as f32 * core::f32::consts::PI;
            let r = 0.1 + 0.9 * t;
            x.push(r * angle.cos() + jitter());
            x.push(r * angle.sin() + jitter());
            y.push(if arm == 0 { 1.0 } else { -1.0 });
        }
    }
    (x, y)
}

/// Logistic loss `mean(softplus(-y·logit))`, written with burn's tensor ops.
fn loss(net: &Net, x: &Tensor<2>, y: &Tensor<2>) -> Tensor<1> {
    let margin = net.forward(x.clone()) * y.clone();
    // softplus(-m) = ln(1 + e^(-m)), stable for the margins seen here.
    margin.neg().exp().add_scalar(1.0).log().mean()
}

/// The value of a one-element tensor (NaN if it cannot be read).
fn value(t: Tensor<1>) -> f32 {
    let data = t.into_data();
    data.as_slice::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN)
}

fn accuracy(net: &Net, x: &Tensor<2>, y: &[f32]) -> f32 {
    let logits = net.forward(x.clone()).into_data();
    let logits = logits.as_slice::<f32>().unwrap_or(&[]);
    let right = logits
        .iter()
        .zip(y)
        .filter(|(l, t)| (**l > 0.0) == (**t > 0.0))
        .count();
    right as f32 / y.len() as f32
}

fn train(
    name: &str,
    mut net: Net,
    mut optim: ModuleOptimizer,
    data: &(Tensor<2>, Tensor<2>),
    steps: usize,
) -> Net {
    let (x, y) = data;
    let start = std::time::Instant::now();
    for step in 1..=steps {
        let l = loss(&net, x, y);
        if step == 1 || step % 50 == 0 || step == steps {
            println!("{name:>16}  step {step:4}  loss {:.6}", value(l.clone()));
        }
        let grads = GradientsParams::from_grads(l.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    println!("{name:>16}  {steps} steps in {:.2?}", start.elapsed());
    net
}

fn main() {
    let steps = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300usize);
    let device = Device::default().autodiff();
    let n = 200;
    let (xs, ys) = spirals(n);
    let x = Tensor::<2>::from_data(TensorData::new(xs, [2 * n, 2]), &device);
    let y = Tensor::<2>::from_data(TensorData::new(ys.clone(), [2 * n, 1]), &device);
    let data = (x, y);

    device.seed(7);
    let init = Net::new(&device);

    // torch.optim.AdamW's defaults on both sides: betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
    let fused = fused_optim_burn::adamw();
    let burn_adamw = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(1e-2)
        .init();

    let a = train("fused-optim", init.clone(), fused.init(), &data, steps);
    let b = train("burn AdamW", init, burn_adamw, &data, steps);

    let (la, lb) = (loss(&a, &data.0, &data.1), loss(&b, &data.0, &data.1));
    let (la, lb) = (value(la), value(lb));
    println!(
        "final loss: fused-optim {la:.6}, burn AdamW {lb:.6} (difference {:.2e})",
        (la - lb).abs()
    );
    println!(
        "accuracy:   fused-optim {:.3}, burn AdamW {:.3}",
        accuracy(&a, &data.0, &ys),
        accuracy(&b, &data.0, &ys)
    );
    println!("skipped updates: {}", fused.diagnostics().skipped());
}
