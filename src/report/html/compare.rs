//! The comparison page of several inputs: one table (a row per model, each
//! linking to its section), a bar chart of the tokens in holes per model,
//! then each model's sections as the single page has them.

use maud::{html, Markup};

use super::svg::{colour, Axis, Chart};
use super::{figure, survey, Ids};
use crate::report::compare::{Comparison, Entry};
use crate::report::fmt::{count, sci};

pub(super) fn subtitle(c: &Comparison) -> Markup {
    let failed = c.failures().count();
    html! {
        (count(c.entries.len(), "input", "inputs"))
        @if failed > 0 { " · " (count(failed, "failed", "failed")) }
    }
}

/// The element id of input `i`'s section.
fn section(i: usize) -> String {
    format!("m{}", i + 1)
}

pub(super) fn body(c: &Comparison) -> Markup {
    let any_near = c
        .entries
        .iter()
        .any(|e| e.row().is_some_and(|r| r.near.is_some()));
    let any_nearest = c
        .entries
        .iter()
        .any(|e| e.row().is_some_and(|r| r.nearest.is_some()));
    html! {
        h2 { "Models" }
        @if c.entries.is_empty() {
            p { "No input (an empty list, or a shard with none)." }
        } @else {
            input.filter type="search" data-table="models" placeholder="filter rows (model, dtype, …)";
            div.tablebox {
                table.sortable id="models" {
                    thead { tr {
                        th data-type="num" { "#" }
                        th.t data-type="text" { "model" }
                        th data-type="num" { "vocabulary" }
                        th data-type="num" { "dim" }
                        th.t data-type="text" { "dtype" }
                        th data-type="num" { "unique" }
                        th data-type="num" { "holes" }
                        th data-type="num" { "largest hole" }
                        th data-type="num" { "tokens in holes" }
                        @if any_near { th data-type="num" { "frozen component" } }
                        @if any_nearest { th data-type="num" { "gap population" } th.t data-type="text" { "gap" } }
                        th data-type="num" { "time (ms)" }
                    } }
                    tbody {
                        @for (i, e) in c.entries.iter().enumerate() { (row(i, e, any_near, any_nearest)) }
                    }
                }
            }
            @if let Some(svg) = holes_plot(c) {
                (figure("tokens-in-holes", svg, "Tokens in black holes per model, by its # in the table (log scale); a grey dot on the axis: no hole, every row distinct; a black dot: the input failed. Models of one family trained the same way tend to share their holes."))
            }
        }
        @for (i, e) in c.entries.iter().enumerate() {
            @if let Some(r) = e.report() {
                section id=(section(i)) {
                    h2.model { (i + 1) ". " code { (e.input) } }
                    (survey::body(r, &Ids::new(&section(i))))
                }
            }
        }
    }
}

fn row(i: usize, e: &Entry, any_near: bool, any_nearest: bool) -> Markup {
    let link = format!("#{}", section(i));
    match &e.outcome {
        Err(f) => html! {
            tr.failed {
                td { (i + 1) }
                td.t.model { (e.input) }
                td.t colspan="99" { "error: " (f.message.strip_prefix(&format!("{}: ", e.input)).unwrap_or(&f.message)) }
            }
        },
        Ok(s) => {
            let r = &s.row;
            let dtype = if r.stored_dtype != r.dtype {
                format!("{} as {}", r.stored_dtype, r.dtype)
            } else {
                r.dtype.clone()
            };
            let gap = r.nearest.as_ref().and_then(|n| n.gap.as_ref());
            html! {
                tr {
                    td { (i + 1) }
                    td.t.model { @if s.report.is_some() { a href=(link) { (e.input) } } @else { (e.input) } }
                    td { (r.vocabulary) }
                    td { (r.dim) }
                    td.t { (dtype) }
                    td { (r.unique) }
                    td { (r.holes) }
                    td data-v=(r.largest_hole.map_or("NaN".into(), |v| v.to_string())) { (r.largest_hole.map_or("-".into(), |v| v.to_string())) }
                    td { (r.tokens_in_holes) }
                    @if any_near {
                        @match &r.near { Some(n) => { td { (n.largest) } } None => { td data-v="NaN" { "-" } } }
                    }
                    @if any_nearest {
                        @match gap {
                            Some(g) => { td { (g.tokens) } td.t { (sci(g.lo)) " – " (sci(g.hi)) } }
                            None => { td data-v="NaN" { "-" } td.t { "-" } }
                        }
                    }
                    td { (format!("{:.1}", r.total_ms)) }
                }
            }
        }
    }
}

fn holes_plot(c: &Comparison) -> Option<String> {
    if c.entries.is_empty() {
        return None;
    }
    let labels = (1..=c.entries.len()).map(|i| i.to_string()).collect();
    let max = c
        .entries
        .iter()
        .filter_map(|e| e.row().map(|r| r.tokens_in_holes))
        .max()
        .unwrap_or(1) as f64;
    let mut chart = Chart::new(
        "Tokens in black holes per model",
        Axis::categories("model (# in the table)", labels),
        Axis::counts("tokens in holes (log scale)", max),
    );
    for (k, e) in c.entries.iter().enumerate() {
        match e.row() {
            Some(r) if r.tokens_in_holes > 0 => {
                let tip = format!(
                    "{}: {}",
                    e.input,
                    count(r.tokens_in_holes, "token in holes", "tokens in holes")
                );
                chart.band_bar(k, 0.6, 0.0, r.tokens_in_holes as f64, colour::HOLE, &tip);
            }
            // No bar on a log axis: a dot on it, grey for no hole, black for a failure.
            Some(_) => chart.point(
                k as f64,
                0.5,
                4.0,
                colour::CLOUD,
                &format!("{}: no hole", e.input),
            ),
            None => chart.point(k as f64, 0.5, 4.0, "#222", &format!("{}: failed", e.input)),
        }
    }
    Some(chart.finish())
}
