//! `--series`: a folder of checkpoints, or the checkpoint files, one per
//! step, ordered by the step number in each name.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{step_number, SeriesInfo, StepBytes, StepSelection, StepSource};
use crate::error::{Error, Result};
use crate::load::container::zip;
use crate::load::format::npy;
use crate::load::model::{open, open_tensor, LoadOptions};
use crate::load::resolve::{sniff_path, zip_contents, Sniffed, ZipContents};
use crate::load::source::{map_file, Bytes};
use crate::load::vocab::TokenNames;
use crate::progress::Progress;

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
    /// Whether the first step's tensor is quantized: then every step's is,
    /// in the same type (its stored blocks are the tokens' identity).
    quantized: bool,
    /// The first step, read when the series was opened.
    first: Option<StepBytes>,
    /// The first step's file layout, when later steps laid out alike can
    /// skip the loader.
    layout: Option<Layout>,
}

/// The layout of the first step's file, a safetensors file: a later step's
/// file of the same length whose header bytes are the same holds the
/// tensor at the same place (the first step's header was checked whole),
/// and is mapped without the loader: opening a checkpoint through it
/// (sniffing, parsing the header from the map, which faults its first
/// pages in and makes unmapping flush them from every core) costs a folder
/// of small steps more than reading them.
struct Layout {
    /// The header length field and the header.
    header: Vec<u8>,
    file_len: u64,
    /// Where the tensor's bytes lie in the file.
    range: std::ops::Range<usize>,
    /// Steps read this way.
    read: std::sync::atomic::AtomicUsize,
}

/// The longest header the layout of a series keeps (the first step's
/// header is checked whatever its length; past this the loader opens every
/// step).
const MAX_LAYOUT_HEADER: usize = 1 << 20;

impl Layout {
    /// The layout of the first step, `path`, whose tensor bytes are `data`:
    /// `None` unless they lie in a safetensors file at `path` itself.
    fn of(path: &Path, format: &str, data: &Bytes) -> Option<Self> {
        let (map, offset) = data.in_file()?;
        if format != crate::load::format::safetensors::FORMAT || map.path() != path {
            return None;
        }
        let n = u64::from_le_bytes(map.get(..8)?.try_into().ok()?);
        let end = usize::try_from(n).ok()?.checked_add(8)?;
        if end > MAX_LAYOUT_HEADER {
            return None;
        }
        let start = usize::try_from(offset).ok()?;
        Some(Self {
            header: map.get(..end)?.to_vec(),
            file_len: map.len() as u64,
            range: start..start.checked_add(data.len())?,
            read: Default::default(),
        })
    }

    /// The tensor's bytes in the file at `path`, when it is laid out as the
    /// first step's; `None` when it is not (the loader then opens it, and
    /// says what is wrong with it).
    fn read(&self, path: &Path) -> Result<Option<Bytes>> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // Anything unexpected (a folder, an error) is left to the loader.
        let Ok(file) = std::fs::File::open(path) else {
            return Ok(None);
        };
        let Ok(meta) = file.metadata() else {
            return Ok(None);
        };
        if !meta.is_file() || meta.len() != self.file_len {
            return Ok(None);
        }
        let mut header = vec![0; self.header.len()];
        if std::io::Read::read_exact(&mut &file, &mut header).is_err() || header != self.header {
            return Ok(None);
        }
        // SAFETY: read-only map, as every mapped reader's (the file must not
        // be truncated while it is read).
        let map = unsafe { crate::load::Map::new(file, path) }.map_err(io)?;
        self.read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Bytes::mapped(std::sync::Arc::new(map), self.range.clone()))
    }
}

