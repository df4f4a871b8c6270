//! Near-singularities: distinct vectors within a threshold of each other
//! (L2, or every coordinate within K steps of the stored dtype), joined into
//! connected components with union–find. Pure functions (no I/O, no GPU):
//! the candidate search prunes with projections the engine computed, and
//! every joined pair is tested exactly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Serialize;

mod kdtree;

use self::kdtree::KdTree;
use super::nearest::{centroid_and_radius, exact_distance, Distinct};
use crate::approx::ErrorModel;
use crate::dtype::Dtype;
use crate::matrix::Matrix;

/// Components larger than this many distinct vectors get no diameter (it
/// costs all pairs inside the component).
pub const MAX_DIAMETER_VECTORS: usize = 4096;
/// Relative error allowed for the engines' row norms (GPU norms are f32).
pub const NORM_TOLERANCE: f64 = 2e-5;

/// `--near-l2`, `--near-rel` (resolved to an L2 radius) or `--near-ulp`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// Join vectors at L2 distance ≤ r.
    L2(f64),
    /// Join vectors whose every coordinate is at most K steps apart.
    Steps(u64),
}

impl Threshold {
    /// Whether two rows are joined, computed exactly from their stored values.
    pub fn joins(&self, m: &Matrix, a: usize, b: usize) -> bool {
        match *self {
            Threshold::L2(r) => exact_distance(m, a, b) <= r,
            Threshold::Steps(k) => linf_steps(m, a, b) <= k,
        }
    }
}

/// The largest number of steps between two rows' values in one coordinate.
pub fn linf_steps(m: &Matrix, a: usize, b: usize) -> u64 {
    let s = m.dtype.size();
    m.row(a)
        .chunks_exact(s)
        .zip(m.row(b).chunks_exact(s))
        .map(|(x, y)| m.dtype.steps_between(m.dtype.bits(x), m.dtype.bits(y)))
        .max()
        .unwrap_or(0)
}

/// Union–find over `n` elements (path halving, union by size).
#[derive(Clone, Debug)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = self.parent[x as usize];
        }
        x
    }

    pub fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }

    /// The sets of two or more elements, each ascending, in order of their
    /// smallest element.
    pub fn sets(&mut self) -> Vec<Vec<u32>> {
        let n = self.parent.len();
        let mut by_root: Vec<Vec<u32>> = vec![Vec::new(); n];
        for x in 0..n as u32 {
            let r = self.find(x);
            by_root[r as usize].push(x);
        }
        let mut sets: Vec<Vec<u32>> = by_root.into_iter().filter(|s| s.len() > 1).collect();
        sets.sort_by_key(|s| s[0]);
        sets
    }
}

/// Projections of every distinct vector onto a few directions, as the engine
/// computed them, with what the survey needs to bound their error.
pub struct Projections<'a> {
    /// `k × p` values, row-major.
    pub values: &'a [f32],
    pub p: usize,
    /// The L2 norm of each direction (as the f32 values the engine used).
    pub direction_norms: &'a [f64],
    /// An upper bound on ‖U‖₂, the most the directions (rows of U) can
    /// stretch a vector: [`operator_norm_bound`].
    pub operator_norm: f64,
}

/// An upper bound on the spectral norm of the `p × cols` matrix U whose
/// rows are `directions` (f32, as the engine uses them): the largest
/// absolute row sum of the Gram matrix UUᵀ (Gershgorin), each entry widened
/// by its f64 rounding. About 1 for orthonormal directions.
pub fn operator_norm_bound(directions: &[f32], cols: usize) -> f64 {
    if cols == 0 {
        return 0.0;
    }
    let rows: Vec<&[f32]> = directions.chunks_exact(cols).collect();
    let norms: Vec<f64> = rows
        .iter()
        .map(|u| u.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt())
        .collect();
    // A dot product of `cols` terms in f64 is within cols·2^-53·Σ|uᵢ||uⱼ| ≤
    // cols·2^-53·‖uᵢ‖‖uⱼ‖ (Cauchy–Schwarz) of exact; doubled for safety.
    let rounding = 2.0 * (cols as f64 + 2.0) * f64::EPSILON;
    let widest = rows
        .iter()
        .enumerate()
        .map(|(i, ui)| {
            rows.iter()
                .enumerate()
                .map(|(j, uj)| {
                    let g: f64 = ui.iter().zip(*uj).map(|(&a, &b)| a as f64 * b as f64).sum();
                    g.abs() + rounding * norms[i] * norms[j]
                })
                .sum::<f64>()
        })
        .fold(0f64, f64::max);
    widest.sqrt() * (1.0 + 1e-12)
}

