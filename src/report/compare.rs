//! Many inputs side by side: a [`Comparison`] holds one [`Entry`] per input
//! (its table [`Row`], computed once from its [`Report`], and the report
//! itself, or the input's error), rendered as one text table ([`TextExporter`],
//! with every full report after it by [`Details`]) or as JSON Lines
//! ([`JsonExporter`]: each line the document `--file INPUT --json` prints).

use std::fmt::Write;

use serde::Serialize;

use super::fmt::{sci2, thousands};
use super::json::JsonExporter;
use super::text::TextExporter;
use super::{Exporter, Report, SCHEMA};
use crate::escape::one_line;

/// The result of a many-input run, in input order.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub entries: Vec<Entry>,
    /// Lines for the user about the run as a whole (`--device auto` falling
    /// back to the CPU), as [`Report::notices`]; in neither rendering.
    pub notices: Vec<String>,
}

impl Comparison {
    /// The entries that failed.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Failure)> {
        self.entries
            .iter()
            .filter_map(|e| e.outcome.as_ref().err().map(|f| (e.input.as_str(), f)))
    }
}

/// One input of the run.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The input as given (a `--file` or a line of `--files-from`).
    pub input: String,
    pub outcome: Result<Surveyed, Failure>,
}

impl Entry {
    /// The full report, when it was surveyed and its report kept.
    pub fn report(&self) -> Option<&Report> {
        self.outcome.as_ref().ok()?.report.as_deref()
    }

    /// The table row, when it was surveyed.
    pub fn row(&self) -> Option<&Row> {
        self.outcome.as_ref().ok().map(|s| &s.row)
    }
}

/// An input that was surveyed.
#[derive(Clone, Debug)]
pub struct Surveyed {
    pub row: Row,
    /// The full report; `None` when the run kept only the rows
    /// ([`ManyOptions::keep_reports`](crate::run::many::ManyOptions::keep_reports)).
    pub report: Option<Box<Report>>,
}

impl Surveyed {
    /// The row of `report`, and the report.
    pub fn of(report: Report) -> Self {
        Self {
            row: Row::of(&report),
            report: Some(Box::new(report)),
        }
    }
}

/// An input that could not be surveyed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// One line that names the input and the problem.
    pub message: String,
    /// The device failed while running (exit code 1), rather than the input
    /// or the flags being unusable (exit code 2).
    pub device: bool,
}

/// One input's line of the table: the numbers of its [`Report`] that a
/// comparison shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Rows of the matrix (the vocabulary, padding rows included).
    pub vocabulary: usize,
    /// Columns (the hidden dimension).
    pub dim: usize,
    /// The dtype the values were read as.
    pub dtype: String,
    /// The dtype as stored (`Q4_K`, `U16`); else equal to `dtype`.
    pub stored_dtype: String,
    /// Distinct vectors.
    pub unique: usize,
    /// Black holes: groups of two or more identical rows.
    pub holes: usize,
    /// Tokens in the largest black hole; `None` without black holes.
    pub largest_hole: Option<usize>,
    /// Tokens in black holes, all together.
    pub tokens_in_holes: usize,
    /// With `--near-*`: the near-singularity components.
    pub near: Option<NearSummary>,
    /// With `--nearest`: the gap in nearest-neighbour distances.
    pub nearest: Option<NearestSummary>,
    /// The survey's wall-clock time, in milliseconds (`timings_ms.total`).
    pub total_ms: f64,
}

/// The near-singularity components of a row (`--near-l2`, `--near-rel`, `--near-ulp`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NearSummary {
    /// Components of two or more distinct vectors.
    pub components: usize,
    /// Tokens in the largest of them (the frozen structure on real models);
    /// 0 without components.
    pub largest: usize,
}

/// The nearest-neighbour summary of a row (`--nearest`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NearestSummary {
    /// The gap that splits off a low population; `None` when there is none.
    pub gap: Option<GapSummary>,
}

/// The gap in nearest-neighbour distances (see
/// [`Gap`](crate::survey::nearest::Gap)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GapSummary {
    /// Tokens below the gap.
    pub tokens: usize,
    /// The largest nearest-neighbour distance below the gap.
    pub lo: f64,
    /// The smallest one above it.
    pub hi: f64,
}

