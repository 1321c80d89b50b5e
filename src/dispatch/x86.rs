//! x86_64 runtime dispatch: CPU detection (no `std` needed) and the AVX2 / AVX-512F lane types.
//!
//! The lane types wrap `__m256` / `__m512`. Their methods call intrinsics in `unsafe` blocks
//! and are `#[inline(always)]` without `#[target_feature]`; they are only ever instantiated
//! inside [`run_avx2`] / [`run_avx512`], which carry the target features, so after inlining
//! every intrinsic is compiled with the features it needs. Those two entry points are only
//! called after [`detect`] confirmed the CPU and the OS support the registers.

use core::arch::x86_64::*;
use core::ops::{Add, Div, Mul, Neg, Sub};
use core::sync::atomic::{AtomicU8, Ordering};

use super::LaneJob;
use crate::format::BytePlanes;
use crate::lane::Lane;
use half::{bf16, f16};

const AVX2: u8 = 1;
const AVX512: u8 = 2;
/// AVX-512BW and VBMI (byte permutes), on top of [`AVX512`].
const VBMI: u8 = 4;
const DETECTED: u8 = 0x80;

static FEATURES: AtomicU8 = AtomicU8::new(0);

/// Reads CPUID/XGETBV once and caches the answer (a racing first call just computes it twice).
#[inline]
fn features() -> u8 {
    let cached = FEATURES.load(Ordering::Relaxed);
    if cached & DETECTED != 0 {
        return cached;
    }
    let f = detect() | DETECTED;
    FEATURES.store(f, Ordering::Relaxed);
    f
}

#[cold]
fn detect() -> u8 {
    let mut out = 0;
    // Compile-time features need no detection (e.g. `-C target-cpu=native`).
    if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        out |= AVX2;
    }
    if cfg!(target_feature = "avx512f") {
        out |= AVX512;
    }
    #[allow(unused_unsafe, reason = "__cpuid is unsafe before Rust 1.94")]
    // SAFETY: CPUID is available on every x86_64 CPU; leaf 0 is always valid.
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return out;
    }
    #[allow(unused_unsafe, reason = "__cpuid is unsafe before Rust 1.94")]
    // SAFETY: leaves 1 and 7 exist, checked against `max_leaf` above.
    let (l1, l7) = unsafe { (__cpuid(1), __cpuid_count(7, 0)) };
    let osxsave = l1.ecx & (1 << 27) != 0;
    let avx = l1.ecx & (1 << 28) != 0;
    if !(osxsave && avx) {
        return out;
    }
    // SAFETY: OSXSAVE (CPUID.1:ECX[27]) is set, so XGETBV is enabled and XCR0 is readable.
    let xcr0 = unsafe { _xgetbv(0) };
    let os_ymm = xcr0 & 0b110 == 0b110; // XMM and YMM state saved by the OS
    let os_zmm = xcr0 & 0b1110_0110 == 0b1110_0110; // plus opmask, ZMM_Hi256, Hi16_ZMM
    if os_ymm && l7.ebx & (1 << 5) != 0 {
        out |= AVX2;
    }
    if os_ymm && os_zmm && l7.ebx & (1 << 16) != 0 {
        out |= AVX512;
        // AVX512BW: CPUID.7.0:EBX[30]; AVX512_VBMI: CPUID.7.0:ECX[1].
        if l7.ebx & (1 << 30) != 0 && l7.ecx & (1 << 1) != 0 {
            out |= VBMI;
        }
    }
    out
}

/// Whether the CPU and OS support the AVX2 path.
#[inline]
pub(crate) fn has_avx2() -> bool {
    features() & AVX2 != 0
}

/// Whether the CPU and OS support the AVX-512F path.
#[inline]
pub(crate) fn has_avx512() -> bool {
    features() & AVX512 != 0
}

/// Whether the AVX-512 path may also use AVX-512BW and VBMI (byte permutes).
#[inline]
fn has_vbmi() -> bool {
    features() & (AVX512 | VBMI) == AVX512 | VBMI
}

