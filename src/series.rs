//! A checkpoint series end to end: steps read one at a time
//! ([`load::series`]), each compared with the one before on the engine
//! ([`Engine::step_differ`]), followed by the survey
//! ([`survey::series`]), and dressed as a [`SeriesReport`].
//!
//! Memory holds two steps (the previous one and the current one) plus what
//! a source caches (one slab of chunks for a chunked HDF5 trajectory),
//! whatever the number of steps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::engine::{self, DeviceChoice, Engine, GpuOptions};
use crate::error::{Error, Result};
use crate::load::series::{open_series, StepSelection, StepSource};
use crate::load::trajectory::open_trajectory;
use crate::load::LoadOptions;
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
    let mut prev = None;
    for (i, &step) in steps.iter().enumerate() {
        let t = Instant::now();
        let bytes = source.read(i)?;
        timings.read += ms(t);
        let m = Matrix::new(info.dtype, info.rows, info.cols, &bytes).ok_or_else(|| {
            Error::Usage(format!(
                "step {step} holds {} bytes, not {}×{} {}",
                bytes.len(),
                info.rows,
                info.cols,
                info.dtype
            ))
        })?;
        let p = prev
            .as_ref()
            .and_then(|b: &crate::load::Bytes| Matrix::new(info.dtype, info.rows, info.cols, b));
        let t = Instant::now();
        let rows = differ.push(p.as_ref(), &m)?;
        timings.diff += ms(t);
        let t = Instant::now();
        tracker.push(step, &m, &rows);
        timings.survey += ms(t);
        prev = Some(bytes);
        bar.inc(1);
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
