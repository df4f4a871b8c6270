//! Inputs of a checkpoint series: the steps of a training run read one at a
//! time, so that memory holds a few steps whatever their number.
//!
//! Two kinds of input give the same [`StepSource`]: a list of checkpoint
//! files, one per step ([`open_series`]), and one trajectory tensor
//! `W[step, token, dim]` ([`trajectory::open_trajectory`](trajectory)).

use std::path::{Path, PathBuf};

pub mod trajectory;

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::load::{Bytes, LoadOptions, Sniffed, TokenNames};

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
}

/// `--steps`: which of the available steps to survey.
///
/// `START:END[:EVERY]`, every part optional: the steps whose numbers lie in
/// `START..=END` (both inclusive), then every `EVERY`-th of those, counting
/// from the first. `::10` takes every tenth step, `1000:5000` a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepSelection {
    pub start: Option<u64>,
    pub end: Option<u64>,
    /// Keep every `every`-th step (1 = all).
    pub every: Option<u64>,
}

impl StepSelection {
    /// Parses `START:END[:EVERY]`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "expected START:END[:EVERY] (each part optional, e.g. ::10 or 100:500), got {s:?}"
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let num = |p: &str| -> std::result::Result<Option<u64>, String> {
            let p = p.trim();
            if p.is_empty() {
                Ok(None)
            } else {
                p.parse::<u64>().map(Some).map_err(|_| bad())
            }
        };
        let sel = Self {
            start: num(parts[0])?,
            end: num(parts[1])?,
            every: match parts.get(2) {
                Some(p) => num(p)?,
                None => None,
            },
        };
        if sel.every == Some(0) {
            return Err(format!("--steps {s:?}: EVERY must be at least 1"));
        }
        if let (Some(a), Some(b)) = (sel.start, sel.end) {
            if a > b {
                return Err(format!("--steps {s:?}: START is after END"));
            }
        }
        Ok(sel)
    }

    /// The positions (indices into `steps`, ascending) of the selected steps.
    pub fn select(&self, steps: &[u64]) -> Vec<usize> {
        let every = self.every.unwrap_or(1).max(1) as usize;
        (0..steps.len())
            .filter(|&i| {
                self.start.is_none_or(|a| steps[i] >= a) && self.end.is_none_or(|b| steps[i] <= b)
            })
            .step_by(every)
            .collect()
    }
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

/// The options a series passes on to each file it opens.
pub fn step_load_options(opts: &LoadOptions) -> LoadOptions {
    LoadOptions {
        unembedding: opts.unembedding,
        key: opts.key.clone(),
        reinterpret: opts.reinterpret,
        revision: None,
        tokenizer: None,
    }
}

/// An error about the series as a whole (no one file to name).
pub(crate) fn series_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// One checkpoint of a series.
#[derive(Clone, Debug)]
struct Checkpoint {
    step: u64,
    path: PathBuf,
}

/// `--series`: one checkpoint file (or model folder) per step.
pub struct FileSeries {
    info: SeriesInfo,
    files: Vec<Checkpoint>,
    steps: Vec<u64>,
    tokens: Option<TokenNames>,
    notices: Vec<String>,
    opts: LoadOptions,
    /// The first step's bytes, read when the series was opened.
    first: Option<Bytes>,
}

/// Whether the file at `path` starts like a checkpoint in a format we read
/// (judged by its first bytes; an HDF5 file is a trajectory, not a step).
fn holds_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        // A model folder: any entry that starts like a checkpoint.
        return std::fs::read_dir(path).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().is_file() && holds_checkpoint(&e.path()))
        });
    }
    let mut head = Vec::with_capacity(16);
    let read = std::fs::File::open(path).and_then(|f| f.take(16).read_to_end(&mut head));
    if read.is_err() {
        return false;
    }
    match crate::load::sniff(&head) {
        Sniffed::Gguf => true,
        // A torch.save checkpoint or an .npz, not any zip (logs, archives).
        Sniffed::Zip => crate::load::map_file(path, "zip").is_ok_and(|map| {
            crate::load::container::zip::entries(&map).is_ok_and(|e| {
                !matches!(
                    crate::load::zip_contents(&e),
                    crate::load::ZipContents::Unknown
                )
            })
        }),
        // A matrix, not a saved array of losses.
        Sniffed::Npy => crate::load::map_file(path, ".npy").is_ok_and(|map| {
            crate::load::format::npy::parse(&map).is_ok_and(|n| n.shape.len() == 2)
        }),
        // A bare pickle is a legacy torch file or pickled arguments: no step
        // we read. An HDF5 file is a trajectory.
        Sniffed::Pickle | Sniffed::Hdf5 => false,
        // Safetensors: an 8-byte header length that fits the file, then JSON.
        Sniffed::Safetensors => {
            head.len() > 8
                && head[8] == b'{'
                && u64::from_le_bytes(head[..8].try_into().unwrap_or([0xff; 8]))
                    .checked_add(8)
                    .is_some_and(|end| end <= meta.len())
        }
    }
}

