//! Command-line flags (clap derive), turned into one validated [`Config`]
//! (ripgrep's low-level args → `HiArgs`) that the rest of the binary uses.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

/// A finite number ≥ 0 (thresholds).
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("expected a finite number >= 0, got {s:?}")),
    }
}

use singularity_gpu::run::many::read_list;
use singularity_gpu::types::StepSelection;
use singularity_gpu::{
    DeviceChoice, Dtype, Equality, Error, GpuOptions, GroupOptions, IndicatorOptions, LoadOptions,
    ManyOptions, NearThreshold, PairOptions, SeriesInput, SeriesOptions, Shard, SurveyOptions,
};

fn steps_spec(s: &str) -> Result<StepSelection, String> {
    StepSelection::parse(s)
}

fn shard_spec(s: &str) -> Result<Shard, String> {
    s.parse()
}

/// Flags of a one-matrix survey that a series does not take.
const SERIES_CONFLICTS: &[&str] = &[
    "nearest",
    "near_l2",
    "near_rel",
    "near_ulp",
    "numeric_equality",
    "revision",
    "file",
    "files_from",
    "shard",
    "details",
    "indicators",
    "reference_tokens",
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
#[command(group(clap::ArgGroup::new("input").required(true).multiple(true)
    .args(["file", "files_from", "series", "trajectory"])))]
pub struct Cli {
    /// What to survey: a .safetensors, PyTorch (.pt/.pth/.bin), GGUF, .npy or
    /// .npz file (recognised by content), a model folder (sharded or not), or
    /// a Hugging Face cache entry (models--ORG--NAME, or ORG/NAME in the cache);
    /// repeated, each is surveyed and the report is one table
    #[arg(help_heading = "Input", long, short = 'f', value_name = "PATH", action = ArgAction::Append)]
    pub file: Vec<PathBuf>,

    /// More inputs, one a line (files, folders, ORG/NAME; blank lines and
    /// lines starting with # skipped; - reads standard input), after the
    /// --file ones: one table, or JSON Lines with --json
    #[arg(help_heading = "Input", long, value_name = "LIST")]
    pub files_from: Option<PathBuf>,

    /// Survey only the inputs whose position p (from 0, in the whole list)
    /// has p mod N = I, for a job array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    #[arg(help_heading = "Input", long, value_name = "I/N", value_parser = shard_spec, allow_hyphen_values = true)]
    pub shard: Option<Shard>,

    /// A checkpoint series: a folder (every file or folder in it whose name
    /// holds a step number, in any format --file reads) or the checkpoint
    /// files, ordered by the last number in each name (step_2 before step_10)
    #[arg(help_heading = "Input", long, value_name = "PATH", num_args = 1.., conflicts_with_all = SERIES_CONFLICTS, conflicts_with = "trajectory")]
    pub series: Option<Vec<PathBuf>>,

    /// A training trajectory: one 3-D tensor [steps, tokens, dim] (choose it
    /// with --key) in a safetensors or HDF5 file; uint16 bit patterns with --as
    // A trajectory is one tensor: no output head to choose either.
    #[arg(help_heading = "Input", long, value_name = "FILE", conflicts_with_all = SERIES_CONFLICTS, conflicts_with = "unembedding")]
    pub trajectory: Option<PathBuf>,

    /// A tokenizer.json or vocab.txt for token strings (default: the file's
    /// own for GGUF, else tokenizer.json or vocab.txt beside the model)
    #[arg(help_heading = "Input", long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,

    /// The branch, tag or commit of a Hugging Face cache entry (default: main)
    #[arg(help_heading = "Input", long, value_name = "REV")]
    pub revision: Option<String>,

    /// Tensor to survey (default: the only 2-D tensor, else a usual embedding name)
    #[arg(help_heading = "Tensor choice", long, short = 'k', value_name = "NAME")]
    pub key: Option<String>,

    /// Survey the output head (lm_head.weight, output.weight, ...) instead of
    /// the input embedding, and say whether the two are tied
    #[arg(help_heading = "Tensor choice", long, conflicts_with = "key")]
    pub unembedding: bool,

    /// Read a U16/I16 tensor's bits as this float type
    #[arg(help_heading = "Tensor choice", long = "as", value_name = "TYPE")]
    pub as_dtype: Option<AsArg>,

