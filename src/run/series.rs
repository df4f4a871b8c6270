//! A checkpoint series end to end: steps read one at a time
//! ([`load::steps`](crate::load::steps)), each compared with the one before on the engine
//! ([`Engine::step_differ`]), followed by the survey
//! ([`survey::tracker`](crate::survey::tracker)), and dressed as a [`SeriesReport`].
//!
//! The engine hands the survey what moved at each step
//! ([`StepDiffer::push_moves`]): the CPU engine reads the steps' bands from
//! their files itself, with positioned reads, so no map is faulted in. A
//! batch of steps (as many as fit in 8 MB, at most 64, at least one; one
//! slab of chunks for a chunked HDF5 trajectory read step by step) is
//! compared while the batch before is surveyed on a thread of its own, and
//! given back to the source once compared ([`StepSource::release_before`]).
//! Memory holds one batch of steps, the moves of two batches (their buffers
//! filled again batch after batch), the engine's last step and the survey's
//! copy of the current one, whatever the number of steps. A quantized
//! tensor's steps also hold their stored blocks (a fraction of the
//! dequantized values' size).
//!
//! A quantized tensor's identity is its stored blocks, as for one file
//! ([`analyze_stored`](super::survey::analyze_stored)): the engine compares
//! the dequantized values, for the displacement in steps of f32, and the
//! rows' hashes and changed flags are then taken from the stored blocks
//! (`stored_identity`), on the host whatever the engine, so that the
//! groups, `moved` and the events follow the blocks on both engines alike.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use super::{ms, token_display, tokenizer_too_large};
use crate::engine::hash::row_hash;
use crate::engine::{self, BatchMoves, DeviceChoice, Engine, GpuOptions, StepData, StepDiffer};
use crate::error::{Error, Result};
use crate::load::steps::trajectory::open_trajectory;
use crate::load::steps::{open_series, SeriesInfo, StepBytes, StepSource};
use crate::load::{Bytes, LoadOptions, TokenNames};
use crate::matrix::Matrix;
use crate::progress::{Interrupt, Progress};
use crate::report::timeline::{SeriesReport, SeriesTimings, SERIES_SCHEMA};
use crate::report::TokenizerInfo;
use crate::survey::tracker::{RowIdentity, SeriesTracker};
use crate::types::{ReadAt, StepRows, StepSelection};

/// What a series is read from.
#[derive(Clone, Debug)]
pub enum SeriesInput {
    /// `--series`: a folder of checkpoints, or the checkpoint files.
    Files(Vec<PathBuf>),
    /// `--trajectory`: one 3-D tensor `[steps, tokens, dim]`.
    Trajectory(PathBuf),
}

/// Everything a series survey can be asked to do.
#[derive(Clone, Debug, Default)]
pub struct SeriesOptions {
    pub load: LoadOptions,
    pub steps: StepSelection,
    pub device: DeviceChoice,
    pub gpu: GpuOptions,
    /// Show a progress bar on stderr (only on a terminal).
    pub progress: bool,
    /// Set by the caller to stop the series ([`Error::Interrupted`]).
    pub interrupt: Option<Interrupt>,
}

/// Bytes of steps in one batch: the steps of a batch are compared with
/// their predecessors in parallel (a small step is too little work to split
/// across threads), and two batches stay in the CPU's last-level cache
/// while the engine and the survey read them (32 MB batches ran 15–16%
/// slower; BENCHMARKS.md). Never fewer than one step plus the one before.
pub const BATCH_BYTES: usize = 8 << 20;
/// A source that decodes several steps at once (a slab of chunks) has
/// batches of one slab when it fits in this many bytes.
const SLAB_BATCH_BYTES: usize = 32 << 20;
/// Steps in one batch at most.
const MAX_BATCH: usize = 64;

