//! A checkpoint series end to end: steps read one at a time
//! ([`load::series`]), each compared with the one before on the engine
//! ([`Engine::step_differ`]), followed by the survey
//! ([`survey::series`]), and dressed as a [`SeriesReport`].
//!
//! Memory holds one batch of steps (as many as fit in 32 MB, at most 64,
//! at least one) and the step before it, plus what a source caches (one
//! slab of chunks for a chunked HDF5 trajectory), whatever the number of
//! steps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::engine::{self, DeviceChoice, Engine, GpuOptions};
use crate::error::{Error, Result};
use crate::load::series::{open_series, SeriesInfo, StepSelection, StepSource};
use crate::load::trajectory::open_trajectory;
use crate::load::{Bytes, LoadOptions};
use crate::matrix::Matrix;
use crate::progress::Progress;
use crate::report::series::{SeriesReport, SeriesTimings, SERIES_SCHEMA};
use crate::report::{TokenDisplay, TokenizerInfo};
use crate::survey::series::SeriesTracker;

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
}

/// Bytes of steps held at once: the steps of a batch are compared with
/// their predecessors in parallel (a small step is too little work to split
/// across threads). Never fewer than one step plus the one before.
const BATCH_BYTES: usize = 32 << 20;
/// Steps in one batch at most.
const MAX_BATCH: usize = 64;

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Opens the input's steps.
pub fn open(input: &SeriesInput, opts: &SeriesOptions) -> Result<Box<dyn StepSource>> {
    match input {
        SeriesInput::Files(paths) => open_series(paths, &opts.load, &opts.steps),
        SeriesInput::Trajectory(path) => open_trajectory(path, &opts.load, &opts.steps),
    }
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
    let mut report = survey_source(engine.as_ref(), source.as_mut(), kind, opts.progress, start)?;
    report.notices.splice(0..0, notice);
    Ok(report)
}

/// Surveys the steps of `source` on `engine`; `start` is when opening began.
pub fn survey_source(
    engine: &dyn Engine,
    source: &mut dyn StepSource,
    kind: &'static str,
    progress: bool,
    start: Instant,
) -> Result<SeriesReport> {
    let info = source.info().clone();
    let steps = source.steps().to_vec();
    let mut differ = engine.step_differ(info.dtype, info.rows, info.cols)?;
    let mut tracker = SeriesTracker::new(info.rows);
    let bar = if progress {
        Progress::for_work(steps.len() as u64, "steps")
    } else {
        Progress::hidden()
    };
    let mut timings = SeriesTimings::default();
    let step_bytes = info.rows * info.cols * info.dtype.size();
    let batch = (BATCH_BYTES / step_bytes.max(1)).clamp(1, MAX_BATCH);
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
    let mut prev: Option<Bytes> = None;
    let mut i = 0;
    while i < steps.len() {
        let k = batch.min(steps.len() - i);
        let t = Instant::now();
        let bufs = (i..i + k)
            .map(|j| source.read(j))
            .collect::<Result<Vec<Bytes>>>()?;
        timings.read += ms(t);
        let mats = bufs
            .iter()
            .zip(&steps[i..i + k])
            .map(|(b, &step)| view(&info, step, b))
            .collect::<Result<Vec<Matrix>>>()?;
        let before = prev
            .as_ref()
            .map(|b| view(&info, steps[i - 1], b))
            .transpose()?;
        let t = Instant::now();
        let rows = differ.push_many(before.as_ref(), &mats)?;
        timings.diff += ms(t);
        let t = Instant::now();
        for ((m, r), &step) in mats.iter().zip(&rows).zip(&steps[i..i + k]) {
            tracker.push(step, m, r);
        }
        timings.survey += ms(t);
        bar.inc(k as u64);
        drop(mats);
        prev = bufs.into_iter().last();
        i += k;
    }
    bar.finish();
    let series = tracker.finish();
    let names = source.tokens();
    let tokens = names.map(|t| {
        let ids = series
            .events
            .iter()
            .flat_map(|e| e.token_ids.iter())
            .chain(series.frozen.iter().flatten());
        let mut strings = BTreeMap::new();
        for &id in ids {
            if let Some(tok) = t.vocab.get(id) {
                strings.entry(id).or_insert_with(|| tok.text.clone());
            }
        }
        strings
    });
    let mut notices = source.notices();
    if let Some(t) = names {
        let size = t.vocab.vocab_size();
        if size > info.rows {
            notices.push(format!(
                "note: the tokenizer {} has {size} tokens, more than the {} rows of a step: is it this model's tokenizer?",
                t.path.display(),
                info.rows
            ));
        }
    }
    timings.total = ms(start);
    Ok(SeriesReport {
        schema: SERIES_SCHEMA,
        inputs: source
            .inputs()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        kind,
        format: info.format,
        tensor: info.tensor.clone(),
        dtype: info.dtype.name().to_string(),
        stored_dtype: info.stored_dtype.clone(),
        shape: [steps.len(), info.rows, info.cols],
        device: engine.device(),
        series,
        tokenizer: names.map(|t| TokenizerInfo {
            path: t.path.display().to_string(),
            kind: t.vocab.kind,
            vocab_size: t.vocab.vocab_size(),
        }),
        tokens,
        timings_ms: timings,
        notices,
        token_display: if names.is_some() {
            TokenDisplay::Strings
        } else if info.rows <= 256 {
            TokenDisplay::Bytes
        } else {
            TokenDisplay::Ids
        },
    })
}