/// Whether the file at `path` starts like a checkpoint in a format we read
/// (judged by its first bytes; an HDF5 file is a trajectory, not a step).
fn holds_checkpoint(path: &Path) -> bool {
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
    let Ok((sniffed, head)) = sniff_path(path) else {
        return false;
    };
    match sniffed {
        Sniffed::Gguf => true,
        // A torch.save checkpoint or an .npz, not any zip (logs, archives).
        Sniffed::Zip => map_file(path, "zip").is_ok_and(|map| {
            zip::entries(&map).is_ok_and(|e| !matches!(zip_contents(&e), ZipContents::Unknown))
        }),
        // A matrix, not a saved array of losses.
        Sniffed::Npy => map_file(path, ".npy")
            .is_ok_and(|map| npy::parse(&map).is_ok_and(|n| n.shape.len() == 2)),
        // A bare pickle is a legacy torch file or pickled arguments: no step
        // we read. An HDF5 file is a trajectory.
        Sniffed::Pickle | Sniffed::Hdf5 | Sniffed::Unknown => false,
        // Safetensors: an 8-byte header length that fits the file.
        Sniffed::Safetensors => u64::from_le_bytes(head[..8].try_into().unwrap_or([0xff; 8]))
            .checked_add(8)
            .is_some_and(|end| end <= meta.len()),
    }
}