macro_rules! x86_lane {
    (
        $name:ident, $reg:ty, $mask:ty, $n:literal,
        set1 = $set1:ident, loadu = $loadu:ident, storeu = $storeu:ident,
        add = $add:ident, sub = $sub:ident, mul = $mul:ident, div = $div:ident,
        sqrt = $sqrt:ident, and = $and:ident, xor = $xor:ident,
        lt = |$la:ident, $lb:ident| $lt:expr,
        unord = |$ua:ident| $unord:expr,
        select = |$sm:ident, $st:ident, $sf:ident| $select:expr,
        extra = { $($extra:item)* } $(,)?
    ) => {
        /// One register of lanes; only constructed inside the matching `run_*` entry point.
        #[derive(Clone, Copy)]
        pub(crate) struct $name($reg);

        impl Add for $name {
            type Output = Self;
            #[inline(always)]
            fn add(self, rhs: Self) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $add(self.0, rhs.0) })
            }
        }
        impl Sub for $name {
            type Output = Self;
            #[inline(always)]
            fn sub(self, rhs: Self) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $sub(self.0, rhs.0) })
            }
        }
        impl Mul for $name {
            type Output = Self;
            #[inline(always)]
            fn mul(self, rhs: Self) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $mul(self.0, rhs.0) })
            }
        }
        impl Div for $name {
            type Output = Self;
            #[inline(always)]
            fn div(self, rhs: Self) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $div(self.0, rhs.0) })
            }
        }
        impl Neg for $name {
            type Output = Self;
            #[inline(always)]
            fn neg(self) -> Self {
                // Flip the sign bit, exactly like scalar negation (NaN included).
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $xor(self.0, $set1(-0.0)) })
            }
        }

        impl Lane for $name {
            type Mask = $mask;
            const LANES: usize = $n;

            #[inline(always)]
            fn splat(x: f32) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $set1(x) })
            }
            #[inline(always)]
            fn load(src: &[f32]) -> Self {
                match src.first_chunk::<$n>() {
                    // SAFETY: `a` is a reference to $n initialised f32 values, which is exactly
                    // what the unaligned load reads; the ISA is enabled (module docs).
                    Some(a) => Self(unsafe { $loadu(a.as_ptr()) }),
                    None => Self::splat(0.0),
                }
            }
            #[inline(always)]
            fn store(self, dst: &mut [f32]) {
                if let Some(a) = dst.first_chunk_mut::<$n>() {
                    // SAFETY: `a` is a unique reference to $n f32 values, exactly what the
                    // unaligned store writes; the ISA is enabled (module docs).
                    unsafe { $storeu(a.as_mut_ptr(), self.0) }
                }
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $sqrt(self.0) })
            }
            #[inline(always)]
            fn prefetch<T>(at: *const T) {
                // SAFETY: PREFETCHT0 is a hint: it never faults, whatever the address, and
                // changes no state the program can observe (SSE, part of every x86_64).
                unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) }
            }
            #[inline(always)]
            fn abs(self) -> Self {
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $and(self.0, $set1(f32::from_bits(0x7fff_ffff))) })
            }
            #[inline(always)]
            fn lt(self, rhs: Self) -> $mask {
                let ($la, $lb) = (self.0, rhs.0);
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                unsafe { $lt }
            }
            #[inline(always)]
            fn is_nan(self) -> $mask {
                let $ua = self.0;
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                unsafe { $unord }
            }
            #[inline(always)]
            fn select(mask: $mask, t: Self, f: Self) -> Self {
                let ($sm, $st, $sf) = (mask, t.0, f.0);
                // SAFETY: only reachable from the entry point that enables this ISA (module docs).
                Self(unsafe { $select })
            }
            $($extra)*
        }
    };
}

