//! PyTorch checkpoints in `torch.save`'s zip format (torch ≥ 1.6), memory-mapped.
//!
//! The archive holds `<prefix>/data.pkl` (a pickle of the saved object, whose
//! tensors refer by persistent id to storages), one STORED member per storage
//! at `<prefix>/data/<key>`, and `<prefix>/byteorder`. The pickle is read by
//! our own inert machine ([`crate::load::container::pickle`]): only the globals on [`allowed`]
//! are accepted, and none is ever called; anything else (`os.system`,
//! `builtins.eval`, …) refuses the file by name. Tensors are then found
//! anywhere in the nested dicts and lists and named by their path
//! (`model_state_dict.embedding.weight`, a list index as a component).
//!
//! Every storage range, offset, size and stride is checked against the file
//! at open. A contiguous tensor is read in place; a strided view (a
//! transposed matrix) or a big-endian file's tensor is gathered into a buffer
//! of its own, sized only after that size was checked against the storage.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::files::Map;

use crate::error::{one_line, Error, Result};
use crate::load::container::pickle::{self, Id, Pickle, Value};
use crate::load::container::zip::{self, Entry};
use crate::load::source::{map_file, Bytes, StoredDtype, TensorDesc, TensorSource};

/// The format's name in messages.
pub const FORMAT: &str = "PyTorch";

/// The most `data.pkl` may inflate to when an archiver compressed it.
const MAX_PICKLE: usize = 1 << 30;
/// How deep tensors are looked for in nested containers.
const MAX_DEPTH: usize = 64;
/// The most dimensions a tensor's size or stride may have (torch's own
/// kernels stop at 25).
const MAX_TENSOR_DIMS: usize = 64;
/// The most memory the tensors found may take (each one's description, name
/// and view): the pickle's graph may share one tensor, or one long key,
/// under many paths, so that a small pickle names more tensors, or longer
/// names, than it holds bytes.
const MAX_FOUND_MEMORY: usize = 1 << 30;

/// An open, memory-mapped PyTorch checkpoint whose pickle and storages were checked.
pub struct TorchFile {
    path: PathBuf,
    map: Arc<Map>,
    tensors: Vec<TensorDesc>,
    views: Vec<View>,
    big_endian: bool,
}

/// Where a tensor's elements are: a storage's bytes in the file, and the
/// view torch keeps over it (all in elements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The storage's bytes in the file.
    pub storage: Range<usize>,
    /// Bytes per element.
    pub elem: usize,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl View {
    fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Row-major and dense: readable as one range of the storage.
    fn is_contiguous(&self) -> bool {
        let mut expect = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expect {
                return false;
            }
            expect = expect.saturating_mul(d);
        }
        true
    }
}

impl TorchFile {
    /// Opens and maps `path`, and checks its archive, pickle and storages.
    pub fn open(path: &Path) -> Result<Self> {
        let map = map_file(path, FORMAT)?;
        let entries = zip::entries(&map).map_err(|reason| Error::Format {
            path: path.to_path_buf(),
            format: "zip",
            reason,
        })?;
        let prefix = torch_prefix(&entries).ok_or_else(|| Error::Format {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: "the zip archive has no <name>/data.pkl member".into(),
        })?;
        Self::from_zip(path, map, &entries, &prefix)
    }

    /// Reads the checkpoint whose archive `map` was already listed as `entries`,
    /// its members under `prefix` (see [`torch_prefix`]).
    pub fn from_zip(path: &Path, map: Arc<Map>, entries: &[Entry], prefix: &str) -> Result<Self> {
        let (tensors, views, big_endian) =
            parse(&map, entries, prefix).map_err(|reason| Error::Format {
                path: path.to_path_buf(),
                format: FORMAT,
                reason,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            tensors,
            views,
            big_endian,
        })
    }
}

