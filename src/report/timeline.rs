//! The report of a checkpoint series (`--series`, `--trajectory`): one
//! serializable struct, rendered as a timeline in text or as one JSON
//! document (schema `singularity-gpu-series/2`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::fmt::{count, decimal, thousands};
use super::text::TextExporter;
use super::{Exporter, TokenDisplay, TokenizerInfo};
use crate::escape::quoted;
use crate::survey::tracker::{Event, EventKind, Series, StepSummary};
use crate::types::DeviceInfo;

/// The JSON schema name of a series report.
/// `/2`: events name only the tokens that changed side (`size`,
/// `representative`, `largest_piece`, the other `pieces`); `/1` listed the
/// whole hole in `token_ids` and again in `pieces`.
pub const SERIES_SCHEMA: &str = "singularity-gpu-series/2";

/// Steps the text timeline shows in full; past this it samples.
pub const TIMELINE_ROWS: usize = 50;

/// Wall-clock time of each stage, in milliseconds, summed over the steps.
/// The survey of one batch of steps runs while the engine compares the next
/// batch, so `diff` and `survey` overlap: their sum can exceed `total`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SeriesTimings {
    /// Reading (and decompressing) the steps.
    pub read: f64,
    /// The engine's row-wise pass (hash, change flag, displacement).
    pub diff: f64,
    /// Grouping, cores and events (on a thread of its own, meanwhile).
    pub survey: f64,
    /// The engine's thread waiting for the survey of the batch before to
    /// finish, after comparing its own (0 when the survey keeps up).
    pub wait: f64,
    pub total: f64,
}

/// The survey of a series. The JSON holds every field but `notices` and
/// `token_display`.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    pub schema: &'static str,
    /// The files read, in step order (one for a trajectory).
    pub inputs: Vec<String>,
    /// `series` (one checkpoint per step) or `trajectory`.
    pub kind: &'static str,
    pub format: &'static str,
    pub tensor: String,
    pub dtype: String,
    pub stored_dtype: String,
    /// [steps, tokens, dim]
    pub shape: [usize; 3],
    pub device: DeviceInfo,
    pub series: Series,
    /// The tokenizer that labels the tokens, when one was given or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerInfo>,
    /// Strings of the tokens the events and the frozen cores name (keys are
    /// token ids), when a tokenizer was given or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<BTreeMap<usize, String>>,
    pub timings_ms: SeriesTimings,
    #[serde(skip)]
    pub notices: Vec<String>,
    #[serde(skip)]
    pub token_display: TokenDisplay,
}

/// The steps the timeline shows: all of them up to [`TIMELINE_ROWS`], else
/// that many spread evenly (the first and the last included) and every step
/// with an event.
pub fn timeline_rows(r: &SeriesReport) -> Vec<usize> {
    let n = r.series.per_step.len();
    if n <= TIMELINE_ROWS {
        return (0..n).collect();
    }
    let mut keep = vec![false; n];
    for k in 0..TIMELINE_ROWS {
        keep[k * (n - 1) / (TIMELINE_ROWS - 1)] = true;
    }
    let index: BTreeMap<u64, usize> = r
        .series
        .steps
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i))
        .collect();
    for e in &r.series.events {
        if let Some(&i) = index.get(&e.step) {
            keep[i] = true;
        }
    }
    (0..n).filter(|&i| keep[i]).collect()
}

/// A token as the text shows it: the id, with its string or byte.
fn token(r: &SeriesReport, id: usize) -> String {
    match r.token_display {
        TokenDisplay::Strings => match r.tokens.as_ref().and_then(|t| t.get(&id)) {
            Some(s) => format!("{id} {}", quoted(s)),
            None => id.to_string(),
        },
        TokenDisplay::Bytes if (32..127).contains(&id) => {
            format!("{id} {:?}", (id as u8) as char)
        }
        TokenDisplay::Bytes => format!("{id} \\x{id:02x}"),
        TokenDisplay::Ids => id.to_string(),
    }
}

/// `: ` and at most `max` tokens, then how many more; nothing when `max`
/// is 0 (`--max-tokens 0`: counts only).
fn listed(r: &SeriesReport, ids: &[usize], max: usize) -> String {
    if max == 0 {
        String::new()
    } else {
        format!(": {}", token_list(r, ids, max))
    }
}

