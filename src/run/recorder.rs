//! A series pushed one step at a time by the caller (a training loop that
//! hands over its embedding every step), rather than read from checkpoints:
//! the same engine differ and tracker as `--series`, so pushing a run's
//! steps gives the report `--series` gives on its checkpoints.

use std::time::Instant;

use super::ms;
use super::series::dress;
use crate::engine::{SharedEngine, StepDiffer};
use crate::error::{Error, Result};
use crate::load::steps::SeriesInfo;
use crate::load::TokenNames;
use crate::matrix::Matrix;
use crate::report::timeline::{SeriesReport, SeriesTimings};
use crate::survey::tracker::{RowIdentity, SeriesTracker};

/// Steps pushed so far, and what the next push compares with.
struct Started {
    info: SeriesInfo,
    differ: Box<dyn StepDiffer + Send>,
    tracker: SeriesTracker,
    /// The previous step's bytes, for a differ that keeps no copy of its
    /// own: the caller's tensor may change in place before the next push.
    prev: Option<Vec<u8>>,
    last_step: u64,
    /// Steps taken so far.
    pushed: u64,
}

/// Records a series pushed step by step ([`Recorder::push`]) and reports it
/// ([`Recorder::result`]) as `--series` would.
pub struct Recorder {
    engine: SharedEngine,
    tokens: Option<TokenNames>,
    state: Option<Started>,
    timings: SeriesTimings,
    start: Instant,
}

impl Recorder {
    /// A recorder on `engine` (see [`crate::engine::shared`]), naming tokens by `tokens`.
    pub fn new(engine: SharedEngine, tokens: Option<TokenNames>) -> Self {
        Recorder {
            engine,
            tokens,
            state: None,
            timings: SeriesTimings::default(),
            start: Instant::now(),
        }
    }

    /// Takes step `step` (greater than the step pushed before). The first
    /// push fixes the shape and dtype; every later one must have them. The
    /// matrix is read during the call only.
    pub fn push(&mut self, step: u64, m: &Matrix) -> Result<()> {
        let t = Instant::now();
        let state = match &mut self.state {
            Some(s) => {
                if step <= s.last_step {
                    return Err(Error::Usage(format!(
                        "step {step} pushed after step {}: steps must increase",
                        s.last_step
                    )));
                }
                let i = &s.info;
                if (m.dtype, m.rows, m.cols) != (i.dtype, i.rows, i.cols) {
                    return Err(Error::Usage(format!(
                        "step {step} is {}×{} {}, the series {}×{} {}",
                        m.rows, m.cols, m.dtype, i.rows, i.cols, i.dtype
                    )));
                }
                s
            }
            None => {
                let differ = self.engine.step_differ(m.dtype, m.rows, m.cols)?;
                self.state.insert(Started {
                    info: SeriesInfo {
                        tensor: "pushed".into(),
                        stored_dtype: m.dtype.name().to_string(),
                        format: "memory",
                        dtype: m.dtype,
                        rows: m.rows,
                        cols: m.cols,
                    },
                    differ,
                    tracker: SeriesTracker::new(m.rows),
                    prev: None,
                    last_step: step,
                    pushed: 0,
                })
            }
        };
        let first = state.pushed == 0;
        let keeps = state.differ.keeps_previous();
        let rows = {
            let prev = match (&state.prev, first, keeps) {
                (_, true, _) => None,
                // The differ holds the previous step: `prev` only says there was one.
                (_, false, true) => Some(*m),
                (Some(bytes), false, false) => Matrix::new(m.dtype, m.rows, m.cols, bytes),
                (None, false, false) => None,
            };
            state.differ.push(prev.as_ref(), m)?
        };
        self.timings.diff += ms(t);
        let t = Instant::now();
        state.tracker.push(step, RowIdentity::of(m), &rows);
        if !keeps {
            match &mut state.prev {
                Some(buf) => buf.copy_from_slice(m.bytes),
                None => state.prev = Some(m.bytes.to_vec()),
            }
        }
        state.last_step = step;
        state.pushed += 1;
        self.timings.survey += ms(t);
        Ok(())
    }

    /// The series so far, as `--series` reports it (`inputs` is empty,
    /// `kind` is `recorded`). An error before the first push.
    pub fn result(&self) -> Result<SeriesReport> {
        let Some(state) = &self.state else {
            return Err(Error::Usage("no step was pushed".into()));
        };
        let series = state.tracker.clone().finish();
        let mut timings = self.timings;
        timings.total = ms(self.start);
        Ok(dress(
            self.engine.device(),
            &state.info,
            Vec::new(),
            "recorded",
            series,
            self.tokens.as_ref(),
            Vec::new(),
            timings,
        ))
    }
}
