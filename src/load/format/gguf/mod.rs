//! GGUF files (llama.cpp), memory-mapped.
//!
//! Layout (versions 2 and 3, little-endian): `GGUF`, a u32 version, a u64
//! tensor count, a u64 metadata count; the metadata (key, type, value); the
//! tensor infos (name, dimension count, dimensions innermost first, ggml type,
//! data offset); padding to `general.alignment` (32 unless set); the data.
//!
//! [`parse`] is pure and checks everything before trusting it: counts against
//! what the remaining bytes could hold, every length against the remaining
//! input, every size and offset with checked arithmetic, each tensor's data
//! aligned and inside the file. Nothing is allocated from a declared count:
//! lists grow as their entries are read, and what the parsed header holds in
//! memory is charged, at its real cost per entry, to a budget of
//! [`MAX_HEADER_MEMORY`] before it is allocated (a file of 8 GiB can hold a
//! billion empty strings, which would take 24 GiB as `String`s). A tensor's
//! bytes are then a range of the map (zero-copy); quantized ones are decoded
//! by [`quant`] when loaded.

mod meta;
pub mod quant;

use meta::{scalar, Reader};
pub use meta::{MetaArray, MetaValue};

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::files::Map;

use crate::error::{one_line, Error, Result};
use crate::load::source::{map_file, Bytes, StoredDtype, TensorDesc, TensorSource};

/// The format's name in messages.
pub const FORMAT: &str = "GGUF";

/// `general.alignment` when the file does not set it.
pub const DEFAULT_ALIGNMENT: usize = 32;

/// The most dimensions a GGUF tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// How deeply arrays may nest in metadata (real files nest none; the bound
/// keeps a crafted file from exhausting the stack).
const MAX_ARRAY_DEPTH: usize = 8;

/// The most memory the parsed header (metadata and tensor infos) may take.
/// A real model's header takes tens of MB at most (the largest part is a
/// vocabulary of a few hundred thousand token strings and their merges).
pub const MAX_HEADER_MEMORY: usize = 1 << 30;

/// An open, memory-mapped GGUF file whose header was checked.
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Map>,
    gguf: Gguf,
}

impl GgufFile {
    /// Opens and maps `path`, and checks its header, metadata and tensor infos.
    pub fn open(path: &Path) -> Result<Self> {
        let map = map_file(path, FORMAT)?;
        let gguf = parse(&map).map_err(|reason| Error::Format {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: one_line(&reason),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            gguf,
        })
    }

    /// What the header says: version, metadata, tensors.
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// The tokenizer's vocabulary, when the metadata holds one.
    pub fn tokens(&self) -> Option<GgufTokens> {
        self.gguf.tokens()
    }
}

impl TensorSource for GgufFile {
    fn format(&self) -> &'static str {
        FORMAT
    }
    fn vocab(&self) -> Option<Result<crate::load::source::Vocab>> {
        let t = self.tokens()?;
        Some(
            crate::load::source::Vocab::from_gguf(&t.model, t.tokens, t.token_types.as_deref())
                .map_err(|reason| Error::Format {
                    path: self.path.clone(),
                    format: FORMAT,
                    reason: format!("its tokenizer.ggml.tokens: {}", one_line(&reason)),
                }),
        )
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn tensors(&self) -> &[TensorDesc] {
        &self.gguf.tensors
    }
    fn data(&self, index: usize) -> Result<Bytes> {
        let err = |reason: String| Error::Tensor {
            path: self.path.clone(),
            reason,
        };
        let t = self
            .gguf
            .tensors
            .get(index)
            .ok_or_else(|| err(format!("no tensor number {index}")))?;
        self.gguf
            .ranges
            .get(index)
            .cloned()
            .flatten()
            .and_then(|r| Bytes::mapped(self.map.clone(), r))
            .ok_or_else(|| {
                err(format!(
                    "tensor {:?} has dtype {}, whose size is unknown; it cannot be read",
                    one_line(&t.name),
                    t.dtype
                ))
            })
    }
}

/// A parsed GGUF header: everything before the tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct Gguf {
    /// 2 or 3.
    pub version: u32,
    /// `general.alignment`, or [`DEFAULT_ALIGNMENT`].
    pub alignment: usize,
    /// The metadata, in file order (keys are unique).
    pub metadata: Vec<(String, MetaValue)>,
    /// The tensors, in file order, dimensions outermost first.
    pub tensors: Vec<TensorDesc>,
    /// Each tensor's byte range in the file (`None` for a ggml type whose
    /// block size this reader does not know).
    pub ranges: Vec<Option<Range<usize>>>,
    /// Where the data section starts in the file.
    pub data_start: usize,
}

