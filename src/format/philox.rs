//! Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
//! SC 2011): a counter-based generator, so the random bits of an element are a pure function of
//! the key and the counter. Stochastic rounding keys it with the caller's seed and uses
//! `(element index / 8, step)` as the counter; each 128-bit output gives the 16 random bits of
//! eight consecutive elements. Any split of a tensor, and every backend, sees the same bits.

const M0: u64 = 0xD251_1F53;
const M1: u64 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox4x32-10 block: 4 words of output for `counter` under `key`.
#[inline(always)]
pub(crate) fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = M0 * u64::from(c0);
        let p1 = M1 * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

/// Elements that share one Philox block.
pub(crate) const PER_BLOCK: usize = 8;

/// The 16 random bits of element `index` at `step` under `seed`, for a whole run of elements:
/// fills `out[i]` with the bits of element `first + i`.
#[inline(always)]
pub(crate) fn random_u16s(seed: u64, step: u64, first: u64, out: &mut [u16]) {
    let key = [seed as u32, (seed >> 32) as u32];
    let (s0, s1) = (step as u32, (step >> 32) as u32);
    let mut index = first;
    let mut rest = out;
    while !rest.is_empty() {
        let block = index / PER_BLOCK as u64;
        let [a, b, c, d] = philox4x32([block as u32, (block >> 32) as u32, s0, s1], key);
        let words = [
            a as u16,
            (a >> 16) as u16,
            b as u16,
            (b >> 16) as u16,
            c as u16,
            (c >> 16) as u16,
            d as u16,
            (d >> 16) as u16,
        ];
        let from = (index % PER_BLOCK as u64) as usize;
        let take = (PER_BLOCK - from).min(rest.len());
        let (head, tail) = core::mem::take(&mut rest).split_at_mut(take);
        if let Some(src) = words.get(from..from + take) {
            // Element by element: `copy_from_slice` keeps a length-mismatch panic where it is
            // not inlined (opt-level "z").
            for (h, s) in head.iter_mut().zip(src) {
                *h = *s;
            }
        }
        rest = tail;
        index = index.wrapping_add(take as u64);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// Known-answer vectors for Philox4x32-10 published with the Random123 library
    /// (`kat_vectors`): zero, all-ones, and the digits of π as counter and key.
    #[test]
    fn known_answers() {
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn any_split_gives_the_same_bits() {
        let mut whole = [0u16; 100];
        random_u16s(7, 3, 1000, &mut whole);
        for cut in [0, 1, 5, 8, 13, 64, 99, 100] {
            let mut parts = [0u16; 100];
            let (a, b) = parts.split_at_mut(cut);
            random_u16s(7, 3, 1000, a);
            random_u16s(7, 3, 1000 + cut as u64, b);
            assert_eq!(parts, whole, "cut at {cut}");
        }
        let mut other_step = [0u16; 100];
        random_u16s(7, 4, 1000, &mut other_step);
        assert_ne!(other_step, whole);
    }
}
