//! Grouping with byte confirmation.
//!
//! Rows are bucketed by hash, and every bucket is split by exact comparison
//! of the rows' bytes, so a hash collision can only cost time: distinct rows
//! are never merged, and identical rows always share a hash.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::dtype::Dtype;
use crate::matrix::Matrix;
use crate::types::Equality;

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

/// Splits each group by the rows' stored bytes (`stored` holds every row,
/// `row_len` bytes each: a quantized tensor's blocks). Identity is on what
/// is stored, so rows whose values decode alike from different blocks are
/// different token vectors; rows with equal blocks always decode alike, so
/// this can only split groups, never merge them.
pub fn refine_by_stored(g: Grouping, stored: &[u8], row_len: usize) -> Grouping {
    let row = |i: usize| &stored[i * row_len..(i + 1) * row_len];
    let mut added = 0;
    let mut groups: Vec<Group> = Vec::with_capacity(g.groups.len());
    for group in g.groups {
        let mut sorted = group.ids;
        sorted.sort_by(|&a, &b| row(a).cmp(row(b)).then(a.cmp(&b)));
        let classes: Vec<&[usize]> = sorted.chunk_by(|&a, &b| row(a) == row(b)).collect();
        added += classes.len() - 1;
        for c in classes.into_iter().filter(|c| c.len() > 1) {
            let mut ids = c.to_vec();
            ids.sort_unstable();
            groups.push(Group { ids });
        }
    }
    groups.sort_by(|a, b| b.ids.len().cmp(&a.ids.len()).then(a.ids[0].cmp(&b.ids[0])));
    Grouping {
        groups,
        n_unique: g.n_unique + added,
        nan_rows: g.nan_rows,
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
    fn stored_bytes_split_groups_of_equal_values() {
        // Four rows of equal values; their stored blocks are A, B, A, C.
        let (bytes, n) = matrix(&[[0.0, 0.0]; 4]);
        let m = Matrix::new(Dtype::F32, n, 2, &bytes).unwrap();
        let g = group_rows(&m, &[3; 4], &[false; 4], GroupOptions::default());
        assert_eq!(g.n_unique, 1);
        let stored = [1u8, 1, 2, 2, 1, 1, 3, 3];
        let r = refine_by_stored(g, &stored, 2);
        assert_eq!(r.groups, vec![Group { ids: vec![0, 2] }]);
        assert_eq!(r.n_unique, 3);
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
}