/// The tokenizer vocabulary a GGUF file carries in its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTokens {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (SentencePiece), …
    pub model: String,
    /// `tokenizer.ggml.tokens`: the token strings, by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, by id (1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte); `None` when absent, not integers,
    /// or not one per token.
    pub token_types: Option<Vec<i32>>,
}

impl Gguf {
    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// The tokenizer vocabulary: `None` unless both `tokenizer.ggml.model`
    /// (a string) and `tokenizer.ggml.tokens` (an array of strings) are present.
    pub fn tokens(&self) -> Option<GgufTokens> {
        let model = self.get("tokenizer.ggml.model")?.as_str()?.to_string();
        let tokens = match self.get("tokenizer.ggml.tokens")? {
            MetaValue::Array(MetaArray::String(t)) => t.clone(),
            _ => return None,
        };
        let token_types = match self.get("tokenizer.ggml.token_type") {
            Some(MetaValue::Array(a)) => a.to_i32().filter(|t| t.len() == tokens.len()),
            _ => None,
        };
        Some(GgufTokens {
            model,
            tokens,
            token_types,
        })
    }
}

/// A ggml tensor type: its name and block shape.
struct GgmlType {
    name: &'static str,
    /// Values per block.
    block: usize,
    /// Bytes per block.
    bytes: usize,
}

/// ggml's types by id (`ggml.h`, `GGML_QUANT_SIZES` in gguf-py); ids 4, 5
/// and 31–33 were removed from ggml.
fn ggml_type(id: u32) -> Option<GgmlType> {
    let (name, block, bytes) = match id {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 40),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    };
    Some(GgmlType { name, block, bytes })
}

fn stored_dtype(name: &str) -> StoredDtype {
    match name {
        "F32" => StoredDtype::F32,
        "F16" => StoredDtype::F16,
        "BF16" => StoredDtype::BF16,
        "F64" => StoredDtype::F64,
        "I16" => StoredDtype::I16,
        "Q8_0" => StoredDtype::Q8_0,
        "Q4_0" => StoredDtype::Q4_0,
        "Q4_K" => StoredDtype::Q4_K,
        "Q6_K" => StoredDtype::Q6_K,
        other => StoredDtype::Other(other.to_string()),
    }
}

/// The header of the file held in `file`, checked; the reason it is not a
/// valid GGUF file otherwise. Reads only `file`, sizes nothing by a declared
/// count, keeps the header within [`MAX_HEADER_MEMORY`], and never panics.
pub fn parse(file: &[u8]) -> std::result::Result<Gguf, String> {
    parse_within(file, MAX_HEADER_MEMORY)
}

