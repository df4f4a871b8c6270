//! The binned data behind the page's plots, computed from a report before
//! anything is drawn: a page holds bins, never one element per token.

use std::collections::BTreeSet;

use crate::report::Report;
use crate::survey::tracker::Series;

/// Bins of the row-norm histogram.
pub const NORM_BINS: usize = 60;
/// Bars of the evaporation chart at most (one per checkpoint up to this many).
pub const STEP_BINS: usize = 64;
/// Holes the lattice heatmap shows one by one; past this, its components.
pub const HEATMAP_HOLES: usize = 64;

/// Counts over equal-width bins of `[lo, hi]` (the last bin includes `hi`).
#[derive(Clone, Debug, PartialEq)]
pub struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<usize>,
}

impl Bins {
    /// `n` empty bins over `[lo, hi]` (one bin when the span is empty).
    pub fn new(lo: f64, hi: f64, n: usize) -> Bins {
        let n = if hi > lo { n.max(1) } else { 1 };
        Bins {
            lo,
            hi,
            counts: vec![0; n],
        }
    }

    /// The bin of `v` (clamped into range).
    pub fn index(&self, v: f64) -> usize {
        let n = self.counts.len();
        if self.hi <= self.lo {
            return 0;
        }
        let k = ((v - self.lo) / (self.hi - self.lo) * n as f64).floor();
        (k.max(0.0) as usize).min(n - 1)
    }

    /// Counts `v`.
    pub fn add(&mut self, v: f64) {
        let k = self.index(v);
        self.counts[k] += 1;
    }

    /// The edges of bin `k`.
    pub fn edges(&self, k: usize) -> (f64, f64) {
        let n = self.counts.len() as f64;
        let w = (self.hi - self.lo) / n;
        (self.lo + k as f64 * w, self.lo + (k + 1) as f64 * w)
    }
}

/// The row norms binned three times over the same bins: every row, the
/// members of black holes, and the members of near-singularity components.
#[derive(Clone, Debug, PartialEq)]
pub struct NormHistogram {
    pub all: Bins,
    pub holes: Bins,
    pub frozen: Bins,
    /// Rows whose norm is not finite (NaN, ±∞), left out.
    pub non_finite: usize,
}

/// The token ids of every black hole, ascending.
pub fn hole_members(r: &Report) -> BTreeSet<usize> {
    r.groups
        .iter()
        .flat_map(|g| g.token_ids.iter().copied())
        .collect()
}

/// The token ids of every near-singularity component, ascending.
pub fn frozen_members(r: &Report) -> BTreeSet<usize> {
    r.near
        .iter()
        .flat_map(|n| n.components.iter())
        .flat_map(|c| c.token_ids.iter().copied())
        .collect()
}

/// The norm histogram of a report; `None` without a finite norm.
pub fn norm_histogram(r: &Report) -> Option<NormHistogram> {
    let finite = r.norms.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo > hi {
        return None;
    }
    let mut h = NormHistogram {
        all: Bins::new(lo, hi, NORM_BINS),
        holes: Bins::new(lo, hi, NORM_BINS),
        frozen: Bins::new(lo, hi, NORM_BINS),
        non_finite: 0,
    };
    for &v in &r.norms {
        if v.is_finite() {
            h.all.add(v);
        } else {
            h.non_finite += 1;
        }
    }
    for id in hole_members(r) {
        if let Some(&v) = r.norms.get(id).filter(|v| v.is_finite()) {
            h.holes.add(v);
        }
    }
    for id in frozen_members(r) {
        if let Some(&v) = r.norms.get(id).filter(|v| v.is_finite()) {
            h.frozen.add(v);
        }
    }
    Some(h)
}

/// The main indicator's values binned three times over the same bins:
/// every token, the reference tokens, and the members of black holes.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorHistogram {
    pub all: Bins,
    pub reference: Bins,
    pub holes: Bins,
}

