//! Throughput of every optimizer's fused step on every available backend, and the memory floor.
//!
//! ```sh
//! cargo bench --bench step                      # everything (a few minutes)
//! cargo bench --bench step -- 'adam/'           # one optimizer
//! cargo bench --bench step -- '/avx512/64Ki'    # one backend and size
//! ```
//!
//! Benchmark ids are `optimizer/backend/size` and `floor-Nplanes/backend/size`, reported in
//! elements per second. Storage formats: `adamw-FORMAT/backend/64Ki`, AdamW (torch's formula)
//! over 64 Ki elements through `apply_piece`, with `FORMAT` one of `bf16` (bf16 parameters,
//! gradients and state), `bf16-state`, `int8-state`, `int4-state`, `fp8-state` (f32 parameters
//! and gradients) and `bf16-int8` (bf16 parameters and gradients, 8-bit state):
//! `cargo bench --bench step -- 'adamw-'`.
//!
//! SparseAdam: `sparse-adam/backend/ROWSxDIM-1pct`, an embedding table of `ROWS` rows of `DIM`
//! values with 1% of its rows (spread over the table, sorted) touched per step, reported in
//! touched elements per second: `cargo bench --bench step -- 'sparse-adam/'`.
//!
//! The floor (`fused_optim::__private::memory_floor`) streams exactly the bytes an optimizer with
//! `N` state planes moves, through the same driver, with no arithmetic; an optimizer near its
//! floor is limited by memory, not by arithmetic.
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
    Adadelta, Adagrad, Adam, Adamax, Asgd, Backend, Grads, Lion, NAdam, Optimizer, Params, RAdam,
    RMSprop, Rprop, Sgd, SparseAdam, SparseGrad, State, StateFormat, StepPlan, bf16,
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
    bench_optimizer(c, "rprop", Rprop::default());
    bench_optimizer(c, "asgd", Asgd::default());
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
    plan_cost(&mut group, "rprop", Rprop::default());
    plan_cost(&mut group, "asgd", Asgd::default());
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
    opt.init_state(&mut state).unwrap();
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

/// Parameters or gradients in one of the benchmarked dtypes.
#[derive(Clone, Debug)]
enum Values {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
}

impl Values {
    fn new(bf16: bool, v: Vec<f32>) -> Self {
        if bf16 {
            Values::Bf16(v.into_iter().map(bf16::from_f32).collect())
        } else {
            Values::F32(v)
        }
    }
    fn params(&mut self) -> Params<'_> {
        match self {
            Values::F32(v) => Params::F32(v),
            Values::Bf16(v) => Params::Bf16(v),
        }
    }
    fn grads(&self) -> Grads<'_> {
        match self {
            Values::F32(v) => Grads::F32(v),
            Values::Bf16(v) => Grads::Bf16(v),
        }
    }
    /// The bits of every value, to compare backends.
    fn bits(&self) -> Vec<u32> {
        match self {
            Values::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
            Values::Bf16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
        }
    }
}

/// A tensor's state in one of the benchmarked formats.
#[derive(Clone, Debug)]
enum FormatState {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    Block(StateFormat, Vec<u8>, Vec<f32>),
}

impl FormatState {
    fn new(format: StateFormat, planes: usize, n: usize) -> Self {
        let l = format.layout(planes, n);
        match format {
            StateFormat::F32 => FormatState::F32(vec![0.0; l.values]),
            StateFormat::Bf16 => FormatState::Bf16(vec![bf16::ZERO; l.values]),
            _ => FormatState::Block(format, vec![0; l.codes], vec![0.0; l.scales]),
        }
    }
    fn view(&mut self) -> State<'_> {
        match self {
            FormatState::F32(v) => State::F32(v),
            FormatState::Bf16(v) => State::Bf16(v),
            FormatState::Block(StateFormat::Int8, codes, scales) => State::Int8 { codes, scales },
            FormatState::Block(StateFormat::Int4, codes, scales) => State::Int4 { codes, scales },
            FormatState::Block(StateFormat::Fp8, codes, scales) => State::Fp8 { codes, scales },
            FormatState::Block(other, ..) => panic!("not benchmarked: {other:?}"),
        }
    }
    /// The bits of every value, code and scale, to compare backends.
    fn bits(&self) -> Vec<u32> {
        match self {
            FormatState::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
            FormatState::Bf16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
            FormatState::Block(_, codes, scales) => codes
                .iter()
                .map(|&c| u32::from(c))
                .chain(scales.iter().map(|x| x.to_bits()))
                .collect(),
        }
    }
}

