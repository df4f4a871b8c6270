//! A checkpoint series step by step: the groups at each step, which tokens
//! moved, which left the hole they started in, and the events that changed
//! the groups. Pure functions over what moved at each step
//! ([`StepMoves`]: the moved rows' hashes, displacement and bytes, as the
//! engine gives them, or made from its per-row outputs, [`StepRows`]); the
//! tracker keeps its own copy of the current step's rows ([`RowIdentity`],
//! for byte confirmation).
//!
//! Definitions (all comparisons are bitwise, on each row's identity: its
//! bytes, or a quantized tensor's stored blocks):
//! - A *hole* at a step is a set of ≥ 2 tokens sharing one vector.
//! - `first_moved`: the first step at which a token's vector differs from
//!   the previous step's.
//! - `evaporated_at`: for a token in a hole at the first step, the first step
//!   at which it is no longer in that hole's *core*. The core at the first
//!   step is the hole; at each later step it is the largest set of the
//!   previous core's tokens that still share one vector (on a tie, the set
//!   holding the smallest id). A hole that moves as one keeps its core.
//! - Events between two consecutive steps: `evaporated` (the tokens whose
//!   `evaporated_at` is this step, one event per step); for a hole now, its
//!   tokens grouped by the vector they had at the previous step: no group of
//!   two or more (none of them were together) is `formed`, two groups or
//!   more is `merged`; for a hole at the previous step, its tokens grouped by
//!   their vector now: anything but exactly one group of two or more (the
//!   hole going on, maybe without some single tokens) is `split`, whether it
//!   broke into holes or into single tokens. So the number of holes never
//!   changes without an event.
//! - An event names only the tokens that changed side: a split or merged
//!   hole by its size and smallest id, its largest piece by the same, and
//!   the tokens of the other pieces, so a series' events grow with the
//!   tokens that moved, not with the size of the holes they left or joined.

use serde::Serialize;

use crate::matrix::Matrix;
use crate::types::{StepMoves, StepRows};

mod events;
mod partition;
use partition::Partition;

/// The rows of a step as the byte strings that are their identity: two
/// tokens share a vector exactly when theirs are equal, and a token moved
/// exactly when its own differs from the step before's. The values' bytes
/// ([`RowIdentity::of`]), or a quantized tensor's stored blocks
/// ([`RowIdentity::stored`]), whose dequantized values can be equal for
/// different blocks.
#[derive(Clone, Copy, Debug)]
pub struct RowIdentity<'a> {
    bytes: &'a [u8],
    row_len: usize,
}

impl<'a> RowIdentity<'a> {
    /// The rows of `m`, by their bytes.
    pub fn of(m: &Matrix<'a>) -> Self {
        Self {
            bytes: m.bytes,
            row_len: m.row_bytes(),
        }
    }

    /// `bytes` cut into `rows` rows of equal length; `None` when they
    /// cannot be (no rows, or a length that is not a multiple of `rows`).
    pub fn stored(bytes: &'a [u8], rows: usize) -> Option<Self> {
        (rows > 0 && !bytes.is_empty() && bytes.len().is_multiple_of(rows)).then(|| Self {
            bytes,
            row_len: bytes.len() / rows,
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.bytes.len() / self.row_len
    }

    /// Bytes of one row.
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &'a [u8] {
        &self.bytes[i * self.row_len..(i + 1) * self.row_len]
    }
}

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

/// A hole, or a piece of one, by its size and its smallest token id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HoleRef {
    pub size: usize,
    /// The smallest token id in it.
    pub representative: usize,
}

/// One event. It names only the tokens that changed side, never a whole
/// hole: a hole of 50,000 that two tokens leave is described by its size,
/// its smallest id, the size and smallest id of the piece that goes on,
/// and the two tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub step: u64,
    pub kind: EventKind,
    /// `split`: the hole at the previous step; `merged`, `formed`: the hole
    /// now. Absent for `evaporated` (its tokens may come from several cores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// The smallest token id of that hole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub representative: Option<usize>,
    /// `evaporated`: the tokens that left their core; `formed`: the new
    /// hole's tokens (all but at most one of them moved). Ascending; absent
    /// for `split` and `merged`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<usize>,
    /// `split`: the largest of the pieces the hole's tokens form now (by
    /// their vector now); `merged`: the largest of the groups the new hole's
    /// tokens formed at the previous step (by their vector then). On a tie,
    /// the one holding the smallest id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_piece: Option<HoleRef>,
    /// The other pieces (groups), largest first, then by smallest id, each
    /// ascending: the tokens that parted from the largest piece, or joined
    /// it. Absent for `evaporated` and `formed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pieces: Vec<Vec<usize>>,
}

