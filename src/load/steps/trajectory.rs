//! `--trajectory FILE --key W`: one 3-D tensor `[steps, tokens, dim]` read a
//! step at a time.
//!
//! A safetensors file, or an HDF5 file as h5py writes it ([`crate::load::format::hdf5`]).
//! Step numbers are the indices along axis 0. Memory holds a few steps
//! whatever their number: safetensors and contiguous HDF5 steps are ranges
//! of one memory map (which the CPU engine reads with positioned reads, its
//! pages untouched; pages touched are given back behind the reader,
//! [`StepSource::release_before`]); chunked HDF5 steps come from one decoded slab (the
//! steps a chunk spans) at a time. The list of steps is the selected ones
//! only, computed from the selection rather than from a list of every step
//! (a file of a few KB can declare 10^12 steps, unwritten), and at most
//! [`MAX_SELECTED_STEPS`] of them.

use std::path::{Path, PathBuf};

use super::{SeriesInfo, StepSelection, StepSource};
use crate::error::{one_line, Error, Result};
use crate::load::choose::read_as;
use crate::load::format::hdf5::{self, Hdf5File, Hdf5Steps};
use crate::load::format::safetensors::SafetensorsFile;
use crate::load::model::LoadOptions;
use crate::load::resolve::{sniff_path, unknown_format, Sniffed};
use crate::load::source::{Bytes, StoredDtype, TensorDesc, TensorSource};
use crate::load::vocab::{find_tokenizer, TokenNames};

/// The most steps a trajectory survey reads: the series keeps a few numbers
/// per step and surveys every step, so a million steps is hours of work;
/// `--steps START:END:EVERY` picks fewer from a longer run.
pub const MAX_SELECTED_STEPS: u64 = 1 << 20;

/// Opens the trajectory tensor `opts.key` of `path` (safetensors or HDF5),
/// keeping the steps `sel` selects.
pub fn open_trajectory(
    path: &Path,
    opts: &LoadOptions,
    sel: &StepSelection,
) -> Result<Box<dyn StepSource>> {
    let (sniffed, head) = sniff_path(path)?;
    let (tensors, format, reader): (Vec<TensorDesc>, &'static str, OpenSteps) = match sniffed {
        Sniffed::Hdf5 => {
            let file = Hdf5File::open(path)?;
            let tensors = file.tensors().to_vec();
            let open =
                move |i: usize| -> Result<Steps> { Ok(Steps::Hdf5(Box::new(file.steps(i)?))) };
            (tensors, hdf5::FORMAT, Box::new(open))
        }
        Sniffed::Unknown => return Err(unknown_format(path, &head)),
        Sniffed::Safetensors => {
            let file = SafetensorsFile::open(path)?;
        let tensors = file.tensors().to_vec();
            let open = move |i: usize| -> Result<Steps> { Ok(Steps::Mapped(file.data(i)?)) };
            (
                tensors,
                crate::load::format::safetensors::FORMAT,
                Box::new(open),
            )
        }
        Sniffed::Zip | Sniffed::Gguf | Sniffed::Npy | Sniffed::Pickle => {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: "--trajectory reads a [step, token, dim] tensor from a safetensors or HDF5 file, and this is a checkpoint of one step (survey it with --file, or a folder of them with --series)".into(),
            })
        }
    };
    let index = choose_3d(path, &tensors, opts.key.as_deref())?;
    let t = &tensors[index];
    if !matches!(
        t.dtype,
        StoredDtype::F32
            | StoredDtype::F16
            | StoredDtype::BF16
            | StoredDtype::F64
            | StoredDtype::U16
            | StoredDtype::I16
    ) {
        return Err(tensor_err(
            path,
            format!(
                "tensor {:?} has dtype {}; a trajectory is F32, F16, BF16, F64, or U16/I16 with --as bf16|f16",
                t.name, t.dtype
            ),
        ));
    }
    let dtype = read_as(path, t, opts.reinterpret)?;
    let [n_steps, rows, cols] = t.shape[..] else {
        return Err(tensor_err(path, format!("tensor {:?} is not 3-D", t.name)));
    };
    let step_bytes = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| tensor_err(path, format!("tensor {:?} is too large", t.name)))?;
    let mut reader = reader(index)?;
    if let Steps::Mapped(all) = &reader {
        if Some(all.len()) != step_bytes.checked_mul(n_steps) {
            return Err(tensor_err(
                path,
                format!(
                    "tensor {:?}: data length {} does not match shape {:?}",
                    t.name,
                    all.len(),
                    t.shape
                ),
            ));
        }
    }
    let steps = selected_steps(sel, n_steps as u64).map_err(|n| {
        tensor_err(
            path,
            format!(
                "tensor {:?} has {n_steps} steps and --steps selects {n} of them, more than the {MAX_SELECTED_STEPS} a trajectory survey reads; pick fewer with --steps START:END:EVERY",
                t.name
            ),
        )
    })?;
    if steps.is_empty() {
        return Err(tensor_err(
            path,
            if n_steps == 0 {
                format!("tensor {:?} has no steps (shape {:?})", t.name, t.shape)
            } else {
                format!(
                    "--steps selects none of the {n_steps} steps (0–{})",
                    n_steps - 1
                )
            },
        ));
    }
    // Every step of a slab read: its steps share it, and a batch is a slab.
    let dense = steps.windows(2).all(|w| w[1] == w[0] + 1);
    if let Steps::Hdf5(h) = &mut reader {
        h.share = dense;
    }
    let (tokens, notice) = find_tokenizer(opts.tokenizer.as_deref(), None, path.parent())?;
    Ok(Box::new(Trajectory {
        path: path.to_path_buf(),
        info: SeriesInfo {
            tensor: t.name.clone(),
            stored_dtype: t.dtype.to_string(),
            format,
            dtype,
            rows,
            cols,
        },
        steps,
        step_bytes,
        reader,
        tokens,
        notices: notice.into_iter().collect(),
    }))
}

