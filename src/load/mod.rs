//! Loading: [`open`] recognises an input by its content, each file format is
//! a sibling module that validates everything before touching tensor data,
//! and the tensor choice ([`choose`]) is made here, over a format-neutral
//! description of each tensor, so every format offers the same choices and
//! the same messages.
//!
//! A format hands back a tensor's stored bytes as [`Bytes`]: a range of a
//! memory map (zero-copy, the usual case) or a buffer of its own (a copy,
//! sized only after it was checked against the file).

pub mod bytes;
pub mod pickle;
pub mod pytorch;
pub mod safetensors;
pub mod zip;

use std::fmt;
use std::fs::File;
use std::sync::Arc;

use memmap2::Mmap;
use std::path::{Path, PathBuf};

pub use bytes::Bytes;

use crate::dtype::Dtype;
use crate::error::{one_line, Error, Result};
use crate::matrix::Matrix;

/// How the user asked for the tensor to be chosen and read.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--key`: the tensor's name; `None` picks one (see [`INPUT_EMBEDDING_KEYS`]).
    pub key: Option<String>,
    /// `--as`: how to read a U16/I16 tensor (bf16 or f16 bits stored as integers).
    pub reinterpret: Option<Dtype>,
}

/// A tensor's element type as stored in a file, named the same way whatever
/// the format (`F32`, `BF16`, `U16`, `Q4_K`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredDtype {
    F64,
    F32,
    F16,
    BF16,
    U16,
    I16,
    /// Anything else, by the name the format gives it (`I64`, `Q5_K`, `<c8`).
    Other(String),
}

impl fmt::Display for StoredDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            StoredDtype::F64 => "F64",
            StoredDtype::F32 => "F32",
            StoredDtype::F16 => "F16",
            StoredDtype::BF16 => "BF16",
            StoredDtype::U16 => "U16",
            StoredDtype::I16 => "I16",
            StoredDtype::Other(s) => return f.write_str(&one_line(s)),
        };
        f.write_str(s)
    }
}

/// What a format says of one tensor before any of its bytes is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    /// The name `--key` takes (a dotted path for nested checkpoints).
    pub name: String,
    pub dtype: StoredDtype,
    /// Dimensions, outermost first (rows, then columns, for a matrix).
    pub shape: Vec<usize>,
}

impl TensorDesc {
    fn is_matrix(&self) -> bool {
        self.shape.len() == 2
    }
}

/// An opened file of named tensors, already validated.
pub trait TensorSource {
    /// The format's name, as messages give it (`safetensors`, `GGUF`, …).
    fn format(&self) -> &'static str;
    /// The file the tensors are read from.
    fn path(&self) -> &Path;
    /// Every tensor in the file.
    fn tensors(&self) -> &[TensorDesc];
    /// The stored bytes of tensor `index` (an index into [`Self::tensors`]),
    /// row-major and little-endian, exactly as long as its dtype and shape say.
    fn data(&self, index: usize) -> Result<Bytes>;
}

/// Names tried, in order, when `--key` is not given and the file holds more
/// than one 2-D tensor: the input embedding of the usual architectures.
pub const INPUT_EMBEDDING_KEYS: &[&str] = &[
    "embeddings",
    "model.embed_tokens.weight",
    "embed_tokens.weight",
    "transformer.wte.weight",
    "wte.weight",
    "tok_embeddings.weight",
    "token_embd.weight",
    "embeddings.word_embeddings.weight",
    "bert.embeddings.word_embeddings.weight",
    "model.decoder.embed_tokens.weight",
    "gpt_neox.embed_in.weight",
    "embedding.weight",
    "lm_head.weight",
    "output.weight",
];

/// The error that lists the 2-D tensors found, with shape and dtype.
fn listing(tensors: &[TensorDesc]) -> String {
    let items: Vec<String> = tensors
        .iter()
        .filter(|t| t.is_matrix())
        .map(|t| format!("{:?} {:?} {}", t.name, t.shape, t.dtype))
        .collect();
    if items.is_empty() {
        "the file holds no 2-D tensor".to_string()
    } else {
        format!("2-D tensors: {}", items.join(", "))
    }
}

