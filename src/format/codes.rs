//! Element codes of the block formats: torchao's nearest-code search over a code table
//! (8-bit and 4-bit), and float8 e4m3fn. Every function here is built from exact integer
//! operations and correctly rounded IEEE operations, so it gives the same bits wherever it runs.
//!
//! # The code search
//! torchao picks, for a scaled value `y`, `i = max{i : q[i] ≤ y}` with a branchless binary
//! search, then rounds up to `i + 1` when `(y − q[i]) ≥ (q[i+1] − q[i])·0.5` in f32
//! ([`reference_code`]). That rule is a monotone step function of `y`, so it is fully described
//! by its thresholds `T[k]`, the smallest `f32` whose code is at least `k`; the code of `y` is
//! then the number of thresholds `≤ y`. The thresholds are computed at compile time from the
//! rule itself (by bisection over the ordered `f32` values), and a test checks the fast search
//! against the rule around every threshold and on random values.
//!
//! The 8-bit fast search splits `|y|` by its exponent and top mantissa bits into buckets that
//! each hold at most one threshold (checked at compile time), so it is one table lookup and one
//! compare per value. The 4-bit search counts its 15 thresholds directly.

use super::tables::{INT4_SIGNED, INT4_UNSIGNED, INT8_SIGNED, INT8_UNSIGNED};
use crate::lane::Lane;

/// A code table with its thresholds.
#[derive(Debug)]
pub(crate) struct CodeMap<const N: usize> {
    /// The code values, ascending.
    pub(crate) values: [f32; N],
    /// `next[c]` is the smallest `f32` whose code exceeds `c`: the threshold `T[c + 1]`. The
    /// last code has none: NaN there, which no compare passes.
    pub(crate) next: [f32; N],
}

/// Bits of `f32` as a monotone integer (value order; `-0.0` sorts just below `+0.0`).
const fn ordered(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    if b < 0 { !(b & 0x7fff_ffff) } else { b }
}

/// Inverse of [`ordered`].
const fn from_ordered(o: i32) -> f32 {
    if o < 0 {
        f32::from_bits((!o | i32::MIN) as u32)
    } else {
        f32::from_bits(o as u32)
    }
}

/// torchao's rule, literally: the branchless binary search for `max{i : q[i] ≤ y}` (`0` when
/// `y < q[1]` or `y` is NaN), then the round-up test in f32.
#[allow(
    clippy::indexing_slicing,
    reason = "compile-time evaluation: a bad index fails the build"
)]
pub(crate) const fn reference_code<const N: usize>(q: &[f32; N], y: f32) -> usize {
    let mut c = 0;
    let mut step = N / 2;
    while step > 0 {
        if y >= q[c + step] {
            c += step;
        }
        step /= 2;
    }
    let up = if c + 1 < N { c + 1 } else { N - 1 };
    let (down_v, up_v) = (q[c], q[up]);
    if y - down_v >= (up_v - down_v) * 0.5 {
        up
    } else {
        c
    }
}

#[allow(
    clippy::indexing_slicing,
    reason = "compile-time evaluation: a bad index fails the build"
)]
const fn build<const N: usize>(bits: &[u32; N]) -> CodeMap<N> {
    let mut values = [0.0f32; N];
    let mut i = 0;
    while i < N {
        values[i] = f32::from_bits(bits[i]);
        i += 1;
    }
    let mut next = [f32::NAN; N];
    // T[k] for k = 1..N−1 by bisection over ordered f32 in [−2, 2] (every code table lies in
    // [−1, 1], so all thresholds do too).
    let mut k = 1;
    while k < N {
        let (mut lo, mut hi) = (ordered(-2.0) as i64, ordered(2.0) as i64);
        // Invariant: code(lo) < k ≤ code(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reference_code(&values, from_ordered(mid as i32)) >= k {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        next[k - 1] = from_ordered(hi as i32);
        k += 1;
    }
    CodeMap { values, next }
}

