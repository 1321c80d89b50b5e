//! One optimizer step (AdamW, torch's defaults) on burn's default CPU device, six ways,
//! interleaved in one process:
//!
//! * `burn AdamW`: burn's own `AdamWConfig` (same hyperparameters) in burn's `ModuleOptimizer`;
//! * `adapter`: `fused_optim_burn::adamw()` in burn's `ModuleOptimizer` (zero-copy path);
//! * `adapter, shared`: the same while another handle holds every parameter (burn copies it);
//! * `raw crate`: `fused_optim::Adam::adamw()` on plain `Vec<f32>`s with the same gradients;
//! * `adapter, per-tensor step`: the adapter's `step` called directly on plain tensors, without
//!   any module driver (the adapter's own per-parameter cost);
//! * `adapter, lean driver`: `fused_optim_burn::adamw().lean()`, the `Module::map`-based driver.
//!
//! Workloads: torchvision ResNet-18's 62 parameter shapes (11 689 512 values), a small CNN's
//! (6 tensors, 5 258) and a 1-20-1 MLP's (4 tensors, 61). Gradients come from a real
//! `backward()` of `Σ sum(p·x + p²/2)` over the parameters (`x` fixed data), before each timed
//! step; only `optimizer.step(..)` is timed. Each round runs every contender once, in a rotating
//! order; the table gives medians over rounds and the median of the per-round ratios.
//!
//! `cargo run --release --example bench [rounds]` (default 15); `BURN_DEVICE=ndarray` for NdArray.

// A benchmark harness: fixed-size arrays indexed by loop counters.
#![allow(clippy::indexing_slicing)]

use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::Optimizer as _;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use fused_optim::Adam;
use fused_optim_burn::{Fused, FusedState, LeanModuleOptimizer};

/// A module whose parameters have the given shapes (ranks 1, 2 and 4).
#[derive(Module, Debug)]
struct Shapes {
    p1: Vec<Param<Tensor<1>>>,
    p2: Vec<Param<Tensor<2>>>,
    p4: Vec<Param<Tensor<4>>>,
}

/// The fixed data `x` of the loss, one per parameter, in the module's order.
struct Inputs {
    x1: Vec<Tensor<1>>,
    x2: Vec<Tensor<2>>,
    x4: Vec<Tensor<4>>,
}

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

fn resnet18() -> Vec<Vec<usize>> {
    let mut s: Vec<Vec<usize>> = vec![vec![64, 3, 7, 7], vec![64], vec![64]];
    let mut cin = 64;
    for (cout, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
        for block in 0..2 {
            let c = if block == 0 { cin } else { cout };
            s.extend([vec![cout, c, 3, 3], vec![cout], vec![cout]]);
            s.extend([vec![cout, cout, 3, 3], vec![cout], vec![cout]]);
            if block == 0 && (stride != 1 || c != cout) {
                s.extend([vec![cout, c, 1, 1], vec![cout], vec![cout]]);
            }
        }
        cin = cout;
    }
    s.extend([vec![1000, 512], vec![1000]]);
    s
}

fn workloads() -> Vec<(&'static str, Vec<Vec<usize>>)> {
    let cnn = vec![
        vec![8, 1, 3, 3],
        vec![8],
        vec![16, 8, 3, 3],
        vec![16],
        vec![10, 400],
        vec![10],
    ];
    let mlp = vec![vec![20, 1], vec![20], vec![1, 20], vec![1]];
    vec![
        ("ResNet-18 (62 tensors, 11.7 M)", resnet18()),
        ("small CNN (6 tensors, 5 258)", cnn),
        ("MLP 1-20-1 (4 tensors, 61)", mlp),
    ]
}

fn build(shapes: &[Vec<usize>], device: &Device, seed: u64) -> (Shapes, Inputs) {
    let mut m = Shapes {
        p1: vec![],
        p2: vec![],
        p4: vec![],
    };
    let mut x = Inputs {
        x1: vec![],
        x2: vec![],
        x4: vec![],
    };
    for (i, s) in shapes.iter().enumerate() {
        let n: usize = s.iter().product();
        let p = TensorData::new(values(seed + i as u64, n), s.clone());
        let d = TensorData::new(values(seed + 1000 + i as u64, n), s.clone());
        match s.len() {
            1 => {
                m.p1.push(Param::from_tensor(Tensor::from_data(p, device)));
                x.x1.push(Tensor::from_data(d, device));
            }
            2 => {
                m.p2.push(Param::from_tensor(Tensor::from_data(p, device)));
                x.x2.push(Tensor::from_data(d, device));
            }
            _ => {
                m.p4.push(Param::from_tensor(Tensor::from_data(p, device)));
                x.x4.push(Tensor::from_data(d, device));
            }
        }
    }
    (m, x)
}

