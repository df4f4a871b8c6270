//! The results, each one serializable struct rendered as text ([`text`],
//! [`timeline`] for a series), JSON ([`json`]) or one HTML page ([`html`]),
//! through [`Exporter`].
//! Every number is computed before rendering; renderers only format.

pub mod allpairs;
pub mod compare;
pub mod fmt;
pub mod html;
pub mod json;
pub mod text;
pub mod timeline;

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::survey::indicators::Indicators;
use crate::survey::lattice::Lattice;
use crate::survey::near::Near;
use crate::survey::nearest::Nearest;
use crate::survey::{Geometry, SizeSummary};
use crate::types::{DeviceInfo, Equality, Role, Tied, VocabKind};

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
    /// The lattice of black holes.
    pub lattice: f64,
    /// `--nearest` (0 when not asked for).
    pub nearest: f64,
    /// `--near-*` (0 when not asked for).
    pub near: f64,
    /// `--indicators`; absent when not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicators: Option<f64>,
    pub total: f64,
}

/// Serializes the equality as `"bitwise"` or `"numeric"`.
fn equality_name<S: Serializer>(e: &Equality, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match e {
        Equality::Bitwise => "bitwise",
        Equality::Numeric => "numeric",
    })
}

/// The survey of one matrix. The JSON holds every field but `notices`, in
/// this order.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// What `--file` named.
    pub file: String,
    /// The format of the file the tensor was read from (`safetensors`, `GGUF`, …).
    pub format: &'static str,
    /// The file the tensor was read from (a shard, a cache snapshot's file),
    /// when it is not `file` itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor_file: Option<String>,
    pub tensor: String,
    /// `input_embedding`, or `output_head` under `--unembedding`.
    pub role: Role,
    /// Under `--unembedding`: `same_tensor`, `bit_identical` or `untied`
    /// against the input embedding; absent otherwise, and when the model has
    /// no input embedding to compare with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tied: Option<Tied>,
    /// The dtype the values were read as.
    pub dtype: String,
    /// The dtype as stored (for example `U16` read as BF16); else equal to `dtype`.
    pub stored_dtype: String,
    /// [rows, columns]
    pub shape: [usize; 2],
    /// Bytes of the matrix as stored: rows × columns × bytes per element,
    /// or for a quantized tensor rows × the bytes of a row's blocks.
    pub memory_bytes: u64,
    /// Bytes of the values surveyed: rows × columns × bytes of `dtype` (a
    /// quantized tensor's dequantized f32); else equal to `memory_bytes`.
    pub values_bytes: u64,
    pub device: DeviceInfo,
    /// How rows were compared: `"bitwise"` or `"numeric"` in JSON.
    #[serde(serialize_with = "equality_name")]
    pub equality: Equality,
    pub n_unique: usize,
    pub n_duplicate: usize,
    /// Unique vectors over rows, a fraction in [0, 1].
    pub uniqueness: f64,
    /// Duplicate rows over rows, a fraction in [0, 1].
    pub duplicate_fraction: f64,
    /// Rows over unique vectors (1 without duplicates).
    pub dedup_ratio: f64,
    /// Group-size statistics; `None` (`null`) without groups.
    pub group_sizes: Option<SizeSummary>,
    pub groups: Vec<GroupReport>,
    /// The number of black holes when there were too many for their pairwise
    /// distances to be computed; else `None` (`null`).
    pub pairwise_skipped: Option<usize>,
    pub geometry: Geometry,
    /// Step distances between black holes; `None` with fewer than two, or
    /// more than [`crate::survey::lattice::MAX_LATTICE_HOLES`].
    pub lattice: Option<Lattice>,
    /// The number of black holes when there were too many for the lattice.
    pub lattice_skipped: Option<usize>,
    /// `--nearest`: every token's nearest distinct vector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest: Option<Nearest>,
    /// `--near-l2`, `--near-rel`, `--near-ulp`: near-singularity components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near: Option<Near>,
    /// `--indicators`: under-trained-token indicators and their candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicators: Option<Indicators>,
    /// Where token strings came from; absent without a tokenizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerInfo>,
    /// Token id → readable string, for every grouped id the tokenizer has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<BTreeMap<usize, String>>,
    /// The grouped ids that are special (added, control) tokens, ascending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub special_tokens: Option<Vec<usize>>,
    /// Rows past the tokenizer's vocabulary (ids ≥ its size), ascending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub padding_rows: Option<Vec<usize>>,
    pub timings_ms: Timings,
    /// Rows holding a NaN; present only under `--numeric-equality`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nan_rows: Option<Vec<usize>>,
    /// Lines for the user about how the survey ran (for example that no
    /// hardware GPU was found and the CPU path was used), not part of the
    /// result: the library does not print, so the binary writes them to
    /// stderr; they are in neither rendering.
    #[serde(skip)]
    pub notices: Vec<String>,
    /// How token ids are shown: set by the loader, which knows what the rows are.
    #[serde(skip)]
    pub token_display: TokenDisplay,
    /// Every row's L2 norm, in token order (NaN for a row holding NaN), for
    /// the plots; not in the JSON, which summarises them in `geometry`.
    #[serde(skip)]
    pub norms: Vec<f64>,
}

/// The tokenizer a report's token strings came from.
#[derive(Clone, Debug, Serialize)]
pub struct TokenizerInfo {
    pub path: String,
    pub kind: VocabKind,
    /// Its largest token id + 1.
    pub vocab_size: usize,
}

/// How the text report shows token ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenDisplay {
    /// Ids only.
    #[default]
    Ids,
    /// A byte vocabulary (no tokenizer, at most 256 rows): ids are byte
    /// values, shown with their characters as the notebook does.
    Bytes,
    /// Ids with their token strings ([`Report::tokens`]).
    Strings,
}

/// A way to render a result (hyperfine's `Exporter`): [`Report`] (one
/// matrix) and [`SeriesReport`](timeline::SeriesReport) (a checkpoint
/// series) each have a text and a JSON rendering.
pub trait Exporter<R> {
    fn render(&self, result: &R) -> String;
}
