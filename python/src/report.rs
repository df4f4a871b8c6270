//! The results Python holds: the library's [`Report`] and [`SeriesReport`],
//! rendered on demand (JSON, the HTML page, text) and with their large
//! per-token arrays handed over as numpy arrays.

use numpy::PyArray1;
use pyo3::prelude::*;

use singularity_gpu::report::html::HtmlExporter;
use singularity_gpu::report::json::JsonExporter;
use singularity_gpu::report::text::TextExporter;
use singularity_gpu::report::Exporter;
use singularity_gpu::{Report, SeriesReport};

/// Compact JSON of a result: the same document as the command line's
/// `--json`, without the indentation.
fn compact<R: serde::Serialize>(r: &R) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// One matrix surveyed (`singularity_gpu.Survey` wraps it).
#[pyclass(frozen, module = "singularity_gpu._native")]
pub struct NativeReport {
    report: Report,
    /// Where the array surveyed was read from, for arrays read in place.
    address: Option<usize>,
}

impl NativeReport {
    pub fn new(report: Report, address: Option<usize>) -> Self {
        Self { report, address }
    }
}

#[pymethods]
impl NativeReport {
    /// The report as compact JSON (the command line's `--json` document).
    fn json(&self) -> String {
        compact(&self.report)
    }

    /// The report exactly as the command line's `--json` prints it.
    fn pretty_json(&self) -> String {
        JsonExporter.render(&self.report)
    }

    /// The report as one self-contained HTML page.
    fn html(&self) -> String {
        HtmlExporter.render(&self.report)
    }

    /// The text report, as the command line prints it.
    #[pyo3(signature = (max_tokens=20))]
    fn text(&self, max_tokens: usize) -> String {
        TextExporter { max_tokens }.render(&self.report)
    }

    /// Every row's L2 norm, in token order (NaN for a row holding NaN).
    fn norms<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.report.norms)
    }

    /// The groups of identical rows (black holes), as the report sorts them.
    fn groups<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray1<i64>>> {
        self.report
            .groups
            .iter()
            .map(|g| PyArray1::from_iter(py, g.token_ids.iter().map(|&t| t as i64)))
            .collect()
    }

    /// `nearest=True`: per token its nearest distinct vector's id (−1 for
    /// none) and the distance (NaN for none); `None` without `nearest`.
    #[allow(clippy::type_complexity)]
    fn nearest<'py>(
        &self,
        py: Python<'py>,
    ) -> Option<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>)> {
        self.report.nearest.as_ref().map(|n| {
            let ids = n.ids.iter().map(|i| i.map_or(-1, |i| i as i64));
            let d = n.distances.iter().map(|d| d.unwrap_or(f64::NAN));
            (PyArray1::from_iter(py, ids), PyArray1::from_iter(py, d))
        })
    }

    /// Lines about how the survey ran (a CPU fallback, a tokenizer that
    /// does not fit); in neither rendering.
    #[getter]
    fn notices(&self) -> Vec<String> {
        self.report.notices.clone()
    }

    /// The address of the first byte read, for an array read in place.
    #[getter]
    fn source_address(&self) -> Option<usize> {
        self.address
    }
}

/// A checkpoint series surveyed (`singularity_gpu.Series` wraps it).
#[pyclass(frozen, module = "singularity_gpu._native")]
pub struct NativeSeries {
    report: SeriesReport,
}

impl NativeSeries {
    pub fn new(report: SeriesReport) -> Self {
        Self { report }
    }
}

#[pymethods]
impl NativeSeries {
    /// The series as compact JSON (the command line's `--json` document).
    fn json(&self) -> String {
        compact(&self.report)
    }

    /// The series exactly as the command line's `--json` prints it.
    fn pretty_json(&self) -> String {
        JsonExporter.render(&self.report)
    }

    /// The series as one self-contained HTML page.
    fn html(&self) -> String {
        HtmlExporter.render(&self.report)
    }

    /// The text report, as the command line prints it.
    #[pyo3(signature = (max_tokens=20))]
    fn text(&self, max_tokens: usize) -> String {
        TextExporter { max_tokens }.render(&self.report)
    }

    /// Lines about how the series ran; in neither rendering.
    #[getter]
    fn notices(&self) -> Vec<String> {
        self.report.notices.clone()
    }
}