/// torchao's signed 8-bit map (first moments).
pub(crate) static INT8_SIGNED_MAP: CodeMap<256> = build(&INT8_SIGNED);
/// torchao's unsigned 8-bit map (second moments).
pub(crate) static INT8_UNSIGNED_MAP: CodeMap<256> = build(&INT8_UNSIGNED);
/// The values of an 8-bit code table as four byte planes: `self.0[k][c]` is byte `k`
/// (little-endian) of code `c`'s `f32` bits. A backend with byte permutes (AVX-512 VBMI) looks
/// codes up in these instead of gathering from the `f32` table; both give the same bits.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(
        dead_code,
        reason = "only the x86_64 AVX-512 VBMI path reads the planes"
    )
)]
pub(crate) struct BytePlanes(pub(crate) [[u8; 256]; 4]);

#[allow(
    clippy::indexing_slicing,
    reason = "compile-time evaluation: a bad index fails the build"
)]
const fn byte_planes(bits: &[u32; 256]) -> BytePlanes {
    let mut out = [[0u8; 256]; 4];
    let mut c = 0;
    while c < 256 {
        let b = bits[c].to_le_bytes();
        let mut k = 0;
        while k < 4 {
            out[k][c] = b[k];
            k += 1;
        }
        c += 1;
    }
    BytePlanes(out)
}

/// [`INT8_SIGNED_MAP`]'s values as byte planes.
pub(crate) static INT8_SIGNED_BYTES: BytePlanes = byte_planes(&INT8_SIGNED);
/// [`INT8_UNSIGNED_MAP`]'s values as byte planes.
pub(crate) static INT8_UNSIGNED_BYTES: BytePlanes = byte_planes(&INT8_UNSIGNED);

/// torchao's signed 4-bit map.
pub(crate) static INT4_SIGNED_MAP: CodeMap<16> = build(&INT4_SIGNED);
/// torchao's unsigned (linear) 4-bit map.
pub(crate) static INT4_UNSIGNED_MAP: CodeMap<16> = build(&INT4_UNSIGNED);

/// The 8-bit bucket search (64-bit hosts, and tests everywhere): see the module docs.
#[cfg(any(test, target_arch = "x86_64", target_arch = "aarch64"))]
mod bucket {
    use super::{CodeMap, INT8_SIGNED_MAP, INT8_UNSIGNED_MAP, reference_code};

    /// Mantissa bits used by the 8-bit bucket search.
    const MANT_BITS: u32 = 7;
    /// `|y|` below `2^-27` shares one bucket (no threshold lies there; checked at compile time).
    const TINY_BITS: u32 = (127 - 27) << 23;
    /// Buckets per sign: one for the tiny values, `27·2^MANT_BITS` for `[2^-27, 1)`, one for `≥ 1`
    /// (and NaN, which is handled separately).
    pub(super) const MAG_BUCKETS: usize = 2 + (27usize << MANT_BITS);

    /// The bucket of `y` and `y`'s position in it, in value order (0 for the bucket's smallest
    /// value). Buckets: per sign, one for `|y| < 2^-27`, `2^16` consecutive bit patterns each for
    /// `[2^-27, 1)`, and one for `[1, ∞]` (and NaN); negative buckets first, largest magnitude
    /// first. Branch-free, so a loop of it vectorizes; the position saturates below
    /// [`NO_THRESHOLD`].
    #[inline(always)]
    const fn locate(y: f32) -> (usize, u32) {
        const SHIFT: u32 = 23 - MANT_BITS;
        const STEP: u32 = 1 << SHIFT;
        let b = y.to_bits();
        let a = b & 0x7fff_ffff;
        let floor = if a > TINY_BITS - STEP {
            a
        } else {
            TINY_BITS - STEP
        };
        let m = (floor - (TINY_BITS - STEP)) >> SHIFT;
        let m = if m < MAG_BUCKETS as u32 - 1 {
            m
        } else {
            MAG_BUCKETS as u32 - 1
        };
        let lo = if m == 0 {
            0
        } else {
            TINY_BITS - STEP + (m << SHIFT)
        };
        let (key, pos) = if b >> 31 != 0 {
            // Value order runs against magnitude: the bucket's smallest value has the largest |y|.
            (
                MAG_BUCKETS as u32 - 1 - m,
                (lo + (STEP - 1)).wrapping_sub(a),
            )
        } else {
            (MAG_BUCKETS as u32 + m, a.wrapping_sub(lo))
        };
        let pos = if pos < NO_THRESHOLD {
            pos
        } else {
            NO_THRESHOLD - 1
        };
        (key as usize, pos)
    }