x86_lane!(
    Avx2Lane,
    __m256,
    __m256,
    8,
    set1 = _mm256_set1_ps,
    loadu = _mm256_loadu_ps,
    storeu = _mm256_storeu_ps,
    add = _mm256_add_ps,
    sub = _mm256_sub_ps,
    mul = _mm256_mul_ps,
    div = _mm256_div_ps,
    sqrt = _mm256_sqrt_ps,
    and = _mm256_and_ps,
    xor = _mm256_xor_ps,
    lt = |a, b| _mm256_cmp_ps::<_CMP_LT_OQ>(a, b),
    unord = |a| _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a),
    select = |m, t, f| _mm256_blendv_ps(f, t, m),
    extra = {
        #[inline(always)]
        fn load_bf16(src: &[bf16]) -> Self {
            match src.first_chunk::<8>() {
                // SAFETY: `a` is 8 initialised bf16 (`repr(transparent)` u16), the 16 bytes the
                // unaligned load reads; the ISA is enabled (module docs).
                Some(a) => Self(unsafe {
                    let h = _mm_loadu_si128(a.as_ptr().cast());
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
                }),
                None => Self::splat(0.0),
            }
        }
        #[inline(always)]
        fn store_bf16(self, dst: &mut [bf16]) {
            if let Some(d) = dst.first_chunk_mut::<8>() {
                // SAFETY: `d` is a unique reference to 8 bf16, the 16 bytes stored; the ISA is
                // enabled (module docs). Integer round to nearest even, as `f32_to_bf16`.
                unsafe {
                    let b = _mm256_castps_si256(self.0);
                    let hi = _mm256_srli_epi32::<16>(b);
                    let bias = _mm256_add_epi32(
                        _mm256_and_si256(hi, _mm256_set1_epi32(1)),
                        _mm256_set1_epi32(0x7fff),
                    );
                    let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(b, bias));
                    let nan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
                    let is_nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0));
                    let out = _mm256_blendv_epi8(rounded, nan, is_nan);
                    // Every lane is below 2^16, so the saturating pack is exact; the permute
                    // brings the two 128-bit halves' results together.
                    let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(out, out));
                    _mm_storeu_si128(d.as_mut_ptr().cast(), _mm256_castsi256_si128(packed));
                }
            }
        }
    },
);