impl TensorSource for TorchFile {
    fn format(&self) -> &'static str {
        FORMAT
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }
    /// Tied weights saved once: both names view the same storage the same way.
    fn same_data(&self, a: usize, b: usize) -> bool {
        match (self.views.get(a), self.views.get(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
    fn data(&self, index: usize) -> Result<Bytes> {
        let err = |reason: String| Error::Tensor {
            path: self.path.clone(),
            reason,
        };
        let v = self
            .views
            .get(index)
            .ok_or_else(|| err(format!("no tensor number {index}")))?;
        let name = &self.tensors[index].name;
        let storage = self.map.get(v.storage.clone()).ok_or_else(|| {
            err(format!(
                "tensor {name:?}: its storage lies outside the file"
            ))
        })?;
        if v.is_contiguous() && !self.big_endian {
            let range = contiguous_range(v)
                .ok_or_else(|| err(format!("tensor {name:?}: its view overruns its storage")))?;
            let start = v.storage.start + range.start;
            return Bytes::mapped(self.map.clone(), start..start + range.len())
                .ok_or_else(|| err(format!("tensor {name:?}: its view overruns the file")));
        }
        let mut out = gather(storage, v).map_err(|e| err(format!("tensor {name:?}: {e}")))?;
        if self.big_endian {
            for e in out.chunks_exact_mut(v.elem) {
                e.reverse();
            }
        }
        Ok(Bytes::owned(out))
    }
}

/// The archive's folder when `entries` are torch.save's: the `<prefix>` of
/// the one `<prefix>/data.pkl` member; `None` when there is not exactly one.
pub fn torch_prefix(entries: &[Entry]) -> Option<String> {
    let mut found = entries.iter().filter_map(|e| {
        let prefix = e.name.strip_suffix("/data.pkl")?;
        (!prefix.contains('/')).then_some(prefix)
    });
    let first = found.next()?;
    found.next().is_none().then(|| first.to_string())
}

/// True when `head` (a file's first bytes) is the legacy (pre-1.6, non-zip)
/// torch.save format: a bare pickle of torch's magic number.
pub fn is_legacy(head: &[u8]) -> bool {
    // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2), without its STOP.
    const MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
    head.starts_with(MAGIC)
}

/// The globals a checkpoint's pickle may name: torch's tensor and storage
/// rebuilders and types, and the plain containers and scalars that torch.save
/// writes beside them (protocol 2 pickles bytes through `_codecs.encode` and
/// sets through `builtins.set`; training scripts save numpy scalars). None is
/// ever called: allowing one only means that naming it does not refuse the file.
pub fn allowed(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor"
                | "_rebuild_tensor_v2"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ),
        "torch" => {
            storage_dtype(name).is_some()
                || is_torch_dtype(name)
                || matches!(name, "Size" | "device")
        }
        "_codecs" => name == "encode",
        "builtins" | "__builtin__" => matches!(name, "set" | "frozenset"),
        "numpy.core.multiarray" | "numpy._core.multiarray" => name == "scalar",
        "numpy" => name == "dtype",
        _ => false,
    }
}

/// The dtype and element size of a `torch.*Storage` class.
fn storage_dtype(class: &str) -> Option<(StoredDtype, usize)> {
    let other = |s: &str| StoredDtype::Other(s.to_string());
    Some(match class {
        "DoubleStorage" => (StoredDtype::F64, 8),
        "FloatStorage" => (StoredDtype::F32, 4),
        "HalfStorage" => (StoredDtype::F16, 2),
        "BFloat16Storage" => (StoredDtype::BF16, 2),
        "ShortStorage" => (StoredDtype::I16, 2),
        "LongStorage" => (other("I64"), 8),
        "IntStorage" => (other("I32"), 4),
        "CharStorage" => (other("I8"), 1),
        "ByteStorage" | "UntypedStorage" => (other("U8"), 1),
        "BoolStorage" => (other("BOOL"), 1),
        "ComplexFloatStorage" => (other("C64"), 8),
        "ComplexDoubleStorage" => (other("C128"), 16),
        _ => return None,
    })
}

fn is_torch_dtype(name: &str) -> bool {
    matches!(
        name,
        "float64"
            | "float32"
            | "float16"
            | "bfloat16"
            | "int64"
            | "int32"
            | "int16"
            | "int8"
            | "uint8"
            | "bool"
            | "complex64"
            | "complex128"
            | "double"
            | "float"
            | "half"
            | "long"
            | "int"
            | "short"
    )
}

type Res<T> = std::result::Result<T, String>;