/// AdamW (torch's formula) at 64 Ki elements in every storage format benchmarked, on every
/// available backend, each checked against the scalar reference bit for bit (parameters, state
/// values, codes and scales) before it is timed.
fn formats(c: &mut Criterion) {
    // (name, bf16 parameters and gradients, state format)
    const FORMATS: [(&str, bool, StateFormat); 6] = [
        ("bf16", true, StateFormat::Bf16),
        ("bf16-state", false, StateFormat::Bf16),
        ("int8-state", false, StateFormat::Int8),
        ("int4-state", false, StateFormat::Int4),
        ("fp8-state", false, StateFormat::Fp8),
        ("bf16-int8", true, StateFormat::Int8),
    ];
    let (n, label) = (64 << 10, "64Ki");
    let opt = Adam::adamw();
    let planes = opt.state_len(1);
    for (name, half, format) in FORMATS {
        let mut group = c.benchmark_group(format!("adamw-{name}"));
        configure_size(&mut group, n);
        let mut rng = Rng(n as u64 ^ 0xf0f0);
        let mut p0 = Values::new(half, (0..n).map(|_| rng.signed()).collect());
        let g = Values::new(half, (0..n).map(|_| rng.grad()).collect());
        let mut s0 = FormatState::new(format, planes, n);
        // A few steps so the state is not all zeros.
        for t in 1..=3 {
            opt.plan(t)
                .expect("valid hyperparameters")
                .apply_piece(Backend::Scalar, 0, p0.params(), g.grads(), s0.view())
                .expect("buffers fit");
        }
        let plan = opt.plan(STEP).expect("valid hyperparameters");
        let (mut p_ref, mut s_ref) = (p0.clone(), s0.clone());
        plan.apply_piece(Backend::Scalar, 0, p_ref.params(), g.grads(), s_ref.view())
            .expect("buffers fit");
        for backend in backends(n) {
            let (mut p, mut s) = (p0.clone(), s0.clone());
            plan.apply_piece(backend, 0, p.params(), g.grads(), s.view())
                .expect("buffers fit");
            assert!(
                p.bits() == p_ref.bits() && s.bits() == s_ref.bits(),
                "adamw-{name} on {backend} differs from the scalar reference"
            );
            group.bench_with_input(BenchmarkId::new(backend.name(), label), &n, |b, _| {
                b.iter(|| {
                    plan.apply_piece(
                        backend,
                        0,
                        black_box(&mut p).params(),
                        black_box(&g).grads(),
                        black_box(&mut s).view(),
                    )
                    .expect("buffers fit");
                });
            });
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

/// SparseAdam on embedding tables with 1% of the rows touched per step (each step the same
/// rows: the timed cost is the row walk, not the choice of rows), checked against the scalar
/// reference bit for bit first.
fn sparse_adam(c: &mut Criterion) {
    let mut group = c.benchmark_group("sparse-adam");
    let opt = SparseAdam::default();
    let plan = opt.plan(STEP).expect("valid hyperparameters");
    for (rows, dim, label) in [(64 << 10, 64, "64Kix64-1pct"), (1 << 20, 64, "1Mix64-1pct")] {
        let n = rows * dim;
        let mut rng = Rng(n as u64 ^ 0x5a);
        let p0: Vec<f32> = (0..n).map(|_| rng.signed()).collect();
        let s0: Vec<f32> = (0..2 * n)
            .map(|k| if k < n { rng.grad() * 0.1 } else { 1e-4 })
            .collect();
        // Every 100th row, from a random start: sorted and unique.
        let start = (rng.next_u64() % 100) as usize;
        let indices: Vec<u32> = (start..rows).step_by(100).map(|r| r as u32).collect();
        let values: Vec<f32> = (0..indices.len() * dim).map(|_| rng.grad()).collect();
        let grad = SparseGrad::new(dim, &indices, &values);
        group.throughput(Throughput::Elements(values.len() as u64));
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
        group.measurement_time(Duration::from_secs(1));
        let (mut p_ref, mut s_ref) = (p0.clone(), s0.clone());
        plan.apply_on(Backend::Scalar, &mut p_ref, grad, &mut s_ref)
            .expect("valid gradient");
        for backend in Backend::available() {
            let (mut p, mut s) = (p0.clone(), s0.clone());
            plan.apply_on(backend, &mut p, grad, &mut s)
                .expect("valid gradient");
            assert!(
                same(&p, &p_ref) && same(&s, &s_ref),
                "sparse-adam on {backend} ({label}) differs from the scalar reference"
            );
            group.bench_with_input(BenchmarkId::new(backend.name(), label), &n, |b, _| {
                b.iter(|| {
                    plan.apply_on(
                        backend,
                        black_box(&mut p),
                        black_box(grad),
                        black_box(&mut s),
                    )
                    .expect("valid gradient");
                });
            });
        }
    }
    group.finish();
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
    targets = optimizers, formats, floors, plans, sparse_adam
}
criterion_main!(benches);
