//! The lane abstraction: the handful of IEEE-exact operations a kernel body may use.
//!
//! Every optimizer writes its per-element update once, generic over [`Lane`]. The same body is
//! instantiated for `f32` (the scalar reference, and the tail of every SIMD pass), for
//! `wide::f32x8` (the portable path) and, inside the dispatch module, for AVX2 and AVX-512F
//! registers. Because every method below is a single correctly rounded IEEE operation (or a
//! compare/select), and Rust never contracts `a * b + c` into an FMA, each backend computes the
//! same bits as the scalar reference.
//!
//! What is deliberately *not* here: `mul_add` (its rounding depends on the target), approximate
//! reciprocals (`rcpps`, `rsqrtps`), and anything transcendental.

use core::ops::{Add, Div, Mul, Neg, Sub};

use half::{bf16, f16};

use crate::error::{Error, scalar_f32};
use crate::format::{BytePlanes, convert};

/// A vector (or scalar) of `f32` lanes with exactly rounded arithmetic.
///
/// Implementations must make every method equal, lane by lane, to the `f32` implementation.
pub(crate) trait Lane:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// Lane mask produced by comparisons and consumed by [`Lane::select`].
    type Mask: Copy;
    /// Number of `f32` values in one lane vector.
    const LANES: usize;

    /// Every lane set to `x`.
    fn splat(x: f32) -> Self;
    /// Loads the first `LANES` values of `src`. Callers pass slices of exactly `LANES` values;
    /// a shorter slice reads as zeros (never panics).
    fn load(src: &[f32]) -> Self;
    /// Stores into the first `LANES` values of `dst` (callers pass exactly `LANES`).
    fn store(self, dst: &mut [f32]);
    /// Correctly rounded square root.
    fn sqrt(self) -> Self;
    /// Absolute value (clears the sign bit; NaN stays NaN).
    fn abs(self) -> Self;
    /// `self < rhs`, false when either side is NaN.
    fn lt(self, rhs: Self) -> Self::Mask;
    /// `self != self`.
    fn is_nan(self) -> Self::Mask;
    /// Per lane: `if mask { t } else { f }`.
    fn select(mask: Self::Mask, t: Self, f: Self) -> Self;

    /// A hint to bring the cache line holding `at` closer (any address: a prefetch never
    /// faults and changes nothing the program can see). Backends without one do nothing.
    #[inline(always)]
    fn prefetch<T>(_at: *const T) {}

    /// `out[i] = values[codes[i]] · scale` for an 8-bit code table given both as `f32` values
    /// and as byte planes (the same bits). The default gathers from `values`; a backend with
    /// byte permutes overrides it (AVX-512 VBMI), with the same bits.
    #[inline(always)]
    fn dequantize8(
        values: &[f32; 256],
        _bytes: &BytePlanes,
        codes: &[u8],
        scale: f32,
        out: &mut [f32],
    ) {
        crate::format::dequantize8(values, codes, scale, out);
    }

    /// Whether [`Lane::lookup16`] is one register permute, so that a search over a 16-entry
    /// table beats comparing with every entry.
    const FAST_LOOKUP16: bool = false;

    /// `table[idx]` in every lane, for `idx` a whole number in `0..16` held as `f32` (others:
    /// any value). The default goes through memory; a backend with a register permute overrides
    /// it together with [`Lane::FAST_LOOKUP16`].
    #[inline(always)]
    fn lookup16(table: &[f32; 16], idx: Self) -> Self {
        let mut buf = [0.0f32; 16];
        let lanes = buf.get_mut(..Self::LANES).unwrap_or_default();
        idx.store(lanes);
        for x in lanes.iter_mut() {
            // `as usize` saturates (NaN to 0); the mask keeps the index in the table.
            *x = table.get((*x as usize) & 15).copied().unwrap_or(0.0);
        }
        Self::load(lanes)
    }

    /// `out[i] = table[code i] · scale` for the 4-bit codes packed two per byte in `bytes` (the
    /// first in the high nibble). The default gathers; a backend with a 16-entry register
    /// permute overrides it (AVX-512F), with the same bits.
    #[inline(always)]
    fn dequantize4(table: &[f32; 16], bytes: &[u8], scale: f32, out: &mut [f32]) {
        crate::format::dequantize4(table, bytes, scale, out);
    }

    /// Widens the first `LANES` bf16 values (exact). Backends with a faster path override it.
    #[inline(always)]
    fn load_bf16(src: &[bf16]) -> Self {
        widen(src, convert::bf16_to_f32)
    }
    /// Rounds to nearest even into the first `LANES` bf16 values.
    #[inline(always)]
    fn store_bf16(self, dst: &mut [bf16]) {
        narrow(self, dst, convert::f32_to_bf16);
    }
    /// Widens the first `LANES` f16 values (exact).
    #[inline(always)]
    fn load_f16(src: &[f16]) -> Self {
        widen(src, convert::f16_to_f32)
    }
    /// Rounds to nearest even into the first `LANES` f16 values.
    #[inline(always)]
    fn store_f16(self, dst: &mut [f16]) {
        narrow(self, dst, convert::f32_to_f16);
    }
}