/// The checkpoints `paths` name, and notes on what was skipped: one folder
/// stands for its entries whose names hold a step number and that hold a
/// checkpoint in a format we read (files, and model folders such as
/// `checkpoint-500/`); two paths or more are the checkpoints themselves
/// (files or model folders), each name holding a step number. Ordered by
/// step number, never by name. With `progress`, a folder whose scan takes
/// more than a few seconds shows a count of the entries seen (on a terminal).
fn checkpoints(paths: &[PathBuf], progress: bool) -> Result<(Vec<Checkpoint>, Vec<String>)> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut found = Vec::new();
    let mut notices = Vec::new();
    if let [dir] = paths {
        if dir.is_dir() {
            let mut skipped = Vec::new();
            let bar = if progress {
                Progress::for_steps(None, "scanning the folder")
            } else {
                Progress::hidden()
            };
            // Entries with a step number in their name, then which hold a
            // checkpoint: opening each to look is most of a scan, done in
            // parallel.
            let mut numbered = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                bar.inc(1);
                let path = entry.map_err(io(dir))?.path();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.starts_with('.') {
                    continue;
                }
                match step_number(&path) {
                    Some(step) => numbered.push((name, Checkpoint { step, path })),
                    None if name.bytes().any(|b| b.is_ascii_digit()) => skipped.push(name),
                    None => {}
                }
            }
            let holds: Vec<bool> = numbered
                .par_iter()
                .map(|(_, c)| holds_checkpoint(&c.path))
                .collect();
            for ((name, c), holds) in numbered.into_iter().zip(holds) {
                match holds {
                    true => found.push(c),
                    false => skipped.push(name),
                }
            }
            bar.finish();
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

/// Opens a series of checkpoint files (see `checkpoints`), keeping the
/// steps `sel` selects. The first step is read now: it fixes the tensor,
/// shape and dtype that every other step must have. With `progress`, a
/// folder whose scan takes more than a few seconds shows a count (on a
/// terminal).
pub fn open_series(
    paths: &[PathBuf],
    opts: &LoadOptions,
    sel: &StepSelection,
    progress: bool,
) -> Result<Box<dyn StepSource>> {
    Ok(Box::new(open_files(paths, opts, sel, progress)?))
}

/// [`open_series`], as the series of files it is.
fn open_files(
    paths: &[PathBuf],
    opts: &LoadOptions,
    sel: &StepSelection,
    progress: bool,
) -> Result<FileSeries> {
    let (all, mut notices) = checkpoints(paths, progress)?;
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
    let mut loaded = open(&head.path, &first_opts)?;
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
    let stored = loaded.identity.take();
    let data = loaded.into_data();
    let layout = match stored {
        None => Layout::of(&head.path, info.format, &data),
        Some(_) => None,
    };
    Ok(FileSeries {
        info,
        steps: files.iter().map(|c| c.step).collect(),
        files,
        tokens,
        notices,
        opts: step_load_options(opts),
        quantized: stored.is_some(),
        first: Some(StepBytes {
            values: data,
            stored,
        }),
        layout,
    })
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
        self.read_step(i).map(|s| s.values)
    }

    /// Steps laid out as the first are opened in parallel (opening a file
    /// is most of the work of a small step); the others through the loader,
    /// in order.
    fn read_steps(&mut self, range: std::ops::Range<usize>) -> Result<Vec<StepBytes>> {
        let Some(layout) = &self.layout else {
            return range.map(|i| self.read_step(i)).collect();
        };
        let files = self.files.get(range.clone()).unwrap_or(&[]);
        let fast: Vec<Option<Bytes>> = files
            .par_iter()
            .enumerate()
            .map(|(k, c)| match range.start + k {
                0 => Ok(None),
                _ => layout.read(&c.path),
            })
            .collect::<Result<_>>()?;
        (range.zip(fast))
            .map(|(i, f)| match f {
                Some(values) => Ok(StepBytes {
                    values,
                    stored: None,
                }),
                None => self.read_step(i),
            })
            .collect()
    }

    fn read_step(&mut self, i: usize) -> Result<StepBytes> {
        if i == 0 {
            if let Some(first) = self.first.take() {
                return Ok(first);
            }
        }
        let c = self
            .files
            .get(i)
            .ok_or_else(|| Error::Usage(format!("step {i} of a series of {}", self.files.len())))?;
        if let Some(layout) = &self.layout {
            if let Some(values) = layout.read(&c.path)? {
                return Ok(StepBytes {
                    values,
                    stored: None,
                });
            }
        }
        let mut loaded = open_tensor(&c.path, &self.opts)?;
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
        // A quantized tensor's identity is its stored blocks, so a row is
        // the same token vector at two steps only when both store it alike.
        let quantized = loaded.identity.is_some();
        if (quantized || self.quantized) && loaded.info.stored_dtype != i0.stored_dtype {
            return Err(series_error(
                &c.path,
                format!(
                    "step {} stores {} as {}, but the series stores it as {} (from {}); a quantized tensor's rows are compared by their stored blocks, so every step must store it alike",
                    c.step,
                    loaded.info.name,
                    loaded.info.stored_dtype,
                    i0.stored_dtype,
                    self.files[0].path.display()
                ),
            ));
        }
        let stored = loaded.identity.take();
        Ok(StepBytes {
            values: loaded.into_data(),
            stored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_laid_out_as_the_first_skip_the_loader_and_others_do_not() {
        // The fixture run's 61 steps, one of them rewritten with metadata
        // in its header (another layout): it alone goes through the loader.
        let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/series/run");
        let dir = tempfile::tempdir().unwrap();
        let mut count = 0;
        for entry in std::fs::read_dir(&run).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            if path.file_name().is_some_and(|n| n == "step_7.safetensors") {
                let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
                let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().trim_end();
                let header = format!("{{\"__metadata__\":{{\"step\":\"7\"}},{}", &header[1..]);
                let mut out = (header.len() as u64).to_le_bytes().to_vec();
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(&bytes[8 + n..]);
                bytes = out;
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), bytes).unwrap();
            count += 1;
        }
        assert_eq!(count, 61);
        let opts = LoadOptions::default();
        let sel = StepSelection::default();
        let mut series = open_files(&[dir.path().to_path_buf()], &opts, &sel, false).unwrap();
        let (mut all, mut first) = (Vec::new(), None);
        for i in 0..series.steps().len() {
            let values = series.read(i).unwrap();
            first.get_or_insert_with(|| values.to_vec());
            all.push(values.to_vec());
        }
        let direct: Vec<Vec<u8>> = (0..all.len())
            .map(|i| {
                let path = dir
                    .path()
                    .join(format!("step_{}.safetensors", series.steps()[i]));
                open_tensor(&path, &opts).unwrap().into_data().to_vec()
            })
            .collect();
        assert_eq!(all, direct, "the same bytes as the loader's");
        let layout_reads =
            (series.layout.as_ref()).map(|l| l.read.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(
            layout_reads,
            Some(59),
            "60 later steps, one laid out otherwise"
        );
    }
}
