//! All-pairs geometry: drives the engine's f32 kernels ([`crate::approx`])
//! and makes every answer exact with the survey's pure refinement.
//!
//! Nearest neighbours take the engine's candidate filter where it has one
//! ([`Engine::nearest_candidates`]: the CPU's matmul form, see
//! [`crate::approx::DotModel`]): each query is settled exactly in f64 among
//! the few targets that could still win. The queries it gives up on, and
//! every query on an engine without one, take the direct form: one pass of
//! [`Engine::nearest_approx`], where a query whose two best approximate
//! distances are far enough apart that no other target can beat the first
//! (its exact distance, in f64, below the lower bound of the second) is
//! certified; the rest go through [`Engine::pairs_within`] with a threshold
//! that keeps every target that could tie or win, and are settled exactly. The threshold searches
//! never take an all-pairs pass: projections onto a few principal directions
//! ([`Engine::project`]) prune the candidates, which are then tested exactly.

use rayon::prelude::*;

use super::ms;
use crate::approx::{ErrorModel, MAX_F32_COLUMNS, MAX_F32_SAFE_NORM};
use crate::engine::{Engine, VectorSet};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::progress::{Interrupt, Progress};
use crate::survey::lattice::{lattice, Lattice};
use crate::survey::near::{self, Near, Projections, Threshold};
use crate::survey::nearest::{self, exact_distance, Distinct, Nearest};
use crate::survey::Group;

/// Directions the threshold searches project onto.
pub const PROJECTIONS: usize = 16;
/// Relative margin by which a certified nearest neighbour must beat the
/// lower bound of every other target (far above f64 rounding of the exact sums).
const CERTIFY_MARGIN: f64 = 1e-9;

/// A near-singularity threshold as the user gave it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NearThreshold {
    /// `--near-l2 R`
    L2(f64),
    /// `--near-rel F`: F times the median row norm.
    Rel(f64),
    /// `--near-ulp K`
    Ulp(u64),
}

/// What the all-pairs geometry is asked to compute.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairOptions {
    /// `--nearest`
    pub nearest: bool,
    pub near: Option<NearThreshold>,
}

/// The all-pairs results of one matrix.
#[derive(Clone, Debug, Default)]
pub struct PairsAnalysis {
    pub nearest: Option<Nearest>,
    pub near: Option<Near>,
    /// `None` with fewer than two black holes, or too many.
    pub lattice: Option<Lattice>,
    /// Milliseconds spent on nearest neighbours, near-singularities, lattice.
    pub nearest_ms: f64,
    pub near_ms: f64,
    pub lattice_ms: f64,
    /// How the `--nearest` queries were settled.
    pub nearest_paths: NearestPaths,
}

/// How exact nearest neighbours were settled, in queries. Every answer is
/// exact whichever way it went; the counts say how much exact work it took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NearestPaths {
    pub queries: usize,
    /// Certified by the engine's filter alone: one candidate, one exact distance.
    pub alone: usize,
    /// Settled exactly among the few candidates the filter kept.
    pub among_candidates: usize,
    /// Settled by the slow path: a second search over every target, in f32,
    /// for all that could tie or win, then exact distances to those.
    pub slow: usize,
}

impl NearestPaths {
    /// The fraction of queries that took the slow path (0 with no query).
    pub fn slow_fraction(&self) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            self.slow as f64 / self.queries as f64
        }
    }

    fn add(&mut self, o: NearestPaths) {
        self.queries += o.queries;
        self.alone += o.alone;
        self.among_candidates += o.among_candidates;
        self.slow += o.slow;
    }
}

/// Runs the requested all-pairs geometry; `groups` are the exact survey's
/// black holes. Row norms are taken exactly on the host (one pass over the
/// matrix), so both engines see the same rows as finite and the same norms.
pub fn analyze_pairs(
    engine: &dyn Engine,
    m: &Matrix,
    groups: &[Group],
    opts: PairOptions,
    show_progress: bool,
) -> Result<PairsAnalysis> {
    analyze_pairs_with(engine, m, groups, opts, show_progress, None)
}

