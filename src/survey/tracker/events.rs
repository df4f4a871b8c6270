//! The events of a step: holes formed, merged and split between the step
//! before and this one, from the classes the moved tokens left and joined.

use super::{Event, EventKind, HoleRef, SeriesTracker};

impl SeriesTracker {
    /// Formed, merged and split holes between the previous step and this
    /// one. `old[k]` is the class `moved[k]` left; `joined[k]` the one it
    /// joined. The work and the events are proportional to the tokens that
    /// moved, but for one pass over each hole concerned (for the smallest
    /// id of its tokens that stayed).
    pub(super) fn events(&mut self, step: u64, moved: &[usize], old: &[u32], joined: &mut [u32]) {
        let p = &self.part;
        let prev = |c: u32| self.prev_size[c as usize] as usize;
        let mut found: Vec<Event> = Vec::new();
        // Holes that tokens joined: where did their tokens come from?
        // Only holes concern events: a class of fewer than two tokens now
        // and at the previous step is left out before sorting, so a step
        // where many single tokens move costs no sort of them all.
        let mut incoming: Vec<(u32, u32, usize)> = joined
            .iter()
            .zip(old)
            .zip(moved)
            .filter(|((&j, _), _)| p.size(j) >= 2 || prev(j) >= 2)
            .map(|((&j, &o), &t)| (j, o, t))
            .collect();
        incoming.sort_unstable();
        // The tokens of `c` that were in it at the previous step too (they
        // did not move), ascending.
        let stayed = |c: u32| -> Vec<usize> {
            let mut v: Vec<usize> = p.members[c as usize]
                .iter()
                .map(|&t| t as usize)
                .filter(|t| moved.binary_search(t).is_err())
                .collect();
            v.sort_unstable();
            v
        };
        // The smallest of them, without collecting them.
        let stayed_min = |c: u32| -> Option<usize> {
            p.members[c as usize]
                .iter()
                .map(|&t| t as usize)
                .filter(|t| moved.binary_search(t).is_err())
                .min()
        };
        for arrivals in incoming.chunk_by(|a, b| a.0 == b.0) {
            let c = arrivals[0].0;
            if p.size(c) < 2 {
                continue;
            }
            // The hole's tokens by the class they were in: those that stayed
            // in `c`, and the arrivals by the class each left (`arrivals` is
            // sorted by it, then by token). A piece of two or more was
            // together already.
            let stay = p.size(c) - arrivals.len();
            let from = arrivals.chunk_by(|a, b| a.1 == b.1);
            let big = usize::from(stay >= 2) + from.clone().filter(|g| g.len() >= 2).count();
            match big {
                0 => {
                    // At most one token stayed: the hole is its arrivals.
                    let mut ids: Vec<usize> = stayed(c)
                        .into_iter()
                        .chain(arrivals.iter().map(|x| x.2))
                        .collect();
                    ids.sort_unstable();
                    found.push(Event {
                        step,
                        kind: EventKind::Formed,
                        size: Some(ids.len()),
                        representative: Some(ids[0]),
                        token_ids: ids,
                        largest_piece: None,
                        pieces: Vec::new(),
                    });
                }
                1 => {}
                _ => {
                    let moved_pieces = from.map(|g| g.iter().map(|x| x.2).collect()).collect();
                    found.push(event_of_pieces(
                        step,
                        EventKind::Merged,
                        p.size(c),
                        stay,
                        || stayed_min(c),
                        || stayed(c),
                        moved_pieces,
                    ));
                }
            }
        }
        // Holes that tokens left: did they break into two holes or more?
        let mut outgoing: Vec<(u32, u32, usize)> = old
            .iter()
            .zip(joined.iter())
            .zip(moved)
            .filter(|((&o, _), _)| prev(o) >= 2)
            .map(|((&o, &j), &t)| (o, j, t))
            .collect();
        outgoing.sort_unstable();
        for leaving in outgoing.chunk_by(|a, b| a.0 == b.0) {
            let c = leaving[0].0;
            if prev(c) < 2 {
                continue;
            }
            // The tokens still in `c` that did not arrive this step.
            let from = incoming.partition_point(|x| x.0 < c);
            let to = incoming.partition_point(|x| x.0 <= c);
            let stay = p.size(c) - (to - from);
            let parts = leaving.chunk_by(|a, b| a.1 == b.1);
            let big = usize::from(stay >= 2) + parts.clone().filter(|g| g.len() >= 2).count();
            // One piece of two or more: the hole goes on (the tokens that left
            // alone evaporated from it); none, or two or more: it broke up.
            if big != 1 {
                let moved_pieces = parts.map(|g| g.iter().map(|x| x.2).collect()).collect();
                found.push(event_of_pieces(
                    step,
                    EventKind::Split,
                    prev(c),
                    stay,
                    || stayed_min(c),
                    || stayed(c),
                    moved_pieces,
                ));
            }
        }
        // Holes on one side are disjoint: a kind and a smallest id name one.
        found.sort_by_key(|e| (e.kind, e.representative));
        self.series.events.extend(found);
    }
}

/// A split or merged event from the pieces of a hole of `size`: the
/// `stay` tokens that did not move (their smallest id from `stayed_min`,
/// all of them from `stayed`, asked only when they are not the largest
/// piece) and the pieces of moved tokens, each ascending.
fn event_of_pieces(
    step: u64,
    kind: EventKind,
    size: usize,
    stay: usize,
    stayed_min: impl FnOnce() -> Option<usize>,
    stayed: impl FnOnce() -> Vec<usize>,
    moved_pieces: Vec<Vec<usize>>,
) -> Event {
    // (size, smallest id, tokens); `None` for the tokens that stayed.
    let mut pieces: Vec<(usize, usize, Option<Vec<usize>>)> = moved_pieces
        .into_iter()
        .map(|g: Vec<usize>| (g.len(), g[0], Some(g)))
        .collect();
    if stay > 0 {
        if let Some(min) = stayed_min() {
            pieces.push((stay, min, None));
        }
    }
    pieces.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let representative = pieces.iter().map(|x| x.1).min();
    let largest = pieces.first().map(|&(size, representative, _)| HoleRef {
        size,
        representative,
    });
    let mut stayed = Some(stayed);
    let rest = pieces
        .into_iter()
        .skip(1)
        .map(|(_, _, ids)| match ids {
            Some(ids) => ids,
            None => stayed.take().map_or_else(Vec::new, |f| f()),
        })
        .collect();
    Event {
        step,
        kind,
        size: Some(size),
        representative,
        token_ids: Vec::new(),
        largest_piece: largest,
        pieces: rest,
    }
}
