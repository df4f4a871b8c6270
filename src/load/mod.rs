//! Loading: [`open`] recognises an input by its content, each file format is
//! a sibling module that validates everything before touching tensor data,
//! and the tensor choice ([`choose`]) is made here, over a format-neutral
//! description of each tensor, so every format offers the same choices and
//! the same messages.
//!
//! A format hands back a tensor's stored bytes as [`Bytes`]: a range of a
//! memory map (zero-copy, the usual case) or a buffer of its own (a copy,
//! sized only after it was checked against the file).

pub(crate) mod alloc;
pub mod bytes;
pub mod container;
pub mod format;
pub mod hub;
pub mod steps;
pub mod vocab;

pub use container::{pickle, zip};
pub use format::gguf::{self, quant};
pub use format::{hdf5, npy, pytorch, safetensors};
pub use hub as hf;
pub use steps as series;
pub use steps::trajectory;
pub use vocab::tokenizer;

use std::fmt;
use std::fs::File;
use std::sync::Arc;

use memmap2::Mmap;
use std::path::{Path, PathBuf};

pub use bytes::Bytes;
pub use tokenizer::Vocab;

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
    /// `--unembedding`: the output head instead of the input embedding.
    pub unembedding: bool,
    /// `--revision`: the branch, tag or commit of a hub cache entry (default `main`).
    pub revision: Option<String>,
    /// `--tokenizer`: a `tokenizer.json` or `vocab.txt`; else one is looked
    /// for (see [`find_tokenizer`]).
    pub tokenizer: Option<PathBuf>,
}

/// A tensor's element type as stored in a file, named the same way whatever
/// the format (`F32`, `BF16`, `U16`, `Q4_K`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // Q4_K and Q6_K spelled as ggml spells them.
pub enum StoredDtype {
    F64,
    F32,
    F16,
    BF16,
    U16,
    I16,
    /// ggml block quantizations (GGUF), read as F32 through [`quant`].
    Q8_0,
    Q4_0,
    Q4_K,
    Q6_K,
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
            StoredDtype::Q8_0 => "Q8_0",
            StoredDtype::Q4_0 => "Q4_0",
            StoredDtype::Q4_K => "Q4_K",
            StoredDtype::Q6_K => "Q6_K",
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
    /// True when tensors `a` and `b` are views of the same stored data (a
    /// checkpoint that saved tied weights once).
    fn same_data(&self, _a: usize, _b: usize) -> bool {
        false
    }
    /// The file's own vocabulary (GGUF's `tokenizer.ggml.tokens`), if any.
    fn vocab(&self) -> Option<Result<Vocab>> {
        None
    }
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

/// Names tried, in order, for the output head (`--unembedding`).
pub const OUTPUT_HEAD_KEYS: &[&str] = &[
    "lm_head.weight",
    "output.weight",
    "embed_out.weight",
    "cls.predictions.decoder.weight",
    "model.lm_head.weight",
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

/// The first of `preferred` found among `names`. Input-embedding keys come
/// before output-head keys (`lm_head.weight` is the last resort of the
/// input list): within each tier an exact name first, then (for nested
/// checkpoints, `model_state_dict.embedding.weight`, or multimodal models,
/// `model.language_model.embed_tokens.weight`) a name ending in `.` and the
/// key, keys in order. Names inside numbered layers (`layer.3.output.weight`)
/// never match a key as a suffix. Two names ending in the same key are
/// ambiguous: an error that asks for `--key`.
pub fn pick_name<'a>(
    names: &[&'a str],
    preferred: &[&str],
) -> std::result::Result<Option<&'a str>, String> {
    let heads: Vec<&str> = preferred
        .iter()
        .copied()
        .filter(|k| OUTPUT_HEAD_KEYS.contains(k))
        .collect();
    let inputs: Vec<&str> = preferred
        .iter()
        .copied()
        .filter(|k| !OUTPUT_HEAD_KEYS.contains(k))
        .collect();
    let in_layer = |n: &str| {
        n.split('.')
            .any(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
    };
    for tier in [inputs, heads] {
        if let Some(n) = tier
            .iter()
            .find_map(|k| names.iter().find(|n| *n == k).copied())
        {
            return Ok(Some(n));
        }
        for k in &tier {
            let hits: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| n.strip_suffix(k).is_some_and(|head| head.ends_with('.')))
                .filter(|n| !in_layer(n))
                .collect();
            match hits.as_slice() {
                [] => continue,
                [one] => return Ok(Some(one)),
                several => {
                    let shown: Vec<String> = several.iter().map(|n| format!("{n:?}")).collect();
                    return Err(format!(
                        "several tensors end in {k:?} ({}); pick one with --key",
                        shown.join(", ")
                    ));
                }
            }
        }
    }
    Ok(None)
}

/// Picks the tensor to survey: `--key` when given, else the only 2-D tensor,
/// else the first of `preferred` present as a 2-D tensor (see [`pick_name`]).
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
        Some(k) => found(k).ok_or_else(|| {
            tensor_err(format!(
                "no tensor named {:?}; {}",
                one_line(k),
                listing(tensors)
            ))
        })?,
        None => {
            let matrices: Vec<&str> = tensors
                .iter()
                .filter(|t| t.is_matrix())
                .map(|t| t.name.as_str())
                .collect();
            let name = match matrices.as_slice() {
                [only] => Some(*only),
                _ => pick_name(&matrices, preferred).map_err(tensor_err)?,
            };
            name.and_then(found).ok_or_else(|| {
                tensor_err(format!(
                    "no {} found (pick one with --key); {}",
                    if preferred == OUTPUT_HEAD_KEYS {
                        "output head"
                    } else {
                        "embedding tensor"
                    },
                    listing(tensors)
                ))
            })?
        }
    };
    check_matrix(path, &tensors[index])?;
    Ok(index)
}