/// [`analyze_pairs`], stopping with [`Error::Interrupted`](crate::Error::Interrupted)
/// soon after `interrupt` is set.
pub fn analyze_pairs_with(
    engine: &dyn Engine,
    m: &Matrix,
    groups: &[Group],
    opts: PairOptions,
    show_progress: bool,
    interrupt: Option<&Interrupt>,
) -> Result<PairsAnalysis> {
    let mut out = PairsAnalysis::default();
    let t = std::time::Instant::now();
    let reps: Vec<usize> = groups.iter().map(|g| g.representative()).collect();
    out.lattice = lattice(m, &reps);
    out.lattice_ms = ms(t);
    if !opts.nearest && opts.near.is_none() {
        return Ok(out);
    }
    // A row holding NaN or ±∞ has no finite norm, and takes no part.
    let norms: Vec<f64> = (0..m.rows)
        .into_par_iter()
        .map(|r| m.exact_norm(r))
        .collect();
    let d = Distinct::new(m.rows, groups, |r| norms[r].is_finite());
    let vnorms: Vec<f64> = d.rows.iter().map(|&r| norms[r]).collect();
    if opts.nearest {
        let t = std::time::Instant::now();
        let labels: Vec<u32> = (0..d.len() as u32).collect();
        let queries = labels.clone();
        let work = (d.len() as u64).pow(2) * m.row_bytes() as u64;
        let progress = if show_progress {
            Progress::for_work(work, "nearest neighbours")
        } else {
            Progress::hidden()
        }
        .with_interrupt(interrupt);
        let set = VectorSet {
            rows: &d.rows,
            labels: &labels,
        };
        let (per_vector, paths) = exact_nearest(engine, m, set, &queries, &vnorms, &progress)?;
        out.nearest_paths = paths;
        progress.finish();
        out.nearest = Some(nearest::summarise(m, &d, &per_vector));
        out.nearest_ms = ms(t);
    }
    if let Some(th) = opts.near {
        let t = std::time::Instant::now();
        let spinner = if show_progress {
            Progress::spinner("near-singularities")
        } else {
            Progress::hidden()
        };
        let spinner = spinner.with_interrupt(interrupt);
        out.near = Some(near_components(
            engine, m, &d, &vnorms, &norms, th, &spinner,
        )?);
        spinner.finish();
        spinner.check()?;
        out.near_ms = ms(t);
    }
    Ok(out)
}

/// For each query, the nearest target of `set` with another label and its
/// exact distance (ties: the smallest index, which is the smallest token id);
/// `None` when there is no such target. `norms` are per vector of the set
/// (within [`near::NORM_TOLERANCE`] of exact).
///
/// Vectors the f32 kernels cannot bracket (norms above
/// [`MAX_F32_SAFE_NORM`], or every vector when the width is above
/// [`MAX_F32_COLUMNS`]) are compared with everything exactly on the host;
/// the rest go through the engine. Also says how the queries were settled.
pub fn exact_nearest(
    engine: &dyn Engine,
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    norms: &[f64],
    progress: &Progress,
) -> Result<(Vec<Answer>, NearestPaths)> {
    let safe: Vec<bool> = norms.iter().map(|&n| f32_safe(m, n)).collect();
    if safe.iter().all(|&s| s) {
        return nearest_f32(engine, m, set, queries, norms, progress);
    }
    // The safe vectors as a set of their own, through the engine.
    let sub: Vec<u32> = (0..set.rows.len() as u32)
        .filter(|&v| safe[v as usize])
        .collect();
    let mut index_in_sub = vec![u32::MAX; set.rows.len()];
    for (i, &v) in sub.iter().enumerate() {
        index_in_sub[v as usize] = i as u32;
    }
    let sub_rows: Vec<usize> = sub.iter().map(|&v| set.rows[v as usize]).collect();
    let sub_labels: Vec<u32> = sub.iter().map(|&v| set.labels[v as usize]).collect();
    let sub_norms: Vec<f64> = sub.iter().map(|&v| norms[v as usize]).collect();
    let sub_queries: Vec<u32> = queries
        .iter()
        .filter(|&&q| safe[q as usize])
        .map(|&q| index_in_sub[q as usize])
        .collect();
    let sub_set = VectorSet {
        rows: &sub_rows,
        labels: &sub_labels,
    };
    let (from_engine, mut paths) =
        nearest_f32(engine, m, sub_set, &sub_queries, &sub_norms, progress)?;
    let mut from_engine = from_engine.into_iter();
    // A query the f32 kernels cannot bracket is compared with everything exactly.
    let unsafe_queries = queries.iter().filter(|&&q| !safe[q as usize]).count();
    paths.add(NearestPaths {
        queries: unsafe_queries,
        slow: unsafe_queries,
        ..Default::default()
    });
    let unsafe_targets: Vec<u32> = (0..set.rows.len() as u32)
        .filter(|&v| !safe[v as usize])
        .collect();
    let all: Vec<u32> = (0..set.rows.len() as u32).collect();
    // In query order: a safe query takes the engine's answer (mapped back)
    // or an unsafe target if one is nearer; an unsafe query scans everything.
    let engine_answers: Vec<Option<Option<(u32, f64)>>> = queries
        .iter()
        .map(|&q| safe[q as usize].then(|| from_engine.next().flatten()))
        .collect();
    let answers = queries
        .par_iter()
        .zip(engine_answers)
        .map(|(&q, answer)| match answer {
            None => best_exact(m, set, q, &all),
            Some(found) => {
                let found = found.map(|(t, d)| (sub[t as usize], d));
                let huge = best_exact(m, set, q, &unsafe_targets);
                match (found, huge) {
                    (Some(a), Some(b)) => Some(if (b.1, b.0) < (a.1, a.0) { b } else { a }),
                    (a, b) => a.or(b),
                }
            }
        })
        .collect();
    Ok((answers, paths))
}

