//! A tensor's bytes: a range of a shared memory map, or a buffer of their own.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use memmap2::Mmap;

/// Bytes a loader hands back: borrowed from a memory map (zero-copy) or
/// owned (a dequantized, decompressed, byte-swapped or gathered copy).
#[derive(Clone)]
pub struct Bytes(Inner);

#[derive(Clone)]
enum Inner {
    Mapped { map: Arc<Mmap>, range: Range<usize> },
    Owned(Vec<u8>),
}

impl Bytes {
    /// `range` of `map`; `None` when the range does not lie inside the map.
    pub fn mapped(map: Arc<Mmap>, range: Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= map.len())
            .then_some(Self(Inner::Mapped { map, range }))
    }

    /// A buffer of its own.
    pub fn owned(bytes: Vec<u8>) -> Self {
        Self(Inner::Owned(bytes))
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
        }
    }

    /// True when the bytes are read in place from a memory map.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Inner::Mapped { .. })
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Inner::Mapped { map, range } => &map[range.clone()],
            Inner::Owned(v) => v,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "Bytes({kind}, {} bytes)", self.len())
    }
}
