//! Gradient clipping with `torch.nn.utils.clip_grad_norm_`'s and `clip_grad_value_`'s
//! semantics, over any number of gradient slices.
//!
//! The total norm is a reduction, so its rounding depends on the order of the additions. This
//! module fixes that order (see [`NormType::partial`]) so that the norm, the coefficient and the
//! clipped gradients are the same bits on every backend, for every way of running it.

use crate::Backend;
use crate::dispatch::{run_fold, run_fold_mut};
use crate::error::{Error, non_negative};
use crate::kernel::Fold;
use crate::lane::{Lane, max_nan};

/// The number of consecutive values of one slice whose squares are summed together before
/// being added to the running total (see [`NormType::partial`]).
pub const NORM_BLOCK: usize = 1024;

/// Which norm to clip by: torch's `norm_type` `2.0` or `inf`. Other `p`-norms are not
/// supported.
///
/// # Example
/// ```
/// use fused_optim::clip::NormType;
/// let g = [[3.0f32, -4.0]];
/// assert_eq!(NormType::L2.total(&g), 5.0);
/// assert_eq!(NormType::Inf.total(&g), 4.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NormType {
    /// The Euclidean norm of all values together, `√(Σ x²)` (torch's default, `2.0`).
    #[default]
    L2,
    /// The largest absolute value, `max |x|` (`norm_type=inf`).
    Inf,
}

impl NormType {
    /// The partial reduction of some gradients: `Σ x²` for [`L2`](NormType::L2), `max |x|` for
    /// [`Inf`](NormType::Inf). Use it for one shard of a distributed model: all-reduce the
    /// partials (sum for L2, max for Inf), then [`finish`](NormType::finish) the result.
    ///
    /// **Summation order (L2), fixed and independent of the backend:** each slice is cut into
    /// blocks of [`NORM_BLOCK`] values (the last may be shorter). In a block, value `k` is
    /// squared exactly in f64 and added to accumulator `k mod 8` in increasing `k`; the block's
    /// sum is `((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7))`. Block sums are added in order, slice after
    /// slice, to a running f64 total that starts at 0. A NaN anywhere gives NaN, an infinity
    /// (and no NaN) +Inf. The max is exact, so its order does not matter (any NaN gives NaN).
    ///
    /// ```
    /// use fused_optim::clip::NormType;
    /// let shard_a = [[1.0f32, 2.0]];
    /// let shard_b = [[2.0f32]];
    /// let sum = NormType::L2.partial(&shard_a) + NormType::L2.partial(&shard_b); // all-reduce
    /// assert_eq!(NormType::L2.finish(sum), 3.0);
    /// ```
    #[inline]
    #[must_use]
    pub fn partial<G: AsRef<[f32]>>(self, grads: &[G]) -> f64 {
        self.partial_on(Backend::best(), grads).unwrap_or(f64::NAN)
    }

    /// As [`partial`](NormType::partial), on a named backend (identical results).
    ///
    /// ```
    /// use fused_optim::{Backend, clip::NormType};
    /// assert_eq!(NormType::Inf.partial_on(Backend::Scalar, &[[1.0f32, -7.5, 2.0]]), Ok(7.5));
    /// ```
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`].
    #[inline]
    pub fn partial_on<G: AsRef<[f32]>>(self, backend: Backend, grads: &[G]) -> Result<f64, Error> {
        if !backend.is_available() {
            return Err(Error::BackendUnavailable(backend));
        }
        match self {
            NormType::L2 => Ok(grads
                .iter()
                .fold(0.0, |total, g| sum_squares(g.as_ref(), total))),
            NormType::Inf => {
                let mut acc = 0.0f32;
                for g in grads {
                    acc = run_fold(backend, &MaxAbs, g.as_ref(), acc)?;
                }
                Ok(f64::from(acc))
            }
        }
    }

    /// The norm from a (reduced) partial: `√partial` for L2 (f64, correctly rounded), the
    /// partial itself for Inf. torch holds the norm in an `f32` tensor, so a norm beyond
    /// `f32`'s range is `+inf` here too (and clipping then zeroes the gradients, or fails
    /// with `error_if_nonfinite`).
    ///
    /// ```
    /// use fused_optim::clip::NormType;
    /// assert_eq!(NormType::L2.finish(16.0), 4.0);
    /// assert_eq!(NormType::Inf.finish(16.0), 16.0);
    /// assert_eq!(NormType::L2.total(&[[3.0e38f32, 3.0e38]]), f64::INFINITY); // torch: inf
    /// ```
    #[inline]
    #[must_use]
    pub fn finish(self, partial: f64) -> f64 {
        let norm = match self {
            NormType::L2 => libm::sqrt(partial),
            NormType::Inf => partial,
        };
        if norm.is_finite() && (norm as f32).is_infinite() {
            f64::INFINITY
        } else {
            norm
        }
    }

