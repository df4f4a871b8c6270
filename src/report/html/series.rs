//! The sections of a checkpoint series, in the order of the text timeline:
//! the input, the timeline (tokens in holes, holes and tokens moved per
//! step, the events marked), the evaporation steps, the events and the
//! tokens still frozen at the end.

use maud::{html, Markup};

use super::figures;
use super::svg::{colour, Axis, Chart};
use super::{card, figure, figure_with, table, Cell, Column, Names, MAX_TABLE_ROWS};
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

/// Event colours, apart from the three lines' (red, blue, green).
fn kind_colour(k: EventKind) -> &'static str {
    match k {
        EventKind::Evaporated => colour::FROZEN,
        EventKind::Split => "#8c564b",
        EventKind::Merged => colour::THIRD,
        EventKind::Formed => "#e377c2",
    }
}

/// The caption's key to the event marks: a swatch and a name per kind.
fn event_key() -> Markup {
    html! {
        " Events, stacked at the top of their step: "
        @for k in [EventKind::Split, EventKind::Merged, EventKind::Formed, EventKind::Evaporated] {
            span.swatch style=(format!("background:{}", kind_colour(k))) {}
            (kind_name(k)) " "
        }
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
            (figure_with("timeline", svg, html! {
                "Per step, on one time axis (log scale): the tokens in holes, the holes, and the tokens whose vector changed since the step before. Tokens leave the holes as the ones that get trained start to move; a flat red line is a structure that never trains."
                (event_key())
            }))
        }
        @if let Some(svg) = evaporation_plot(r) {
            (figure("evaporation", svg, "How many tokens left the hole they started in (evaporated) at each checkpoint. Early, sharp peaks are the tokens seen in the first batches; a long tail, the rare ones."))
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
        (&moved, colour::SECOND, "tokens moved"),
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
    // Per step with events: one line, and a square per event stacked at
    // the top, so no event hides another.
    let mut by_step: std::collections::BTreeMap<u64, Vec<&crate::survey::tracker::Event>> =
        std::collections::BTreeMap::new();
    for e in &s.events {
        by_step.entry(e.step).or_default().push(e);
    }
    for (step, events) in &by_step {
        let kinds: Vec<&str> = events.iter().map(|e| kind_name(e.kind)).collect();
        c.event(
            *step as f64,
            "#b0b7bf",
            &format!("step {step}: {}", kinds.join(", ")),
        );
        for (k, e) in events.iter().enumerate() {
            let n = e.token_ids.len() + e.pieces.iter().map(Vec::len).sum::<usize>();
            c.stacked(
                *step as f64,
                k,
                kind_colour(e.kind),
                &format!(
                    "step {step}: {} ({})",
                    kind_name(e.kind),
                    count(n, "token", "tokens")
                ),
            );
        }
    }
    Some(c.finish())
}

fn evaporation_plot(r: &SeriesReport) -> Option<String> {
    let bars = figures::evaporation(&r.series)?;
    let label = |&(a, b, _): &(u64, u64, usize)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}–{b}")
        }
    };
    let max = bars.iter().map(|b| b.2).max().unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Evaporation steps",
        Axis::categories(
            "checkpoint (step) at which tokens left their hole",
            bars.iter().map(label).collect(),
        ),
        Axis::counts("tokens (log scale)", max),
    );
    for (i, b) in bars.iter().enumerate() {
        if b.2 > 0 {
            c.band_bar(
                i,
                0.8,
                0.0,
                b.2 as f64,
                colour::FROZEN,
                &format!(
                    "{} left at step {}",
                    count(b.2, "token", "tokens"),
                    label(b)
                ),
            );
        }
    }
    Some(c.finish())
}