/// Opens the input's steps: at least two, or there is nothing to compare.
pub fn open(input: &SeriesInput, opts: &SeriesOptions) -> Result<Box<dyn StepSource>> {
    let source = match input {
        SeriesInput::Files(paths) => open_series(paths, &opts.load, &opts.steps, opts.progress)?,
        SeriesInput::Trajectory(path) => open_trajectory(path, &opts.load, &opts.steps)?,
    };
    if let [only] = source.steps() {
        let path = source.inputs().first().cloned().unwrap_or_default();
        let selected = if opts.steps == StepSelection::default() {
            "found"
        } else {
            "selected by --steps"
        };
        let hint = match input {
            SeriesInput::Files(_) => "survey one checkpoint with --file",
            SeriesInput::Trajectory(_) => "select more with --steps",
        };
        return Err(Error::Input {
            path,
            reason: format!(
                "a series needs at least two steps, and only step {only} was {selected}; {hint}"
            ),
        });
    }
    Ok(source)
}

/// Surveys a series on the engine `opts.device` selects (opened once).
pub fn survey_series(input: &SeriesInput, opts: &SeriesOptions) -> Result<SeriesReport> {
    let start = Instant::now();
    let mut source = open(input, opts)?;
    let (engine, notice) = engine::select(opts.device, opts.gpu)?;
    let kind = match input {
        SeriesInput::Files(_) => "series",
        SeriesInput::Trajectory(_) => "trajectory",
    };
    let mut report = survey_source(
        engine.as_ref(),
        source.as_mut(),
        kind,
        opts.progress,
        opts.interrupt.as_ref(),
        start,
    )?;
    report.notices.splice(0..0, notice);
    Ok(report)
}

/// The stored blocks of a step as its rows' identity.
fn stored_rows<'b>(info: &SeriesInfo, step: u64, stored: &'b Bytes) -> Result<RowIdentity<'b>> {
    RowIdentity::stored(stored, info.rows).ok_or_else(|| {
        Error::Usage(format!(
            "step {step} stores {} bytes of {} blocks, not the same number for each of its {} rows",
            stored.len(),
            info.stored_dtype,
            info.rows
        ))
    })
}

/// Makes the stored blocks the rows' identity in the engine's `rows` for
/// the steps `bufs` (numbered `numbers`), wherever a step has them: a row
/// changed when its blocks differ from the step before's (`before`: that
/// step; `None` before the first step), and a changed row's hash (every
/// row's at the first step) becomes that of its blocks. The displacement
/// stays the engine's, counted on the dequantized values: a row whose
/// blocks changed but decode to the same values moved by zero steps (rows
/// whose blocks are equal always decode alike). The hashes of rows that
/// did not change are left as they are: the survey reads those of moved
/// rows only.
fn stored_identity(
    info: &SeriesInfo,
    numbers: &[u64],
    before: Option<&StepBytes>,
    bufs: &[StepBytes],
    rows: &mut [StepRows],
) -> Result<()> {
    for (j, r) in rows.iter_mut().enumerate().take(bufs.len()) {
        let prev = match j {
            0 => before,
            _ => Some(&bufs[j - 1]),
        };
        let step = numbers[j];
        let Some(stored) = &bufs[j].stored else {
            if prev.is_some_and(|p| p.stored.is_some()) {
                return Err(Error::Usage(format!(
                    "step {step} holds no stored blocks, but the step before does"
                )));
            }
            continue;
        };
        let id = stored_rows(info, step, stored)?;
        match prev {
            None => {
                r.hashes = (0..info.rows)
                    .into_par_iter()
                    .map(|t| row_hash(id.row(t)))
                    .collect();
                r.changed = None;
            }
            Some(p) => {
                let old = p
                    .stored
                    .as_ref()
                    .and_then(|b| RowIdentity::stored(b, info.rows))
                    .filter(|o| o.row_len() == id.row_len())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "step {step} stores its rows in other blocks than the step before"
                        ))
                    })?;
                let changed: Vec<bool> = (0..info.rows)
                    .into_par_iter()
                    .map(|t| id.row(t) != old.row(t))
                    .collect();
                for (t, h) in r.hashes.iter_mut().enumerate() {
                    if changed[t] {
                        *h = row_hash(id.row(t));
                    }
                }
                r.changed = Some(changed);
            }
        }
    }
    Ok(())
}

