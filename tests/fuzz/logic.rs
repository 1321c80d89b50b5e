//! Differential fuzz logic, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by
//! the stable corpus replay (`tests/fuzz_corpus.rs`).
//!
//! Each target decodes hyperparameters, lengths and float bit patterns from the input, runs
//! the operation on the scalar reference and on every other available backend, and panics
//! (a finding) when a backend differs by a bit (NaN compared as a class), when an error leaves
//! a buffer changed, or when an invariant documented by the crate does not hold.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used
)]
// `..Default::default()` keeps the targets compiling if an optimizer gains a field.
#![allow(clippy::needless_update)]

use fused_optim::amp::{StepOutcome, step_if_finite_on, unscale_and_check_on};
use fused_optim::clip::{NORM_BLOCK, NormType, clip_grad_norm_on, clip_grad_value_on};
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Asgd, Backend, Error, Grads, Lion, NAdam, Optimizer, Params,
    RAdam, RMSprop, Rprop, Sgd, SparseAdam, SparseGrad, State, StateFormat, StepPlan, TorchaoAdam,
    bf16, f16,
};

/// Every target, by name, for the corpus replay.
/// A fuzz target: decodes and checks one input.
pub type Target = fn(&[u8]);

pub const TARGETS: [(&str, Target); 15] = [
    ("sgd", sgd),
    ("adam", adam),
    ("adagrad", adagrad),
    ("adadelta", adadelta),
    ("rmsprop", rmsprop),
    ("adamax", adamax),
    ("nadam", nadam),
    ("radam", radam),
    ("lion", lion),
    ("rprop", rprop),
    ("asgd", asgd),
    ("clip", clip),
    ("unscale", unscale),
    ("formats", formats),
    ("sparse_adam", sparse_adam),
];

/// Reads the fuzzer's bytes; past the end it continues with a fixed pseudo-random stream, so
/// every input decodes to a complete case.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
    fill: u64,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input {
            data,
            pos: 0,
            fill: data.len() as u64,
        }
    }

    pub fn byte(&mut self) -> u8 {
        if let Some(&b) = self.data.get(self.pos) {
            self.pos += 1;
            return b;
        }
        self.fill = self.fill.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.fill;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z >> 56) as u8
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A hyperparameter: usually in `[lo, hi]`, sometimes a boundary, zero, negative, NaN or
    /// infinite (to exercise validation).
    pub fn hyper(&mut self, lo: f64, hi: f64) -> f64 {
        match self.byte() {
            0 => f64::NAN,
            1 => -(lo + (hi - lo) * 0.5).abs() - 1e-3,
            2 => f64::INFINITY,
            3..=20 => 0.0,
            21..=24 => hi,
            25..=28 => lo,
            _ => lo + (hi - lo) * f64::from(self.u16()) / 65535.0,
        }
    }

    /// A tensor length: often short (every tail), sometimes long.
    pub fn len(&mut self) -> usize {
        match self.byte() % 4 {
            0 => usize::from(self.byte() % 9),
            1 => usize::from(self.byte() % 40),
            2 => 64 + usize::from(self.byte()),
            _ => usize::from(self.u16() % 1500),
        }
    }

    /// `n` floats: raw bit patterns, small values, or a mix with special values.
    pub fn floats(&mut self, n: usize) -> Vec<f32> {
        let mode = self.byte() % 3;
        (0..n)
            .map(|_| match mode {
                0 => f32::from_bits(self.u32()),
                1 => f32::from(self.byte() as i8) / 8.0,
                _ => match self.byte() {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => -0.0,
                    4 => f32::from_bits(u32::from(self.u16()) | 1), // subnormal
                    5 => f32::MAX,
                    6 => f32::from_bits(self.u32()),
                    b => f32::from(b as i8) * f32::from(self.byte()) / 1024.0,
                },
            })
            .collect()
    }
}

/// Equal bits, or both NaN.
pub fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

