//! The types and traits every format implements: a format describes its
//! tensors ([`TensorDesc`], with the [`StoredDtype`] named the same way
//! whatever the format) and hands back a tensor's stored bytes as [`Bytes`],
//! a range of a memory map (zero-copy, the usual case) or a buffer of its own
//! (a copy, sized only after it was checked against the file). The formats
//! depend on this module alone.

use std::fmt;
use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

use crate::load::files::Map;

use crate::error::{one_line, Result};
pub(crate) use crate::load::files::map_file;
pub use crate::load::vocab::Vocab;

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
    /// ggml block quantizations (GGUF), read as F32 through the GGUF format's `quant`.
    Q8_0,
    Q4_0,
    Q4_K,
    Q6_K,
    /// Anything else, by the name the format gives it (`I64`, `Q5_K`, `<c8`).
    Other(String),
}

impl StoredDtype {
    /// A ggml block quantization: read as F32 values, while two rows are the
    /// same vector when their stored blocks are equal.
    pub fn is_quantized(&self) -> bool {
        matches!(
            self,
            StoredDtype::Q8_0 | StoredDtype::Q4_0 | StoredDtype::Q4_K | StoredDtype::Q6_K
        )
    }
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
    /// True for a 2-D tensor.
    pub fn is_matrix(&self) -> bool {
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

/// Bytes a loader hands back: borrowed from a memory map (zero-copy) or
/// owned (a dequantized, decompressed, byte-swapped or gathered copy).
#[derive(Clone)]
pub struct Bytes(Inner);

#[derive(Clone)]
enum Inner {
    Mapped {
        map: Arc<Map>,
        range: Range<usize>,
    },
    Owned(Vec<u8>),
    /// A range of a buffer several steps share (a decoded slab), freed
    /// with the last of them.
    Shared {
        buf: Arc<Vec<u8>>,
        range: Range<usize>,
    },
}

impl Bytes {
    /// `range` of `map`; `None` when the range does not lie inside the map.
    pub fn mapped(map: Arc<Map>, range: Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= map.len())
            .then_some(Self(Inner::Mapped { map, range }))
    }

    /// A buffer of its own.
    pub fn owned(bytes: Vec<u8>) -> Self {
        Self(Inner::Owned(bytes))
    }

    /// `range` of a shared buffer (zero-copy; the buffer lives as long as
    /// any of its ranges); `None` when the range does not lie inside it.
    pub fn shared(buf: Arc<Vec<u8>>, range: Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= buf.len())
            .then_some(Self(Inner::Shared { buf, range }))
    }

    /// `range` of these bytes: a narrower range of the same map when mapped
    /// (zero-copy), else a copy; `None` when `range` does not lie inside.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        match &self.0 {
            Inner::Mapped { map, range: r } => {
                Self::mapped(map.clone(), r.start + range.start..r.start + range.end)
            }
            Inner::Owned(v) => Some(Self::owned(v[range].to_vec())),
            Inner::Shared { buf, range: r } => {
                Self::shared(buf.clone(), r.start + range.start..r.start + range.end)
            }
        }
    }

    /// The mapped file these bytes lie in and where they start in it, for
    /// a reader that reads them with positioned reads rather than through
    /// the map; `None` for bytes of memory of their own.
    pub fn in_file(&self) -> Option<(&Map, u64)> {
        match &self.0 {
            Inner::Mapped { map, range } => Some((map, range.start as u64)),
            _ => None,
        }
    }

    /// These bytes, no longer keeping alive a buffer they share with others
    /// (a range of a decoded slab is copied out of it); mapped and owned
    /// bytes are handed back as they are.
    pub fn detached(self) -> Self {
        match &self.0 {
            Inner::Shared { buf, range } => Self::owned(buf[range.clone()].to_vec()),
            _ => self,
        }
    }

    /// True when the bytes are read in place from a memory map.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Inner::Mapped { .. })
    }

    /// Gives back the pages of `range` of these mapped bytes that lie
    /// wholly inside it (`madvise(MADV_DONTNEED)`): they leave this
    /// process's resident set, and a later read of them faults them in
    /// again from the file. Nothing for owned bytes.
    pub fn release(&self, range: Range<usize>) {
        /// Whole pages on every page size Linux uses (4 KiB to 64 KiB).
        const PAGE: usize = 64 << 10;
        let Inner::Mapped { map, range: r } = &self.0 else {
            return;
        };
        let start = (r.start + range.start).next_multiple_of(PAGE);
        let end = (r.start + range.end.min(r.len())) / PAGE * PAGE;
        if start < end {
            // SAFETY: the map is a read-only map of a file: dropping its
            // pages loses nothing, and any later read of them (a slice
            // still held) faults in the same bytes from the file.
            let _ = unsafe {
                map.mmap().unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Inner::Mapped { map, range } => &map[range.clone()],
            Inner::Owned(v) => v,
            Inner::Shared { buf, range } => &buf[range.clone()],
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "Bytes({kind}, {} bytes)", self.len())
    }
}
