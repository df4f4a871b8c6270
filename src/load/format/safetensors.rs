//! safetensors files, memory-mapped.
//!
//! The header is parsed and validated by the `safetensors` crate (header length
//! bounded at 100 MB and by the file, offsets contiguous, dtype × shape equal to
//! each tensor's byte range, the data ending exactly at the end of the file)
//! before any tensor byte is read, and nothing is allocated from a declared size.
//! Only the pages of the chosen tensor are touched afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::files::Map;
use safetensors::tensor::{Dtype as StDtype, SafeTensorError, SafeTensors};

use crate::error::{one_line, Error, Result};
use crate::load::source::{map_file, Bytes, StoredDtype, TensorDesc, TensorSource};

/// An open, memory-mapped safetensors file whose header was checked.
pub struct SafetensorsFile {
    path: PathBuf,
    map: Arc<Map>,
    tensors: Vec<TensorDesc>,
    /// Byte range of each tensor's data in the file, in `tensors`' order.
    ranges: Vec<std::ops::Range<usize>>,
}

/// The format's name in messages.
pub const FORMAT: &str = "safetensors";

impl SafetensorsFile {
    /// Opens and maps `path`, and checks that its header is valid.
    pub fn open(path: &Path) -> Result<Self> {
        let map = map_file(path, FORMAT)?;
        let (tensors, ranges) = parse(&map).map_err(|reason| Error::Format {
            path: path.to_path_buf(),
            format: FORMAT,
            reason,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            tensors,
            ranges,
        })
    }
}

impl TensorSource for SafetensorsFile {
    fn format(&self) -> &'static str {
        FORMAT
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }
    fn data(&self, index: usize) -> Result<Bytes> {
        self.ranges
            .get(index)
            .and_then(|r| Bytes::mapped(self.map.clone(), r.clone()))
            .ok_or_else(|| Error::Tensor {
                path: self.path.clone(),
                reason: format!("no tensor number {index}"),
            })
    }
}

/// The tensors of a whole safetensors file held in `file` (names sorted),
/// with each one's byte range in `file`; the reason it is not valid otherwise.
pub fn parse(
    file: &[u8],
) -> std::result::Result<(Vec<TensorDesc>, Vec<std::ops::Range<usize>>), String> {
    if file.len() < 8 {
        return Err(format!(
            "the file is {} bytes long, shorter than the 8-byte header length",
            file.len()
        ));
    }
    let st = SafeTensors::deserialize(file).map_err(|e| one_line(&describe(&e, file)))?;
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let base = file.as_ptr() as usize;
    let mut tensors = Vec::with_capacity(names.len());
    let mut ranges = Vec::with_capacity(names.len());
    for name in names {
        let view = st
            .tensor(name)
            .map_err(|e| one_line(&format!("tensor {name:?}: {e}")))?;
        let data = view.data();
        // The view borrows `file`: its position is an offset into it.
        let start = data.as_ptr() as usize - base;
        tensors.push(TensorDesc {
            name: name.to_string(),
            dtype: stored_dtype(view.dtype()),
            shape: view.shape().to_vec(),
        });
        ranges.push(start..start + data.len());
    }
    Ok((tensors, ranges))
}

fn stored_dtype(d: StDtype) -> StoredDtype {
    match d {
        StDtype::F64 => StoredDtype::F64,
        StDtype::F32 => StoredDtype::F32,
        StDtype::F16 => StoredDtype::F16,
        StDtype::BF16 => StoredDtype::BF16,
        StDtype::U16 => StoredDtype::U16,
        StDtype::I16 => StoredDtype::I16,
        other => StoredDtype::Other(format!("{other:?}")),
    }
}

/// The largest header the safetensors crate reads (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One sentence for each way a header can be wrong.
fn describe(e: &SafeTensorError, file: &[u8]) -> String {
    let declared = file
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    match e {
        SafeTensorError::HeaderTooSmall => "the file is too short to hold a header".into(),
        SafeTensorError::HeaderTooLarge => format!(
            "the header length field says {declared} bytes, more than the 100 MB a safetensors header may have"
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "the header length field says {declared} bytes but the file has only {} after it",
            file.len().saturating_sub(8)
        ),
        SafeTensorError::InvalidHeader(_) => "the header is not UTF-8 text".into(),
        SafeTensorError::InvalidHeaderDeserialization(err) | SafeTensorError::JsonError(err) => {
            format!("the header is not valid safetensors JSON ({err})")
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "the data offsets of tensor {name:?} overlap, leave a gap, or run backwards"
        ),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data offsets do not match its dtype and shape".into()
        }
        SafeTensorError::ValidationOverflow => {
            "a tensor's declared shape is too large to exist (its size overflows)".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the tensors' data does not end where the file ends (file is {} bytes): truncated or padded",
            file.len()
        ),
        SafeTensorError::MisalignedSlice => "a tensor does not fill whole bytes".into(),
        other => other.to_string(),
    }
}
