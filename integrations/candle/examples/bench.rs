//! AdamW step time: `candle_nn::AdamW`, this adapter, and the raw crate on plain `Vec<f32>`,
//! interleaved in one process, on ResNet-18's 62 parameter tensors, a small CNN and a 1-20-1 MLP.
//!
//! ```text
//! cargo run --release --example bench [-- --rounds N] [--workloads resnet18,cnn,mlp] [--skip-candle]
//! ```
//!
//! The gradients come from a real `backward()` (loss = Σ sum(v²) over the vars), computed once
//! and fed to every step. Each round runs every contender in turn, in a rotating order; each
//! timed sample follows 2 ms of untimed steps of the same contender (warm caches, and candle's
//! worker threads, which spin ~1 ms after each op, are done). `candle_nn::AdamW` runs fewer steps
//! per sample than the two fast ones. The table shows medians over rounds of the time per step and the medians of the
//! per-round ratios, so a slow stretch of a shared machine hits every contender alike. The
//! 1-minute load average (`/proc/loadavg`) is printed before and after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use fused_optim::Adam;
use fused_optim_candle::{Config, FusedOptimizer};

/// torchvision.models.resnet18()'s parameter shapes, in named_parameters() order
/// (as bench/compare.py writes them out).
fn resnet18() -> Vec<Vec<usize>> {
    let mut shapes = vec![vec![64, 3, 7, 7], vec![64], vec![64]];
    let mut in_ch = 64;
    for (out_ch, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
        for block in 0..2 {
            let cin = if block == 0 { in_ch } else { out_ch };
            shapes.extend([vec![out_ch, cin, 3, 3], vec![out_ch], vec![out_ch]]);
            shapes.extend([vec![out_ch, out_ch, 3, 3], vec![out_ch], vec![out_ch]]);
            if block == 0 && (stride != 1 || cin != out_ch) {
                shapes.extend([vec![out_ch, cin, 1, 1], vec![out_ch], vec![out_ch]]);
            }
        }
        in_ch = out_ch;
    }
    shapes.extend([vec![1000, 512], vec![1000]]);
    shapes
}

fn cnn() -> Vec<Vec<usize>> {
    vec![
        vec![8, 1, 3, 3],
        vec![8],
        vec![16, 8, 3, 3],
        vec![16],
        vec![10, 400],
        vec![10],
    ]
}

