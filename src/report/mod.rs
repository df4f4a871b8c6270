//! One result struct, rendered as text ([`text`]) or JSON ([`json`]).
//! Every number is computed before rendering; renderers only format.

pub mod allpairs;
pub mod json;
pub mod text;

use serde::Serialize;

use crate::engine::{DeviceInfo, Equality};
use crate::survey::{Geometry, SizeSummary};

/// The JSON schema identifier.
pub const SCHEMA: &str = "singularity-gpu/1";

/// A group as reported.
#[derive(Clone, Debug, Serialize)]
pub struct GroupReport {
    pub size: usize,
    /// All ids, ascending.
    pub token_ids: Vec<usize>,
    /// L2 norm of the shared vector.
    pub norm: Option<f64>,
}

/// Wall-clock time of each step, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timings {
    pub load: f64,
    pub hash: f64,
    pub group: f64,
    pub geometry: f64,
    pub total: f64,
}

/// What the text report shows beyond the JSON fields.
#[derive(Clone, Debug, Default)]
pub struct TextDetails {
    /// The dtype as stored (for example `U16` read as BF16).
    pub stored_dtype: String,
    pub equality: Equality,
    /// Group-size statistics; `None` without groups.
    pub sizes: Option<SizeSummary>,
    /// Number of black holes whose pairwise distances were skipped (too many).
    pub pairwise_skipped: Option<usize>,
}

/// The survey of one matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub file: String,
    pub tensor: String,
    pub dtype: String,
    /// [rows, columns]
    pub shape: [usize; 2],
    pub device: DeviceInfo,
    pub n_unique: usize,
    pub n_duplicate: usize,
    /// Unique vectors over rows, a fraction in [0, 1].
    pub uniqueness: f64,
    pub groups: Vec<GroupReport>,
    pub geometry: Geometry,
    pub timings_ms: Timings,
    /// Rows holding a NaN; present only under `--numeric-equality`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nan_rows: Option<Vec<usize>>,
    #[serde(skip)]
    pub details: TextDetails,
}

/// A way to render a report (hyperfine's `Exporter`).
pub trait Exporter {
    fn render(&self, report: &Report) -> String;
}
