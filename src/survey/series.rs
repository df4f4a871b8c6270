//! A checkpoint series step by step: the groups at each step, which tokens
//! moved, which left the hole they started in, and the events that changed
//! the groups. Pure functions over the engine's per-row outputs
//! ([`StepRows`]) and the step's bytes (for byte confirmation).
//!
//! Definitions (all comparisons are bitwise):
//! - A *hole* at a step is a set of ≥ 2 tokens sharing one vector.
//! - `first_moved`: the first step at which a token's vector differs from
//!   the previous step's.
//! - `evaporated_at`: for a token in a hole at the first step, the first step
//!   at which it is no longer in that hole's *core*. The core at the first
//!   step is the hole; at each later step it is the largest set of the
//!   previous core's tokens that still share one vector (on a tie, the set
//!   holding the smallest id). A hole that moves as one keeps its core.
//! - Events between two consecutive steps, for holes that had a token move:
//!   `evaporated` (the tokens whose `evaporated_at` is this step, one event
//!   per step), `formed` (a hole whose tokens were all alone at the previous
//!   step), `merged` (a hole whose tokens come from two or more holes of the
//!   previous step), `split` (a hole of the previous step whose tokens now
//!   sit in two or more holes; its tokens are listed).

use serde::Serialize;

use super::group::{group_rows, GroupOptions};
use crate::engine::StepRows;
use crate::matrix::Matrix;

/// The per-step numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepSummary {
    pub step: u64,
    /// Distinct vectors.
    pub n_unique: usize,
    /// Holes: vectors shared by ≥ 2 tokens.
    pub black_holes: usize,
    /// Tokens in the largest hole (0 without holes).
    pub largest: usize,
    /// Tokens in holes.
    pub tokens_in_holes: usize,
    /// Tokens whose vector changed since the previous step; `None` at the first.
    pub moved: Option<usize>,
    /// How far they moved; `None` at the first step and for F64.
    pub displacement: Option<Displacement>,
}

/// How far the moved tokens went since the previous step, in steps (ULPs)
/// of the dtype.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Displacement {
    /// The largest change of one element.
    pub max_linf_steps: u64,
    /// The mean over moved tokens of the summed change of their elements;
    /// `None` when no token moved.
    pub mean_l1_steps: Option<f64>,
}

/// What happened to the holes at one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Evaporated,
    Split,
    Merged,
    Formed,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub step: u64,
    pub kind: EventKind,
    /// The tokens concerned, ascending.
    pub token_ids: Vec<usize>,
}

/// Per-token steps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenSteps {
    pub first_moved: Vec<Option<u64>>,
    pub evaporated_at: Vec<Option<u64>>,
}

/// The outcome of a series.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Series {
    pub steps: Vec<u64>,
    pub per_step: Vec<StepSummary>,
    pub tokens: TokenSteps,
    pub events: Vec<Event>,
    /// The cores at the last step, one per hole of the first step that
    /// still holds ≥ 2 tokens: the tokens still frozen together, each list
    /// ascending, largest first.
    pub frozen: Vec<Vec<usize>>,
}

/// Follows a series one step at a time ([`SeriesTracker::push`]), keeping
/// only the previous step's partition.
pub struct SeriesTracker {
    rows: usize,
    /// Per token: the smallest id of its class at the previous step.
    class: Vec<u32>,
    /// The holes of the previous step, each ascending.
    holes: Vec<Vec<usize>>,
    /// The cores of the first step's holes (emptied once fewer than 2 are left).
    cores: Vec<Vec<usize>>,
    series: Series,
    scratch: Vec<u32>,
}

impl SeriesTracker {
    pub fn new(rows: usize) -> Self {
        Self {
            rows,
            class: Vec::new(),
            holes: Vec::new(),
            cores: Vec::new(),
            series: Series {
                tokens: TokenSteps {
                    first_moved: vec![None; rows],
                    evaporated_at: vec![None; rows],
                },
                ..Series::default()
            },
            scratch: vec![0; rows],
        }
    }

