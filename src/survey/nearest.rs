//! Every token's nearest distinct vector, summarised: quantiles, a log-scale
//! histogram, the most and least isolated tokens, and the gap that splits off
//! a small low population (on real models, the frozen structure of dead
//! tokens). Pure functions over exact per-vector results (no I/O, no GPU).

use serde::Serialize;

use super::Group;
use crate::matrix::Matrix;

/// Tokens listed as the most and the least isolated.
pub const EXTREMES: usize = 20;
/// Histogram bins per decade of distance.
pub const BINS_PER_DECADE: f64 = 4.0;
/// The quantiles reported, as fractions.
pub const QUANTILES: [f64; 7] = [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0];
/// A gap must span at least this factor of distance (0.3 decades) to count.
pub const MIN_GAP_RATIO: f64 = 2.0;

/// The distinct vectors of a matrix: each stands for one row or for a group
/// of identical rows, and is named by its smallest token id.
#[derive(Clone, Debug, Default)]
pub struct Distinct {
    /// The representative row of each vector (its smallest token id), ascending.
    pub rows: Vec<usize>,
    /// For each vector, its token ids (ascending).
    pub tokens: Vec<Vec<usize>>,
    /// For each token, its vector's index, or `None` for a token left out
    /// (a row holding NaN or ±∞).
    pub vector_of: Vec<Option<u32>>,
}

impl Distinct {
    /// The distinct vectors among the rows for which `usable(row)` holds.
    pub fn new(n: usize, groups: &[Group], usable: impl Fn(usize) -> bool) -> Self {
        let mut first_of = vec![usize::MAX; n];
        for g in groups {
            for &id in &g.ids {
                first_of[id] = g.ids[0];
            }
        }
        let mut d = Distinct {
            vector_of: vec![None; n],
            ..Default::default()
        };
        let mut index_of_rep = vec![u32::MAX; n];
        for (id, &first) in first_of.iter().enumerate() {
            if !usable(id) {
                continue;
            }
            let rep = if first == usize::MAX { id } else { first };
            if index_of_rep[rep] == u32::MAX {
                index_of_rep[rep] = d.rows.len() as u32;
                d.rows.push(rep);
                d.tokens.push(Vec::new());
            }
            let v = index_of_rep[rep];
            d.tokens[v as usize].push(id);
            d.vector_of[id] = Some(v);
        }
        d
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The exact L2 distance between two rows: Σ(x − y)² from direct
/// differences of the decoded values, in f64, in column order (the one
/// definition both engines' answers are refined to).
pub fn exact_distance(m: &Matrix, a: usize, b: usize) -> f64 {
    let s = m.dtype.size();
    let pairs = || {
        m.row(a)
            .chunks_exact(s)
            .zip(m.row(b).chunks_exact(s))
            .map(|(x, y)| (m.dtype.decode(x), m.dtype.decode(y)))
    };
    let mut acc = [0f64; 4];
    for (k, (x, y)) in pairs().enumerate() {
        let d = x - y;
        acc[k % 4] += d * d;
    }
    let sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (sum.is_finite() && sum > 1e-280) || sum.is_nan() {
        return sum.sqrt();
    }
    // f64 values whose squared differences overflow or underflow: scale by a
    // power of two near the largest difference. Values so large that their
    // difference could overflow are halved first (exact for them; halving
    // would round subnormals, whose differences are exact as they are).
    let huge = pairs().any(|(x, y)| x.abs().max(y.abs()) > 1e300);
    let half = if huge { 0.5 } else { 1.0 };
    let diff = |x: f64, y: f64| x * half - y * half;
    let max = pairs().fold(0f64, |a, (x, y)| a.max(diff(x, y).abs()));
    if max == 0.0 || !max.is_finite() {
        return max / half;
    }
    let scale = 2f64.powi(-(max.log2().floor() as i32).clamp(-1000, 1000));
    let mut acc = [0f64; 4];
    for (k, (x, y)) in pairs().enumerate() {
        let d = diff(x, y) * scale;
        acc[k % 4] += d * d;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])).sqrt() / scale / half
}

/// One token and its nearest distinct vector.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Neighbour {
    pub token_id: usize,
    /// The nearest distinct vector's smallest token id.
    pub nearest: usize,
    pub distance: f64,
}

/// A quantile of the nearest-neighbour distances (numpy's default, linear).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantile {
    /// The fraction, in [0, 1].
    pub q: f64,
    pub distance: f64,
}

/// One histogram bin, `lo ≤ d < hi` (the last bin includes its `hi`; a bin
/// with `lo = hi = 0` counts distances of exactly 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
}

