//! Command-line flags (clap derive).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// A finite number ≥ 0 (thresholds).
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("expected a finite number >= 0, got {s:?}")),
    }
}

use singularity_gpu::types::StepSelection;
use singularity_gpu::{DeviceChoice, Dtype};

fn steps_spec(s: &str) -> Result<StepSelection, String> {
    StepSelection::parse(s)
}

/// Flags of a one-matrix survey that a series does not take.
const SERIES_CONFLICTS: &[&str] = &[
    "nearest",
    "near_l2",
    "near_rel",
    "near_ulp",
    "numeric_equality",
    "revision",
];

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceArg {
    /// A hardware GPU if there is one, else the CPU (with a notice on stderr)
    Auto,
    /// A GPU adapter (software ones such as lavapipe included); an error if none
    Gpu,
    /// The CPU path (rayon)
    Cpu,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Gpu => DeviceChoice::Gpu,
            DeviceArg::Cpu => DeviceChoice::Cpu,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AsArg {
    Bf16,
    F16,
}

impl From<AsArg> for Dtype {
    fn from(a: AsArg) -> Self {
        match a {
            AsArg::Bf16 => Dtype::BF16,
            AsArg::F16 => Dtype::F16,
        }
    }
}

/// Survey a token-embedding matrix for singularities: groups of tokens whose
/// vectors are bit-for-bit identical ("black holes").
#[derive(Debug, Parser)]
#[command(name = "singularity-gpu", version, about, long_about = None)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "series", "trajectory"])))]
pub struct Cli {
    /// What to survey: a .safetensors, PyTorch (.pt/.pth/.bin), GGUF, .npy or
    /// .npz file (recognised by content), a model folder (sharded or not), or
    /// a Hugging Face cache entry (models--ORG--NAME, or ORG/NAME in the cache)
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// A checkpoint series: a folder (every file or folder in it whose name
    /// holds a step number, in any format --file reads) or the checkpoint
    /// files, ordered by the last number in each name (step_2 before step_10)
    #[arg(long, value_name = "PATH", num_args = 1.., conflicts_with_all = SERIES_CONFLICTS)]
    pub series: Option<Vec<PathBuf>>,

    /// A training trajectory: one 3-D tensor [steps, tokens, dim] (choose it
    /// with --key) in a safetensors or HDF5 file; uint16 bit patterns with --as
    // A trajectory is one tensor: no output head to choose either.
    #[arg(long, value_name = "FILE", conflicts_with_all = SERIES_CONFLICTS, conflicts_with = "unembedding")]
    pub trajectory: Option<PathBuf>,

    /// With --series or --trajectory: the steps START:END (inclusive) and
    /// every EVERY-th of them, each part optional: ::10, 1000:5000, 0:10000:100
    #[arg(long, value_name = "START:END[:EVERY]", value_parser = steps_spec)]
    pub steps: Option<StepSelection>,

    /// Survey the output head (lm_head.weight, output.weight, ...) instead of
    /// the input embedding, and say whether the two are tied
    #[arg(long, conflicts_with = "key")]
    pub unembedding: bool,

    /// A tokenizer.json or vocab.txt for token strings (default: the file's
    /// own for GGUF, else tokenizer.json or vocab.txt beside the model)
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,

    /// The branch, tag or commit of a Hugging Face cache entry (default: main)
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,

    /// Tensor to survey (default: the only 2-D tensor, else a usual embedding name)
    #[arg(long, short = 'k', value_name = "NAME")]
    pub key: Option<String>,

    /// Read a U16/I16 tensor's bits as this float type
    #[arg(long = "as", value_name = "TYPE")]
    pub as_dtype: Option<AsArg>,

    /// Where to run the kernels
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,

    /// Compare values as torch.unique does (+0.0 == -0.0; rows with NaN reported apart)
    #[arg(long)]
    pub numeric_equality: bool,

    /// Token ids shown per group in the text report
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_tokens_per_group: usize,

    /// Print one JSON document instead of the text report
    #[arg(long)]
    pub json: bool,

    /// Every token's nearest distinct vector (exact L2), with quantiles, a
    /// histogram and the gap that splits off the frozen structure
    #[arg(long)]
    pub nearest: bool,

    /// Join distinct vectors at L2 distance <= R into near-singularity components
    #[arg(long, value_name = "R", value_parser = non_negative, group = "near", allow_negative_numbers = true)]
    pub near_l2: Option<f64>,

    /// Like --near-l2 with R = F times the median row norm
    #[arg(long, value_name = "F", value_parser = non_negative, group = "near", allow_negative_numbers = true)]
    pub near_rel: Option<f64>,

    /// Join distinct vectors whose every coordinate is at most K steps (ULPs) of the stored dtype apart
    /// (for a quantized GGUF tensor: steps of its dequantized f32 values)
    #[arg(long, value_name = "K", group = "near", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=(1u64 << 53)))]
    pub near_ulp: Option<u64>,

    /// Test hook: largest chunk streamed to the GPU, in bytes
    #[arg(long, hide = true, value_name = "BYTES")]
    pub chunk_bytes: Option<u64>,

    /// Test hook: keep only this many low bits of each row hash (forces collisions)
    #[arg(long, hide = true, value_name = "BITS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(0..=64))]
    pub hash_bits: u32,
}
