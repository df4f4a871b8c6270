//! Exact nearest neighbours on the cloud shapes that make the f32 filters
//! work hardest: a flat spectrum (every direction with about the same
//! spread), tight clusters, near-ties, and a dense knot of vectors far from
//! the origin (where the matmul form's bound, relative to ‖x‖‖y‖, dwarfs the
//! distances). Both engines are judged by the f64 brute force of
//! `geometry::check_case`; on the CPU the queries the slow path settled are
//! counted.

use crate::common::{encode, Built, Rng};
use crate::geometry::check_case;
use singularity_gpu::{Dtype, NearThreshold, NearestPaths};

/// A standard normal deviate (Box–Muller).
fn gaussian(rng: &mut Rng) -> f64 {
    let u = (rng.unit() + 1.0) / 2.0;
    let v = (rng.unit() + 1.0) / 2.0;
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Scales `row` to a norm drawn in [0.9, 1.1].
fn to_unit_shell(rng: &mut Rng, row: &mut [f64]) {
    let n = row.iter().map(|x| x * x).sum::<f64>().sqrt();
    let target = 1.0 + 0.1 * rng.unit();
    row.iter_mut().for_each(|x| *x *= target / n);
}

/// A flat cloud: per-dimension scales drawn in [1, 3].
fn flat(rng: &mut Rng, rows: usize, cols: usize) -> Vec<Vec<f64>> {
    let scales: Vec<f64> = (0..cols).map(|_| 2.0 + rng.unit()).collect();
    (0..rows)
        .map(|_| {
            let mut r: Vec<f64> = scales.iter().map(|s| s * gaussian(rng)).collect();
            to_unit_shell(rng, &mut r);
            r
        })
        .collect()
}

/// Tight Gaussian clusters around `clusters` random centres of norm 1.
fn clustered(rng: &mut Rng, rows: usize, cols: usize, clusters: usize) -> Vec<Vec<f64>> {
    let centres: Vec<Vec<f64>> = (0..clusters)
        .map(|_| {
            let mut c: Vec<f64> = (0..cols).map(|_| gaussian(rng)).collect();
            to_unit_shell(rng, &mut c);
            c
        })
        .collect();
    let spread = 0.3 / (cols as f64).sqrt();
    (0..rows)
        .map(|_| {
            let c = &centres[rng.below(clusters)];
            let mut r: Vec<f64> = c.iter().map(|x| x + spread * gaussian(rng)).collect();
            to_unit_shell(rng, &mut r);
            r
        })
        .collect()
}

/// Near-ties around row `q` (f32 only): three rows equal to it but in one
/// coordinate each, all of them set to zero in `q`: at +δ, at +δ(1 + 2⁻²⁰)
/// (a second-nearest within 1e-6 relative of the nearest), and at −δ (an
/// exact tie with the first, broken by the smaller token id).
fn plant_near_ties(values: &mut [Vec<f64>], q: usize, into: [usize; 3]) {
    let delta = 2f64.powi(-10);
    let (a, b, c) = (q % 7, 7 + q % 5, 12 + q % 3);
    for col in [a, b, c] {
        values[q][col] = 0.0;
    }
    for (&row, (col, v)) in
        into.iter()
            .zip([(a, delta), (b, delta * (1.0 + 2f64.powi(-20))), (c, -delta)])
    {
        values[row] = values[q].clone();
        values[row][col] = v;
    }
}

fn built(dtype: Dtype, values: &[Vec<f64>]) -> Built {
    Built {
        dtype,
        rows: values.len(),
        cols: values[0].len(),
        bytes: values
            .iter()
            .flatten()
            .flat_map(|&x| encode(dtype, x))
            .collect(),
    }
}

/// A knot of `count` rows a few bf16 steps from one point of norm `norm`
/// (each row moves 1 to 3 coordinates by 1 to 3 steps), written over rows
/// `start..start + count`.
fn plant_knot(b: &mut Built, rng: &mut Rng, start: usize, count: usize, norm: f64) {
    let mut p: Vec<f64> = (0..b.cols).map(|_| gaussian(rng)).collect();
    let n = p.iter().map(|x| x * x).sum::<f64>().sqrt();
    p.iter_mut().for_each(|x| *x *= norm / n);
    for (c, &x) in p.iter().enumerate() {
        let bits = u16::from_le_bytes(encode(b.dtype, x).try_into().unwrap()) as u64;
        b.set_bits(start, c, bits);
    }
    for r in start + 1..start + count {
        b.copy_row(start, r);
        for _ in 0..1 + rng.below(3) {
            let c = rng.below(b.cols);
            let bits = b.get_bits(r, c) as i64 + [-3, -2, -1, 1, 2, 3][rng.below(6)];
            b.set_bits(r, c, bits as u64);
        }
    }
}

fn cpu_paths(results: &[singularity_gpu::PairsAnalysis]) -> NearestPaths {
    let p = results[0].nearest_paths;
    assert_eq!(
        p.alone + p.among_candidates + p.slow,
        p.queries,
        "every query is settled one way"
    );
    p
}

#[test]
fn flat_and_clustered_f32_clouds_with_near_ties_match_brute_force() {
    let mut rng = Rng::new(41);
    let (rows, cols) = (640, 96);
    for (name, mut values) in [
        ("flat", flat(&mut rng, rows, cols)),
        ("clustered", clustered(&mut rng, rows, cols, 12)),
    ] {
        for k in 0..8 {
            let q = 40 * k + 3;
            plant_near_ties(
                &mut values,
                q,
                [rows - 1 - 3 * k, rows - 2 - 3 * k, rows - 3 - 3 * k],
            );
        }
        let b = built(Dtype::F32, &values);
        // The radius joins each query to its three planted neighbours (and
        // the outside-nearest search runs with component labels).
        let results = check_case(
            &format!("{name} f32 cloud with near-ties"),
            &b,
            &[NearThreshold::L2(2f64.powi(-10) * 1.5)],
            true,
        );
        let paths = cpu_paths(&results);
        assert_eq!(
            paths.queries, rows,
            "{name}: every row is a distinct vector"
        );
    }
}

#[test]
fn bf16_clouds_with_a_dense_knot_take_the_slow_path_exactly() {
    let mut rng = Rng::new(42);
    let (rows, cols, knot) = (1200, 128, 300);
    for (name, values) in [
        ("flat", flat(&mut rng, rows, cols)),
        ("clustered", clustered(&mut rng, rows, cols, 20)),
    ] {
        let mut b = built(Dtype::BF16, &values);
        // The knot sits at norm 8: the matmul form's bound there (about
        // 2γ·64) covers every knot vector, so each knot query keeps more
        // candidates than the filter holds and goes to the direct form.
        plant_knot(&mut b, &mut rng, 500, knot, 8.0);
        let results = check_case(
            &format!("{name} bf16 cloud with a knot"),
            &b,
            &[NearThreshold::Ulp(2)],
            true,
        );
        let paths = cpu_paths(&results);
        assert!(
            paths.slow > 0,
            "{name}: the knot exercises the slow path: {paths:?}"
        );
        assert!(
            paths.slow <= knot,
            "{name}: only knot queries are slow: {paths:?}"
        );
    }
}

/// The count of slow-path queries stays small on flat and clustered clouds
/// with a frozen structure of dead tokens like a real model's (a bound on a
/// count, not a timing).
#[test]
fn slow_path_stays_rare_on_flat_and_clustered_clouds() {
    let mut rng = Rng::new(43);
    let (rows, cols) = (3000, 256);
    for (name, values) in [
        ("flat", flat(&mut rng, rows, cols)),
        ("clustered", clustered(&mut rng, rows, cols, 40)),
    ] {
        let mut b = built(Dtype::BF16, &values);
        plant_knot(&mut b, &mut rng, 1000, 40, 0.3);
        let results = check_case(&format!("{name} bf16 cloud"), &b, &[], false);
        let paths = cpu_paths(&results);
        assert!(
            paths.slow * 100 <= paths.queries,
            "{name}: {} of {} queries took the slow path",
            paths.slow,
            paths.queries
        );
        assert!(
            paths.alone * 2 >= paths.queries || name == "flat",
            "{name}: most queries are certified alone: {paths:?}"
        );
    }
}
