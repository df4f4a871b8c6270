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
#[inline]
pub fn lanes(bytes: &[u8]) -> Lanes {
    let mut a = 0u32;
    let mut b = 0u32;
    let chunks = bytes.chunks_exact(4);
    let rest = chunks.remainder();
    // Written as two plain reductions so that the compiler vectorizes them.
    for (m, c) in chunks.enumerate() {
        let u = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let m = m as u32;
        a = a.wrapping_add(mix_a(u ^ SEED_A.wrapping_add(m.wrapping_mul(STEP_A))));
        b = b.wrapping_add(mix_b(u ^ SEED_B.wrapping_add(m.wrapping_mul(STEP_B))));
    }
    let mut l = Lanes { a, b };
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        l.add((bytes.len() / 4) as u32, u32::from_le_bytes(last));
    }
    l
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
