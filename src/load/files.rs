//! Files opened the safe way: only regular files (a FIFO would block, a
//! device never end), small files read whole without trusting the size the
//! file system reports, and read-only memory maps. The loader's lowest floor,
//! below the formats and the tokenizer lookup alike.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// An error unless `path` is a regular file (after symlinks): a FIFO would
/// block the read, a device would never end.
pub(crate) fn regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::Input {
            path: path.to_path_buf(),
            reason: "no such file or folder".into(),
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            source,
        },
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

/// A file mapped read-only, with the open file beside the map: its bytes
/// can be read through the map (zero-copy, faulted in page by page) or
/// with positioned reads into a buffer of the reader's
/// ([`read_at`](Self::read_at)), which a checkpoint series does, reading
/// each step once, where page faults would cost more than the copy.
pub struct Map {
    map: Mmap,
    file: File,
    path: std::path::PathBuf,
}

impl Map {
    /// Maps `file` (opened from `path`, which errors name) whole, read-only.
    ///
    /// # Safety
    /// As [`Mmap::map`]: the file must not be truncated or written while
    /// the map lives (every mmap-based reader relies on it).
    pub unsafe fn new(file: File, path: &Path) -> std::io::Result<Self> {
        // SAFETY: the caller's promise.
        let map = unsafe { Mmap::map(&file) }?;
        Ok(Self {
            map,
            file,
            path: path.to_path_buf(),
        })
    }

    /// The memory map.
    pub fn mmap(&self) -> &Mmap {
        &self.map
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills `buf` with the file's bytes from `offset` (positioned reads,
    /// the file's own offset left alone): an error when the file holds
    /// fewer (it shrank since it was mapped).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
        }
        #[cfg(not(unix))]
        {
            let start = usize::try_from(offset).ok();
            let src = start
                .and_then(|s| self.map.get(s..s.checked_add(buf.len())?))
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }
}

impl crate::types::ReadAt for Map {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        Map::read_at(self, buf, offset).map_err(|source| Error::Io {
            path: self.path.clone(),
            source: match source.kind() {
                std::io::ErrorKind::UnexpectedEof => std::io::Error::other(
                    "the file is shorter than when it was opened (changed while being read?)",
                ),
                _ => source,
            },
        })
    }
}

impl Deref for Map {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// Maps `path` read-only, for a reader of `format`.
pub(crate) fn map_file(path: &Path, format: &'static str) -> Result<Arc<Map>> {
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
    let map = unsafe { Map::new(file, path) }.map_err(io)?;
    Ok(Arc::new(map))
}
