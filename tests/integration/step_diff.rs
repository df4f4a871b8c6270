//! The GPU step differ against the CPU one and against a brute force written
//! here from the definitions (`Dtype::steps_between`, `hash::row_hash`), on
//! hand-made series of every dtype: rows that stay, move by one step, flip
//! between +0 and −0, hold NaN or ±∞, cross zero or are copied from another
//! row; row counts that are no multiple of a workgroup's rows; 2-byte rows
//! with an odd number of columns (rows that start and end mid-word), changed
//! right next to a neighbour that did not; and steps streamed in many chunks.

use crate::common::{fresh_gpu, gpu, Built, Rng};
use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::hash::row_hash;
use singularity_gpu::engine::Engine;
use singularity_gpu::types::StepRows;
use singularity_gpu::{Dtype, Error, GpuOptions};

const DTYPES: [Dtype; 4] = [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64];

/// Bits of +∞ and of a quiet NaN in `dtype`.
fn inf_nan(dtype: Dtype) -> (u64, u64) {
    match dtype {
        Dtype::F16 => (0x7c00, 0x7e00),
        Dtype::BF16 => (0x7f80, 0x7fc0),
        Dtype::F32 => (0x7f80_0000, 0x7fc0_0000),
        Dtype::F64 => (0x7ff0_0000_0000_0000, 0x7ff8_0000_0000_0000),
    }
}

/// Shapes per dtype: odd column counts for the 2-byte dtypes (rows start
/// mid-word), row counts that fill no whole workgroup.
fn shapes(dtype: Dtype) -> Vec<(usize, usize)> {
    match dtype {
        Dtype::F16 | Dtype::BF16 => vec![(301, 7), (67, 1), (130, 64), (45, 129)],
        Dtype::F32 => vec![(301, 7), (67, 1), (130, 33)],
        Dtype::F64 => vec![(301, 3), (67, 1), (45, 17)],
    }
}

/// A series of `steps` steps: step 0 random, each next one the one before
/// with hand-made changes (different rows at each step).
fn series(dtype: Dtype, rows: usize, cols: usize, steps: usize, seed: u64) -> Vec<Built> {
    let mut rng = Rng::new(seed);
    let mut out = vec![Built::random(dtype, rows, cols, seed)];
    let sign = dtype.negative_zero_bits();
    let (inf, nan) = inf_nan(dtype);
    let last = cols - 1;
    for t in 1..steps {
        let mut b = out[t - 1].clone();
        let pick = |rng: &mut Rng| rng.below(rows);
        // One step up in the last column, one step down in the first.
        let r = pick(&mut rng);
        let bits = b.get_bits(r, last);
        b.set_bits(r, last, if bits & (sign - 1) == 0 { 1 } else { bits + 1 });
        let r = pick(&mut rng);
        let bits = b.get_bits(r, 0);
        b.set_bits(
            r,
            0,
            if bits & (sign - 1) == 0 {
                bits
            } else {
                bits - 1
            },
        );
        // +0 ↔ −0: a row whose zero flips sign at every step (bytes change,
        // nothing moves).
        b.set_bits(5 % rows, last, if t % 2 == 0 { 0 } else { sign });
        // NaN, ±∞, and moves between them and finite values.
        let r = pick(&mut rng);
        b.set_bits(r, cols / 2, if t % 2 == 0 { nan } else { inf });
        let r = pick(&mut rng);
        b.set_bits(r, 0, inf | sign);
        b.set_bits(7 % rows, 0, [nan, nan | sign, inf, 0x1, nan ^ 1][t % 5]);
        // Across zero: x → −x in every column.
        let r = pick(&mut rng);
        for c in 0..cols {
            let bits = b.get_bits(r, c);
            b.set_bits(r, c, bits ^ sign);
        }
        // From the smallest subnormal on one side to the other.
        b.set_bits(11 % rows, last, if t % 2 == 0 { 1 } else { sign | 1 });
        // A whole row copied from another.
        let (from, to) = (pick(&mut rng), pick(&mut rng));
        b.copy_row(from, to);
        // The first element of a row changes and the row before does not
        // (with an odd number of 2-byte columns they share a word).
        if rows > 20 {
            let r = 13 + t;
            let bits = b.get_bits(r, 0);
            b.set_bits(r, 0, bits ^ 0x3);
            // …and the last element of another while its next row stays.
            let r = 2 + t;
            let bits = b.get_bits(r, last);
            b.set_bits(r, last, bits ^ (sign >> 1));
        }
        // The last row too (the end of the last chunk).
        let bits = b.get_bits(rows - 1, last);
        b.set_bits(rows - 1, last, bits ^ 1);
        out.push(b);
    }
    // One step with nothing changed.
    let same = out[steps - 1].clone();
    out.push(same);
    out
}

