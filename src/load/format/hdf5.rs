//! HDF5 files (as h5py writes them), memory-mapped, for trajectories.
//!
//! The file's structure (superblock, object headers, groups, chunk indexes,
//! filters) is parsed by the pure-Rust `hdf5-reader` crate, which checks
//! every address against the file and every decoded size against limits
//! before allocating (see README, "Reading HDF5", for why this crate). This
//! module lists the datasets as format-neutral [`TensorDesc`]s and reads one
//! 3-D dataset a step (an index along axis 0) at a time:
//!
//! - contiguous storage: zero-copy ranges of the file's memory map;
//! - chunked or compact storage: one *slab* at a time, the steps one chunk
//!   spans along axis 0, so that each chunk is decompressed once when the
//!   steps are read in order, and memory holds one slab whatever the number
//!   of steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::files::Map;
use hdf5_reader::error::{Error as H5Error, Result as H5Result};
use hdf5_reader::messages::layout::DataLayout;
use hdf5_reader::messages::HdfMessage;
use hdf5_reader::{
    ByteOrder, Dataset, Datatype, H5Type, Hdf5File as Reader, OpenOptions, SliceInfo, SliceInfoElem,
};

use crate::error::{one_line, Error, Result};
use crate::load::source::{map_file, Bytes, StoredDtype, TensorDesc};

/// The format's name in messages.
pub const FORMAT: &str = "hdf5";

/// The signature at the start of an HDF5 file (h5py writes it at offset 0).
pub const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Groups nested deeper than this are not listed (a file may link a group
/// into itself).
const MAX_DEPTH: usize = 16;

/// Datasets listed at most (a file is a trajectory, not an archive).
const MAX_DATASETS: usize = 4096;

/// A slab larger than this is not read whole: steps are read one by one.
const MAX_SLAB_BYTES: usize = 256 << 20;

/// deflate expands at most about 1032 times; no chunked dataset holds more
/// decoded bytes than this many times the file's length.
const MAX_EXPANSION: usize = 1100;

/// An open, memory-mapped HDF5 file and its datasets.
pub struct Hdf5File {
    path: PathBuf,
    map: Arc<Map>,
    reader: Reader,
    /// Every dataset, named by its path without the leading `/` (`run/W`).
    tensors: Vec<TensorDesc>,
    datasets: Vec<Dataset>,
}

/// The map, lent to the reader without copying.
struct MapOwner(Arc<Map>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Hdf5File {
    /// Opens and maps `path`, and lists its datasets.
    pub fn open(path: &Path) -> Result<Self> {
        let map = map_file(path, FORMAT)?;
        let reader = Reader::from_owner(MapOwner(map.clone()), options())
            .map_err(|e| format_error(path, &e))?;
        let (tensors, datasets) = list(&reader).map_err(|e| format_error(path, &e))?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            reader,
            tensors,
            datasets,
        })
    }

    /// Every dataset in the file.
    pub fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }

    /// A reader of dataset `index` (a 3-D dataset of a little-endian 2-, 4- or
    /// 8-byte type), one step at a time.
    pub fn steps(&self, index: usize) -> Result<Hdf5Steps> {
        let fail = |reason: String| Error::Format {
            path: self.path.clone(),
            format: FORMAT,
            reason,
        };
        let (t, ds) = self
            .tensors
            .get(index)
            .zip(self.datasets.get(index))
            .ok_or_else(|| fail(format!("no dataset number {index}")))?;
        let layout = StepLayout::of(t, self.map.len()).map_err(fail)?;
        let contiguous = contiguous_range(&self.reader, ds, self.map.len(), layout.total)
            .and_then(|r| Bytes::mapped(self.map.clone(), r));
        let slab_steps = match ds.chunks() {
            Some(c) => c.first().map_or(1, |&n| (n as usize).max(1)),
            None => layout.steps.max(1),
        };
        let slab_steps = if slab_steps.saturating_mul(layout.step_bytes) > MAX_SLAB_BYTES {
            1
        } else {
            slab_steps.min(layout.steps.max(1))
        };
        Ok(Hdf5Steps {
            path: self.path.clone(),
            name: t.name.clone(),
            dataset: ds.clone(),
            layout,
            contiguous,
            slab_steps,
            slab: None,
            slabs_read: 0,
            share: true,
        })
    }
}

