//! Summary statistics of the numbers a survey reports (moments, spreads,
//! group sizes). Undefined values are `None`, never NaN.

use serde::Serialize;

use super::group::Group;

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

/// How many groups have one size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SizeCount {
    /// Rows in each group.
    pub size: usize,
    /// Groups of that size.
    pub count: usize,
}

/// Group-size statistics (as the notebook prints them).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SizeSummary {
    pub largest: usize,
    pub smallest: usize,
    pub mean: f64,
    /// `numpy.median`: the mean of the two middle sizes when their count is even.
    pub median: f64,
    /// The number of groups of each size, ascending by size.
    pub distribution: Vec<SizeCount>,
}

impl SizeSummary {
    /// `None` without groups.
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
            .map(|c| SizeCount {
                size: c[0],
                count: c.len(),
            })
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

/// How many rows repeat another, counted and put as fractions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DuplicateCounts {
    /// Distinct vectors among all rows.
    pub n_unique: usize,
    /// Rows whose vector an earlier row already holds: rows − unique.
    pub n_duplicate: usize,
    /// Unique over rows, in [0, 1].
    pub uniqueness: f64,
    /// Duplicates over rows, in [0, 1].
    pub duplicate_fraction: f64,
    /// Rows over unique vectors (≥ 1): how many times smaller a matrix of
    /// only the distinct vectors would be.
    pub dedup_ratio: f64,
}

impl DuplicateCounts {
    /// From the number of rows (at least one) and of distinct vectors among them.
    pub fn of(rows: usize, n_unique: usize) -> Self {
        let n_duplicate = rows - n_unique;
        Self {
            n_unique,
            n_duplicate,
            uniqueness: n_unique as f64 / rows as f64,
            duplicate_fraction: n_duplicate as f64 / rows as f64,
            dedup_ratio: rows as f64 / n_unique as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            s.distribution,
            vec![
                SizeCount { size: 2, count: 1 },
                SizeCount { size: 4, count: 1 }
            ]
        );
        let c = DuplicateCounts::of(8, 6);
        assert_eq!(c.n_duplicate, 2);
        assert_eq!(c.uniqueness, 0.75);
        assert_eq!(c.duplicate_fraction, 0.25);
        assert_eq!(c.dedup_ratio, 8.0 / 6.0);
    }
}
