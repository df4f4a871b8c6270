//! The row hash shared by both engines (mirrored in `shaders/row_stats.wgsl`).
//!
//! A row's bytes are read as little-endian 32-bit *units* `u_m` (the last one
//! zero-padded when the row length is not a multiple of 4). Two independent
//! 32-bit lanes are each a wrapping sum of a bijective mix of `u_m` keyed by
//! its position `m`:
//!
//! ```text
//! lane_a = Σ mix_a(u_m ^ (SEED_A + m·STEP_A))      lane_b = Σ mix_b(u_m ^ (SEED_B + m·STEP_B))
//! hash   = mix_b(lane_b ^ U) << 32 | mix_a(lane_a ^ U)      (U = number of units)
//! ```
//!
//! A sum of per-position terms lets a GPU workgroup split a row across threads
//! and add the partial lanes in any order. Because each mix is a bijection,
//! rows that differ in one unit always hash differently; for other differences
//! a collision needs both lanes to collide. Collisions are harmless anyway:
//! groups are confirmed by comparing bytes.

pub const SEED_A: u32 = 0x243f_6a88;
pub const STEP_A: u32 = 0x9e37_79b9;
pub const SEED_B: u32 = 0xb7e1_5162;
pub const STEP_B: u32 = 0x85eb_ca77;

/// MurmurHash3's 32-bit finalizer (a bijection).
#[inline(always)]
pub fn mix_a(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^ (x >> 16)
}

/// Chris Wellons' "lowbias32" (a bijection with other constants than `mix_a`).
#[inline(always)]
pub fn mix_b(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The two lane sums before finalization, as both engines compute them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lanes {
    pub a: u32,
    pub b: u32,
}

impl Lanes {
    /// Adds unit `u` at position `m`.
    #[inline(always)]
    pub fn add(&mut self, m: u32, u: u32) {
        self.a = self
            .a
            .wrapping_add(mix_a(u ^ SEED_A.wrapping_add(m.wrapping_mul(STEP_A))));
        self.b = self
            .b
            .wrapping_add(mix_b(u ^ SEED_B.wrapping_add(m.wrapping_mul(STEP_B))));
    }

    /// The 64-bit hash of a row of `units` units.
    #[inline]
    pub fn finish(self, units: u32) -> u64 {
        ((mix_b(self.b ^ units) as u64) << 32) | mix_a(self.a ^ units) as u64
    }
}

/// Number of 32-bit units in a row of `row_bytes` bytes.
pub fn units(row_bytes: usize) -> u32 {
    row_bytes.div_ceil(4) as u32
}

/// Lane sums over the units of `bytes`.
///
/// Eight units at a time into eight partial lane sums (wrapping sums commute,
/// so the result is the definition's), which compiles to 8-wide integer SIMD.
#[inline(always)]
pub fn lanes(bytes: &[u8]) -> Lanes {
    const W: usize = 8;
    let mut a = [0u32; W];
    let mut b = [0u32; W];
    let mut ka: [u32; W] =
        std::array::from_fn(|i| SEED_A.wrapping_add((i as u32).wrapping_mul(STEP_A)));
    let mut kb: [u32; W] =
        std::array::from_fn(|i| SEED_B.wrapping_add((i as u32).wrapping_mul(STEP_B)));
    let step_a = STEP_A.wrapping_mul(W as u32);
    let step_b = STEP_B.wrapping_mul(W as u32);
    let blocks = bytes.chunks_exact(4 * W);
    let rest = blocks.remainder();
    for blk in blocks {
        for i in 0..W {
            let u =
                u32::from_le_bytes([blk[4 * i], blk[4 * i + 1], blk[4 * i + 2], blk[4 * i + 3]]);
            a[i] = a[i].wrapping_add(mix_a(u ^ ka[i]));
            b[i] = b[i].wrapping_add(mix_b(u ^ kb[i]));
            ka[i] = ka[i].wrapping_add(step_a);
            kb[i] = kb[i].wrapping_add(step_b);
        }
    }
    combine(a, b, bytes, rest)
}

/// Adds up eight partial lane sums, then the units of `rest`, the bytes of
/// `bytes` after its last whole 32-byte block (the last unit zero-padded).
#[inline(always)]
fn combine(a: [u32; 8], b: [u32; 8], bytes: &[u8], rest: &[u8]) -> Lanes {
    let mut l = Lanes {
        a: a.iter().fold(0u32, |x, y| x.wrapping_add(*y)),
        b: b.iter().fold(0u32, |x, y| x.wrapping_add(*y)),
    };
    let first = ((bytes.len() - rest.len()) / 4) as u32;
    for (j, c) in rest.chunks(4).enumerate() {
        let mut unit = [0u8; 4];
        unit[..c.len()].copy_from_slice(c);
        l.add(first + j as u32, u32::from_le_bytes(unit));
    }
    l
}

/// [`lanes`] with explicit AVX2: one 32-byte load per eight units (the
/// auto-vectorizer assembles those loads byte by byte).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn lanes_avx2(bytes: &[u8]) -> Lanes {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn mix(x: __m256i, m1: __m256i, s2: i32, m2: __m256i) -> __m256i {
        let x = _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x));
        let x = _mm256_mullo_epi32(x, m1);
        let x = match s2 {
            13 => _mm256_xor_si256(x, _mm256_srli_epi32::<13>(x)),
            _ => _mm256_xor_si256(x, _mm256_srli_epi32::<15>(x)),
        };
        let x = _mm256_mullo_epi32(x, m2);
        _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x))
    }
    let key = |seed: u32, step: u32| -> [u32; 8] {
        std::array::from_fn(|i| seed.wrapping_add((i as u32).wrapping_mul(step)))
    };
    let (ka0, kb0) = (key(SEED_A, STEP_A), key(SEED_B, STEP_B));
    let mut ka = _mm256_loadu_si256(ka0.as_ptr().cast());
    let mut kb = _mm256_loadu_si256(kb0.as_ptr().cast());
    let da = _mm256_set1_epi32(STEP_A.wrapping_mul(8) as i32);
    let db = _mm256_set1_epi32(STEP_B.wrapping_mul(8) as i32);
    let (a1, a2) = (
        _mm256_set1_epi32(0x85eb_ca6bu32 as i32),
        _mm256_set1_epi32(0xc2b2_ae35u32 as i32),
    );
    let (b1, b2) = (
        _mm256_set1_epi32(0x7feb_352d),
        _mm256_set1_epi32(0x846c_a68bu32 as i32),
    );
    let mut a = _mm256_setzero_si256();
    let mut b = _mm256_setzero_si256();
    let blocks = bytes.chunks_exact(32);
    let rest = blocks.remainder();
    for blk in blocks {
        // Little-endian units: x86 loads are little-endian.
        let u = _mm256_loadu_si256(blk.as_ptr().cast());
        a = _mm256_add_epi32(a, mix(_mm256_xor_si256(u, ka), a1, 13, a2));
        b = _mm256_add_epi32(b, mix(_mm256_xor_si256(u, kb), b1, 15, b2));
        ka = _mm256_add_epi32(ka, da);
        kb = _mm256_add_epi32(kb, db);
    }
    let (mut la, mut lb) = ([0u32; 8], [0u32; 8]);
    _mm256_storeu_si256(la.as_mut_ptr().cast(), a);
    _mm256_storeu_si256(lb.as_mut_ptr().cast(), b);
    combine(la, lb, bytes, rest)
}