/// Reads one 3-D dataset a step at a time.
pub struct Hdf5Steps {
    path: PathBuf,
    name: String,
    dataset: Dataset,
    layout: StepLayout,
    /// The whole dataset, when it is stored contiguously in the file.
    contiguous: Option<Bytes>,
    /// Steps per slab: the chunk's extent along axis 0.
    slab_steps: usize,
    /// The last slab decoded, while steps of it are still to be read: its
    /// number and its bytes, which the steps handed out share (it is freed
    /// with the last of them).
    slab: Option<(usize, Arc<Vec<u8>>)>,
    /// Slabs decoded so far.
    slabs_read: usize,
    /// Whether a step is handed out as a range of its slab (every step of
    /// it will be read) rather than a copy (a few will: a range would keep
    /// the whole slab alive for one step).
    pub share: bool,
}

impl Hdf5Steps {
    /// True when steps are ranges of the file's memory map.
    pub fn is_mapped(&self) -> bool {
        self.contiguous.is_some()
    }

    /// Gives back the mapped pages of the steps before `step` (a contiguous
    /// dataset; see [`Bytes::release`]).
    pub fn release_before(&mut self, step: usize) {
        if let Some(all) = &self.contiguous {
            all.release(0..step.min(self.layout.steps) * self.layout.step_bytes);
        }
    }

    /// Steps per slab when the dataset is read by slab (chunked or compact
    /// storage), `None` when steps are ranges of the map.
    pub fn slab_steps(&self) -> Option<usize> {
        self.contiguous.is_none().then_some(self.slab_steps)
    }

    /// How many slabs were decoded so far (each chunk is decoded with the
    /// one slab that holds it).
    pub fn slabs_read(&self) -> usize {
        self.slabs_read
    }

    /// The bytes of step `step` (an index along axis 0), little-endian,
    /// row-major.
    pub fn step(&mut self, step: usize) -> Result<Bytes> {
        let fail = |reason: String| Error::Format {
            path: self.path.clone(),
            format: FORMAT,
            reason,
        };
        let size = self.layout.step_bytes;
        if step >= self.layout.steps {
            return Err(fail(format!(
                "dataset {:?} has {} steps; step {step} asked for",
                self.name, self.layout.steps
            )));
        }
        if let Some(all) = &self.contiguous {
            return all
                .slice(step * size..(step + 1) * size)
                .ok_or_else(|| fail("step outside the dataset".into()));
        }
        let slab = step / self.slab_steps;
        if self.slab.as_ref().is_none_or(|(n, _)| *n != slab) {
            self.slab = None;
            let first = slab * self.slab_steps;
            let end = (first + self.slab_steps).min(self.layout.steps);
            let bytes = read_steps(&self.dataset, first, end, &self.layout).map_err(|e| {
                fail(format!(
                    "dataset {:?}, steps {first}..{end}: {}",
                    self.name,
                    one_line(&e.to_string())
                ))
            })?;
            self.slabs_read += 1;
            if self.slab_steps == 1 {
                // A slab of one step is that step: handed over as it is.
                if bytes.len() != size {
                    return Err(fail("slab shorter than its steps".into()));
                }
                return Ok(Bytes::owned(bytes));
            }
            self.slab = Some((slab, Arc::new(bytes)));
        }
        let start = (step - slab * self.slab_steps) * size;
        let b = match &self.slab {
            Some((_, b)) if !self.share => match b.get(start..start + size) {
                Some(b) => crate::load::alloc::copy(b, &format!("step {step} of {:?}", self.name))
                    .map(Bytes::owned)
                    .map_err(fail)?,
                None => return Err(fail("slab shorter than its steps".into())),
            },
            _ => self
                .slab
                .as_ref()
                .and_then(|(_, b)| Bytes::shared(b.clone(), start..start + size))
                .ok_or_else(|| fail("slab shorter than its steps".into()))?,
        };
        // Steps are read in order: after the slab's last step, the steps
        // handed out are all that hold it.
        if (step + 1).is_multiple_of(self.slab_steps) || step + 1 == self.layout.steps {
            self.slab = None;
        }
        Ok(b)
    }
}

/// Shape and sizes of a 3-D dataset, checked.
#[derive(Clone, Copy, Debug)]
struct StepLayout {
    steps: usize,
    rows: usize,
    cols: usize,
    elem: usize,
    step_bytes: usize,
    total: usize,
}

