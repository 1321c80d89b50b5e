//! Shared test support: a seeded generator that over-samples special values, bitwise
//! comparison with NaN as a class, and the backend sweep used by the property tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part"
)]
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use fused_optim::{Backend, Optimizer, StepPlan};

/// SplitMix64: tiny, seedable, good enough to pick test values.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// A value that is special (±0, subnormal, ±Inf, NaN, huge, tiny) about a third of the
    /// time and an ordinary value of either sign otherwise.
    pub fn special_f32(&mut self) -> f32 {
        match self.next_u64() % 24 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits((self.next_u64() as u32) & 0x007f_ffff | 1), // subnormal
            3 => -f32::from_bits((self.next_u64() as u32) & 0x007f_ffff | 1),
            4 => f32::INFINITY,
            5 => f32::NEG_INFINITY,
            6 => f32::NAN,
            7 => f32::from_bits(self.next_u64() as u32), // any bit pattern
            8 => 3.0e38,
            _ => {
                let mag = 10f64.powf(self.range(-6.0, 2.0));
                (if self.next_u64() & 1 == 0 { mag } else { -mag }) as f32
            }
        }
    }

    /// An ordinary finite value in [-scale, scale).
    pub fn finite_f32(&mut self, scale: f64) -> f32 {
        self.range(-scale, scale) as f32
    }

    pub fn vec_special(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.special_f32()).collect()
    }

    pub fn vec_finite(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| self.finite_f32(scale)).collect()
    }
}

/// Equal bits, or both NaN (NaN payloads and signs are not part of the contract).
pub fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The first index where two slices differ, NaN compared as a class.
pub fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    a.iter().zip(b).position(|(x, y)| !same(*x, *y))
}

/// Lengths that hit every tail of every lane width, and a few large ones.
pub fn lengths() -> impl Iterator<Item = usize> {
    (0..=80).chain([127, 1000, 4133])
}

/// Runs `steps` consecutive steps from `first_step` on `backend` and on the scalar reference,
/// for every length in [`lengths`], with special-heavy inputs, and asserts identical bits.
pub fn assert_backend_matches_scalar<O: Optimizer>(
    backend: Backend,
    opt: O,
    first_step: u64,
    steps: u64,
    seed: u64,
) {
    let mut rng = Rng(seed);
    for n in lengths() {
        let p0 = rng.vec_special(n);
        let s0 = rng.vec_special(opt.state_len(n));
        let grads: Vec<Vec<f32>> = (0..steps).map(|_| rng.vec_special(n)).collect();
        let (mut p_ref, mut s_ref) = (p0.clone(), s0.clone());
        let (mut p, mut s) = (p0, s0);
        let mut scalars = O::Scalars::default();
        for (k, g) in grads.iter().enumerate() {
            let t = first_step + k as u64;
            let plan = opt.plan(t, &scalars).unwrap();
            plan.apply_on(Backend::Scalar, &mut p_ref, g, &mut s_ref)
                .unwrap();
            plan.apply_on(backend, &mut p, g, &mut s).unwrap();
            scalars = plan.scalars_after();
            if let Some(i) = first_difference(&p_ref, &p) {
                panic!(
                    "{backend} params differ from scalar: {opt:?} step {t} n {n} i {i}: {} vs {} (seed {seed})",
                    p_ref[i], p[i]
                );
            }
            if let Some(i) = first_difference(&s_ref, &s) {
                panic!(
                    "{backend} state differs from scalar: {opt:?} step {t} n {n} i {i}: {} vs {} (seed {seed})",
                    s_ref[i], s[i]
                );
            }
        }
    }
}

/// Updates the tensor whole and in pieces (state planes split to match) and asserts that the
/// bits agree.
pub fn assert_chunk_invariant<O: Optimizer>(
    backend: Backend,
    opt: O,
    step: u64,
    n: usize,
    cuts: &[usize],
    seed: u64,
) {
    let mut rng = Rng(seed);
    let planes = opt.state_len(n).checked_div(n).unwrap_or(0);
    let p0 = rng.vec_special(n);
    let s0 = rng.vec_special(opt.state_len(n));
    let g = rng.vec_special(n);
    let plan = opt.plan(step, &O::Scalars::default()).unwrap();

    let (mut p_whole, mut s_whole) = (p0.clone(), s0.clone());
    plan.apply_on(backend, &mut p_whole, &g, &mut s_whole)
        .unwrap();

    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (n + 1)).collect();
    bounds.extend([0, n]);
    bounds.sort_unstable();
    let (mut p, mut s) = (p0, s0);
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mut piece_state: Vec<f32> = (0..planes)
            .flat_map(|j| s[j * n + a..j * n + b].to_vec())
            .collect();
        plan.apply_on(backend, &mut p[a..b], &g[a..b], &mut piece_state)
            .unwrap();
        for j in 0..planes {
            s[j * n + a..j * n + b].copy_from_slice(&piece_state[j * (b - a)..(j + 1) * (b - a)]);
        }
    }
    assert_eq!(
        first_difference(&p_whole, &p),
        None,
        "params, cuts {bounds:?}, {opt:?}"
    );
    assert_eq!(
        first_difference(&s_whole, &s),
        None,
        "state, cuts {bounds:?}, {opt:?}"
    );
}