/// At most `max` tokens, then how many more.
fn token_list(r: &SeriesReport, ids: &[usize], max: usize) -> String {
    let shown: Vec<String> = ids.iter().take(max).map(|&id| token(r, id)).collect();
    let more = ids.len().saturating_sub(max);
    if more > 0 {
        format!("{}, … and {} more", shown.join(", "), thousands(more))
    } else {
        shown.join(", ")
    }
}

fn opt(x: Option<usize>) -> String {
    x.map_or_else(|| "–".into(), thousands)
}

fn event_counts(r: &SeriesReport, step: u64) -> String {
    let mut parts = Vec::new();
    for e in r.series.events.iter().filter(|e| e.step == step) {
        parts.push(match e.kind {
            EventKind::Evaporated => format!("{} evaporated", e.token_ids.len()),
            EventKind::Split => "split".into(),
            EventKind::Merged => "merged".into(),
            EventKind::Formed => "formed".into(),
        });
    }
    parts.join(", ")
}

fn row(o: &mut String, r: &SeriesReport, p: &StepSummary) -> std::fmt::Result {
    let (linf, l1) = match p.displacement {
        Some(d) => (
            thousands(d.max_linf_steps as usize),
            d.mean_l1_steps.map_or_else(|| "–".into(), decimal),
        ),
        None => ("–".into(), "–".into()),
    };
    writeln!(
        o,
        "{:>10}  {:>9}  {:>6}  {:>8}  {:>9}  {:>9}  {:>9}  {:>11}  {}",
        p.step,
        thousands(p.n_unique),
        thousands(p.black_holes),
        thousands(p.largest),
        thousands(p.tokens_in_holes),
        opt(p.moved),
        linf,
        l1,
        event_counts(r, p.step)
    )
}

/// One event: the tokens that changed side, never a whole hole (the
/// largest piece is named by its size and smallest id).
fn event(o: &mut String, r: &SeriesReport, e: &Event, max_tokens: usize) -> std::fmt::Result {
    let step = e.step;
    let size = thousands(e.size.unwrap_or(e.token_ids.len()));
    let ids = listed(r, &e.token_ids, max_tokens);
    let (split, largest) = match (e.kind, e.largest_piece) {
        (EventKind::Evaporated, _) => {
            let k = thousands(e.token_ids.len());
            return writeln!(o, "step {step}: {k} evaporated{ids}");
        }
        (EventKind::Formed, _) => return writeln!(o, "step {step}: a hole of {size} formed{ids}"),
        (EventKind::Split, Some(l)) => (true, l),
        (EventKind::Merged, Some(l)) => (false, l),
        // Split and merged events always name their largest piece.
        (_, None) => return writeln!(o, "step {step}: {:?}", e.kind),
    };
    if split && largest.size == 1 {
        // Into single tokens (the largest piece is the one with the
        // smallest id): every token is listed, all but one of them moved.
        let mut all: Vec<usize> = e.pieces.iter().flatten().copied().collect();
        all.push(largest.representative);
        all.sort_unstable();
        let list = listed(r, &all, max_tokens);
        return writeln!(o, "step {step}: a hole of {size} broke apart{list}");
    }
    let sizes: Vec<String> = std::iter::once(largest.size)
        .chain(e.pieces.iter().map(Vec::len))
        .map(thousands)
        .collect();
    let sizes = sizes.join(" + ");
    let rep = e.representative.map_or_else(String::new, |id| token(r, id));
    let (together, alone) = if split {
        writeln!(
            o,
            "step {step}: a hole of {size} (smallest id {rep}) split into {sizes}"
        )?;
        ("together", "alone")
    } else {
        writeln!(
            o,
            "step {step}: holes merged into a hole of {size} (smallest id {rep}; by their previous vector: {sizes})"
        )?;
        ("were together", "came one by one")
    };
    writeln!(
        o,
        "    {} {together} (smallest id {})",
        thousands(largest.size),
        token(r, largest.representative)
    )?;
    for p in e.pieces.iter().filter(|p| p.len() >= 2) {
        let list = listed(r, p, max_tokens);
        writeln!(o, "    {} {together}{list}", thousands(p.len()))?;
    }
    let singles: Vec<usize> = e
        .pieces
        .iter()
        .filter(|p| p.len() == 1)
        .map(|p| p[0])
        .collect();
    if !singles.is_empty() {
        let list = listed(r, &singles, max_tokens);
        writeln!(o, "    {} {alone}{list}", thousands(singles.len()))?;
    }
    Ok(())
}

