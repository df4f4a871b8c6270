//! Token strings: where a model's tokenizer is found, and reading it
//! ([`tokenizer`] parses and decodes the files).

pub mod tokenizer;

use std::path::{Path, PathBuf};

pub use tokenizer::Vocab;

use crate::error::{one_line, Error, Result};
use crate::load::files::read_small;

/// A vocabulary and where it came from.
#[derive(Clone, Debug)]
pub struct TokenNames {
    pub vocab: Vocab,
    /// The tokenizer file (the model file itself for GGUF's own tokens).
    pub path: PathBuf,
}

impl TokenNames {
    /// The tokenizer at `path` (a `tokenizer.json` or `vocab.txt`), for a
    /// matrix that has no file of its own to find one beside.
    pub fn read(path: &Path) -> Result<TokenNames> {
        Ok(TokenNames {
            vocab: read_tokenizer(path)?,
            path: path.to_path_buf(),
        })
    }
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