/// The step numbers `sel` keeps of `0..n_steps`, as
/// [`StepSelection::select`] keeps them (the steps in `START..=END`, then
/// every `EVERY`-th from the first), computed without listing every step;
/// `Err` with their number when there are more than [`MAX_SELECTED_STEPS`].
fn selected_steps(sel: &StepSelection, n_steps: u64) -> std::result::Result<Vec<u64>, u64> {
    let first = sel.start.unwrap_or(0);
    let last = sel.end.unwrap_or(u64::MAX).min(n_steps.saturating_sub(1));
    if n_steps == 0 || first > last {
        return Ok(Vec::new());
    }
    let every = sel.every.unwrap_or(1).max(1);
    let count = (last - first) / every + 1;
    if count > MAX_SELECTED_STEPS {
        return Err(count);
    }
    Ok((0..count).map(|k| first + k * every).collect())
}

/// Opens the reader of tensor `i` of the file it captured.
type OpenSteps = Box<dyn FnOnce(usize) -> Result<Steps>>;

fn tensor_err(path: &Path, reason: String) -> Error {
    Error::Tensor {
        path: path.to_path_buf(),
        reason,
    }
}

/// `--key` when given, else the only 3-D tensor; an error listing the 3-D
/// tensors otherwise, or when the chosen one is not 3-D with rows and columns.
pub fn choose_3d(path: &Path, tensors: &[TensorDesc], key: Option<&str>) -> Result<usize> {
    let cubes: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].shape.len() == 3)
        .collect();
    let listing = || {
        if cubes.is_empty() {
            "the file holds no 3-D tensor".to_string()
        } else {
            let items: Vec<String> = cubes
                .iter()
                .map(|&i| {
                    let t = &tensors[i];
                    format!("{:?} {:?} {}", t.name, t.shape, t.dtype)
                })
                .collect();
            format!("3-D tensors: {}", items.join(", "))
        }
    };
    let index = match key {
        Some(k) => {
            let k = k.strip_prefix('/').unwrap_or(k);
            tensors.iter().position(|t| t.name == k).ok_or_else(|| {
                tensor_err(
                    path,
                    format!("no tensor named {:?}; {}", one_line(k), listing()),
                )
            })?
        }
        None => match cubes.as_slice() {
            [only] => *only,
            _ => {
                return Err(tensor_err(
                    path,
                    format!(
                        "no single 3-D tensor [step, token, dim] to read (pick one with --key); {}",
                        listing()
                    ),
                ))
            }
        },
    };
    let t = &tensors[index];
    if t.shape.len() != 3 {
        return Err(tensor_err(
            path,
            format!(
                "tensor {:?} has shape {:?}; a trajectory must be 3-D [step, token, dim]",
                t.name, t.shape
            ),
        ));
    }
    if t.shape[1] == 0 || t.shape[2] == 0 {
        return Err(tensor_err(
            path,
            format!(
                "tensor {:?} has shape {:?}: no tokens or no dimensions to survey",
                t.name, t.shape
            ),
        ));
    }
    Ok(index)
}

