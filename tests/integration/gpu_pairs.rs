//! The GPU's all-pairs kernels (nearest_approx, pairs_within, project) against
//! f64 brute force, within the f32 error model of `approx`: every
//! dtype, odd widths, several labelings, query subsets, and tiny forced panels
//! (many panels, one 64-target block per dispatch).

use crate::common::{fresh_gpu, gpu, Built, Rng};
use singularity_gpu::approx::ErrorModel;
use singularity_gpu::engine::{Engine, Top2, VectorSet};
use singularity_gpu::progress::Progress;
use singularity_gpu::{Dtype, GpuOptions};

const DTYPES: [Dtype; 4] = [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64];
const WIDTHS: [usize; 4] = [1, 7, 33, 131];

/// A vector set over a random matrix: its rows (not in matrix order), labels
/// and queries, with exact f64 values for the brute force.
struct Case {
    b: Built,
    rows: Vec<usize>,
    labels: Vec<u32>,
    queries: Vec<u32>,
    /// Decoded values of each vector of the set.
    values: Vec<Vec<f64>>,
    norms: Vec<f64>,
    model: ErrorModel,
}

impl Case {
    fn new(dtype: Dtype, n: usize, cols: usize, seed: u64, grouped: bool, subset: bool) -> Self {
        let b = Built::random(dtype, n + 3, cols, seed);
        // Every matrix row but three, in a scrambled order.
        let rows: Vec<usize> = (0..n).map(|i| 3 + (i * 37) % n).collect();
        let labels: Vec<u32> = (0..n as u32)
            .map(|i| if grouped { i / 5 } else { i })
            .collect();
        let queries: Vec<u32> = if subset {
            (0..n as u32).filter(|i| i % 3 == 1).chain([0]).collect()
        } else {
            (0..n as u32).collect()
        };
        Self::of(b, rows, labels, queries)
    }

    /// A set as the survey builds one: duplicate rows collapsed to the first
    /// of each run, so the set's rows ascend with gaps between runs of
    /// consecutive ids; every vector its own label.
    fn with_gaps(dtype: Dtype, n: usize, cols: usize, seed: u64, subset: bool) -> Self {
        let mut b = Built::random(dtype, n, cols, seed);
        let mut rng = Rng::new(seed ^ 0x5eed);
        // Runs of 1 to 4 copies of a row, about every fourth row.
        let mut r = 1;
        while r < n {
            if rng.below(4) == 0 {
                for k in r..(r + 1 + rng.below(4)).min(n) {
                    b.copy_row(r - 1, k);
                }
                r += 5;
            } else {
                r += 1;
            }
        }
        let rows: Vec<usize> = (0..n)
            .filter(|&r| r == 0 || b.row(r) != b.row(r - 1))
            .collect();
        assert!(rows.len() < n * 9 / 10 && rows.windows(2).any(|w| w[1] == w[0] + 1));
        let labels: Vec<u32> = (0..rows.len() as u32).collect();
        let queries: Vec<u32> = if subset {
            (0..rows.len() as u32).filter(|i| i % 4 != 2).collect()
        } else {
            labels.clone()
        };
        Self::of(b, rows, labels, queries)
    }

