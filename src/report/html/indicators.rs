//! The section of the under-trained-token indicators (`--indicators`):
//! where they were computed, the reference set, the main indicator's
//! distribution with the candidates' range shaded, and the candidates.

use std::collections::BTreeSet;

use maud::{html, Markup};

use super::figures::{self, frozen_members, hole_members};
use super::svg::{colour, Axis, Chart};
use super::{figure, layered_bars, table, Cell, Column, Ids, Names, MAX_TABLE_ROWS};
use crate::report::fmt::{count, sci, thousands};
use crate::report::Report;
use crate::survey::indicators::ReferenceSource;
use crate::types::Role;

/// How an indicator is named on the page.
fn title(name: &str) -> &'static str {
    match name {
        "input_norm" => "input-embedding L2 norm",
        "row_norm" => "L2 norm of the row (of this matrix)",
        "cosine_distance" => "cosine distance to the reference mean",
        "cosine_distance_pc1_removed" => {
            "cosine distance to the reference mean, first principal component removed"
        }
        "l2_to_reference_mean" => "L2 distance to the reference mean",
        _ => "indicator",
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, … `11th`, `21st`.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

pub(super) fn section(r: &Report, ids: &Ids) -> Markup {
    let Some(ind) = &r.indicators else {
        return html! {};
    };
    let names = Names::of_report(r);
    let role = match ind.matrix.role {
        Role::InputEmbedding => "input embedding",
        Role::OutputHead => "output head",
    };
    let source = match ind.reference.source {
        ReferenceSource::Survey => {
            "found by the survey (black-hole and component members, rows past the vocabulary)"
        }
        ReferenceSource::Given => "given (--reference-tokens)",
    };
    let holes = hole_members(r);
    let frozen = frozen_members(r);
    let reference: BTreeSet<usize> = ind.reference.token_ids.iter().copied().collect();
    let main = ind.per_token.get(ind.main);
    let norm = ind
        .per_token
        .input_norm
        .as_ref()
        .or(ind.per_token.row_norm.as_ref());
    let value =
        |v: Option<&Vec<Option<f64>>>, id: usize| v.and_then(|v| v.get(id).copied().flatten());
    let yes = |b: bool| if b { "yes" } else { "" };
    html! {
        h2 { "Under-trained-token indicators" }
        dl.facts {
            dt { "Computed on" } dd { code { (ind.matrix.tensor) } " (" (role) ")" }
            dt { "Reference set" } dd { (count(ind.reference.token_ids.len(), "token", "tokens")) ", " (source) }
            @if !ind.reference.left_out_non_finite.is_empty() {
                dt { "Left out" } dd {
                    (count(ind.reference.left_out_non_finite.len(), "reference token", "reference tokens"))
                    " holding NaN or ±∞ (ids "
                    (ind.reference.left_out_non_finite.iter().take(10).map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
                    @if ind.reference.left_out_non_finite.len() > 10 { ", …" }
                    ")"
                }
            }
            dt { "Main indicator" } dd { (title(ind.main)) " (lower: more under-trained)" }
            @if let Some(t) = ind.threshold {
                dt { "Candidates" } dd {
                    (count(ind.candidates.len(), "token", "tokens")) " at or below the "
                    (ordinal(ind.threshold_percentile)) " percentile, " (sci(t))
                }
            }
            dt { "Overlap" } dd {
                (thousands(ind.overlap.holes)) " in black holes, " (thousands(ind.overlap.components))
                " in components, " (thousands(ind.overlap.reference)) " in the reference set"
            }
            @if let Some(n) = ind.power_iterations {
                dt { "First component" } dd {
                    (count(n, "power iteration", "power iterations"))
                    @if ind.pc1_converged == Some(false) { " (not converged)" }
                }
            }
        }
        table.summary {
            thead { tr { th.t { "indicator" } th { "min" } th { "q1" } th { "median" } th { "q3" } th { "max" } } }
            tbody {
                @for (name, q) in ind.summary.each() {
                    tr {
                        td.t { (title(name)) }
                        td { (sci(q.min)) } td { (sci(q.q1)) }
                        td { (sci(q.median)) } td { (sci(q.q3)) }
                        td { (sci(q.max)) }
                    }
                }
            }
        }
        @if let Some(svg) = histogram(r) {
            (figure(&ids.id("indicator"), svg, "The main indicator of every token, binned (log scale). Under-trained tokens sit at the low end, with the reference set; the shaded range holds the candidates. Candidates outside the holes and components are under-trained tokens the survey alone does not find."))
        }
        @if !ind.candidates.is_empty() {
            h3 { "Candidates, most under-trained first" }
            (table(&ids.id("candidates"), &[
                Column { title: "rank", numeric: true },
                Column { title: "token id", numeric: true },
                Column { title: "token", numeric: false },
                Column { title: "main indicator", numeric: true },
                Column { title: "norm", numeric: true },
                Column { title: "in a hole", numeric: false },
                Column { title: "in a component", numeric: false },
                Column { title: "reference", numeric: false },
            ], ind.candidates.iter().enumerate().take(MAX_TABLE_ROWS).map(|(k, &t)| vec![
                Cell::int(k + 1),
                Cell::int(t),
                Cell::text(names.string(t)),
                Cell::float(value(main, t), None),
                Cell::float(value(norm, t), None),
                Cell::text(yes(holes.contains(&t))),
                Cell::text(yes(frozen.contains(&t))),
                Cell::text(yes(reference.contains(&t))),
            ]).collect(), ind.candidates.len()))
        }
    }
}

fn histogram(r: &Report) -> Option<String> {
    let ind = r.indicators.as_ref()?;
    let h = figures::indicator_histogram(r)?;
    let max = h.all.counts.iter().copied().max().unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Histogram of the main indicator",
        Axis::linear(title(ind.main), h.all.lo, h.all.hi),
        Axis::counts("tokens (log scale)", max),
    );
    if let Some(t) = ind.threshold {
        c.shade(
            h.all.lo,
            t,
            &format!(
                "candidates: {}",
                count(ind.candidates.len(), "token", "tokens")
            ),
        );
    }
    let layers = [
        (&h.all, colour::CLOUD, "all tokens"),
        (&h.reference, colour::FROZEN, "reference tokens"),
        (&h.holes, colour::HOLE, "in black holes"),
    ];
    layered_bars(&mut c, &layers, "value");
    Some(c.finish())
}