/// An error unless `t` is a matrix with rows and columns.
fn check_matrix(path: &Path, t: &TensorDesc) -> Result<()> {
    let tensor_err = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason,
    };
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
    Ok(())
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
        (q, None) if quant::is_quantized(q) => Dtype::F32,
        (StoredDtype::U16 | StoredDtype::I16, Some(d @ (Dtype::BF16 | Dtype::F16))) => d,
        (StoredDtype::Other(v), Some(d @ (Dtype::BF16 | Dtype::F16))) if v == "V2" => d,
        (StoredDtype::Other(v), _) if v == "V2" => {
            return Err(tensor_err(format!(
                "tensor {name:?} is a 2-byte raw (void) array, as numpy saves ml_dtypes' bfloat16; say how to read its bits with --as bf16 or --as f16"
            )))
        }
        (StoredDtype::U16 | StoredDtype::I16, _) => {
            return Err(tensor_err(format!(
                "tensor {name:?} is {stored}; say how to read its bits with --as bf16 or --as f16"
            )))
        }
        (
            StoredDtype::F32
            | StoredDtype::F16
            | StoredDtype::BF16
            | StoredDtype::F64
            | StoredDtype::Q8_0
            | StoredDtype::Q4_0
            | StoredDtype::Q4_K
            | StoredDtype::Q6_K,
            Some(_),
        ) => {
            return Err(Error::Usage(format!(
                "{}: --as applies to U16/I16 tensors (and 2-byte raw arrays) only; tensor {name:?} is {stored}",
                one_line(&path.display().to_string())
            )))
        }
        (other, _) => {
            return Err(tensor_err(format!(
                "tensor {name:?} has dtype {other}; supported: F32, F16, BF16, F64, Q8_0, Q4_0, Q4_K, Q6_K, and U16/I16 with --as bf16|f16"
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
    /// Which matrix of the model this is.
    pub role: Role,
    /// Under `--unembedding`: whether the output head is the input
    /// embedding; `None` when there was no input embedding to compare.
    pub tied: Option<Tied>,
    /// The folder the model came from (a model folder, a cache snapshot, or
    /// the file's folder): where a tokenizer is looked for.
    pub model_dir: Option<PathBuf>,
    /// Token strings, when a tokenizer was given or found.
    pub tokens: Option<TokenNames>,
    /// Lines for the user about how the input was read.
    pub notices: Vec<String>,
}

/// A vocabulary and where it came from.
#[derive(Clone, Debug)]
pub struct TokenNames {
    pub vocab: Vocab,
    /// The tokenizer file (the model file itself for GGUF's own tokens).
    pub path: PathBuf,
}

/// Tokenizer files looked for next to the model, in order.
pub const TOKENIZER_FILES: &[&str] = &["tokenizer.json", "vocab.txt"];

/// Largest tokenizer file read (real ones are at most a few tens of MB).
const MAX_TOKENIZER_BYTES: u64 = 512 << 20;

/// Reads a `tokenizer.json` (recognised by its opening `{`) or a BERT
/// `vocab.txt` (one token per line).
pub fn read_tokenizer(path: &Path) -> Result<Vocab> {
    let bytes = read_small(path, MAX_TOKENIZER_BYTES, "a tokenizer")?;
    let text = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let json = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let vocab = if json {
        Vocab::from_tokenizer_json(&bytes)
    } else {
        Vocab::from_vocab_txt(&bytes)
    };
    vocab.map_err(|reason| Error::Format {
        path: path.to_path_buf(),
        format: if json { "tokenizer.json" } else { "vocab.txt" },
        reason: one_line(&reason),
    })
}

/// The token strings for a loaded matrix: `--tokenizer` when given, else the
/// model file's own (GGUF), else `tokenizer.json` or `vocab.txt` in the
/// model's folder (the folder, the cache snapshot, or the file's folder).
///
/// A tokenizer given with `--tokenizer` that cannot be read is an error; one
/// that was found, not asked for, costs only its strings: the survey goes
/// on with ids, and the reason comes back as a notice.
pub fn find_tokenizer(
    explicit: Option<&Path>,
    own: Option<(Result<Vocab>, &Path)>,
    model_dir: Option<&Path>,
) -> Result<(Option<TokenNames>, Option<String>)> {
    if let Some(p) = explicit {
        let names = TokenNames {
            vocab: read_tokenizer(p)?,
            path: p.to_path_buf(),
        };
        return Ok((Some(names), None));
    }
    let found = |vocab: Result<Vocab>, path: PathBuf| {
        match vocab {
        Ok(vocab) => (Some(TokenNames { vocab, path }), None),
        Err(e) => (
            None,
            Some(format!(
                "note: token ids are shown without strings: the tokenizer found beside the model cannot be read ({e}); give one with --tokenizer"
            )),
        ),
    }
    };
    if let Some((vocab, path)) = own {
        return Ok(found(vocab, path.to_path_buf()));
    }
    let Some(dir) = model_dir else {
        return Ok((None, None));
    };
    for name in TOKENIZER_FILES {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(found(read_tokenizer(&p), p));
        }
    }
    Ok((None, None))
}

/// Which matrix of the model was surveyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The token embedding (the default).
    InputEmbedding,
    /// The output head, the unembedding (`--unembedding`).
    OutputHead,
}

/// How the output head relates to the input embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tied {
    /// One tensor: the file stores no separate head, or both names share storage.
    SameTensor,
    /// Two tensors with the same dtype, shape and bytes.
    BitIdentical,
    /// Two tensors that differ.
    Untied,
}

