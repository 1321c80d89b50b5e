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
    Adadelta, Adagrad, Adam, Adamax, Backend, Lion, NAdam, Optimizer, RAdam, RMSprop, Sgd, StepPlan,
};

/// Every target, by name, for the corpus replay.
/// A fuzz target: decodes and checks one input.
pub type Target = fn(&[u8]);

pub const TARGETS: [(&str, Target); 11] = [
    ("sgd", sgd),
    ("adam", adam),
    ("adagrad", adagrad),
    ("adadelta", adadelta),
    ("rmsprop", rmsprop),
    ("adamax", adamax),
    ("nadam", nadam),
    ("radam", radam),
    ("lion", lion),
    ("clip", clip),
    ("unscale", unscale),
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
        opt.init_state(&mut state);
    }
    let mut scalars = O::Scalars::default();
    for k in 0..steps {
        let t = first + k;
        let grads = u.floats(n);
        let plan = match opt.plan(t, &scalars) {
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
        if grads.iter().all(|x| x.is_finite()) {
            assert_eq!(
                (r, step, sc),
                (StepOutcome::Stepped, t, plan.scalars_after())
            );
            assert_same("step_if_finite params", &p_ref, &p[0]);
            assert_same("step_if_finite state", &s_ref, &s[0]);
        } else {
            assert_eq!((r, step, sc), (StepOutcome::Skipped, t - 1, scalars));
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
    let found = g0.iter().flatten().any(|x| !x.is_finite());
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