/// Renders the text report.
impl Exporter<SeriesReport> for TextExporter {
    fn render(&self, r: &SeriesReport) -> String {
        let mut o = String::new();
        // Writing to a String cannot fail.
        let _ = write_text(&mut o, r, self.max_tokens);
        o
    }
}

fn write_text(o: &mut String, r: &SeriesReport, max_tokens: usize) -> std::fmt::Result {
    let s = &r.series;
    let [steps, n, d] = r.shape;
    let (first, last) = (
        s.steps.first().copied().unwrap_or(0),
        s.steps.last().copied().unwrap_or(0),
    );
    match r.kind {
        "trajectory" => writeln!(o, "Trajectory: {} ({})", r.inputs[0], r.format)?,
        _ => writeln!(
            o,
            "Series: {}, {} … {} ({})",
            count(r.inputs.len(), "checkpoint", "checkpoints"),
            r.inputs.first().map_or("", String::as_str),
            r.inputs.last().map_or("", String::as_str),
            r.format
        )?,
    }
    let stored = if r.stored_dtype != r.dtype {
        format!(" (stored as {})", r.stored_dtype)
    } else {
        String::new()
    };
    writeln!(
        o,
        "Tensor: {}, {}{stored}, {} × {}; {} from {first} to {last}",
        r.tensor,
        r.dtype,
        count(n, "token", "tokens"),
        count(d, "dim", "dims"),
        count(steps, "step", "steps")
    )?;
    writeln!(o, "Device: {} ({})", r.device.adapter, r.device.backend)?;
    if let Some(t) = &r.tokenizer {
        writeln!(o, "Tokens: {}", t.path)?;
    }

    writeln!(o, "\nTIMELINE")?;
    let shown = timeline_rows(r);
    if shown.len() < s.per_step.len() {
        writeln!(
            o,
            "({} of {} steps: evenly spaced, and every step with an event)",
            thousands(shown.len()),
            thousands(s.per_step.len())
        )?;
    }
    writeln!(
        o,
        "{:>10}  {:>9}  {:>6}  {:>8}  {:>9}  {:>9}  {:>9}  {:>11}  events",
        "step", "unique", "holes", "largest", "in holes", "moved", "max Δ", "mean L1"
    )?;
    for &i in &shown {
        row(o, r, &s.per_step[i])?;
    }
    if r.series.per_step.iter().any(|p| p.displacement.is_some()) {
        // Read as F32 from another stored type only by dequantization (`--as`
        // reads bf16 or f16).
        let blocks = if r.dtype == "F32" && r.stored_dtype != r.dtype {
            format!(
                ", the dequantized values; a token moved when its stored {} blocks changed, by 0 steps if its values did not",
                r.stored_dtype
            )
        } else {
            String::new()
        };
        writeln!(
            o,
            "(max Δ: the largest change of one value since the previous step, and mean L1: the mean summed change of a moved token, both in steps of {}{blocks})",
            r.dtype
        )?;
    }

    writeln!(o, "\nEVENTS ({})", thousands(s.events.len()))?;
    if s.events.is_empty() {
        writeln!(o, "none")?;
    }
    for e in &s.events {
        event(o, r, e, max_tokens)?;
    }

    writeln!(o, "\nAT THE END (step {last})")?;
    let evaporated = s.tokens.evaporated_at.iter().flatten().count();
    let frozen: usize = s.frozen.iter().map(Vec::len).sum();
    let never = s.tokens.first_moved.iter().filter(|f| f.is_none()).count();
    writeln!(
        o,
        "{} evaporated from the holes of step {first}; {} still frozen together in the cores of {} of them; {} never moved",
        count(evaporated, "token", "tokens"),
        count(frozen, "token", "tokens"),
        thousands(s.frozen.len()),
        count(never, "token", "tokens")
    )?;
    // Tokens that started in a hole and neither evaporated nor stay frozen:
    // the last of a core that fell apart into single tokens.
    let started = s.per_step.first().map_or(0, |p| p.tokens_in_holes);
    let last = started.saturating_sub(evaporated + frozen);
    if last > 0 {
        writeln!(
            o,
            "{} the last of a core that fell apart into single tokens (the core rule keeps its smallest id; not counted as evaporated)",
            if last == 1 { "1 token is".to_string() } else { format!("{} tokens are", thousands(last)) }
        )?;
    }
    for core in &s.frozen {
        writeln!(
            o,
            "  frozen: {}{}",
            count(core.len(), "token", "tokens"),
            listed(r, core, max_tokens)
        )?;
    }
    writeln!(
        o,
        "\nTime: {:.1} ms (read {:.1}, engine {:.1}, survey {:.1})",
        r.timings_ms.total, r.timings_ms.read, r.timings_ms.diff, r.timings_ms.survey
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::tracker::{HoleRef, StepSummary};
    use crate::types::DeviceKind;

    fn report(rows: usize, events: Vec<Event>) -> SeriesReport {
        SeriesReport {
            schema: SERIES_SCHEMA,
            inputs: vec!["run.safetensors".into()],
            kind: "trajectory",
            format: "safetensors",
            tensor: "W".into(),
            dtype: "F32".into(),
            stored_dtype: "F32".into(),
            shape: [2, rows, 1],
            device: DeviceInfo {
                kind: DeviceKind::Cpu,
                adapter: "CPU".into(),
                backend: "rayon".into(),
            },
            series: Series {
                steps: vec![0, 1],
                per_step: [0, 1]
                    .map(|step| StepSummary {
                        step,
                        n_unique: 1,
                        black_holes: 1,
                        largest: rows,
                        tokens_in_holes: rows,
                        moved: None,
                        displacement: None,
                    })
                    .to_vec(),
                events,
                ..Series::default()
            },
            tokenizer: None,
            tokens: None,
            timings_ms: SeriesTimings::default(),
            notices: Vec::new(),
            token_display: TokenDisplay::Ids,
        }
    }

    fn parted(kind: EventKind, size: usize, largest: [usize; 2], pieces: Vec<Vec<usize>>) -> Event {
        Event {
            step: 1,
            kind,
            size: Some(size),
            representative: Some(0),
            token_ids: Vec::new(),
            largest_piece: Some(HoleRef {
                size: largest[0],
                representative: largest[1],
            }),
            pieces,
        }
    }

    /// The events section of the text report.
    fn events_text(r: &SeriesReport) -> String {
        let t = TextExporter { max_tokens: 20 }.render(r);
        let from = t.find("EVENTS").unwrap();
        let to = t.find("\nAT THE END").unwrap();
        t[from..to].to_string()
    }

    #[test]
    fn text_events_name_a_hole_by_its_size_and_smallest_id_never_its_tokens() {
        let r = report(
            100_000,
            vec![
                parted(
                    EventKind::Split,
                    100_000,
                    [99_995, 0],
                    vec![vec![7, 9], vec![3], vec![11], vec![40_000]],
                ),
                parted(
                    EventKind::Merged,
                    100_003,
                    [100_000, 0],
                    vec![vec![4, 8], vec![6]],
                ),
                Event {
                    step: 1,
                    kind: EventKind::Formed,
                    size: Some(2),
                    representative: Some(8),
                    token_ids: vec![8, 9],
                    largest_piece: None,
                    pieces: Vec::new(),
                },
                parted(EventKind::Split, 3, [1, 0], vec![vec![5], vec![2]]),
            ],
        );
        assert_eq!(
            events_text(&r),
            "EVENTS (4)
step 1: a hole of 100,000 (smallest id 0) split into 99,995 + 2 + 1 + 1 + 1
    99,995 together (smallest id 0)
    2 together: 7, 9
    3 alone: 3, 11, 40000
step 1: holes merged into a hole of 100,003 (smallest id 0; by their previous vector: 100,000 + 2 + 1)
    100,000 were together (smallest id 0)
    2 were together: 4, 8
    1 came one by one: 6
step 1: a hole of 2 formed: 8, 9
step 1: a hole of 3 broke apart: 0, 2, 5
"
        );
    }
}
