//! safetensors files, memory-mapped.
//!
//! The header is parsed and validated by the `safetensors` crate (header length
//! bounded at 100 MB and by the file, offsets contiguous, dtype × shape equal to
//! each tensor's byte range, the data ending exactly at the end of the file)
//! before any tensor byte is read, and nothing is allocated from a declared size.
//! Only the pages of the chosen tensor are touched afterwards.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype as StDtype, SafeTensorError, SafeTensors};

use super::{LoadOptions, TensorInfo};
use crate::dtype::Dtype;
use crate::error::{one_line, Error, Result};
use crate::matrix::Matrix;

/// Names tried, in order, when `--key` is not given and the file holds more
/// than one 2-D tensor.
pub const DEFAULT_KEYS: &[&str] = &[
    "embeddings",
    "model.embed_tokens.weight",
    "transformer.wte.weight",
    "wte.weight",
    "embed_tokens.weight",
    "tok_embeddings.weight",
    "embedding.weight",
    "lm_head.weight",
];

/// An open, memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
}

impl SafetensorsFile {
    /// Opens and maps `path`, and checks that its header is valid.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(Error::Format {
                path: path.to_path_buf(),
                reason: "it is a directory".into(),
            });
        }
        if meta.len() < 8 {
            return Err(Error::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "the file is {} bytes long, shorter than the 8-byte header length",
                    meta.len()
                ),
            });
        }
        // SAFETY: the map is read-only; like every mmap-based reader we rely on the
        // file not being truncated by another process while we read it.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let this = Self {
            path: path.to_path_buf(),
            mmap,
        };
        this.parse()?;
        Ok(this)
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| Error::Format {
            path: self.path.clone(),
            reason: one_line(&describe(&e, &self.mmap)),
        })
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chooses the tensor (see [`DEFAULT_KEYS`]) and returns a view of it.
    pub fn matrix(&self, opts: &LoadOptions) -> Result<(TensorInfo, Matrix<'_>)> {
        let st = self.parse()?;
        let tensor_err = |reason: String| Error::Tensor {
            path: self.path.clone(),
            reason,
        };
        let mut names: Vec<&str> = st.names();
        names.sort_unstable();
        let two_d: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| st.tensor(n).map(|t| t.shape().len() == 2).unwrap_or(false))
            .collect();
        let listing = || {
            if two_d.is_empty() {
                "the file holds no 2-D tensor".to_string()
            } else {
                let items: Vec<String> = two_d
                    .iter()
                    .filter_map(|n| st.tensor(n).ok().map(|t| (n, t)))
                    .map(|(n, t)| format!("{n:?} {:?} {:?}", t.shape(), t.dtype()))
                    .collect();
                format!("2-D tensors: {}", items.join(", "))
            }
        };
        let name: String = match &opts.key {
            Some(k) => {
                if st.tensor(k).is_err() {
                    return Err(tensor_err(format!("no tensor named {k:?}; {}", listing())));
                }
                k.clone()
            }
            None if two_d.len() == 1 => two_d[0].to_string(),
            None => match DEFAULT_KEYS.iter().find(|k| two_d.contains(k)) {
                Some(k) => k.to_string(),
                None => {
                    return Err(tensor_err(format!(
                        "no embedding tensor found (pick one with --key); {}",
                        listing()
                    )))
                }
            },
        };
        let view = st
            .tensor(&name)
            .map_err(|e| tensor_err(format!("tensor {name:?}: {e}")))?;
        let shape = view.shape();
        if shape.len() != 2 {
            return Err(tensor_err(format!(
                "tensor {name:?} has shape {shape:?}; an embedding matrix must be 2-D"
            )));
        }
        let (rows, cols) = (shape[0], shape[1]);
        if rows == 0 || cols == 0 {
            return Err(tensor_err(format!(
                "tensor {name:?} has shape {shape:?}: no rows or no columns to survey"
            )));
        }
        let stored = view.dtype();
        let dtype = match (stored, opts.reinterpret) {
            (StDtype::F32, None) => Dtype::F32,
            (StDtype::F16, None) => Dtype::F16,
            (StDtype::BF16, None) => Dtype::BF16,
            (StDtype::F64, None) => Dtype::F64,
            (StDtype::U16 | StDtype::I16, Some(d @ (Dtype::BF16 | Dtype::F16))) => d,
            (StDtype::U16 | StDtype::I16, _) => {
                return Err(tensor_err(format!(
                    "tensor {name:?} is {stored:?}; say how to read its bits with --as bf16 or --as f16"
                )))
            }
            (StDtype::F32 | StDtype::F16 | StDtype::BF16 | StDtype::F64, Some(_)) => {
                return Err(Error::Usage(format!(
                    "{}: --as applies to U16/I16 tensors only; tensor {name:?} is {stored:?}",
                    one_line(&self.path.display().to_string())
                )))
            }
            (other, _) => {
                return Err(tensor_err(format!(
                    "tensor {name:?} has dtype {other:?}; supported: F32, F16, BF16, F64, and U16/I16 with --as bf16|f16"
                )))
            }
        };
        let matrix = Matrix::new(dtype, rows, cols, view.data()).ok_or_else(|| {
            tensor_err(format!(
                "tensor {name:?}: data length does not match shape {shape:?}"
            ))
        })?;
        Ok((
            TensorInfo {
                name,
                stored_dtype: format!("{stored:?}"),
            },
            matrix,
        ))
    }
}

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
