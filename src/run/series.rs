//! A checkpoint series end to end: steps read one at a time
//! ([`load::steps`](crate::load::steps)), each compared with the one before on the engine
//! ([`Engine::step_differ`]), followed by the survey
//! ([`survey::tracker`](crate::survey::tracker)), and dressed as a [`SeriesReport`].
//!
//! Memory holds one batch of steps (as many as fit in 32 MB, at most 64,
//! at least one) and the step before it, plus what a source caches (one
//! slab of chunks for a chunked HDF5 trajectory), whatever the number of
//! steps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::ms;
use crate::engine::{self, DeviceChoice, Engine, GpuOptions, StepRows};
use crate::error::{Error, Result};
use crate::load::steps::trajectory::open_trajectory;
use crate::load::steps::{open_series, SeriesInfo, StepSelection, StepSource};
use crate::load::{Bytes, LoadOptions};
use crate::matrix::Matrix;
use crate::progress::Progress;
use crate::report::timeline::{SeriesReport, SeriesTimings, SERIES_SCHEMA};
use crate::report::{TokenDisplay, TokenizerInfo};
use crate::survey::tracker::SeriesTracker;

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
    // A batch is surveyed (on a thread of its own) while the engine compares
    // the next one: the survey is sequential, the engine uses every core.
    let mut pending: Option<(usize, Vec<Bytes>, Vec<StepRows>)> = None;
    let mut i = 0;
    while i < steps.len() || pending.is_some() {
        let k = batch.min(steps.len() - i);
        let t = Instant::now();
        let bufs = (i..i + k)
            .map(|j| source.read(j))
            .collect::<Result<Vec<Bytes>>>()?;
        timings.read += ms(t);
        let tracker = &mut tracker;
        let (rows, survey_ms) = std::thread::scope(|scope| -> Result<_> {
            let survey = pending.as_ref().map(|(start, bufs, rows)| {
                let steps = &steps[*start..*start + bufs.len()];
                let info = &info;
                scope.spawn(move || -> Result<f64> {
                    let t = Instant::now();
                    for ((b, r), &step) in bufs.iter().zip(rows).zip(steps) {
                        tracker.push(step, &view(info, step, b)?, r);
                    }
                    Ok(ms(t))
                })
            });
            let mats = bufs
                .iter()
                .zip(&steps[i..i + k])
                .map(|(b, &step)| view(&info, step, b))
                .collect::<Result<Vec<Matrix>>>()?;
            let before = match &pending {
                Some((start, bufs, _)) => bufs
                    .last()
                    .map(|b| view(&info, steps[start + bufs.len() - 1], b))
                    .transpose()?,
                None => None,
            };
            let t = Instant::now();
            let rows = if mats.is_empty() {
                Vec::new()
            } else {
                differ.push_many(before.as_ref(), &mats)?
            };
            timings.diff += ms(t);
            let survey_ms = match survey {
                Some(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?,
                None => 0.0,
            };
            Ok((rows, survey_ms))
        })?;
        timings.survey += survey_ms;
        if let Some((_, done, _)) = &pending {
            bar.inc(done.len() as u64);
        }
        pending = (k > 0).then_some((i, bufs, rows));
        i += k;
    }
    bar.finish();
    let series = tracker.finish();
    let names = source.tokens();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Dtype;
    use crate::engine::cpu::steps::CpuStepDiffer;
    use crate::engine::cpu::CpuEngine;
    use crate::engine::StepDiffer;
    use crate::load::steps::SeriesInfo;
    use crate::load::TokenNames;

    /// Steps held in memory.
    struct Steps {
        info: SeriesInfo,
        numbers: Vec<u64>,
        data: Vec<Vec<u8>>,
    }

    impl StepSource for Steps {
        fn info(&self) -> &SeriesInfo {
            &self.info
        }
        fn steps(&self) -> &[u64] {
            &self.numbers
        }
        fn inputs(&self) -> Vec<PathBuf> {
            Vec::new()
        }
        fn tokens(&self) -> Option<&TokenNames> {
            None
        }
        fn read(&mut self, i: usize) -> Result<Bytes> {
            Ok(Bytes::owned(self.data[i].clone()))
        }
    }

    #[test]
    fn batches_and_the_overlapped_survey_give_the_series_of_one_step_at_a_time() {
        // 200 steps (four batches of at most 64), 12 tokens × 1 f32, a few
        // tokens moving among three values each step.
        let (n, count) = (12, 200);
        let mut z = 99u64;
        let mut next = move || {
            z = z
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (z >> 33) as usize
        };
        let mut v = vec![1f32; n];
        let mut data = Vec::new();
        for _ in 0..count {
            for _ in 0..next() % 3 {
                v[next() % n] = (next() % 3) as f32;
            }
            data.push(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        }
        let info = SeriesInfo {
            tensor: "W".into(),
            stored_dtype: "F32".into(),
            format: "test",
            dtype: Dtype::F32,
            rows: n,
            cols: 1,
        };
        let numbers: Vec<u64> = (0..count as u64).map(|s| s * 5).collect();
        let mut source = Steps {
            info,
            numbers: numbers.clone(),
            data: data.clone(),
        };
        let got = survey_source(&CpuEngine, &mut source, "trajectory", false, Instant::now())
            .unwrap()
            .series;

        let mut differ = CpuStepDiffer::new(Dtype::F32, n, 1);
        let mut tracker = SeriesTracker::new(n);
        for (k, b) in data.iter().enumerate() {
            let m = Matrix::new(Dtype::F32, n, 1, b).unwrap();
            let prev = k
                .checked_sub(1)
                .map(|j| Matrix::new(Dtype::F32, n, 1, &data[j]).unwrap());
            let rows = differ.push(prev.as_ref(), &m).unwrap();
            tracker.push(numbers[k], &m, &rows);
        }
        let want = tracker.finish();
        assert_eq!(got, want);
        assert!(
            got.events.len() > 10,
            "the series has events: {:?}",
            got.events.len()
        );
    }
}
