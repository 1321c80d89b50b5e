//! The memory driver shared by every optimizer: one fused pass over parameters, gradients and
//! state, in lane-sized chunks, with the scalar reference on the few elements before and after
//! the vector loop.
//!
//! The arithmetic lives in each optimizer's [`Kernel::update`], a pure function of lane values.
//! The driver owns loading and storing, so other storage formats (bf16 or block-quantized
//! state, bf16 parameters) can reuse the same `update` with a different driver.

use crate::Error;
use crate::lane::Lane;

/// A per-element optimizer update with `S` state values per parameter.
pub(crate) trait Kernel<const S: usize> {
    /// Whether each state plane may hold negative values; block-quantized state uses the signed
    /// code table for those and the unsigned one (finer near zero) for the others.
    const SIGNED: [bool; S];

    /// Updates one lane vector: returns the new parameters and rewrites `state` in place.
    fn update<L: Lane>(&self, p: L, g: L, state: &mut [L; S]) -> L;
}

/// How one element is stored: `f32`, or a 16-bit float widened on load and rounded to nearest
/// even on store (exact integer conversions, see `format::convert`).
pub(crate) trait Elem: Copy {
    /// Widens to `f32` (exact).
    fn to_f32(self) -> f32;
    /// Rounds from `f32`.
    fn from_f32(x: f32) -> Self;

    /// The first `L::LANES` values as a lane vector.
    fn load<L: Lane>(src: &[Self]) -> L;
    /// Stores a lane vector into the first `L::LANES` values.
    fn store<L: Lane>(v: L, dst: &mut [Self]);
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn load<L: Lane>(src: &[Self]) -> L {
        L::load(src)
    }
    #[inline(always)]
    fn store<L: Lane>(v: L, dst: &mut [Self]) {
        v.store(dst);
    }
}

/// Applies `k` to every element. All slices must have the same length (checked by the caller;
/// a shorter buffer only shortens the pass, it never panics). Parameters, gradients and state
/// may each be stored as `f32`, bf16 or f16 ([`Elem`]): each element is computed in `f32` and
/// rounded once per store.
#[inline(always)]
pub(crate) fn drive<L: Lane, K: Kernel<S>, const S: usize, P: Elem, G: Elem, T: Elem>(
    k: &K,
    p: &mut [P],
    g: &[G],
    s: [&mut [T]; S],
) {
    drive_with::<L, K, S, P, G, T>(k, p, g, s, true);
}

/// [`drive`], with the alignment head optional: the staged driver's tiles of 256 values skip
/// it, since a head and a tail of scalar elements in every tile would cost more than vector
/// accesses that straddle cache lines.
#[inline(always)]
pub(crate) fn drive_with<L: Lane, K: Kernel<S>, const S: usize, P: Elem, G: Elem, T: Elem>(
    k: &K,
    p: &mut [P],
    g: &[G],
    s: [&mut [T]; S],
    align: bool,
) {
    // Every buffer cut to the same length by one check up front, so the vector loop indexes
    // all of them with no per-plane Option or bounds check.
    let n = s.iter().fold(p.len().min(g.len()), |n, b| n.min(b.len()));
    // A scalar head until the parameters (read and written) sit on a vector boundary, so the
    // vector loop's loads and stores of `p` never split a cache line. Any split of a tensor
    // gives the same bits (chunk invariance), so this changes only the speed.
    // Small tensors skip it: there, vectors matter more than alignment.
    let head = if align && n >= 8 * L::LANES {
        p.as_ptr()
            .align_offset(L::LANES * core::mem::size_of::<P>())
            .min(n)
    } else {
        0
    };
    // `head <= n`: nothing wraps (wrapping ops keep overflow-check builds free of panic paths).
    let full = head.wrapping_add(n.wrapping_sub(head) / L::LANES * L::LANES);
    let mut s = s;
    scalar_pass(k, p, g, &mut s, 0, head);
    vector_pass::<L, K, S, P, G, T>(k, p, g, &mut s, head, full);
    scalar_pass(k, p, g, &mut s, full, n);
}

