//! The native half of the `singularity_gpu` Python package: the library's
//! surveys on arrays read in place and on files, with the GIL released while
//! the engine works. The Python half (`python/singularity_gpu/__init__.py`)
//! turns whatever the user holds into a C-contiguous array first.

mod array;
mod recorder;
mod report;
mod work;

use std::path::PathBuf;
use std::time::Instant;

use numpy::PyUntypedArray;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use singularity_gpu::{
    DeviceChoice, Dtype, Equality, GroupOptions, IndicatorOptions, LoadOptions, NearThreshold,
    PairOptions, SeriesInput, SeriesOptions, StepSelection, SurveyOptions, TokenNames,
};

pub use report::{NativeReport, NativeSeries};

pyo3::create_exception!(
    _native,
    SingularityError,
    PyValueError,
    "Bad input or options: the message is the command line's one-line error."
);

/// A library error as the Python exception it stands for: bad input is a
/// [`SingularityError`] (a `ValueError`), a device failing a `RuntimeError`.
pub(crate) fn to_py(e: singularity_gpu::Error) -> PyErr {
    if e.is_user_error() {
        SingularityError::new_err(e.to_string())
    } else {
        PyRuntimeError::new_err(e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> PyErr {
    SingularityError::new_err(msg.into())
}

/// `device=`: "auto", "gpu" or "cpu".
pub(crate) fn device_choice(device: &str) -> PyResult<DeviceChoice> {
    match device {
        "auto" => Ok(DeviceChoice::Auto),
        "gpu" => Ok(DeviceChoice::Gpu),
        "cpu" => Ok(DeviceChoice::Cpu),
        other => Err(usage(format!(
            "device: expected \"auto\", \"gpu\" or \"cpu\", got {other:?}"
        ))),
    }
}

/// `as_=`: "bf16" or "f16" (how to read 16-bit integers).
pub(crate) fn as_dtype(as_: Option<&str>) -> PyResult<Option<Dtype>> {
    match as_ {
        None => Ok(None),
        Some("bf16") => Ok(Some(Dtype::BF16)),
        Some("f16") => Ok(Some(Dtype::F16)),
        Some(other) => Err(usage(format!(
            "as_: expected \"bf16\" or \"f16\", got {other:?}"
        ))),
    }
}

/// A threshold as the command line takes it: finite and ≥ 0.
fn non_negative(name: &str, x: Option<f64>) -> PyResult<Option<f64>> {
    match x {
        Some(v) if !(v.is_finite() && v >= 0.0) => Err(usage(format!(
            "{name}: expected a finite number >= 0, got {v}"
        ))),
        _ => Ok(x),
    }
}

/// The keywords of a one-matrix survey, as the command line's flags.
#[derive(Clone, Debug, Default)]
pub(crate) struct Keywords {
    pub key: Option<String>,
    pub as_: Option<String>,
    pub device: String,
    pub nearest: bool,
    pub near_l2: Option<f64>,
    pub near_rel: Option<f64>,
    pub near_ulp: Option<u64>,
    pub indicators: bool,
    pub reference_tokens: Option<String>,
    pub tokenizer: Option<PathBuf>,
    pub revision: Option<String>,
    pub unembedding: bool,
    pub numeric_equality: bool,
}

impl Keywords {
    /// The options the command line would build from the same flags, checked as it checks them.
    fn options(&self) -> PyResult<SurveyOptions> {
        let given = [
            self.near_l2.is_some(),
            self.near_rel.is_some(),
            self.near_ulp.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(usage(
                "near_l2, near_rel and near_ulp exclude each other: give one",
            ));
        }
        if self.key.is_some() && self.unembedding {
            return Err(usage("key and unembedding exclude each other: give one"));
        }
        if self.reference_tokens.is_some() && !self.indicators {
            return Err(usage("reference_tokens goes with indicators=True"));
        }
        if self.near_ulp.is_some_and(|k| k > 1 << 53) {
            return Err(usage("near_ulp: expected at most 2^53"));
        }
        let near = match (
            non_negative("near_l2", self.near_l2)?,
            non_negative("near_rel", self.near_rel)?,
            self.near_ulp,
        ) {
            (Some(r), _, _) => Some(NearThreshold::L2(r)),
            (_, Some(f), _) => Some(NearThreshold::Rel(f)),
            (_, _, Some(k)) => Some(NearThreshold::Ulp(k)),
            _ => None,
        };
        let indicators = match (self.indicators, &self.reference_tokens) {
            (false, _) => None,
            (true, None) => Some(IndicatorOptions::default()),
            (true, Some(arg)) => Some(IndicatorOptions {
                reference: Some(
                    singularity_gpu::survey::indicators::parse_reference_tokens(arg)
                        .map_err(to_py)?,
                ),
            }),
        };
        Ok(SurveyOptions {
            load: LoadOptions {
                key: self.key.clone(),
                reinterpret: as_dtype(self.as_.as_deref())?,
                unembedding: self.unembedding,
                revision: self.revision.clone(),
                tokenizer: self.tokenizer.clone(),
            },
            device: device_choice(&self.device)?,
            gpu: Default::default(),
            group: GroupOptions {
                equality: if self.numeric_equality {
                    Equality::Numeric
                } else {
                    Equality::Bitwise
                },
                ..Default::default()
            },
            pairs: PairOptions {
                nearest: self.nearest,
                near,
            },
            progress: false,
            indicators,
            interrupt: None,
        })
    }
}

/// Surveys the input at `path` (a file, a model folder, `ORG/NAME`).
#[pyfunction]
#[pyo3(signature = (path, *, key=None, as_=None, device="auto".to_string(), nearest=false,
    near_l2=None, near_rel=None, near_ulp=None, indicators=false, reference_tokens=None,
    tokenizer=None, revision=None, unembedding=false, numeric_equality=false))]
