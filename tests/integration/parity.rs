//! GPU/CPU parity on random matrices of every dtype with planted groups,
//! signed zeros, NaN rows, forced hash collisions and tiny streamed chunks.
//! Expected groups, norms, sums and distances come from brute force in f64.

use crate::common::{
    assert_close, distance, encode, fresh_gpu, gpu, norm, reference_groups, Built, Rng,
};
use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::{Engine, RowStats};
use singularity_gpu::progress::Progress;
use singularity_gpu::survey::{group_rows, GroupOptions};
use singularity_gpu::{Dtype, Equality, GpuOptions};

const DTYPES: [Dtype; 4] = [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64];

/// A random matrix with planted groups (sizes 2..=6 and one of 40), a pair of
/// rows one bit apart (must stay distinct), and an all-zero row.
fn planted(dtype: Dtype, rows: usize, cols: usize, seed: u64) -> Built {
    let mut b = Built::random(dtype, rows, cols, seed);
    let mut rng = Rng::new(seed ^ 0xabc);
    let mut next = rows / 2;
    for size in [40, 2, 3, 4, 5, 6, 2, 2] {
        let src = rng.below(rows / 2);
        for _ in 0..size - 1 {
            if next < rows {
                b.copy_row(src, next);
                next += 1;
            }
        }
    }
    // Near-duplicate: the last column's lowest bit flipped.
    b.copy_row(1, 2);
    let bits = b.get_bits(2, cols - 1);
    b.set_bits(2, cols - 1, bits ^ 1);
    for c in 0..cols {
        b.set_bits(3, c, 0);
    }
    b
}

fn stats(engine: &dyn Engine, b: &Built, eq: Equality) -> RowStats {
    engine
        .row_stats(&b.matrix(), eq, &Progress::hidden())
        .expect("row_stats")
}

fn groups_of(b: &Built, s: &RowStats, eq: Equality, hash_bits: u32) -> Vec<Vec<usize>> {
    let g = group_rows(
        &b.matrix(),
        &s.hashes,
        &s.has_nan,
        GroupOptions {
            equality: eq,
            hash_bits,
        },
    );
    g.groups.into_iter().map(|g| g.ids).collect()
}

/// Checks one engine's stats against the brute-force references.
fn check_against_reference(b: &Built, s: &RowStats, eq: Equality, what: &str) {
    let numeric = eq == Equality::Numeric;
    assert_eq!(
        groups_of(b, s, eq, 64),
        reference_groups(b, numeric),
        "{what}: groups"
    );
    for r in 0..b.rows {
        assert_close(
            s.norms[r],
            norm(b, r),
            1e-5,
            &format!("{what}: norm of row {r}"),
        );
        let nan = b.values(r).iter().any(|v| v.is_nan());
        assert_eq!(s.has_nan[r], nan, "{what}: NaN flag of row {r}");
    }
    for c in 0..b.cols {
        let want: f64 = (0..b.rows).map(|r| b.values(r)[c]).sum();
        let scale: f64 = (0..b.rows).map(|r| b.values(r)[c].abs()).sum();
        if want.is_nan() {
            continue;
        }
        assert!(
            (s.column_sums[c] - want).abs() <= 1e-5 * scale.max(1e-30),
            "{what}: column {c} sum {} vs {want}",
            s.column_sums[c]
        );
    }
}

#[test]
fn cpu_matches_brute_force_for_every_dtype() {
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        for cols in [1, 7, 64, 131] {
            let b = planted(dtype, 300, cols, 11 + k as u64 * 100 + cols as u64);
            let s = stats(&CpuEngine::new(), &b, Equality::Bitwise);
            check_against_reference(&b, &s, Equality::Bitwise, &format!("cpu {dtype} d={cols}"));
        }
    }
}

#[test]
fn gpu_matches_cpu_and_brute_force_for_every_dtype() {
    let Some(gpu) = gpu() else { return };
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        // Odd widths put 2-byte rows at addresses ≡ 2 (mod 4) in the GPU buffer.
        for cols in [1, 7, 64, 131, 1000] {
            let b = planted(dtype, 300, cols, 7 + k as u64 * 100 + cols as u64);
            let cpu = stats(&CpuEngine::new(), &b, Equality::Bitwise);
            let g = stats(gpu, &b, Equality::Bitwise);
            assert_eq!(
                g.hashes, cpu.hashes,
                "{dtype} d={cols}: GPU and CPU hashes differ"
            );
            check_against_reference(&b, &g, Equality::Bitwise, &format!("gpu {dtype} d={cols}"));
            // Norms of the two paths within 1e-5 relative of each other.
            for r in 0..b.rows {
                assert_close(g.norms[r], cpu.norms[r], 1e-5, &format!("{dtype} row {r}"));
            }
        }
    }
}

