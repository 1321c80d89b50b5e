//! Times whole multi-tensor optimizer steps, for `bench/compare.py` (which compares them with
//! `torch.optim` in the same run).
//!
//! ```sh
//! cargo run --release --example bench_driver -- adam 72,8,1152,16,4000,10
//! ```
//!
//! Arguments: an optimizer name (`sgd`, `sgd-momentum`, `adam`, `adamw`, `adagrad`,
//! `adadelta`, `rmsprop`, `adamax`, `nadam`, `radam`, `lion`) with its default
//! hyperparameters (torch's; `sgd-momentum` is `momentum = 0.9`), then the element count of
//! every tensor, comma-separated. Options: `--target-ms MS` (how long one repetition lasts,
//! default 50), `--backend NAME` (default: the best available), `--align BYTES` (start every
//! buffer at this alignment; default: wherever the allocator puts it).
//!
//! Each tensor gets its own parameter, gradient and state buffers. One *step* is what a
//! training loop pays: build the step's plan once (validation and per-step scalars), apply it to
//! every tensor, keep the scalar state for the next step. The *floor* is the same walk over the
//! same buffers with `memory_floor` instead of the optimizer: the bytes moved, no arithmetic.
//!
//! After calibrating, the driver reads commands from stdin, one per line, so the caller can
//! interleave it with other measurements: `step` or `floor` times one repetition (as many
//! steps as fit in the target time at calibration) and prints one JSON line,
//! `{"kind":"step","ns_per_step":…,"iters":…}`; `quit` (or end of input) exits. The first
//! line printed describes the setup.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use core::time::Duration;
use std::io::{BufRead, Write};
use std::time::Instant;

use fused_optim::__private::memory_floor;
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Backend, Lion, NAdam, Optimizer, RAdam, RMSprop, Sgd, StepPlan,
};

struct Args {
    optimizer: String,
    sizes: Vec<usize>,
    target: Duration,
    backend: Backend,
    align: usize,
}

fn parse_args() -> Args {
    let mut positional = Vec::new();
    let mut target = Duration::from_millis(50);
    let mut backend = Backend::best();
    let mut align = 0;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target-ms" => {
                let ms: f64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--target-ms MS");
                target = Duration::from_secs_f64(ms / 1e3);
            }
            "--align" => {
                align = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--align BYTES");
                assert!(align % 4 == 0, "--align takes a multiple of 4 bytes");
            }
            "--backend" => {
                let name = it.next().expect("--backend NAME");
                backend = Backend::ALL
                    .into_iter()
                    .find(|b| b.name() == name)
                    .unwrap_or_else(|| panic!("unknown backend {name}"));
                assert!(
                    backend.is_available(),
                    "backend {name} is not available here"
                );
            }
            _ => positional.push(a),
        }
    }
    assert!(
        positional.len() == 2,
        "usage: bench_driver OPTIMIZER N1,N2,... [--target-ms MS]"
    );
    let sizes = positional[1]
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad size {s:?}"))
        })
        .collect();
    Args {
        optimizer: positional[0].clone(),
        sizes,
        target,
        backend,
        align,
    }
}

/// SplitMix64, for reproducible buffer contents.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Uniform in [-1, 1), nudged away from zero (no subnormal gradients).
        let x = ((z >> 40) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0;
        x.signum() * (1e-3 + 0.999 * x.abs())
    }
}

/// One tensor's buffers.
struct Tensor {
    params: Buf,
    grads: Buf,
    state: Buf,
}

/// A buffer whose first element sits at a chosen alignment (or wherever the allocator put it).
struct Buf {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl Buf {
    fn new(values: impl Iterator<Item = f32>, len: usize, align: usize) -> Self {
        let mut data: Vec<f32> = Vec::with_capacity(len + align / 4);
        let start = match align {
            0 => 0,
            a => (a - data.as_ptr() as usize % a) % a / 4,
        };
        data.resize(start, 0.0);
        data.extend(values.take(len));
        data.resize(start + len, 0.0);
        Buf { data, start, len }
    }
    fn get(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }
    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.data[self.start..self.start + self.len]
    }
}

struct Model<O: Optimizer> {
    opt: O,
    backend: Backend,
    tensors: Vec<Tensor>,
    step: u64,
    scalars: O::Scalars,
    planes: usize,
}