    /// The total norm of all the gradients together (torch's `get_total_norm`, which also
    /// returns 0 for no gradients): `finish(partial(grads))`.
    ///
    /// ```
    /// use fused_optim::clip::NormType;
    /// assert_eq!(NormType::L2.total(&[[3.0f32], [4.0]]), 5.0);
    /// assert_eq!(NormType::L2.total::<[f32; 1]>(&[]), 0.0);
    /// ```
    #[inline]
    #[must_use]
    pub fn total<G: AsRef<[f32]>>(self, grads: &[G]) -> f64 {
        self.finish(self.partial(grads))
    }
}

/// `Σ x²` of one slice added to `total` in the documented block order.
#[inline]
fn sum_squares(x: &[f32], total: f64) -> f64 {
    let mut total = total;
    for block in x.chunks(NORM_BLOCK) {
        let mut acc = [0.0f64; 8];
        let mut eights = block.chunks_exact(8);
        for c in &mut eights {
            for (a, v) in acc.iter_mut().zip(c) {
                let v = f64::from(*v);
                *a += v * v;
            }
        }
        for (a, v) in acc.iter_mut().zip(eights.remainder()) {
            let v = f64::from(*v);
            *a += v * v;
        }
        let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
        total += ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    }
    total
}

/// `max |x|`, NaN-propagating.
#[derive(Clone, Copy, Debug)]
struct MaxAbs;

impl Fold for MaxAbs {
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L) {
        (x, max_nan(acc, x.abs()))
    }
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        max_nan(a, b)
    }
}

/// `x · c` in place.
#[derive(Clone, Copy, Debug)]
struct Scale(f32);

impl Fold for Scale {
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L) {
        (x * L::splat(self.0), acc)
    }
    #[inline(always)]
    fn combine(a: f32, _: f32) -> f32 {
        a
    }
}

/// `clamp(x, −c, c)`, NaN-preserving (`clamp_min_` then `clamp_max_`, as torch).
#[derive(Clone, Copy, Debug)]
struct Clamp(f32);

impl Fold for Clamp {
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L) {
        let (lo, hi) = (L::splat(-self.0), L::splat(self.0));
        let x = L::select(x.lt(lo), lo, x);
        (L::select(hi.lt(x), hi, x), acc)
    }
    #[inline(always)]
    fn combine(a: f32, _: f32) -> f32 {
        a
    }
}

