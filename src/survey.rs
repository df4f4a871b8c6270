//! Grouping and statistics: pure functions over the engine's outputs (no I/O,
//! no GPU types).
//!
//! Rows are bucketed by hash, and every bucket is split by exact comparison
//! of the rows' bytes, so a hash collision can only cost time: distinct rows
//! are never merged, and identical rows always share a hash.

pub mod lattice;
pub mod near;
pub mod nearest;

use std::cmp::Ordering;

use rayon::prelude::*;
use serde::Serialize;

use crate::dtype::Dtype;
use crate::engine::Equality;
use crate::load::Matrix;

/// Above this many black holes the pairwise distances (k² values) are not computed.
pub const MAX_PAIRWISE_REPRESENTATIVES: usize = 4096;

/// A set of ≥ 2 rows with identical vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Row (token) ids, ascending.
    pub ids: Vec<usize>,
}

impl Group {
    /// The row that stands for the group (its smallest id).
    pub fn representative(&self) -> usize {
        self.ids[0]
    }
}

/// The result of grouping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grouping {
    /// Groups by size, largest first, then by smallest id.
    pub groups: Vec<Group>,
    /// Distinct vectors among all rows.
    pub n_unique: usize,
    /// Rows holding a NaN, under [`Equality::Numeric`] (each counts as unique).
    pub nan_rows: Vec<usize>,
}

/// How to group.
#[derive(Clone, Copy, Debug)]
pub struct GroupOptions {
    pub equality: Equality,
    /// Test hook: keep only the low `hash_bits` bits of each hash (64 in normal
    /// use; 0 makes every row collide) to exercise the byte confirmation.
    pub hash_bits: u32,
}

impl Default for GroupOptions {
    fn default() -> Self {
        Self {
            equality: Equality::Bitwise,
            hash_bits: 64,
        }
    }
}

/// Compares two rows under the equality in force.
fn compare(dtype: Dtype, eq: Equality, a: &[u8], b: &[u8]) -> Ordering {
    match eq {
        Equality::Bitwise => a.cmp(b),
        Equality::Numeric => {
            let s = dtype.size();
            a.chunks_exact(s)
                .zip(b.chunks_exact(s))
                .map(|(x, y)| {
                    dtype
                        .canonical_bits(dtype.bits(x))
                        .cmp(&dtype.canonical_bits(dtype.bits(y)))
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }
    }
}

/// Splits rows that share a hash into classes of identical rows (only classes
/// of two or more are returned). `ids` is ascending, and so is each class.
fn split_bucket(m: &Matrix, eq: Equality, ids: &[usize]) -> Vec<Vec<usize>> {
    let first = m.row(ids[0]);
    // The common case: a black hole, every row identical. One linear pass.
    if ids[1..]
        .iter()
        .all(|&i| compare(m.dtype, eq, m.row(i), first).is_eq())
    {
        return vec![ids.to_vec()];
    }
    let mut sorted = ids.to_vec();
    sorted.sort_by(|&a, &b| compare(m.dtype, eq, m.row(a), m.row(b)).then(a.cmp(&b)));
    sorted
        .chunk_by(|&a, &b| compare(m.dtype, eq, m.row(a), m.row(b)).is_eq())
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut c = c.to_vec();
            c.sort_unstable();
            c
        })
        .collect()
}

/// Groups identical rows, given each row's hash and NaN flag.
pub fn group_rows(m: &Matrix, hashes: &[u64], has_nan: &[bool], opts: GroupOptions) -> Grouping {
    let mask = if opts.hash_bits >= 64 {
        u64::MAX
    } else {
        (1u64 << opts.hash_bits) - 1
    };
    let numeric = opts.equality == Equality::Numeric;
    let nan_rows: Vec<usize> = if numeric {
        (0..m.rows).filter(|&i| has_nan[i]).collect()
    } else {
        Vec::new()
    };
    let mut keyed: Vec<(u64, usize)> = (0..m.rows)
        .filter(|&i| !(numeric && has_nan[i]))
        .map(|i| (hashes[i] & mask, i))
        .collect();
    keyed.par_sort_unstable();
    let buckets: Vec<&[(u64, usize)]> = keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|b| b.len() > 1)
        .collect();
    let mut groups: Vec<Group> = buckets
        .par_iter()
        .flat_map_iter(|b| {
            let ids: Vec<usize> = b.iter().map(|&(_, i)| i).collect();
            split_bucket(m, opts.equality, &ids)
        })
        .map(|ids| Group { ids })
        .collect();
    groups.sort_by(|a, b| b.ids.len().cmp(&a.ids.len()).then(a.ids[0].cmp(&b.ids[0])));
    let merged: usize = groups.iter().map(|g| g.ids.len() - 1).sum();
    Grouping {
        groups,
        n_unique: m.rows - merged,
        nan_rows,
    }
}

/// Min, max, mean and sample standard deviation of some values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Moments {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Sample std (n − 1, as `torch.std`); `None` for fewer than two values.
    pub std: Option<f64>,
}

/// A number users may see: `None` where it is undefined (never NaN).
pub fn defined(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Moments {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        Self {
            min: defined(values.iter().copied().fold(f64::INFINITY, f64::min)),
            max: defined(values.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            mean: defined(mean),
            std: std.and_then(defined),
        }
    }
}

/// Mean and sample standard deviation (the cloud of all rows' norms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MeanStd {
    pub mean: Option<f64>,
    /// Sample std (n − 1); `None` for fewer than two values.
    pub std: Option<f64>,
}