/// The definitions, row by row.
fn brute_force(prev: Option<&Built>, cur: &Built) -> StepRows {
    let hashes = (0..cur.rows).map(|r| row_hash(cur.row(r))).collect();
    let Some(prev) = prev else {
        return StepRows {
            hashes,
            ..StepRows::default()
        };
    };
    let d = cur.dtype;
    let changed = (0..cur.rows).map(|r| prev.row(r) != cur.row(r)).collect();
    let (mut linf, mut l1) = (Vec::new(), Vec::new());
    if d != Dtype::F64 {
        for r in 0..cur.rows {
            let steps: Vec<u64> = (0..cur.cols)
                .map(|c| d.steps_between(prev.get_bits(r, c), cur.get_bits(r, c)))
                .collect();
            let max = *steps.iter().max().unwrap();
            assert!(max <= u32::MAX as u64);
            linf.push(max as u32);
            l1.push(steps.iter().sum());
        }
    }
    StepRows {
        hashes,
        changed: Some(changed),
        linf_steps: linf,
        l1_steps: l1,
    }
}

/// Runs `steps` through a differ of `engine`.
fn run(engine: &dyn Engine, steps: &[Built]) -> Vec<StepRows> {
    let b = &steps[0];
    let mut d = engine.step_differ(b.dtype, b.rows, b.cols).unwrap();
    let mut out = Vec::new();
    for (t, s) in steps.iter().enumerate() {
        let prev = (t > 0).then(|| steps[t - 1].matrix());
        out.push(d.push(prev.as_ref(), &s.matrix()).unwrap());
    }
    out
}

fn compare(what: &str, got: &[StepRows], want: &[StepRows]) {
    assert_eq!(got.len(), want.len());
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.hashes, w.hashes, "{what}, step {t}: hashes");
        assert_eq!(g.changed, w.changed, "{what}, step {t}: changed");
        assert_eq!(g.linf_steps, w.linf_steps, "{what}, step {t}: linf");
        assert_eq!(g.l1_steps, w.l1_steps, "{what}, step {t}: l1");
    }
}

#[test]
fn gpu_matches_cpu_and_brute_force_for_every_dtype() {
    let Some(gpu) = gpu() else { return };
    // Chunks of a few rows each: many chunks per step, the last one short.
    let Some(chunked) = fresh_gpu(GpuOptions {
        max_chunk_bytes: Some(200),
        ..GpuOptions::default()
    }) else {
        return;
    };
    // Several threads per row (what hardware adapters get; CPU adapters such
    // as lavapipe get one), their partial results combined in the workgroup.
    let shared: Vec<GpuEngine> = [(None, 4), (Some(200), 32)]
        .into_iter()
        .filter_map(|(max_chunk_bytes, tpr)| {
            fresh_gpu(GpuOptions {
                max_chunk_bytes,
                threads_per_row: Some(tpr),
            })
        })
        .collect();
    let cpu = CpuEngine::new();
    for dtype in DTYPES {
        for (i, (rows, cols)) in shapes(dtype).into_iter().enumerate() {
            let steps = series(dtype, rows, cols, 6, 17 + i as u64);
            let want: Vec<StepRows> = steps
                .iter()
                .enumerate()
                .map(|(t, s)| brute_force(t.checked_sub(1).map(|p| &steps[p]), s))
                .collect();
            // The series exercises what it should.
            let moved = want[1].changed.as_ref().unwrap();
            assert!(moved.iter().any(|&c| c) && moved.iter().any(|&c| !c));
            assert!(want
                .last()
                .unwrap()
                .changed
                .as_ref()
                .unwrap()
                .iter()
                .all(|&c| !c));
            let what = format!("{dtype} {rows}×{cols}");
            compare(&format!("cpu {what}"), &run(&cpu, &steps), &want);
            compare(&format!("gpu {what}"), &run(gpu, &steps), &want);
            compare(
                &format!("chunked gpu {what}"),
                &run(&chunked, &steps),
                &want,
            );
            for (k, g) in shared.iter().enumerate() {
                compare(
                    &format!("shared-row gpu {k} {what}"),
                    &run(g, &steps),
                    &want,
                );
            }
        }
    }
}

#[test]
fn signed_zero_flips_change_bytes_but_move_nothing() {
    let Some(gpu) = gpu() else { return };
    for dtype in DTYPES {
        let mut a = Built::random(dtype, 3, 5, 3);
        for c in 0..5 {
            a.set_bits(1, c, 0);
        }
        let mut b = a.clone();
        for c in 0..5 {
            b.set_bits(1, c, dtype.negative_zero_bits());
        }
        let mut d = gpu.step_differ(dtype, 3, 5).unwrap();
        d.push(None, &a.matrix()).unwrap();
        let s = d.push(Some(&a.matrix()), &b.matrix()).unwrap();
        assert_eq!(s.changed, Some(vec![false, true, false]), "{dtype}");
        if dtype != Dtype::F64 {
            assert_eq!(s.linf_steps, vec![0, 0, 0], "{dtype}");
            assert_eq!(s.l1_steps, vec![0, 0, 0], "{dtype}");
        }
    }
}