    /// Compare values as torch.unique does (+0.0 == -0.0; rows with NaN reported apart)
    #[arg(help_heading = "Geometry", long)]
    pub numeric_equality: bool,

    /// Every token's nearest distinct vector (exact L2), with quantiles, a
    /// histogram and the gap that splits off the frozen structure
    #[arg(help_heading = "Geometry", long)]
    pub nearest: bool,

    /// Join distinct vectors at L2 distance <= R into near-singularity components
    #[arg(help_heading = "Geometry", long, value_name = "R", value_parser = non_negative, group = "near", allow_negative_numbers = true)]
    pub near_l2: Option<f64>,

    /// Like --near-l2 with R = F times the median row norm
    #[arg(help_heading = "Geometry", long, value_name = "F", value_parser = non_negative, group = "near", allow_negative_numbers = true)]
    pub near_rel: Option<f64>,

    /// Join distinct vectors whose every coordinate is at most K steps (ULPs) of the stored dtype apart
    /// (for a quantized GGUF tensor: steps of its dequantized f32 values)
    #[arg(help_heading = "Geometry", long, value_name = "K", group = "near", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=(1u64 << 53)))]
    pub near_ulp: Option<u64>,

    /// Under-trained-token indicators (as Magikarp's): input-embedding norm,
    /// cosine distance to the mean of a reference set of unused tokens (plain
    /// and with the first principal component removed, the main one) and L2
    /// distance, on the output head when it is untied; candidates below the
    /// main indicator's 2nd percentile
    #[arg(help_heading = "Indicators", long)]
    pub indicators: bool,

    /// The reference set for --indicators: ids and ranges (0-9,120) or a file
    /// of ids (whitespace, commas, or a JSON array); default: the black holes,
    /// near components and rows past the vocabulary the survey finds
    #[arg(
        help_heading = "Indicators",
        long,
        value_name = "IDS|FILE",
        requires = "indicators"
    )]
    pub reference_tokens: Option<String>,

    /// With --series or --trajectory: the steps START:END (inclusive) and
    /// every EVERY-th of them, each part optional: ::10, 1000:5000, 0:10000:100
    #[arg(help_heading = "Series", long, value_name = "START:END[:EVERY]", value_parser = steps_spec)]
    pub steps: Option<StepSelection>,

    /// Print one JSON document instead of the text report (with several
    /// inputs: one document per line, JSON Lines)
    #[arg(help_heading = "Output", long)]
    pub json: bool,

    /// Also write the report as one self-contained HTML page with plots
    /// (no network needed to view it; with several inputs, the comparison
    /// page); `-` writes the page to stdout instead of the report
    #[arg(help_heading = "Output", long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// With several inputs: each input's full text report after the table
    #[arg(help_heading = "Output", long, conflicts_with = "json")]
    pub details: bool,

    /// Token ids shown per group or event in the text report (0: counts only)
    #[arg(
        help_heading = "Output",
        long,
        visible_alias = "max-tokens-per-group",
        value_name = "N",
        default_value_t = 20
    )]
    pub max_tokens: usize,

    /// Where to run the kernels
    #[arg(help_heading = "Device", long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,

    /// Test hook: largest chunk streamed to the GPU, in bytes
    #[arg(long, hide = true, value_name = "BYTES")]
    pub chunk_bytes: Option<u64>,

    /// Test hook: keep only this many low bits of each row hash (forces collisions)
    #[arg(long, hide = true, value_name = "BITS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(0..=64))]
    pub hash_bits: u32,
}

/// What the binary was asked to do, checked once.
#[derive(Debug)]
pub struct Config {
    pub mode: Mode,
    pub output: Output,
    /// `--html`: where to write the page (`-`: stdout, instead of `output`).
    pub html: Option<PathBuf>,
}

/// Which survey to run.
#[derive(Debug)]
pub enum Mode {
    /// `--file`: one matrix.
    Survey {
        file: PathBuf,
        opts: Box<SurveyOptions>,
    },
    /// `--file` repeated, `--files-from` or `--shard`: many matrices, one
    /// table (or JSON Lines).
    Many {
        inputs: Vec<PathBuf>,
        opts: Box<ManyOptions>,
        /// `--details`: every input's report after the table.
        details: bool,
    },
    /// `--series` or `--trajectory`: a checkpoint series.
    Series {
        input: SeriesInput,
        opts: Box<SeriesOptions>,
    },
}