impl StepLayout {
    fn of(t: &TensorDesc, file_len: usize) -> std::result::Result<Self, String> {
        let [steps, rows, cols] = t.shape[..] else {
            return Err(format!(
                "dataset {:?} has shape {:?}, not 3-D",
                t.name, t.shape
            ));
        };
        let elem = elem_size(&t.dtype)
            .ok_or_else(|| format!("dataset {:?} has dtype {}", t.name, t.dtype))?;
        let too_big = || {
            format!(
                "dataset {:?} declares shape {:?} of {}, more than a file of {file_len} bytes can hold",
                t.name, t.shape, t.dtype
            )
        };
        let step_bytes = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(elem))
            .ok_or_else(too_big)?;
        let total = step_bytes.checked_mul(steps).ok_or_else(too_big)?;
        if total > file_len.saturating_mul(MAX_EXPANSION) {
            return Err(too_big());
        }
        Ok(Self {
            steps,
            rows,
            cols,
            elem,
            step_bytes,
            total,
        })
    }
}

/// Steps `first..end` of `ds`, decoded by the crate (chunks inflated,
/// unshuffled, fill values where no chunk was written).
fn read_steps(ds: &Dataset, first: usize, end: usize, l: &StepLayout) -> H5Result<Vec<u8>> {
    let range = |a: usize, b: usize| SliceInfoElem::Slice {
        start: a as u64,
        end: b as u64,
        step: 1,
    };
    let sel = SliceInfo {
        selections: vec![range(first, end), range(0, l.rows), range(0, l.cols)],
    };
    Ok(match l.elem {
        2 => flatten(ds.read_slice::<Raw<2>>(&sel)?.into_raw_vec_and_offset().0),
        4 => flatten(ds.read_slice::<Raw<4>>(&sel)?.into_raw_vec_and_offset().0),
        _ => flatten(ds.read_slice::<Raw<8>>(&sel)?.into_raw_vec_and_offset().0),
    })
}

fn flatten<const N: usize>(v: Vec<Raw<N>>) -> Vec<u8> {
    // Collected in place (same layout), then viewed as bytes.
    v.into_iter()
        .map(|r| r.0)
        .collect::<Vec<[u8; N]>>()
        .into_flattened()
}

/// One element's little-endian bytes, whatever its numeric type: the
/// engines decode bits themselves (`--as` decides for U16).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Raw<const N: usize>([u8; N]);

impl<const N: usize> H5Type for Raw<N> {
    fn hdf5_type() -> Datatype {
        Datatype::FixedPoint {
            size: N as u8,
            signed: false,
            byte_order: ByteOrder::LittleEndian,
        }
    }

    fn from_bytes(bytes: &[u8], dtype: &Datatype) -> H5Result<Self> {
        if !Self::native_copy_compatible(dtype) {
            return Err(H5Error::TypeMismatch {
                expected: format!("a little-endian {N}-byte number"),
                actual: format!("{dtype:?}"),
            });
        }
        bytes
            .get(..N)
            .and_then(|b| b.try_into().ok())
            .map(Raw)
            .ok_or_else(|| H5Error::InvalidData(format!("expected {N} bytes")))
    }

    fn element_size(_dtype: &Datatype) -> usize {
        N
    }

    fn native_copy_compatible(dtype: &Datatype) -> bool {
        // Raw holds bytes as stored; only little-endian storage is what the
        // engines read (checked when the dataset was listed).
        cfg!(target_endian = "little")
            && matches!(dtype,
                Datatype::FixedPoint { size, byte_order: ByteOrder::LittleEndian, .. }
                | Datatype::FloatingPoint { size, byte_order: ByteOrder::LittleEndian }
                    if *size as usize == N)
    }
}

/// The byte range of a contiguously stored dataset of `total` bytes, when it
/// lies inside `file`.
fn contiguous_range(
    reader: &Reader,
    ds: &Dataset,
    file_len: usize,
    total: usize,
) -> Option<std::ops::Range<usize>> {
    if !cfg!(target_endian = "little") {
        return None;
    }
    let header = reader.get_or_parse_header(ds.address()).ok()?;
    header.messages.iter().find_map(|m| match m {
        HdfMessage::DataLayout(l) => match &l.layout {
            DataLayout::Contiguous { address, size } => {
                let start = usize::try_from(*address).ok()?;
                let end = start.checked_add(total)?;
                (*size == total as u64 && end <= file_len).then_some(start..end)
            }
            _ => None,
        },
        _ => None,
    })
}

