//! Throughput of every optimizer's fused step on every available backend, and the memory floor.
//!
//! ```sh
//! cargo bench --bench step                      # everything (a few minutes)
//! cargo bench --bench step -- 'adam/'           # one optimizer
//! cargo bench --bench step -- '/avx512/64Ki'    # one backend and size
//! ```
//!
//! Benchmark ids are `optimizer/backend/size` and `floor-Nplanes/backend/size`, reported in
//! elements per second. The floor (`fused_optim::__private::memory_floor`) streams exactly the
//! bytes an optimizer with `N` state planes moves, through the same driver, with no arithmetic;
//! an optimizer near its floor is limited by memory, not by arithmetic.
//!
//! Before a kernel is timed, one step on its backend is checked against the scalar reference
//! bit for bit (parameters and state), and the floor is checked to have moved the data it
//! claims to move. A mismatch aborts the run.
//!
//! Each timed iteration is one `apply` of a precomputed plan (the plan's own cost, once per
//! step whatever the number of tensors, is the `plan/` group). The scalar backend is skipped at
//! 16 Mi elements.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use core::hint::black_box;
use core::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use fused_optim::__private::memory_floor;
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Backend, Lion, NAdam, Optimizer, RAdam, RMSprop, Sgd, StepPlan,
};

/// Tensor sizes: from one small layer to a large embedding.
const SIZES: [(usize, &str); 5] = [
    (256, "256"),
    (4 << 10, "4Ki"),
    (64 << 10, "64Ki"),
    (1 << 20, "1Mi"),
    (16 << 20, "16Mi"),
];

/// The step number the plans are built for (past SGD's special first step).
const STEP: u64 = 10;

/// Every optimizer configuration benchmarked: one line each.
fn optimizers(c: &mut Criterion) {
    bench_optimizer(c, "sgd", Sgd::default());
    bench_optimizer(
        c,
        "sgd-momentum",
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
    );
    bench_optimizer(c, "adam", Adam::default());
    bench_optimizer(c, "adamw", Adam::adamw());
    bench_optimizer(c, "adagrad", Adagrad::default());
    bench_optimizer(c, "adadelta", Adadelta::default());
    bench_optimizer(c, "rmsprop", RMSprop::default());
    bench_optimizer(c, "adamax", Adamax::default());
    bench_optimizer(c, "nadam", NAdam::default());
    bench_optimizer(c, "radam", RAdam::default());
    bench_optimizer(c, "lion", Lion::default());
}

/// The per-step fixed cost: validation and the per-step scalars, paid once per step.
fn plans(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    plan_cost(
        &mut group,
        "sgd-momentum",
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
    );
    plan_cost(&mut group, "adam", Adam::default());
    plan_cost(&mut group, "adamw", Adam::adamw());
    plan_cost(&mut group, "adagrad", Adagrad::default());
    plan_cost(&mut group, "adadelta", Adadelta::default());
    plan_cost(&mut group, "rmsprop", RMSprop::default());
    plan_cost(&mut group, "adamax", Adamax::default());
    plan_cost(&mut group, "nadam", NAdam::default());
    plan_cost(&mut group, "radam", RAdam::default());
    plan_cost(&mut group, "lion", Lion::default());
    group.finish();
}

/// SplitMix64, to fill buffers with reproducible values.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
    }

    /// Magnitude in [1e-3, 1), random sign: no zeros or subnormals, whose cost varies by CPU.
    fn grad(&mut self) -> f32 {
        let x = self.signed();
        x.signum() * (1e-3 + 0.999 * x.abs())
    }
}

/// Parameters, gradients and a fresh state for `n` elements of `opt`.
fn buffers<O: Optimizer>(opt: &O, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed);
    let mut params: Vec<f32> = (0..n).map(|_| rng.signed()).collect();
    let grads: Vec<f32> = (0..n).map(|_| rng.grad()).collect();
    let mut state = vec![0.0; opt.state_len(n)];
    opt.init_state(&mut state);
    // A few steps so the state is not all zeros (which some kernels would shortcut).
    let mut scalars = O::Scalars::default();
    for t in 1..=3 {
        let plan = opt.plan(t, &scalars).expect("valid hyperparameters");
        plan.apply_on(Backend::Scalar, &mut params, &grads, &mut state)
            .expect("lengths fit");
        scalars = plan.scalars_after();
    }
    (params, grads, state)
}