impl Event {
    /// The tokens the event names (its representatives included), in no
    /// particular order.
    pub fn named_tokens(&self) -> impl Iterator<Item = usize> + '_ {
        self.representative
            .into_iter()
            .chain(self.largest_piece.map(|p| p.representative))
            .chain(self.token_ids.iter().copied())
            .chain(self.pieces.iter().flatten().copied())
    }
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
/// the partition of the previous step and updating it where tokens moved.
#[derive(Clone)]
pub struct SeriesTracker {
    rows: usize,
    part: Partition,
    /// The cores of the first step's holes (left as they are once fewer
    /// than 2 tokens remain), each ascending; a list may still hold tokens
    /// that left its core (`core_of` says which are in it), dropped once
    /// they are half of it.
    cores: Vec<Vec<usize>>,
    /// Per core: its tokens.
    core_len: Vec<usize>,
    /// Per core: where its list's first token still in it may be (the
    /// tokens before left it).
    core_first: Vec<usize>,
    /// Per token: the core it is in (`u32::MAX`: none).
    core_of: Vec<u32>,
    series: Series,
    /// Per class id: scratch counts (zero between uses).
    count: Vec<u32>,
    /// Per class id: its size at the previous step, for the classes a step
    /// touched (`u32::MAX` for untouched ones).
    prev_size: Vec<u32>,
    /// Lists a step fills and empties again, kept so that a step allocates
    /// nothing once the series is under way.
    scratch: Scratch,
    /// The rows' identity at the last step, `row_len` bytes a row.
    current: Vec<u8>,
    row_len: usize,
}

/// Per-step lists, empty between steps (their capacity kept).
#[derive(Clone, Default)]
struct Scratch {
    moved: Vec<usize>,
    /// The hashes of `moved`'s rows.
    hashes: Vec<u64>,
    old: Vec<u32>,
    joined: Vec<u32>,
    emptied: Vec<u32>,
    touched: Vec<u32>,
}

impl SeriesTracker {
    pub fn new(rows: usize) -> Self {
        Self {
            rows,
            part: Partition::default(),
            cores: Vec::new(),
            core_len: Vec::new(),
            core_first: Vec::new(),
            core_of: Vec::new(),
            series: Series {
                tokens: TokenSteps {
                    first_moved: vec![None; rows],
                    evaporated_at: vec![None; rows],
                },
                ..Series::default()
            },
            count: Vec::new(),
            prev_size: Vec::new(),
            scratch: Scratch::default(),
            current: Vec::new(),
            row_len: 0,
        }
    }

    /// Takes step `step`: its rows' identity and, compared with the step
    /// pushed before, whether each row's identity changed and how far its
    /// values moved (`rows`; `hashes` and `changed` must be those of `id`).
    /// The same as [`push_moves`](Self::push_moves) with the rows that
    /// changed (every row at the first step).
    pub fn push(&mut self, step: u64, id: RowIdentity, rows: &StepRows) -> &StepSummary {
        debug_assert_eq!(id.rows(), self.rows);
        let mut moves = StepMoves::default();
        if self.series.per_step.is_empty() {
            moves.ids.extend(0..id.rows() as u32);
            moves.hashes.extend_from_slice(&rows.hashes);
            moves.bytes.extend_from_slice(id.bytes);
        } else if rows.changed.is_none() {
            // Rows with no changed flags after the first step (an engine
            // that started over): the rows that moved are those that differ
            // from the tracker's copy of the step before.
            let len = self.row_len;
            for t in 0..id.rows().min(self.rows) {
                let now = id.row(t);
                if self.current.get(t * len..(t + 1) * len) != Some(now) {
                    moves.ids.push(t as u32);
                    moves.hashes.push(rows.hashes[t]);
                    moves.bytes.extend_from_slice(now);
                }
            }
        } else {
            moves.fill_from_rows(rows, id.bytes, id.row_len);
        }
        self.push_moves(step, [&moves])
    }