x86_lane!(
    Avx512Lane,
    __m512,
    __mmask16,
    16,
    set1 = _mm512_set1_ps,
    loadu = _mm512_loadu_ps,
    storeu = _mm512_storeu_ps,
    add = _mm512_add_ps,
    sub = _mm512_sub_ps,
    mul = _mm512_mul_ps,
    div = _mm512_div_ps,
    sqrt = _mm512_sqrt_ps,
    and = _mm512_and_ps_f,
    xor = _mm512_xor_ps_f,
    lt = |a, b| _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b),
    unord = |a| _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a),
    select = |m, t, f| _mm512_mask_blend_ps(m, f, t),
    extra = {
        const FAST_LOOKUP16: bool = true;
        #[inline(always)]
        fn lookup16(table: &[f32; 16], idx: Self) -> Self {
            // SAFETY: AVX-512F is enabled by the entry point (module docs); the load reads the
            // 16-float table. Truncation of a whole number is exact; the permute uses the
            // index's low 4 bits.
            Self(unsafe {
                _mm512_permutexvar_ps(_mm512_cvttps_epi32(idx.0), _mm512_loadu_ps(table.as_ptr()))
            })
        }
        #[inline(always)]
        fn dequantize4(table: &[f32; 16], bytes: &[u8], scale: f32, out: &mut [f32]) {
            let codes = crate::format::unpack4(bytes);
            let full = out.len() / 16 * 16;
            // SAFETY: AVX-512F is enabled by the entry point (module docs); the loads read the
            // 16-float table and 16 codes of a 16-byte chunk, the stores write a 16-float chunk.
            unsafe {
                let t = _mm512_loadu_ps(table.as_ptr());
                let s = _mm512_set1_ps(scale);
                let (head, _) = out.split_at_mut(full);
                for (o, c) in head.chunks_exact_mut(16).zip(codes.chunks_exact(16)) {
                    let idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(c.as_ptr().cast()));
                    let v = _mm512_permutexvar_ps(idx, t);
                    _mm512_storeu_ps(o.as_mut_ptr(), _mm512_mul_ps(v, s));
                }
            }
            let tail = (out.get_mut(full..), codes.get(full..));
            if let (Some(o), Some(c)) = tail {
                for (o, &c) in o.iter_mut().zip(c) {
                    *o = table.get(usize::from(c & 15)).copied().unwrap_or(0.0) * scale;
                }
            }
        }
        #[inline(always)]
        fn dequantize8(
            values: &[f32; 256],
            bytes: &BytePlanes,
            codes: &[u8],
            scale: f32,
            out: &mut [f32],
        ) {
            if has_vbmi() {
                // SAFETY: AVX-512F is enabled by the entry point (module docs) and AVX-512BW
                // and VBMI were detected, with the OS saving the ZMM state.
                unsafe { dequantize8_vbmi(values, bytes, codes, scale, out) }
            } else {
                crate::format::dequantize8(values, codes, scale, out);
            }
        }
        #[inline(always)]
        fn load_bf16(src: &[bf16]) -> Self {
            match src.first_chunk::<16>() {
                // SAFETY: `a` is 16 initialised bf16 (`repr(transparent)` u16), the 32 bytes the
                // unaligned load reads; the ISA is enabled (module docs).
                Some(a) => Self(unsafe {
                    let h = _mm256_loadu_si256(a.as_ptr().cast());
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                }),
                None => Self::splat(0.0),
            }
        }
        #[inline(always)]
        fn store_bf16(self, dst: &mut [bf16]) {
            if let Some(d) = dst.first_chunk_mut::<16>() {
                // SAFETY: `d` is a unique reference to 16 bf16, the 32 bytes stored; the ISA is
                // enabled (module docs). Integer round to nearest even, as `f32_to_bf16`.
                unsafe {
                    let b = _mm512_castps_si512(self.0);
                    let hi = _mm512_srli_epi32::<16>(b);
                    let bias = _mm512_add_epi32(
                        _mm512_and_si512(hi, _mm512_set1_epi32(1)),
                        _mm512_set1_epi32(0x7fff),
                    );
                    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
                    let nan = _mm512_or_si512(hi, _mm512_set1_epi32(0x40));
                    let is_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0);
                    let out = _mm512_mask_blend_epi32(is_nan, rounded, nan);
                    _mm256_storeu_si256(d.as_mut_ptr().cast(), _mm512_cvtepi32_epi16(out));
                }
            }
        }
        #[inline(always)]
        fn load_f16(src: &[f16]) -> Self {
            match src.first_chunk::<16>() {
                // SAFETY: `a` is 16 initialised f16 (`repr(transparent)` u16), the 32 bytes the
                // unaligned load reads; AVX-512F includes the exact 16-to-32-bit conversion.
                Some(a) => Self(unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(a.as_ptr().cast())) }),
                None => Self::splat(0.0),
            }
        }
        #[inline(always)]
        fn store_f16(self, dst: &mut [f16]) {
            if let Some(d) = dst.first_chunk_mut::<16>() {
                // SAFETY: `d` is a unique reference to 16 f16, the 32 bytes stored; AVX-512F
                // includes the conversion, here with round to nearest even from the immediate
                // (not MXCSR), which is IEEE's correctly rounded result (tested against the
                // integer conversion).
                unsafe {
                    let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                        self.0,
                    );
                    _mm256_storeu_si256(d.as_mut_ptr().cast(), h);
                }
            }
        }
    },
);

/// Byte `p` of the permuted codes is code `TRANSPOSE[p]`: with `p = 16·L + 4·r + j`, code
/// `16·r + 4·L + j`. After the byte-plane lookups, two rounds of in-lane unpacking put the value
/// at byte position `16·L + 4·r + j` into dword `4·L + j` of output vector `r`; this order makes
/// that dword hold value `16·r + 4·L + j`, so the four vectors come out in memory order.
#[allow(
    clippy::indexing_slicing,
    reason = "compile-time evaluation: a bad index fails the build"
)]
static TRANSPOSE: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut p = 0;
    while p < 64 {
        let (lane, r, j) = (p / 16, (p / 4) % 4, p % 4);
        t[p] = (16 * r + 4 * lane + j) as u8;
        p += 1;
    }
    t
};