/// The low population below the gap.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gap {
    /// The largest nearest-neighbour distance below the gap.
    pub lo: f64,
    /// The smallest nearest-neighbour distance above it.
    pub hi: f64,
    /// The tokens below the gap, ascending.
    pub tokens: Vec<usize>,
    pub distinct_vectors: usize,
    /// Black holes (groups of ≥ 2 tokens) among them.
    pub black_holes: usize,
    /// The largest L2 distance of one of its tokens from their centroid.
    pub radius: f64,
    /// L2 norm of the tokens' centroid.
    pub centroid_norm: f64,
}

/// `--nearest`: every token's nearest distinct vector, and its summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Nearest {
    /// Per token, in token order: the nearest distinct vector's smallest
    /// token id; `None` for a token with no other vector to compare with
    /// (a row holding NaN or ±∞, or a matrix of one distinct vector).
    pub ids: Vec<Option<usize>>,
    /// Per token, the L2 distance to that vector.
    pub distances: Vec<Option<f64>>,
    /// Tokens with a nearest neighbour (the entries above that are not `None`).
    pub with_neighbour: usize,
    pub quantiles: Vec<Quantile>,
    pub histogram: Vec<Bin>,
    pub gap: Option<Gap>,
    /// The [`EXTREMES`] tokens farthest from their nearest vector (distance
    /// descending, then id ascending).
    pub most_isolated: Vec<Neighbour>,
    /// The [`EXTREMES`] tokens closest to their nearest vector (distance
    /// ascending, then id ascending).
    pub least_isolated: Vec<Neighbour>,
}

/// numpy's default (linear) quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Log-scale bins of [`BINS_PER_DECADE`] per decade from the first to the
/// last non-empty one, after a bin for exact zeros when there are any.
pub fn histogram(sorted: &[f64]) -> Vec<Bin> {
    // A distance beyond f64 (rows near ±f64::MAX) has no bin.
    let sorted = &sorted[..sorted.partition_point(|d| d.is_finite())];
    let zeros = sorted.iter().take_while(|&&d| d == 0.0).count();
    let mut bins = Vec::new();
    if zeros > 0 {
        bins.push(Bin {
            lo: 0.0,
            hi: 0.0,
            count: zeros,
        });
    }
    let positive = &sorted[zeros..];
    let (Some(&first), Some(&last)) = (positive.first(), positive.last()) else {
        return bins;
    };
    let index = |d: f64| (d.log10() * BINS_PER_DECADE).floor() as i64;
    let edge = |k: i64| 10f64.powf(k as f64 / BINS_PER_DECADE);
    let (k0, k1) = (index(first), index(last));
    let mut counts = vec![0usize; (k1 - k0 + 1) as usize];
    for &d in positive {
        // Guard against log10 rounding across an edge.
        let mut k = index(d);
        if d < edge(k) {
            k -= 1;
        } else if d >= edge(k + 1) {
            k += 1;
        }
        counts[(k.clamp(k0, k1) - k0) as usize] += 1;
    }
    bins.extend(counts.iter().enumerate().map(|(i, &count)| Bin {
        lo: edge(k0 + i as i64),
        hi: edge(k0 + i as i64 + 1),
        count,
    }));
    bins
}

/// The widest gap between consecutive distinct positive distances (in log
/// scale) whose low side holds at most half of the tokens, if it spans at
/// least [`MIN_GAP_RATIO`]. Returns (lo, hi).
pub fn widest_gap(sorted: &[f64]) -> Option<(f64, f64)> {
    let half = sorted.len() / 2;
    let mut best: Option<(f64, f64)> = None;
    for i in 0..sorted.len().saturating_sub(1) {
        if i + 1 > half {
            break;
        }
        let (lo, hi) = (sorted[i], sorted[i + 1]);
        if lo <= 0.0 || hi <= lo || !hi.is_finite() {
            continue;
        }
        if hi / lo >= MIN_GAP_RATIO && best.is_none_or(|(a, b)| hi / lo > b / a) {
            best = Some((lo, hi));
        }
    }
    best
}