#[test]
fn pairwise_distances_match_brute_force_on_both_paths() {
    let gpu = gpu();
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        let b = Built::random(dtype, 40, 257, 99 + k as u64);
        let m = b.matrix();
        let rows: Vec<usize> = vec![0, 5, 6, 17, 39, 21];
        let mut want = vec![];
        for i in 0..rows.len() {
            for j in i + 1..rows.len() {
                want.push(distance(&b, rows[i], rows[j]));
            }
        }
        let cpu = CpuEngine::new().pairwise_l2(&m, &rows).unwrap();
        assert_eq!(cpu.len(), want.len());
        for (g, w) in cpu.iter().zip(&want) {
            assert_close(*g, *w, 1e-12, "cpu distance");
        }
        if let Some(gpu) = gpu {
            let got = gpu.pairwise_l2(&m, &rows).unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_close(*g, *w, 1e-5, &format!("gpu {dtype} distance"));
            }
        }
    }
}

#[test]
fn gpu_pairwise_tiles_cover_many_representatives() {
    let Some(gpu) = gpu() else { return };
    // More than one 1024-row tile: tile pairs and the triangle order both matter.
    let b = Built::random(Dtype::BF16, 1100, 4, 5);
    let rows: Vec<usize> = (0..1100).collect();
    let got = gpu.pairwise_l2(&b.matrix(), &rows).unwrap();
    assert_eq!(got.len(), 1100 * 1099 / 2);
    let mut idx = 0;
    for i in 0..1100 {
        for j in i + 1..1100 {
            if (i * 31 + j) % 97 == 0 || i >= 1020 {
                assert_close(got[idx], distance(&b, i, j), 1e-5, &format!("d({i},{j})"));
            }
            idx += 1;
        }
    }
}

/// Rows that differ only by the sign of a zero, and rows holding NaNs.
fn zeros_and_nans(dtype: Dtype) -> Built {
    let mut b = Built::random(dtype, 12, 9, 3);
    let nz = match dtype {
        Dtype::F16 | Dtype::BF16 => 0x8000,
        Dtype::F32 => 0x8000_0000,
        Dtype::F64 => 1 << 63,
    };
    let qnan: u64 = match dtype {
        Dtype::F16 => 0x7e00,
        Dtype::BF16 => 0x7fc0,
        Dtype::F32 => 0x7fc0_0000,
        Dtype::F64 => 0x7ff8_0000_0000_0000,
    };
    // Rows 0, 1, 2: equal values, zeros of different signs in column 4.
    b.copy_row(0, 1);
    b.copy_row(0, 2);
    b.set_bits(0, 4, 0);
    b.set_bits(1, 4, nz);
    b.set_bits(2, 4, 0);
    // Rows 5, 6: the same NaN bits; row 7: another NaN payload; row 8: NaN elsewhere.
    b.copy_row(5, 6);
    b.copy_row(5, 7);
    b.copy_row(5, 8);
    b.set_bits(5, 2, qnan);
    b.set_bits(6, 2, qnan);
    b.set_bits(7, 2, qnan | 1);
    b.set_bits(8, 3, qnan);
    b
}

#[test]
fn signed_zeros_and_nans_under_both_equalities() {
    let gpu = gpu();
    for dtype in DTYPES {
        let b = zeros_and_nans(dtype);
        let mut engines: Vec<(&str, &dyn Engine)> = vec![("cpu", &CpuEngine)];
        if let Some(g) = gpu {
            engines.push(("gpu", g));
        }
        for (name, engine) in engines {
            // Bitwise: +0 and −0 rows differ; identical NaN bit patterns group.
            let s = stats(engine, &b, Equality::Bitwise);
            let groups = groups_of(&b, &s, Equality::Bitwise, 64);
            assert_eq!(
                groups,
                vec![vec![0, 2], vec![5, 6]],
                "{name} {dtype} bitwise"
            );
            assert_eq!(groups, reference_groups(&b, false));
            // Numeric: ±0 equal; NaN rows are set apart and group with nothing.
            let s = stats(engine, &b, Equality::Numeric);
            let g = group_rows(
                &b.matrix(),
                &s.hashes,
                &s.has_nan,
                GroupOptions {
                    equality: Equality::Numeric,
                    hash_bits: 64,
                },
            );
            let ids: Vec<Vec<usize>> = g.groups.iter().map(|g| g.ids.clone()).collect();
            assert_eq!(ids, vec![vec![0, 1, 2]], "{name} {dtype} numeric");
            assert_eq!(ids, reference_groups(&b, true));
            assert_eq!(g.nan_rows, vec![5, 6, 7, 8], "{name} {dtype} NaN rows");
            assert_eq!(g.n_unique, 12 - 2, "{name} {dtype} unique");
        }
    }
}