/// Joined pairs are kept in memory: a search that finds more stops, and the
/// survey says to use a smaller threshold (50 M pairs are 400 MB).
pub const MAX_JOINED_PAIRS: usize = 50_000_000;

/// Counts joined pairs across threads, and says when there are too many.
#[derive(Default)]
struct Budget {
    count: AtomicUsize,
    over: AtomicBool,
}

impl Budget {
    /// Records one more pair; false once over [`MAX_JOINED_PAIRS`].
    fn take(&self) -> bool {
        let ok = self.count.fetch_add(1, Ordering::Relaxed) < MAX_JOINED_PAIRS;
        if !ok {
            self.over.store(true, Ordering::Relaxed);
        }
        ok
    }

    fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// The pairs found, sorted, or `None` when the search stopped.
    fn finish(&self, mut pairs: Vec<(u32, u32)>) -> Option<Vec<(u32, u32)>> {
        if self.over() {
            return None;
        }
        pairs.par_sort_unstable();
        pairs.dedup();
        Some(pairs)
    }
}

/// Relative margin on the pruning radii, far above the f64 rounding of the
/// few sums that compare projections.
const PRUNE_MARGIN: f64 = 1e-9;

/// Every pair of the vectors `members` (indices into `d`, `a < b` in the
/// result) at L2 distance ≤ `r`, found without an all-pairs pass: a k-d tree
/// over the members' projections gives each member the boxes that could hold
/// a partner, and a pair is tested exactly only when its projections are
/// within reach in L2 (‖Ũx − Ũy‖ ≤ ‖U‖₂‖x − y‖ + the kernels' error on both,
/// with ‖U‖₂ bounded from the directions' Gram matrix) and its norms differ
/// by no more than a joined pair's could (|‖x‖ − ‖y‖| ≤ ‖x − y‖). The exact
/// test gives up as soon as a partial sum of squares passes r². `proj` holds
/// the members' projections, in `members` order; `norms` are per vector of
/// `d`. `None` past [`MAX_JOINED_PAIRS`].
pub fn joined_pairs(
    m: &Matrix,
    d: &Distinct,
    norms: &[f64],
    members: &[u32],
    proj: &Projections,
    r: f64,
) -> Option<Vec<(u32, u32)>> {
    let k = members.len();
    let p = proj.p;
    let err = ErrorModel::new(m.dtype, m.cols);
    let norm = |i: usize| norms[members[i] as usize];
    // The norms may be off by NORM_TOLERANCE relative, and a GPU that flushes
    // subnormal inputs to zero may lose up to √d·2^-126 of a projection.
    let n_hi = |n: f64| n * (1.0 + NORM_TOLERANCE) + err.decode_abs;
    // How far the engine's projections of a vector of norm n may be from
    // the exact ones, in L2 over the directions.
    let slack_at = |n: f64| {
        proj.direction_norms
            .iter()
            .map(|&u| err.projection_error(u, n_hi(n)).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let spread = proj.operator_norm * r;
    let tree = KdTree::new(proj.values, p);
    // Norms and error slacks in tree order, beside the tree's coordinates,
    // so that a leaf is read in one sweep.
    let tnorm: Vec<f64> = (0..k)
        .into_par_iter()
        .map(|i| norm(tree.vector(i) as usize))
        .collect();
    let tslack: Vec<f64> = tnorm.par_iter().map(|&n| slack_at(n)).collect();
    let norm_slack = |a: f64, b: f64| NORM_TOLERANCE * (a + b) + 2.0 * err.decode_abs;
    let budget = Budget::default();
    let pairs: Vec<(u32, u32)> = (0..k)
        .into_par_iter()
        .flat_map_iter(|i| {
            let pa = tree.point(i);
            let (na, sa) = (tnorm[i], tslack[i]);
            // A partner's exact norm is at most ‖a‖ + r, so its given norm
            // at most this (each within NORM_TOLERANCE of exact), and its
            // error at most slack_at of that.
            let partner = (na * (1.0 + 3.0 * NORM_TOLERANCE) + r) * (1.0 + NORM_TOLERANCE);
            let reach = (spread + sa + slack_at(partner)) * (1.0 + PRUNE_MARGIN);
            let reach_sq = reach * reach;
            let mut found = Vec::new();
            if budget.over() {
                return found;
            }
            tree.for_each_after(
                i,
                |lo, hi| {
                    let mut gap = 0f64;
                    for j in 0..p {
                        let x = pa[j] as f64;
                        let g = (lo[j] as f64 - x).max(x - hi[j] as f64).max(0.0);
                        gap += g * g;
                        if gap > reach_sq {
                            return false;
                        }
                    }
                    true
                },
                |j| {
                    let nb = tnorm[j];
                    if (na - nb).abs() > r + norm_slack(na, nb) {
                        return true;
                    }
                    let limit = (spread + sa + tslack[j]) * (1.0 + PRUNE_MARGIN);
                    let limit_sq = limit * limit;
                    let pb = tree.point(j);
                    let mut gap = 0f64;
                    for (&x, &y) in pa.iter().zip(pb) {
                        let g = x as f64 - y as f64;
                        gap += g * g;
                        if gap > limit_sq {
                            return true;
                        }
                    }
                    let (va, vb) = (
                        members[tree.vector(i) as usize],
                        members[tree.vector(j) as usize],
                    );
                    if l2_joins(m, d.rows[va as usize], d.rows[vb as usize], r) {
                        if !budget.take() {
                            return false;
                        }
                        found.push((va.min(vb), va.max(vb)));
                    }
                    true
                },
            );
            found
        })
        .collect();
    budget.finish(pairs)
}

/// `Threshold::L2(r).joins(m, a, b)`, decided the same way, but giving up
/// as soon as a partial sum of squared differences (in f64) passes r² by
/// more than its rounding could: most pairs that reach this test are far
/// apart in the coordinates the projections left out.
pub fn l2_joins(m: &Matrix, a: usize, b: usize, r: f64) -> bool {
    // Rounding of d ≤ 2^30 f64 terms moves the partial sum by far less than
    // this, and above 1e-280 an underflow cannot matter.
    let limit = r * r * (1.0 + 1e-6);
    if limit.is_finite() && limit > 1e-280 {
        let s = m.dtype.size();
        const CHUNK: usize = 256;
        let (x, y) = (m.row(a), m.row(b));
        let mut acc = 0f64;
        for (cx, cy) in x.chunks(CHUNK * s).zip(y.chunks(CHUNK * s)) {
            acc += match m.dtype {
                Dtype::BF16 => cx
                    .chunks_exact(2)
                    .zip(cy.chunks_exact(2))
                    .map(|(p, q)| {
                        let f = |b: &[u8]| {
                            f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
                        };
                        let g = (f(p) - f(q)) as f64;
                        g * g
                    })
                    .sum::<f64>(),
                dt => cx
                    .chunks_exact(s)
                    .zip(cy.chunks_exact(s))
                    .map(|(p, q)| {
                        let g = dt.decode(p) - dt.decode(q);
                        g * g
                    })
                    .sum::<f64>(),
            };
            if acc > limit {
                return false;
            }
        }
    }
    Threshold::L2(r).joins(m, a, b)
}

/// Whether every coordinate of rows `a` and `b` is at most `k` steps apart:
/// `linf_steps(m, a, b) <= k`, stopping at the first coordinate that is not.
pub fn steps_join(m: &Matrix, a: usize, b: usize, k: u64) -> bool {
    let s = m.dtype.size();
    m.row(a)
        .chunks_exact(s)
        .zip(m.row(b).chunks_exact(s))
        .all(|(x, y)| m.dtype.steps_between(m.dtype.bits(x), m.dtype.bits(y)) <= k)
}

/// Coordinates the step search indexes and filters on.
pub const STEP_COORDINATES: usize = 16;

/// [`joined_pairs`] for `Threshold::Steps(k)`, pruned in integer positions:
/// two vectors K steps apart in every coordinate are K positions apart in
/// each, so the vectors go into a k-d tree over their positions in the
/// [`STEP_COORDINATES`] coordinates whose positions spread the most (over a
/// sample), each vector visits the boxes within K of it in all of them, and
/// a pair is tested exactly only when it is within K in every one. No
/// rounding enters: the filter is exact arithmetic on bit positions.
pub fn joined_pairs_steps(m: &Matrix, d: &Distinct, k: u64) -> Option<Vec<(u32, u32)>> {
    let n = d.len();
    let s = m.dtype.size();
    let pos = |row: usize, c: usize| {
        m.dtype
            .ordered_position(m.dtype.bits(&m.row(row)[c * s..(c + 1) * s]))
    };
    // Spread of each coordinate's positions over a sample: their variance.
    let step = n.div_ceil(2048).max(1);
    let sample: Vec<usize> = d.rows.iter().step_by(step).copied().collect();
    let mut spread: Vec<(f64, usize)> = (0..m.cols)
        .into_par_iter()
        .map(|c| {
            let v: Vec<f64> = sample.iter().map(|&r| pos(r, c) as f64).collect();
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
            (var, c)
        })
        .collect();
    spread.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let coords: Vec<usize> = spread.iter().take(STEP_COORDINATES).map(|x| x.1).collect();
    let c = coords.len();
    let keys: Vec<i64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|v| coords.iter().map(move |&col| pos(d.rows[v], col)))
        .collect();
    let tree = KdTree::new(&keys, c);
    let k128 = k as i128;
    let budget = Budget::default();
    let pairs: Vec<(u32, u32)> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let a = tree.vector(i) as usize;
            let ka = tree.point(i);
            let mut found = Vec::new();
            if budget.over() {
                return found;
            }
            tree.for_each_after(
                i,
                |lo, hi| {
                    (0..c).all(|j| {
                        let x = ka[j] as i128;
                        lo[j] as i128 - k128 <= x && x <= hi[j] as i128 + k128
                    })
                },
                |jb| {
                    let kb = tree.point(jb);
                    let b = tree.vector(jb) as usize;
                    let close = ka
                        .iter()
                        .zip(kb)
                        .all(|(&x, &y)| (x as i128 - y as i128).unsigned_abs() <= k as u128);
                    if close && steps_join(m, d.rows[a], d.rows[b], k) {
                        if !budget.take() {
                            return false;
                        }
                        found.push((a.min(b) as u32, a.max(b) as u32));
                    }
                    true
                },
            );
            found
        })
        .collect();
    budget.finish(pairs)
}