    fn of(b: Built, rows: Vec<usize>, labels: Vec<u32>, queries: Vec<u32>) -> Self {
        let (dtype, cols) = (b.dtype, b.cols);
        let values: Vec<Vec<f64>> = rows.iter().map(|&r| b.values(r)).collect();
        let norms = values
            .iter()
            .map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt())
            .collect();
        Self {
            model: ErrorModel::new(dtype, cols),
            b,
            rows,
            labels,
            queries,
            values,
            norms,
        }
    }

    fn set(&self) -> VectorSet<'_> {
        VectorSet {
            rows: &self.rows,
            labels: &self.labels,
        }
    }

    fn exact(&self, i: usize, j: usize) -> f64 {
        self.values[i]
            .iter()
            .zip(&self.values[j])
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt()
    }

    fn max_norm(&self) -> f64 {
        self.norms.iter().cloned().fold(0.0, f64::max)
    }

    /// Exact distances from vector `q` to the targets of other labels.
    fn qualifying(&self, q: usize) -> Vec<(f64, usize)> {
        (0..self.rows.len())
            .filter(|&t| self.labels[t] != self.labels[q])
            .map(|t| (self.exact(q, t), t))
            .collect()
    }

    /// Asserts `lower(approx) ≤ exact ≤ upper(approx)` for a query of norm `nq`.
    fn bracket(&self, approx: f32, exact: f64, nq: f64, what: &str) {
        let (lo, hi) = (
            self.model.lower(approx, nq, self.max_norm()),
            self.model.upper(approx, nq, self.max_norm()),
        );
        assert!(
            lo <= exact && exact <= hi,
            "{what}: exact {exact} outside [{lo}, {hi}] from approx² {approx}"
        );
    }

    fn check_nearest(&self, tops: &[Top2], what: &str) {
        assert_eq!(tops.len(), self.queries.len(), "{what}: one Top2 per query");
        for (&q, top) in self.queries.iter().zip(tops) {
            let q = q as usize;
            let what = format!("{what} query {q}");
            let mut d = self.qualifying(q);
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            let nq = self.norms[q];
            if d.is_empty() {
                assert_eq!(*top, Top2::EMPTY, "{what}: no target qualifies");
                continue;
            }
            self.bracket(top.best, d[0].0, nq, &format!("{what}: best"));
            let b = top.best_index as usize;
            assert!(b < self.rows.len(), "{what}: best index {b}");
            assert_ne!(self.labels[b], self.labels[q], "{what}: best has own label");
            self.bracket(
                top.best,
                self.exact(q, b),
                nq,
                &format!("{what}: best_index"),
            );
            match d.get(1) {
                Some(&(second, _)) => {
                    self.bracket(top.second, second, nq, &format!("{what}: second"))
                }
                None => assert_eq!(top.second, f32::INFINITY, "{what}: no second"),
            }
        }
    }

    /// Thresholds keeping every pair within the exact distance to about the
    /// fifth nearest target; the bounds themselves are returned too.
    fn thresholds(&self) -> (Vec<f32>, Vec<f64>) {
        self.queries
            .iter()
            .map(|&q| {
                let mut d: Vec<f64> = self.qualifying(q as usize).iter().map(|p| p.0).collect();
                d.sort_by(|a, b| a.total_cmp(b));
                let bound = d.get(4).or(d.last()).copied().unwrap_or(0.0);
                let thr = self
                    .model
                    .threshold(bound, self.norms[q as usize], self.max_norm());
                (thr, bound)
            })
            .unzip()
    }

    fn check_pairs(&self, pairs: &[(u32, u32)], thr: &[f32], bounds: &[f64], what: &str) {
        let mut seen = std::collections::HashSet::new();
        let pos: std::collections::HashMap<u32, usize> = self
            .queries
            .iter()
            .enumerate()
            .map(|(i, &q)| (q, i))
            .collect();
        for &(q, t) in pairs {
            let i = *pos
                .get(&q)
                .unwrap_or_else(|| panic!("{what}: {q} is no query"));
            let (qu, tu) = (q as usize, t as usize);
            assert!(tu < self.rows.len(), "{what}: target {t}");
            assert_ne!(
                self.labels[qu], self.labels[tu],
                "{what}: ({q}, {t}) share a label"
            );
            assert!(seen.insert((q, t)), "{what}: ({q}, {t}) twice");
            // Nothing far beyond the threshold.
            let hi = self.model.upper(thr[i], self.norms[qu], self.max_norm());
            assert!(
                self.exact(qu, tu) <= hi,
                "{what}: ({q}, {t}) beyond threshold"
            );
        }
        for (i, &q) in self.queries.iter().enumerate() {
            for (d, t) in self.qualifying(q as usize) {
                if d <= bounds[i] {
                    assert!(
                        seen.contains(&(q, t as u32)),
                        "{what}: missing ({q}, {t}) at {d} ≤ {}",
                        bounds[i]
                    );
                }
            }
        }
    }
}