/// How many elements ahead the vector loop prefetches.
const PREFETCH_ELEMS: usize = 256;

/// `k` on lane vectors over `lo..hi` (`hi − lo` a multiple of the lane width).
#[inline(always)]
fn vector_pass<L: Lane, K: Kernel<S>, const S: usize, P: Elem, G: Elem, T: Elem>(
    k: &K,
    p: &mut [P],
    g: &[G],
    s: &mut [&mut [T]; S],
    lo: usize,
    hi: usize,
) {
    let (Some(pv), Some(gv)) = (p.get_mut(lo..hi), g.get(lo..hi)) else {
        return;
    };
    let mut planes: [&mut [T]; S] = core::array::from_fn(|_| <&mut [T]>::default());
    for (dst, b) in planes.iter_mut().zip(s.iter_mut()) {
        match b.get_mut(lo..hi) {
            Some(v) => *dst = v,
            None => return,
        }
    }
    let len = pv.len();
    // `step_by` and a wrapping add: no overflow panic path even with overflow checks on.
    for i in (0..len).step_by(L::LANES) {
        // Software prefetch a fixed distance ahead on every stream: the update's long
        // dependency chain (two divisions and a square root) leaves fewer loads in flight than
        // streaming needs. Addresses past the end are harmless (a hint, never a read).
        let ahead = i.wrapping_add(PREFETCH_ELEMS);
        L::prefetch(pv.as_ptr().wrapping_add(ahead));
        L::prefetch(gv.as_ptr().wrapping_add(ahead));
        for b in planes.iter() {
            L::prefetch(b.as_ptr().wrapping_add(ahead));
        }
        let r = i..i.wrapping_add(L::LANES);
        let (Some(pp), Some(gg)) = (pv.get_mut(r.clone()), gv.get(r.clone())) else {
            break;
        };
        // A plain loop rather than `array::from_fn`: a closure may stay out of line, outside
        // the backend's target features, and then its intrinsics become calls.
        let mut st = [L::splat(0.0); S];
        for (v, b) in st.iter_mut().zip(planes.iter()) {
            if let Some(c) = b.get(r.clone()) {
                *v = T::load(c);
            }
        }
        let np = k.update(P::load(pp), G::load(gg), &mut st);
        P::store(np, pp);
        for (v, b) in st.iter().zip(planes.iter_mut()) {
            if let Some(d) = b.get_mut(r.clone()) {
                T::store(*v, d);
            }
        }
    }
}

/// `k` on single `f32` values over `lo..hi` (the scalar reference's arithmetic).
#[inline(always)]
fn scalar_pass<K: Kernel<S>, const S: usize, P: Elem, G: Elem, T: Elem>(
    k: &K,
    p: &mut [P],
    g: &[G],
    s: &mut [&mut [T]; S],
    lo: usize,
    hi: usize,
) {
    let (Some(pr), Some(gr)) = (p.get_mut(lo..hi), g.get(lo..hi)) else {
        return;
    };
    for (i, (pp, gg)) in (lo..hi).zip(pr.iter_mut().zip(gr)) {
        let mut st: [f32; S] = core::array::from_fn(|j| match s.get(j) {
            Some(b) => b.get(i).map_or(0.0, |x| x.to_f32()),
            None => 0.0,
        });
        *pp = P::from_f32(k.update(pp.to_f32(), gg.to_f32(), &mut st));
        for (v, b) in st.iter().zip(s.iter_mut()) {
            if let Some(d) = b.get_mut(i) {
                *d = T::from_f32(*v);
            }
        }
    }
}