#[allow(clippy::too_many_arguments)]
fn survey_path(
    py: Python<'_>,
    path: PathBuf,
    key: Option<String>,
    as_: Option<String>,
    device: String,
    nearest: bool,
    near_l2: Option<f64>,
    near_rel: Option<f64>,
    near_ulp: Option<u64>,
    indicators: bool,
    reference_tokens: Option<String>,
    tokenizer: Option<PathBuf>,
    revision: Option<String>,
    unembedding: bool,
    numeric_equality: bool,
) -> PyResult<NativeReport> {
    let kw = Keywords {
        key,
        as_,
        device,
        nearest,
        near_l2,
        near_rel,
        near_ulp,
        indicators,
        reference_tokens,
        tokenizer,
        revision,
        unembedding,
        numeric_equality,
    };
    let opts = kw.options()?;
    let (engine, notice) = work::engine(py, opts.device)?;
    let mut report = work::run(py, |interrupt| {
        let opts = SurveyOptions {
            interrupt: Some(interrupt),
            ..opts
        };
        singularity_gpu::survey_file_with(engine.as_ref(), &path, &opts)
    })?;
    report.notices.splice(0..0, notice);
    Ok(NativeReport::new(report, None))
}

/// Surveys a 2-D array read in place (C-contiguous, little-endian; the
/// Python half copies any other once): `dtype` is how its elements are
/// read (`F32`, `F16`, `BF16`, `F64`), `stored` what they are (`U16` for
/// bf16 bits held as uint16), `label` the report's `file`.
#[pyfunction]
#[pyo3(signature = (array, dtype, stored, label, *, device="auto".to_string(), nearest=false,
    near_l2=None, near_rel=None, near_ulp=None, indicators=false, reference_tokens=None,
    tokenizer=None, numeric_equality=false))]
#[allow(clippy::too_many_arguments)]
fn survey_array(
    py: Python<'_>,
    array: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    stored: String,
    label: String,
    device: String,
    nearest: bool,
    near_l2: Option<f64>,
    near_rel: Option<f64>,
    near_ulp: Option<u64>,
    indicators: bool,
    reference_tokens: Option<String>,
    tokenizer: Option<PathBuf>,
    numeric_equality: bool,
) -> PyResult<NativeReport> {
    let kw = Keywords {
        device,
        nearest,
        near_l2,
        near_rel,
        near_ulp,
        indicators,
        reference_tokens,
        numeric_equality,
        ..Default::default()
    };
    let opts = kw.options()?;
    let (m, address) = array::matrix_of(array, array::dtype_named(dtype)?)?;
    let (engine, notice) = work::engine(py, opts.device)?;
    let mut report = work::run(py, |interrupt| {
        let tokens = match &tokenizer {
            Some(p) => Some(TokenNames::read(p)?),
            None => None,
        };
        let opts = SurveyOptions {
            interrupt: Some(interrupt),
            ..opts
        };
        singularity_gpu::survey_matrix(engine.as_ref(), &m, &opts, tokens.as_ref(), &label)
    })?;
    report.stored_dtype = stored;
    report.notices.splice(0..0, notice);
    Ok(NativeReport::new(report, Some(address)))
}