fn term<const D: usize>(p: &Param<Tensor<D>>, x: &Tensor<D>) -> Tensor<1> {
    let p = p.val();
    (p.clone() * x.clone() + p.powi_scalar(2).mul_scalar(0.5)).sum()
}

/// Gradients of `Σ sum(p·x + p²/2)` (that is `x + p`), from a real backward().
fn grads(m: &Shapes, x: &Inputs) -> GradientsParams {
    let mut terms: Vec<Tensor<1>> = Vec::new();
    terms.extend(m.p1.iter().zip(&x.x1).map(|(p, x)| term(p, x)));
    terms.extend(m.p2.iter().zip(&x.x2).map(|(p, x)| term(p, x)));
    terms.extend(m.p4.iter().zip(&x.x4).map(|(p, x)| term(p, x)));
    let loss = Tensor::cat(terms, 0).sum();
    GradientsParams::from_grads(loss.backward(), m)
}

/// The same gradients as host vectors, for the raw crate.
fn host_grads(m: &Shapes, g: &GradientsParams) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    let read = |d: TensorData| d.try_into_vec::<f32>().unwrap_or_default();
    out.extend(m.p1.iter().map(|p| {
        read(
            g.get::<1>(p.id)
                .map(|t| t.into_data())
                .unwrap_or_else(|| TensorData::new(Vec::<f32>::new(), [0])),
        )
    }));
    out.extend(m.p2.iter().map(|p| {
        read(
            g.get::<2>(p.id)
                .map(|t| t.into_data())
                .unwrap_or_else(|| TensorData::new(Vec::<f32>::new(), [0, 0])),
        )
    }));
    out.extend(m.p4.iter().map(|p| {
        read(
            g.get::<4>(p.id)
                .map(|t| t.into_data())
                .unwrap_or_else(|| TensorData::new(Vec::<f32>::new(), [0, 0, 0, 0])),
        )
    }));
    out
}

fn host_params(m: &Shapes) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    let read = |d: TensorData| d.try_into_vec::<f32>().unwrap_or_default();
    out.extend(m.p1.iter().map(|p| read(p.val().into_data())));
    out.extend(m.p2.iter().map(|p| read(p.val().into_data())));
    out.extend(m.p4.iter().map(|p| read(p.val().into_data())));
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

const LR: f64 = 1e-3;

/// The adapter's per-tensor `step` called directly on plain (non-autodiff) tensors, without
/// `ModuleOptimizer`: what the adapter itself costs per parameter.
struct Direct {
    t1: Vec<Tensor<1>>,
    t2: Vec<Tensor<2>>,
    t4: Vec<Tensor<4>>,
    states: Vec<Option<FusedState<()>>>,
}

impl Direct {
    fn new(shapes: &[Vec<usize>]) -> Self {
        let m = build(shapes, &Device::default(), 1).0;
        Direct {
            t1: m.p1.into_iter().map(Param::into_value).collect(),
            t2: m.p2.into_iter().map(Param::into_value).collect(),
            t4: m.p4.into_iter().map(Param::into_value).collect(),
            states: vec![None; shapes.len()],
        }
    }

    /// One step: `g` holds the gradients, in the module's order (unique tensors).
    fn step(&mut self, fused: &Fused<Adam>, g: (Vec<Tensor<1>>, Vec<Tensor<2>>, Vec<Tensor<4>>)) {
        fn each<const D: usize>(
            fused: &Fused<Adam>,
            ts: &mut Vec<Tensor<D>>,
            gs: Vec<Tensor<D>>,
            states: &mut [Option<FusedState<()>>],
        ) {
            *ts = core::mem::take(ts)
                .into_iter()
                .zip(gs)
                .zip(states.iter_mut())
                .map(|((p, g), s)| {
                    let (p, state) = fused.step(LR, p, g, s.take());
                    *s = state;
                    p
                })
                .collect();
        }
        let (a, b) = (self.t1.len(), self.t1.len() + self.t2.len());
        let (s1, rest) = self.states.split_at_mut(a);
        let (s2, s4) = rest.split_at_mut(b - a);
        each(fused, &mut self.t1, g.0, s1);
        each(fused, &mut self.t2, g.1, s2);
        each(fused, &mut self.t4, g.2, s4);
    }
}

/// The gradients of `m` taken out of `g` (so each is held once), in the module's order.
fn unique_grads(
    m: &Shapes,
    mut g: GradientsParams,
) -> (Vec<Tensor<1>>, Vec<Tensor<2>>, Vec<Tensor<4>>) {
    (
        m.p1.iter().filter_map(|p| g.remove::<1>(p.id)).collect(),
        m.p2.iter().filter_map(|p| g.remove::<2>(p.id)).collect(),
        m.p4.iter().filter_map(|p| g.remove::<4>(p.id)).collect(),
    )
}