/// The checkpoints `paths` name, and notes on what was skipped: one folder
/// stands for its entries whose names hold a step number and that hold a
/// checkpoint in a format we read (files, and model folders such as
/// `checkpoint-500/`); two paths or more are the checkpoints themselves
/// (files or model folders), each name holding a step number. Ordered by
/// step number, never by name.
fn checkpoints(paths: &[PathBuf]) -> Result<(Vec<Checkpoint>, Vec<String>)> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut found = Vec::new();
    let mut notices = Vec::new();
    if let [dir] = paths {
        if dir.is_dir() {
            let mut skipped = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                let path = entry.map_err(io(dir))?.path();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.starts_with('.') {
                    continue;
                }
                let Some(step) = step_number(&path) else {
                    if name.bytes().any(|b| b.is_ascii_digit()) {
                        skipped.push(name);
                    }
                    continue;
                };
                if holds_checkpoint(&path) {
                    found.push(Checkpoint { step, path });
                } else {
                    skipped.push(name);
                }
            }
            if found.is_empty() {
                return Err(series_error(
                    dir,
                    "no file in this folder is a checkpoint with a step number in its name (like step_1000.safetensors)",
                ));
            }
            if !skipped.is_empty() {
                skipped.sort();
                let shown: Vec<&str> = skipped.iter().take(10).map(String::as_str).collect();
                let more = skipped.len().saturating_sub(10);
                notices.push(format!(
                    "note: {}: skipped {} with a number in the name that {} no checkpoint we read: {}{}",
                    crate::error::one_line(&dir.display().to_string()),
                    if skipped.len() == 1 { "1 entry".to_string() } else { format!("{} entries", skipped.len()) },
                    if skipped.len() == 1 { "holds" } else { "hold" },
                    crate::error::one_line(&shown.join(", ")),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ));
            }
        }
    }
    if found.is_empty() {
        for path in paths {
            if std::fs::metadata(path).is_err() {
                return Err(series_error(path, "no such file or folder"));
            }
            let step = step_number(path).ok_or_else(|| {
                let what = if path.is_dir() {
                    "no step number in the folder's name: give a folder alone to take its numbered checkpoints, or list checkpoint files (or model folders) whose names hold their step"
                } else {
                    "no step number in the file name (like step_1000.safetensors)"
                };
                series_error(path, what)
            })?;
            found.push(Checkpoint {
                step,
                path: path.clone(),
            });
        }
    }
    found.sort_by(|a, b| a.step.cmp(&b.step).then_with(|| a.path.cmp(&b.path)));
    if let Some(w) = found.windows(2).find(|w| w[0].step == w[1].step) {
        return Err(series_error(
            &w[1].path,
            format!(
                "step {} twice: {} and this one; give one file per step",
                w[1].step,
                w[0].path.display()
            ),
        ));
    }
    Ok((found, notices))
}

/// Opens a series of checkpoint files (see [`checkpoints`]), keeping the
/// steps `sel` selects. The first step is read now: it fixes the tensor,
/// shape and dtype that every other step must have.
pub fn open_series(
    paths: &[PathBuf],
    opts: &LoadOptions,
    sel: &StepSelection,
) -> Result<Box<dyn StepSource>> {
    let (all, mut notices) = checkpoints(paths)?;
    let numbers: Vec<u64> = all.iter().map(|c| c.step).collect();
    let files: Vec<Checkpoint> = sel
        .select(&numbers)
        .into_iter()
        .map(|i| all[i].clone())
        .collect();
    let Some(head) = files.first() else {
        let what = paths.first().map_or(Path::new("."), |p| p.as_path());
        return Err(series_error(
            what,
            format!(
                "--steps selects none of the {} steps ({}–{})",
                numbers.len(),
                numbers.first().copied().unwrap_or(0),
                numbers.last().copied().unwrap_or(0)
            ),
        ));
    };
    let mut first_opts = step_load_options(opts);
    first_opts.tokenizer = opts.tokenizer.clone();
    let loaded = crate::load::open(&head.path, &first_opts)?;
    let info = SeriesInfo {
        tensor: loaded.info.name.clone(),
        stored_dtype: loaded.info.stored_dtype.clone(),
        format: loaded.info.format,
        dtype: loaded.dtype,
        rows: loaded.rows,
        cols: loaded.cols,
    };
    let tokens = loaded.tokens.clone();
    notices.extend(loaded.notices.iter().cloned());
    Ok(Box::new(FileSeries {
        info,
        steps: files.iter().map(|c| c.step).collect(),
        files,
        tokens,
        notices,
        opts: step_load_options(opts),
        first: Some(loaded.into_data()),
    }))
}

impl StepSource for FileSeries {
    fn info(&self) -> &SeriesInfo {
        &self.info
    }

    fn steps(&self) -> &[u64] {
        &self.steps
    }

    fn inputs(&self) -> Vec<PathBuf> {
        self.files.iter().map(|c| c.path.clone()).collect()
    }

    fn tokens(&self) -> Option<&TokenNames> {
        self.tokens.as_ref()
    }

    fn notices(&self) -> Vec<String> {
        self.notices.clone()
    }

    fn read(&mut self, i: usize) -> Result<Bytes> {
        if i == 0 {
            if let Some(first) = self.first.take() {
                return Ok(first);
            }
        }
        let c = self
            .files
            .get(i)
            .ok_or_else(|| Error::Usage(format!("step {i} of a series of {}", self.files.len())))?;
        let loaded = crate::load::open_tensor(&c.path, &self.opts)?;
        let i0 = &self.info;
        if (loaded.dtype, loaded.rows, loaded.cols) != (i0.dtype, i0.rows, i0.cols)
            || loaded.info.name != i0.tensor
        {
            return Err(series_error(
                &c.path,
                format!(
                    "step {} has {} {} of {}×{}, but the series has {} {} of {}×{} (from {})",
                    c.step,
                    loaded.info.name,
                    loaded.dtype,
                    loaded.rows,
                    loaded.cols,
                    i0.tensor,
                    i0.dtype,
                    i0.rows,
                    i0.cols,
                    self.files[0].path.display()
                ),
            ));
        }
        Ok(loaded.into_data())
    }
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