/// The portable widening behind [`Lane::load_bf16`] and [`Lane::load_f16`].
#[inline(always)]
fn widen<L: Lane, E: Copy>(src: &[E], f: impl Fn(E) -> f32) -> L {
    let mut a = [0.0f32; 16];
    for (d, s) in a.iter_mut().zip(src.iter().take(L::LANES)) {
        *d = f(*s);
    }
    L::load(a.get(..L::LANES).unwrap_or_default())
}

/// The portable narrowing behind [`Lane::store_bf16`] and [`Lane::store_f16`].
#[inline(always)]
fn narrow<L: Lane, E>(v: L, dst: &mut [E], f: impl Fn(f32) -> E) {
    let mut a = [0.0f32; 16];
    v.store(a.get_mut(..L::LANES).unwrap_or_default());
    for (d, s) in dst.iter_mut().take(L::LANES).zip(a) {
        *d = f(s);
    }
}

impl Lane for f32 {
    type Mask = bool;
    const LANES: usize = 1;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        src.first().copied().unwrap_or(0.0)
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        if let Some(d) = dst.first_mut() {
            *d = self;
        }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        crate::dispatch::sqrt_f32(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        libm::fabsf(self)
    }
    #[inline(always)]
    fn lt(self, rhs: Self) -> bool {
        self < rhs
    }
    #[inline(always)]
    #[allow(clippy::eq_op, reason = "the NaN test")]
    fn is_nan(self) -> bool {
        self != self
    }
    #[inline(always)]
    fn select(mask: bool, t: Self, f: Self) -> Self {
        if mask { t } else { f }
    }
}

use wide::f32x8;

/// True when `wide` uses SIMD instructions on this target (SSE on x86, simd128 on wasm, NEON on
/// aarch64). Elsewhere (Arm M-profile, RISC-V, ...) wide emulates its vectors with arrays, and
/// its `sqrt` becomes a software f64 square root that is not guaranteed to round like `sqrtf`.
const WIDE_SIMD: bool = cfg!(any(
    target_feature = "sse",
    target_feature = "simd128",
    all(target_feature = "neon", target_arch = "aarch64")
));

/// The lane type of [`Backend::Portable`](crate::Backend::Portable): `wide::f32x8` where wide
/// has SIMD instructions, and the scalar loop elsewhere, where an 8-wide array emulation would
/// cost flash and stack for no speed (the results are the same bits either way).
#[cfg(any(
    target_feature = "sse",
    target_feature = "simd128",
    all(target_feature = "neon", target_arch = "aarch64")
))]
pub(crate) type PortableLane = f32x8;
/// See the SIMD variant above.
#[cfg(not(any(
    target_feature = "sse",
    target_feature = "simd128",
    all(target_feature = "neon", target_arch = "aarch64")
)))]
pub(crate) type PortableLane = f32;