/// Surveys the steps of `source` on `engine`; `start` is when opening began.
pub fn survey_source(
    engine: &dyn Engine,
    source: &mut dyn StepSource,
    kind: &'static str,
    progress: bool,
    interrupt: Option<&Interrupt>,
    start: Instant,
) -> Result<SeriesReport> {
    survey_source_batched(
        engine,
        source,
        kind,
        progress,
        interrupt,
        start,
        BATCH_BYTES,
    )
}

/// [`survey_source`] with batches of `batch_bytes` (the benchmark compares
/// sizes).
#[doc(hidden)]
pub fn survey_source_batched(
    engine: &dyn Engine,
    source: &mut dyn StepSource,
    kind: &'static str,
    progress: bool,
    interrupt: Option<&Interrupt>,
    start: Instant,
    batch_bytes: usize,
) -> Result<SeriesReport> {
    let mut buffers = BufferUse::default();
    drive(
        engine,
        source,
        kind,
        progress,
        interrupt,
        start,
        batch_bytes,
        &mut buffers,
    )
}

/// How a series' per-step outputs ([`BatchMoves`]) were stored: the
/// driver hands the engine the moves of the batch surveyed two batches
/// before to fill again, so their buffers are made for the first two
/// batches only, whatever the length of the series.
#[derive(Debug, Default)]
struct BufferUse {
    /// Step parts ([`StepMoves`](crate::types::StepMoves)) made anew
    /// rather than filled again.
    fresh: usize,
}

/// The bytes of a step, checked against the series' shape.
fn view<'b>(info: &SeriesInfo, step: u64, bytes: &'b Bytes) -> Result<Matrix<'b>> {
    Matrix::new(info.dtype, info.rows, info.cols, bytes).ok_or_else(|| {
        Error::Usage(format!(
            "step {step} holds {} bytes, not {}×{} {}",
            bytes.len(),
            info.rows,
            info.cols,
            info.dtype
        ))
    })
}

/// A step for [`StepDiffer::push_moves`]: its rows, and its file when it
/// lies in one (the CPU engine reads it there).
fn step_data<'b>(info: &SeriesInfo, step: u64, bytes: &'b StepBytes) -> Result<StepData<'b>> {
    Ok(StepData {
        matrix: view(info, step, &bytes.values)?,
        file: (bytes.values.in_file()).map(|(map, offset)| (map as &dyn ReadAt, offset)),
    })
}

/// Compares the steps `bufs` (numbered `numbers`) with their predecessors
/// on the engine (`last`: the step before them and its number, `None` at
/// the first step), writing what moved at each into `out`. A quantized
/// tensor's steps go through the engine's rows (`rows`, kept for the next
/// batch), whose identity is then made that of the stored blocks.
#[allow(clippy::too_many_arguments)]
fn compare(
    differ: &mut dyn StepDiffer,
    info: &SeriesInfo,
    numbers: &[u64],
    last: Option<(u64, &StepBytes)>,
    bufs: &[StepBytes],
    out: &mut BatchMoves,
    rows: &mut Vec<StepRows>,
) -> Result<()> {
    let stored = bufs
        .iter()
        .chain(last.map(|l| l.1))
        .any(|b| b.stored.is_some());
    if !stored {
        let steps = (bufs.iter().zip(numbers))
            .map(|(b, &step)| step_data(info, step, b))
            .collect::<Result<Vec<StepData>>>()?;
        let prev = last.map(|(step, b)| step_data(info, step, b)).transpose()?;
        return differ.push_moves(prev.as_ref(), &steps, out);
    }
    let mats = (bufs.iter().zip(numbers))
        .map(|(b, &step)| view(info, step, &b.values))
        .collect::<Result<Vec<Matrix>>>()?;
    let prev = last
        .map(|(step, b)| view(info, step, &b.values))
        .transpose()?;
    differ.push_many_into(prev.as_ref(), &mats, rows)?;
    stored_identity(info, numbers, last.map(|l| l.1), bufs, rows)?;
    out.shape(1, bufs.len());
    for ((part, r), (b, &step)) in out.parts[0]
        .iter_mut()
        .zip(rows.iter())
        .zip(bufs.iter().zip(numbers))
    {
        match &b.stored {
            Some(s) => {
                let id = stored_rows(info, step, s)?;
                part.fill_from_rows(r, s, id.row_len());
            }
            None => part.fill_from_rows(r, &b.values, info.cols * info.dtype.size()),
        }
    }
    Ok(())
}