/// A per-element pass over one buffer that may rewrite each value in place and folds every
/// value into an accumulator (gradient unscaling with a non-finite check, clipping, max |x|).
///
/// `fold` and `combine` must be exactly associative and commutative on the accumulator (NaN as
/// a class): the vector accumulator's lanes are combined in an order that depends on the lane
/// width, so only such reductions (max, "any NaN") give the same bits on every backend.
pub(crate) trait Fold {
    /// The accumulator's starting value (an identity of `combine`).
    const INIT: f32;
    /// Returns the value to store back (ignored by read-only passes) and the new accumulator.
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L);
    /// Combines two accumulators.
    fn combine(a: f32, b: f32) -> f32;
}

/// Combines the lanes of a vector accumulator with [`Fold::combine`].
#[inline(always)]
fn reduce_lanes<L: Lane, K: Fold>(acc: L) -> f32 {
    let mut lanes = [K::INIT; 64];
    if let Some(dst) = lanes.get_mut(..L::LANES) {
        acc.store(dst);
    }
    lanes
        .iter()
        .take(L::LANES)
        .fold(K::INIT, |a, &b| K::combine(a, b))
}

/// Runs `k` over `x`, storing every value back, and returns the accumulator combined with `acc`.
#[inline(always)]
pub(crate) fn drive_fold_mut<L: Lane, K: Fold>(k: &K, x: &mut [f32], acc: f32) -> f32 {
    let mut chunks = x.chunks_exact_mut(L::LANES);
    let mut vacc = L::splat(K::INIT);
    for c in &mut chunks {
        let (v, a) = k.fold(L::load(c), vacc);
        v.store(c);
        vacc = a;
    }
    let mut sacc = K::combine(acc, reduce_lanes::<L, K>(vacc));
    for v in chunks.into_remainder() {
        let (nv, a) = k.fold(*v, sacc);
        *v = nv;
        sacc = a;
    }
    sacc
}

/// Runs `k` over `x` without writing, and returns the accumulator combined with `acc`.
#[inline(always)]
pub(crate) fn drive_fold<L: Lane, K: Fold>(k: &K, x: &[f32], acc: f32) -> f32 {
    let mut chunks = x.chunks_exact(L::LANES);
    let mut vacc = L::splat(K::INIT);
    for c in &mut chunks {
        vacc = k.fold(L::load(c), vacc).1;
    }
    let mut sacc = K::combine(acc, reduce_lanes::<L, K>(vacc));
    for v in chunks.remainder() {
        sacc = k.fold(*v, sacc).1;
    }
    sacc
}

/// Checks `grads.len() == n` and `state.len() == S·n`, then splits the state into `S` planes of
/// `n` values each (plane `j` is `state[j·n .. (j+1)·n]`).
#[inline]
pub(crate) fn split_state<const S: usize>(
    n: usize,
    grads: usize,
    state: &mut [f32],
) -> Result<[&mut [f32]; S], Error> {
    if grads != n {
        return Err(Error::LengthMismatch {
            what: "grads",
            expected: n,
            actual: grads,
        });
    }
    let expected = n.checked_mul(S).ok_or(Error::LengthMismatch {
        what: "state",
        expected: usize::MAX,
        actual: state.len(),
    })?;
    if state.len() != expected {
        return Err(Error::LengthMismatch {
            what: "state",
            expected,
            actual: state.len(),
        });
    }
    let mut rest = state;
    Ok(core::array::from_fn(|_| {
        let (head, tail) = core::mem::take(&mut rest)
            .split_at_mut_checked(n)
            .unwrap_or_default();
        rest = tail;
        head
    }))
}

/// The memory floor: moves exactly the bytes an optimizer with `S` state planes moves (reads
/// parameters, gradients and state; writes parameters and state) with no arithmetic, by
/// rotating values: `p ← g`, `s[0] ← p`, `s[j] ← s[j−1]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Floor;

impl<const S: usize> Kernel<S> for Floor {
    const SIGNED: [bool; S] = [true; S];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, state: &mut [L; S]) -> L {
        let mut carry = p;
        for s in state.iter_mut() {
            carry = core::mem::replace(s, carry);
        }
        g
    }
}
