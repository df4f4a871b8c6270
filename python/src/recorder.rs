//! `SeriesRecorder`: the library's recorder, fed from a training loop.

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::PyUntypedArray;
use pyo3::prelude::*;

use crate::array::{dtype_named, matrix_of};
use crate::report::NativeSeries;
use crate::{device_choice, work};

/// What a recorder holds between pushes.
struct State {
    recorder: singularity_gpu::Recorder,
    /// The dtype the first step was stored as (`U16` for bf16 bits pushed
    /// as uint16), for the result's `stored_dtype`.
    stored: Option<String>,
    steps: usize,
    notice: Option<String>,
}

/// A training run's steps, compared one with the next on the engine as they come.
#[pyclass(frozen, module = "singularity_gpu._native")]
pub struct Recorder {
    state: Mutex<State>,
}

impl Recorder {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut State) -> singularity_gpu::Result<T> + Send,
    ) -> PyResult<T> {
        work::run(py, |_| {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut state)
        })
    }
}

#[pymethods]
impl Recorder {
    /// A recorder on the shared engine for `device`, naming tokens from `tokenizer`.
    #[new]
    #[pyo3(signature = (*, device="auto".to_string(), tokenizer=None))]
    fn new(py: Python<'_>, device: String, tokenizer: Option<PathBuf>) -> PyResult<Self> {
        let (engine, notice) = work::engine(py, device_choice(&device)?)?;
        let tokens = match tokenizer {
            Some(p) => Some(work::run(py, |_| singularity_gpu::TokenNames::read(&p))?),
            None => None,
        };
        Ok(Self {
            state: Mutex::new(State {
                recorder: singularity_gpu::Recorder::new(engine, tokens),
                stored: None,
                steps: 0,
                notice,
            }),
        })
    }

    /// Takes the matrix of training step `step` (a C-contiguous array, read in place).
    fn push(
        &self,
        py: Python<'_>,
        step: u64,
        array: &Bound<'_, PyUntypedArray>,
        dtype: &str,
        stored: &str,
    ) -> PyResult<()> {
        let (m, _) = matrix_of(array, dtype_named(dtype)?)?;
        let stored = stored.to_string();
        self.with(py, move |s| {
            s.recorder.push(step, &m)?;
            s.stored.get_or_insert(stored);
            s.steps += 1;
            Ok(())
        })
    }

    /// The series of the steps pushed so far.
    fn result(&self, py: Python<'_>) -> PyResult<NativeSeries> {
        let (mut report, stored, notice) = self.with(py, |s| {
            Ok((s.recorder.result()?, s.stored.clone(), s.notice.clone()))
        })?;
        if let Some(stored) = stored {
            report.stored_dtype = stored;
        }
        report.notices.splice(0..0, notice);
        Ok(NativeSeries::new(report))
    }

    /// Steps pushed so far.
    #[getter]
    fn steps(&self) -> usize {
        self.state.lock().map_or(0, |s| s.steps)
    }
}