/// Surveys the steps `numbers` of a batch from what moved at each
/// (`moves`); the time it took, in ms.
fn survey_batch(tracker: &mut SeriesTracker, numbers: &[u64], moves: &BatchMoves) -> f64 {
    let t = Instant::now();
    for (k, &step) in numbers.iter().enumerate() {
        tracker.push_moves(step, moves.step(k));
    }
    ms(t)
}

/// [`survey_source`] in batches of `batch_bytes`, recording in `buffers`
/// how the outputs were stored.
#[allow(clippy::too_many_arguments)]
fn drive(
    engine: &dyn Engine,
    source: &mut dyn StepSource,
    kind: &'static str,
    progress: bool,
    interrupt: Option<&Interrupt>,
    start: Instant,
    batch_bytes: usize,
    buffers: &mut BufferUse,
) -> Result<SeriesReport> {
    let info = source.info().clone();
    let steps = source.steps().to_vec();
    let mut differ = engine.step_differ(info.dtype, info.rows, info.cols)?;
    let mut tracker = SeriesTracker::new(info.rows);
    let bar = if progress {
        Progress::for_steps(Some(steps.len() as u64), "steps")
    } else {
        Progress::hidden()
    }
    .with_interrupt(interrupt);
    let mut timings = SeriesTimings::default();
    let step_bytes = info.rows * info.cols * info.dtype.size();
    let batch = match source.slab_steps() {
        Some(s) if s.saturating_mul(step_bytes) <= SLAB_BATCH_BYTES => s,
        _ => batch_bytes / step_bytes.max(1),
    }
    .clamp(1, MAX_BATCH);
    // When a step alone fills a batch, overlapping the survey would hold
    // the moves of two steps (each the whole step when every token moves)
    // beside the survey's copy of a step: such batches are surveyed in
    // turn, reading the step where the engine keeps it, so the moves carry
    // no rows and the survey keeps no copy (51 MB steps where every token
    // moves: 104 MB and 0.34-0.41 s, against 297 MB and 0.38-0.42 s
    // overlapped; BENCHMARKS.md).
    let overlap = batch > 1 || step_bytes < batch_bytes;
    // What moved at each step of a batch is surveyed (on a thread of its
    // own) while the engine compares the next batch: the survey is
    // sequential, the engine uses every core. The survey keeps its own copy
    // of the current step, so a batch's steps are dropped once compared.
    let mut pending: Option<(usize, BatchMoves)> = None;
    // The moves of the batch surveyed before the pending one, given back to
    // the engine to fill again.
    let mut spare = BatchMoves::default();
    // The last step compared (the engine's `prev` for the next batch), a
    // copy of its own when it is part of a decoded slab, which it would
    // otherwise keep alive.
    let mut last: Option<(u64, StepBytes)> = None;
    // A quantized tensor's per-step rows, filled again batch after batch.
    let mut rows: Vec<StepRows> = Vec::new();
    let mut i = 0;
    while i < steps.len() || pending.is_some() {
        bar.check()?;
        // A batch ends where the source's slabs do, when it decodes them.
        let k = if i < steps.len() {
            source
                .batch_end(i, batch)
                .clamp(i + 1, i + batch)
                .min(steps.len())
                - i
        } else {
            0
        };
        let surveyed = &mut tracker;
        let (moves, bufs, survey_ms) = std::thread::scope(|scope| -> Result<_> {
            let survey = pending.as_ref().map(|(start, moves)| {
                let numbers = &steps[*start..*start + moves.steps];
                scope.spawn(move || survey_batch(surveyed, numbers, moves))
            });
            // Read while the survey runs (opening a checkpoint file is work).
            let t = Instant::now();
            let bufs = source.read_steps(i..i + k)?;
            timings.read += ms(t);
            let t = Instant::now();
            let mut moves = std::mem::take(&mut spare);
            // Surveyed in turn, a step is read where the engine keeps it
            // (not for stored blocks, the identity of a quantized tensor).
            moves.skip_rows = !overlap && bufs.iter().all(|b| b.stored.is_none());
            let given: usize = moves.parts.iter().map(Vec::len).sum();
            if k == 0 {
                moves.steps = 0;
            } else {
                let before = last.as_ref().map(|(step, b)| (*step, b));
                let numbers = &steps[i..i + k];
                compare(
                    differ.as_mut(),
                    &info,
                    numbers,
                    before,
                    &bufs,
                    &mut moves,
                    &mut rows,
                )?;
            }
            let made: usize = moves.parts.iter().map(Vec::len).sum();
            buffers.fresh += made.saturating_sub(given);
            timings.diff += ms(t);
            let t = Instant::now();
            let survey_ms = match survey {
                Some(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                None => 0.0,
            };
            timings.wait += ms(t);
            Ok((moves, bufs, survey_ms))
        })?;
        let mut bufs = bufs;
        timings.survey += survey_ms;
        if let Some((_, done)) = &pending {
            bar.inc(done.steps as u64);
        }
        let done = std::mem::replace(&mut pending, (k > 0).then_some((i, moves)));
        if let Some((_, moves)) = done {
            spare = moves;
        }
        if !overlap {
            // Steps of a batch's size or more: the batch is surveyed now,
            // so memory holds one step's moves rather than two.
            if let Some((start, moves)) = pending.take() {
                let numbers = &steps[start..start + moves.steps];
                let here = differ.last_step().filter(|_| moves.skip_rows);
                match here.and_then(|b| RowIdentity::stored(b, info.rows)) {
                    // The batch is one step, the one the engine keeps.
                    Some(id) if numbers.len() == 1 => {
                        let t = Instant::now();
                        tracker.push_moves_in(numbers[0], moves.step(0), id);
                        timings.survey += ms(t);
                    }
                    _ => timings.survey += survey_batch(&mut tracker, numbers, &moves),
                }
                bar.inc(moves.steps as u64);
                spare = moves;
            }
        }
        if let Some(b) = bufs.pop() {
            let b = StepBytes {
                values: b.values.detached(),
                stored: b.stored.map(Bytes::detached),
            };
            last = Some((steps[i + k - 1], b));
        }
        drop(bufs);
        // Every step of this batch is compared and none is read again (the
        // last is kept as `last`): a mapped source gives their pages back, a
        // decoding one its slab.
        i += k;
        if k > 0 {
            source.release_before(i);
        }
    }
    bar.finish();
    let series = tracker.finish();
    let mut notices = source.notices();
    notices.extend(tokenizer_too_large(source.tokens(), info.rows));
    timings.total = ms(start);
    let inputs = source
        .inputs()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(dress(
        engine.device(),
        &info,
        inputs,
        kind,
        series,
        source.tokens(),
        notices,
        timings,
    ))
}

/// A series as its report: the token strings of the tokens it names, and
/// what the steps were read from.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dress(
    device: crate::types::DeviceInfo,
    info: &SeriesInfo,
    inputs: Vec<String>,
    kind: &'static str,
    series: crate::survey::tracker::Series,
    names: Option<&TokenNames>,
    notices: Vec<String>,
    timings: SeriesTimings,
) -> SeriesReport {
    let tokens = names.map(|t| {
        let ids = series
            .events
            .iter()
            .flat_map(|e| e.named_tokens())
            .chain(series.frozen.iter().flatten().copied());
        let mut strings = BTreeMap::new();
        for id in ids {
            if let Some(tok) = t.vocab.get(id) {
                strings.entry(id).or_insert_with(|| tok.text.clone());
            }
        }
        strings
    });
    SeriesReport {
        schema: SERIES_SCHEMA,
        inputs,
        kind,
        format: info.format,
        tensor: info.tensor.clone(),
        dtype: info.dtype.name().to_string(),
        stored_dtype: info.stored_dtype.clone(),
        shape: [series.steps.len(), info.rows, info.cols],
        device,
        series,
        tokenizer: names.map(|t| TokenizerInfo {
            path: t.path.display().to_string(),
            kind: t.vocab.kind,
            vocab_size: t.vocab.vocab_size(),
        }),
        tokens,
        timings_ms: timings,
        notices,
        token_display: token_display(info.rows, names),
    }
}

#[cfg(test)]
mod tests;