/// Picks the tensor to survey: `--key` when given, else the only 2-D tensor,
/// else the first of `preferred` present as a 2-D tensor.
pub fn choose(
    path: &Path,
    tensors: &[TensorDesc],
    key: Option<&str>,
    preferred: &[&str],
) -> Result<usize> {
    let tensor_err = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason,
    };
    let found = |name: &str| tensors.iter().position(|t| t.name == name);
    let index = match key {
        Some(k) => found(k)
            .ok_or_else(|| tensor_err(format!("no tensor named {k:?}; {}", listing(tensors))))?,
        None => {
            let matrices: Vec<usize> = (0..tensors.len())
                .filter(|&i| tensors[i].is_matrix())
                .collect();
            match matrices.as_slice() {
                [only] => *only,
                _ => preferred_matrix(tensors, preferred)
                    .map_err(tensor_err)?
                    .ok_or_else(|| {
                        tensor_err(format!(
                            "no embedding tensor found (pick one with --key); {}",
                            listing(tensors)
                        ))
                    })?,
            }
        }
    };
    let t = &tensors[index];
    if !t.is_matrix() {
        return Err(tensor_err(format!(
            "tensor {:?} has shape {:?}; an embedding matrix must be 2-D",
            t.name, t.shape
        )));
    }
    if t.shape.contains(&0) {
        return Err(tensor_err(format!(
            "tensor {:?} has shape {:?}: no rows or no columns to survey",
            t.name, t.shape
        )));
    }
    Ok(index)
}

/// The first of `preferred` present as a 2-D tensor: by exact name first,
/// then as the ending of a dotted name (`model_state_dict.embedding.weight`
/// for `embedding.weight`, as nested checkpoints name it), each pass in
/// `preferred`'s order. Several tensors ending in the same key are ambiguous.
fn preferred_matrix(
    tensors: &[TensorDesc],
    preferred: &[&str],
) -> std::result::Result<Option<usize>, String> {
    let matrix = |i: &usize| tensors[*i].is_matrix();
    let exact = preferred.iter().find_map(|k| {
        (0..tensors.len())
            .filter(matrix)
            .find(|&i| tensors[i].name == *k)
    });
    if exact.is_some() {
        return Ok(exact);
    }
    for k in preferred {
        let hits: Vec<usize> = (0..tensors.len())
            .filter(matrix)
            .filter(|&i| {
                tensors[i]
                    .name
                    .strip_suffix(k)
                    .is_some_and(|head| head.ends_with('.'))
            })
            .collect();
        match hits.as_slice() {
            [] => continue,
            [one] => return Ok(Some(*one)),
            several => {
                let names: Vec<String> = several
                    .iter()
                    .map(|&i| format!("{:?}", tensors[i].name))
                    .collect();
                return Err(format!(
                    "several tensors end in {k:?} ({}); pick one with --key",
                    names.join(", ")
                ));
            }
        }
    }
    Ok(None)
}

/// The dtype to read a stored tensor as, given `--as`.
pub fn read_as(path: &Path, t: &TensorDesc, reinterpret: Option<Dtype>) -> Result<Dtype> {
    let name = &t.name;
    let stored = &t.dtype;
    let tensor_err = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason,
    };
    Ok(match (stored, reinterpret) {
        (StoredDtype::F32, None) => Dtype::F32,
        (StoredDtype::F16, None) => Dtype::F16,
        (StoredDtype::BF16, None) => Dtype::BF16,
        (StoredDtype::F64, None) => Dtype::F64,
        (StoredDtype::U16 | StoredDtype::I16, Some(d @ (Dtype::BF16 | Dtype::F16))) => d,
        (StoredDtype::U16 | StoredDtype::I16, _) => {
            return Err(tensor_err(format!(
                "tensor {name:?} is {stored}; say how to read its bits with --as bf16 or --as f16"
            )))
        }
        (StoredDtype::F32 | StoredDtype::F16 | StoredDtype::BF16 | StoredDtype::F64, Some(_)) => {
            return Err(Error::Usage(format!(
                "{}: --as applies to U16/I16 tensors (and 2-byte raw arrays) only; tensor {name:?} is {stored}",
                one_line(&path.display().to_string())
            )))
        }
        (other, _) => {
            return Err(tensor_err(format!(
                "tensor {name:?} has dtype {other}; supported: F32, F16, BF16, F64, and U16/I16 with --as bf16|f16"
            )))
        }
    })
}