/// The 64-bit hash of one row's bytes.
pub fn row_hash(bytes: &[u8]) -> u64 {
    lanes(bytes).finish(units(bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent, one-unit-at-a-time restatement of the definition above.
    fn reference(bytes: &[u8]) -> u64 {
        let mut padded = bytes.to_vec();
        while !padded.len().is_multiple_of(4) {
            padded.push(0);
        }
        let n = padded.len() / 4;
        let (mut a, mut b) = (0u32, 0u32);
        for m in 0..n {
            let u = u32::from_le_bytes(padded[4 * m..4 * m + 4].try_into().unwrap());
            let ka = 0x243f_6a88u32.wrapping_add((m as u32).wrapping_mul(0x9e37_79b9));
            let kb = 0xb7e1_5162u32.wrapping_add((m as u32).wrapping_mul(0x85eb_ca77));
            a = a.wrapping_add(mix_a(u ^ ka));
            b = b.wrapping_add(mix_b(u ^ kb));
        }
        ((mix_b(b ^ n as u32) as u64) << 32) | mix_a(a ^ n as u32) as u64
    }

    #[test]
    fn matches_reference_for_all_tail_lengths() {
        let bytes: Vec<u8> = (0..37u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..bytes.len() {
            assert_eq!(
                row_hash(&bytes[..len]),
                reference(&bytes[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_lanes_match_reference() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 91 + 7) as u8).collect();
        for len in 0..bytes.len() {
            let l = unsafe { lanes_avx2(&bytes[..len]) };
            assert_eq!(l.finish(units(len)), reference(&bytes[..len]), "len {len}");
        }
    }

    #[test]
    fn mixes_are_bijections_on_a_sample() {
        // murmur3 fmix32 known value
        assert_eq!(mix_a(1), 0x514e_28b7);
        let mut seen = std::collections::HashSet::new();
        for x in 0..100_000u32 {
            assert!(seen.insert(mix_b(x)));
        }
    }

    #[test]
    fn single_unit_changes_always_change_the_hash() {
        let base = vec![0u8; 64];
        let h0 = row_hash(&base);
        for pos in 0..64 {
            for bit in 0..8 {
                let mut r = base.clone();
                r[pos] ^= 1 << bit;
                assert_ne!(row_hash(&r), h0);
            }
        }
    }
}