/// A tensor as the pickle describes it, before its storage is looked up.
struct Found {
    name: String,
    key: String,
    dtype: StoredDtype,
    elem: usize,
    numel: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// The tensors of a torch.save archive held in `file` (listed as `entries`,
/// under `prefix`), each with its view, and whether the file is big-endian.
pub fn parse(
    file: &[u8],
    entries: &[Entry],
    prefix: &str,
) -> Res<(Vec<TensorDesc>, Vec<View>, bool)> {
    let by_name: HashMap<&str, &Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let member = |name: &str| by_name.get(format!("{prefix}/{name}").as_str()).copied();
    let big_endian = match member("byteorder") {
        // Files from torch before the member existed are little-endian.
        None => false,
        Some(e) => match &file[zip::stored_range(file, e)?] {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(format!(
                    "the byteorder member says {:?}, not \"little\" or \"big\"",
                    one_line(&String::from_utf8_lossy(other))
                ))
            }
        },
    };
    let pkl = member("data.pkl").ok_or("no data.pkl member")?;
    let pkl: Cow<[u8]> = match pkl.method {
        zip::STORED => Cow::Borrowed(&file[zip::stored_range(file, pkl)?]),
        _ => Cow::Owned(zip::inflate(file, pkl, MAX_PICKLE)?),
    };
    let pickle = pickle::parse(&pkl, &allowed).map_err(|e| format!("data.pkl: {e}"))?;
    let mut found = Vec::new();
    let mut walk = Walk {
        p: &pickle,
        budget: pickle.values.len().saturating_mul(4).saturating_add(1024),
        memory: MAX_FOUND_MEMORY,
        found: &mut found,
    };
    walk.visit(pickle.root, &mut Vec::new())?;

    let mut tensors = Vec::with_capacity(found.len());
    let mut views = Vec::with_capacity(found.len());
    for f in found {
        let bad = |what: String| format!("tensor {:?}: {what}", one_line(&f.name));
        let e = member(&format!("data/{}", f.key)).ok_or_else(|| {
            bad(format!(
                "its storage {:?} has no member data/{} in the archive",
                one_line(&f.key),
                one_line(&f.key)
            ))
        })?;
        if e.method != zip::STORED {
            return Err(bad(format!(
                "its storage data/{} is compressed (method {}); torch.save stores storages uncompressed, so this archive was repacked: unzip and re-zip it with no compression (zip -0)",
                one_line(&f.key),
                e.method
            )));
        }
        let storage = zip::stored_range(file, e)?;
        let need = f.numel.checked_mul(f.elem);
        if need.is_none_or(|n| n > storage.len()) {
            return Err(bad(format!(
                "its storage declares {} elements of {} bytes but data/{} holds {} bytes",
                f.numel,
                f.elem,
                one_line(&f.key),
                storage.len()
            )));
        }
        let storage = storage.start..storage.start + f.numel * f.elem;
        let view = View {
            storage,
            elem: f.elem,
            offset: f.offset,
            shape: f.shape,
            stride: f.stride,
        };
        check_fits(&view, f.numel).map_err(bad)?;
        tensors.push(TensorDesc {
            name: f.name,
            dtype: f.dtype,
            shape: view.shape.clone(),
        });
        views.push(view);
    }
    Ok((tensors, views, big_endian))
}

/// Checks that every element of the view lies inside a storage of `numel` elements.
fn check_fits(v: &View, numel: usize) -> Res<()> {
    if v.shape.len() != v.stride.len() {
        return Err(format!(
            "its size {:?} and stride {:?} have different lengths",
            v.shape, v.stride
        ));
    }
    let count = v
        .numel()
        .ok_or_else(|| format!("its size {:?} is too large to exist", v.shape))?;
    if count == 0 {
        return Ok(());
    }
    let last = v
        .shape
        .iter()
        .zip(&v.stride)
        .try_fold(v.offset, |acc, (&d, &s)| {
            acc.checked_add((d - 1).checked_mul(s)?)
        });
    match last {
        Some(last) if last < numel => Ok(()),
        _ => Err(format!(
            "its view (offset {}, size {:?}, stride {:?}) reaches past its storage of {numel} elements",
            v.offset, v.shape, v.stride
        )),
    }
}

