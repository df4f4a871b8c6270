//! Files opened the safe way: only regular files (a FIFO would block, a
//! device never end), small files read whole without trusting the size the
//! file system reports, and read-only memory maps. The loader's lowest floor,
//! below the formats and the tokenizer lookup alike.

use std::fs::File;
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