/// Every pair at L2 distance ≤ `r` that involves one of the vectors
/// `first`, each tested exactly against every other vector (for vectors
/// whose f32 projections could overflow). `None` past [`MAX_JOINED_PAIRS`].
pub fn joined_pairs_exhaustive(
    m: &Matrix,
    d: &Distinct,
    first: &[u32],
    r: f64,
) -> Option<Vec<(u32, u32)>> {
    let n = d.len() as u32;
    let budget = Budget::default();
    let pairs: Vec<(u32, u32)> = first
        .par_iter()
        .flat_map_iter(|&a| {
            let mut found = Vec::new();
            for b in (0..n).filter(|&b| b != a) {
                if budget.over() {
                    break;
                }
                if Threshold::L2(r).joins(m, d.rows[a as usize], d.rows[b as usize]) {
                    if !budget.take() {
                        break;
                    }
                    found.push((a.min(b), a.max(b)));
                }
            }
            found
        })
        .collect();
    budget.finish(pairs)
}

/// The nearest token outside a component.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outside {
    pub token_id: usize,
    pub distance: f64,
}

/// One connected component of joined distinct vectors.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    /// All tokens on its vectors, ascending.
    pub token_ids: Vec<usize>,
    pub distinct_vectors: usize,
    /// Its vectors that hold two or more tokens.
    pub black_holes: usize,
    /// The largest L2 distance between two of its vectors (`None` above
    /// [`MAX_DIAMETER_VECTORS`] vectors).
    pub diameter_l2: Option<f64>,
    /// The largest number of steps between two of its vectors in one
    /// coordinate (`None` above [`MAX_DIAMETER_VECTORS`] vectors).
    pub diameter_steps: Option<u64>,
    /// L2 norm of the centroid of its tokens (each token counted once).
    pub centroid_norm: f64,
    /// The nearest token on a vector outside it (the smallest id on the
    /// nearest such vector); `None` when every vector is inside.
    pub nearest_outside: Option<Outside>,
    /// Coordinates whose stored bits are the same on all its vectors.
    pub constant_coordinates: usize,
}