/// The byte range, within its storage, of a contiguous view.
fn contiguous_range(v: &View) -> Option<Range<usize>> {
    let start = v.offset.checked_mul(v.elem)?;
    let len = v.numel()?.checked_mul(v.elem)?;
    let end = start.checked_add(len)?;
    (end <= v.storage.len()).then_some(start..end)
}

/// Copies a strided view's elements out of `storage`, row-major. The output's
/// size is checked against the storage's before anything is allocated (so a
/// broadcast view, stride 0, cannot ask for more memory than the file holds).
fn gather(storage: &[u8], v: &View) -> Res<Vec<u8>> {
    let count = v.numel().ok_or("its size is too large to exist")?;
    let len = count
        .checked_mul(v.elem)
        .filter(|&n| n <= storage.len())
        .ok_or_else(|| {
            format!(
                "its view (size {:?}, stride {:?}) would be larger than its storage of {} bytes",
                v.shape,
                v.stride,
                storage.len()
            )
        })?;
    // At most the storage's size, which lies in the file; asked for
    // fallibly, as a large file's may not fit in memory.
    let mut out = crate::load::alloc::room(len, "its gathered copy")?;
    if count == 0 {
        return Ok(out);
    }
    // One counter per dimension (at most MAX_TENSOR_DIMS).
    let mut index = vec![0usize; v.shape.len()];
    for _ in 0..count {
        let at = index
            .iter()
            .zip(&v.stride)
            .try_fold(v.offset, |acc, (&i, &s)| acc.checked_add(i.checked_mul(s)?))
            .and_then(|e| e.checked_mul(v.elem))
            .ok_or("an element's position overflows")?;
        let bytes = storage
            .get(
                at..at
                    .checked_add(v.elem)
                    .ok_or("an element's position overflows")?,
            )
            .ok_or("an element lies outside its storage")?;
        out.extend_from_slice(bytes);
        // Odometer: the last dimension moves fastest.
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < v.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

/// The search for tensors through the pickle's containers.
struct Walk<'a> {
    p: &'a Pickle,
    /// Visits left: the graph may share nodes, so a walk is bounded in work
    /// as well as in depth.
    budget: usize,
    /// Bytes of [`MAX_FOUND_MEMORY`] the tensors found may still take.
    memory: usize,
    found: &'a mut Vec<Found>,
}

/// The keys from the root to a node: the pickle's own strings, borrowed.
type KeyPath<'a> = Vec<Cow<'a, str>>;

impl<'a> Walk<'a> {
    fn visit(&mut self, id: Id, path: &mut KeyPath<'a>) -> Res<()> {
        if path.len() > MAX_DEPTH {
            return Err(format!(
                "the saved object nests deeper than {MAX_DEPTH} containers (or refers to itself)"
            ));
        }
        self.budget = self.budget.checked_sub(1).ok_or(
            "the saved object's graph is too large to walk (it shares containers too often)",
        )?;
        let p = self.p;
        match p.get(id) {
            Value::Dict(items) => self.visit_items(items, path),
            Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
                self.visit_list(items, path)
            }
            Value::Object {
                callee,
                args,
                items,
                list,
                ..
            } => match global_name(p, *callee) {
                Some(("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2")) => {
                    // Charged before the name is joined and the tensor kept.
                    let cost = size_of::<Found>()
                        + size_of::<TensorDesc>()
                        + size_of::<View>()
                        + path.iter().map(|k| k.len() + 1).sum::<usize>();
                    self.memory = self.memory.checked_sub(cost).ok_or_else(|| {
                        format!(
                            "the saved object names more tensors, or longer names, than {MAX_FOUND_MEMORY} bytes of memory hold (after {} tensors; it repeats one object or one long key under many paths?)",
                            self.found.len()
                        )
                    })?;
                    let t = self.tensor(*args, path)?;
                    // The size and stride, kept twice (found, then viewed).
                    let dims = 2 * 8 * (t.shape.len() + t.stride.len());
                    self.memory = self.memory.checked_sub(dims).ok_or_else(|| {
                        format!(
                            "the tensors' sizes take more than {MAX_FOUND_MEMORY} bytes of memory"
                        )
                    })?;
                    self.found.push(t);
                    Ok(())
                }
                Some(("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")) => {
                    match p.get(*args) {
                        Value::Tuple(a) if !a.is_empty() => self.visit(a[0], path),
                        _ => Err(format!("{}: a parameter without its data", path_name(path))),
                    }
                }
                // An OrderedDict (or a set, …): what was stored in it.
                _ => {
                    self.visit_items(items, path)?;
                    self.visit_list(list, path)
                }
            },
            _ => Ok(()),
        }
    }

    fn visit_items(&mut self, items: &'a [(Id, Id)], path: &mut KeyPath<'a>) -> Res<()> {
        let p = self.p;
        for &(k, v) in items {
            let key = match p.get(k) {
                Value::Str(s) => Cow::Borrowed(s.as_str()),
                Value::Int(i) => Cow::Owned(i.to_string()),
                Value::Bool(b) => Cow::Borrowed(if *b { "True" } else { "False" }),
                Value::None => Cow::Borrowed("None"),
                // A tuple or object as key cannot be named; tensors under it are skipped.
                _ => continue,
            };
            path.push(key);
            let r = self.visit(v, path);
            path.pop();
            r?;
        }
        Ok(())
    }

    fn visit_list(&mut self, items: &'a [Id], path: &mut KeyPath<'a>) -> Res<()> {
        for (i, &v) in items.iter().enumerate() {
            path.push(Cow::Owned(i.to_string()));
            let r = self.visit(v, path);
            path.pop();
            r?;
        }
        Ok(())
    }

    /// A tensor from `_rebuild_tensor(_v2)`'s arguments:
    /// `(storage, storage_offset, size, stride, …)`.
    fn tensor(&self, args: Id, path: &[Cow<str>]) -> Res<Found> {
        let p = self.p;
        let name = path_name(path);
        let bad = |what: &str| format!("tensor {:?}: {what}", one_line(&name));
        let Value::Tuple(a) = p.get(args) else {
            return Err(bad("its rebuild arguments are not a tuple"));
        };
        let [storage, offset, size, stride, ..] = a.as_slice() else {
            return Err(bad(
                "its rebuild arguments are not (storage, offset, size, stride, …)",
            ));
        };
        let Value::PersistentId(pid) = p.get(*storage) else {
            return Err(bad("its storage is not a reference to a storage record"));
        };
        // ('storage', storage_type, key, location, numel)
        let pid = match p.get(*pid) {
            Value::Tuple(t) => t.as_slice(),
            _ => &[],
        };
        let [kind, class, key, _location, numel, ..] = pid else {
            return Err(bad(
                "its storage record is not ('storage', type, key, location, numel)",
            ));
        };
        if p.get(*kind) != &Value::Str("storage".into()) {
            return Err(bad("its persistent id is not a storage record"));
        }
        let (dtype, elem) = match global_name(p, *class) {
            Some(("torch", c)) => storage_dtype(c),
            _ => None,
        }
        .ok_or_else(|| bad("its storage type is not a torch.*Storage class"))?;
        let key = match p.get(*key) {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => return Err(bad("its storage key is not a string")),
        };
        if key.is_empty() || key.contains(['/', '\\']) || key == ".." {
            return Err(bad("its storage key is not a plain member name"));
        }
        let numel = count(p, *numel).ok_or_else(|| bad("its storage size is not a count"))?;
        let offset = count(p, *offset).ok_or_else(|| bad("its storage offset is not a count"))?;
        let not_counts = |what: &str| {
            bad(&format!(
                "its {what} is not a tuple of at most {MAX_TENSOR_DIMS} counts"
            ))
        };
        let shape = counts(p, *size).ok_or_else(|| not_counts("size"))?;
        let stride = counts(p, *stride).ok_or_else(|| not_counts("stride"))?;
        Ok(Found {
            name,
            key,
            dtype,
            elem,
            numel,
            offset,
            shape,
            stride,
        })
    }
}