/// Equal bits, NaN compared as a class.
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn backends(n: usize) -> impl Iterator<Item = Backend> {
    // The scalar reference at 16 Mi takes long and says nothing the 1 Mi point does not.
    Backend::available().filter(move |&b| !(b == Backend::Scalar && n > (1 << 20)))
}

fn configure_size<M: criterion::measurement::Measurement>(
    group: &mut criterion::BenchmarkGroup<'_, M>,
    n: usize,
) {
    group.throughput(Throughput::Elements(n as u64));
    if n > (1 << 20) {
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
        group.measurement_time(Duration::from_secs(2));
    } else {
        group.sample_size(20).sampling_mode(SamplingMode::Auto);
        group.measurement_time(Duration::from_millis(600));
    }
}

/// Benchmarks `opt` at every size on every available backend, after checking each backend's
/// step against the scalar reference bit for bit.
fn bench_optimizer<O: Optimizer>(c: &mut Criterion, name: &str, opt: O) {
    let mut group = c.benchmark_group(name);
    for (n, label) in SIZES {
        configure_size(&mut group, n);
        let (p0, g, s0) = buffers(&opt, n, n as u64);
        let plan = opt
            .plan(STEP, &O::Scalars::default())
            .expect("valid hyperparameters");
        let (mut p_ref, mut s_ref) = (p0.clone(), s0.clone());
        plan.apply_on(Backend::Scalar, &mut p_ref, &g, &mut s_ref)
            .expect("lengths fit");
        for backend in backends(n) {
            let (mut p, mut s) = (p0.clone(), s0.clone());
            plan.apply_on(backend, &mut p, &g, &mut s)
                .expect("lengths fit");
            assert!(
                same(&p, &p_ref) && same(&s, &s_ref),
                "{name} on {backend} at {n} elements differs from the scalar reference"
            );
            group.bench_with_input(BenchmarkId::new(backend.name(), label), &n, |b, _| {
                b.iter(|| {
                    plan.apply_on(backend, black_box(&mut p), black_box(&g), black_box(&mut s))
                        .expect("lengths fit");
                });
            });
        }
    }
    group.finish();
}

/// The memory floor for 0 to 3 state planes, checked to move what it claims to move.
fn floors(c: &mut Criterion) {
    for planes in 0..=3 {
        let mut group = c.benchmark_group(format!("floor-{planes}planes"));
        for (n, label) in SIZES {
            configure_size(&mut group, n);
            let mut rng = Rng(n as u64 ^ 0xf100);
            let p0: Vec<f32> = (0..n).map(|_| rng.signed()).collect();
            let g: Vec<f32> = (0..n).map(|_| rng.grad()).collect();
            let s0: Vec<f32> = (0..n * planes).map(|_| rng.signed()).collect();
            for backend in backends(n) {
                let (mut p, mut s) = (p0.clone(), s0.clone());
                memory_floor(backend, planes, &mut p, &g, &mut s).expect("lengths fit");
                // p ← g, s[0] ← p, s[j] ← s[j−1]: every byte read is written somewhere.
                let mut ok = same(&p, &g);
                if planes > 0 {
                    ok &= same(&s[..n], &p0);
                }
                for j in 1..planes {
                    ok &= same(&s[j * n..(j + 1) * n], &s0[(j - 1) * n..j * n]);
                }
                assert!(
                    ok,
                    "memory floor ({planes} planes) on {backend} at {n} moved wrong data"
                );
                group.bench_with_input(BenchmarkId::new(backend.name(), label), &n, |b, _| {
                    b.iter(|| {
                        memory_floor(
                            backend,
                            planes,
                            black_box(&mut p),
                            black_box(&g),
                            black_box(&mut s),
                        )
                        .expect("lengths fit");
                    });
                });
            }
        }
        group.finish();
    }
}

fn plan_cost<O: Optimizer, M: criterion::measurement::Measurement>(
    group: &mut criterion::BenchmarkGroup<'_, M>,
    name: &str,
    opt: O,
) {
    group
        .sample_size(20)
        .measurement_time(Duration::from_millis(600));
    let scalars = O::Scalars::default();
    group.bench_function(name, |b| {
        b.iter(|| black_box(black_box(&opt).plan(black_box(STEP), &scalars)).expect("valid"));
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20)
        .nresamples(20_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = optimizers, floors, plans
}
criterion_main!(benches);
