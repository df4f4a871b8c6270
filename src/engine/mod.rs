//! The heavy kernels behind one trait, with two implementations: [`cpu`]
//! (rayon; the reference and the fallback) and [`gpu`] (wgpu + WGSL).

pub mod cpu;
pub mod gpu;
pub mod hash;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::Matrix;
use crate::progress::Progress;

/// How rows are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Equality {
    /// Rows are equal when their bytes are equal (+0.0 ≠ −0.0; NaNs by bit pattern).
    #[default]
    Bitwise,
    /// The notebook's `torch.unique` semantics: −0.0 == +0.0; rows holding a NaN
    /// equal nothing and are reported apart.
    Numeric,
}

/// Per-row results of one pass over the matrix, plus the column sums.
#[derive(Clone, Debug, Default)]
pub struct RowStats {
    /// 64-bit row hashes (see [`hash`]); under [`Equality::Numeric`], of the
    /// row with −0.0 written as +0.0.
    pub hashes: Vec<u64>,
    /// L2 norm of each row.
    pub norms: Vec<f64>,
    /// Whether each row holds a NaN.
    pub has_nan: Vec<bool>,
    /// Sum of each column over all rows (for the centroid).
    pub column_sums: Vec<f64>,
}

/// Which kind of device ran the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

/// The device as reported in the survey.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    /// Adapter name (for the CPU path, the thread count).
    pub adapter: String,
    /// Graphics backend (Vulkan, Metal, Dx12, Gl) or "rayon".
    pub backend: String,
}

/// The heavy computations of a survey.
pub trait Engine {
    /// What runs the kernels.
    fn device(&self) -> DeviceInfo;

    /// Hashes, norms, NaN flags and column sums, in one pass over the matrix.
    fn row_stats(&self, m: &Matrix, eq: Equality, progress: &Progress) -> Result<RowStats>;

    /// L2 distances between the given rows, for every pair `i < j` in the order
    /// (0,1), (0,2), …, (0,k−1), (1,2), …
    fn pairwise_l2(&self, m: &Matrix, rows: &[usize]) -> Result<Vec<f64>>;
}

/// `--device`: which engine to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU adapter if there is one, else the CPU with a notice.
    #[default]
    Auto,
    /// Any GPU adapter, software rasterizers such as lavapipe included; an error if none.
    Gpu,
    /// The CPU path.
    Cpu,
}

/// Options for the GPU engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuOptions {
    /// Upper bound on the bytes of one streamed chunk (a test hook; the
    /// adapter's own limit applies in any case).
    pub max_chunk_bytes: Option<u64>,
    /// Threads sharing one row in the hash kernel (a benchmark knob; by
    /// default about four 32-bit units per thread, at most 256).
    pub threads_per_row: Option<u32>,
}

/// Picks the engine for `choice`. The notice (for `auto` falling back to the
/// CPU) is returned rather than printed, so the caller decides where it goes.
pub fn select(choice: DeviceChoice, gpu: GpuOptions) -> Result<(Box<dyn Engine>, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((Box::new(cpu::CpuEngine::new()), None)),
        DeviceChoice::Gpu => Ok((Box::new(gpu::GpuEngine::new(true, gpu)?), None)),
        DeviceChoice::Auto => match gpu::GpuEngine::new(false, gpu) {
            Ok(engine) => Ok((Box::new(engine), None)),
            Err(Error::NoAdapter(why)) => Ok((
                Box::new(cpu::CpuEngine::new()),
                Some(format!("notice: {why}; using the CPU path")),
            )),
            Err(e) => Err(e),
        },
    }
}