impl Row {
    /// The row of one report.
    pub fn of(r: &Report) -> Self {
        let [vocabulary, dim] = r.shape;
        Self {
            vocabulary,
            dim,
            dtype: r.dtype.clone(),
            stored_dtype: r.stored_dtype.clone(),
            unique: r.n_unique,
            holes: r.groups.len(),
            largest_hole: r.groups.iter().map(|g| g.size).max(),
            tokens_in_holes: r.groups.iter().map(|g| g.size).sum(),
            near: r.near.as_ref().map(|n| NearSummary {
                components: n.components.len(),
                largest: n
                    .components
                    .iter()
                    .map(|c| c.token_ids.len())
                    .max()
                    .unwrap_or(0),
            }),
            nearest: r.nearest.as_ref().map(|n| NearestSummary {
                gap: n.gap.as_ref().map(|g| GapSummary {
                    tokens: g.tokens.len(),
                    lo: g.lo,
                    hi: g.hi,
                }),
            }),
            total_ms: r.timings_ms.total,
        }
    }
}

// ---------------------------------------------------------------------------
// Text: one table
// ---------------------------------------------------------------------------

/// A wall-clock time: `12.3 ms`, `4.56 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// `-` for a value that is not there.
fn or_dash(x: Option<usize>) -> String {
    x.map_or_else(|| "-".into(), thousands)
}

/// A column of the table: its header, whether its cells are numbers
/// (right-aligned), and its cell of a row.
struct Column {
    header: &'static str,
    numeric: bool,
    cell: fn(&Row) -> String,
}

/// The columns after the model's, in order; the last two only when some
/// row has what they show.
fn columns(near: bool, nearest: bool) -> Vec<Column> {
    let mut c = vec![
        Column {
            header: "vocabulary",
            numeric: true,
            cell: |r| thousands(r.vocabulary),
        },
        Column {
            header: "dim",
            numeric: true,
            cell: |r| thousands(r.dim),
        },
        Column {
            header: "dtype",
            numeric: false,
            cell: |r| {
                if r.stored_dtype == r.dtype {
                    r.dtype.clone()
                } else {
                    format!("{} as {}", r.stored_dtype, r.dtype)
                }
            },
        },
        Column {
            header: "unique",
            numeric: true,
            cell: |r| thousands(r.unique),
        },
        Column {
            header: "holes",
            numeric: true,
            cell: |r| thousands(r.holes),
        },
        Column {
            header: "largest hole",
            numeric: true,
            cell: |r| or_dash(r.largest_hole),
        },
        Column {
            header: "tokens in holes",
            numeric: true,
            cell: |r| thousands(r.tokens_in_holes),
        },
    ];
    if near {
        c.push(Column {
            header: "frozen component",
            numeric: true,
            cell: |r| or_dash(r.near.map(|n| n.largest)),
        });
    }
    if nearest {
        c.push(Column {
            header: "nearest-neighbour gap",
            numeric: false,
            cell: |r| match r.nearest {
                Some(NearestSummary { gap: Some(g) }) => format!(
                    "{} tokens, {}–{}",
                    thousands(g.tokens),
                    sci2(g.lo),
                    sci2(g.hi)
                ),
                _ => "-".into(),
            },
        });
    }
    c.push(Column {
        header: "time",
        numeric: true,
        cell: |r| duration(r.total_ms),
    });
    c
}

/// `cell` padded to `width` characters, on the right for numbers.
fn pad(o: &mut String, cell: &str, width: usize, numeric: bool) {
    let fill = " ".repeat(width.saturating_sub(cell.chars().count()));
    if numeric {
        o.push_str(&fill);
        o.push_str(cell);
    } else {
        o.push_str(cell);
        o.push_str(&fill);
    }
}