/// One query's nearest target (an index into the set) and its exact
/// distance; `None` when no target has another label.
pub type Answer = Option<(u32, f64)>;

/// Whether the f32 kernels can bracket distances to a vector of norm `n`.
fn f32_safe(m: &Matrix, n: f64) -> bool {
    n <= MAX_F32_SAFE_NORM && m.cols <= MAX_F32_COLUMNS
}

/// Queries settled per call of [`Engine::pairs_within`]: with queries ×
/// targets at most this, no call can return more pairs (the GPU's 32-bit
/// pair counter cannot wrap, and the host holds at most 2 GiB of pairs).
const PAIRS_PER_CALL: u64 = 1 << 28;

/// [`exact_nearest`] for a set the f32 kernels can bracket: the engine's
/// candidate filter where it has one, each query settled exactly among its
/// candidates; the queries it gives up on, and every query on an engine
/// without one, go to [`nearest_direct`].
fn nearest_f32(
    engine: &dyn Engine,
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    norms: &[f64],
    progress: &Progress,
) -> Result<(Vec<Answer>, NearestPaths)> {
    if queries.is_empty() {
        return Ok((Vec::new(), NearestPaths::default()));
    }
    let Some(candidates) = engine.nearest_candidates(m, set, queries, progress)? else {
        return nearest_direct(engine, m, set, queries, norms, progress);
    };
    let mut result: Vec<Answer> = candidates
        .lists
        .par_iter()
        .zip(queries)
        .map(|(list, &q)| list.as_ref().and_then(|l| best_exact(m, set, q, l)))
        .collect();
    let open: Vec<usize> = (0..queries.len())
        .filter(|&i| candidates.lists[i].is_none())
        .collect();
    let among = candidates
        .lists
        .iter()
        .filter(|l| l.as_ref().is_some_and(|l| l.len() > 1))
        .count();
    let paths = NearestPaths {
        queries: queries.len(),
        alone: queries.len() - open.len() - among,
        among_candidates: among,
        slow: open.len(),
    };
    if !open.is_empty() {
        let rest: Vec<u32> = open.iter().map(|&i| queries[i]).collect();
        let (answers, _) = nearest_direct(engine, m, set, &rest, norms, &progress.quiet())?;
        for (&i, a) in open.iter().zip(answers) {
            result[i] = a;
        }
    }
    Ok((result, paths))
}