    /// The position that marks a bucket with no threshold (no position reaches it).
    const NO_THRESHOLD: u32 = 0x00ff_ffff;

    /// For each bucket, `base << 24 | offset`: the code of the bucket's smallest value, and the
    /// position of the threshold inside it (the code is `base + (position ≥ offset)`), or
    /// [`NO_THRESHOLD`]. One `u32` per bucket, so a SIMD gather reads both at once. Fails to
    /// compile if a bucket holds more than one threshold, or one that the position cannot express.
    #[allow(
        clippy::indexing_slicing,
        reason = "compile-time evaluation: a bad index fails the build"
    )]
    const fn bucket_table(map: &CodeMap<256>) -> [u32; 2 * MAG_BUCKETS] {
        let mut out = [0u32; 2 * MAG_BUCKETS];
        // Every bucket's smallest and largest values, found by walking the ordered f32 values of
        // the bucket boundaries: the first value of each bucket, from the most negative up.
        let mut k = 0;
        while k < 2 * MAG_BUCKETS {
            let (lo, hi) = bucket_range(k);
            assert!(locate(lo).0 == k && locate(hi).0 == k, "bucket bounds");
            let base = reference_code(&map.values, lo);
            let top = reference_code(&map.values, hi);
            let entry = if top == base {
                NO_THRESHOLD
            } else {
                assert!(top == base + 1, "a bucket holds two thresholds");
                let t = map.next[base];
                let (tk, tpos) = locate(t);
                assert!(
                    tk == k && tpos < NO_THRESHOLD - 1,
                    "threshold outside its bucket"
                );
                tpos
            };
            out[k] = ((base as u32) << 24) | entry;
            k += 1;
        }
        out
    }

    /// The smallest and largest `f32` (in value order) that fall in bucket `k`, NaN excluded.
    const fn bucket_range(k: usize) -> (f32, f32) {
        // The magnitude range of magnitude bucket m.
        const fn mag_range(m: usize) -> (u32, u32) {
            if m == 0 {
                (0, TINY_BITS - 1)
            } else if m == MAG_BUCKETS - 1 {
                (0x3f80_0000, 0x7f80_0000)
            } else {
                let lo = TINY_BITS + (((m - 1) as u32) << (23 - MANT_BITS));
                (lo, lo + (1 << (23 - MANT_BITS)) - 1)
            }
        }
        if k < MAG_BUCKETS {
            let (lo, hi) = mag_range(MAG_BUCKETS - 1 - k);
            (-f32::from_bits(hi), -f32::from_bits(lo))
        } else {
            let (lo, hi) = mag_range(k - MAG_BUCKETS);
            (f32::from_bits(lo), f32::from_bits(hi))
        }
    }

    pub(super) static INT8_SIGNED_BUCKETS: [u32; 2 * MAG_BUCKETS] = bucket_table(&INT8_SIGNED_MAP);
    pub(super) static INT8_UNSIGNED_BUCKETS: [u32; 2 * MAG_BUCKETS] =
        bucket_table(&INT8_UNSIGNED_MAP);

    /// [`code8`] by bucket lookup.
    #[inline(always)]
    pub(crate) fn code8_bucket(signed: bool, y: f32) -> u8 {
        let buckets = if signed {
            &INT8_SIGNED_BUCKETS
        } else {
            &INT8_UNSIGNED_BUCKETS
        };
        code8_with(buckets, y)
    }

    /// The bucket search: one table read (a gather, in a vectorized loop), an integer compare and
    /// selects per value.
    #[inline(always)]
    #[allow(clippy::indexing_slicing, reason = "the key is below the table length")]
    pub(super) fn code8_with(buckets: &[u32; 2 * MAG_BUCKETS], y: f32) -> u8 {
        let (key, pos) = locate(y);
        let entry = buckets[key.min(2 * MAG_BUCKETS - 1)];
        let c = (entry >> 24) + u32::from(pos >= (entry & 0x00ff_ffff));
        // NaN: every compare of torchao's search is false, so code 0.
        (if y.is_nan() { 0 } else { c }) as u8
    }
}