/// What was read, and how.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// The dtype as stored in the file (for example `U16` when read `--as bf16`).
    pub stored_dtype: String,
    /// The format of the file the tensor came from (`safetensors`, …).
    pub format: &'static str,
    /// The file the tensor was read from (a shard, a snapshot's blob, …).
    pub file: PathBuf,
}

/// A loaded embedding matrix: its bytes (mapped or owned) and what they are.
#[derive(Debug)]
pub struct Loaded {
    pub info: TensorInfo,
    pub dtype: Dtype,
    pub rows: usize,
    pub cols: usize,
    /// The values the engines read (`dtype`, row-major).
    data: Bytes,
    /// For a quantized tensor, its stored blocks, row-major: two rows are
    /// the same token vector when these bytes are equal (`data` then holds
    /// the dequantized values, which norms and distances are computed on).
    pub identity: Option<Bytes>,
}

impl Loaded {
    /// The zero-copy view the engines take.
    pub fn matrix(&self) -> Matrix<'_> {
        // Checked in `load_tensor`, so this cannot fail.
        Matrix::new(self.dtype, self.rows, self.cols, &self.data)
            .expect("loaded matrix length checked when loaded")
    }
}

/// Reads the chosen tensor of an opened source.
pub fn load_tensor(source: &dyn TensorSource, opts: &LoadOptions) -> Result<Loaded> {
    let path = source.path();
    let tensors = source.tensors();
    let index = choose(path, tensors, opts.key.as_deref(), INPUT_EMBEDDING_KEYS)?;
    let t = &tensors[index];
    let dtype = read_as(path, t, opts.reinterpret)?;
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let data = source.data(index)?;
    if Matrix::new(dtype, rows, cols, &data).is_none() {
        return Err(Error::Tensor {
            path: path.to_path_buf(),
            reason: format!(
                "tensor {:?}: data length {} does not match shape {:?}",
                t.name,
                data.len(),
                t.shape
            ),
        });
    }
    Ok(Loaded {
        info: TensorInfo {
            name: t.name.clone(),
            stored_dtype: t.dtype.to_string(),
            format: source.format(),
            file: path.to_path_buf(),
        },
        dtype,
        rows,
        cols,
        data,
        identity: None,
    })
}

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A zip archive (`PK\x03\x04`): a PyTorch checkpoint or an `.npz`.
    Zip,
    /// `GGUF`.
    Gguf,
    /// `\x93NUMPY`.
    Npy,
    /// A bare pickle (`\x80` then a protocol number): a legacy PyTorch file.
    Pickle,
    /// Anything else is read as safetensors (an 8-byte header length, then JSON).
    Safetensors,
}

/// Recognises a file by its first bytes, never by its extension.
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Sniffed::Zip
    } else if head.starts_with(b"GGUF") {
        Sniffed::Gguf
    } else if head.starts_with(b"\x93NUMPY") {
        Sniffed::Npy
    } else if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        Sniffed::Pickle
    } else {
        Sniffed::Safetensors
    }
}

/// The first bytes of `path` (up to 16: enough for torch's legacy magic number).
fn head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .map_err(io)?
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head)
}

/// Opens the file at `path`, recognised by its content.
pub fn open_file(path: &Path) -> Result<Box<dyn TensorSource>> {
    let head = head(path)?;
    Ok(match sniff(&head) {
        Sniffed::Safetensors => Box::new(safetensors::SafetensorsFile::open(path)?),
        Sniffed::Zip => open_zip(path)?,
        Sniffed::Pickle => {
            let reason = if pytorch::is_legacy(&head) {
                "a legacy (pre-1.6) PyTorch file; re-save it with torch.save(..., _use_new_zipfile_serialization=True) or convert to safetensors"
            } else {
                "a bare Python pickle, not a checkpoint; PyTorch files are read in torch.save's zip format"
            };
            return Err(Error::Format {
                path: path.to_path_buf(),
                format: pytorch::FORMAT,
                reason: reason.into(),
            });
        }
        other => {
            return Err(Error::Format {
                path: path.to_path_buf(),
                format: "safetensors",
                reason: format!("{other:?} files are not read yet"),
            })
        }
    })
}