/// The histogram of a report's main indicator; `None` without indicators
/// or a defined value.
pub fn indicator_histogram(r: &Report) -> Option<IndicatorHistogram> {
    let ind = r.indicators.as_ref()?;
    let values = ind.per_token.get(ind.main)?;
    let finite = values.iter().flatten().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo > hi {
        return None;
    }
    let mut h = IndicatorHistogram {
        all: Bins::new(lo, hi, NORM_BINS),
        reference: Bins::new(lo, hi, NORM_BINS),
        holes: Bins::new(lo, hi, NORM_BINS),
    };
    let value = |id: usize| values.get(id).copied().flatten().filter(|v| v.is_finite());
    for v in values.iter().flatten().filter(|v| v.is_finite()) {
        h.all.add(*v);
    }
    for v in ind.reference.token_ids.iter().filter_map(|&id| value(id)) {
        h.reference.add(v);
    }
    for v in hole_members(r).into_iter().filter_map(value) {
        h.holes.add(v);
    }
    Some(h)
}

/// The lattice as the heatmap shows it: labels and L∞ steps between them.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// What each row and column is (a hole, or a lattice component).
    pub labels: Vec<String>,
    pub steps: Vec<Vec<u64>>,
    /// Whether the cells are components of holes (the smallest distance
    /// between their members) rather than holes.
    pub components: bool,
}

/// The heatmap of a report's lattice: every hole up to [`HEATMAP_HOLES`];
/// past that, the lattice's components (holes joined at one step) when
/// there are at least two, the largest [`HEATMAP_HOLES`] of them; else (the
/// holes all chain into one component) the largest [`HEATMAP_HOLES`] holes.
pub fn heatmap(r: &Report) -> Option<Heatmap> {
    let l = r.lattice.as_ref()?;
    let k = l.linf_steps.len();
    let hole_label = |i: usize| {
        let g = &r.groups[i];
        format!("#{} ({})", g.token_ids[0], g.size)
    };
    if k <= HEATMAP_HOLES || l.components.len() < 2 {
        let shown = k.min(HEATMAP_HOLES);
        return Some(Heatmap {
            labels: (0..shown).map(hole_label).collect(),
            steps: l.linf_steps[..shown]
                .iter()
                .map(|row| row[..shown].to_vec())
                .collect(),
            components: false,
        });
    }
    let comps: Vec<&Vec<usize>> = l.components.iter().take(HEATMAP_HOLES).collect();
    let steps = comps
        .iter()
        .map(|a| {
            comps
                .iter()
                .map(|b| {
                    a.iter()
                        .flat_map(|&i| b.iter().map(move |&j| l.linf_steps[i][j]))
                        .min()
                        .unwrap_or(0)
                })
                .collect()
        })
        .collect();
    let labels = comps
        .iter()
        .map(|c| format!("{} ({} holes)", hole_label(c[0]), c.len()))
        .collect();
    Some(Heatmap {
        labels,
        steps,
        components: true,
    })
}

/// Tokens that left their starting hole, per checkpoint of the series
/// (consecutive checkpoints grouped when there are more than
/// [`STEP_BINS`]): `(first step, last step, tokens)` per bar; `None` when
/// no token left.
pub fn evaporation(s: &Series) -> Option<Vec<(u64, u64, usize)>> {
    if s.tokens.evaporated_at.iter().all(Option::is_none) || s.steps.is_empty() {
        return None;
    }
    let mut per_step = std::collections::BTreeMap::new();
    for &step in s.tokens.evaporated_at.iter().flatten() {
        *per_step.entry(step).or_insert(0usize) += 1;
    }
    let group = s.steps.len().div_ceil(STEP_BINS);
    Some(
        s.steps
            .chunks(group)
            .map(|c| {
                let n = c
                    .iter()
                    .map(|st| per_step.get(st).copied().unwrap_or(0))
                    .sum();
                (c[0], c[c.len() - 1], n)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_evenly_and_close_the_last() {
        let mut b = Bins::new(0.0, 1.0, 4);
        for v in [0.0, 0.24, 0.25, 0.99, 1.0, -3.0] {
            b.add(v);
        }
        assert_eq!(b.counts, vec![3, 1, 0, 2]);
        assert_eq!(b.edges(1), (0.25, 0.5));
        let mut one = Bins::new(2.0, 2.0, 60);
        one.add(2.0);
        assert_eq!(one.counts, vec![1]);
    }
}