impl From<Moments> for MeanStd {
    fn from(m: Moments) -> Self {
        Self {
            mean: m.mean,
            std: m.std,
        }
    }
}

/// Summary of pairwise distances.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// The lower middle value, as `torch.median` (equal over the k(k−1)/2
    /// unordered pairs and over the notebook's k(k−1) off-diagonal entries).
    pub median: Option<f64>,
}

impl Spread {
    /// `None` for fewer than one distance.
    pub fn of(distances: &[f64]) -> Option<Self> {
        if distances.is_empty() {
            return None;
        }
        let m = Moments::of(distances);
        let mut sorted = distances.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            min: m.min,
            max: m.max,
            mean: m.mean,
            median: defined(sorted[(sorted.len() - 1) / 2]),
        })
    }
}

/// Group-size statistics for the text report (as the notebook prints them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SizeSummary {
    pub largest: usize,
    pub smallest: usize,
    pub mean: f64,
    /// `numpy.median`: the mean of the two middle sizes when their count is even.
    pub median: f64,
    /// (size, number of groups of that size), ascending by size.
    pub distribution: Vec<(usize, usize)>,
}

impl SizeSummary {
    pub fn of(groups: &[Group]) -> Option<Self> {
        if groups.is_empty() {
            return None;
        }
        let mut sizes: Vec<usize> = groups.iter().map(|g| g.ids.len()).collect();
        sizes.sort_unstable();
        let n = sizes.len();
        let median = if n % 2 == 1 {
            sizes[n / 2] as f64
        } else {
            (sizes[n / 2 - 1] + sizes[n / 2]) as f64 / 2.0
        };
        let distribution = sizes
            .chunk_by(|a, b| a == b)
            .map(|c| (c[0], c.len()))
            .collect();
        Some(Self {
            largest: sizes[n - 1],
            smallest: sizes[0],
            mean: sizes.iter().sum::<usize>() as f64 / n as f64,
            median,
            distribution,
        })
    }
}

/// The geometry of the black holes and of the whole cloud.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Geometry {
    pub black_hole_norms: Moments,
    /// `None` with fewer than two black holes (or more than [`MAX_PAIRWISE_REPRESENTATIVES`]).
    pub pairwise_l2: Option<Spread>,
    pub cloud_norms: MeanStd,
    pub centroid_norm: Option<f64>,
    /// Mean black-hole norm over mean cloud norm.
    pub norm_ratio: Option<f64>,
}

/// Computes the geometry from the per-row norms, the column sums, the groups
/// and the distances between their representatives.
pub fn geometry(
    norms: &[f64],
    column_sums: &[f64],
    groups: &[Group],
    pairwise: Option<&[f64]>,
) -> Geometry {
    let bh: Vec<f64> = groups.iter().map(|g| norms[g.representative()]).collect();
    let black_hole_norms = Moments::of(&bh);
    let cloud_norms = MeanStd::from(Moments::of(norms));
    let n = norms.len() as f64;
    let centroid_norm = defined(
        column_sums
            .iter()
            .map(|s| (s / n) * (s / n))
            .sum::<f64>()
            .sqrt(),
    );
    let norm_ratio = match (black_hole_norms.mean, cloud_norms.mean) {
        (Some(a), Some(b)) => defined(a / b),
        _ => None,
    };
    Geometry {
        black_hole_norms,
        pairwise_l2: pairwise.and_then(Spread::of),
        cloud_norms,
        centroid_norm,
        norm_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[[f32; 2]]) -> (Vec<u8>, usize) {
        let bytes: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        (bytes, rows.len())
    }

    #[test]
    fn collisions_split_and_identical_rows_merge() {
        let (bytes, n) = matrix(&[[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        let m = Matrix::new(Dtype::F32, n, 2, &bytes).unwrap();
        // Every row in one bucket.
        let g = group_rows(&m, &[7; 5], &[false; 5], GroupOptions::default());
        assert_eq!(
            g.groups,
            vec![Group { ids: vec![0, 2] }, Group { ids: vec![1, 3] }]
        );
        assert_eq!(g.n_unique, 3);
    }

    #[test]
    fn numeric_equality_merges_signed_zeros() {
        let (bytes, n) = matrix(&[[0.0, 1.0], [-0.0, 1.0]]);
        let m = Matrix::new(Dtype::F32, n, 2, &bytes).unwrap();
        let bitwise = group_rows(&m, &[1, 1], &[false; 2], GroupOptions::default());
        assert!(bitwise.groups.is_empty());
        let numeric = group_rows(
            &m,
            &[1, 1],
            &[false; 2],
            GroupOptions {
                equality: Equality::Numeric,
                hash_bits: 64,
            },
        );
        assert_eq!(numeric.groups, vec![Group { ids: vec![0, 1] }]);
    }

    #[test]
    fn statistics_match_hand_computation() {
        let m = Moments::of(&[1.0, 2.0, 4.0]);
        assert_eq!(m.mean, Some(7.0 / 3.0));
        let var = ((1.0f64 - 7.0 / 3.0).powi(2)
            + (2.0f64 - 7.0 / 3.0).powi(2)
            + (4.0f64 - 7.0 / 3.0).powi(2))
            / 2.0;
        assert_eq!(m.std, Some(var.sqrt()));
        assert_eq!(Moments::of(&[3.0]).std, None);
        assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, Some(2.0));
        let s = SizeSummary::of(&[
            Group { ids: vec![0, 1] },
            Group {
                ids: vec![2, 3, 4, 5],
            },
        ])
        .unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.distribution, vec![(2, 1), (4, 1)]);
    }
}
