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
        assert_eq!(s.distribution, vec![(2, 1), (4, 1)]);
    }
}