#[cfg(any(test, target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use bucket::code8_bucket;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use bucket::{INT8_SIGNED_BUCKETS, INT8_UNSIGNED_BUCKETS, code8_with};

/// The 8-bit code of `y` under torchao's rule. On 64-bit hosts, one bucket lookup and one
/// compare (two 27 KiB tables); on small targets, an 8-step bisection over the thresholds
/// (no extra table). Both give the same code (tested).
#[inline(always)]
pub(crate) fn code8(signed: bool, y: f32) -> u8 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        code8_bucket(signed, y)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        code8_bisect(signed, y)
    }
}

/// [`code8`] by bisection over the thresholds.
#[inline(always)]
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
pub(crate) fn code8_bisect(signed: bool, y: f32) -> u8 {
    let map = if signed {
        &INT8_SIGNED_MAP
    } else {
        &INT8_UNSIGNED_MAP
    };
    let mut c = 0usize;
    let mut step = 128;
    while step > 0 {
        // T[c + step] = next[c + step − 1]; NaN compares false, so NaN gets code 0.
        let t = map
            .next
            .get(c.wrapping_add(step).wrapping_sub(1))
            .copied()
            .unwrap_or(f32::INFINITY);
        if t <= y {
            c = c.wrapping_add(step);
        }
        step /= 2;
    }
    c as u8
}

/// Codes of a whole block: `out[i] = code8(signed, x[i] / scale)`.
#[inline(always)]
pub(crate) fn quantize8(signed: bool, x: &[f32], scale: f32, out: &mut [u8]) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let buckets = if signed {
            &INT8_SIGNED_BUCKETS
        } else {
            &INT8_UNSIGNED_BUCKETS
        };
        // Codes go to a local array first: stores to the caller's slice could alias the
        // tables as far as the vectorizer can tell, and it would then not vectorize the gathers.
        let mut codes = [0u8; 256];
        for (o, x) in codes.iter_mut().zip(x) {
            *o = code8_with(buckets, *x / scale);
        }
        // One copy of whole vectors (a zip loop here left half the block to a byte loop).
        let len = out.len().min(256);
        if let (Some(o), Some(c)) = (out.get_mut(..len), codes.get(..len)) {
            o.copy_from_slice(c);
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    for (o, x) in out.iter_mut().zip(x) {
        *o = code8_bisect(signed, *x / scale);
    }
}

/// The 4-bit code of `y` under torchao's rule: the number of thresholds `≤ y`.
#[inline(always)]
pub(crate) fn code4(signed: bool, y: f32) -> u8 {
    let map = if signed {
        &INT4_SIGNED_MAP
    } else {
        &INT4_UNSIGNED_MAP
    };
    let mut c = 0u8;
    for t in map.next.iter().take(15) {
        c = c.wrapping_add(u8::from(*t <= y));
    }
    c
}