fn nearest(engine: &dyn Engine, c: &Case) -> Vec<Top2> {
    engine
        .nearest_approx(&c.b.matrix(), c.set(), &c.queries, &Progress::hidden())
        .expect("nearest_approx")
}

fn within(engine: &dyn Engine, c: &Case, thr: &[f32]) -> Vec<(u32, u32)> {
    engine
        .pairs_within(&c.b.matrix(), c.set(), &c.queries, thr, &Progress::hidden())
        .expect("pairs_within")
}

#[test]
fn nearest_and_pairs_match_brute_force() {
    let Some(gpu) = gpu() else { return };
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        for cols in WIDTHS {
            for (grouped, subset) in [(false, false), (true, true), (true, false)] {
                let c = Case::new(
                    dtype,
                    200,
                    cols,
                    1 + k as u64 * 10 + cols as u64,
                    grouped,
                    subset,
                );
                let what = format!("{dtype} d={cols} grouped={grouped} subset={subset}");
                c.check_nearest(&nearest(gpu, &c), &what);
                let (thr, bounds) = c.thresholds();
                c.check_pairs(&within(gpu, &c, &thr), &thr, &bounds, &what);
            }
        }
    }
}

/// Panels of a few dozen rows for queries and targets, one 64-target block per
/// dispatch: Top2 accumulates across many dispatches and submissions.
#[test]
fn tiny_panels_change_nothing() {
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        for cols in [7, 131] {
            let rb = (cols * dtype.size()).div_ceil(4) * 4;
            let Some(gpu) = fresh_gpu(GpuOptions {
                max_chunk_bytes: Some((rb * 45) as u64),
                ..Default::default()
            }) else {
                return;
            };
            let c = Case::new(dtype, 230, cols, 500 + k as u64 + cols as u64, true, false);
            let what = format!("panels {dtype} d={cols}");
            c.check_nearest(&nearest(&gpu, &c), &what);
            let (thr, bounds) = c.thresholds();
            c.check_pairs(&within(&gpu, &c, &thr), &thr, &bounds, &what);
            let sub = Case::new(dtype, 230, cols, 600 + k as u64, false, true);
            sub.check_nearest(&nearest(&gpu, &sub), &format!("{what} subset"));
        }
    }
}

/// A set with gaps (duplicates collapsed) streamed in panels of an odd size
/// (query panels of several uploads, rows of whole words and padded rows):
/// nearest, pairs and projections match the brute force, and give the same
/// bits as the one-panel sweep.
#[test]
fn sets_with_gaps_in_tiny_panels_match_brute_force() {
    let Some(whole) = gpu() else { return };
    for (k, dtype) in [Dtype::BF16, Dtype::F16, Dtype::F32]
        .into_iter()
        .enumerate()
    {
        for cols in [8, 7, 33] {
            let rb = (cols * dtype.size()).div_ceil(4) * 4;
            let Some(tiny) = fresh_gpu(GpuOptions {
                max_chunk_bytes: Some((rb * 29 + 6) as u64),
                ..Default::default()
            }) else {
                return;
            };
            for subset in [false, true] {
                let c =
                    Case::with_gaps(dtype, 260, cols, 700 + k as u64 * 40 + cols as u64, subset);
                let what = format!("gaps {dtype} d={cols} subset={subset}");
                let tops = nearest(&tiny, &c);
                c.check_nearest(&tops, &what);
                assert_eq!(tops, nearest(whole, &c), "{what}: one panel");
                let (thr, bounds) = c.thresholds();
                let mut pairs = within(&tiny, &c, &thr);
                c.check_pairs(&pairs, &thr, &bounds, &what);
                let mut one = within(whole, &c, &thr);
                pairs.sort_unstable();
                one.sort_unstable();
                assert_eq!(pairs, one, "{what}: pairs in one panel");
                let dirs: Vec<f32> = (0..3 * cols).map(|i| (i as f32 * 0.37).sin()).collect();
                let got = tiny
                    .project(&c.b.matrix(), &c.rows, &dirs)
                    .expect("project");
                for (i, v) in c.values.iter().enumerate() {
                    for j in 0..3 {
                        let u = &dirs[j * cols..(j + 1) * cols];
                        let exact: f64 = u.iter().zip(v).map(|(&a, b)| a as f64 * b).sum();
                        let un = u.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
                        let err = c.model.projection_error(un, c.norms[i]);
                        let g = got[i * 3 + j] as f64;
                        assert!(
                            (g - exact).abs() <= err,
                            "{what}: row {i} dir {j}: {g} vs {exact}"
                        );
                    }
                }
                let one = whole
                    .project(&c.b.matrix(), &c.rows, &dirs)
                    .expect("project");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&one), "{what}: projections in one panel");
            }
        }
    }
}

