//! The sections of a checkpoint series, in the order of the text timeline:
//! the input, the timeline (tokens in holes, holes and tokens moved per
//! step, the events marked), the evaporation steps, the events and the
//! tokens still frozen at the end.

use maud::{html, Markup};

use super::figures;
use super::svg::{colour, Axis, Chart};
use super::{card, figure, table, Cell, Column, Names, MAX_TABLE_ROWS};
use crate::report::fmt::{count, thousands};
use crate::report::timeline::SeriesReport;
use crate::survey::tracker::EventKind;

pub(super) fn subtitle(r: &SeriesReport) -> Markup {
    let [steps, n, d] = r.shape;
    html! {
        (r.kind) " · " (r.tensor) " · " (r.dtype) " · "
        (count(steps, "step", "steps")) " of " (thousands(n)) " × " (thousands(d))
    }
}

fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Evaporated => "evaporated",
        EventKind::Split => "split",
        EventKind::Merged => "merged",
        EventKind::Formed => "formed",
    }
}

fn kind_colour(k: EventKind) -> &'static str {
    match k {
        EventKind::Evaporated => colour::FROZEN,
        EventKind::Split => colour::HOLE,
        EventKind::Merged => colour::THIRD,
        EventKind::Formed => colour::SECOND,
    }
}

pub(super) fn body(r: &SeriesReport) -> Markup {
    let s = &r.series;
    let first = s.per_step.first();
    let last = s.per_step.last();
    let evaporated = s.tokens.evaporated_at.iter().flatten().count();
    let names = Names::of_series(r);
    html! {
        h2 { "Input" }
        dl.facts {
            dt { "Kind" } dd { (r.kind) " (" (r.format) ")" }
            dt { "Inputs" } dd {
                @if r.inputs.len() <= 3 {
                    @for (i, f) in r.inputs.iter().enumerate() { @if i > 0 { ", " } code { (f) } }
                } @else {
                    code { (r.inputs[0]) } " … " code { (r.inputs[r.inputs.len() - 1]) }
                    " (" (thousands(r.inputs.len())) " files)"
                }
            }
            dt { "Tensor" } dd { code { (r.tensor) } " (" (r.dtype) ")" }
            dt { "Steps" } dd {
                (thousands(s.steps.len()))
                @if let (Some(a), Some(b)) = (s.steps.first(), s.steps.last()) { ", from " (a) " to " (b) }
            }
            dt { "Device" } dd { (r.device.adapter) " (" (r.device.backend) ")" }
        }
        div.cards {
            @if let Some(f) = first {
                (card(thousands(f.black_holes), "holes at the first step", "hole"))
                (card(thousands(f.tokens_in_holes), "tokens in them", "hole"))
            }
            @if let Some(l) = last {
                (card(thousands(l.black_holes), "holes at the last step", "hole"))
                (card(thousands(l.tokens_in_holes), "tokens in them", "hole"))
            }
            (card(thousands(evaporated), "tokens evaporated", "frozen"))
            (card(thousands(s.events.len()), "events", ""))
        }
        h2 { "Timeline" }
        @if let Some(svg) = timeline_plot(r) {
            (figure("timeline", svg, "Per step, on one time axis (log scale): the tokens in holes, the holes, and the tokens whose vector changed since the step before; dashed lines mark the events (red: a hole split, purple: holes merged, green: a hole formed, orange: tokens evaporated). Tokens leave the holes as the ones that get trained start to move; a flat red line is a structure that never trains."))
        }
        @if let Some(svg) = evaporation_plot(r) {
            (figure("evaporation", svg, "When tokens left the hole they started in (evaporated), binned by step. Early, sharp peaks are the tokens seen in the first batches; a long tail, the rare ones."))
        } @else {
            p.note { "No token left the hole it started in." }
        }
        h2 { "Events" }
        @if s.events.is_empty() {
            p { "No event: the holes did not change." }
        } @else {
            (table("events", &[
                Column { title: "step", numeric: true },
                Column { title: "event", numeric: false },
                Column { title: "hole size", numeric: true },
                Column { title: "tokens", numeric: true },
                Column { title: "first tokens", numeric: false },
            ], s.events.iter().take(MAX_TABLE_ROWS).map(|e| {
                let moved: Vec<usize> = e.token_ids.iter().copied().chain(e.pieces.iter().flatten().copied()).collect();
                let shown: Vec<String> = moved.iter().take(8).map(|&t| {
                    let st = names.string(t);
                    if st.is_empty() { t.to_string() } else { format!("{t} {st}") }
                }).collect();
                vec![
                    Cell::int(e.step as usize),
                    Cell::text(kind_name(e.kind)),
                    e.size.map_or(Cell::blank(), Cell::int),
                    Cell::int(moved.len()),
                    Cell::text(shown.join(", ") + if moved.len() > 8 { ", …" } else { "" }),
                ]
            }).collect(), s.events.len()))
        }
        h2 { "Still frozen at the last step" }
        @if s.frozen.is_empty() {
            p { "No hole of the first step still holds two tokens." }
        } @else {
            @let total: usize = s.frozen.iter().map(Vec::len).sum();
            (table("frozen", &[
                Column { title: "core", numeric: true },
                Column { title: "size", numeric: true },
                Column { title: "token id", numeric: true },
                Column { title: "token", numeric: false },
                Column { title: "first moved", numeric: true },
            ], s.frozen.iter().enumerate()
                .flat_map(|(i, c)| c.iter().map(move |&t| (i, c.len(), t)))
                .take(MAX_TABLE_ROWS)
                .map(|(i, size, t)| vec![
                    Cell::int(i + 1),
                    Cell::int(size),
                    Cell::int(t),
                    Cell::text(names.string(t)),
                    s.tokens.first_moved.get(t).copied().flatten()
                        .map_or(Cell::missing("never"), |v| Cell::int(v as usize)),
                ]).collect(), total))
        }
        h2 { "Timings" }
        p.note {
            "read " (format!("{:.1}", r.timings_ms.read)) " ms · compare " (format!("{:.1}", r.timings_ms.diff))
            " ms · survey " (format!("{:.1}", r.timings_ms.survey)) " ms · total " (format!("{:.1}", r.timings_ms.total)) " ms"
        }
    }
}