/// Codes of a block of at most 256 values (`x.len() <= 256`): `out[i] = code4(signed,
/// x[i] / scale)`, counting the thresholds `≤ y` on whole lane vectors (the counts are small
/// integers, exact in `f32`).
#[inline(always)]
pub(crate) fn quantize4<L: Lane>(signed: bool, x: &[f32], scale: f32, out: &mut [u8; 256]) {
    let map = if signed {
        &INT4_SIGNED_MAP
    } else {
        &INT4_UNSIGNED_MAP
    };
    let mut y = [0.0f32; 256];
    for (y, x) in y.iter_mut().zip(x) {
        *y = *x / scale;
    }
    let mut count = [0.0f32; 256];
    // Four vectors at a time: four independent select/add chains instead of one, so the loop
    // runs at the vector units' throughput rather than at one chain's latency.
    let width = 4 * L::LANES;
    // Sub-slices by `get` rather than zipped `chunks_exact`: an out-of-line `Zip::new` divides
    // by the chunk length, a panic path at opt-level "z".
    let mut start = 0usize;
    while let (Some(ys), Some(cs)) = (
        y.get(start..start.wrapping_add(width)),
        count.get_mut(start..start.wrapping_add(width)),
    ) {
        start = start.wrapping_add(width);
        let load = |k: usize| L::load(ys.get(k * L::LANES..).unwrap_or_default());
        let v = [load(0), load(1), load(2), load(3)];
        let one = L::splat(1.0);
        let mut acc = [L::splat(0.0); 4];
        // The 15 thresholds are finite; `t <= y` is `!(y < t)` except for NaN, fixed below.
        if L::FAST_LOOKUP16 {
            for (a, v) in acc.iter_mut().zip(v) {
                *a = count4_search(&map.next, v);
            }
        } else {
            for t in map.next.iter().take(15) {
                let t = L::splat(*t);
                for (a, v) in acc.iter_mut().zip(v) {
                    *a = L::select(v.lt(t), *a, *a + one);
                }
            }
        }
        for (k, (a, v)) in acc.iter().zip(v).enumerate() {
            let c = L::select(v.is_nan(), L::splat(0.0), *a);
            c.store(cs.get_mut(k * L::LANES..).unwrap_or_default());
        }
    }
    // The counts are integers in 0..=15: adding 2^23 puts them in the low mantissa bits
    // exactly, which avoids a saturating float-to-integer cast per value.
    for (o, c) in out.iter_mut().zip(count) {
        *o = (c + 8_388_608.0).to_bits() as u8;
    }
}

/// The number of the 15 ascending thresholds `next[..15]` that are `<= y` (for `y` not NaN), by
/// binary search: four steps of 8, 4, 2 and 1, each reading one threshold by a table lookup at
/// an index up to 14 (the NaN in `next[15]` is never read). The same count as comparing with
/// every threshold (tested), in four lookups instead of 15 compares where a lookup is one
/// register permute.
#[inline(always)]
pub(crate) fn count4_search<L: Lane>(next: &[f32; 16], y: L) -> L {
    let mut c = L::splat(0.0);
    for step in [8.0f32, 4.0, 2.0, 1.0] {
        let t = L::lookup16(next, c + L::splat(step - 1.0));
        c = L::select(y.lt(t), c, c + L::splat(step));
    }
    c
}

/// f32 → float8 e4m3fn with round-to-nearest-even, as torch 2.15 converts (`c10`): values at
/// or beyond 480 (and infinities) saturate to ±448, NaN becomes `0x7f` (with the sign bit).
#[inline(always)]
pub(crate) fn f32_to_e4m3(x: f32) -> u8 {
    let bits = x.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let a = bits & 0x7fff_ffff;
    // Below 2^-6 (the smallest normal): add 2^14 so the f32 adder rounds the subnormal
    // mantissa to nearest even; the code is then the low bits.
    let denorm_magic = 141u32 << 23;
    let sub = (f32::from_bits(a) + f32::from_bits(denorm_magic))
        .to_bits()
        .wrapping_sub(denorm_magic) as u8;
    // Normal: rebias the exponent and round the mantissa to 3 bits, nearest even.
    let odd = (a >> 20) & 1;
    let normal = (a
        .wrapping_add((7u32.wrapping_sub(127) << 23).wrapping_add(0x7_ffff))
        .wrapping_add(odd)
        >> 20) as u8;
    let normal = if normal == 0x7f { 0x7e } else { normal };
    let mag = if a > 0x7f80_0000 {
        0x7f
    } else if a >= 1087 << 20 {
        0x7e
    } else if a < 121 << 23 {
        sub
    } else {
        normal
    };
    mag | sign
}