    /// Takes step `step`: its matrix and the engine's rows for it (compared
    /// with the step pushed before).
    pub fn push(&mut self, step: u64, m: &Matrix, rows: &StepRows) -> &StepSummary {
        debug_assert_eq!(m.rows, self.rows);
        let first = self.series.per_step.is_empty();
        let changed = rows.changed.as_deref().filter(|_| !first);
        let moved = changed.map(|c| c.iter().filter(|&&x| x).count());
        // Nothing moved: the partition is the previous one.
        let holes = if moved == Some(0) {
            std::mem::take(&mut self.holes)
        } else {
            let no_nan = vec![false; m.rows];
            group_rows(m, &rows.hashes, &no_nan, GroupOptions::default())
                .groups
                .into_iter()
                .map(|g| g.ids)
                .collect()
        };
        let mut class: Vec<u32> = (0..self.rows as u32).collect();
        for h in &holes {
            for &t in h {
                class[t] = h[0] as u32;
            }
        }
        if let (Some(c), false) = (changed, moved == Some(0)) {
            self.record_moves(step, c);
            self.update_cores(step, c, &class);
            self.events(step, c, &class, &holes);
        } else if first {
            self.cores = holes.clone();
        }
        let displacement = (!first && !rows.linf_steps.is_empty()).then(|| {
            let c = changed.unwrap_or(&[]);
            let mut max = 0u64;
            let mut sum = 0f64;
            for i in (0..self.rows).filter(|&i| c.get(i) == Some(&true)) {
                max = max.max(rows.linf_steps[i] as u64);
                sum += rows.l1_steps[i] as f64;
            }
            Displacement {
                max_linf_steps: max,
                mean_l1_steps: moved.filter(|&n| n > 0).map(|n| sum / n as f64),
            }
        });
        let in_holes: usize = holes.iter().map(Vec::len).sum();
        self.series.steps.push(step);
        self.series.per_step.push(StepSummary {
            step,
            n_unique: self.rows - in_holes + holes.len(),
            black_holes: holes.len(),
            largest: holes.iter().map(Vec::len).max().unwrap_or(0),
            tokens_in_holes: in_holes,
            moved,
            displacement,
        });
        self.class = class;
        self.holes = holes;
        self.series.per_step.last().expect("just pushed")
    }

    fn record_moves(&mut self, step: u64, changed: &[bool]) {
        for (t, _) in changed.iter().enumerate().filter(|(_, &c)| c) {
            self.series.tokens.first_moved[t].get_or_insert(step);
        }
    }

    /// Shrinks each core to its largest piece that still shares one vector.
    fn update_cores(&mut self, step: u64, changed: &[bool], class: &[u32]) {
        let mut evaporated = Vec::new();
        for core in &mut self.cores {
            // A core none of whose tokens moved still shares one vector.
            if core.len() < 2 || !core.iter().any(|&t| changed[t]) {
                continue;
            }
            // Pieces by class; each piece's size counted in `scratch`.
            for &t in core.iter() {
                self.scratch[class[t] as usize] = 0;
            }
            for &t in core.iter() {
                self.scratch[class[t] as usize] += 1;
            }
            // The largest piece; on a tie the one holding the smallest id
            // (the core is ascending, so the first piece met wins ties).
            let mut best = class[core[0]];
            for &t in core.iter() {
                let c = class[t];
                if self.scratch[c as usize] > self.scratch[best as usize] {
                    best = c;
                }
            }
            let (keep, gone): (Vec<usize>, Vec<usize>) =
                core.iter().partition(|&&t| class[t] == best);
            evaporated.extend(gone);
            *core = keep;
        }
        evaporated.sort_unstable();
        for &t in &evaporated {
            self.series.tokens.evaporated_at[t] = Some(step);
        }
        if !evaporated.is_empty() {
            self.series.events.push(Event {
                step,
                kind: EventKind::Evaporated,
                token_ids: evaporated,
            });
        }
    }

    /// Formed, merged and split holes between the previous step and this one.
    fn events(&mut self, step: u64, changed: &[bool], class: &[u32], holes: &[Vec<usize>]) {
        let mut found = Vec::new();
        // `self.holes` is sorted by size, not by representative: index it.
        let mut by_rep: Vec<(usize, usize)> = self
            .holes
            .iter()
            .enumerate()
            .map(|(k, h)| (h[0], k))
            .collect();
        by_rep.sort_unstable();
        let prev_hole_size = |t: usize| -> usize {
            let c = self.class[t] as usize;
            by_rep
                .binary_search_by_key(&c, |&(r, _)| r)
                .map_or(1, |k| self.holes[by_rep[k].1].len())
        };
        for h in holes.iter().filter(|h| h.iter().any(|&t| changed[t])) {
            let mut from: Vec<u32> = h
                .iter()
                .filter(|&&t| prev_hole_size(t) >= 2)
                .map(|&t| self.class[t])
                .collect();
            from.sort_unstable();
            from.dedup();
            match from.len() {
                0 => found.push((EventKind::Formed, h.clone())),
                1 => {}
                _ => found.push((EventKind::Merged, h.clone())),
            }
        }
        for h in self.holes.iter().filter(|h| h.iter().any(|&t| changed[t])) {
            let mut pieces: Vec<u32> = h.iter().map(|&t| class[t]).collect();
            pieces.sort_unstable();
            let big = pieces
                .chunk_by(|a, b| a == b)
                .filter(|p| p.len() >= 2)
                .count();
            if big >= 2 {
                found.push((EventKind::Split, h.clone()));
            }
        }
        found.sort();
        self.series
            .events
            .extend(found.into_iter().map(|(kind, token_ids)| Event {
                step,
                kind,
                token_ids,
            }));
    }

