//! The geometry of the black holes (their norms and pairwise distances) and
//! of the whole cloud of rows.

use serde::Serialize;

use super::group::Group;
use super::stats::{defined, MeanStd, Moments, Spread};

/// Above this many black holes the pairwise distances (k² values) are not computed.
pub const MAX_PAIRWISE_REPRESENTATIVES: usize = 4096;

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