impl Loaded {
    /// True when the rows are best read as a byte vocabulary (the notebook's
    /// byte/character display): at most 256 rows and no tokenizer.
    pub fn byte_vocabulary(&self) -> bool {
        self.tokens.is_none() && self.rows <= 256
    }

    /// The values the engines read (`dtype`, row-major), given up by the
    /// loaded tensor (a series keeps one step's bytes past its `Loaded`).
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// The zero-copy view the engines take.
    pub fn matrix(&self) -> Matrix<'_> {
        // Checked in `load_tensor`, so this cannot fail.
        Matrix::new(self.dtype, self.rows, self.cols, &self.data)
            .expect("loaded matrix length checked when loaded")
    }
}

/// Reads the chosen tensor of an opened source.
pub fn load_tensor(source: &dyn TensorSource, opts: &LoadOptions) -> Result<Loaded> {
    let index = choose(
        source.path(),
        source.tensors(),
        opts.key.as_deref(),
        INPUT_EMBEDDING_KEYS,
    )?;
    read_tensor(source, index, opts.reinterpret)
}

/// Reads tensor `index` of an opened source as a matrix.
pub fn read_tensor(
    source: &dyn TensorSource,
    index: usize,
    reinterpret: Option<Dtype>,
) -> Result<Loaded> {
    let path = source.path();
    let t = &source.tensors()[index];
    check_matrix(path, t)?;
    let dtype = read_as(path, t, reinterpret)?;
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut data = source.data(index)?;
    let mut identity = None;
    if quant::is_quantized(&t.dtype) {
        // The stored size is checked before the f32 output is allocated.
        let values =
            quant::dequantize_le_bytes(&t.dtype, &data, rows, cols).map_err(|e| Error::Tensor {
                path: path.to_path_buf(),
                reason: format!("tensor {:?}: {e}", t.name),
            })?;
        identity = Some(std::mem::replace(&mut data, Bytes::owned(values)));
    }
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
        identity,
        role: Role::InputEmbedding,
        tied: None,
        model_dir: None,
        tokens: None,
        notices: Vec::new(),
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
    /// `\x89HDF\r\n\x1a\n`: an HDF5 file, read only as a trajectory.
    Hdf5,
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
    } else if head.starts_with(hdf5::SIGNATURE) {
        Sniffed::Hdf5
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
    regular_file(path)?;
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .map_err(io)?
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head)
}