/// The table: a header, a rule, and a line per input. A failed input's line
/// is its name and its error, which no column's width counts.
fn table(c: &Comparison) -> String {
    let mut o = String::new();
    if c.entries.is_empty() {
        return o;
    }
    let rows: Vec<&Row> = c.entries.iter().filter_map(Entry::row).collect();
    let cols = columns(
        rows.iter().any(|r| r.near.is_some()),
        rows.iter().any(|r| r.nearest.is_some()),
    );
    let names: Vec<String> = c.entries.iter().map(|e| one_line(&e.input)).collect();
    let cells: Vec<Option<Vec<String>>> = c
        .entries
        .iter()
        .map(|e| {
            e.row()
                .map(|r| cols.iter().map(|col| (col.cell)(r)).collect())
        })
        .collect();
    const MODEL: &str = "model";
    let model_width = names
        .iter()
        .map(|n| n.chars().count())
        .chain([MODEL.len()])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, col)| {
            cells
                .iter()
                .flatten()
                .map(|row| row[i].chars().count())
                .chain([col.header.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    const GAP: &str = "  ";
    let line = |o: &mut String, name: &str, rest: &dyn Fn(&mut String)| {
        let mut l = String::new();
        pad(&mut l, name, model_width, false);
        rest(&mut l);
        o.push_str(l.trim_end());
        o.push('\n');
    };
    line(&mut o, MODEL, &|l| {
        for (col, &w) in cols.iter().zip(&widths) {
            l.push_str(GAP);
            pad(l, col.header, w, col.numeric);
        }
    });
    let total = model_width + widths.iter().map(|w| w + GAP.len()).sum::<usize>();
    o.push_str(&"-".repeat(total));
    o.push('\n');
    for ((entry, name), row) in c.entries.iter().zip(&names).zip(&cells) {
        match (row, &entry.outcome) {
            (Some(row), _) => line(&mut o, name, &|l| {
                for ((col, &w), cell) in cols.iter().zip(&widths).zip(row) {
                    l.push_str(GAP);
                    pad(l, cell, w, col.numeric);
                }
            }),
            (None, Err(f)) => line(&mut o, name, &|l| {
                l.push_str(GAP);
                let _ = write!(l, "error: {}", f.message);
            }),
            (None, Ok(_)) => {}
        }
    }
    o
}

/// The text of a comparison: the table, and nothing else.
impl Exporter<Comparison> for TextExporter {
    fn render(&self, c: &Comparison) -> String {
        table(c)
    }
}

/// `--details`: the table, then each surveyed input's full text report (as
/// `--file INPUT` prints it), in input order; an input whose report was not
/// kept is left out.
pub struct Details(pub TextExporter);

impl Exporter<Comparison> for Details {
    fn render(&self, c: &Comparison) -> String {
        let mut o = table(c);
        for report in c.entries.iter().filter_map(Entry::report) {
            o.push('\n');
            o.push_str(&self.0.render(report));
        }
        o
    }
}

// ---------------------------------------------------------------------------
// JSON Lines
// ---------------------------------------------------------------------------

/// A failed input's JSON line.
#[derive(Serialize)]
struct FailureLine<'a> {
    schema: &'static str,
    file: &'a str,
    error: &'a str,
}

/// One entry as one line of JSON Lines, with its final newline: the report
/// (the document `--file INPUT --json` prints, on one line), or
/// `{"schema": …, "file": INPUT, "error": MESSAGE}`.
pub fn json_line(e: &Entry) -> String {
    let line = match &e.outcome {
        Ok(Surveyed {
            report: Some(r), ..
        }) => serde_json::to_string(r),
        Ok(Surveyed { report: None, .. }) => serde_json::to_string(&FailureLine {
            schema: SCHEMA,
            file: &e.input,
            error: "the report was not kept (ManyOptions::keep_reports)",
        }),
        Err(f) => serde_json::to_string(&FailureLine {
            schema: SCHEMA,
            file: &e.input,
            error: &f.message,
        }),
    };
    // Serializing plain structs of numbers and strings cannot fail.
    line.unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}")) + "\n"
}

/// JSON Lines: one line per input, in input order (see [`json_line`]).
impl Exporter<Comparison> for JsonExporter {
    fn render(&self, c: &Comparison) -> String {
        c.entries.iter().map(json_line).collect()
    }
}