/// [`exact_nearest`] by the direct form: a query whose two best approximate
/// distances are far enough apart is certified, the rest are settled over
/// every target that could tie or win.
fn nearest_direct(
    engine: &dyn Engine,
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    norms: &[f64],
    progress: &Progress,
) -> Result<(Vec<Answer>, NearestPaths)> {
    if queries.is_empty() {
        return Ok((Vec::new(), NearestPaths::default()));
    }
    let n_max = norms.iter().copied().fold(0f64, f64::max) * (1.0 + near::NORM_TOLERANCE);
    let err = ErrorModel::new(m.dtype, m.cols);
    let tops = engine.nearest_approx(m, set, queries, progress)?;
    let mut result: Vec<Option<(u32, f64)>> = vec![None; queries.len()];
    let mut open: Vec<usize> = Vec::new();
    let mut thresholds: Vec<f32> = Vec::new();
    let firsts: Vec<Option<f64>> = queries
        .par_iter()
        .zip(&tops)
        .map(|(&q, top)| {
            (top.best_index != u32::MAX)
                .then(|| exact_distance(m, set.rows[q as usize], set.rows[top.best_index as usize]))
        })
        .collect();
    for (i, (&q, top)) in queries.iter().zip(&tops).enumerate() {
        let Some(first) = firsts[i] else { continue };
        let nq = norms[q as usize] * (1.0 + near::NORM_TOLERANCE);
        if err.lower(top.second, nq, n_max) > first * (1.0 + CERTIFY_MARGIN) {
            result[i] = Some((top.best_index, first));
        } else {
            open.push(i);
            thresholds.push(err.threshold(first * (1.0 + CERTIFY_MARGIN), nq, n_max));
        }
    }
    // The uncertain queries, in batches whose candidate pairs stay bounded.
    let batch = (PAIRS_PER_CALL / set.rows.len().max(1) as u64).max(1) as usize;
    for (chunk, thr) in open.chunks(batch).zip(thresholds.chunks(batch)) {
        let open_queries: Vec<u32> = chunk.iter().map(|&i| queries[i]).collect();
        let mut pairs = engine.pairs_within(m, set, &open_queries, thr, &progress.quiet())?;
        pairs.par_sort_unstable();
        pairs.dedup();
        let settled: Vec<Option<(u32, f64)>> = chunk
            .par_iter()
            .map(|&i| {
                let q = queries[i];
                let lo = pairs.partition_point(|&(a, _)| a < q);
                let hi = pairs.partition_point(|&(a, _)| a <= q);
                let mut cands: Vec<u32> = pairs[lo..hi].iter().map(|&(_, t)| t).collect();
                cands.push(tops[i].best_index);
                best_exact(m, set, q, &cands)
            })
            .collect();
        for (&i, r) in chunk.iter().zip(settled) {
            result[i] = r;
        }
    }
    let paths = NearestPaths {
        queries: queries.len(),
        alone: queries.len() - open.len(),
        among_candidates: 0,
        slow: open.len(),
    };
    Ok((result, paths))
}

/// The nearest of `candidates` (of another label than `q`) by exact distance, then index.
fn best_exact(m: &Matrix, set: VectorSet, q: u32, candidates: &[u32]) -> Option<(u32, f64)> {
    candidates
        .iter()
        .filter(|&&t| set.labels[t as usize] != set.labels[q as usize])
        .map(|&t| {
            (
                t,
                exact_distance(m, set.rows[q as usize], set.rows[t as usize]),
            )
        })
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
}

/// The near-singularity components at `threshold`.
fn near_components(
    engine: &dyn Engine,
    m: &Matrix,
    d: &Distinct,
    vnorms: &[f64],
    row_norms: &[f64],
    threshold: NearThreshold,
    progress: &Progress,
) -> Result<Near> {
    let (metric, value, th) = match threshold {
        NearThreshold::L2(r) => ("l2", r, Threshold::L2(r)),
        NearThreshold::Rel(f) => {
            // From exact norms: f32-accumulated ones could move the radius by
            // a few ulps, enough to flip a pair exactly at the threshold.
            let r = f * median(row_norms);
            ("l2", r, Threshold::L2(r))
        }
        NearThreshold::Ulp(k) => ("ulp", k as f64, Threshold::Steps(k)),
    };
    let k = d.len();
    let pairs = match th {
        _ if k < 2 => Some(Vec::new()),
        Threshold::Steps(steps) => near::joined_pairs_steps(m, d, steps),
        Threshold::L2(r) => l2_pairs(engine, m, d, vnorms, r)?,
    };
    let Some(pairs) = pairs else {
        return Err(Error::Usage(format!(
            "the near-singularity threshold joins more than {} pairs of distinct vectors; use a smaller one",
            near::MAX_JOINED_PAIRS
        )));
    };
    let comps = near::components(k, &pairs);

    // The nearest vector outside each component: label every vector by its
    // component (vectors outside any component by themselves).
    let mut labels: Vec<u32> = (0..k as u32).map(|v| k as u32 + v).collect();
    for (c, vs) in comps.iter().enumerate() {
        for &v in vs {
            labels[v as usize] = c as u32;
        }
    }
    let queries: Vec<u32> = comps.iter().flatten().copied().collect();
    let set = VectorSet {
        rows: &d.rows,
        labels: &labels,
    };
    progress.check()?;
    let (outside, _) = exact_nearest(engine, m, set, &queries, vnorms, &progress.quiet())?;
    let mut best: Vec<Option<(u32, f64)>> = vec![None; comps.len()];
    for (&q, o) in queries.iter().zip(outside) {
        let c = labels[q as usize] as usize;
        if let Some((t, dist)) = o {
            if best[c].is_none_or(|(bt, bd)| (dist, t) < (bd, bt)) {
                best[c] = Some((t, dist));
            }
        }
    }
    let mut components: Vec<_> = comps
        .iter()
        .zip(best)
        .map(|(vs, out)| near::describe(m, d, vs, out))
        .collect();
    near::sort_components(&mut components);
    Ok(Near {
        metric,
        threshold: value,
        pairs: pairs.len(),
        components,
    })
}