fn path_name(path: &[Cow<str>]) -> String {
    path.join(".")
}

/// `(module, name)` of a global value.
fn global_name(p: &Pickle, id: Id) -> Option<(&str, &str)> {
    match p.get(id) {
        Value::Global { module, name } => Some((module, name)),
        _ => None,
    }
}

/// A non-negative integer.
fn count(p: &Pickle, id: Id) -> Option<usize> {
    match p.get(id) {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

/// A tuple (or `torch.Size`, or list) of at most [`MAX_TENSOR_DIMS`]
/// non-negative integers.
fn counts(p: &Pickle, id: Id) -> Option<Vec<usize>> {
    let items = match p.get(id) {
        Value::Tuple(t) | Value::List(t) => t,
        // torch.Size((…)) from some writers.
        Value::Object { callee, args, .. }
            if global_name(p, *callee) == Some(("torch", "Size")) =>
        {
            match p.get(*args) {
                Value::Tuple(a) if a.len() == 1 => return counts(p, a[0]),
                _ => return None,
            }
        }
        _ => return None,
    };
    if items.len() > MAX_TENSOR_DIMS {
        return None;
    }
    items.iter().map(|&i| count(p, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: usize, shape: &[usize], stride: &[usize]) -> View {
        View {
            storage: 0..24,
            elem: 1,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn contiguity_and_gathering() {
        let storage: Vec<u8> = (0..24).collect();
        let v = view(2, &[2, 3], &[3, 1]);
        assert!(v.is_contiguous());
        assert_eq!(contiguous_range(&v), Some(2..8));
        // The transpose of a 3×2 matrix at offset 0: rows are columns.
        let t = view(0, &[2, 3], &[1, 2]);
        assert!(!t.is_contiguous());
        assert_eq!(gather(&storage, &t).unwrap(), [0, 2, 4, 1, 3, 5]);
        // Size-1 dimensions may have any stride.
        assert!(view(0, &[1, 4], &[99, 1]).is_contiguous());
        // A broadcast (stride 0) view larger than the storage is refused before allocating.
        let b = view(0, &[1000, 24], &[0, 1]);
        assert!(gather(&storage, &b)
            .unwrap_err()
            .contains("larger than its storage"));
    }

    #[test]
    fn views_must_fit_their_storage() {
        assert!(check_fits(&view(0, &[4, 6], &[6, 1]), 24).is_ok());
        assert!(check_fits(&view(1, &[4, 6], &[6, 1]), 24).is_err());
        assert!(check_fits(&view(0, &[4, 6], &[1, 4]), 24).is_ok());
        assert!(check_fits(&view(0, &[4, 6], &[1, 5]), 24).is_err());
        assert!(check_fits(&view(0, &[0, 6], &[6, 1]), 0).is_ok());
        assert!(check_fits(&view(0, &[usize::MAX, 2], &[2, 1]), 24).is_err());
        assert!(check_fits(&view(0, &[2, 2], &[usize::MAX, 1]), 24).is_err());
        assert!(check_fits(&view(0, &[2], &[1, 1]), 24).is_err());
    }

    #[test]
    fn prefix_is_the_one_folder_with_data_pkl() {
        let e = |name: &str| Entry {
            name: name.into(),
            method: 0,
            flags: 0,
            crc32: 0,
            compressed_size: 0,
            uncompressed_size: 0,
            local_header_offset: 0,
        };
        assert_eq!(
            torch_prefix(&[e("a/data.pkl"), e("a/data/0")]).as_deref(),
            Some("a")
        );
        assert_eq!(torch_prefix(&[e("a/b/data.pkl")]), None);
        assert_eq!(torch_prefix(&[e("a/data.pkl"), e("b/data.pkl")]), None);
        assert_eq!(torch_prefix(&[e("x.npy")]), None);
    }

    #[test]
    fn allowlist_refuses_what_could_run_code() {
        assert!(allowed("torch._utils", "_rebuild_tensor_v2"));
        assert!(allowed("torch", "BFloat16Storage"));
        assert!(allowed("collections", "OrderedDict"));
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_from_type_v2"),
            ("collections", "namedtuple"),
        ] {
            assert!(!allowed(m, n), "{m}.{n}");
        }
    }

    #[test]
    fn legacy_magic() {
        assert!(is_legacy(
            b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02"
        ));
        assert!(!is_legacy(b"\x80\x02}q\x00."));
    }
}