pub fn assert_same(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = a.iter().zip(b).position(|(x, y)| !same(*x, *y)) {
        panic!(
            "{what}: index {i}: {:e} ({:#x}) vs {:e} ({:#x})",
            a[i],
            a[i].to_bits(),
            b[i],
            b[i].to_bits()
        );
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The differential check for one optimizer: a few consecutive steps, every backend against
/// the scalar reference, chunk invariance, length errors that write nothing, and the
/// skip-on-non-finite helper.
pub fn optimizer<O: Optimizer>(opt: O, u: &mut Input<'_>) {
    let n = u.len();
    let first: u64 = match u.byte() % 8 {
        0 => 0,
        1 => u64::from(u.u32()),
        b => u64::from(b),
    };
    let steps = 1 + u64::from(u.byte() % 3);
    let mut params = u.floats(n);
    let mut state = u.floats(opt.state_len(n));
    if u.bool() {
        // A fresh state, or, for invalid hyperparameters, an error with nothing written.
        let before = state.clone();
        if opt.init_state(&mut state).is_err() {
            assert!(opt.validate().is_err());
            assert_same("init_state on error", &state, &before);
        }
    }
    let mut scalars = O::Scalars::default();
    for k in 0..steps {
        let t = first + k;
        let grads = u.floats(n);
        let plan = match opt.plan(t, &scalars) {
            Ok(plan) => plan,
            Err(e) => {
                assert!(
                    t == 0 || opt.validate().is_err() || step_scalar_error(&e),
                    "{opt:?} step {t}: unexpected {e:?}"
                );
                return;
            }
        };
        assert!(
            t != 0 && opt.validate().is_ok(),
            "{opt:?} step {t}: accepted"
        );

        // A length error on any backend writes nothing.
        if u.byte().is_multiple_of(6) {
            let off_grads = u.bool();
            let longer = u.bool();
            let g_len = if off_grads {
                if longer { n + 1 } else { n.saturating_sub(1) }
            } else {
                n
            };
            let sl = opt.state_len(n);
            let s_len = if off_grads {
                sl
            } else if longer {
                sl + 1
            } else {
                sl.saturating_sub(1)
            };
            if g_len != n || s_len != sl {
                let g = u.floats(g_len);
                let mut s = u.floats(s_len);
                for backend in Backend::available() {
                    let (p0, s0) = (bits(&params), bits(&s));
                    let r = plan.apply_on(backend, &mut params, &g, &mut s);
                    assert!(
                        r.is_err(),
                        "{opt:?} {backend}: lengths {n}/{g_len}/{s_len} accepted"
                    );
                    assert_eq!(
                        (bits(&params), bits(&s)),
                        (p0, s0),
                        "{opt:?} {backend}: written on error"
                    );
                }
            }
        }

        let (mut p_ref, mut s_ref) = (params.clone(), state.clone());
        plan.apply_on(Backend::Scalar, &mut p_ref, &grads, &mut s_ref)
            .unwrap();
        for backend in Backend::available().filter(|b| *b != Backend::Scalar) {
            let (mut p, mut s) = (params.clone(), state.clone());
            plan.apply_on(backend, &mut p, &grads, &mut s).unwrap();
            assert_same(
                &format!("{opt:?} step {t} n {n} {backend} params"),
                &p_ref,
                &p,
            );
            assert_same(
                &format!("{opt:?} step {t} n {n} {backend} state"),
                &s_ref,
                &s,
            );
        }

        // Two pieces give the same bits as the whole tensor.
        let cut = if n == 0 {
            0
        } else {
            usize::from(u.u16()) % (n + 1)
        };
        let planes = opt.state_len(n).checked_div(n).unwrap_or(0);
        let (mut p, mut s) = (params.clone(), state.clone());
        for (a, b) in [(0, cut), (cut, n)] {
            let mut piece: Vec<f32> = (0..planes)
                .flat_map(|j| s[j * n + a..j * n + b].to_vec())
                .collect();
            plan.apply(&mut p[a..b], &grads[a..b], &mut piece).unwrap();
            for j in 0..planes {
                s[j * n + a..j * n + b].copy_from_slice(&piece[j * (b - a)..(j + 1) * (b - a)]);
            }
        }
        assert_same(&format!("{opt:?} chunked params"), &p_ref, &p);
        assert_same(&format!("{opt:?} chunked state"), &s_ref, &s);

        // The skip helper: the same bits when every gradient is finite, nothing written
        // otherwise.
        let (mut p, mut s) = (vec![params.clone()], vec![state.clone()]);
        let (mut step, mut sc) = (t - 1, scalars);
        let backend = Backend::available().last().unwrap();
        let r = step_if_finite_on(backend, &opt, &mut step, &mut sc, &mut p, &[&grads], &mut s)
            .unwrap();
        // Scalar state compared through `Debug`, NaN as a class (ASGD's `eta` is NaN for an
        // infinite `lr`, as in torch, and NaN != NaN).
        if grads.iter().all(|x| x.is_finite()) {
            assert_eq!((r, step), (StepOutcome::Stepped, t));
            assert_eq!(format!("{sc:?}"), format!("{:?}", plan.scalars_after()));
            assert_same("step_if_finite params", &p_ref, &p[0]);
            assert_same("step_if_finite state", &s_ref, &s[0]);
        } else {
            assert_eq!((r, step), (StepOutcome::Skipped, t - 1));
            assert_eq!(format!("{sc:?}"), format!("{scalars:?}"));
            assert_eq!((bits(&p[0]), bits(&s[0])), (bits(&params), bits(&state)));
        }

        params = p_ref;
        state = s_ref;
        scalars = plan.scalars_after();
    }
}

pub fn sgd(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = Sgd {
        lr: u.hyper(0.0, 1.0),
        momentum: u.hyper(0.0, 1.0),
        dampening: u.hyper(0.0, 1.0),
        weight_decay: u.hyper(0.0, 0.1),
        nesterov: u.bool(),
        maximize: u.bool(),
        ..Sgd::default()
    };
    optimizer(opt, &mut u);
}

pub fn adam(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = Adam {
        lr: u.hyper(0.0, 1.0),
        betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
        eps: u.hyper(0.0, 1e-3),
        weight_decay: u.hyper(0.0, 0.1),
        amsgrad: u.bool(),
        maximize: u.bool(),
        decoupled_weight_decay: u.bool(),
        ..Adam::default()
    };
    optimizer(opt, &mut u);
}

pub fn adagrad(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = Adagrad {
        lr: u.hyper(0.0, 1.0),
        lr_decay: u.hyper(0.0, 0.1),
        weight_decay: u.hyper(0.0, 0.1),
        initial_accumulator_value: u.hyper(0.0, 1.0),
        eps: u.hyper(0.0, 1e-3),
        maximize: u.bool(),
        ..Adagrad::default()
    };
    optimizer(opt, &mut u);
}

pub fn adadelta(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = Adadelta {
        lr: u.hyper(0.0, 2.0),
        rho: u.hyper(0.0, 1.0),
        eps: u.hyper(0.0, 1e-3),
        weight_decay: u.hyper(0.0, 0.1),
        maximize: u.bool(),
        ..Adadelta::default()
    };
    optimizer(opt, &mut u);
}

pub fn rmsprop(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = RMSprop {
        lr: u.hyper(0.0, 1.0),
        alpha: u.hyper(0.0, 1.0),
        eps: u.hyper(0.0, 1e-3),
        weight_decay: u.hyper(0.0, 0.1),
        momentum: u.hyper(0.0, 1.0),
        centered: u.bool(),
        maximize: u.bool(),
        ..RMSprop::default()
    };
    optimizer(opt, &mut u);
}

pub fn adamax(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = Adamax {
        lr: u.hyper(0.0, 1.0),
        betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
        eps: u.hyper(0.0, 1e-3),
        weight_decay: u.hyper(0.0, 0.1),
        maximize: u.bool(),
        ..Adamax::default()
    };
    optimizer(opt, &mut u);
}

pub fn nadam(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = NAdam {
        lr: u.hyper(0.0, 1.0),
        betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
        eps: u.hyper(0.0, 1e-3),
        weight_decay: u.hyper(0.0, 0.1),
        momentum_decay: u.hyper(0.0, 0.1),
        decoupled_weight_decay: u.bool(),
        maximize: u.bool(),
        ..NAdam::default()
    };
    optimizer(opt, &mut u);
}

pub fn radam(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = RAdam {
        lr: u.hyper(0.0, 1.0),
        betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
        eps: u.hyper(0.0, 1e-3),
        weight_decay: u.hyper(0.0, 0.1),
        decoupled_weight_decay: u.bool(),
        maximize: u.bool(),
        ..RAdam::default()
    };
    optimizer(opt, &mut u);
}

pub fn lion(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = Lion {
        lr: u.hyper(0.0, 1.0),
        betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
        weight_decay: u.hyper(0.0, 0.1),
        maximize: u.bool(),
        ..Lion::default()
    };
    optimizer(opt, &mut u);
}

/// SparseAdam: a table of `rows × dim` values, a few steps each touching a set of rows that is
/// usually valid (sorted, unique, in range) and sometimes corrupted (swapped, repeated,
/// negative, past the end), with wrong lengths now and then. A valid step must run on every
/// backend with the scalar reference's bits, leave untouched rows alone, and give the same
/// bits when its rows are split over two calls; an invalid one must fail with the error the
/// crate documents, on every backend, with nothing written.
pub fn sparse_adam(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = SparseAdam {
        lr: u.hyper(0.0, 1.0),
        betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
        eps: u.hyper(0.0, 1e-3),
        maximize: u.bool(),
        ..SparseAdam::default()
    };
    let dim = match u.byte() % 8 {
        0 => usize::from(u.byte() % 2), // 0 is an error
        1 => 64 + usize::from(u.byte()),
        _ => 1 + usize::from(u.byte() % 40),
    };
    let rows = usize::from(u.byte() % 24);
    let n = rows * dim;
    let first: u64 = match u.byte() % 8 {
        0 => 0,
        1 => u64::from(u.u32()),
        b => u64::from(b),
    };
    let mut params = u.floats(n);
    let mut state = u.floats(2 * n);
    for k in 0..1 + u64::from(u.byte() % 3) {
        let t = first + k;
        let plan = match opt.plan(t) {
            Ok(plan) => plan,
            Err(e) => {
                assert!(
                    t == 0 || opt.validate().is_err(),
                    "{opt:?} step {t}: unexpected {e:?}"
                );
                return;
            }
        };
        assert!(
            t != 0 && opt.validate().is_ok(),
            "{opt:?} step {t}: accepted"
        );

        // The rows: a sorted unique subset, then maybe corrupted.
        let keep = u.byte();
        let mut indices: Vec<i64> = (0..rows as i64).filter(|_| u.byte() <= keep).collect();
        match u.byte() % 10 {
            0 if indices.len() >= 2 => {
                let i = usize::from(u.byte()) % (indices.len() - 1);
                indices.swap(i, i + 1);
            }
            1 if !indices.is_empty() => {
                let i = usize::from(u.byte()) % indices.len();
                indices.insert(i, indices[i]);
            }
            2 => indices.push(rows as i64 + i64::from(u.byte() % 3)),
            3 => indices.insert(0, -1 - i64::from(u.byte() % 3)),
            _ => {}
        }
        let mut n_values = indices.len() * dim;
        let mut s_len = 2 * n;
        let mut p_cut = 0;
        match u.byte() % 16 {
            0 if n_values > 0 => n_values -= 1,
            1 => n_values += 1,
            2 => s_len = s_len.saturating_sub(1),
            3 if n > 0 => p_cut = 1,
            _ => {}
        }
        let values = u.floats(n_values);

        // What the crate documents, checked in its order.
        let p_len = n - p_cut;
        let expected_err = if dim == 0 {
            Some("dim")
        } else if p_len % dim != 0 {
            Some("params")
        } else if s_len != 2 * p_len {
            Some("state")
        } else if n_values != indices.len() * dim {
            Some("values")
        } else {
            let table_rows = p_len / dim;
            indices.iter().enumerate().find_map(|(i, &x)| {
                if x < 0 || x as usize >= table_rows {
                    Some("range")
                } else if i > 0 && x <= indices[i - 1] {
                    Some("sorted")
                } else {
                    None
                }
            })
        };
        let grad = SparseGrad::new(dim, &indices, &values);
        if let Some(what) = expected_err {
            for backend in Backend::available() {
                let mut p = params[p_cut..].to_vec();
                let mut s = state[..s_len.min(2 * n)].to_vec();
                s.resize(s_len, 0.5);
                let (p0, s0) = (bits(&p), bits(&s));
                let e = plan.apply_on(backend, &mut p, grad, &mut s).unwrap_err();
                let ok = match (what, e) {
                    ("dim", Error::InvalidCombination(_)) => true,
                    ("params" | "state" | "values", Error::LengthMismatch { what: w, .. }) => {
                        w == what
                    }
                    ("range", Error::IndexOutOfRange { .. }) => true,
                    ("sorted", Error::IndicesNotSorted { .. }) => true,
                    _ => false,
                };
                assert!(ok, "{backend}: expected a {what} error, got {e:?}");
                assert_eq!(
                    (bits(&p), bits(&s)),
                    (p0, s0),
                    "{backend}: written on error"
                );
            }
            continue;
        }

        let (mut p_ref, mut s_ref) = (params.clone(), state.clone());
        plan.apply_on(Backend::Scalar, &mut p_ref, grad, &mut s_ref)
            .unwrap();
        for backend in Backend::available().filter(|b| *b != Backend::Scalar) {
            let (mut p, mut s) = (params.clone(), state.clone());
            plan.apply_on(backend, &mut p, grad, &mut s).unwrap();
            assert_same(
                &format!("{opt:?} step {t} dim {dim} {backend} params"),
                &p_ref,
                &p,
            );
            assert_same(
                &format!("{opt:?} step {t} dim {dim} {backend} state"),
                &s_ref,
                &s,
            );
        }
        // Untouched rows keep their bits.
        for r in 0..rows {
            if indices.contains(&(r as i64)) {
                continue;
            }
            let span = r * dim..(r + 1) * dim;
            assert_eq!(bits(&p_ref[span.clone()]), bits(&params[span.clone()]));
            for plane in [0, n] {
                let span = plane + span.start..plane + span.end;
                assert_eq!(bits(&s_ref[span.clone()]), bits(&state[span]));
            }
        }
        // The rows split over two calls give the same bits.
        let cut = usize::from(u.byte()) % (indices.len() + 1);
        let (mut p, mut s) = (params.clone(), state.clone());
        let backend = Backend::available().last().unwrap();
        for (a, b) in [(0, cut), (cut, indices.len())] {
            let part = SparseGrad::new(dim, &indices[a..b], &values[a * dim..b * dim]);
            plan.apply_on(backend, &mut p, part, &mut s).unwrap();
        }
        assert_same("split rows params", &p_ref, &p);
        assert_same("split rows state", &s_ref, &s);
        params = p_ref;
        state = s_ref;
    }
}

fn rprop_opt(u: &mut Input<'_>) -> Rprop {
    Rprop {
        lr: u.hyper(0.0, 1.0),
        etas: (u.hyper(0.0, 1.0), 1.0 + u.hyper(0.0, 2.0)),
        step_sizes: (u.hyper(0.0, 1e-3), u.hyper(0.0, 100.0)),
        maximize: u.bool(),
        ..Rprop::default()
    }
}

pub fn rprop(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = rprop_opt(&mut u);
    optimizer(opt, &mut u);
}

fn asgd_opt(u: &mut Input<'_>) -> Asgd {
    Asgd {
        lr: u.hyper(0.0, 1.0),
        lambd: u.hyper(0.0, 1.0),
        alpha: u.hyper(0.0, 2.0),
        t0: u.hyper(0.0, 10.0),
        weight_decay: u.hyper(0.0, 0.1),
        maximize: u.bool(),
        ..Asgd::default()
    }
}

pub fn asgd(data: &[u8]) {
    let mut u = Input::new(data);
    let opt = asgd_opt(&mut u);
    optimizer(opt, &mut u);
}

fn slices(u: &mut Input<'_>) -> Vec<Vec<f32>> {
    let count = usize::from(u.byte() % 5);
    (0..count)
        .map(|_| {
            let n = if u.byte().is_multiple_of(4) {
                NORM_BLOCK - 8 + usize::from(u.byte() % 24)
            } else {
                u.len()
            };
            u.floats(n)
        })
        .collect()
}

/// `clip_grad_norm` and `clip_grad_value`: every backend against the scalar reference, the
/// documented summation order, errors that write nothing, and `|clipped| <= |g|`.
pub fn clip(data: &[u8]) {
    let mut u = Input::new(data);
    let g0 = slices(&mut u);
    let max_norm = u.hyper(0.0, 10.0);
    let norm_type = if u.bool() {
        NormType::L2
    } else {
        NormType::Inf
    };
    let error_if_nonfinite = u.bool();
    let clip_value = u.hyper(0.0, 4.0);

    // The documented order, written independently.
    let mut total = 0.0f64;
    for g in &g0 {
        for block in g.chunks(NORM_BLOCK) {
            let mut a = [0.0f64; 8];
            for (k, &x) in block.iter().enumerate() {
                a[k % 8] += f64::from(x) * f64::from(x);
            }
            total += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        }
    }
    let l2 = NormType::L2.partial(&g0);
    assert!(
        l2.to_bits() == total.to_bits() || (l2.is_nan() && total.is_nan()),
        "{l2} vs {total}"
    );

    let mut g_ref = g0.clone();
    let r_ref = clip_grad_norm_on(
        Backend::Scalar,
        &mut g_ref,
        max_norm,
        norm_type,
        error_if_nonfinite,
    );
    if r_ref.is_err() {
        for (a, b) in g_ref.iter().zip(&g0) {
            assert_eq!(bits(a), bits(b), "written on error {r_ref:?}");
        }
    } else {
        for (a, b) in g_ref.iter().flatten().zip(g0.iter().flatten()) {
            assert!(a.is_nan() || a.abs() <= b.abs(), "clipping grew {b} to {a}");
        }
    }
    for backend in Backend::available() {
        let mut g = g0.clone();
        let r = clip_grad_norm_on(backend, &mut g, max_norm, norm_type, error_if_nonfinite);
        match (&r, &r_ref) {
            (Ok(a), Ok(b)) => assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())),
            (Err(a), Err(b)) => assert_eq!(format!("{a}"), format!("{b}")),
            _ => panic!("{backend}: {r:?} vs {r_ref:?}"),
        }
        for (a, b) in g.iter().zip(&g_ref) {
            assert_same(&format!("clip_grad_norm {backend}"), a, b);
        }
    }

    let mut v_ref = g0.clone();
    let r_ref = clip_grad_value_on(Backend::Scalar, &mut v_ref, clip_value);
    for backend in Backend::available() {
        let mut v = g0.clone();
        let r = clip_grad_value_on(backend, &mut v, clip_value);
        assert_eq!(r.is_ok(), r_ref.is_ok());
        for ((a, b), orig) in v.iter().zip(&v_ref).zip(&g0) {
            assert_same(&format!("clip_grad_value {backend}"), a, b);
            if r.is_err() {
                assert_eq!(bits(a), bits(orig), "clip_grad_value wrote on error");
            }
        }
    }
    if r_ref.is_ok() {
        let c = clip_value as f32;
        for (a, b) in v_ref.iter().flatten().zip(g0.iter().flatten()) {
            let want = if b.is_nan() { *b } else { b.clamp(-c, c) };
            assert!(
                same(*a, want) || (*a == 0.0 && want == 0.0),
                "clamp({b}, {c}) = {a}"
            );
        }
    }
}

