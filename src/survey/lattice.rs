//! The lattice of black holes: how many steps of the stored dtype separate
//! every pair of hole representatives (L∞: the most in one coordinate; L1:
//! the total), and which holes are within one step of each other in every
//! coordinate. Pure functions (no I/O, no GPU).

use rayon::prelude::*;
use serde::Serialize;

use super::near::components;
use crate::matrix::Matrix;

/// Above this many holes the k × k matrices are not computed.
pub const MAX_LATTICE_HOLES: usize = 1024;

/// Step distances between black holes (in the order of the report's groups).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lattice {
    /// `linf_steps[i][j]`: the most steps between holes i and j in one coordinate.
    pub linf_steps: Vec<Vec<u64>>,
    /// `l1_steps[i][j]`: the steps summed over all coordinates (saturating).
    pub l1_steps: Vec<Vec<u64>>,
    /// Holes joined at L∞ ≤ 1 step, as connected components of hole indices
    /// (0-based, into `groups`), every hole in exactly one; by size
    /// descending, then smallest index.
    pub components: Vec<Vec<usize>>,
}

/// The lattice of the holes whose representative rows are `reps`; `None`
/// for fewer than two holes or more than [`MAX_LATTICE_HOLES`].
pub fn lattice(m: &Matrix, reps: &[usize]) -> Option<Lattice> {
    let k = reps.len();
    if !(2..=MAX_LATTICE_HOLES).contains(&k) {
        return None;
    }
    let s = m.dtype.size();
    let positions: Vec<Vec<i64>> = reps
        .iter()
        .map(|&r| {
            m.row(r)
                .chunks_exact(s)
                .map(|e| m.dtype.ordered_position(m.dtype.bits(e)))
                .collect()
        })
        .collect();
    let rows: Vec<(Vec<u64>, Vec<u64>)> = (0..k)
        .into_par_iter()
        .map(|i| {
            (0..k)
                .map(|j| {
                    positions[i].iter().zip(&positions[j]).fold(
                        (0u64, 0u64),
                        |(linf, l1), (&a, &b)| {
                            let d = (a as i128 - b as i128).unsigned_abs() as u64;
                            (linf.max(d), l1.saturating_add(d))
                        },
                    )
                })
                .unzip()
        })
        .collect();
    let (linf_steps, l1_steps): (Vec<Vec<u64>>, Vec<Vec<u64>>) = rows.into_iter().unzip();
    let mut joined = Vec::new();
    for (i, row) in linf_steps.iter().enumerate() {
        for (j, &d) in row.iter().enumerate().skip(i + 1) {
            if d <= 1 {
                joined.push((i as u32, j as u32));
            }
        }
    }
    let mut comps: Vec<Vec<usize>> = components(k, &joined)
        .into_iter()
        .map(|c| c.into_iter().map(|x| x as usize).collect())
        .collect();
    let mut in_comp = vec![false; k];
    comps.iter().flatten().for_each(|&i| in_comp[i] = true);
    comps.extend((0..k).filter(|&i| !in_comp[i]).map(|i| vec![i]));
    comps.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    Some(Lattice {
        linf_steps,
        l1_steps,
        components: comps,
    })
}