impl Lane for f32x8 {
    type Mask = f32x8;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        f32x8::splat(x)
    }
    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        match src.first_chunk::<8>() {
            Some(a) => f32x8::new(*a),
            None => f32x8::ZERO,
        }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        if let Some(d) = dst.first_chunk_mut::<8>() {
            *d = self.to_array();
        }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        if WIDE_SIMD {
            f32x8::sqrt(self)
        } else {
            f32x8::new(self.to_array().map(crate::dispatch::sqrt_f32))
        }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x8::abs(self)
    }
    #[inline(always)]
    fn lt(self, rhs: Self) -> Self::Mask {
        self.simd_lt(rhs)
    }
    #[inline(always)]
    fn is_nan(self) -> Self::Mask {
        f32x8::is_nan(self)
    }
    #[inline(always)]
    fn select(mask: Self::Mask, t: Self, f: Self) -> Self {
        // Masks are all-ones or all-zeros per lane, so a bit select is a lane select.
        mask.bitselect(t, f)
    }
}

/// `torch.maximum`: the larger of `a` and `b`, NaN if either is NaN.
#[inline(always)]
pub(crate) fn max_nan<L: Lane>(a: L, b: L) -> L {
    let m = L::select(a.lt(b), b, a);
    L::select(b.is_nan(), b, m)
}

/// `torch.sign` on CPU: `1` for positive, `-1` for negative, `0` for ±0 **and for NaN**.
#[inline(always)]
pub(crate) fn sign_torch<L: Lane>(x: L) -> L {
    let zero = L::splat(0.0);
    let pos = L::select(zero.lt(x), L::splat(1.0), zero);
    L::select(x.lt(zero), L::splat(-1.0), pos)
}

/// `torch.lerp(a, b, w)` without FMA, with the weight's branch decided once per step.
///
/// torch computes `a + w·(b − a)` for `|w| < 0.5` and `b + (w − 1)·(b − a)` otherwise
/// (each as an FMA); this crate rounds the product and the sum separately.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Lerp {
    /// `w` when `|w| < 0.5`, else `w − 1` (computed in f32, as torch does).
    coeff: f32,
    /// Whether the base is `a` (small weight) or `b`.
    from_start: bool,
}

impl Lerp {
    /// Prepares `lerp(·, ·, w)` for a weight already rounded to f32.
    #[inline]
    pub(crate) fn new(w: f32) -> Self {
        let from_start = libm::fabsf(w) < 0.5;
        Lerp {
            coeff: if from_start { w } else { w - 1.0 },
            from_start,
        }
    }

    /// Prepares `lerp(·, ·, w)` as torch's compiled (inductor) graph does for a Python-float
    /// weight: `a + (b − a)·f32(w)` for `|w| < 0.5`, else `b + (b − a)·f32(−(1 − w))`, with
    /// `1 − w` taken in f64.
    #[inline]
    pub(crate) fn compiled(w: f64) -> Self {
        let from_start = libm::fabs(w) < 0.5;
        Lerp {
            coeff: if from_start {
                w as f32
            } else {
                (-(1.0 - w)) as f32
            },
            from_start,
        }
    }

    /// `lerp(a, b, w)` on lanes.
    #[inline(always)]
    pub(crate) fn apply<L: Lane>(self, a: L, b: L) -> L {
        let base = if self.from_start { a } else { b };
        base + L::splat(self.coeff) * (b - a)
    }
}

/// What every optimizer does to the gradient before its own update, decided once per step:
/// negate it for `maximize`, then apply torch's weight decay, either as an L2 term on the
/// gradient (`g + wd·p`) or decoupled on the parameter (`p·(1 − lr·wd)`, AdamW-style).
/// A weight decay of zero does nothing at all, as in torch (no `+ 0·p`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GradPrep {
    maximize: bool,
    decay: Decay,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Decay {
    None,
    L2(f32),
    Decoupled(f32),
}

