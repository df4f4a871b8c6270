//! Opening a model and reading the chosen matrix: the input resolved to
//! files ([`resolve`](crate::load::resolve)), each file opened at most once
//! and only when it holds a tensor that is needed, the tensor chosen
//! ([`choose`](crate::load::choose)), read (dequantized where it is stored in
//! blocks), and its token strings found ([`vocab`](crate::load::vocab)).

use std::path::{Path, PathBuf};

use crate::dtype::Dtype;
use crate::error::{one_line, Error, Result};
use crate::load::choose::{
    check_matrix, choose, input_only_keys, listing, pick_name, read_as, INPUT_EMBEDDING_KEYS,
    OUTPUT_HEAD_KEYS,
};
use crate::load::format::gguf::quant;
use crate::load::resolve::{open_file, resolve, Input};
use crate::load::source::{Bytes, TensorSource};
use crate::load::vocab::{find_tokenizer, TokenNames};
use crate::matrix::Matrix;
use crate::types::{Role, Tied};

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

impl Loaded {
    /// The values the engines read (`dtype`, row-major), given up by the
    /// loaded tensor (a series keeps one step's bytes past its `Loaded`).
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// The zero-copy view the engines take.
    pub fn matrix(&self) -> Matrix<'_> {
        // Checked in `read_tensor`, so this cannot fail.
        Matrix::new(self.dtype, self.rows, self.cols, &self.data)
            .expect("loaded matrix length checked when loaded")
    }
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
    if t.dtype.is_quantized() {
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