/// torch's clipping coefficient: `min(max_norm / (total_norm + 1e-6), 1)`, computed in f64
/// and rounded once to f32. A NaN total gives a NaN coefficient and an infinite one gives 0,
/// as in torch.
///
/// ```
/// use fused_optim::clip::clip_coefficient;
/// assert_eq!(clip_coefficient(1.0, 0.5)?, 1.0);              // small norms are left alone
/// assert_eq!(clip_coefficient(1.0, 4.0)?, (1.0 / (4.0 + 1e-6)) as f32);
/// assert!(clip_coefficient(1.0, f64::NAN)?.is_nan());
/// assert_eq!(clip_coefficient(1.0, f64::INFINITY)?, 0.0);
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for a negative or NaN `max_norm` (torch accepts a negative
/// one and flips every gradient's sign).
#[inline]
pub fn clip_coefficient(max_norm: f64, total_norm: f64) -> Result<f32, Error> {
    non_negative("max_norm", max_norm)?;
    let coef = max_norm / (total_norm + 1e-6);
    // `f64::min` would turn NaN into 1; torch.clamp propagates it.
    Ok((if coef > 1.0 { 1.0 } else { coef }) as f32)
}

/// torch's `clip_grads_with_norm_`: multiplies every gradient by
/// [`clip_coefficient`]`(max_norm, total_norm)`, unconditionally (a coefficient of 1 leaves
/// the values unchanged).
///
/// ```text
/// g = g · min(max_norm / (total_norm + 1e-6), 1)
/// ```
///
/// # Example
/// ```
/// use fused_optim::clip::{NormType, clip_grads_with_norm};
/// let mut g = [3.0f32, 4.0];
/// let total = NormType::L2.total(&[g]);     // 5 (e.g. all-reduced across shards)
/// clip_grads_with_norm(&mut [&mut g], 1.0, total)?;
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// As [`clip_coefficient`]; nothing is written on error.
#[inline]
pub fn clip_grads_with_norm<G: AsMut<[f32]>>(
    grads: &mut [G],
    max_norm: f64,
    total_norm: f64,
) -> Result<(), Error> {
    clip_grads_with_norm_on(Backend::best(), grads, max_norm, total_norm)
}

/// As [`clip_grads_with_norm`], on a named backend (identical results).
///
/// ```
/// use fused_optim::{Backend, clip::clip_grads_with_norm_on};
/// let mut g = [2.0f32; 17];
/// clip_grads_with_norm_on(Backend::Scalar, &mut [&mut g], 0.0, 1.0)?;
/// assert_eq!(g, [0.0; 17]);
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// As [`clip_grads_with_norm`], and [`Error::BackendUnavailable`].
#[inline]
pub fn clip_grads_with_norm_on<G: AsMut<[f32]>>(
    backend: Backend,
    grads: &mut [G],
    max_norm: f64,
    total_norm: f64,
) -> Result<(), Error> {
    let coef = clip_coefficient(max_norm, total_norm)?;
    scale_all(backend, grads, &Scale(coef))
}

fn scale_all<G: AsMut<[f32]>, K: Fold>(
    backend: Backend,
    grads: &mut [G],
    k: &K,
) -> Result<(), Error> {
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    for g in grads.iter_mut() {
        run_fold_mut(backend, k, g.as_mut(), 0.0)?;
    }
    Ok(())
}

/// torch's `clip_grad_norm_`: computes the total norm of all the gradients together, scales
/// them all by the clipping coefficient, and returns the total norm (before clipping).
///
/// ```text
/// total = norm_type.total(grads)                (f64, fixed order: see NormType::partial)
/// if error_if_nonfinite and total is NaN or ±Inf:  Err (nothing written)
/// g = g · f32(min(max_norm / (total + 1e-6), 1))   for every value, unconditionally
/// ```
///
/// With `error_if_nonfinite = false` (torch's default) a NaN norm makes every gradient NaN and
/// an infinite norm zeroes the finite values (and makes the infinite ones NaN), exactly as in
/// torch. torch returns the norm as an f32 tensor; this returns the f64 value it rounds from.
///
/// # Example
/// ```
/// use fused_optim::clip::{NormType, clip_grad_norm};
/// let (mut a, mut b) = ([3.0f32], [4.0f32]);
/// let total = clip_grad_norm(&mut [&mut a, &mut b], 1.0, NormType::L2, false)?;
/// assert_eq!(total, 5.0);
/// assert!((a[0] - 0.6).abs() < 1e-6 && (b[0] - 0.8).abs() < 1e-6);
///
/// let mut c = [f32::NAN];
/// assert!(clip_grad_norm(&mut [&mut c], 1.0, NormType::L2, true).is_err()); // nothing written
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// [`Error::NonFinite`] when `error_if_nonfinite` and the norm is not finite;
/// [`Error::InvalidHyperparameter`] for a negative or NaN `max_norm`. Nothing is written on
/// error.
#[inline]
pub fn clip_grad_norm<G: AsMut<[f32]> + AsRef<[f32]>>(
    grads: &mut [G],
    max_norm: f64,
    norm_type: NormType,
    error_if_nonfinite: bool,
) -> Result<f64, Error> {
    clip_grad_norm_on(
        Backend::best(),
        grads,
        max_norm,
        norm_type,
        error_if_nonfinite,
    )
}

/// As [`clip_grad_norm`], on a named backend (identical results).
///
/// ```
/// use fused_optim::{Backend, clip::{NormType, clip_grad_norm_on}};
/// let mut g = [1.0f32, -8.0, 2.0];
/// let total = clip_grad_norm_on(Backend::Scalar, &mut [&mut g], 4.0, NormType::Inf, false)?;
/// assert_eq!(total, 8.0);
/// assert_eq!(g, [1.0, -8.0, 2.0].map(|x| x * (4.0 / (8.0 + 1e-6)) as f32));
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// As [`clip_grad_norm`], and [`Error::BackendUnavailable`].
#[inline]
pub fn clip_grad_norm_on<G: AsMut<[f32]> + AsRef<[f32]>>(
    backend: Backend,
    grads: &mut [G],
    max_norm: f64,
    norm_type: NormType,
    error_if_nonfinite: bool,
) -> Result<f64, Error> {
    non_negative("max_norm", max_norm)?;
    let total = norm_type.finish(norm_type.partial_on(backend, grads)?);
    if error_if_nonfinite && !total.is_finite() {
        return Err(Error::NonFinite {
            what: "total_norm",
            value: total,
        });
    }
    clip_grads_with_norm_on(backend, grads, max_norm, total)?;
    Ok(total)
}

/// torch's `clip_grad_value_`: clamps every gradient to `[−clip_value, clip_value]` in place
/// (NaN stays NaN).
///
/// ```text
/// g = min(max(g, −c), c)      with c = f32(clip_value)
/// ```
///
/// # Example
/// ```
/// use fused_optim::clip::clip_grad_value;
/// let mut g = [-3.0f32, 0.5, 7.0, f32::NAN];
/// clip_grad_value(&mut [&mut g], 1.0)?;
/// assert_eq!(&g[..3], &[-1.0, 0.5, 1.0]);
/// assert!(g[3].is_nan());
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for a negative or NaN `clip_value` (torch accepts a
/// negative one, which sets every value to `−|c|`); nothing is written then.
#[inline]
pub fn clip_grad_value<G: AsMut<[f32]>>(grads: &mut [G], clip_value: f64) -> Result<(), Error> {
    clip_grad_value_on(Backend::best(), grads, clip_value)
}

/// As [`clip_grad_value`], on a named backend (identical results).
///
/// ```
/// use fused_optim::{Backend, clip::clip_grad_value_on};
/// let mut g = [5.0f32; 9];
/// clip_grad_value_on(Backend::Scalar, &mut [&mut g], 2.0)?;
/// assert_eq!(g, [2.0; 9]);
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// As [`clip_grad_value`], and [`Error::BackendUnavailable`].
#[inline]
pub fn clip_grad_value_on<G: AsMut<[f32]>>(
    backend: Backend,
    grads: &mut [G],
    clip_value: f64,
) -> Result<(), Error> {
    non_negative("clip_value", clip_value)?;
    scale_all(backend, grads, &Clamp(clip_value as f32))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::vec::Vec;

    /// SplitMix64 test values: ordinary values of many magnitudes, with specials if asked.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn value(&mut self, specials: bool) -> f32 {
            let r = self.next();
            match r % 64 {
                0 if specials => f32::NAN,
                1 if specials => f32::INFINITY,
                2 if specials => f32::NEG_INFINITY,
                3 => -0.0,
                4 => f32::from_bits((r >> 8) as u32 & 0x007f_ffff | 1),
                _ => {
                    let mag = libm::exp2(((r >> 8) % 40) as f64 - 20.0);
                    let frac = ((r >> 20) % 1_000_000) as f64 / 1_000_000.0 + 0.5;
                    (if r & 1 == 0 { mag * frac } else { -mag * frac }) as f32
                }
            }
        }
        fn slices(&mut self, specials: bool) -> Vec<Vec<f32>> {
            let count = (self.next() % 5) as usize;
            (0..count)
                .map(|_| {
                    let n = match self.next() % 4 {
                        0 => (self.next() % 20) as usize,
                        1 => 1024 + (self.next() % 40) as usize - 20,
                        _ => (self.next() % 5000) as usize,
                    };
                    (0..n).map(|_| self.value(specials)).collect()
                })
                .collect()
        }
    }

    #[test]
    fn a_norm_beyond_f32_is_infinite_as_in_torch() {
        // torch 2.15: clip_grad_norm_([3e38, 3e38], 1.0) returns inf and zeroes the gradients;
        // with error_if_nonfinite=True it raises.
        let mut g = [3.0e38f32, 3.0e38];
        assert_eq!(
            clip_grad_norm(&mut [&mut g], 1.0, NormType::L2, true),
            Err(Error::NonFinite {
                what: "total_norm",
                value: f64::INFINITY
            })
        );
        assert_eq!(g, [3.0e38, 3.0e38]);
        let total = clip_grad_norm(&mut [&mut g], 1.0, NormType::L2, false).unwrap();
        assert_eq!(total, f64::INFINITY);
        assert_eq!(g, [0.0, 0.0]);
        // Just inside f32's range, the norm stays finite.
        let mut h = [2.0e38f32, 2.0e38];
        let total = clip_grad_norm(&mut [&mut h], 1.0, NormType::L2, false).unwrap();
        assert!(total.is_finite() && (total as f32).is_finite());
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// The documented order, written from the description: slice by slice, block `b` of
    /// 1024, accumulator `k mod 8`, pairwise combination, running total.
    fn documented_order(grads: &[Vec<f32>]) -> f64 {
        let mut total = 0.0f64;
        for g in grads {
            let blocks = g.len().div_ceil(1024);
            for b in 0..blocks {
                let mut a = [0.0f64; 8];
                for k in b * 1024..g.len().min((b + 1) * 1024) {
                    a[(k - b * 1024) % 8] += f64::from(g[k]) * f64::from(g[k]);
                }
                total += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
            }
        }
        total
    }

    /// Neumaier-compensated sum of the exact f64 squares: an oracle far more accurate than
    /// the fixed-order sum.
    fn oracle_sum_squares(grads: &[Vec<f32>]) -> f64 {
        let (mut sum, mut comp) = (0.0f64, 0.0f64);
        for &x in grads.iter().flatten() {
            let v = f64::from(x) * f64::from(x);
            let t = sum + v;
            comp += if sum.abs() >= v.abs() {
                (sum - t) + v
            } else {
                (v - t) + sum
            };
            sum = t;
        }
        sum + comp
    }

    #[test]
    fn l2_norm_follows_the_documented_order_and_the_oracle() {
        let mut rng = Rng(1);
        for _ in 0..200 {
            let g = rng.slices(false);
            let partial = NormType::L2.partial(&g);
            assert_eq!(partial.to_bits(), documented_order(&g).to_bits());
            let oracle = oracle_sum_squares(&g);
            let n = g.iter().map(Vec::len).sum::<usize>() as f64;
            // each of the n additions rounds by at most 2^-53 of the running total
            assert!(
                (partial - oracle).abs() <= oracle * n.max(1.0) * 1.2e-16,
                "{partial} {oracle}"
            );
            let inf = g.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()));
            assert_eq!(NormType::Inf.partial(&g), f64::from(inf));
        }
    }

    #[test]
    fn every_backend_clips_to_the_same_bits() {
        let mut rng = Rng(2);
        for round in 0..150 {
            let g0 = rng.slices(round % 3 == 0);
            let max_norm = [0.0, 1e-3, 1.0, 1e6][round % 4];
            for norm_type in [NormType::L2, NormType::Inf] {
                let want_total = norm_type.finish(match norm_type {
                    NormType::L2 => documented_order(&g0),
                    NormType::Inf => g0
                        .iter()
                        .flatten()
                        .fold(0.0f32, |m, &x| {
                            if m.is_nan() || x.is_nan() {
                                f32::NAN
                            } else {
                                m.max(x.abs())
                            }
                        })
                        .into(),
                });
                let coef = max_norm / (want_total + 1e-6);
                let coef = (if coef > 1.0 { 1.0 } else { coef }) as f32;
                for backend in Backend::available() {
                    let mut g = g0.clone();
                    let total =
                        clip_grad_norm_on(backend, &mut g, max_norm, norm_type, false).unwrap();
                    assert!(
                        total.to_bits() == want_total.to_bits()
                            || total.is_nan() && want_total.is_nan()
                    );
                    for (a, b) in g.iter().flatten().zip(g0.iter().flatten()) {
                        assert!(
                            same(*a, b * coef),
                            "{backend} {norm_type:?}: {a} vs {b}·{coef}"
                        );
                    }
                    let mut v = g0.clone();
                    clip_grad_value_on(backend, &mut v, 0.75).unwrap();
                    for (a, b) in v.iter().flatten().zip(g0.iter().flatten()) {
                        let want = if b.is_nan() { *b } else { b.clamp(-0.75, 0.75) };
                        assert!(same(*a, want), "{backend}: clamp({b}) = {a}");
                    }
                }
            }
        }
    }

    #[test]
    fn non_finite_norms_follow_torch_or_error_before_writing() {
        for bad in [f32::NAN, f32::INFINITY] {
            let g0 = [std::vec![1.0f32, -2.0], std::vec![bad, 3.0]];
            let mut g = g0.clone();
            let e = clip_grad_norm(&mut g, 1.0, NormType::L2, true).unwrap_err();
            assert!(matches!(
                e,
                Error::NonFinite {
                    what: "total_norm",
                    ..
                }
            ));
            assert_eq!(std::format!("{g:?}"), std::format!("{g0:?}"));
            let total = clip_grad_norm(&mut g, 1.0, NormType::L2, false).unwrap();
            if bad.is_nan() {
                assert!(total.is_nan() && g.iter().flatten().all(|x| x.is_nan()));
            } else {
                // coefficient 0: finite values become ±0, the infinite one NaN (inf · 0)
                assert_eq!(total, f64::INFINITY);
                assert_eq!(g[0][0].to_bits(), 0.0f32.to_bits());
                assert_eq!(g[0][1].to_bits(), (-0.0f32).to_bits());
                assert!(g[1][0].is_nan());
            }
        }
        // no gradients: norm 0, nothing to do
        let mut none: [&mut [f32]; 0] = [];
        assert_eq!(clip_grad_norm(&mut none, 1.0, NormType::L2, true), Ok(0.0));
        let mut g = [1.0f32];
        assert!(clip_grad_norm(&mut [&mut g], -1.0, NormType::L2, false).is_err());
        assert!(clip_grad_value(&mut [&mut g], f64::NAN).is_err());
        assert_eq!(g, [1.0]);
    }
}