struct Contender {
    model: Option<Shapes>,
    optim: Option<ModuleOptimizer>,
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let device = Device::default().autodiff();
    println!("device: {:?}, rounds: {rounds}", device.clone().inner());
    let adamw = Adam::adamw();
    let fused = fused_optim_burn::adamw();

    println!(
        "\n| workload | burn AdamW | adapter | adapter, shared | raw crate | adapter, per-tensor step | adapter, lean driver | burn AdamW / adapter | adapter / raw | adapter / lean | copy path (ns/elem) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, shapes) in workloads() {
        let n_elems: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        let (model, inputs) = build(&shapes, &device, 1);
        let burn_optim = AdamWConfig::new()
            .with_epsilon(adamw.eps as f32)
            .with_weight_decay(adamw.weight_decay as f32)
            .init();
        // Each contender gets its own parameters (same values, own buffers).
        let copy = |_: &Shapes| build(&shapes, &device, 1).0;
        let mut cs = [
            Contender {
                model: Some(copy(&model)),
                optim: Some(burn_optim),
            },
            Contender {
                model: Some(copy(&model)),
                optim: Some(fused.init()),
            },
            Contender {
                model: Some(copy(&model)),
                optim: Some(fused.init()),
            },
            Contender {
                model: None,
                optim: None,
            },
        ];
        let mut raw_p = host_params(&model);
        let mut raw_s: Vec<Vec<f32>> = raw_p.iter().map(|p| vec![0.0; 2 * p.len()]).collect();
        let mut direct = Direct::new(&shapes);
        let mut lean: (Option<Shapes>, LeanModuleOptimizer<Adam>) =
            (Some(copy(&model)), fused.lean());
        let mut times: [Vec<f64>; 6] = Default::default();
        let mut ratio_lean: Vec<f64> = Vec::new();
        let mut ratio_burn: Vec<f64> = Vec::new();
        let mut ratio_raw: Vec<f64> = Vec::new();
        let mut copy_cost: Vec<f64> = Vec::new();
        // One warm-up round, not recorded.
        for round in 0..=rounds {
            let mut t = [0.0f64; 6];
            for k in 0..6 {
                let which = (round + k) % 6;
                if which == 5 {
                    if let Some(m) = lean.0.take() {
                        let g = grads(&m, &inputs);
                        let start = Instant::now();
                        let m = lean.1.step(LR, m, g);
                        t[5] = start.elapsed().as_secs_f64();
                        lean.0 = Some(m);
                    }
                    continue;
                }
                if which == 4 {
                    let g = unique_grads(&model, grads(&model, &inputs));
                    let start = Instant::now();
                    direct.step(&fused, g);
                    t[4] = start.elapsed().as_secs_f64();
                    continue;
                }
                if which == 3 {
                    // Gradients from the same backward, read out before timing.
                    let g = host_grads(&model, &grads(&model, &inputs));
                    let step = round as u64 + 1;
                    let start = Instant::now();
                    let plan = adamw.plan(step);
                    if let Ok(plan) = plan {
                        for ((p, g), s) in raw_p.iter_mut().zip(&g).zip(raw_s.iter_mut()) {
                            let _ = plan.apply(p, g, s);
                        }
                    }
                    t[3] = start.elapsed().as_secs_f64();
                    continue;
                }
                let c = &mut cs[which];
                let (Some(m), Some(o)) = (c.model.take(), c.optim.as_mut()) else {
                    continue;
                };
                let g = grads(&m, &inputs);
                let keep = (which == 2).then(|| m.clone());
                let start = Instant::now();
                let m = o.step(LR, m, g);
                t[which] = start.elapsed().as_secs_f64();
                drop(keep);
                c.model = Some(m);
            }
            if round > 0 {
                ratio_lean.push(t[1] / t[5]);
                for k in 0..6 {
                    times[k].push(t[k]);
                }
                ratio_burn.push(t[0] / t[1]);
                ratio_raw.push(t[1] / t[3]);
                copy_cost.push((t[2] - t[1]) * 1e9 / n_elems as f64);
            }
        }
        let ms = |v: &mut Vec<f64>| {
            let m = median(v);
            if m >= 1e-3 {
                format!("{:.2} ms", m * 1e3)
            } else {
                format!("{:.1} µs", m * 1e6)
            }
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {:.2}× | {:.2} |",
            ms(&mut times[0]),
            ms(&mut times[1]),
            ms(&mut times[2]),
            ms(&mut times[3]),
            ms(&mut times[4]),
            ms(&mut times[5]),
            median(&mut ratio_burn),
            median(&mut ratio_raw),
            median(&mut ratio_lean),
            median(&mut copy_cost),
        );
    }
    println!(
        "\nskipped updates in the adapter: {}",
        fused.diagnostics().skipped()
    );
}