/// `out[i] = f32::from_bits(bytes of codes[i]) · scale` by byte permutes: per 64 codes, for each
/// of the four byte planes two 128-entry `vpermi2b` lookups and a blend on the code's top bit,
/// then unpacking the four bytes of each value into place (no gather). A last partial group of
/// 64 takes the scalar path. Exact: a table lookup, then one IEEE multiplication.
///
/// # Safety
/// The CPU and OS must support AVX-512F, AVX-512BW and AVX-512 VBMI.
#[target_feature(enable = "avx,avx2,avx512f,avx512bw,avx512vbmi")]
unsafe fn dequantize8_vbmi(
    values: &[f32; 256],
    bytes: &BytePlanes,
    codes: &[u8],
    scale: f32,
    out: &mut [f32],
) {
    // SAFETY: every intrinsic below needs only the features enabled on this function (its
    // caller checked them); the loads read 64 bytes from a 256-byte plane (length checked), the
    // 64-byte table or a 64-byte chunk of codes, and the stores write 16 floats into a 16-float
    // chunk of `out`.
    unsafe {
        // A plane's 256 bytes as four vectors (offsets 0, 64, 128, 192: in bounds).
        let load = |p: &[u8; 256]| {
            let at = p.as_ptr();
            [
                _mm512_loadu_si512(at.cast()),
                _mm512_loadu_si512(at.add(64).cast()),
                _mm512_loadu_si512(at.add(128).cast()),
                _mm512_loadu_si512(at.add(192).cast()),
            ]
        };
        let BytePlanes([p0, p1, p2, p3]) = bytes;
        let t: [[__m512i; 4]; 4] = [load(p0), load(p1), load(p2), load(p3)];
        let transpose = _mm512_loadu_si512(TRANSPOSE.as_ptr().cast());
        let s = _mm512_set1_ps(scale);
        let mut oc = out.chunks_exact_mut(64);
        let mut cc = codes.chunks_exact(64);
        for (o, c) in (&mut oc).zip(&mut cc) {
            let idx = _mm512_permutexvar_epi8(transpose, _mm512_loadu_si512(c.as_ptr().cast()));
            let upper = _mm512_movepi8_mask(idx);
            let look = |[a, b, c, d]: [__m512i; 4]| {
                _mm512_mask_blend_epi8(
                    upper,
                    _mm512_permutex2var_epi8(a, idx, b),
                    _mm512_permutex2var_epi8(c, idx, d),
                )
            };
            let [t0, t1, t2, t3] = t;
            let (b0, b1, b2, b3) = (look(t0), look(t1), look(t2), look(t3));
            let (lo01, hi01) = (_mm512_unpacklo_epi8(b0, b1), _mm512_unpackhi_epi8(b0, b1));
            let (lo23, hi23) = (_mm512_unpacklo_epi8(b2, b3), _mm512_unpackhi_epi8(b2, b3));
            let v = [
                _mm512_unpacklo_epi16(lo01, lo23),
                _mm512_unpackhi_epi16(lo01, lo23),
                _mm512_unpacklo_epi16(hi01, hi23),
                _mm512_unpackhi_epi16(hi01, hi23),
            ];
            for (d, v) in o.chunks_exact_mut(16).zip(v) {
                _mm512_storeu_ps(d.as_mut_ptr(), _mm512_mul_ps(_mm512_castsi512_ps(v), s));
            }
        }
        // The rest (under 64 values): the gather loop over the same table.
        crate::format::dequantize8(values, cc.remainder(), scale, oc.into_remainder());
    }
}

// AVX-512F has no float `and`/`xor` (those are AVX-512DQ); do them on the integer view.
#[inline(always)]
unsafe fn _mm512_and_ps_f(a: __m512, b: __m512) -> __m512 {
    // SAFETY: the caller guarantees AVX-512F; the casts are free reinterpretations.
    unsafe {
        _mm512_castsi512_ps(_mm512_and_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }
}

#[inline(always)]
unsafe fn _mm512_xor_ps_f(a: __m512, b: __m512) -> __m512 {
    // SAFETY: the caller guarantees AVX-512F; the casts are free reinterpretations.
    unsafe {
        _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }
}

/// Runs `job` with 256-bit AVX registers.
///
/// # Safety
/// The CPU and OS must support AVX2 ([`has_avx2`]).
#[target_feature(enable = "avx,avx2")]
pub(crate) unsafe fn with_avx2<J: LaneJob>(job: J) -> J::Output {
    job.run::<Avx2Lane>()
}

/// Runs `job` with 512-bit AVX-512F registers.
///
/// # Safety
/// The CPU and OS must support AVX-512F ([`has_avx512`]).
#[target_feature(enable = "avx,avx2,avx512f")]
pub(crate) unsafe fn with_avx512<J: LaneJob>(job: J) -> J::Output {
    job.run::<Avx512Lane>()
}