/// The centroid of some rows (each row once per token) and the largest
/// distance of one of them from it: (centroid norm, radius).
pub fn centroid_and_radius(m: &Matrix, tokens: &[usize]) -> (f64, f64) {
    let mut c = vec![0f64; m.cols];
    for &t in tokens {
        for (s, v) in c.iter_mut().zip(m.row_f64(t)) {
            *s += v;
        }
    }
    let n = tokens.len().max(1) as f64;
    c.iter_mut().for_each(|s| *s /= n);
    let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
    let radius = tokens
        .iter()
        .map(|&t| {
            m.row_f64(t)
                .iter()
                .zip(&c)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0f64, f64::max);
    (norm, radius)
}

/// Summarises per-vector nearest neighbours (`per_vector[v]` = the index of
/// the nearest other vector and the exact distance) over every token.
pub fn summarise(m: &Matrix, d: &Distinct, per_vector: &[Option<(u32, f64)>]) -> Nearest {
    let n = d.vector_of.len();
    let mut ids = vec![None; n];
    let mut distances = vec![None; n];
    let mut found: Vec<Neighbour> = Vec::new();
    for (t, v) in d.vector_of.iter().enumerate() {
        if let Some((w, dist)) = v.and_then(|v| per_vector[v as usize]) {
            let nearest = d.rows[w as usize];
            ids[t] = Some(nearest);
            distances[t] = Some(dist);
            found.push(Neighbour {
                token_id: t,
                nearest,
                distance: dist,
            });
        }
    }
    found.sort_by(|a, b| {
        a.distance
            .total_cmp(&b.distance)
            .then(a.token_id.cmp(&b.token_id))
    });
    let sorted: Vec<f64> = found.iter().map(|x| x.distance).collect();
    let quantiles = if sorted.is_empty() {
        Vec::new()
    } else {
        QUANTILES
            .iter()
            .map(|&q| Quantile {
                q,
                distance: quantile(&sorted, q),
            })
            .collect()
    };
    let least_isolated = found.iter().take(EXTREMES).cloned().collect();
    let mut by_isolation = found.clone();
    by_isolation.sort_by(|a, b| {
        b.distance
            .total_cmp(&a.distance)
            .then(a.token_id.cmp(&b.token_id))
    });
    let most_isolated = by_isolation.into_iter().take(EXTREMES).collect();
    let gap = widest_gap(&sorted).map(|(lo, hi)| {
        let mut tokens: Vec<usize> = found
            .iter()
            .take_while(|x| x.distance <= lo)
            .map(|x| x.token_id)
            .collect();
        tokens.sort_unstable();
        let mut vectors: Vec<u32> = tokens.iter().filter_map(|&t| d.vector_of[t]).collect();
        vectors.sort_unstable();
        vectors.dedup();
        let black_holes = vectors
            .iter()
            .filter(|&&v| d.tokens[v as usize].len() > 1)
            .count();
        let (centroid_norm, radius) = centroid_and_radius(m, &tokens);
        Gap {
            lo,
            hi,
            distinct_vectors: vectors.len(),
            black_holes,
            tokens,
            radius,
            centroid_norm,
        }
    });
    Nearest {
        ids,
        distances,
        with_neighbour: found.len(),
        quantiles,
        histogram: histogram(&sorted),
        gap,
        most_isolated,
        least_isolated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 rows whose squared differences overflow or underflow keep their
    /// exact distances (and order): 1e160 vs −5e160 vs 2e160, and 1e-170 apart.
    #[test]
    fn exact_distances_survive_f64_extremes() {
        let vals = [
            1e160f64, 0.0, -5e160, 0.0, 2e160, 0.0, 1e-170, 0.0, 3e-170, 0.0,
        ];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = Matrix::new(crate::dtype::Dtype::F64, 5, 2, &bytes).unwrap();
        assert_eq!(exact_distance(&m, 0, 2), 1e160);
        assert_eq!(exact_distance(&m, 0, 1), 6e160);
        assert!((exact_distance(&m, 3, 4) - 2e-170).abs() <= 1e-15 * 2e-170);
        let h = histogram(&[1.0, f64::INFINITY]);
        assert_eq!(h.iter().map(|b| b.count).sum::<usize>(), 1);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.quantile([1, 2, 4, 8], [0, 0.5, 0.9, 1]) = [1, 3, 6.8, 8]
        let s = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 0.5), 3.0);
        assert!((quantile(&s, 0.9) - 6.8).abs() < 1e-12);
        assert_eq!(quantile(&s, 1.0), 8.0);
    }

    #[test]
    fn the_gap_splits_off_a_small_low_population() {
        // Three tokens near 1e-4, seven near 0.5: the gap is (2e-4, 0.4).
        let s = [1e-4, 1e-4, 2e-4, 0.4, 0.45, 0.5, 0.5, 0.6, 0.7, 0.8];
        assert_eq!(widest_gap(&s), Some((2e-4, 0.4)));
        // A wide gap above the median does not count: the low side is too big.
        assert_eq!(widest_gap(&[0.1, 0.11, 0.12, 0.13, 100.0]), None);
        // Zeros sit below every gap.
        assert_eq!(
            widest_gap(&[0.0, 0.0, 1e-3, 1.0, 1.0, 1.1, 1.2]),
            Some((1e-3, 1.0))
        );
    }

    #[test]
    fn histogram_bins_are_quarter_decades() {
        let h = histogram(&[0.0, 1.0, 1.5, 9.0, 10.0]);
        assert_eq!(
            h[0],
            Bin {
                lo: 0.0,
                hi: 0.0,
                count: 1
            }
        );
        // [1, 1.778) holds 1 and 1.5; [5.62, 10) holds 9; [10, 17.8) holds 10.
        assert_eq!(h[1].count, 2);
        assert_eq!(h.last().unwrap().count, 1);
        assert_eq!(h.iter().map(|b| b.count).sum::<usize>(), 5);
        assert_eq!(h.len(), 1 + 5);
    }
}
