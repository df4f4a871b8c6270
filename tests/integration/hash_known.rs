//! The row hash, recomputed here from its definition (the doc comment of
//! `src/engine/hash.rs`) without calling the library, must be what both
//! engines' `row_stats` return: rows read as little-endian 32-bit units (the
//! last zero-padded), two lanes of wrapping sums of bijective mixes keyed by
//! position, each finalised with the unit count.

use crate::common::{encode, gpu};
use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::progress::Progress;
use singularity_gpu::{Dtype, Equality, Matrix};

/// π's first fractional hex digits, the golden ratio's, e's, and xxHash's
/// PRIME32_2: the keys of the two lanes (SEED + m·STEP for unit m).
const SEED_A: u32 = 0x243f_6a88;
const STEP_A: u32 = 0x9e37_79b9;
const SEED_B: u32 = 0xb7e1_5162;
const STEP_B: u32 = 0x85eb_ca77;

/// MurmurHash3's fmix32.
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Chris Wellons' lowbias32 (hash-prospector).
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The definition, one unit at a time.
fn definition(row: &[u8]) -> u64 {
    let units: Vec<u32> = row
        .chunks(4)
        .map(|c| {
            let mut u = [0u8; 4];
            u[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(u)
        })
        .collect();
    let (mut a, mut b) = (0u32, 0u32);
    for (m, &u) in units.iter().enumerate() {
        let m = m as u32;
        a = a.wrapping_add(fmix32(u ^ SEED_A.wrapping_add(m.wrapping_mul(STEP_A))));
        b = b.wrapping_add(lowbias32(u ^ SEED_B.wrapping_add(m.wrapping_mul(STEP_B))));
    }
    let n = units.len() as u32;
    ((lowbias32(b ^ n) as u64) << 32) | fmix32(a ^ n) as u64
}

#[test]
fn the_mixes_are_the_published_functions() {
    // Known values of murmur3's fmix32 (as in the reference smhasher code).
    assert_eq!(fmix32(0), 0);
    assert_eq!(fmix32(1), 0x514e_28b7);
    // lowbias32 fixes 0 and is a bijection: no two of a sample collide.
    assert_eq!(lowbias32(0), 0);
    let mut seen: Vec<u32> = (0..50_000u32).map(lowbias32).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 50_000);
}

/// Hand-built rows: zeros, ones, ±0, NaN, a counting pattern; rows whose
/// byte length is not a multiple of 4 (1, 3, 5 and 7 bf16/f16 columns), rows
/// of 8+ units (the CPU's 8-wide blocks plus a tail), and f64.
fn cases() -> Vec<(Dtype, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let counting = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 37 + 11) as u8).collect() };
    // bf16, 1 column: rows of 2 bytes (one half-padded unit); four rows.
    out.push((
        Dtype::BF16,
        1,
        [0x3f80u16, 0x0000, 0x8000, 0x7fc0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    ));
    // f16, 3 columns (6 bytes: rows start at offsets ≡ 2 mod 4 in the buffer).
    let mut f16: Vec<u8> = Vec::new();
    for row in [[1.0, -2.0, 0.5], [0.0, -0.0, 65504.0], [1.0, -2.0, 0.5]] {
        for x in row {
            f16.extend(encode(Dtype::F16, x));
        }
    }
    out.push((Dtype::F16, 3, f16));
    // bf16, 5 and 7 columns of a byte pattern (10 and 14 bytes per row).
    out.push((Dtype::BF16, 5, counting(10 * 3)));
    out.push((Dtype::BF16, 7, counting(14 * 5)));
    // f32, 1 column; f32 of 9 and 33 columns (past one and four 8-unit blocks).
    out.push((
        Dtype::F32,
        1,
        [0.0f32, -0.0, 1.0, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    ));
    out.push((Dtype::F32, 9, counting(36 * 2)));
    out.push((Dtype::F32, 33, counting(132 * 3)));
    // f64, 2 and 3 columns; bf16 of 301 columns (602 bytes, many threads per row on the GPU).
    out.push((Dtype::F64, 3, counting(24 * 4)));
    let mut f64s = Vec::new();
    for x in [1.0f64, -0.0, f64::MIN_POSITIVE, -1e300] {
        f64s.extend(x.to_le_bytes());
    }
    out.push((Dtype::F64, 2, f64s));
    out.push((Dtype::BF16, 301, counting(602 * 3)));
    out
}

fn check(engine: &dyn Engine, name: &str) {
    for (dtype, cols, bytes) in cases() {
        let rb = cols * dtype.size();
        let rows = bytes.len() / rb;
        let m = Matrix::new(dtype, rows, cols, &bytes).unwrap();
        let stats = engine
            .row_stats(&m, Equality::Bitwise, &Progress::hidden())
            .expect("row_stats");
        for r in 0..rows {
            let row = &bytes[r * rb..(r + 1) * rb];
            assert_eq!(
                stats.hashes[r],
                definition(row),
                "{name}: {dtype} × {cols} columns, row {r} ({rb} bytes)"
            );
        }
        // Numeric equality hashes the row with −0 written as +0.
        let numeric = engine
            .row_stats(&m, Equality::Numeric, &Progress::hidden())
            .expect("row_stats");
        let s = dtype.size();
        for r in 0..rows {
            let mut row = bytes[r * rb..(r + 1) * rb].to_vec();
            for e in row.chunks_exact_mut(s) {
                // −0: the sign bit alone, in the element's last (high) byte.
                if e[s - 1] == 0x80 && e[..s - 1].iter().all(|&b| b == 0) {
                    e[s - 1] = 0;
                }
            }
            assert_eq!(
                numeric.hashes[r],
                definition(&row),
                "{name}: numeric {dtype} × {cols} columns, row {r}"
            );
        }
    }
}

#[test]
fn cpu_hashes_match_the_definition() {
    check(&CpuEngine, "cpu");
}

#[test]
fn gpu_hashes_match_the_definition() {
    let Some(gpu) = gpu() else { return };
    check(gpu, "gpu");
}

/// A hand-worked value: one f32 row of 1.0 (bits 0x3f800000) is one unit at
/// m = 0, so the hash is lowbias32(lowbias32(u ^ SEED_B) ^ 1) << 32 |
/// fmix32(fmix32(u ^ SEED_A) ^ 1).
#[test]
fn a_one_unit_row_by_hand() {
    let u = 1.0f32.to_bits();
    let want = ((lowbias32(lowbias32(u ^ SEED_B) ^ 1) as u64) << 32)
        | fmix32(fmix32(u ^ SEED_A) ^ 1) as u64;
    assert_eq!(definition(&1.0f32.to_le_bytes()), want);
    let bytes = u.to_le_bytes();
    let m = Matrix::new(Dtype::F32, 1, 1, &bytes).unwrap();
    let s = CpuEngine
        .row_stats(&m, Equality::Bitwise, &Progress::hidden())
        .unwrap();
    assert_eq!(s.hashes[0], want);
}