impl GradPrep {
    /// L2 weight decay on the gradient.
    #[inline]
    pub(crate) fn l2(maximize: bool, weight_decay: f64) -> Self {
        let decay = if weight_decay == 0.0 {
            Decay::None
        } else {
            Decay::L2(weight_decay as f32)
        };
        GradPrep { maximize, decay }
    }

    /// L2 or decoupled weight decay; the decoupled factor `1 − lr·wd` is computed in f64.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] when `1 − lr·wd` is beyond `f32` (torch's overflow
    /// error on `param.mul_(1 - lr * weight_decay)`).
    #[inline]
    pub(crate) fn new(
        maximize: bool,
        lr: f64,
        weight_decay: f64,
        decoupled: bool,
    ) -> Result<Self, Error> {
        if decoupled && weight_decay != 0.0 {
            let factor = scalar_f32("1 - lr * weight_decay", 1.0 - lr * weight_decay)?;
            return Ok(GradPrep {
                maximize,
                decay: Decay::Decoupled(factor),
            });
        }
        Ok(Self::l2(maximize, weight_decay))
    }

    /// Returns the (possibly decayed) parameter and the gradient to use.
    #[inline(always)]
    pub(crate) fn apply<L: Lane>(self, p: L, g: L) -> (L, L) {
        let g = if self.maximize { -g } else { g };
        match self.decay {
            Decay::None => (p, g),
            Decay::L2(wd) => (p, g + p * L::splat(wd)),
            Decay::Decoupled(f) => (p * L::splat(f), g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_nan_propagates_either_side() {
        assert!(max_nan(f32::NAN, 1.0).is_nan());
        assert!(max_nan(1.0, f32::NAN).is_nan());
        assert_eq!(max_nan(1.0f32, 2.0), 2.0);
        assert_eq!(max_nan(3.0f32, 2.0), 3.0);
        assert_eq!(max_nan(f32::NEG_INFINITY, -1.0), -1.0);
    }

    #[test]
    fn sign_matches_torch_cpu() {
        assert_eq!(sign_torch(2.5f32), 1.0);
        assert_eq!(sign_torch(-1e-40f32), -1.0);
        assert_eq!(sign_torch(0.0f32).to_bits(), 0.0f32.to_bits());
        assert_eq!(sign_torch(-0.0f32).to_bits(), 0.0f32.to_bits());
        assert_eq!(sign_torch(f32::NAN), 0.0);
        assert_eq!(sign_torch(f32::INFINITY), 1.0);
    }

    #[test]
    fn lerp_both_branches() {
        // w = 0.1: a + 0.1 (b - a)
        assert_eq!(Lerp::new(0.1).apply(1.0f32, 3.0), 1.0 + 0.1 * 2.0);
        // w = 0.75: b + (0.75 - 1)(b - a) = 3 - 0.5
        assert_eq!(Lerp::new(0.75).apply(1.0f32, 3.0), 2.5);
        // w = 1 lands exactly on b, w = 0 exactly on a.
        assert_eq!(Lerp::new(1.0).apply(1.0f32, 3.0), 3.0);
        assert_eq!(Lerp::new(0.0).apply(1.0f32, 3.0), 1.0);
    }

    #[test]
    fn portable_lane_matches_scalar_ops() {
        let xs = [
            0.0f32,
            -0.0,
            1.5,
            -2.25,
            f32::MIN_POSITIVE / 4.0,
            f32::INFINITY,
            f32::NAN,
            3.0,
        ];
        let v = <f32x8 as Lane>::load(&xs);
        let mut out = [0.0f32; 8];
        v.sqrt().store(&mut out);
        for (x, o) in xs.iter().zip(out) {
            let s = libm::sqrtf(*x);
            assert!(s.to_bits() == o.to_bits() || (s.is_nan() && o.is_nan()));
        }
        max_nan(v, <f32x8 as Lane>::splat(1.0)).store(&mut out);
        for (x, o) in xs.iter().zip(out) {
            let s = max_nan(*x, 1.0);
            assert!(s.to_bits() == o.to_bits() || (s.is_nan() && o.is_nan()));
        }
    }
}