/// float8 e4m3fn → f32 (exact).
#[inline(always)]
pub(crate) fn e4m3_to_f32(c: u8) -> f32 {
    let sign = if c & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = u32::from((c >> 3) & 0xf);
    let m = u32::from(c & 7);
    let mag = if c & 0x7f == 0x7f {
        f32::NAN
    } else if e == 0 {
        // Subnormal: m · 2^-9, exact in f32.
        m as f32 * (1.0 / 512.0)
    } else {
        f32::from_bits(((e + 120) << 23) | (m << 20))
    };
    sign * mag
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn check8(signed: bool, y: f32) {
        let map = if signed {
            &INT8_SIGNED_MAP
        } else {
            &INT8_UNSIGNED_MAP
        };
        let want = reference_code(&map.values, y);
        assert_eq!(
            usize::from(code8_bucket(signed, y)),
            want,
            "y = {y:e} ({:#x})",
            y.to_bits()
        );
        assert_eq!(
            usize::from(code8_bisect(signed, y)),
            want,
            "y = {y:e} ({:#x})",
            y.to_bits()
        );
    }

    fn check4(signed: bool, y: f32) {
        let map = if signed {
            &INT4_SIGNED_MAP
        } else {
            &INT4_UNSIGNED_MAP
        };
        let want = reference_code(&map.values, y);
        assert_eq!(usize::from(code4(signed, y)), want, "y = {y:e}");
    }

    /// Values around every threshold and every code value, ±0, tiny, huge, NaN, infinities.
    fn probes<const N: usize>(map: &CodeMap<N>) -> std::vec::Vec<f32> {
        let mut v = std::vec![0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, 2.0, -2.0, f32::NAN];
        v.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX]);
        for &t in map.next.iter().chain(map.values.iter()) {
            if t.is_nan() {
                continue;
            }
            let o = ordered(t);
            for d in -3..=3 {
                v.push(from_ordered(o + d));
            }
        }
        v
    }

    #[test]
    fn thresholds_are_where_the_rule_changes() {
        let map = &INT8_SIGNED_MAP;
        for k in 1..256 {
            let t = map.next[k - 1];
            let below = from_ordered(ordered(t) - 1);
            assert!(reference_code(&map.values, t) >= k);
            assert!(reference_code(&map.values, below) < k);
        }
    }

    #[test]
    fn fast_searches_match_torchaos_rule_at_every_threshold() {
        for signed in [true, false] {
            let m8 = if signed {
                &INT8_SIGNED_MAP
            } else {
                &INT8_UNSIGNED_MAP
            };
            for y in probes(m8) {
                check8(signed, y);
            }
            let m4 = if signed {
                &INT4_SIGNED_MAP
            } else {
                &INT4_UNSIGNED_MAP
            };
            for y in probes(m4) {
                check4(signed, y);
            }
        }
    }

    #[test]
    fn fast_searches_match_torchaos_rule_on_a_sweep() {
        // Every 97th f32 bit pattern with |y| <= 1.25: about 22 million values per sign.
        let mut bits = 0u32;
        while bits <= 0x3fa0_0000 {
            for y in [f32::from_bits(bits), -f32::from_bits(bits)] {
                check8(true, y);
                check8(false, y);
                check4(true, y);
                check4(false, y);
            }
            bits += 97;
        }
    }

    #[test]
    fn the_4bit_binary_search_counts_like_the_compares() {
        for map in [&INT4_SIGNED_MAP, &INT4_UNSIGNED_MAP] {
            let mut ys = probes(map);
            ys.extend([
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.0,
                -0.0,
                f32::MAX,
                -f32::MAX,
            ]);
            for y in ys.into_iter().filter(|y| !y.is_nan()) {
                let count = map.next.iter().take(15).filter(|&&t| t <= y).count();
                assert_eq!(count4_search::<f32>(&map.next, y), count as f32, "{y:e}");
            }
        }
    }

    #[test]
    fn zero_maps_to_the_zero_code() {
        assert_eq!(INT8_SIGNED_MAP.values[usize::from(code8(true, 0.0))], 0.0);
        assert_eq!(INT8_SIGNED_MAP.values[usize::from(code8(true, -0.0))], 0.0);
        assert_eq!(code8(false, 0.0), 0);
        assert_eq!(INT4_SIGNED_MAP.values[usize::from(code4(true, 0.0))], 0.0);
        // The 4-bit unsigned map has no zero: 0 goes to its smallest code, 1/16.
        assert_eq!(code4(false, 0.0), 0);
    }

    #[test]
    fn e4m3_round_trips_every_code() {
        for c in 0..=255u8 {
            let x = e4m3_to_f32(c);
            if c & 0x7f == 0x7f {
                assert!(x.is_nan());
                assert_eq!(f32_to_e4m3(x) & 0x7f, 0x7f);
            } else {
                assert_eq!(f32_to_e4m3(x), c, "code {c:#x} = {x}");
            }
        }
    }

    #[test]
    fn e4m3_rounds_to_nearest_even_and_saturates() {
        // 448 is the largest finite value; 464 is halfway to the (unused) 480: ties to even
        // would give 480, which does not exist, so the rule saturates.
        assert_eq!(e4m3_to_f32(f32_to_e4m3(447.0)), 448.0);
        assert_eq!(e4m3_to_f32(f32_to_e4m3(470.0)), 448.0);
        assert_eq!(e4m3_to_f32(f32_to_e4m3(1e30)), 448.0);
        assert_eq!(e4m3_to_f32(f32_to_e4m3(f32::NEG_INFINITY)), -448.0);
        // 1.0625 lies halfway between 1.0 and 1.125: ties to even (1.0).
        assert_eq!(e4m3_to_f32(f32_to_e4m3(1.0625)), 1.0);
        assert_eq!(e4m3_to_f32(f32_to_e4m3(1.1875)), 1.25);
        // Smallest subnormal 2^-9; half of it ties to even (0), a bit more rounds up.
        assert_eq!(e4m3_to_f32(f32_to_e4m3(1.0 / 1024.0)), 0.0);
        assert_eq!(e4m3_to_f32(f32_to_e4m3(1.01 / 1024.0)), 1.0 / 512.0);
        assert_eq!(f32_to_e4m3(-0.0), 0x80);
    }

    #[test]
    fn e4m3_matches_nearest_on_a_sweep() {
        // Against a slow nearest-code search over all finite codes (ties to the even code).
        let finite: std::vec::Vec<(f32, u8)> = (0..=0x7eu8).map(|c| (e4m3_to_f32(c), c)).collect();
        let mut bits = 0u32;
        while bits < 0x43e0_0000 {
            let x = f32::from_bits(bits);
            let mut best = finite[0];
            for &(v, c) in &finite {
                let (d, db) = ((v - x).abs(), (best.0 - x).abs());
                if d < db || (d == db && c & 1 == 0 && best.1 & 1 == 1) {
                    best = (v, c);
                }
            }
            assert_eq!(f32_to_e4m3(x), best.1, "x = {x:e}");
            bits += 4099;
        }
    }
}