fn timeline_plot(r: &SeriesReport) -> Option<String> {
    let s = &r.series;
    let (first, last) = (*s.steps.first()? as f64, *s.steps.last()? as f64);
    let max = s
        .per_step
        .iter()
        .map(|p| p.tokens_in_holes.max(p.moved.unwrap_or(0)))
        .max()
        .unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Timeline of the series",
        Axis::linear("training step", first, last),
        Axis::counts("count (log scale)", max),
    );
    // A zero has no place on a log axis: it breaks the line.
    let at = |v: usize| if v > 0 { v as f64 } else { f64::NAN };
    let line =
        |f: &dyn Fn(&crate::survey::tracker::StepSummary) -> Option<usize>| -> Vec<(f64, f64)> {
            s.per_step
                .iter()
                .map(|p| (p.step as f64, f(p).map_or(f64::NAN, at)))
                .collect()
        };
    let tokens = line(&|p| Some(p.tokens_in_holes));
    let holes = line(&|p| Some(p.black_holes));
    let moved = line(&|p| p.moved);
    for (pts, col, what) in [
        (&tokens, colour::HOLE, "tokens in holes"),
        (&holes, colour::LINE, "holes"),
        (&moved, colour::SECOND, "tokens moved since the step before"),
    ] {
        if pts.iter().any(|p| p.1.is_finite()) {
            c.legend(what, col);
            c.line(pts, col, what);
            // Points too, so a series of one or two steps still shows.
            if pts.len() <= 200 {
                for &(x, y) in pts.iter().filter(|p| p.1.is_finite()) {
                    c.point(
                        x,
                        y,
                        2.2,
                        col,
                        &format!("step {x}: {} {what}", thousands(y as usize)),
                    );
                }
            }
        }
    }
    // One mark per step and kind, however many events.
    let mut seen = std::collections::BTreeSet::new();
    for e in &s.events {
        if seen.insert((e.step, kind_name(e.kind))) {
            c.event(
                e.step as f64,
                kind_colour(e.kind),
                &format!("step {}: {}", e.step, kind_name(e.kind)),
            );
        }
    }
    Some(c.finish())
}

fn evaporation_plot(r: &SeriesReport) -> Option<String> {
    let b = figures::evaporation(&r.series)?;
    let max = b.counts.iter().copied().max().unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Evaporation steps",
        Axis::linear("step at which the token left its hole", b.lo, b.hi),
        Axis::counts("tokens (log scale)", max),
    );
    for (k, &n) in b.counts.iter().enumerate() {
        if n > 0 {
            let (lo, hi) = b.edges(k);
            c.bar(
                lo,
                hi,
                n as f64,
                colour::FROZEN,
                &format!(
                    "{} left between steps {lo:.0} and {hi:.0}",
                    count(n, "token", "tokens")
                ),
            );
        }
    }
    Some(c.finish())
}