/// An error unless `path` is a regular file (after symlinks): a FIFO would
/// block the read, a device would never end.
pub(crate) fn regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        return Ok(());
    }
    Err(Error::Input {
        path: path.to_path_buf(),
        reason: if meta.is_dir() {
            "a folder where a file was expected".into()
        } else {
            "not a regular file (a pipe, socket or device)".into()
        },
    })
}

/// The whole of a small file (an index, a ref, a tokenizer): an error unless
/// it is a regular file of at most `max` bytes, read without trusting the
/// size the file system reports.
pub(crate) fn read_small(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    regular_file(path)?;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io)?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(Error::Input {
            path: path.to_path_buf(),
            reason: format!("{what} larger than the {max} bytes read"),
        });
    }
    Ok(bytes)
}

/// Opens the file at `path`, recognised by its content.
pub fn open_file(path: &Path) -> Result<Box<dyn TensorSource>> {
    let head = head(path)?;
    Ok(match sniff(&head) {
        Sniffed::Safetensors => Box::new(safetensors::SafetensorsFile::open(path)?),
        Sniffed::Npy => Box::new(npy::NpyFile::open(path)?),
        Sniffed::Gguf => Box::new(gguf::GgufFile::open(path)?),
        Sniffed::Zip => open_zip(path)?,
        Sniffed::Hdf5 => {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: "an HDF5 file: use --trajectory FILE --key DATASET to read a [step, token, dim] dataset".into(),
            })
        }
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
    })
}

/// What `--file` named, resolved to files.
enum Input {
    /// One file of tensors.
    File(PathBuf),
    /// A folder of safetensors shards with an index.
    Sharded { dir: PathBuf, index: hf::ShardIndex },
}