#[test]
fn f32_displacement_across_the_whole_range_fits() {
    let Some(gpu) = gpu() else { return };
    // Several threads per row: their partial sums carry into the high word.
    let Some(shared) = fresh_gpu(GpuOptions {
        threads_per_row: Some(16),
        ..GpuOptions::default()
    }) else {
        return;
    };
    // −largest finite → +largest finite in every one of 64 columns: each
    // element 2·0x7f7fffff steps, their sum past 2³².
    let (rows, cols) = (2, 64);
    let neg: Vec<u8> = (0..rows * cols)
        .flat_map(|_| f32::MIN.to_le_bytes())
        .collect();
    let pos: Vec<u8> = (0..rows * cols)
        .flat_map(|_| f32::MAX.to_le_bytes())
        .collect();
    let a = singularity_gpu::Matrix::new(Dtype::F32, rows, cols, &neg).unwrap();
    let b = singularity_gpu::Matrix::new(Dtype::F32, rows, cols, &pos).unwrap();
    for engine in [gpu, &shared] {
        let mut d = engine.step_differ(Dtype::F32, rows, cols).unwrap();
        d.push(None, &a).unwrap();
        let s = d.push(Some(&a), &b).unwrap();
        let one = 2 * 0x7f7f_ffffu64;
        assert_eq!(s.linf_steps, vec![one as u32; rows]);
        assert_eq!(s.l1_steps, vec![one * cols as u64; rows]);
    }
}

#[test]
fn without_a_previous_step_only_hashes_are_reported() {
    let Some(gpu) = gpu() else { return };
    let cpu = CpuEngine::new();
    let a = Built::random(Dtype::BF16, 40, 9, 1);
    let b = Built::random(Dtype::BF16, 40, 9, 2);
    for engine in [gpu as &dyn Engine, &cpu] {
        let mut d = engine.step_differ(Dtype::BF16, 40, 9).unwrap();
        // A previous step given at the first push is not the differ's own.
        let first = d.push(Some(&a.matrix()), &b.matrix()).unwrap();
        assert_eq!(first, brute_force(None, &b));
        let second = d.push(Some(&b.matrix()), &a.matrix()).unwrap();
        assert_eq!(second, brute_force(Some(&b), &a));
        // The caller may restart the comparison.
        let third = d.push(None, &b.matrix()).unwrap();
        assert_eq!(third, brute_force(None, &b));
        let fourth = d.push(Some(&b.matrix()), &b.matrix()).unwrap();
        assert_eq!(fourth, brute_force(Some(&b), &b));
    }
}

#[test]
fn a_step_of_another_shape_or_dtype_is_refused_like_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = CpuEngine::new();
    let good = Built::random(Dtype::F16, 10, 4, 1);
    let wide = Built::random(Dtype::F16, 10, 5, 1);
    let other = Built::random(Dtype::BF16, 10, 4, 1);
    let mut g = gpu.step_differ(Dtype::F16, 10, 4).unwrap();
    let mut c = cpu.step_differ(Dtype::F16, 10, 4).unwrap();
    for bad in [&wide, &other] {
        let (ge, ce) = (
            g.push(None, &bad.matrix()).unwrap_err(),
            c.push(None, &bad.matrix()).unwrap_err(),
        );
        assert!(matches!(ge, Error::Usage(_)), "{ge}");
        assert_eq!(ge.to_string(), ce.to_string());
    }
    // A refused step leaves the differ usable.
    g.push(None, &good.matrix()).unwrap();
    let s = g.push(Some(&good.matrix()), &good.matrix()).unwrap();
    assert_eq!(s, brute_force(Some(&good), &good));
}

/// Indicative timing for the benchmark's shape (3,699 × 64 bf16 per step):
/// `cargo test --release --test integration step_diff::time -- --ignored --nocapture`.
#[test]
#[ignore]
fn time_steps_of_3699_by_64_bf16() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols, n) = (3699, 64, 500);
    let mut steps = vec![Built::random(Dtype::BF16, rows, cols, 5)];
    let mut rng = Rng::new(9);
    for t in 1..8 {
        let mut b = steps[t - 1].clone();
        for _ in 0..50 {
            let (r, c) = (rng.below(rows), rng.below(cols));
            let bits = b.get_bits(r, c);
            b.set_bits(r, c, bits ^ 1);
        }
        steps.push(b);
    }
    for (name, engine) in [("gpu", gpu as &dyn Engine), ("cpu", &CpuEngine::new())] {
        let mut d = engine.step_differ(Dtype::BF16, rows, cols).unwrap();
        let start = std::time::Instant::now();
        for t in 0..n {
            let prev = (t > 0).then(|| steps[(t - 1) % 8].matrix());
            d.push(prev.as_ref(), &steps[t % 8].matrix()).unwrap();
        }
        let per = start.elapsed() / n as u32;
        println!("{name}: {per:?} per step ({n} steps of {rows}×{cols} bf16)");
    }
}