/// More pairs than the first guess at room (64 Ki): the kernel must run
/// again and return all of them.
#[test]
fn pairs_beyond_the_first_guess_are_all_returned() {
    let Some(gpu) = gpu() else { return };
    let c = Case::new(Dtype::BF16, 300, 7, 3, false, false);
    let thr = vec![f32::INFINITY; c.queries.len()];
    let pairs = within(gpu, &c, &thr);
    assert_eq!(pairs.len(), 300 * 299);
    c.check_pairs(&pairs, &thr, &vec![f64::INFINITY; 300], "all pairs");
}

/// A label shared by every vector: no target qualifies.
#[test]
fn a_single_label_leaves_every_query_empty() {
    let Some(gpu) = gpu() else { return };
    let mut c = Case::new(Dtype::F32, 70, 5, 9, false, false);
    c.labels = vec![7; 70];
    assert!(nearest(gpu, &c).iter().all(|t| *t == Top2::EMPTY));
    assert!(within(gpu, &c, &vec![f32::INFINITY; 70]).is_empty());
}

#[test]
fn projections_match_f64_dot_products() {
    let gpu = gpu();
    let tiny = |dtype: Dtype, cols: usize| {
        fresh_gpu(GpuOptions {
            max_chunk_bytes: Some(((cols * dtype.size()).div_ceil(4) * 4 * 30) as u64),
            ..Default::default()
        })
    };
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        for cols in WIDTHS {
            for p in [1, 5, 17] {
                let c = Case::new(
                    dtype,
                    150,
                    cols,
                    900 + k as u64 * 7 + cols as u64,
                    false,
                    false,
                );
                let mut rng = Rng::new(p as u64 + cols as u64);
                let dirs: Vec<f32> = (0..p * cols).map(|_| rng.unit() as f32).collect();
                let mut engines: Vec<Box<dyn Engine>> = vec![];
                if gpu.is_some() && p == 5 {
                    if let Some(t) = tiny(dtype, cols) {
                        engines.push(Box::new(t));
                    }
                }
                let mut all: Vec<&dyn Engine> = engines.iter().map(|e| e.as_ref()).collect();
                if let Some(g) = gpu {
                    all.push(g);
                }
                for engine in all {
                    let got = engine
                        .project(&c.b.matrix(), &c.rows, &dirs)
                        .expect("project");
                    assert_eq!(got.len(), c.rows.len() * p);
                    for i in 0..c.rows.len() {
                        for j in 0..p {
                            let u = &dirs[j * cols..(j + 1) * cols];
                            let exact: f64 =
                                u.iter().zip(&c.values[i]).map(|(&a, b)| a as f64 * b).sum();
                            let un = u.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
                            let err = c.model.projection_error(un, c.norms[i]);
                            let g = got[i * p + j] as f64;
                            assert!(
                                (g - exact).abs() <= err,
                                "{dtype} d={cols} p={p}: row {i} dir {j}: {g} vs {exact} (±{err})"
                            );
                        }
                    }
                }
            }
        }
    }
}