fn mlp() -> Vec<Vec<usize>> {
    vec![vec![20, 1], vec![20], vec![1, 20], vec![1]]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Workload {
    key: &'static str,
    label: &'static str,
    shapes: Vec<Vec<usize>>,
    /// Steps per timed sample of `candle_nn::AdamW` (more for the tiny workloads).
    steps: usize,
    /// Steps per timed sample of the adapter and of the raw crate.
    fast_steps: usize,
}

/// Times `steps` calls of `f`, returning seconds per call.
fn time(steps: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..steps {
        f();
    }
    t.elapsed().as_secs_f64() / steps as f64
}

/// Untimed steps for at least 2 ms: warms the caches, and outlasts the ~1 ms candle's worker
/// threads spin after the previous contender's last op.
fn warm(mut f: impl FnMut()) {
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < 2e-3 {
        f();
    }
}

fn main() {
    let mut rounds = 15usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args[i + 1].parse().expect("--rounds N");
    }
    let skip_candle = args.iter().any(|a| a == "--skip-candle");
    let load_before = load();
    let workloads = [
        Workload {
            key: "resnet18",
            label: "ResNet-18 (62 tensors, 11.7 M)",
            shapes: resnet18(),
            steps: 1,
            fast_steps: 2,
        },
        Workload {
            key: "cnn",
            label: "small CNN (6 tensors, 5 258)",
            shapes: cnn(),
            steps: 200,
            fast_steps: 200,
        },
        Workload {
            key: "mlp",
            label: "MLP 1-20-1 (4 tensors, 61)",
            shapes: mlp(),
            steps: 2000,
            fast_steps: 2000,
        },
    ];
    println!(
        "AdamW (torch defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2), f32, {rounds} rounds; backend {:?}",
        fused_optim::Backend::best()
    );
    println!();
    println!(
        "| workload | candle_nn::AdamW | adapter | raw crate | adapter / raw | candle_nn / adapter |"
    );
    println!("|---|---|---|---|---|---|");
    // `--workloads resnet18,cnn,mlp` (default: all).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--workloads")
        .map(|i| args[i + 1].split(',').map(str::to_owned).collect());
    for w in &workloads {
        if only.as_ref().is_some_and(|o| !o.iter().any(|k| k == w.key)) {
            continue;
        }
        let make_vars = |seed: u64| -> Vec<Var> {
            w.shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let len = s.iter().product();
                    let t =
                        Tensor::from_vec(values(seed + i as u64, len), s.as_slice(), &Device::Cpu)
                            .unwrap();
                    Var::from_tensor(&t).unwrap()
                })
                .collect()
        };
        // Gradients from a real backward pass, one GradStore per set of vars.
        let grads_of = |vars: &[Var]| -> GradStore {
            let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
            for v in vars {
                loss = (loss + v.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
            }
            loss.backward().unwrap()
        };
        let candle_vars = make_vars(1);
        let candle_grads = grads_of(&candle_vars);
        let mut candle_opt = AdamW::new(candle_vars.clone(), ParamsAdamW::default()).unwrap();

        let ours_vars = make_vars(1);
        let ours_grads = grads_of(&ours_vars);
        let adamw = Adam::adamw();
        let mut ours = FusedOptimizer::new(ours_vars.clone(), Config::new(adamw)).unwrap();

        // The raw crate: the same values and gradients in plain vectors.
        let mut raw_params: Vec<Vec<f32>> = make_vars(1)
            .iter()
            .map(|v| v.flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        let raw_grads: Vec<Vec<f32>> = ours_vars
            .iter()
            .map(|v| {
                ours_grads
                    .get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        let mut raw_state: Vec<Vec<f32>> = raw_params
            .iter()
            .map(|p| vec![0.0; adamw.state_len(p.len())])
            .collect();
        let raw_step = std::cell::Cell::new(0u64);

        // Warm-up (first-touch page faults, caches).
        candle_opt.step(&candle_grads).unwrap();
        ours.step(&ours_grads).unwrap();
        let mut raw_once = || {
            raw_step.set(raw_step.get() + 1);
            let plan = adamw.plan(raw_step.get()).unwrap();
            for ((p, g), s) in raw_params.iter_mut().zip(&raw_grads).zip(&mut raw_state) {
                plan.apply(p, g, s).unwrap();
            }
        };
        raw_once();

        let (mut tc, mut ta, mut tr) = (vec![], vec![], vec![]);
        let (mut ratio_ar, mut ratio_ca) = (vec![], vec![]);
        for round in 0..rounds {
            // Rotate the order every round, so whatever one contender leaves behind (candle's
            // worker threads spin for a while after its ops) falls on each of the others alike.
            let (mut c, mut a, mut r) = (f64::NAN, 0.0, 0.0);
            for k in 0..3 {
                match (round + k) % 3 {
                    0 if !skip_candle => {
                        warm(|| candle_opt.step(&candle_grads).unwrap());
                        c = time(w.steps, || candle_opt.step(&candle_grads).unwrap());
                    }
                    0 => {}
                    1 => {
                        warm(|| ours.step(&ours_grads).unwrap());
                        a = time(w.fast_steps, || ours.step(&ours_grads).unwrap());
                    }
                    _ => {
                        warm(&mut raw_once);
                        r = time(w.fast_steps, &mut raw_once);
                    }
                }
            }
            tc.push(c);
            ta.push(a);
            tr.push(r);
            ratio_ar.push(a / r);
            ratio_ca.push(c / a);
        }
        // The warm-ups are timed, so the two took different numbers of steps: even them out,
        // then the adapter and the raw crate, same steps on the same gradients, have the same bits.
        let mut ours_steps = ours.step_count("0").unwrap();
        while ours_steps < raw_step.get() {
            ours.step(&ours_grads).unwrap();
            ours_steps += 1;
        }
        while raw_step.get() < ours_steps {
            raw_once();
        }
        for (v, p) in ours_vars.iter().zip(&raw_params) {
            let ours: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                ours.iter().zip(p).all(|(a, b)| a.to_bits() == b.to_bits()),
                "the adapter and the raw crate disagree"
            );
        }
        let fmt = |s: f64| {
            if s >= 1e-3 {
                format!("{:.2} ms", s * 1e3)
            } else {
                format!("{:.2} µs", s * 1e6)
            }
        };
        println!(
            "| {} | {} | {} | {} | {:.3}× | {:.1}× |",
            w.label,
            fmt(median(&mut tc)),
            fmt(median(&mut ta)),
            fmt(median(&mut tr)),
            median(&mut ratio_ar),
            median(&mut ratio_ca),
        );
    }
    println!();
    println!(
        "load average (1, 5, 15 min): before {load_before}; after {}",
        load()
    );
}