/// `--near-l2`, `--near-rel` or `--near-ulp`: what was joined, and the components.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Near {
    /// "l2" or "ulp".
    pub metric: &'static str,
    /// The L2 radius (for `--near-rel`, already multiplied by the median
    /// row norm) or the number of steps.
    pub threshold: f64,
    /// Joined pairs of distinct vectors.
    pub pairs: usize,
    /// Components of two or more distinct vectors, by size (tokens)
    /// descending, then smallest token id.
    pub components: Vec<Component>,
}

/// The components (as sets of vector indices, each ascending) of the joined pairs.
pub fn components(k: usize, pairs: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let mut uf = UnionFind::new(k);
    for &(a, b) in pairs {
        uf.union(a, b);
    }
    uf.sets()
}

/// Describes one component (its vectors' indices, ascending). `outside` is
/// the nearest vector outside it and the distance, found by the caller.
pub fn describe(
    m: &Matrix,
    d: &Distinct,
    vectors: &[u32],
    outside: Option<(u32, f64)>,
) -> Component {
    let mut token_ids: Vec<usize> = vectors
        .iter()
        .flat_map(|&v| d.tokens[v as usize].iter().copied())
        .collect();
    token_ids.sort_unstable();
    let rows: Vec<usize> = vectors.iter().map(|&v| d.rows[v as usize]).collect();
    let (diameter_l2, diameter_steps) = if rows.len() <= MAX_DIAMETER_VECTORS {
        let (l2, steps) = (0..rows.len())
            .into_par_iter()
            .map(|i| {
                rows[i + 1..].iter().fold((0f64, 0u64), |(l2, st), &b| {
                    (
                        l2.max(exact_distance(m, rows[i], b)),
                        st.max(linf_steps(m, rows[i], b)),
                    )
                })
            })
            .reduce(|| (0.0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        (Some(l2), Some(steps))
    } else {
        (None, None)
    };
    let s = m.dtype.size();
    let first = m.row(rows[0]);
    let constant_coordinates = (0..m.cols)
        .filter(|&c| {
            rows[1..]
                .iter()
                .all(|&r| m.row(r)[c * s..(c + 1) * s] == first[c * s..(c + 1) * s])
        })
        .count();
    let (centroid_norm, _) = centroid_and_radius(m, &token_ids);
    Component {
        distinct_vectors: vectors.len(),
        black_holes: vectors
            .iter()
            .filter(|&&v| d.tokens[v as usize].len() > 1)
            .count(),
        diameter_l2,
        diameter_steps,
        centroid_norm,
        nearest_outside: outside.map(|(v, distance)| Outside {
            token_id: d.rows[v as usize],
            distance,
        }),
        constant_coordinates,
        token_ids,
    }
}

/// Orders components by size (tokens) descending, then smallest token id.
pub fn sort_components(c: &mut [Component]) {
    c.sort_by(|a, b| {
        b.token_ids
            .len()
            .cmp(&a.token_ids.len())
            .then(a.token_ids[0].cmp(&b.token_ids[0]))
    });
}

/// Up to `p` orthonormal directions of largest variance of a sample of the
/// rows (subspace iteration on at most 2,048 evenly spaced rows), as f32,
/// `p × cols` row-major: the axes along which the vectors spread the most,
/// so that projections onto them separate far pairs best. Deterministic.
pub fn principal_directions(m: &Matrix, rows: &[usize], p: usize) -> Vec<f32> {
    const SAMPLE: usize = 2048;
    const ROUNDS: usize = 8;
    let d = m.cols;
    let step = rows.len().div_ceil(SAMPLE).max(1);
    let sample: Vec<Vec<f64>> = rows.iter().step_by(step).map(|&r| m.row_f64(r)).collect();
    let p = p.min(d).min(sample.len().max(1));
    if p == 0 || sample.is_empty() {
        return Vec::new();
    }
    let mut mean = vec![0f64; d];
    for x in &sample {
        mean.iter_mut().zip(x).for_each(|(s, v)| *s += v);
    }
    mean.iter_mut().for_each(|s| *s /= sample.len() as f64);
    let centred: Vec<Vec<f64>> = sample
        .into_iter()
        .map(|x| x.iter().zip(&mean).map(|(a, b)| a - b).collect())
        .collect();
    // A fixed pseudo-random start (xorshift), then V ← orth(Xᵀ X V).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut v: Vec<Vec<f64>> = (0..p)
        .map(|_| {
            (0..d)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect()
        })
        .collect();
    orthonormalise(&mut v);
    for _ in 0..ROUNDS {
        let w: Vec<Vec<f64>> = v
            .par_iter()
            .map(|vk| {
                let mut acc = vec![0f64; d];
                for x in &centred {
                    let s = dot(x, vk);
                    acc.iter_mut().zip(x).for_each(|(a, b)| *a += s * b);
                }
                acc
            })
            .collect();
        v = w;
        orthonormalise(&mut v);
    }
    v.iter().flatten().map(|&x| x as f32).collect()
}

/// x · y in f64, in four interleaved sums (so that it vectorises).
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (xc, yc) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail: f64 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for k in 0..4 {
            acc[k] += a[k] * b[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Gram–Schmidt (twice, for stability); a direction that vanishes is
/// replaced by a unit axis.
fn orthonormalise(v: &mut [Vec<f64>]) {
    for k in 0..v.len() {
        for _ in 0..2 {
            for j in 0..k {
                let dot: f64 = v[k].iter().zip(&v[j]).map(|(a, b)| a * b).sum();
                let (head, tail) = v.split_at_mut(k);
                tail[0]
                    .iter_mut()
                    .zip(&head[j])
                    .for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v[k].iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-300 {
            v[k].iter_mut().for_each(|a| *a /= norm);
        } else {
            let d = v[k].len();
            v[k] = (0..d).map(|c| if c == k % d { 1.0 } else { 0.0 }).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound is at least ‖U‖₂ (power iteration on UᵀU, in f64) and
    /// about 1 for orthonormal rows.
    #[test]
    fn operator_norm_bound_covers_the_spectral_norm() {
        let cols = 5;
        // Two equal rows: ‖U‖₂ = √2 exactly.
        let twice = [1f32, 0., 0., 0., 0., 1., 0., 0., 0., 0.];
        assert!(operator_norm_bound(&twice, cols) >= 2f64.sqrt());
        let axes: Vec<f32> = (0..cols * cols)
            .map(|i| if i % (cols + 1) == 0 { 1.0 } else { 0.0 })
            .collect();
        let b = operator_norm_bound(&axes, cols);
        assert!((1.0..1.0 + 1e-9).contains(&b), "{b}");
        let mut s = 0x1234_5678_9abc_def1u64;
        let u: Vec<f32> = (0..3 * cols)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let mut x = vec![1f64; cols];
        let mut norm = 0.0;
        for _ in 0..200 {
            let ux: Vec<f64> = u
                .chunks_exact(cols)
                .map(|r| r.iter().zip(&x).map(|(&a, b)| a as f64 * b).sum())
                .collect();
            let mut y = vec![0f64; cols];
            for (r, v) in u.chunks_exact(cols).zip(&ux) {
                y.iter_mut().zip(r).for_each(|(y, &a)| *y += a as f64 * v);
            }
            let n = y.iter().map(|v| v * v).sum::<f64>().sqrt();
            norm = n.sqrt();
            x = y.iter().map(|v| v / n).collect();
        }
        assert!(operator_norm_bound(&u, cols) >= norm, "{norm}");
    }

    /// The early exit decides as the full exact test does, at the
    /// threshold and one step either side of it.
    #[test]
    fn early_exit_agrees_with_the_exact_test() {
        let rows: [[f32; 3]; 4] = [
            [0.0, 0.0, 0.0],
            [0.75, 0.0, 0.0],
            [0.75, 2e-20, 0.0],
            [0.5, 0.5, 0.25],
        ];
        let bytes: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let m = Matrix::new(Dtype::F32, 4, 3, &bytes).unwrap();
        for r in [
            0.75f64,
            0.75f64.next_down(),
            0.75f64.next_up(),
            0.0,
            1e-300,
            1e200,
        ] {
            for a in 0..4 {
                for b in 0..4 {
                    assert_eq!(
                        l2_joins(&m, a, b, r),
                        Threshold::L2(r).joins(&m, a, b),
                        "rows {a}, {b} at {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn union_find_joins_chains() {
        let sets = components(6, &[(0, 2), (2, 4), (1, 5)]);
        assert_eq!(sets, vec![vec![0, 2, 4], vec![1, 5]]);
    }
}