/// The options the reader opens files with: limits on what a header may make
/// it allocate, and no chunk cache of its own: a slab covers whole chunks
/// along axis 0, so each chunk is decoded for one slab only, and the slab is
/// the one cache.
fn options() -> OpenOptions {
    OpenOptions::default()
        .with_chunk_cache_bytes(0)
        .with_max_object_header_bytes(1 << 20)
        .with_max_chunk_bytes(1 << 30)
}

/// Every dataset under the root group, depth first, and its description.
fn list(reader: &Reader) -> H5Result<(Vec<TensorDesc>, Vec<Dataset>)> {
    let mut tensors = Vec::new();
    let mut datasets = Vec::new();
    let mut todo = vec![(reader.root_group()?, String::new(), 0usize)];
    while let Some((group, prefix, depth)) = todo.pop() {
        let (groups, sets) = group.members()?;
        for ds in sets {
            if datasets.len() >= MAX_DATASETS {
                break;
            }
            tensors.push(TensorDesc {
                name: format!("{prefix}{}", ds.name()),
                dtype: stored_dtype(ds.dtype()),
                shape: ds.shape().iter().map(|&n| n as usize).collect(),
            });
            datasets.push(ds);
        }
        if depth < MAX_DEPTH {
            for g in groups.into_iter().rev() {
                let name = format!("{prefix}{}/", g.name());
                todo.push((g, name, depth + 1));
            }
        }
    }
    Ok((tensors, datasets))
}

/// The dtype names the loaders share; big-endian and other types by name.
fn stored_dtype(d: &Datatype) -> StoredDtype {
    match d {
        Datatype::FloatingPoint {
            size,
            byte_order: ByteOrder::LittleEndian,
        } => match size {
            2 => StoredDtype::F16,
            4 => StoredDtype::F32,
            8 => StoredDtype::F64,
            n => StoredDtype::Other(format!("{n}-byte float")),
        },
        Datatype::FixedPoint {
            size: 2,
            signed,
            byte_order: ByteOrder::LittleEndian,
        } => {
            if *signed {
                StoredDtype::I16
            } else {
                StoredDtype::U16
            }
        }
        Datatype::FixedPoint {
            size,
            signed,
            byte_order: ByteOrder::LittleEndian,
        } => StoredDtype::Other(format!(
            "{}{}",
            if *signed { "I" } else { "U" },
            8 * *size as u32
        )),
        Datatype::FixedPoint { size, .. } | Datatype::FloatingPoint { size, .. } => {
            StoredDtype::Other(format!("big-endian {size}-byte number"))
        }
        other => StoredDtype::Other(
            format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("unknown")
                .to_string(),
        ),
    }
}

/// Bytes per element of the dtypes a step can be read as.
fn elem_size(d: &StoredDtype) -> Option<usize> {
    match d {
        StoredDtype::F16 | StoredDtype::BF16 | StoredDtype::U16 | StoredDtype::I16 => Some(2),
        StoredDtype::F32 => Some(4),
        StoredDtype::F64 => Some(8),
        _ => None,
    }
}

fn format_error(path: &Path, e: &H5Error) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        format: FORMAT,
        reason: one_line(&e.to_string()),
    }
}