/// Resolves `--file`: a file, a model folder, a hub cache entry (the folder,
/// or `ORG/NAME` looked up in the cache). Returns the input and the folder
/// where a tokenizer is looked for.
fn resolve(path: &Path, revision: Option<&str>) -> Result<(Input, Option<PathBuf>)> {
    if path.is_dir() {
        let dir = if hf::is_cache_entry(path) {
            hf::snapshot(path, revision)?
        } else if revision.is_some() {
            return Err(Error::Usage(format!(
                "{}: --revision applies to a Hugging Face cache entry (models--ORG--NAME or ORG/NAME), and this folder is not one",
                one_line(&path.display().to_string())
            )));
        } else {
            path.to_path_buf()
        };
        let input = if dir.join(hf::INDEX_FILE).is_file() {
            Input::Sharded {
                index: hf::ShardIndex::read(&dir)?,
                dir: dir.clone(),
            }
        } else {
            Input::File(hf::single_file(&dir)?)
        };
        return Ok((input, Some(dir)));
    }
    if !path.exists() {
        if let Some((org, name)) = hf::repo_id(path) {
            let entry = hf::find_in_cache(path, &org, &name)?;
            return resolve(&entry, revision);
        }
    }
    if revision.is_some() {
        return Err(Error::Usage(
            "--revision applies to a Hugging Face cache entry (models--ORG--NAME or ORG/NAME), not to a file".into(),
        ));
    }
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    });
    Ok((Input::File(path.to_path_buf()), dir))
}

/// The files of a resolved input, each opened at most once, when needed.
struct Model {
    input: Input,
    opened: Vec<(PathBuf, Box<dyn TensorSource>)>,
}

/// A tensor found in a [`Model`]: which opened file, which tensor in it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Found {
    file: usize,
    tensor: usize,
}

impl Model {
    fn open(&mut self, path: PathBuf) -> Result<usize> {
        if let Some(i) = self.opened.iter().position(|(p, _)| *p == path) {
            return Ok(i);
        }
        let source = open_file(&path)?;
        self.opened.push((path, source));
        Ok(self.opened.len() - 1)
    }

    fn source(&self, f: Found) -> &dyn TensorSource {
        self.opened[f.file].1.as_ref()
    }

    /// `--key`, or else the first of `preferred` (with `only_matrix`: the
    /// only 2-D tensor of a single file first). `Ok(None)` when no preferred
    /// name is present and `required` is false.
    fn find(
        &mut self,
        key: Option<&str>,
        preferred: &[&str],
        only_matrix: bool,
        required: bool,
    ) -> Result<Option<Found>> {
        match &self.input {
            Input::File(path) => {
                let file = self.open(path.clone())?;
                let source = self.opened[file].1.as_ref();
                let tensors = source.tensors();
                if key.is_none() && !only_matrix {
                    let matrices: Vec<&str> = tensors
                        .iter()
                        .filter(|t| t.is_matrix())
                        .map(|t| t.name.as_str())
                        .collect();
                    let picked =
                        pick_name(&matrices, preferred).map_err(|reason| Error::Tensor {
                            path: source.path().to_path_buf(),
                            reason,
                        })?;
                    match picked {
                        Some(n) => {
                            let tensor = tensors.iter().position(|t| t.name == n).unwrap_or(0);
                            return Ok(Some(Found { file, tensor }));
                        }
                        None if !required => return Ok(None),
                        None => {}
                    }
                }
                let tensor = choose(source.path(), tensors, key, preferred)?;
                Ok(Some(Found { file, tensor }))
            }
            Input::Sharded { dir, index } => {
                let names: Vec<&str> = index.weight_map.keys().map(String::as_str).collect();
                let name = match key {
                    Some(k) if index.weight_map.contains_key(k) => Some(k.to_string()),
                    Some(_) => None,
                    None => pick_name(&names, preferred)
                        .map_err(|reason| Error::Tensor {
                            path: index.path.clone(),
                            reason,
                        })?
                        .map(str::to_string),
                };
                let Some(name) = name else {
                    if !required && key.is_none() {
                        return Ok(None);
                    }
                    return Err(self.sharded_listing(key, preferred));
                };
                let shard = dir.join(&index.weight_map[&name]);
                let index_path = index.path.clone();
                let file = self.open(shard)?;
                let source = self.opened[file].1.as_ref();
                let Some(tensor) = source.tensors().iter().position(|t| t.name == name) else {
                    return Err(Error::Tensor {
                        path: index_path,
                        reason: format!(
                            "the index puts tensor {:?} in {}, which does not hold it",
                            one_line(&name),
                            one_line(&source.path().display().to_string())
                        ),
                    });
                };
                check_matrix(source.path(), &source.tensors()[tensor])?;
                Ok(Some(Found { file, tensor }))
            }
        }
    }