/// How the result is written to stdout.
#[derive(Clone, Copy, Debug)]
pub enum Output {
    Text { max_tokens: usize },
    Json,
}

impl Cli {
    /// The flags as one configuration: the options every mode shares are
    /// built once, and flags that do not go together are an error.
    pub fn into_config(self) -> Result<Config, Error> {
        if self.json && self.html.as_deref() == Some(std::path::Path::new("-")) {
            return Err(Error::Usage(
                "--html - prints the page instead of the report: it does not go with --json".into(),
            ));
        }
        let output = if self.json {
            Output::Json
        } else {
            Output::Text {
                max_tokens: self.max_tokens,
            }
        };
        let series = match (self.series, self.trajectory) {
            (Some(paths), _) => Some(SeriesInput::Files(paths)),
            (None, Some(path)) => Some(SeriesInput::Trajectory(path)),
            (None, None) => None,
        };
        let load = LoadOptions {
            key: self.key,
            reinterpret: self.as_dtype.map(Into::into),
            unembedding: self.unembedding,
            revision: self.revision,
            tokenizer: self.tokenizer,
        };
        let device = self.device.into();
        let gpu = GpuOptions {
            max_chunk_bytes: self.chunk_bytes,
            ..Default::default()
        };
        // Several inputs, a list or a shard make a many-input run (one
        // table); a single --file is the one-matrix report.
        let many = self.file.len() > 1 || self.files_from.is_some() || self.shard.is_some();
        let mut files = self.file;
        if let Some(list) = &self.files_from {
            files.extend(read_list(list)?);
        }
        if self.details && !many {
            return Err(Error::Usage(
                "--details goes with several inputs (--file repeated, --files-from or --shard)"
                    .into(),
            ));
        }
        let has_files = !files.is_empty() || self.files_from.is_some();
        let mode = match (series, has_files) {
            (Some(_), true) | (None, false) => {
                return Err(Error::Usage(
                    "give one of --file, --series or --trajectory".into(),
                ))
            }
            (Some(input), false) => Mode::Series {
                input,
                opts: Box::new(SeriesOptions {
                    load,
                    steps: self.steps.unwrap_or_default(),
                    device,
                    gpu,
                    progress: true,
                    interrupt: None,
                }),
            },
            (None, true) => {
                if self.steps.is_some() {
                    return Err(Error::Usage(
                        "--steps goes with --series or --trajectory".into(),
                    ));
                }
                let indicators = match (self.indicators, &self.reference_tokens) {
                    (false, _) => None,
                    (true, None) => Some(IndicatorOptions::default()),
                    (true, Some(arg)) => Some(IndicatorOptions {
                        reference: Some(
                            singularity_gpu::survey::indicators::parse_reference_tokens(arg)?,
                        ),
                    }),
                };
                let near = match (self.near_l2, self.near_rel, self.near_ulp) {
                    (Some(r), _, _) => Some(NearThreshold::L2(r)),
                    (_, Some(f), _) => Some(NearThreshold::Rel(f)),
                    (_, _, Some(k)) => Some(NearThreshold::Ulp(k)),
                    _ => None,
                };
                let survey = SurveyOptions {
                    load,
                    device,
                    gpu,
                    group: GroupOptions {
                        equality: if self.numeric_equality {
                            Equality::Numeric
                        } else {
                            Equality::Bitwise
                        },
                        hash_bits: self.hash_bits,
                    },
                    pairs: PairOptions {
                        nearest: self.nearest,
                        near,
                    },
                    progress: true,
                    indicators,
                    interrupt: None,
                };
                match files.as_slice() {
                    [file] if !many => Mode::Survey {
                        file: file.clone(),
                        opts: Box::new(survey),
                    },
                    _ => Mode::Many {
                        inputs: files,
                        opts: Box::new(ManyOptions {
                            survey,
                            shard: self.shard.unwrap_or_default(),
                            keep_reports: self.details || self.html.is_some(),
                        }),
                        details: self.details,
                    },
                }
            }
        };
        Ok(Config {
            mode,
            output,
            html: self.html,
        })
    }
}
