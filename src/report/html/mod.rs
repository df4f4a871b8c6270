//! The report as one self-contained HTML page (`--html`): every byte
//! inline (styles, script and plots as SVG; a Content-Security-Policy that
//! forbids any request), sections in the order of the text report.
//!
//! Templates are [`maud`]'s `html!`: checked by the compiler, escaped by
//! default, and no template files to find at run time. Plots are SVG
//! written by our own small module ([`svg`]) from binned data
//! ([`figures`]), so the page's size grows with the bins and the token
//! tables, not with the vocabulary.

mod compare;
pub mod figures;
mod indicators;
mod series;
mod survey;
pub mod svg;

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{fmt, Exporter, Report, TokenDisplay};
use crate::escape::quoted;
use crate::report::compare::Comparison;
use crate::report::timeline::SeriesReport;

/// Renders a result as one HTML page.
pub struct HtmlExporter;

/// Rows a token table holds at most; the JSON has them all.
pub const MAX_TABLE_ROWS: usize = 3200;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");
/// No request may leave the page: no network, no other file.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// The page around `body`.
fn page(title: &str, subtitle: Markup, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { (title) }
                    p.sub { (subtitle) }
                }
                main { (body) }
                footer {
                    "Written by singularity-gpu " (env!("CARGO_PKG_VERSION"))
                    ". Every number here is also in the JSON report (--json)."
                }
                script { (PreEscaped(JS)) }
            }
        }
    }
    .into_string()
}

impl Exporter<Report> for HtmlExporter {
    fn render(&self, r: &Report) -> String {
        page(
            "Singularity survey",
            survey::subtitle(r),
            survey::body(r, &Ids::new("")),
        )
    }
}

impl Exporter<Comparison> for HtmlExporter {
    fn render(&self, c: &Comparison) -> String {
        page(
            "Singularity survey of several models",
            compare::subtitle(c),
            compare::body(c),
        )
    }
}

impl Exporter<SeriesReport> for HtmlExporter {
    fn render(&self, r: &SeriesReport) -> String {
        page("Singularity series", series::subtitle(r), series::body(r))
    }
}

/// Element ids of one report's section, unique on a page that holds several.
#[derive(Clone, Debug)]
pub(crate) struct Ids {
    prefix: String,
}

impl Ids {
    pub(crate) fn new(prefix: &str) -> Ids {
        Ids {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn id(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}-{name}", self.prefix)
        }
    }
}

/// How a token id is shown on the page: its string (quoted), its byte, or
/// what it is when the tokenizer lacks it.
pub(crate) struct Names<'a> {
    pub display: TokenDisplay,
    pub tokens: Option<&'a BTreeMap<usize, String>>,
    pub special: &'a [usize],
    /// The first row past the tokenizer's vocabulary.
    pub padding_from: Option<usize>,
}

impl<'a> Names<'a> {
    pub(crate) fn of_report(r: &'a Report) -> Self {
        Names {
            display: r.token_display,
            tokens: r.tokens.as_ref(),
            special: r.special_tokens.as_deref().unwrap_or(&[]),
            padding_from: r.padding_rows.as_ref().and_then(|p| p.first().copied()),
        }
    }

    pub(crate) fn of_series(r: &'a SeriesReport) -> Self {
        Names {
            display: r.token_display,
            tokens: r.tokens.as_ref(),
            special: &[],
            padding_from: None,
        }
    }

    pub(crate) fn string(&self, id: usize) -> String {
        if self.display == TokenDisplay::Bytes && id < 256 {
            return quoted(&char::from(id as u8).to_string());
        }
        match self.tokens.and_then(|t| t.get(&id)) {
            Some(t) if self.special.binary_search(&id).is_ok() => {
                format!("{} (special)", quoted(t))
            }
            Some(t) => quoted(t),
            None if self.padding_from.is_some_and(|p| id >= p) => "(padding row)".into(),
            None if self.tokens.is_some() => "(not in the tokenizer)".into(),
            None => String::new(),
        }
    }
}

/// A figure: the plot, and a caption saying what to look for.
pub(crate) fn figure(id: &str, svg: String, caption: &str) -> Markup {
    figure_with(id, svg, html! { (caption) })
}