    /// The error for a sharded model without the asked-for tensor: it opens
    /// every shard's header to list the 2-D tensors with shape and dtype.
    fn sharded_listing(&mut self, key: Option<&str>, preferred: &[&str]) -> Error {
        let Input::Sharded { dir, index } = &self.input else {
            return Error::Usage("not a sharded model".into());
        };
        let path = index.path.clone();
        let shards: Vec<PathBuf> = index.shards().iter().map(|s| dir.join(s)).collect();
        let mut all = Vec::new();
        for shard in shards {
            match self.open(shard) {
                Ok(i) => all.extend(self.opened[i].1.tensors().iter().cloned()),
                Err(e) => return e,
            }
        }
        let what = match key {
            Some(k) => format!("no tensor named {:?}", one_line(k)),
            None if preferred == OUTPUT_HEAD_KEYS => {
                "no output head found (pick one with --key)".to_string()
            }
            None => "no embedding tensor found (pick one with --key)".to_string(),
        };
        Error::Tensor {
            path,
            reason: format!("{what}; {}", listing(&all)),
        }
    }
}

/// What a zip archive holds, judged by its members' names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZipContents {
    /// A torch.save checkpoint: one `<prefix>/data.pkl`, storages under `<prefix>/data/`.
    Torch { prefix: String },
    /// NumPy's `np.savez`: every member an `.npy` array.
    Npz,
    /// Nothing this tool reads.
    Unknown,
}

/// Tells what a zip archive is from its members (the one place that decides).
pub fn zip_contents(entries: &[zip::Entry]) -> ZipContents {
    match pytorch::torch_prefix(entries) {
        Some(prefix) => ZipContents::Torch { prefix },
        None if !entries.is_empty() && entries.iter().all(|e| e.name.ends_with(".npy")) => {
            ZipContents::Npz
        }
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
        ZipContents::Npz => Ok(Box::new(npy::NpzFile::from_zip(path, map, &entries)?)),
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
                format: "PyTorch or .npz",
                reason: format!(
                    "a zip archive, but neither a torch.save checkpoint (one <name>/data.pkl member) nor an .npz (only .npy members); {held}"
                ),
            })
        }
    }
}

/// The input-embedding names that are not also output-head names.
fn input_only_keys() -> Vec<&'static str> {
    INPUT_EMBEDDING_KEYS
        .iter()
        .copied()
        .filter(|k| !OUTPUT_HEAD_KEYS.contains(k))
        .collect()
}

/// Opens the input at `path` (a file recognised by its content, a model
/// folder, a hub cache entry) and loads the tensor `opts` asks for. Only
/// the files that hold the chosen tensors are opened.
pub fn open(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    open_with(path, opts, true)
}

/// [`open`] without looking for a tokenizer: the later steps of a series,
/// whose token strings come from the first step.
pub(crate) fn open_tensor(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    open_with(path, opts, false)
}

