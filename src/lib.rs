//! singularity-gpu: survey a language model's token-embedding matrix for
//! *singularities*, groups of tokens whose vectors are bit-for-bit identical.
//!
//! The flow:
//!
//! ```text
//! file ──load──▶ Matrix ──engine──▶ hashes + norms ──survey──▶ groups + geometry ──report──▶ text | JSON
//! ```
//!
//! The library surveys a matrix already in memory as well as a file
//! ([`survey_file`]):
//!
//! ```
//! use singularity_gpu::engine::cpu::CpuEngine;
//! use singularity_gpu::progress::Progress;
//! use singularity_gpu::{analyze, Dtype, GroupOptions, Matrix};
//!
//! // Three rows of two f32 values; rows 0 and 2 are the same vector.
//! let values: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 1.0, 2.0];
//! let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
//! let m = Matrix::new(Dtype::F32, 3, 2, &bytes).unwrap();
//! let a = analyze(&CpuEngine, &m, GroupOptions::default(), &Progress::hidden()).unwrap();
//! assert_eq!(a.grouping.groups[0].ids, vec![0, 2]);
//! assert_eq!(a.grouping.n_unique, 2);
//! assert_eq!(a.geometry.black_hole_norms.mean, Some(5f64.sqrt()));
//! ```

pub mod approx;
pub mod dtype;
pub mod engine;
pub mod error;
pub mod escape;
pub mod load;
pub mod matrix;
pub mod progress;
pub mod report;
pub mod run;
pub mod survey;
pub mod types;

pub use dtype::Dtype;
pub use engine::{DeviceChoice, Engine, GpuOptions, SharedEngine};
pub use error::{Error, Result};
pub use load::{open, LoadOptions, Loaded, TokenNames};
pub use matrix::Matrix;
pub use progress::Interrupt;
pub use report::compare::Comparison;
pub use report::timeline::SeriesReport;
pub use report::Report;
pub use run::many::{survey_many, survey_many_each, survey_many_with, ManyOptions, Shard};
pub use run::pairs::{analyze_pairs, NearThreshold, NearestPaths, PairOptions, PairsAnalysis};
pub use run::recorder::Recorder;
pub use run::series::{survey_series, SeriesInput, SeriesOptions};
pub use run::survey::{
    analyze, analyze_stored, survey_file, survey_file_with, survey_matrix, Analysis,
    IndicatorOptions, SurveyOptions,
};
pub use survey::GroupOptions;
pub use types::{Equality, StepSelection};

/// The parsers and kernel knobs behind the API, for the fuzz targets, the
/// benchmarks and the tests that reach past it. Not part of the API: it
/// changes whenever the insides do.
#[doc(hidden)]
pub mod internals {
    pub use crate::engine::gpu::row_stats::Passes;
    pub use crate::load::container::{pickle, zip};
    pub use crate::load::format::gguf::{self, quant};
    pub use crate::load::format::{hdf5, npy, pytorch, safetensors};
}