/// Where the steps' bytes come from.
enum Steps {
    /// The whole tensor in a memory map (safetensors).
    Mapped(Bytes),
    /// An HDF5 dataset (mapped when contiguous, else by slab).
    Hdf5(Box<Hdf5Steps>),
}

/// A trajectory tensor opened for reading.
struct Trajectory {
    path: PathBuf,
    info: SeriesInfo,
    steps: Vec<u64>,
    step_bytes: usize,
    reader: Steps,
    tokens: Option<TokenNames>,
    notices: Vec<String>,
}

impl StepSource for Trajectory {
    fn info(&self) -> &SeriesInfo {
        &self.info
    }
    fn steps(&self) -> &[u64] {
        &self.steps
    }
    fn inputs(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
    fn tokens(&self) -> Option<&TokenNames> {
        self.tokens.as_ref()
    }
    fn notices(&self) -> Vec<String> {
        self.notices.clone()
    }
    fn read(&mut self, i: usize) -> Result<Bytes> {
        let step = self.steps.get(i).copied().ok_or_else(|| {
            tensor_err(
                &self.path,
                format!("step number {i} asked for; {} selected", self.steps.len()),
            )
        })? as usize;
        let size = self.step_bytes;
        match &mut self.reader {
            Steps::Mapped(all) => all
                .slice(step * size..(step + 1) * size)
                .ok_or_else(|| tensor_err(&self.path, format!("step {step} outside the tensor"))),
            Steps::Hdf5(h) => h.step(step),
        }
    }
    fn release_before(&mut self, i: usize) {
        let Some(&step) = self.steps.get(i) else {
            return;
        };
        let end = step as usize * self.step_bytes;
        match &mut self.reader {
            Steps::Mapped(all) => all.release(0..end),
            Steps::Hdf5(h) => h.release_before(step as usize),
        }
    }
    fn slab_steps(&self) -> Option<usize> {
        match &self.reader {
            Steps::Hdf5(h) => h.slab_steps().filter(|&s| s > 1 && h.share),
            Steps::Mapped(_) => None,
        }
    }
    fn batch_end(&self, i: usize, max: usize) -> usize {
        let end = i.saturating_add(max).min(self.steps.len());
        let Some(s) = self.slab_steps().map(|s| s as u64) else {
            return end;
        };
        if end >= self.steps.len() {
            return end;
        }
        // The last start of a slab after the batch's first step, if any.
        (i + 1..=end)
            .rev()
            .find(|&j| self.steps[j] / s != self.steps[j - 1] / s)
            .unwrap_or(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_steps_are_those_select_keeps_from_the_list_of_every_step() {
        for n in 0..40u64 {
            let all: Vec<u64> = (0..n).collect();
            for text in [
                ":", "::3", "5:", ":7", "3:11:2", "0:0", "39:", "40:", "2:2:5", "1:38:7", "::100",
            ] {
                let sel = StepSelection::parse(text).unwrap();
                let want: Vec<u64> = sel.select(&all).into_iter().map(|i| all[i]).collect();
                assert_eq!(selected_steps(&sel, n), Ok(want), "{text} of {n}");
            }
        }
    }

    /// The resident bytes of this process's mappings of `path`
    /// (`/proc/self/smaps`), `None` where that file is not there.
    fn resident(path: &Path) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let name = path.canonicalize().ok()?.display().to_string();
        let mut inside = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if first.contains('-') && !first.ends_with(':') {
                inside = line.ends_with(&name);
            } else if inside && first == "Rss:" {
                kb += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            }
        }
        Some(kb * 1024)
    }

    #[test]
    fn steps_released_leave_the_resident_set_and_read_the_same_again() {
        // 64 steps of 64 KiB (256 rows × 128 f32): each step's pages are
        // whole pages of every size Linux uses.
        let (steps, rows, cols) = (64usize, 256usize, 128usize);
        let step_bytes = rows * cols * 4;
        let header = format!(
            "{{\"W\":{{\"dtype\":\"F32\",\"shape\":[{steps},{rows},{cols}],\"data_offsets\":[0,{}]}}}}",
            steps * step_bytes
        );
        // Padded so that the data start on a 64 KiB boundary of the file.
        let mut header = header.into_bytes();
        header.resize((64 << 10) - 8, b' ');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("W.safetensors");
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(&header);
        file.extend((0..steps * step_bytes).map(|i| (i / 4 % 251) as u8));
        std::fs::write(&path, &file).unwrap();
        let opts = LoadOptions {
            key: Some("W".into()),
            ..Default::default()
        };
        let mut source = open_trajectory(&path, &opts, &StepSelection::default()).unwrap();
        let sum = |b: &Bytes| b.iter().map(|&x| x as u64).sum::<u64>();
        let mut sums = Vec::new();
        for i in 0..steps {
            sums.push(sum(&source.read(i).unwrap()));
        }
        let Some(all) = resident(&path) else {
            return; // no /proc here
        };
        assert!(all >= (steps * step_bytes) as u64, "{all}");
        source.release_before(48);
        let rest = resident(&path).unwrap();
        // 16 steps left, and the header's page.
        assert!(rest <= (16 * step_bytes + (64 << 10)) as u64, "{rest}");
        // Released steps read the same again (faulted in from the file).
        for (i, &want) in sums.iter().enumerate() {
            assert_eq!(sum(&source.read(i).unwrap()), want, "step {i}");
        }
    }

    #[test]
    fn batches_of_a_chunked_trajectory_end_where_its_slabs_do() {
        // chunks (4, 3, 2) over 9 steps: slabs 0..4, 4..8, 8..9.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/trajectory/gzip_shuffle_u16.h5");
        let opts = LoadOptions {
            reinterpret: Some(crate::dtype::Dtype::BF16),
            ..Default::default()
        };
        let all = open_trajectory(&path, &opts, &StepSelection::default()).unwrap();
        // Two slabs fit in 8 steps, one in 6; a batch shorter than a
        // slab ends where it must; the last batch ends with the steps.
        assert_eq!(all.batch_end(0, 9), 9);
        assert_eq!(all.batch_end(0, 8), 8);
        assert_eq!(all.batch_end(0, 6), 4);
        assert_eq!(all.batch_end(0, 3), 3);
        assert_eq!(all.batch_end(3, 3), 4);
        assert_eq!(all.batch_end(4, 4), 8);
        assert_eq!(all.batch_end(4, 64), 9);
        assert_eq!(all.slab_steps(), Some(4));
        // Selected steps 3 to 6: slabs change between 3 and 4.
        let some = open_trajectory(&path, &opts, &StepSelection::parse("3:6").unwrap()).unwrap();
        assert_eq!(some.steps(), &[3, 4, 5, 6]);
        assert_eq!(some.batch_end(0, 3), 1);
        assert_eq!(some.batch_end(1, 3), 4);
        // Every other step: copies, not slabs shared, and no slab batches.
        let odd = open_trajectory(&path, &opts, &StepSelection::parse("1::2").unwrap()).unwrap();
        assert_eq!(odd.slab_steps(), None);
        assert_eq!(odd.batch_end(0, 3), 3);
        // A contiguous file has no slabs.
        let flat = path.with_file_name("contiguous_u16.h5");
        let flat = open_trajectory(&flat, &opts, &StepSelection::default()).unwrap();
        assert_eq!(flat.batch_end(1, 5), 6);
    }

    #[test]
    fn a_selection_past_the_cap_is_refused_by_count_not_listed() {
        let all = StepSelection::parse(":").unwrap();
        assert_eq!(selected_steps(&all, 1 << 40), Err(1 << 40));
        assert_eq!(
            selected_steps(&all, MAX_SELECTED_STEPS).map(|s| s.len() as u64),
            Ok(MAX_SELECTED_STEPS)
        );
        let every = StepSelection::parse("::1048576").unwrap();
        assert_eq!(
            selected_steps(&every, 1 << 40).map(|s| (s.len(), s[1])),
            Ok((1 << 20, 1 << 20))
        );
        let end = StepSelection::parse("::").unwrap();
        assert_eq!(selected_steps(&end, u64::MAX), Err(u64::MAX));
    }
}
