//! Unit tests of `tracker`.

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
        tracker.push(k as u64 * 10, RowIdentity::of(&m), &rows);
        prev = Some(m);
    }
    tracker.finish()
}

/// `groups` each sorted, largest first, then by their smallest id.
fn ordered(mut groups: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    for g in &mut groups {
        g.sort_unstable();
    }
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

fn evaporated(step: u64, token_ids: Vec<usize>) -> Event {
    Event {
        step,
        kind: EventKind::Evaporated,
        size: None,
        representative: None,
        token_ids,
        largest_piece: None,
        pieces: Vec::new(),
    }
}

/// A hole of `ids` (ascending) formed.
fn formed(step: u64, ids: Vec<usize>) -> Event {
    Event {
        step,
        kind: EventKind::Formed,
        size: Some(ids.len()),
        representative: Some(ids[0]),
        token_ids: ids,
        largest_piece: None,
        pieces: Vec::new(),
    }
}

/// A split or merged hole of `hole` (ascending) into (from) `pieces`
/// (ordered, largest first): the event names the largest by its size and
/// smallest id, and lists the others.
fn parted(step: u64, kind: EventKind, hole: &[usize], pieces: Vec<Vec<usize>>) -> Event {
    Event {
        step,
        kind,
        size: Some(hole.len()),
        representative: Some(hole[0]),
        token_ids: Vec::new(),
        largest_piece: Some(HoleRef {
            size: pieces[0].len(),
            representative: pieces[0][0],
        }),
        pieces: pieces[1..].to_vec(),
    }
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
    use EventKind::*;
    assert_eq!(
        s.events,
        vec![
            evaporated(20, vec![1]),
            evaporated(30, vec![3, 4]),
            // {0, 2} moved, {3, 4} stayed: on the tie the piece holding
            // 0 is the largest, and the tokens that stayed are listed.
            parted(30, Split, &[0, 2, 3, 4], vec![vec![0, 2], vec![3, 4]]),
            parted(40, Merged, &[0, 2, 3, 4], vec![vec![0, 2], vec![3, 4]]),
            formed(50, vec![1, 5]),
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
fn a_token_landing_on_a_lone_one_forms_a_hole_and_a_hole_of_two_that_parts_splits() {
    let s = run(&[
        vec![1.0, 1.0, 1.0, 5.0],
        vec![1.0, 1.0, 5.0, 5.0], // 2 leaves the hole for lone 3
        vec![1.0, 1.0, 5.0, 7.0], // 3 leaves 2
    ]);
    assert_eq!(
        s.events,
        vec![
            evaporated(10, vec![2]),
            formed(10, vec![2, 3]),
            parted(20, EventKind::Split, &[2, 3], vec![vec![2], vec![3]]),
        ]
    );
}

#[test]
fn a_core_that_falls_apart_keeps_its_smallest_token() {
    let s = run(&[vec![0.0, 0.0, 0.0], vec![1.0, 2.0, 3.0]]);
    assert_eq!(s.tokens.evaporated_at, vec![None, Some(10), Some(10)]);
    assert!(s.frozen.is_empty());
}

/// The definitions of the module doc, restated by brute force: every
/// step regrouped from scratch by the rows' values.
fn reference(steps: &[Vec<f32>]) -> Series {
    use std::collections::BTreeMap;
    let n = steps[0].len();
    let classes = |s: &Vec<f32>| -> Vec<Vec<usize>> {
        let mut by: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (t, v) in s.iter().enumerate() {
            by.entry(v.to_bits()).or_default().push(t);
        }
        by.into_values().collect()
    };
    let mut out = Series {
        tokens: TokenSteps {
            first_moved: vec![None; n],
            evaporated_at: vec![None; n],
        },
        ..Series::default()
    };
    let mut cores: Vec<Vec<usize>> = classes(&steps[0])
        .into_iter()
        .filter(|c| c.len() >= 2)
        .collect();
    for (k, s) in steps.iter().enumerate() {
        let step = k as u64 * 10;
        let now = classes(s);
        let holes: Vec<&Vec<usize>> = now.iter().filter(|c| c.len() >= 2).collect();
        let moved = (k > 0).then(|| {
            (0..n)
                .filter(|&t| steps[k - 1][t].to_bits() != s[t].to_bits())
                .count()
        });
        out.steps.push(step);
        out.per_step.push(StepSummary {
            step,
            n_unique: now.len(),
            black_holes: holes.len(),
            largest: holes.iter().map(|h| h.len()).max().unwrap_or(0),
            tokens_in_holes: holes.iter().map(|h| h.len()).sum(),
            moved,
            displacement: None,
        });
        if k == 0 {
            continue;
        }
        let prev = &steps[k - 1];
        for t in 0..n {
            if prev[t].to_bits() != s[t].to_bits() && out.tokens.first_moved[t].is_none() {
                out.tokens.first_moved[t] = Some(step);
            }
        }
        let mut gone = Vec::new();
        for core in &mut cores {
            let mut pieces: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for &t in core.iter() {
                pieces.entry(s[t].to_bits()).or_default().push(t);
            }
            let best = pieces
                .values()
                .max_by(|a, b| a.len().cmp(&b.len()).then(b[0].cmp(&a[0])))
                .unwrap()
                .clone();
            gone.extend(core.iter().filter(|t| !best.contains(t)).copied());
            *core = best;
        }
        gone.sort_unstable();
        for &t in &gone {
            out.tokens.evaporated_at[t] = Some(step);
        }
        let mut ev = Vec::new();
        if !gone.is_empty() {
            ev.push(evaporated(step, gone));
        }
        // Tokens of `ids` by their value in `at`.
        let by_value = |ids: &[usize], at: &Vec<f32>| -> Vec<Vec<usize>> {
            let mut m: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for &t in ids {
                m.entry(at[t].to_bits()).or_default().push(t);
            }
            ordered(m.into_values().collect())
        };
        let prev_class = classes(prev);
        // A hole now: how many groups of ≥ 2 of its tokens were together
        // at the previous step? None: formed; two or more: merged.
        for h in &holes {
            let pieces = by_value(h, prev);
            match pieces.iter().filter(|p| p.len() >= 2).count() {
                0 => ev.push(formed(step, h.to_vec())),
                1 => {}
                _ => ev.push(parted(step, EventKind::Merged, h, pieces)),
            }
        }
        // A hole before: its tokens by their vector now; anything but
        // exactly one group of ≥ 2 is a split.
        for g in prev_class.iter().filter(|c| c.len() >= 2) {
            let pieces = by_value(g, s);
            if pieces.iter().filter(|p| p.len() >= 2).count() != 1 {
                ev.push(parted(step, EventKind::Split, g, pieces));
            }
        }
        ev.sort_by_key(|e| (e.kind, e.representative));
        out.events.extend(ev);
    }
    out.frozen = cores.into_iter().filter(|c| c.len() >= 2).collect();
    out.frozen
        .sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    out
}

#[test]
fn random_series_match_the_definitions_by_brute_force() {
    let mut z = 0x1234_5678_u64;
    let mut next = move || {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        z
    };
    for trial in 0..300 {
        let n = 2 + (next() % 14) as usize;
        let values = 1 + (next() % 5) as u32;
        let mut s: Vec<f32> = vec![(next() % values as u64) as f32; n];
        if trial % 3 == 0 {
            s.iter_mut()
                .for_each(|x| *x = (next() % values as u64) as f32);
        }
        let mut steps = vec![s.clone()];
        for _ in 0..25 {
            match next() % 4 {
                // a few tokens move to one of a few values
                0 | 1 => {
                    for _ in 0..1 + next() % 3 {
                        let t = (next() % n as u64) as usize;
                        s[t] = (next() % values as u64) as f32;
                    }
                }
                // every token of one value moves together
                2 => {
                    let from = s[(next() % n as u64) as usize];
                    let to = (next() % (values as u64 + 2)) as f32;
                    s.iter_mut().filter(|x| **x == from).for_each(|x| *x = to);
                }
                _ => {}
            }
            steps.push(s.clone());
        }
        let mut got = run(&steps);
        got.per_step.iter_mut().for_each(|p| p.displacement = None);
        assert_eq!(got, reference(&steps), "trial {trial}: {steps:?}");
        // Events name only tokens that changed side: per kind and step,
        // no more than the tokens that moved (one more per formed hole,
        // whose token that stayed put is listed too).
        for p in &got.per_step[1..] {
            let moved = p.moved.unwrap_or(0);
            for kind in [EventKind::Evaporated, EventKind::Split, EventKind::Merged] {
                let listed: usize = got
                    .events
                    .iter()
                    .filter(|e| e.step == p.step && e.kind == kind)
                    .map(|e| e.token_ids.len() + e.pieces.iter().map(Vec::len).sum::<usize>())
                    .sum();
                assert!(listed <= moved, "trial {trial}: step {}: {kind:?}", p.step);
            }
            let formed: Vec<&Event> = got
                .events
                .iter()
                .filter(|e| e.step == p.step && e.kind == EventKind::Formed)
                .collect();
            let listed: usize = formed.iter().map(|e| e.token_ids.len()).sum();
            assert!(
                listed <= moved + formed.len(),
                "trial {trial}: step {}",
                p.step
            );
        }
        // The number of holes never changes without an event.
        for w in got.per_step.windows(2) {
            if w[0].black_holes != w[1].black_holes {
                assert!(
                    got.events.iter().any(|e| e.step == w[1].step),
                    "trial {trial}: holes {} → {} at step {} with no event",
                    w[0].black_holes,
                    w[1].black_holes,
                    w[1].step
                );
            }
        }
    }
}

#[test]
fn large_cores_losing_tokens_a_few_at_a_time_match_the_definitions() {
    // Cores of 70 and 30 tokens that lose one to three tokens a step for
    // 120 steps (some come back, which does not bring them back into their
    // core), and now and then every token of one value moves together: the
    // cores' lists are then mostly tokens that left, and are compacted.
    let mut z = 0x9e37_79b9_u64;
    let mut next = move || {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        z
    };
    for trial in 0..20 {
        let n = 100;
        let mut s: Vec<f32> = (0..n).map(|t| if t % 10 < 7 { 0.0 } else { 1.0 }).collect();
        let mut steps = vec![s.clone()];
        for _ in 0..120 {
            if next() % 10 == 0 {
                let from = s[(next() % n as u64) as usize];
                let to = (next() % 8) as f32;
                s.iter_mut().filter(|x| **x == from).for_each(|x| *x = to);
            } else {
                for _ in 0..1 + next() % 3 {
                    let t = (next() % n as u64) as usize;
                    s[t] = (next() % 8) as f32;
                }
            }
            steps.push(s.clone());
        }
        let mut got = run(&steps);
        got.per_step.iter_mut().for_each(|p| p.displacement = None);
        assert_eq!(got, reference(&steps), "trial {trial}");
    }
}

#[test]
fn a_step_without_changed_flags_moves_the_rows_that_differ_from_the_step_before() {
    // An engine that started over hands a later step with every row's hash
    // and no changed flags: the rows that moved are found by their bytes.
    let step = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let steps = [
        step(&[1.0, 1.0, 2.0]),
        step(&[1.0, 1.0, 2.0]),
        step(&[1.0, 3.0, 2.0]),
    ];
    let mut tracker = SeriesTracker::new(3);
    for (k, b) in steps.iter().enumerate() {
        let m = Matrix::new(Dtype::F32, 3, 1, b).unwrap();
        let rows = StepRows {
            hashes: (0..3)
                .map(|i| crate::engine::hash::row_hash(m.row(i)))
                .collect(),
            ..StepRows::default()
        };
        tracker.push(k as u64, RowIdentity::of(&m), &rows);
    }
    let series = tracker.finish();
    let moved: Vec<Option<usize>> = series.per_step.iter().map(|p| p.moved).collect();
    assert_eq!(moved, [None, Some(0), Some(1)]);
    assert_eq!(series.tokens.first_moved, [None, Some(2), None]);
    assert_eq!(series.per_step[2].black_holes, 0);
}