impl<O: Optimizer> Model<O> {
    fn new(opt: O, sizes: &[usize], backend: Backend, align: usize) -> Self {
        let mut rng = Rng(42);
        let tensors = sizes
            .iter()
            .map(|&n| {
                let params = Buf::new((0..n).map(|_| rng.next_f32()), n, align);
                let grads = Buf::new((0..n).map(|_| rng.next_f32() * 0.1), n, align);
                let len = opt.state_len(n);
                let mut state = Buf::new(core::iter::repeat(0.0), len, align);
                opt.init_state(state.get_mut());
                Tensor {
                    params,
                    grads,
                    state,
                }
            })
            .collect();
        Model {
            opt,
            backend,
            tensors,
            step: 0,
            scalars: O::Scalars::default(),
            planes: opt.state_len(1),
        }
    }

    /// One optimizer step over every tensor: one plan, applied to each.
    #[inline(never)]
    fn step(&mut self) {
        self.step += 1;
        let plan = self
            .opt
            .plan(self.step, &self.scalars)
            .expect("valid hyperparameters");
        for t in &mut self.tensors {
            plan.apply_on(
                self.backend,
                t.params.get_mut(),
                t.grads.get(),
                t.state.get_mut(),
            )
            .expect("buffers fit");
        }
        self.scalars = plan.scalars_after();
    }

    /// The same walk with the memory floor instead of the optimizer.
    #[inline(never)]
    fn floor(&mut self) {
        for t in &mut self.tensors {
            let (p, g, s) = (t.params.get_mut(), t.grads.get(), t.state.get_mut());
            memory_floor(self.backend, self.planes, p, g, s).expect("buffers fit");
        }
    }

    fn run(&mut self, floor: bool, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            if floor {
                self.floor();
            } else {
                self.step();
            }
            core::hint::black_box(&mut self.tensors);
        }
        start.elapsed()
    }

    /// How many iterations fill `target`, after a warm-up of about the same length.
    /// (One untimed iteration first; then doubling batches until one lasts a quarter of the
    /// target, re-timed three times, keeping the fastest, so one preemption does not skew it.)
    fn calibrate(&mut self, floor: bool, target: Duration) -> u64 {
        self.run(floor, 1);
        let mut iters = 1u64;
        while iters < 1 << 40 && self.run(floor, iters) < target / 4 {
            iters *= 2;
        }
        let best = (0..3)
            .map(|_| self.run(floor, iters))
            .min()
            .unwrap_or(target);
        let per = best.as_secs_f64() / iters as f64;
        ((target.as_secs_f64() / per).round() as u64).max(1)
    }
}

fn serve<O: Optimizer>(opt: O, args: &Args) {
    // Separate buffers for the floor, so it never disturbs the optimizer's state.
    let mut model = Model::new(opt, &args.sizes, args.backend, args.align);
    let mut floor_model = Model::new(opt, &args.sizes, args.backend, args.align);
    let elements: usize = args.sizes.iter().sum();
    let step_iters = model.calibrate(false, args.target);
    let floor_iters = floor_model.calibrate(true, args.target);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{{\"kind\":\"setup\",\"optimizer\":\"{}\",\"backend\":\"{}\",\"tensors\":{},\
         \"elements\":{},\"planes\":{},\"step_iters\":{},\"floor_iters\":{}}}",
        args.optimizer,
        args.backend,
        args.sizes.len(),
        elements,
        model.planes,
        step_iters,
        floor_iters
    )
    .unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let (kind, took, iters) = match line.trim() {
            "step" => ("step", model.run(false, step_iters), step_iters),
            "floor" => ("floor", floor_model.run(true, floor_iters), floor_iters),
            "quit" | "" => break,
            other => panic!("unknown command {other:?}"),
        };
        let ns = took.as_nanos() as f64 / iters as f64;
        writeln!(
            out,
            "{{\"kind\":\"{kind}\",\"ns_per_step\":{ns:.3},\"iters\":{iters}}}"
        )
        .unwrap();
        out.flush().unwrap();
    }
}

fn main() {
    let args = parse_args();
    match args.optimizer.as_str() {
        "sgd" => serve(Sgd::default(), &args),
        "sgd-momentum" => serve(
            Sgd {
                momentum: 0.9,
                ..Sgd::default()
            },
            &args,
        ),
        "adam" => serve(Adam::default(), &args),
        "adamw" => serve(Adam::adamw(), &args),
        "adagrad" => serve(Adagrad::default(), &args),
        "adadelta" => serve(Adadelta::default(), &args),
        "rmsprop" => serve(RMSprop::default(), &args),
        "adamax" => serve(Adamax::default(), &args),
        "nadam" => serve(NAdam::default(), &args),
        "radam" => serve(RAdam::default(), &args),
        "lion" => serve(Lion::default(), &args),
        other => panic!("unknown optimizer {other:?}"),
    }
}
