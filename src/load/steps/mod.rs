//! Inputs of a checkpoint series: the steps of a training run read one at a
//! time, so that memory holds a few steps whatever their number.
//!
//! Two kinds of input give the same [`StepSource`]: a list of checkpoint
//! files, one per step ([`open_series`]), and one trajectory tensor
//! `W[step, token, dim]` ([`trajectory::open_trajectory`](trajectory)).

pub mod scan;
pub mod trajectory;

pub use scan::open_series;

use std::path::{Path, PathBuf};

use crate::dtype::Dtype;
use crate::error::Result;
use crate::load::source::Bytes;
use crate::load::vocab::TokenNames;
use crate::types::StepSelection;

/// What every step of a series shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesInfo {
    /// The tensor's name (a trajectory's key).
    pub tensor: String,
    /// The dtype as stored (for example `U16` when read `--as bf16`).
    pub stored_dtype: String,
    /// The format of the files (`safetensors`, `hdf5`, …).
    pub format: &'static str,
    /// The dtype the engines read.
    pub dtype: Dtype,
    /// Tokens (rows) and dimensions (columns) of one step.
    pub rows: usize,
    pub cols: usize,
}

/// The steps of a series, read in order.
pub trait StepSource {
    /// What every step shares.
    fn info(&self) -> &SeriesInfo;
    /// The step numbers of the selected steps, ascending (as many as there
    /// are steps to read).
    fn steps(&self) -> &[u64];
    /// The files read, in step order (one for a trajectory).
    fn inputs(&self) -> Vec<PathBuf>;
    /// Token strings, when a tokenizer was given or found.
    fn tokens(&self) -> Option<&TokenNames>;
    /// Lines for the user about how the input was read.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
    /// The bytes of the `i`-th selected step: `rows × cols` elements of
    /// `dtype`, row-major. Called for i = 0, 1, 2, … in order; a source may
    /// rely on that (to decompress a chunk of several steps once).
    fn read(&mut self, i: usize) -> Result<Bytes>;
    /// The `i`-th selected step as [`read`](Self::read) gives it, with the
    /// stored blocks of a quantized tensor beside its values (a source of
    /// such tensors overrides this; the default has none). Called in order
    /// like `read`, in its place.
    fn read_step(&mut self, i: usize) -> Result<StepBytes> {
        Ok(StepBytes {
            values: self.read(i)?,
            stored: None,
        })
    }
    /// The steps `range` as [`read_step`](Self::read_step) gives them,
    /// called in order like it. The default reads them one by one; a source
    /// may read them at once.
    fn read_steps(&mut self, range: std::ops::Range<usize>) -> Result<Vec<StepBytes>> {
        range.map(|i| self.read_step(i)).collect()
    }
    /// Says that the steps before the `i`-th will not be read again, so
    /// that a source reading from a memory map can give their pages back
    /// (the resident set then holds the steps in use, not every step read
    /// so far) and a decoding one its slab. Bytes handed out stay valid: a
    /// mapped page given back and read again is faulted in anew. The
    /// default does nothing.
    fn release_before(&mut self, _i: usize) {}
    /// Where a batch of steps that starts at the `i`-th should end
    /// (exclusive), given that it holds `max` steps at most. A source that
    /// decodes several steps at once (a slab of chunks) ends a batch where a
    /// slab ends, so that the slabs the steps of two batches share are no
    /// more than those two batches' bytes. The default is `i + max`.
    fn batch_end(&self, i: usize, max: usize) -> usize {
        i + max
    }
    /// The steps a source decodes at once (a slab of chunks), when it does:
    /// a batch is then best one slab. `None` by default.
    fn slab_steps(&self) -> Option<usize> {
        None
    }
}

/// One step of a series as read.
#[derive(Debug)]
pub struct StepBytes {
    /// What the engines read: `rows × cols` elements of `dtype`, row-major.
    pub values: Bytes,
    /// For a quantized tensor, its stored blocks, row-major, the same number
    /// of bytes for every row: a token's identity. Two rows are one vector,
    /// and a row moved, by these bytes; `values` (dequantized) are what
    /// displacement is counted on. `None` when the values are what is stored.
    pub stored: Option<Bytes>,
}

/// Dot-separated name parts that say what a file is, not which step: the
/// extensions of the formats we read and the dtype tags put before them
/// (`step_100.fp16.safetensors` is step 100, not 16).
const NOT_A_STEP: &[&str] = &[
    "safetensors",
    "pt",
    "pth",
    "bin",
    "ckpt",
    "gguf",
    "ggml",
    "npy",
    "npz",
    "h5",
    "hdf5",
    "fp16",
    "fp32",
    "fp64",
    "bf16",
    "f16",
    "f32",
    "f64",
    "bfloat16",
    "float16",
    "float32",
    "float64",
    "half",
    "int8",
    "int4",
    "nf4",
    "fp8",
];

/// Whether a dot-separated name part is a tag rather than a step: a known
/// extension or dtype, or a GGUF quantization (`Q4_K_M`, `IQ4_XS`, `Q8_0`).
fn is_tag(part: &str) -> bool {
    let p = part.to_ascii_lowercase();
    let quant = p
        .strip_prefix("iq")
        .or_else(|| p.strip_prefix('q'))
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.len() <= 6);
    NOT_A_STEP.contains(&p.as_str()) || quant
}

/// The step number in a file name: its last run of ASCII digits once the
/// extension and dtype tags are set aside (`checkpoint_step_01000.pt` →
/// 1000, `step_100.fp16.safetensors` → 100), or `None` when it has none or
/// the number does not fit in 64 bits.
pub fn step_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_string_lossy();
    let mut stem: &str = &name;
    while let Some((rest, last)) = stem.rsplit_once('.') {
        if rest.is_empty() || !is_tag(last) {
            break;
        }
        stem = rest;
    }
    let bytes = stem.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    stem[start..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_is_the_last_number_in_the_name() {
        let n = |s: &str| step_number(Path::new(s));
        assert_eq!(n("runs/7/step_000100.safetensors"), Some(100));
        assert_eq!(n("checkpoint_step_01000.pt"), Some(1000));
        assert_eq!(n("ckpt-2-of-3_step10.bin"), Some(10));
        assert_eq!(n("model.safetensors"), None);
        assert_eq!(n("step_100.fp16.safetensors"), Some(100));
        assert_eq!(n("checkpoint-500"), Some(500));
        assert_eq!(n("run.v2.step_7.BF16.GGUF"), Some(7));
        assert_eq!(n("model-step100.Q4_K_M.gguf"), Some(100));
        assert_eq!(n("step_200.bfloat16.safetensors"), Some(200));
        assert_eq!(n("step_300.IQ4_XS.gguf"), Some(300));
        assert_eq!(n("x_99999999999999999999999.pt"), None);
    }

    #[test]
    fn selection_is_an_inclusive_range_then_every_kth() {
        let steps: Vec<u64> = (0..=10).map(|s| s * 100).collect();
        let sel = |s: &str| StepSelection::parse(s).unwrap().select(&steps);
        assert_eq!(sel("::3"), vec![0, 3, 6, 9]);
        assert_eq!(sel("200:500"), vec![2, 3, 4, 5]);
        assert_eq!(sel("250:"), vec![3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(sel("100:900:4"), vec![1, 5, 9]);
        assert_eq!(sel(":"), (0..=10).collect::<Vec<_>>());
        for bad in ["", "10", "a:b", "1:2:0", "5:1", "1:2:3:4", "-1:"] {
            assert!(StepSelection::parse(bad).is_err(), "{bad}");
        }
    }
}
