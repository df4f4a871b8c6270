//! What an input is: a file recognised by its first bytes (never by its
//! extension), a model folder, or a Hugging Face cache entry; and opening a
//! file as the format it is.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{one_line, Error, Result};
use crate::load::container::zip;
use crate::load::files::{map_file, regular_file};
use crate::load::format::{gguf, hdf5, npy, pytorch, safetensors};
use crate::load::hub;
use crate::load::source::TensorSource;

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
    /// An 8-byte header length, then a JSON object: safetensors (see
    /// `looks_like_safetensors`).
    Safetensors,
    /// None of the formats this tool reads.
    Unknown,
}

/// What the error for an unknown file lists.
const FORMATS_READ: &str = "safetensors, PyTorch zip, GGUF, .npy, .npz, HDF5 trajectory";

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
    } else if looks_like_safetensors(head) {
        Sniffed::Safetensors
    } else {
        Sniffed::Unknown
    }
}

/// A header length a safetensors file could have (at most 100 MB), or a
/// header that opens as JSON: a damaged header is then reported as such,
/// while text and other files are not mistaken for one.
fn looks_like_safetensors(head: &[u8]) -> bool {
    let Some(len) = head.get(..8).and_then(|b| b.try_into().ok()) else {
        return false;
    };
    let declared = u64::from_le_bytes(len);
    head.get(8) == Some(&b'{') || (2..=safetensors::MAX_HEADER_BYTES).contains(&declared)
}

/// What the first bytes of the regular file `path` say it is, with those
/// bytes (up to 16: enough for torch's legacy magic number).
pub(crate) fn sniff_path(path: &Path) -> Result<(Sniffed, Vec<u8>)> {
    let head = head(path)?;
    Ok((sniff(&head), head))
}

/// The error for a file that is none of the formats this tool reads.
pub(crate) fn unknown_format(path: &Path, head: &[u8]) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        reason: format!(
            "not a file format singularity-gpu reads ({FORMATS_READ}): first bytes {}",
            first_bytes(head)
        ),
    }
}

/// The first bytes of `path` (up to 16).
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

/// The first bytes of a file as a message shows them: `"# sin…"` with
/// bytes that are not printable ASCII escaped (`\x00`).
fn first_bytes(head: &[u8]) -> String {
    if head.is_empty() {
        return "none (the file is empty)".into();
    }
    format!("\"{}\"", head.escape_ascii())
}

/// Opens the file at `path`, recognised by its content.
pub fn open_file(path: &Path) -> Result<Box<dyn TensorSource>> {
    let (sniffed, head) = sniff_path(path)?;
    Ok(match sniffed {
        Sniffed::Safetensors => Box::new(safetensors::SafetensorsFile::open(path)?),
        Sniffed::Npy => Box::new(npy::NpyFile::open(path)?),
        Sniffed::Gguf => Box::new(gguf::GgufFile::open(path)?),
        Sniffed::Zip => open_zip(path)?,
        Sniffed::Unknown => return Err(unknown_format(path, &head)),
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
pub(crate) enum Input {
    /// One file of tensors.
    File(PathBuf),
    /// A folder of safetensors shards with an index.
    Sharded {
        dir: PathBuf,
        index: hub::ShardIndex,
    },
}

/// Resolves `--file`: a file, a model folder, a hub cache entry (the folder,
/// or `ORG/NAME` looked up in the cache). Returns the input and the folder
/// where a tokenizer is looked for.
pub(crate) fn resolve(path: &Path, revision: Option<&str>) -> Result<(Input, Option<PathBuf>)> {
    if path.is_dir() {
        let dir = if hub::is_cache_entry(path) {
            hub::snapshot(path, revision)?
        } else if revision.is_some() {
            return Err(Error::Usage(format!(
                "{}: --revision applies to a Hugging Face cache entry (models--ORG--NAME or ORG/NAME), and this folder is not one",
                one_line(&path.display().to_string())
            )));
        } else {
            path.to_path_buf()
        };
        let input = if dir.join(hub::INDEX_FILE).is_file() {
            Input::Sharded {
                index: hub::ShardIndex::read(&dir)?,
                dir: dir.clone(),
            }
        } else {
            Input::File(hub::single_file(&dir)?)
        };
        return Ok((input, Some(dir)));
    }
    if !path.exists() {
        if let Some((org, name)) = hub::repo_id(path) {
            let entry = hub::find_in_cache(path, &org, &name)?;
            return resolve(&entry, revision);
        }
        return Err(Error::Input {
            path: path.to_path_buf(),
            reason: "no such file or folder".into(),
        });
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