#[test]
fn forced_hash_collisions_never_merge_distinct_rows() {
    let gpu = gpu();
    for dtype in DTYPES {
        let b = planted(dtype, 400, 5, 42);
        let want = reference_groups(&b, false);
        let mut all = vec![("cpu", stats(&CpuEngine, &b, Equality::Bitwise))];
        if let Some(g) = gpu {
            all.push(("gpu", stats(g, &b, Equality::Bitwise)));
        }
        for (name, s) in &all {
            // 0 bits: every row in one bucket; 3 bits: eight mixed buckets.
            for bits in [0, 3, 64] {
                assert_eq!(
                    groups_of(&b, s, Equality::Bitwise, bits),
                    want,
                    "{name} {dtype} with {bits}-bit hashes"
                );
            }
        }
    }
}

#[test]
fn streaming_in_tiny_chunks_changes_nothing() {
    for (dtype, cols, chunk) in [
        (Dtype::BF16, 33, 700u64),
        (Dtype::F16, 5, 64),
        (Dtype::F32, 64, 4096),
        (Dtype::F64, 3, 100),
    ] {
        let Some(gpu) = fresh_gpu(GpuOptions {
            max_chunk_bytes: Some(chunk),
            ..Default::default()
        }) else {
            return;
        };
        let b = planted(dtype, 257, cols, chunk);
        let cpu = stats(&CpuEngine, &b, Equality::Bitwise);
        let g = stats(&gpu, &b, Equality::Bitwise);
        assert_eq!(g.hashes, cpu.hashes, "{dtype}: chunked hashes");
        check_against_reference(&b, &g, Equality::Bitwise, &format!("chunked {dtype}"));
    }
}

#[test]
fn every_threads_per_row_setting_gives_the_same_stats() {
    for tpr in [1, 2, 32, 256] {
        let Some(gpu) = fresh_gpu(GpuOptions {
            threads_per_row: Some(tpr),
            ..Default::default()
        }) else {
            return;
        };
        for (dtype, cols) in [(Dtype::BF16, 77), (Dtype::F32, 40), (Dtype::F64, 9)] {
            let b = planted(dtype, 130, cols, tpr as u64);
            let cpu = stats(&CpuEngine, &b, Equality::Bitwise);
            let g = stats(&gpu, &b, Equality::Bitwise);
            assert_eq!(g.hashes, cpu.hashes, "{dtype} with {tpr} threads per row");
            check_against_reference(&b, &g, Equality::Bitwise, &format!("{dtype} tpr {tpr}"));
        }
    }
}

/// Rows whose f32 squares overflow (values near 1e20) or underflow (near
/// 1e-25), each dtype that can hold them (f16 cannot), at widths `cols`.
fn huge_and_tiny_rows(dtype: Dtype, cols: usize) -> Built {
    let mut b = Built::random(dtype, 20, cols, 77 + cols as u64);
    let mut rng = Rng::new(5);
    for c in 0..cols {
        // Row 0 huge, row 1 tiny, row 2 huge with one tiny and one zero value.
        b.set_bits(0, c, bits(dtype, rng.unit() * 3e20));
        b.set_bits(1, c, bits(dtype, rng.unit() * 4e-25));
        b.set_bits(2, c, bits(dtype, rng.unit() * 1e20));
    }
    b.set_bits(2, 0, bits(dtype, 1e-25));
    if cols > 1 {
        b.set_bits(2, 1, 0);
    }
    b
}

fn check_norms(engine: &dyn Engine, name: &str, widths: &[usize]) {
    for dtype in [Dtype::F32, Dtype::BF16, Dtype::F64] {
        for &cols in widths {
            let b = huge_and_tiny_rows(dtype, cols);
            let s = stats(engine, &b, Equality::Bitwise);
            for r in 0..b.rows {
                let want = norm(&b, r);
                assert!(want.is_finite() && want > 0.0);
                let what = format!("{name} {dtype} d={cols}: norm of row {r}");
                assert_close(s.norms[r], want, 1e-5, &what);
            }
        }
    }
}

/// The GPU sums f32 squares; rows whose sum overflows or underflows take a
/// scaled slow path and must still give the f64 norm.
#[test]
fn gpu_norms_of_huge_and_tiny_rows_match_brute_force() {
    let Some(gpu) = gpu() else { return };
    check_norms(gpu, "gpu", &[1, 7, 64, 131]);
}

/// The CPU's portable path (f64 squares: narrow rows and every f64 row).
#[test]
fn cpu_norms_of_huge_and_tiny_narrow_rows_match_brute_force() {
    check_norms(&CpuEngine, "cpu", &[1, 7, 63]);
}

/// The CPU's AVX2 path squares bf16/f32 values in f32 partials of 64
/// columns, so it takes the scaled exact path when they overflow or underflow.
#[test]
fn cpu_norms_of_huge_and_tiny_wide_rows_match_brute_force() {
    check_norms(&CpuEngine, "cpu", &[64, 131]);
}

/// The raw bits of `x` encoded as `dtype`.
fn bits(dtype: Dtype, x: f64) -> u64 {
    let mut b = [0u8; 8];
    let e = encode(dtype, x);
    b[..e.len()].copy_from_slice(&e);
    u64::from_le_bytes(b)
}