fn open_with(path: &Path, opts: &LoadOptions, tokenizer: bool) -> Result<Loaded> {
    let (input, model_dir) = resolve(path, opts.revision.as_deref())?;
    let mut model = Model {
        input,
        opened: Vec::new(),
    };
    if opts.unembedding && opts.key.is_some() {
        return Err(Error::Usage(
            "--unembedding chooses the output head itself; give it or --key, not both".into(),
        ));
    }
    let mut loaded = if !opts.unembedding {
        let found = model
            .find(opts.key.as_deref(), INPUT_EMBEDDING_KEYS, true, true)?
            .ok_or_else(|| Error::Usage("no tensor chosen".into()))?;
        read_tensor(model.source(found), found.tensor, opts.reinterpret)?
    } else {
        let inputs = input_only_keys();
        let head = model.find(None, OUTPUT_HEAD_KEYS, false, false)?;
        let input = model.find(None, &inputs, false, false)?;
        match (head, input) {
            (Some(h), input) => {
                let tied = match input {
                    None => None,
                    Some(i) => Some(compare(&model, h, i)?),
                };
                let mut l = read_tensor(model.source(h), h.tensor, opts.reinterpret)?;
                l.tied = tied;
                l
            }
            // No separate head: the input embedding is the unembedding.
            (None, Some(i)) => {
                let mut l = read_tensor(model.source(i), i.tensor, opts.reinterpret)?;
                l.tied = Some(Tied::SameTensor);
                l
            }
            // No head and no usual embedding name: the file's only matrix
            // is both (or the error says which matrices there are).
            (None, None) => {
                let i = model
                    .find(None, INPUT_EMBEDDING_KEYS, true, true)?
                    .ok_or_else(|| Error::Usage("no output head found".into()))?;
                let mut l = read_tensor(model.source(i), i.tensor, opts.reinterpret)?;
                l.tied = Some(Tied::SameTensor);
                l
            }
        }
    };
    if opts.unembedding {
        loaded.role = Role::OutputHead;
    }
    if !tokenizer {
        loaded.model_dir = model_dir;
        return Ok(loaded);
    }
    let own = model
        .opened
        .iter()
        .find(|(p, _)| *p == loaded.info.file)
        .and_then(|(p, source)| source.vocab().map(|v| (v, p.as_path())));
    let (tokens, notice) = find_tokenizer(opts.tokenizer.as_deref(), own, model_dir.as_deref())?;
    loaded.tokens = tokens;
    loaded.notices.extend(notice);
    loaded.model_dir = model_dir;
    Ok(loaded)
}

/// Whether the output head `h` is the input embedding `i`.
fn compare(model: &Model, h: Found, i: Found) -> Result<Tied> {
    if h == i || (h.file == i.file && model.source(h).same_data(h.tensor, i.tensor)) {
        return Ok(Tied::SameTensor);
    }
    let (th, ti) = (
        &model.source(h).tensors()[h.tensor],
        &model.source(i).tensors()[i.tensor],
    );
    if th.dtype != ti.dtype || th.shape != ti.shape {
        return Ok(Tied::Untied);
    }
    let (a, b) = (
        model.source(h).data(h.tensor)?,
        model.source(i).data(i.tensor)?,
    );
    Ok(if *a == *b {
        Tied::BitIdentical
    } else {
        Tied::Untied
    })
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
        // An input embedding nested in a multimodal model wins over the
        // output head's exact name (lm_head is the input list's last resort).
        let ts = [
            t("model.language_model.embed_tokens.weight", &[4, 2]),
            t("lm_head.weight", &[4, 2]),
        ];
        assert_eq!(pick(&ts).unwrap(), 0);
        // Among input keys, an exact name wins over an earlier key as a suffix.
        let ts = [
            t("a.embeddings", &[4, 2]),
            t("model.embed_tokens.weight", &[4, 2]),
        ];
        assert_eq!(pick(&ts).unwrap(), 1);
        // Names inside numbered layers never match as a suffix: BERT's
        // attention outputs are not an output head.
        let names = [
            "encoder.layer.0.attention.output.weight",
            "encoder.layer.1.output.weight",
        ];
        assert_eq!(pick_name(&names, OUTPUT_HEAD_KEYS), Ok(None));
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