/// [`parse`] with a budget of `memory` bytes for the parsed header.
fn parse_within(file: &[u8], memory: usize) -> std::result::Result<Gguf, String> {
    let mut r = Reader {
        buf: file,
        pos: 0,
        memory,
    };
    if r.take(4, "the magic")? != b"GGUF" {
        return Err("the file does not start with \"GGUF\"".into());
    }
    let version = r.u32("the version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(
                "GGUF version 1 is not supported (only versions 2 and 3); re-convert the model with a current llama.cpp"
                    .into(),
            )
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(format!(
                "the file is big-endian GGUF (version {} stored byte-swapped); only little-endian files are read",
                v.swap_bytes()
            ))
        }
        v => return Err(format!("unsupported GGUF version {v} (versions 2 and 3 are read)")),
    }
    let n_tensors = r.u64("the tensor count")?;
    let n_kv = r.u64("the metadata count")?;
    // The fewest bytes a metadata entry (8-byte key length, type, 1-byte
    // value) and a tensor info (8-byte name length, dimension count, type,
    // offset) can take: both counts must fit in what is left.
    let need = n_kv
        .checked_mul(13)
        .and_then(|kv| n_tensors.checked_mul(24).and_then(|t| t.checked_add(kv)));
    if need.is_none_or(|need| need > r.remaining() as u64) {
        return Err(format!(
            "the header declares {n_tensors} tensors and {n_kv} metadata entries, more than the {} bytes after it could hold",
            r.remaining()
        ));
    }
    // Both fit in usize now: each is at most the file's length. Neither
    // sizes anything: a count the bytes do not back fails at the first entry
    // that is not there (or, in a file of zeros, at the second empty name).
    let (n_tensors, n_kv) = (n_tensors as usize, n_kv as usize);

    let mut metadata: Vec<(String, MetaValue)> = Vec::new();
    let mut keys: HashSet<&str> = HashSet::new();
    for i in 0..n_kv {
        let key = r.name(&format!("metadata key {i}"))?;
        if !keys.insert(key) {
            return Err(format!("metadata key {key:?} appears twice"));
        }
        // The entry, its key's copy, and the key's place in the set.
        r.charge(
            size_of::<(String, MetaValue)>() + key.len() + 2 * size_of::<&str>(),
            &|| format!("metadata key {i}"),
        )?;
        let t = r.u32(&format!("the value type of {key:?}"))?;
        let value = scalar(&mut r, t, key)?;
        metadata.push((key.to_string(), value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 30 => a as usize,
            Some(a) => {
                return Err(format!(
                    "general.alignment is {a}; it must be a power of two from 1 to 2^30"
                ))
            }
            None => {
                return Err(format!(
                    "general.alignment must be an unsigned integer, not {v:?}"
                ))
            }
        },
    };

    struct Info {
        name: String,
        dims: Vec<u64>,
        ggml: u32,
        offset: u64,
    }
    let mut infos = Vec::new();
    let mut names: HashSet<&str> = HashSet::new();
    for i in 0..n_tensors {
        let name = r.name(&format!("the name of tensor {i}"))?;
        if !names.insert(name) {
            return Err(format!("tensor {name:?} appears twice"));
        }
        let n_dims = r.u32(&format!("the dimension count of tensor {name:?}"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(format!(
                "tensor {name:?} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}"
            ));
        }
        // The info, then its tensor and range; the name's copy, its place
        // in the set; the dimensions twice (as read, then as the shape).
        r.charge(
            size_of::<Info>()
                + size_of::<TensorDesc>()
                + size_of::<Option<Range<usize>>>()
                + name.len()
                + 2 * size_of::<&str>()
                + 2 * 8 * n_dims as usize,
            &|| format!("tensor {i}"),
        )?;
        // At most MAX_DIMS.
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&format!("the dimensions of tensor {name:?}"))?);
        }
        let ggml = r.u32(&format!("the type of tensor {name:?}"))?;
        let offset = r.u64(&format!("the data offset of tensor {name:?}"))?;
        infos.push(Info {
            name: name.to_string(),
            dims,
            ggml,
            offset,
        });
    }

    // The data section starts at the next multiple of the alignment.
    let data_start = r
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or("the data section's start overflows")?;

    // As many as the infos read (not the declared count), charged with them.
    let mut tensors = Vec::with_capacity(infos.len());
    let mut ranges = Vec::with_capacity(infos.len());
    for Info {
        name,
        dims,
        ggml,
        offset,
    } in infos
    {
        let too_large =
            || format!("tensor {name:?} with dimensions {dims:?} is too large to exist");
        let mut shape = Vec::with_capacity(dims.len());
        for &d in dims.iter().rev() {
            shape.push(usize::try_from(d).map_err(|_| too_large())?);
        }
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(too_large)?;
        if !offset.is_multiple_of(alignment as u64) {
            return Err(format!(
                "tensor {name:?} has data offset {offset}, not a multiple of the alignment {alignment}"
            ));
        }
        let (dtype, range) = match ggml_type(ggml) {
            None => (StoredDtype::Other(format!("GGML type {ggml}")), None),
            Some(g) => {
                // Rows (the innermost dimension) are whole blocks.
                let inner = shape.last().copied().unwrap_or(1);
                if !inner.is_multiple_of(g.block) {
                    return Err(format!(
                        "tensor {name:?} has rows of {inner} values, not a whole number of {} blocks of {}",
                        g.name, g.block
                    ));
                }
                let size = (elements / g.block)
                    .checked_mul(g.bytes)
                    .ok_or_else(too_large)?;
                let start = usize::try_from(offset)
                    .ok()
                    .and_then(|o| data_start.checked_add(o));
                let end = start.and_then(|s| s.checked_add(size));
                match (start, end) {
                    (Some(s), Some(e)) if e <= file.len() => {
                        (stored_dtype(g.name), Some(s..e))
                    }
                    _ => {
                        return Err(format!(
                            "tensor {name:?} ({} bytes at data offset {offset}, from byte {data_start}) runs past the end of the file ({} bytes)",
                            size,
                            file.len()
                        ))
                    }
                }
            }
        };
        tensors.push(TensorDesc { name, dtype, shape });
        ranges.push(range);
    }
    Ok(Gguf {
        version,
        alignment,
        metadata,
        tensors,
        ranges,
        data_start,
    })
}

#[cfg(test)]
mod tests;