/// Opens HDF5 bytes held in memory and reads every step of every 3-D
/// dataset of a 2-, 4- or 8-byte type: the fuzz target's entry point.
/// Returns the number of bytes read.
pub fn read_all(data: &[u8]) -> std::result::Result<usize, String> {
    let reader = Reader::from_bytes(data).map_err(|e| e.to_string())?;
    let (tensors, datasets) = list(&reader).map_err(|e| e.to_string())?;
    let mut read = 0;
    for (t, ds) in tensors.iter().zip(&datasets) {
        let Ok(layout) = StepLayout::of(t, data.len()) else {
            continue;
        };
        if let Some(r) = contiguous_range(&reader, ds, data.len(), layout.total) {
            read += data.get(r).map_or(0, <[u8]>::len);
            continue;
        }
        for step in 0..layout.steps.min(64) {
            let bytes = read_steps(ds, step, step + 1, &layout).map_err(|e| e.to_string())?;
            if bytes.len() != layout.step_bytes {
                return Err(format!("step {step}: {} bytes", bytes.len()));
            }
            read += bytes.len();
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/trajectory")
            .join(name)
    }

    #[test]
    fn steps_read_in_order_decode_each_slab_once() {
        // chunks (4, 3, 2) over 9 steps: slabs 0..4, 4..8, 8..9.
        let file = Hdf5File::open(&fixture("gzip_shuffle_u16.h5")).unwrap();
        let mut steps = file.steps(0).unwrap();
        assert!(!steps.is_mapped());
        for s in 0..9 {
            assert_eq!(steps.step(s).unwrap().len(), 5 * 3 * 2);
        }
        assert_eq!(steps.slabs_read(), 3);
        assert!(steps.step(9).is_err());
    }

    #[test]
    fn steps_share_their_slab_and_the_reader_lets_it_go_after_its_last() {
        // chunks (4, 3, 2) over 9 steps: slabs 0..4, 4..8, 8..9.
        let file = Hdf5File::open(&fixture("gzip_shuffle_u16.h5")).unwrap();
        let mut steps = file.steps(0).unwrap();
        assert_eq!(steps.slab_steps(), Some(4));
        let first = steps.step(0).unwrap();
        let held = |s: &Hdf5Steps| s.slab.as_ref().map(|(_, b)| Arc::strong_count(b));
        // The reader and the step handed out.
        assert_eq!(held(&steps), Some(2));
        let rest: Vec<Bytes> = (1..4).map(|s| steps.step(s).unwrap()).collect();
        // After step 3, only the four steps hold slab 0 (not copied).
        assert!(steps.slab.is_none());
        let base = first.as_ptr() as usize;
        for (k, b) in rest.iter().enumerate() {
            assert_eq!(
                b.as_ptr() as usize,
                base + (k + 1) * first.len(),
                "step {}",
                k + 1
            );
        }
        let fifth = steps.step(4).unwrap();
        assert_eq!(held(&steps), Some(2));
        assert_eq!(steps.slabs_read(), 2);
        assert_eq!(fifth.len(), first.len());
    }

    #[test]
    fn steps_not_shared_are_copies_and_read_the_same() {
        let file = Hdf5File::open(&fixture("gzip_shuffle_u16.h5")).unwrap();
        let mut shared = file.steps(0).unwrap();
        let mut copied = file.steps(0).unwrap();
        copied.share = false;
        let first = copied.step(0).unwrap();
        // Only the reader holds the slab: the step is a copy of its part.
        let held = copied.slab.as_ref().map(|(_, b)| Arc::strong_count(b));
        assert_eq!(held, Some(1));
        assert!(!first.is_mapped());
        assert_eq!(*first, *shared.step(0).unwrap());
        for s in 1..9 {
            assert_eq!(
                *copied.step(s).unwrap(),
                *shared.step(s).unwrap(),
                "step {s}"
            );
        }
    }

    #[test]
    fn a_slab_of_one_step_is_handed_over_and_reads_the_same() {
        let file = Hdf5File::open(&fixture("gzip_shuffle_u16.h5")).unwrap();
        let mut slabs = file.steps(0).unwrap();
        let mut one = file.steps(0).unwrap();
        one.slab_steps = 1;
        for s in 0..9 {
            let a = slabs.step(s).unwrap();
            let b = one.step(s).unwrap();
            assert_eq!(*a, *b, "step {s}");
        }
        assert_eq!(one.slabs_read(), 9);
        // Asked again, a step handed over is decoded again.
        assert_eq!(*one.step(8).unwrap(), *slabs.step(8).unwrap());
    }

    #[test]
    fn contiguous_steps_are_mapped() {
        let file = Hdf5File::open(&fixture("f32_contiguous.h5")).unwrap();
        let mut steps = file.steps(0).unwrap();
        assert!(steps.is_mapped());
        assert!(steps.step(8).unwrap().is_mapped());
        assert_eq!(steps.slabs_read(), 0);
    }

    #[test]
    fn datasets_in_groups_are_named_by_path() {
        let file = Hdf5File::open(&fixture("nested.h5")).unwrap();
        let mut names: Vec<&str> = file.tensors().iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["run/V", "run/W", "run/bias"]);
    }

    #[test]
    fn a_shape_too_large_for_the_file_is_refused_before_reading() {
        let t = TensorDesc {
            name: "W".into(),
            dtype: StoredDtype::F32,
            shape: vec![1 << 20, 1 << 20, 1 << 20],
        };
        assert!(StepLayout::of(&t, 4096)
            .unwrap_err()
            .contains("more than a file"));
        let t = TensorDesc {
            shape: vec![usize::MAX, 2, 2],
            ..t
        };
        assert!(StepLayout::of(&t, 4096).is_err());
    }
}