/// Surveys a checkpoint series: `paths` (a folder, or the checkpoint files)
/// as `--series`, or with `trajectory` one 3-D tensor as `--trajectory`.
#[pyfunction]
#[pyo3(signature = (paths, *, trajectory=false, key=None, as_=None, steps=None, tokenizer=None,
    unembedding=false, device="auto".to_string()))]
#[allow(clippy::too_many_arguments)]
fn survey_series(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    trajectory: bool,
    key: Option<String>,
    as_: Option<String>,
    steps: Option<String>,
    tokenizer: Option<PathBuf>,
    unembedding: bool,
    device: String,
) -> PyResult<NativeSeries> {
    if key.is_some() && unembedding {
        return Err(usage("key and unembedding exclude each other: give one"));
    }
    if trajectory && unembedding {
        return Err(usage(
            "unembedding does not go with a trajectory (one tensor, no output head)",
        ));
    }
    let input = match (trajectory, paths.as_slice()) {
        (true, [path]) => SeriesInput::Trajectory(path.clone()),
        (true, _) => return Err(usage("a trajectory is one file")),
        (false, []) => return Err(usage("a series needs a folder or checkpoint files")),
        (false, _) => SeriesInput::Files(paths),
    };
    let steps = match steps.as_deref() {
        None => StepSelection::default(),
        Some(s) => StepSelection::parse(s).map_err(|e| usage(format!("steps: {e}")))?,
    };
    let opts = SeriesOptions {
        load: LoadOptions {
            key,
            reinterpret: as_dtype(as_.as_deref())?,
            unembedding,
            revision: None,
            tokenizer,
        },
        steps,
        device: device_choice(&device)?,
        gpu: Default::default(),
        progress: false,
        interrupt: None,
    };
    let (engine, notice) = work::engine(py, opts.device)?;
    let kind = if trajectory { "trajectory" } else { "series" };
    let mut report = work::run(py, |interrupt| {
        let start = Instant::now();
        let mut source = singularity_gpu::run::series::open(&input, &opts)?;
        singularity_gpu::run::series::survey_source(
            engine.as_ref(),
            source.as_mut(),
            kind,
            false,
            Some(&interrupt),
            start,
        )
    })?;
    report.notices.splice(0..0, notice);
    Ok(NativeSeries::new(report))
}

/// A benchmark hook: the seconds of each of `reps` surveys of the array's
/// bytes by the library's `survey_matrix`, timed in Rust alone (no Python,
/// no thread of our own), for `python/benches/bench_survey.py`.
#[pyfunction]
fn _time_library(
    py: Python<'_>,
    array: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    reps: usize,
    device: String,
) -> PyResult<Vec<f64>> {
    let (m, _) = array::matrix_of(array, array::dtype_named(dtype)?)?;
    let (engine, _) = work::engine(py, device_choice(&device)?)?;
    let opts = SurveyOptions::default();
    py.detach(|| {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                let report = singularity_gpu::survey_matrix(engine.as_ref(), &m, &opts, None, "")?;
                drop(report);
                Ok(t.elapsed().as_secs_f64())
            })
            .collect::<singularity_gpu::Result<Vec<f64>>>()
    })
    .map_err(to_py)
}

/// The GPU adapters wgpu finds here (software ones included), best first,
/// as JSON: `[{kind, adapter, backend}, ...]`.
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<String> {
    let list = work::run(py, |_| Ok(singularity_gpu::engine::adapters()))?;
    serde_json::to_string(&list).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// The native module: `singularity_gpu._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SingularityError", m.py().get_type::<SingularityError>())?;
    m.add_class::<NativeReport>()?;
    m.add_class::<NativeSeries>()?;
    m.add_class::<recorder::Recorder>()?;
    m.add_function(wrap_pyfunction!(survey_path, m)?)?;
    m.add_function(wrap_pyfunction!(survey_array, m)?)?;
    m.add_function(wrap_pyfunction!(survey_series, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(work::_test_panic, m)?)?;
    m.add_function(wrap_pyfunction!(_time_library, m)?)?;
    Ok(())
}