/// [`figure`] with a caption of markup (a key of coloured swatches).
pub(crate) fn figure_with(id: &str, svg: String, caption: Markup) -> Markup {
    html! {
        figure.plot id=(id) {
            (PreEscaped(svg))
            figcaption { (caption) }
        }
    }
}

/// Histograms of nested sets over the same bins, drawn one over another
/// (the largest first): a legend entry for each layer that shows somewhere
/// above the layers drawn over it.
pub(crate) fn layered_bars(
    c: &mut svg::Chart,
    layers: &[(&figures::Bins, &str, &str)],
    quantity: &str,
) {
    for (i, (bins, col, what)) in layers.iter().enumerate() {
        let covered = |k: usize| {
            layers[i + 1..]
                .iter()
                .map(|l| l.0.counts[k])
                .max()
                .unwrap_or(0)
        };
        if (0..bins.counts.len()).any(|k| bins.counts[k] > covered(k)) {
            c.legend(*what, col);
        }
        for (k, &n) in bins.counts.iter().enumerate() {
            if n > 0 {
                let (a, b) = bins.edges(k);
                let tip = format!(
                    "{} {what} with {quantity} in [{a:.4}, {b:.4}]",
                    fmt::thousands(n)
                );
                c.bar(a, b, n as f64, col, &tip);
            }
        }
    }
}

/// A column of a token table.
pub(crate) struct Column {
    pub title: &'static str,
    pub numeric: bool,
}

/// One cell: its text, and for a number whose text JavaScript's
/// `parseFloat` would misread (`n/a`), the value to sort by.
pub(crate) struct Cell {
    pub text: String,
    pub value: Option<f64>,
    /// Text (left-aligned) rather than a number.
    pub is_text: bool,
}

impl Cell {
    /// Text, left-aligned, in the table's monospace for token strings.
    pub(crate) fn text(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            value: None,
            is_text: true,
        }
    }

    /// An integer, without separators so that it sorts as written.
    pub(crate) fn int(v: usize) -> Cell {
        Cell {
            text: v.to_string(),
            value: None,
            is_text: false,
        }
    }

    /// A number with `digits` decimals (or `e` notation when `digits` is
    /// `None`); `n/a` sorts last.
    pub(crate) fn float(v: Option<f64>, digits: Option<usize>) -> Cell {
        match v.filter(|v| v.is_finite()) {
            Some(v) => Cell {
                text: match digits {
                    Some(d) => format!("{v:.d$}"),
                    None => super::fmt::sci(v),
                },
                value: None,
                is_text: false,
            },
            None => Cell {
                text: "n/a".into(),
                value: Some(f64::NAN),
                is_text: false,
            },
        }
    }

    /// A blank cell (sorts last among numbers).
    pub(crate) fn blank() -> Cell {
        Cell::missing("")
    }

    /// A number that is not there, said in words (sorts last).
    pub(crate) fn missing(why: &str) -> Cell {
        Cell {
            text: why.into(),
            value: Some(f64::NAN),
            is_text: false,
        }
    }
}

/// A sortable table with a filter box; `total` rows exist, of which `rows`
/// (at most [`MAX_TABLE_ROWS`]) are shown.
pub(crate) fn table(id: &str, columns: &[Column], rows: Vec<Vec<Cell>>, total: usize) -> Markup {
    html! {
        input.filter type="search" data-table=(id) placeholder="filter rows (id, string, …)";
        @if total > rows.len() {
            p.note { "The first " (super::fmt::thousands(rows.len())) " of " (super::fmt::thousands(total)) " rows; the JSON report has them all." }
        }
        div.tablebox {
            table.sortable id=(id) {
                thead { tr {
                    @for c in columns {
                        @if c.numeric { th data-type="num" { (c.title) } }
                        @else { th.t data-type="text" { (c.title) } }
                    }
                } }
                tbody {
                    @for row in &rows {
                        tr {
                            @for c in row {
                                @match (c.value, c.is_text) {
                                    (_, true) => { td.t { (c.text) } }
                                    (Some(v), false) => { td data-v=(sort_key(v)) { (c.text) } }
                                    (None, false) => { td { (c.text) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A sort key JavaScript's parseFloat reads (NaN sorts last).
fn sort_key(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

/// A number as a summary card.
pub(crate) fn card(value: String, label: &str, class: &str) -> Markup {
    html! {
        div class=(format!("card {class}")) { b { (value) } span { (label) } }
    }
}