/// What a zip archive holds, judged by its members' names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZipContents {
    /// A torch.save checkpoint: one `<prefix>/data.pkl`, storages under `<prefix>/data/`.
    Torch { prefix: String },
    /// Nothing this tool reads.
    Unknown,
}

/// Tells what a zip archive is from its members (the one place that decides).
pub fn zip_contents(entries: &[zip::Entry]) -> ZipContents {
    match pytorch::torch_prefix(entries) {
        Some(prefix) => ZipContents::Torch { prefix },
        None => ZipContents::Unknown,
    }
}

/// Opens a zip archive as whatever [`zip_contents`] says it holds.
fn open_zip(path: &Path) -> Result<Box<dyn TensorSource>> {
    let map = map_file(path, "zip")?;
    let entries = zip::entries(&map).map_err(|reason| Error::Format {
        path: path.to_path_buf(),
        format: "zip",
        reason,
    })?;
    match zip_contents(&entries) {
        ZipContents::Torch { prefix } => Ok(Box::new(pytorch::TorchFile::from_zip(
            path, map, &entries, &prefix,
        )?)),
        ZipContents::Unknown => {
            const SHOWN: usize = 5;
            let mut names: Vec<String> = entries
                .iter()
                .take(SHOWN)
                .map(|e| format!("{:?}", one_line(&e.name)))
                .collect();
            if entries.len() > SHOWN {
                names.push(format!("… ({} members)", entries.len()));
            }
            let held = if names.is_empty() {
                "it is empty".to_string()
            } else {
                format!("it holds {}", names.join(", "))
            };
            Err(Error::Format {
                path: path.to_path_buf(),
                format: pytorch::FORMAT,
                reason: format!(
                    "a zip archive, but not a torch.save checkpoint (expected one <name>/data.pkl member); {held}"
                ),
            })
        }
    }
}

/// Opens the input at `path`, recognised by its content, and loads the
/// tensor `opts` asks for.
pub fn open(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let source = open_file(path)?;
    load_tensor(source.as_ref(), opts)
}

/// Maps `path` read-only, for a reader of `format`.
pub(crate) fn map_file(path: &Path, format: &'static str) -> Result<Arc<Mmap>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.is_dir() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            format,
            reason: "it is a directory".into(),
        });
    }
    // SAFETY: the map is read-only; like every mmap-based reader we rely on the
    // file not being truncated by another process while we read it.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    Ok(Arc::new(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize]) -> TensorDesc {
        TensorDesc {
            name: name.into(),
            dtype: StoredDtype::F32,
            shape: shape.to_vec(),
        }
    }

    fn pick(tensors: &[TensorDesc]) -> Result<usize> {
        choose(Path::new("f"), tensors, None, INPUT_EMBEDDING_KEYS)
    }

    #[test]
    fn preferred_keys_match_exactly_first_then_as_a_dotted_suffix() {
        let ts = [
            t("model_state_dict.lm_head.weight", &[4, 2]),
            t("model_state_dict.embedding.weight", &[4, 2]),
            t("model_state_dict.embedding.bias", &[4]),
            t("xembedding.weight", &[4, 2]),
        ];
        // "embedding.weight" comes before "lm_head.weight" in the preferred order.
        assert_eq!(pick(&ts).unwrap(), 1);
        // An exact name wins over an earlier key matched as a suffix.
        let ts = [
            t("a.embed_tokens.weight", &[4, 2]),
            t("lm_head.weight", &[4, 2]),
        ];
        assert_eq!(pick(&ts).unwrap(), 1);
        // Only whole components match: "xembedding.weight" is not "embedding.weight".
        let ts = [t("xembedding.weight", &[4, 2]), t("other", &[4, 2])];
        assert!(pick(&ts).is_err());
        // Two tensors ending in the same key: ambiguous, say so.
        let ts = [
            t("ema.embedding.weight", &[4, 2]),
            t("model.embedding.weight", &[4, 2]),
        ];
        let e = pick(&ts).unwrap_err().to_string();
        assert!(
            e.contains("several tensors end in") && e.contains("--key"),
            "{e}"
        );
        // --key stays exact.
        let ts = [t("m.embedding.weight", &[4, 2]), t("x", &[4, 2])];
        assert!(choose(Path::new("f"), &ts, Some("embedding.weight"), &[]).is_err());
    }
}