/// Pairs of distinct vectors within L2 radius `r`, pruned by projections
/// onto the principal directions; vectors whose f32 projections could
/// overflow are tested exhaustively on the host. `None` past
/// [`near::MAX_JOINED_PAIRS`].
fn l2_pairs(
    engine: &dyn Engine,
    m: &Matrix,
    d: &Distinct,
    vnorms: &[f64],
    r: f64,
) -> Result<Option<Vec<(u32, u32)>>> {
    let (safe, huge): (Vec<u32>, Vec<u32>) =
        (0..d.len() as u32).partition(|&v| f32_safe(m, vnorms[v as usize]));
    let rows: Vec<usize> = safe.iter().map(|&v| d.rows[v as usize]).collect();
    let dirs = near::principal_directions(m, &rows, PROJECTIONS.min(m.cols));
    let p = dirs.len() / m.cols;
    let direction_norms: Vec<f64> = dirs
        .chunks_exact(m.cols)
        .map(|u| u.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt())
        .collect();
    let values = if safe.len() > 1 && p > 0 {
        engine.project(m, &rows, &dirs)?
    } else {
        Vec::new()
    };
    let proj = Projections {
        values: &values,
        p,
        direction_norms: &direction_norms,
        operator_norm: near::operator_norm_bound(&dirs, m.cols),
    };
    let swept = if values.is_empty() {
        Some(Vec::new())
    } else {
        near::joined_pairs(m, d, vnorms, &safe, &proj, r)
    };
    let (Some(mut pairs), Some(more)) = (swept, near::joined_pairs_exhaustive(m, d, &huge, r))
    else {
        return Ok(None);
    };
    pairs.extend(more);
    pairs.par_sort_unstable();
    pairs.dedup();
    Ok((pairs.len() <= near::MAX_JOINED_PAIRS).then_some(pairs))
}

/// numpy's median of the finite values (rows holding NaN or ±∞ take no part).
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.par_sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Dtype;
    use crate::engine::cpu::CpuEngine;

    /// bf16 rows: a random cloud, plus rows one step from row 0 (ties), so
    /// that both the certified and the refined paths run.
    fn cloud(n: usize, d: usize) -> Vec<u8> {
        let mut s = 0x1234_5678u64;
        let mut v = Vec::new();
        for r in 0..n {
            for c in 0..d {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let x = if r >= n - 4 && c != r % d {
                    // a copy of row 0 except one coordinate
                    f32::from_bits((v[c * 2] as u32 | (v[c * 2 + 1] as u32) << 8) << 16)
                } else {
                    (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                };
                v.extend_from_slice(&half::bf16::from_f32(x).to_le_bytes());
            }
        }
        v
    }

    #[test]
    fn nearest_matches_brute_force() {
        let (n, d) = (200, 24);
        let bytes = cloud(n, d);
        let m = Matrix::new(Dtype::BF16, n, d, &bytes).unwrap();
        let rows: Vec<usize> = (0..n).collect();
        let labels: Vec<u32> = (0..n as u32).collect();
        let norms: Vec<f64> = (0..n)
            .map(|r| m.row_f64(r).iter().map(|x| x * x).sum::<f64>().sqrt())
            .collect();
        let set = VectorSet {
            rows: &rows,
            labels: &labels,
        };
        let (got, _) =
            exact_nearest(&CpuEngine, &m, set, &labels, &norms, &Progress::hidden()).unwrap();
        for (q, got) in got.iter().enumerate() {
            let want = (0..n)
                .filter(|&t| t != q)
                .map(|t| {
                    let d2: f64 = m
                        .row_f64(q)
                        .iter()
                        .zip(m.row_f64(t))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    (d2.sqrt(), t)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                .unwrap();
            let (t, dist) = got.unwrap();
            assert_eq!(t as usize, want.1, "query {q}");
            assert!((dist - want.0).abs() <= 1e-12 * want.0, "query {q}");
        }
    }
}