/// `unscale_and_check` on every backend against the per-element definition.
pub fn unscale(data: &[u8]) {
    let mut u = Input::new(data);
    let g0 = slices(&mut u);
    let inv = match u.byte() % 4 {
        0 => 1.0,
        1 => f32::from_bits(u.u32()),
        _ => 1.0 / (1u32 << (u.byte() % 24)) as f32,
    };
    // The check sees the unscaled value, what a step would use.
    let found = g0
        .iter()
        .flatten()
        .any(|x| !(if inv == 1.0 { *x } else { x * inv }).is_finite());
    for backend in Backend::available() {
        let mut g = g0.clone();
        assert_eq!(
            unscale_and_check_on(backend, &mut g, inv),
            Ok(found),
            "{backend}"
        );
        for (a, b) in g.iter().zip(&g0) {
            let want: Vec<f32> = b
                .iter()
                .map(|x| if inv == 1.0 { *x } else { x * inv })
                .collect();
            assert_same(&format!("unscale {backend} inv {inv}"), a, &want);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Storage formats

/// Parameters in one of the storage formats (owned).
#[derive(Clone, Debug)]
enum FmtParams {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Sr(Vec<bf16>, u64),
    Kahan(Vec<bf16>, Vec<bf16>),
}

#[derive(Clone, Debug)]
enum FmtGrads {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

/// State in one of the formats (owned): values, or codes and scales.
#[derive(Clone, Debug)]
enum FmtState {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Block(StateFormat, Vec<u8>, Vec<f32>),
}

const STATE_FORMATS: [StateFormat; 6] = [
    StateFormat::F32,
    StateFormat::Bf16,
    StateFormat::F16,
    StateFormat::Int8,
    StateFormat::Int4,
    StateFormat::Fp8,
];

impl Input<'_> {
    /// `n` bf16 values: the decoded floats rounded, or raw bit patterns.
    fn bf16s(&mut self, n: usize) -> Vec<bf16> {
        if self.bool() {
            self.floats(n).into_iter().map(bf16::from_f32).collect()
        } else {
            (0..n).map(|_| bf16::from_bits(self.u16())).collect()
        }
    }

    fn f16s(&mut self, n: usize) -> Vec<f16> {
        if self.bool() {
            self.floats(n).into_iter().map(f16::from_f32).collect()
        } else {
            (0..n).map(|_| f16::from_bits(self.u16())).collect()
        }
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

/// Bits with NaN canonical (`class`), or exact; fp8 NaN codes (`0x7f`, `0xff`) are one class.
fn bits16(v: impl Iterator<Item = (u16, bool)>, class: bool, nan: u16) -> Vec<u32> {
    v.map(|(b, is_nan)| u32::from(if class && is_nan { nan } else { b }))
        .collect()
}

fn bits32(v: &[f32], class: bool) -> Vec<u32> {
    v.iter()
        .map(|x| {
            if class && x.is_nan() {
                0x7fc0_0000
            } else {
                x.to_bits()
            }
        })
        .collect()
}

fn bf16_bits(v: &[bf16], class: bool) -> Vec<u32> {
    bits16(v.iter().map(|x| (x.to_bits(), x.is_nan())), class, 0x7fc0)
}

fn f16_bits(v: &[f16], class: bool) -> Vec<u32> {
    bits16(v.iter().map(|x| (x.to_bits(), x.is_nan())), class, 0x7e00)
}

impl FmtParams {
    fn decode(u: &mut Input<'_>, n: usize) -> Self {
        match u.byte() % 5 {
            0 => FmtParams::F32(u.floats(n)),
            1 => FmtParams::Bf16(u.bf16s(n)),
            2 => FmtParams::F16(u.f16s(n)),
            3 => FmtParams::Sr(u.bf16s(n), u.u64()),
            _ => FmtParams::Kahan(u.bf16s(n), u.bf16s(n)),
        }
    }

    fn params(&mut self) -> Params<'_> {
        match self {
            FmtParams::F32(p) => Params::F32(p),
            FmtParams::Bf16(p) => Params::Bf16(p),
            FmtParams::F16(p) => Params::F16(p),
            FmtParams::Sr(p, seed) => Params::Bf16Stochastic {
                params: p,
                seed: *seed,
            },
            FmtParams::Kahan(p, c) => Params::Bf16Kahan {
                params: p,
                compensation: c,
            },
        }
    }

    fn slice(&self, a: usize, b: usize) -> Self {
        match self {
            FmtParams::F32(p) => FmtParams::F32(p[a..b].to_vec()),
            FmtParams::Bf16(p) => FmtParams::Bf16(p[a..b].to_vec()),
            FmtParams::F16(p) => FmtParams::F16(p[a..b].to_vec()),
            FmtParams::Sr(p, s) => FmtParams::Sr(p[a..b].to_vec(), *s),
            FmtParams::Kahan(p, c) => FmtParams::Kahan(p[a..b].to_vec(), c[a..b].to_vec()),
        }
    }

    fn put(&mut self, a: usize, piece: &Self) {
        match (self, piece) {
            (FmtParams::F32(d), FmtParams::F32(s)) => d[a..a + s.len()].copy_from_slice(s),
            (FmtParams::Bf16(d), FmtParams::Bf16(s))
            | (FmtParams::Sr(d, _), FmtParams::Sr(s, _)) => {
                d[a..a + s.len()].copy_from_slice(s);
            }
            (FmtParams::F16(d), FmtParams::F16(s)) => d[a..a + s.len()].copy_from_slice(s),
            (FmtParams::Kahan(d, dc), FmtParams::Kahan(s, sc)) => {
                d[a..a + s.len()].copy_from_slice(s);
                dc[a..a + sc.len()].copy_from_slice(sc);
            }
            _ => unreachable!(),
        }
    }

    fn bits(&self, class: bool) -> Vec<Vec<u32>> {
        match self {
            FmtParams::F32(p) => vec![bits32(p, class)],
            FmtParams::Bf16(p) | FmtParams::Sr(p, _) => vec![bf16_bits(p, class)],
            FmtParams::F16(p) => vec![f16_bits(p, class)],
            FmtParams::Kahan(p, c) => vec![bf16_bits(p, class), bf16_bits(c, class)],
        }
    }
}

impl FmtGrads {
    fn decode(u: &mut Input<'_>, kind: u8, n: usize) -> Self {
        match kind % 3 {
            0 => FmtGrads::F32(u.floats(n)),
            1 => FmtGrads::Bf16(u.bf16s(n)),
            _ => FmtGrads::F16(u.f16s(n)),
        }
    }

    fn grads(&self) -> Grads<'_> {
        match self {
            FmtGrads::F32(g) => Grads::F32(g),
            FmtGrads::Bf16(g) => Grads::Bf16(g),
            FmtGrads::F16(g) => Grads::F16(g),
        }
    }

    fn slice(&self, a: usize, b: usize) -> Self {
        match self {
            FmtGrads::F32(g) => FmtGrads::F32(g[a..b].to_vec()),
            FmtGrads::Bf16(g) => FmtGrads::Bf16(g[a..b].to_vec()),
            FmtGrads::F16(g) => FmtGrads::F16(g[a..b].to_vec()),
        }
    }

    fn resized(&self, len: usize) -> Self {
        match self {
            FmtGrads::F32(g) => FmtGrads::F32(resized(g, len, 1.0)),
            FmtGrads::Bf16(g) => FmtGrads::Bf16(resized(g, len, bf16::ONE)),
            FmtGrads::F16(g) => FmtGrads::F16(resized(g, len, f16::ONE)),
        }
    }
}

fn resized<T: Copy>(v: &[T], len: usize, fill: T) -> Vec<T> {
    let mut out: Vec<T> = v.iter().copied().take(len).collect();
    out.resize(len, fill);
    out
}

/// Per plane `j` of the piece `[a, b)` of `n` values: its range of values (or code bytes) and of
/// scales in the whole tensor's buffers (planes stored one after another).
fn plane_ranges(
    format: StateFormat,
    planes: usize,
    n: usize,
    a: usize,
    b: usize,
) -> Vec<(core::ops::Range<usize>, core::ops::Range<usize>)> {
    let one = format.layout(1, n);
    let block = format.block();
    (0..planes)
        .map(|j| {
            let scales = j * one.scales + a / block..j * one.scales + b.div_ceil(block);
            match format {
                StateFormat::Int4 => (j * one.codes + a / 2..j * one.codes + b.div_ceil(2), scales),
                StateFormat::Int8 | StateFormat::Fp8 => {
                    (j * one.codes + a..j * one.codes + b, scales)
                }
                _ => (j * n + a..j * n + b, 0..0),
            }
        })
        .collect()
}

impl FmtState {
    fn zeroed(format: StateFormat, planes: usize, n: usize) -> Self {
        let l = format.layout(planes, n);
        match format {
            StateFormat::F32 => FmtState::F32(vec![0.0; l.values]),
            StateFormat::Bf16 => FmtState::Bf16(vec![bf16::ZERO; l.values]),
            StateFormat::F16 => FmtState::F16(vec![f16::ZERO; l.values]),
            _ => FmtState::Block(format, vec![0; l.codes], vec![0.0; l.scales]),
        }
    }

    fn decode(u: &mut Input<'_>, format: StateFormat, planes: usize, n: usize) -> Self {
        let l = format.layout(planes, n);
        match format {
            StateFormat::F32 => FmtState::F32(u.floats(l.values)),
            StateFormat::Bf16 => FmtState::Bf16(u.bf16s(l.values)),
            StateFormat::F16 => FmtState::F16(u.f16s(l.values)),
            _ => {
                let codes = (0..l.codes).map(|_| u.byte()).collect();
                // Scales: decoded floats (special values included), or plausible absmaxes.
                let scales = if u.bool() {
                    u.floats(l.scales)
                } else {
                    (0..l.scales)
                        .map(|_| f32::from(u.u16()) * 1e-3 + 1e-12)
                        .collect()
                };
                FmtState::Block(format, codes, scales)
            }
        }
    }

    fn state(&mut self) -> State<'_> {
        match self {
            FmtState::F32(v) => State::F32(v),
            FmtState::Bf16(v) => State::Bf16(v),
            FmtState::F16(v) => State::F16(v),
            FmtState::Block(StateFormat::Int8, codes, scales) => State::Int8 { codes, scales },
            FmtState::Block(StateFormat::Int4, codes, scales) => State::Int4 { codes, scales },
            FmtState::Block(_, codes, scales) => State::Fp8 { codes, scales },
        }
    }

    fn format(&self) -> StateFormat {
        match self {
            FmtState::F32(_) => StateFormat::F32,
            FmtState::Bf16(_) => StateFormat::Bf16,
            FmtState::F16(_) => StateFormat::F16,
            FmtState::Block(f, ..) => *f,
        }
    }

    fn piece(&self, planes: usize, n: usize, a: usize, b: usize) -> Self {
        let r = plane_ranges(self.format(), planes, n, a, b);
        fn gather<T: Copy>(v: &[T], rs: impl Iterator<Item = core::ops::Range<usize>>) -> Vec<T> {
            rs.flat_map(|r| v[r].to_vec()).collect()
        }
        let values = || r.iter().map(|x| x.0.clone());
        match self {
            FmtState::F32(v) => FmtState::F32(gather(v, values())),
            FmtState::Bf16(v) => FmtState::Bf16(gather(v, values())),
            FmtState::F16(v) => FmtState::F16(gather(v, values())),
            FmtState::Block(f, c, s) => FmtState::Block(
                *f,
                gather(c, values()),
                gather(s, r.iter().map(|x| x.1.clone())),
            ),
        }
    }

    fn put_piece(&mut self, planes: usize, n: usize, a: usize, b: usize, piece: &Self) {
        let r = plane_ranges(self.format(), planes, n, a, b);
        fn scatter<T: Copy>(
            v: &mut [T],
            rs: impl Iterator<Item = core::ops::Range<usize>>,
            src: &[T],
        ) {
            let mut at = 0;
            for r in rs {
                let len = r.len();
                v[r].copy_from_slice(&src[at..at + len]);
                at += len;
            }
        }
        let values = || r.iter().map(|x| x.0.clone());
        match (self, piece) {
            (FmtState::F32(d), FmtState::F32(s)) => scatter(d, values(), s),
            (FmtState::Bf16(d), FmtState::Bf16(s)) => scatter(d, values(), s),
            (FmtState::F16(d), FmtState::F16(s)) => scatter(d, values(), s),
            (FmtState::Block(_, dc, ds), FmtState::Block(_, sc, ss)) => {
                scatter(dc, values(), sc);
                scatter(ds, r.iter().map(|x| x.1.clone()), ss);
            }
            _ => unreachable!(),
        }
    }

    fn bits(&self, class: bool) -> Vec<Vec<u32>> {
        match self {
            FmtState::F32(v) => vec![bits32(v, class)],
            FmtState::Bf16(v) => vec![bf16_bits(v, class)],
            FmtState::F16(v) => vec![f16_bits(v, class)],
            FmtState::Block(f, c, s) => {
                let fp8 = *f == StateFormat::Fp8;
                let codes = c
                    .iter()
                    .map(|&x| {
                        u32::from(if class && fp8 && x & 0x7f == 0x7f {
                            0x7f
                        } else {
                            x
                        })
                    })
                    .collect();
                vec![codes, bits32(s, class)]
            }
        }
    }
}

fn fmt_bits(p: &FmtParams, s: &FmtState, class: bool) -> Vec<Vec<u32>> {
    let mut b = p.bits(class);
    b.extend(s.bits(class));
    b
}

/// The first differing buffer and index of two snapshots.
fn fmt_diff(a: &[Vec<u32>], b: &[Vec<u32>]) -> Option<(usize, usize)> {
    a.iter().zip(b).enumerate().find_map(|(k, (x, y))| {
        if x.len() != y.len() {
            return Some((k, usize::MAX));
        }
        x.iter().zip(y).position(|(u, v)| u != v).map(|i| (k, i))
    })
}

/// One storage-format case: an optimizer, parameter, gradient and state formats and buffers
/// decoded from the input; a few steps, each checking that a faulty call (wrong length,
/// misaligned piece) is refused and writes nothing, that every available backend gives the
/// scalar reference's bits (NaN as a class), and that two pieces cut at a block boundary give
/// the bits of the whole.
fn formats_case<O: Optimizer>(opt: O, u: &mut Input<'_>) {
    let format = STATE_FORMATS[usize::from(u.byte()) % STATE_FORMATS.len()];
    let block = format.block();
    let n = match u.byte() % 4 {
        // Around a multiple of the block.
        0 => (usize::from(u.byte() % 18) * block / 2 + usize::from(u.byte() % 5)).saturating_sub(2),
        _ => u.len(),
    };
    let planes = opt.state_len(1);
    let first: u64 = match u.byte() % 8 {
        0 => 0,
        1 => u64::from(u.u32()),
        b => u64::from(b),
    };
    let steps = 1 + u64::from(u.byte() % 3);
    // Where the tensor starts in a larger one (its SR element indices): block-aligned.
    let base = match u.byte() % 4 {
        0 => usize::from(u.u16()) * block,
        1 => (usize::MAX / block - usize::from(u.byte())) * block,
        _ => 0,
    };
    let grad_kind = u.byte();
    let mut params = FmtParams::decode(u, n);
    let mut state = if u.bool() {
        let mut s = FmtState::zeroed(format, planes, n);
        // Invalid hyperparameters: an error, and the zeroed buffers stay as they are.
        let _ = opt.init_state_in(s.state());
        s
    } else {
        FmtState::decode(u, format, planes, n)
    };
    let mut scalars = O::Scalars::default();
    for k in 0..steps {
        let t = first + k;
        let grads = FmtGrads::decode(u, grad_kind, n);
        let plan = match opt.plan(t, &scalars) {
            Ok(plan) => plan,
            Err(e) => {
                assert!(
                    t == 0 || opt.validate().is_err() || step_scalar_error(&e),
                    "{opt:?} step {t}: unexpected {e:?}"
                );
                return;
            }
        };

        // A faulty call is refused on every backend and writes nothing.
        if u.byte().is_multiple_of(4) {
            let (mut p, mut s, mut g, mut offset) =
                (params.clone(), state.clone(), grads.clone(), base);
            let delta = |u: &mut Input<'_>, len: usize| {
                if len == 0 || u.bool() {
                    len + 1 + usize::from(u.byte() % 3)
                } else {
                    len - 1 - usize::from(u.byte()) % len.min(3)
                }
            };
            match u.byte() % 5 {
                0 => g = g.resized(delta(u, n)),
                1 => match &mut p {
                    FmtParams::Kahan(_, c) => *c = resized(c, delta(u, n), bf16::ZERO),
                    _ => g = g.resized(delta(u, n)),
                },
                2 | 3 => match &mut s {
                    FmtState::F32(v) => *v = resized(v, delta(u, v.len()), 0.0),
                    FmtState::Bf16(v) => *v = resized(v, delta(u, v.len()), bf16::ZERO),
                    FmtState::F16(v) => *v = resized(v, delta(u, v.len()), f16::ZERO),
                    FmtState::Block(_, c, sc) => {
                        if u.bool() {
                            *c = resized(c, delta(u, c.len()), 0);
                        } else {
                            *sc = resized(sc, delta(u, sc.len()), 1.0);
                        }
                    }
                },
                _ => {
                    // An empty piece (a tensor's end), or an optimizer with no state planes
                    // (SGD without momentum), has no block to align.
                    if block > 1 && n > 0 && planes > 0 {
                        offset = base.wrapping_add(1 + usize::from(u.byte()) % (block - 1));
                    } else {
                        g = g.resized(delta(u, n));
                    }
                }
            }
            for backend in Backend::ALL {
                let before = fmt_bits(&p, &s, false);
                let r = plan.apply_piece(backend, offset, p.params(), g.grads(), s.state());
                match r {
                    Err(Error::LengthMismatch { .. } | Error::Misaligned { .. }) => {}
                    Err(Error::BackendUnavailable(b)) if !b.is_available() => {}
                    other => panic!("{opt:?} {backend} {format:?}: a faulty call gave {other:?}"),
                }
                assert_eq!(
                    fmt_diff(&before, &fmt_bits(&p, &s, false)),
                    None,
                    "{opt:?} {backend} {format:?}: written on error {r:?}"
                );
            }
        }

        let (mut p_ref, mut s_ref) = (params.clone(), state.clone());
        plan.apply_piece(
            Backend::Scalar,
            base,
            p_ref.params(),
            grads.grads(),
            s_ref.state(),
        )
        .unwrap();
        let want = fmt_bits(&p_ref, &s_ref, true);
        for backend in Backend::available().filter(|b| *b != Backend::Scalar) {
            let (mut p, mut s) = (params.clone(), state.clone());
            plan.apply_piece(backend, base, p.params(), grads.grads(), s.state())
                .unwrap();
            if let Some((buf, i)) = fmt_diff(&want, &fmt_bits(&p, &s, true)) {
                panic!(
                    "{opt:?} step {t} n {n} {format:?} {backend}: buffer {buf} index {i} differs from scalar"
                );
            }
        }

        // Two pieces, cut at a block boundary, give the bits of the whole.
        let cut = if n == 0 {
            0
        } else {
            usize::from(u.u16()) % (n / block + 1) * block
        };
        let (mut p, mut s) = (params.clone(), state.clone());
        for (a, b) in [(0, cut), (cut, n)] {
            let mut pp = p.slice(a, b);
            let mut sp = s.piece(planes, n, a, b);
            plan.apply_piece(
                Backend::best(),
                base.wrapping_add(a),
                pp.params(),
                grads.slice(a, b).grads(),
                sp.state(),
            )
            .unwrap();
            p.put(a, &pp);
            s.put_piece(planes, n, a, b, &sp);
        }
        if let Some((buf, i)) = fmt_diff(&want, &fmt_bits(&p, &s, true)) {
            panic!(
                "{opt:?} step {t} n {n} {format:?}: pieces at {cut} differ from the whole: buffer {buf} index {i}"
            );
        }

        params = p_ref;
        state = s_ref;
        scalars = plan.scalars_after();
    }
}

/// The storage formats: any optimizer (torchao's low-bit Adam included), any parameter,
/// gradient and state format.
pub fn formats(data: &[u8]) {
    let mut u = Input::new(data);
    let u = &mut u;
    match u.byte() % 13 {
        0 => formats_case(
            Sgd {
                lr: u.hyper(0.0, 1.0),
                momentum: u.hyper(0.0, 1.0),
                dampening: u.hyper(0.0, 1.0),
                weight_decay: u.hyper(0.0, 0.1),
                nesterov: u.bool(),
                maximize: u.bool(),
                ..Sgd::default()
            },
            u,
        ),
        1 => formats_case(
            Adam {
                lr: u.hyper(0.0, 1.0),
                betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
                eps: u.hyper(0.0, 1e-3),
                weight_decay: u.hyper(0.0, 0.1),
                amsgrad: u.bool(),
                maximize: u.bool(),
                decoupled_weight_decay: u.bool(),
                ..Adam::default()
            },
            u,
        ),
        2 => formats_case(
            Adagrad {
                lr: u.hyper(0.0, 1.0),
                lr_decay: u.hyper(0.0, 0.1),
                weight_decay: u.hyper(0.0, 0.1),
                initial_accumulator_value: u.hyper(0.0, 1.0),
                eps: u.hyper(0.0, 1e-3),
                maximize: u.bool(),
                ..Adagrad::default()
            },
            u,
        ),
        3 => formats_case(
            Adadelta {
                lr: u.hyper(0.0, 2.0),
                rho: u.hyper(0.0, 1.0),
                eps: u.hyper(0.0, 1e-3),
                weight_decay: u.hyper(0.0, 0.1),
                maximize: u.bool(),
                ..Adadelta::default()
            },
            u,
        ),
        4 => formats_case(
            RMSprop {
                lr: u.hyper(0.0, 1.0),
                alpha: u.hyper(0.0, 1.0),
                eps: u.hyper(0.0, 1e-3),
                weight_decay: u.hyper(0.0, 0.1),
                momentum: u.hyper(0.0, 1.0),
                centered: u.bool(),
                maximize: u.bool(),
                ..RMSprop::default()
            },
            u,
        ),
        5 => formats_case(
            Adamax {
                lr: u.hyper(0.0, 1.0),
                betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
                eps: u.hyper(0.0, 1e-3),
                weight_decay: u.hyper(0.0, 0.1),
                maximize: u.bool(),
                ..Adamax::default()
            },
            u,
        ),
        6 => formats_case(
            NAdam {
                lr: u.hyper(0.0, 1.0),
                betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
                eps: u.hyper(0.0, 1e-3),
                weight_decay: u.hyper(0.0, 0.1),
                momentum_decay: u.hyper(0.0, 0.1),
                decoupled_weight_decay: u.bool(),
                maximize: u.bool(),
                ..NAdam::default()
            },
            u,
        ),
        7 => formats_case(
            RAdam {
                lr: u.hyper(0.0, 1.0),
                betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
                eps: u.hyper(0.0, 1e-3),
                weight_decay: u.hyper(0.0, 0.1),
                decoupled_weight_decay: u.bool(),
                maximize: u.bool(),
                ..RAdam::default()
            },
            u,
        ),
        8 => formats_case(
            Lion {
                lr: u.hyper(0.0, 1.0),
                betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
                weight_decay: u.hyper(0.0, 0.1),
                maximize: u.bool(),
                ..Lion::default()
            },
            u,
        ),
        9 => {
            let opt = rprop_opt(u);
            formats_case(opt, u);
        }
        10 => {
            let opt = asgd_opt(u);
            formats_case(opt, u);
        }
        _ => {
            let class = [
                TorchaoAdam::adamw8bit(),
                TorchaoAdam::adam8bit(),
                TorchaoAdam::adamw4bit(),
                TorchaoAdam::adam4bit(),
                TorchaoAdam::adamw_fp8(),
                TorchaoAdam::adam_fp8(),
            ][usize::from(u.byte() % 6)];
            formats_case(
                TorchaoAdam {
                    lr: u.hyper(0.0, 1.0),
                    betas: (u.hyper(0.0, 1.0), u.hyper(0.0, 1.0)),
                    eps: u.hyper(0.0, 1e-3),
                    weight_decay: u.hyper(0.0, 0.1),
                    amsgrad: u.bool(),
                    ..class
                },
                u,
            );
        }
    }
}

/// The errors a plan may return for valid hyperparameters, at a step where torch raises too: a
/// per-step scalar beyond `f32` (torch's overflow on converting a Python float) or NAdam's
/// `1 − mu_product` reaching 0 (torch's `ZeroDivisionError`).
fn step_scalar_error(e: &Error) -> bool {
    match e {
        Error::InvalidHyperparameter { value, .. } => {
            value.is_finite() && value.abs() > f64::from(f32::MAX)
        }
        Error::InvalidCombination(msg) => msg.contains("mu_product"),
        _ => false,
    }
}
