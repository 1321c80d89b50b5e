//! Element conversions between `f32` and the 16-bit formats, in exact integer operations (plus,
//! for f16 subnormals, exact f32 products), written branch-free so that the compiler vectorises
//! them inside each backend's target features. Every backend therefore converts to the same bits.
//!
//! No hardware conversion instruction is used: `VCVTNEPS2BF16` flushes subnormals (so it is not
//! round-to-nearest-even on them), and F16C, though exact, would add a feature to detect for a
//! conversion the integer path already does at memory speed.

use half::{bf16, f16};

/// bf16 → f32 (exact).
#[inline(always)]
pub(crate) fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// f32 → bf16, round to nearest, ties to even. NaN stays NaN (quieted, sign kept); values that
/// round past the largest finite bf16 become ±inf, as IEEE rounding requires.
#[inline(always)]
pub(crate) fn f32_to_bf16(x: f32) -> bf16 {
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let nan = (b >> 16) | 0x40;
    let is_nan = b & 0x7fff_ffff > 0x7f80_0000;
    bf16::from_bits(if is_nan { nan } else { rounded } as u16)
}

/// f32 → bf16 with stochastic rounding: `x` rounds away from zero with probability
/// `(low 16 bits)/65536` given 16 uniform random bits `r`, so the result is unbiased. This is
/// torchao's `_fp32_to_bf16_sr` rule. NaN stays NaN; the largest finite values may round to ±inf.
#[inline(always)]
pub(crate) fn f32_to_bf16_sr(x: f32, r: u16) -> bf16 {
    let b = x.to_bits();
    let up = u32::from(u32::from(r) < (b & 0xffff));
    let rounded = (b >> 16).wrapping_add(up);
    let nan = (b >> 16) | 0x40;
    let is_nan = b & 0x7fff_ffff > 0x7f80_0000;
    bf16::from_bits(if is_nan { nan } else { rounded } as u16)
}

/// f16 → f32 (exact).
#[inline(always)]
pub(crate) fn f16_to_f32(x: f16) -> f32 {
    let h = u32::from(x.to_bits());
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let man = h & 0x3ff;
    // Normal: rebias 15 → 127. Inf/NaN: exponent all ones. Subnormal: man · 2^-24, exact.
    let normal = ((exp + 112) << 23) | (man << 13);
    let special = 0x7f80_0000 | (man << 13);
    let sub = (man as f32 * (1.0 / 16_777_216.0)).to_bits();
    let mag = if exp == 0 {
        sub
    } else if exp == 0x1f {
        special
    } else {
        normal
    };
    f32::from_bits(sign | mag)
}

/// f32 → f16, round to nearest, ties to even; overflow to ±inf, gradual underflow; NaN stays
/// NaN (quieted, sign kept).
#[inline(always)]
pub(crate) fn f32_to_f16(x: f32) -> f16 {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let a = b & 0x7fff_ffff;
    // Normal range (|x| ≥ 2^-14): rebias and round the 23-bit mantissa to 10 bits; a carry
    // into the exponent is the correct result, up to and including inf.
    let odd = (a >> 13) & 1;
    let normal = a.wrapping_sub(112 << 23).wrapping_add(0xfff + odd) >> 13;
    // Subnormal range: adding 0.5 (2^-1) makes the f32 adder round |x| to a multiple of 2^-24
    // (nearest even), and the low bits are the f16 code.
    let sub = (f32::from_bits(a) + 0.5)
        .to_bits()
        .wrapping_sub(0x3f00_0000);
    let mag = if a > 0x7f80_0000 {
        0x7e00 | ((a >> 13) & 0x3ff)
    } else if a >= 0x4780_0000 {
        // |x| ≥ 65536 (and inf): beyond every rounding to the largest finite value.
        0x7c00
    } else if a < 0x3880_0000 {
        sub
    } else {
        normal
    };
    f16::from_bits((sign | mag) as u16)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn sixteen_bit_to_f32_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let (b, f) = (bf16::from_bits(h), f16::from_bits(h));
            assert!(same(bf16_to_f32(b), b.to_f32()), "bf16 {h:#x}");
            assert!(same(f16_to_f32(f), f.to_f32()), "f16 {h:#x}");
        }
    }

    /// Every 61st f32 bit pattern (70 million values) of both signs, against `half`'s
    /// round-to-nearest-even conversions.
    #[test]
    fn f32_to_sixteen_bit_rounds_like_half() {
        let mut bits = 0u32;
        loop {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let (ours, theirs) = (f32_to_bf16(x), bf16::from_f32(x));
                assert!(
                    same(ours.to_f32(), theirs.to_f32()),
                    "bf16 of {x:e} ({bits:#x})"
                );
                let (ours, theirs) = (f32_to_f16(x), f16::from_f32(x));
                assert!(
                    same(ours.to_f32(), theirs.to_f32()),
                    "f16 of {x:e} ({bits:#x})"
                );
            }
            match bits.checked_add(61) {
                Some(b) if b <= 0x7fff_ffff => bits = b,
                _ => break,
            }
        }
    }

    #[test]
    fn conversions_at_the_edges() {
        // Ties to even at the bf16 and f16 midpoints.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)).to_bits(), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)).to_bits(), 0x3f82);
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0).to_bits(), 0x3c00);
        // Largest finite f32 rounds to bf16 inf; 65520 rounds to f16 inf, 65519 to 65504.
        assert_eq!(f32_to_bf16(f32::MAX).to_bits(), 0x7f80);
        assert_eq!(f32_to_f16(65520.0).to_bits(), 0x7c00);
        assert_eq!(f32_to_f16(65519.0).to_bits(), 0x7bff);
        // Subnormals survive bf16 (no flush to zero) and round into f16 subnormals.
        assert_eq!(f32_to_bf16(f32::from_bits(0x0001_8000)).to_bits(), 0x0002);
        assert_eq!(f32_to_f16(f32::from_bits(0x3380_0001)).to_bits(), 0x0001);
        assert!(f32_to_bf16(f32::NAN).to_f32().is_nan());
        assert!(f32_to_f16(-f32::NAN).to_f32().is_nan());
        // A NaN whose payload lies only in the low 16 bits stays NaN.
        assert!(f32_to_bf16(f32::from_bits(0x7f80_0001)).to_f32().is_nan());
        assert!(
            f32_to_bf16_sr(f32::from_bits(0x7f80_0001), 0)
                .to_f32()
                .is_nan()
        );
    }

    #[test]
    fn stochastic_rounding_picks_a_neighbour() {
        let x = f32::from_bits(0x3f80_4000); // a quarter of the way to the next bf16
        assert_eq!(f32_to_bf16_sr(x, 0x3fff).to_bits(), 0x3f81);
        assert_eq!(f32_to_bf16_sr(x, 0x4000).to_bits(), 0x3f80);
        assert_eq!(f32_to_bf16_sr(-x, 0).to_bits(), 0xbf81); // away from zero
        // Exact bf16 values never move.
        assert_eq!(
            f32_to_bf16_sr(1.5, 0).to_bits(),
            bf16::from_f32(1.5).to_bits()
        );
    }
}