    /// Takes step `step` as what moved since the step pushed before: the
    /// parts of the step (bands of rows, in order; at the first step they
    /// hold every row), with the moved rows' identity, hash and
    /// displacement. The tracker keeps a copy of the current step's rows,
    /// patched here, so a step costs the tokens that moved.
    pub fn push_moves<'m>(
        &mut self,
        step: u64,
        parts: impl IntoIterator<Item = &'m StepMoves>,
    ) -> &StepSummary {
        self.take_step(step, parts, None)
    }

    /// [`push_moves`](Self::push_moves) of parts without the moved rows'
    /// bytes, the step's rows being `id` (kept by the engine): the tracker
    /// then keeps no copy of its own. A series takes every step one way or
    /// every step the other.
    pub fn push_moves_in<'m>(
        &mut self,
        step: u64,
        parts: impl IntoIterator<Item = &'m StepMoves>,
        id: RowIdentity,
    ) -> &StepSummary {
        self.take_step(step, parts, Some(id))
    }

    /// A step from its parts; its rows `given`, or patched into the
    /// tracker's copy.
    fn take_step<'m>(
        &mut self,
        step: u64,
        parts: impl IntoIterator<Item = &'m StepMoves>,
        given: Option<RowIdentity>,
    ) -> &StepSummary {
        let first = self.series.per_step.is_empty();
        let mut moved = std::mem::take(&mut self.scratch.moved);
        let mut hashes = std::mem::take(&mut self.scratch.hashes);
        moved.clear();
        hashes.clear();
        let mut current = std::mem::take(&mut self.current);
        let (mut max, mut sum, mut displaced) = (0u64, 0f64, false);
        if first {
            for p in parts {
                hashes.extend_from_slice(&p.hashes);
                if given.is_none() {
                    current.extend_from_slice(&p.bytes);
                }
            }
            debug_assert_eq!(hashes.len(), self.rows);
            let id = given.unwrap_or(RowIdentity {
                bytes: &current,
                row_len: match self.rows {
                    0 => 0,
                    n => current.len() / n,
                },
            });
            self.row_len = id.row_len;
            self.part = Partition::build(id, &hashes);
            self.cores = (0..self.part.members.len() as u32)
                .filter(|&c| self.part.size(c) >= 2)
                .map(|c| self.part.sorted(c))
                .collect();
            self.cores
                .sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
            self.core_len = self.cores.iter().map(Vec::len).collect();
            self.core_first = vec![0; self.cores.len()];
            self.core_of = vec![u32::MAX; self.rows];
            for (k, core) in self.cores.iter().enumerate() {
                for &t in core {
                    self.core_of[t] = k as u32;
                }
            }
        } else {
            let len = self.row_len;
            for p in parts {
                moved.extend(p.ids.iter().map(|&t| t as usize));
                if given.is_none() {
                    debug_assert_eq!(p.bytes.len(), p.ids.len() * len);
                    for (&t, row) in p.ids.iter().zip(p.bytes.chunks_exact(len.max(1))) {
                        let t = t as usize;
                        if let Some(dst) = current.get_mut(t * len..(t + 1) * len) {
                            dst.copy_from_slice(&row[..len]);
                        }
                    }
                }
                hashes.extend_from_slice(&p.hashes);
                displaced |= p.displaced;
                for (&linf, &l1) in p.linf_steps.iter().zip(&p.l1_steps) {
                    max = max.max(linf as u64);
                    sum += l1 as f64;
                }
            }
            if !moved.is_empty() {
                let id = given.unwrap_or(RowIdentity {
                    bytes: &current,
                    row_len: len,
                });
                self.step(step, id, &hashes, &moved);
            }
        }
        self.current = current;
        let displacement = (!first && displaced).then(|| Displacement {
            max_linf_steps: max,
            mean_l1_steps: (!moved.is_empty()).then(|| sum / moved.len() as f64),
        });
        let moved_count = moved.len();
        self.scratch.moved = moved;
        self.scratch.hashes = hashes;
        let p = &self.part;
        self.series.steps.push(step);
        self.series.per_step.push(StepSummary {
            step,
            n_unique: p.classes,
            black_holes: p.holes,
            largest: if p.holes > 0 { p.largest } else { 0 },
            tokens_in_holes: p.in_holes,
            moved: (!first).then_some(moved_count),
            displacement,
        });
        self.series.per_step.last().expect("just pushed")
    }

    /// A step where the tokens `moved` (ascending) changed.
    fn step(&mut self, step: u64, id: RowIdentity, hashes: &[u64], moved: &[usize]) {
        let classes = self.part.members.len() + moved.len();
        self.prev_size.resize(classes, u32::MAX);
        self.count.resize(classes, 0);
        let Scratch {
            mut old,
            mut joined,
            mut emptied,
            mut touched,
            ..
        } = std::mem::take(&mut self.scratch);
        // Out of their classes first (recording the sizes they had), then
        // into the class of their new vector, or a new one.
        for &t in moved {
            let c = self.part.class_of[t];
            self.touch(c, &mut touched);
            old.push(c);
            if let (c, true) = self.part.remove(t) {
                emptied.push(c);
            }
        }
        for (k, (&t, &h)) in moved.iter().zip(hashes).enumerate() {
            let c = match self.part.find(id, t, h) {
                Some(c) => c,
                // A vector no class has, and the class the token left is
                // empty now: that class takes the new vector (as if retired
                // and made anew, without the work). Its size at the previous
                // step stays what it was: the events read it for the tokens
                // that left it, and for the tokens that join it only whether
                // it was a hole, which changes nothing for them (they all
                // came from it or from elsewhere alike).
                None if self.part.size(old[k]) == 0 => {
                    let c = old[k];
                    self.part.rehash(c, h);
                    c
                }
                None => {
                    let c = self.part.new_class(h);
                    self.prev_size.resize(self.part.members.len(), u32::MAX);
                    self.count.resize(self.part.members.len(), 0);
                    if self.prev_size[c as usize] == u32::MAX {
                        touched.push(c);
                    }
                    // A class that did not exist at the previous step.
                    self.prev_size[c as usize] = 0;
                    c
                }
            };
            self.touch(c, &mut touched);
            self.part.add(t, c);
            joined.push(c);
        }
        for &t in moved {
            self.series.tokens.first_moved[t].get_or_insert(step);
        }
        self.update_cores(step, moved);
        self.events(step, moved, &old, &mut joined);
        for &c in &emptied {
            if self.part.size(c) == 0 {
                self.part.retire(c);
            }
        }
        for &c in &touched {
            self.prev_size[c as usize] = u32::MAX;
        }
        for list in [&mut old, &mut joined, &mut emptied, &mut touched] {
            list.clear();
        }
        let moved = std::mem::take(&mut self.scratch.moved);
        let hashes = std::mem::take(&mut self.scratch.hashes);
        self.scratch = Scratch {
            moved,
            hashes,
            old,
            joined,
            emptied,
            touched,
        };
    }

    /// Records the size class `c` had at the previous step, the first time
    /// a step touches it.
    fn touch(&mut self, c: u32, touched: &mut Vec<u32>) {
        let i = c as usize;
        if self.prev_size[i] == u32::MAX {
            self.prev_size[i] = self.part.size(c) as u32;
            touched.push(c);
        }
    }

    /// Shrinks each core a moved token was in to its largest piece that
    /// still shares one vector (a core none of whose tokens moved still
    /// shares one). A core's tokens that did not move are one piece (they
    /// shared the core's vector and still do), so the pieces are known from
    /// the moved tokens alone: the work is proportional to them and to the
    /// tokens that evaporate, not to the size of the core.
    fn update_cores(&mut self, step: u64, moved: &[usize]) {
        // (core, token) of the moved tokens in a core; by core, then token.
        let mut hit: Vec<(u32, usize)> = moved
            .iter()
            .map(|&t| (self.core_of[t], t))
            .filter(|&(k, _)| k != u32::MAX)
            .collect();
        hit.sort_unstable();
        let mut evaporated = Vec::new();
        for group in hit.chunk_by(|a, b| a.0 == b.0) {
            let k = group[0].0;
            let live = self.core_len[k as usize];
            if live < 2 {
                continue;
            }
            let stay = live - group.len();
            let core_of = &self.core_of;
            let is_moved = |t: usize| group.binary_search_by(|x| x.1.cmp(&t)).is_ok();
            // The smallest token that stayed: the list is ascending, and
            // the tokens before `core_first` left the core for good.
            let list = &self.cores[k as usize];
            let mut first = self.core_first[k as usize];
            while first < list.len() && core_of[list[first]] != k {
                first += 1;
            }
            self.core_first[k as usize] = first;
            let stay_min = (stay > 0)
                .then(|| {
                    list[first..]
                        .iter()
                        .copied()
                        .find(|&t| core_of[t] == k && !is_moved(t))
                })
                .flatten();
            // The moved tokens' pieces by the class they are in now, each
            // with its size and smallest token (`group` is ascending).
            let class_of = &self.part.class_of;
            let mut best: Option<(usize, usize, u32)> = stay_min.map(|min| (stay, min, u32::MAX));
            for &(_, t) in group {
                self.count[class_of[t] as usize] += 1;
            }
            for &(_, t) in group {
                let c = class_of[t];
                let n = std::mem::take(&mut self.count[c as usize]) as usize;
                // The first token met of a class is its smallest; its count
                // is then taken, so each class is weighed once.
                if n == 0 {
                    continue;
                }
                // The largest piece; on a tie the one holding the smallest id.
                if best.is_none_or(|(bn, bmin, _)| n > bn || (n == bn && t < bmin)) {
                    best = Some((n, t, c));
                }
            }
            let Some((size, _, kept)) = best else {
                continue;
            };
            if kept == u32::MAX {
                // The tokens that stayed go on; every moved one left.
                for &(_, t) in group {
                    self.core_of[t] = u32::MAX;
                    evaporated.push(t);
                }
            } else {
                // A piece of moved tokens goes on: all the others left.
                let list = std::mem::take(&mut self.cores[k as usize]);
                for t in list {
                    if self.core_of[t] == k && !is_moved(t) {
                        self.core_of[t] = u32::MAX;
                        evaporated.push(t);
                    }
                }
                let mut core = Vec::with_capacity(size);
                for &(_, t) in group {
                    if class_of[t] == kept {
                        core.push(t);
                    } else {
                        self.core_of[t] = u32::MAX;
                        evaporated.push(t);
                    }
                }
                self.cores[k as usize] = core;
                self.core_first[k as usize] = 0;
            }
            self.core_len[k as usize] = size;
            // Tokens that left stay in the list until they are half of it.
            let list = &mut self.cores[k as usize];
            if list.len() > 2 * size + 16 {
                let core_of = &self.core_of;
                list.retain(|&t| core_of[t] == k);
                self.core_first[k as usize] = 0;
            }
        }
        evaporated.sort_unstable();
        for &t in &evaporated {
            self.series.tokens.evaporated_at[t] = Some(step);
        }
        if !evaporated.is_empty() {
            self.series.events.push(Event {
                step,
                kind: EventKind::Evaporated,
                size: None,
                representative: None,
                token_ids: evaporated,
                largest_piece: None,
                pieces: Vec::new(),
            });
        }
    }

    /// The series so far, with the cores that still hold ≥ 2 tokens.
    pub fn finish(mut self) -> Series {
        let core_of = &self.core_of;
        let mut frozen: Vec<Vec<usize>> = (self.cores.into_iter().enumerate())
            .filter(|&(k, _)| self.core_len[k] >= 2)
            .map(|(k, c)| c.into_iter().filter(|&t| core_of[t] == k as u32).collect())
            .collect();
        frozen.sort_by(|a: &Vec<usize>, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        self.series.frozen = frozen;
        self.series
    }
}

#[cfg(test)]
mod tests;
