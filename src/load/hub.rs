//! Hugging Face layouts: a model folder (one `model.safetensors`, or shards
//! listed by `model.safetensors.index.json`) and a hub cache entry
//! (`models--ORG--NAME`, or `ORG/NAME` looked up in the cache), resolved to
//! the one file that holds the chosen tensor. Nothing is downloaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{one_line, Error, Result};

/// The index of a sharded safetensors checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Weight files looked for in a model folder without an index, in order.
pub const SINGLE_FILES: &[&str] = &[
    "model.safetensors",
    "pytorch_model.bin",
    "model.pt",
    "model.pth",
];

/// Largest index file read (the largest real ones are a few hundred KB).
const MAX_INDEX_BYTES: u64 = 64 << 20;

fn format_err(path: &Path, reason: String) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        reason,
    }
}

/// Where the hub cache lives: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn hub_cache() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = var("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = var("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// Extensions of the formats this tool reads: a missing path ending in one
/// is a mistyped file, not a model name.
const FORMAT_EXTENSIONS: &[&str] = &[
    "safetensors",
    "gguf",
    "pt",
    "pth",
    "bin",
    "npy",
    "npz",
    "h5",
];

/// `ORG/NAME` as the user typed it, when `input` does not exist as a path
/// and reads as a model name: that shape, no extension of a format we read
/// (`mymodels/llama.safetensors` is a file that is missing), and no local
/// folder `ORG` (then it is a path into that folder).
pub fn repo_id(input: &Path) -> Option<(String, String)> {
    let s = input.to_str()?;
    let (org, name) = s.split_once('/')?;
    let format_file = name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| FORMAT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    if format_file || Path::new(org).is_dir() {
        return None;
    }
    let plain = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (plain(org) && plain(name)).then(|| (org.to_string(), name.to_string()))
}

/// True for a folder laid out as a hub cache entry.
pub fn is_cache_entry(dir: &Path) -> bool {
    dir.join("snapshots").is_dir()
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("models--"))
}

/// The cache entry for `ORG/NAME`, or an error that says how to get it.
pub fn find_in_cache(input: &Path, org: &str, name: &str) -> Result<PathBuf> {
    let Some(cache) = hub_cache() else {
        return Err(Error::Usage(format!(
            "{}: no such file or folder, and no Hugging Face cache to look in (set HF_HUB_CACHE)",
            one_line(&input.display().to_string())
        )));
    };
    let entry = cache.join(format!("models--{org}--{name}"));
    if entry.is_dir() {
        return Ok(entry);
    }
    Err(Error::Usage(format!(
        "{org}/{name}: no such file or folder here, and not in the Hugging Face cache ({} not found); nothing is downloaded here: fetch it first with `huggingface-cli download {org}/{name}` (or point HF_HUB_CACHE at the cache that has it)",
        one_line(&entry.display().to_string())
    )))
}

/// The snapshot folder of a cache entry for `revision` (a branch or tag
/// under `refs/`, or a commit that has a snapshot; default `main`).
pub fn snapshot(entry: &Path, revision: Option<&str>) -> Result<PathBuf> {
    let rev = revision.unwrap_or("main");
    let bad = rev.is_empty()
        || rev.contains(['\\', '\0'])
        || rev
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::Usage(format!(
            "--revision {:?} is not a branch, tag or commit name",
            one_line(rev)
        )));
    }
    let snapshots = entry.join("snapshots");
    let direct = snapshots.join(rev);
    if !rev.contains('/') && direct.is_dir() {
        return Ok(direct);
    }
    let refs = entry.join("refs").join(rev);
    let commit = match crate::load::files::read_small(&refs, 256, "a ref") {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(e) if refs.exists() => return Err(e),
        Err(_) => {
            let have = list_dir(&snapshots);
            return Err(format_err(
                entry,
                format!(
                    "no revision {:?} in this cache entry (no refs/{0} and no snapshot of that name; snapshots: {})",
                    one_line(rev),
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ),
            ));
        }
    };
    let plain = !commit.is_empty() && commit.chars().all(|c| c.is_ascii_alphanumeric());
    let dir = snapshots.join(&commit);
    if !plain || !dir.is_dir() {
        return Err(format_err(
            entry,
            format!(
                "refs/{} names commit {:?}, which has no snapshot folder",
                one_line(rev),
                one_line(&commit)
            ),
        ));
    }
    Ok(dir)
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| one_line(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A sharded checkpoint's index: tensor name → shard file name.
#[derive(Debug)]
pub struct ShardIndex {
    pub path: PathBuf,
    pub weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Reads and checks `dir/model.safetensors.index.json`: every shard is a
    /// plain file name inside `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(INDEX_FILE);
        let bytes = crate::load::files::read_small(&path, MAX_INDEX_BYTES, "an index")?;
        Self::parse(&path, &bytes)
    }

    /// Parses an index's JSON.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Raw {
            weight_map: BTreeMap<String, String>,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
            format_err(
                path,
                one_line(&format!("{INDEX_FILE} is not a valid index ({e})")),
            )
        })?;
        for (name, shard) in &raw.weight_map {
            let plain = !shard.is_empty()
                && !shard.contains(['/', '\\', '\0'])
                && shard != "."
                && shard != "..";
            if !plain {
                return Err(format_err(
                    path,
                    format!(
                        "tensor {:?} is mapped to {:?}, which is not a file name in this folder",
                        one_line(name),
                        one_line(shard)
                    ),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            weight_map: raw.weight_map,
        })
    }

    /// The distinct shard file names, sorted.
    pub fn shards(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.weight_map.values().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The weight file of a model folder without an index.
pub fn single_file(dir: &Path) -> Result<PathBuf> {
    for name in SINGLE_FILES {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    // One weight file of a recognisable kind, whatever its name.
    let candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e, "safetensors" | "gguf" | "pt" | "pth" | "npy" | "npz")
                })
        })
        .collect();
    match candidates.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(format_err(
            dir,
            format!(
                "a folder, and not a model folder: it holds no {INDEX_FILE}, no {} and {} other weight files to choose from (name the file with --file)",
                SINGLE_FILES.join(", no "),
                if candidates.is_empty() { "no".to_string() } else { candidates.len().to_string() }
            ),
        )),
    }
}