    /// The series so far, with the cores that still hold ≥ 2 tokens.
    pub fn finish(mut self) -> Series {
        let mut frozen: Vec<Vec<usize>> = self.cores.into_iter().filter(|c| c.len() >= 2).collect();
        frozen.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        self.series.frozen = frozen;
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Dtype;
    use crate::engine::cpu::steps::CpuStepDiffer;
    use crate::engine::StepDiffer;

    /// Runs one-column f32 steps through the CPU differ and the tracker.
    fn run(steps: &[Vec<f32>]) -> Series {
        let n = steps[0].len();
        let bytes: Vec<Vec<u8>> = steps
            .iter()
            .map(|s| s.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let mut differ = CpuStepDiffer::new(Dtype::F32, n, 1);
        let mut tracker = SeriesTracker::new(n);
        let mut prev: Option<Matrix> = None;
        for (k, b) in bytes.iter().enumerate() {
            let m = Matrix::new(Dtype::F32, n, 1, b).unwrap();
            let rows = differ.push(prev.as_ref(), &m).unwrap();
            tracker.push(k as u64 * 10, &m, &rows);
            prev = Some(m);
        }
        tracker.finish()
    }

    #[test]
    fn a_hole_that_moves_as_one_loses_nobody_and_cores_follow_the_largest_piece() {
        let steps = vec![
            vec![1.0, 1.0, 1.0, 1.0, 1.0, 9.0],
            vec![1.5, 1.5, 1.5, 1.5, 1.5, 9.0], // the hole moves as one
            vec![1.5, 3.0, 1.5, 1.5, 1.5, 9.0], // token 1 evaporates
            vec![4.0, 3.0, 4.0, 1.5, 1.5, 9.0], // splits 2 + 2: {0, 2} holds id 0
            vec![4.0, 3.0, 4.0, 4.0, 4.0, 9.0], // {3, 4} joins {0, 2}: merged
            vec![4.0, 3.0, 4.0, 4.0, 4.0, 3.0], // 5 joins lone 1: formed
            vec![4.0, 3.0, 4.0, 4.0, 4.0, 3.0], // nothing moves
        ];
        let s = run(&steps);
        assert_eq!(s.steps, vec![0, 10, 20, 30, 40, 50, 60]);
        let t = &s.tokens;
        assert_eq!(
            t.evaporated_at,
            vec![None, Some(20), None, Some(30), Some(30), None]
        );
        let f = |x| Some(x);
        assert_eq!(
            t.first_moved,
            vec![f(10), f(10), f(10), f(10), f(10), f(50)]
        );
        let ev: Vec<(u64, EventKind, Vec<usize>)> = s
            .events
            .iter()
            .map(|e| (e.step, e.kind, e.token_ids.clone()))
            .collect();
        use EventKind::*;
        assert_eq!(
            ev,
            vec![
                (20, Evaporated, vec![1]),
                (30, Evaporated, vec![3, 4]),
                (30, Split, vec![0, 2, 3, 4]),
                (40, Merged, vec![0, 2, 3, 4]),
                (50, Formed, vec![1, 5]),
            ]
        );
        // n_unique, holes, largest, in holes, moved.
        let got: Vec<(usize, usize, usize, usize, Option<usize>)> = s
            .per_step
            .iter()
            .map(|p| {
                (
                    p.n_unique,
                    p.black_holes,
                    p.largest,
                    p.tokens_in_holes,
                    p.moved,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, 1, 5, 5, None),
                (2, 1, 5, 5, Some(5)),
                (3, 1, 4, 4, Some(1)),
                (4, 2, 2, 4, Some(2)),
                (3, 1, 4, 4, Some(2)),
                (2, 2, 4, 6, Some(1)),
                (2, 2, 4, 6, Some(0)),
            ]
        );
        // 1.0 → 1.5 in f32 is 2²² steps; nothing moved at the last step.
        let d = s.per_step[1].displacement.unwrap();
        assert_eq!(d.max_linf_steps, 1 << 22);
        assert_eq!(d.mean_l1_steps, Some((1u64 << 22) as f64));
        assert_eq!(s.per_step[0].displacement, None);
        let last = s.per_step[6].displacement.unwrap();
        assert_eq!((last.max_linf_steps, last.mean_l1_steps), (0, None));
        assert_eq!(s.frozen, vec![vec![0, 2]]);
    }

    #[test]
    fn a_core_that_falls_apart_keeps_its_smallest_token() {
        let s = run(&[vec![0.0, 0.0, 0.0], vec![1.0, 2.0, 3.0]]);
        assert_eq!(s.tokens.evaporated_at, vec![None, Some(10), Some(10)]);
        assert!(s.frozen.is_empty());
    }
}
