//! NumPy `.npy` files: a magic string, a header that is a Python dict
//! literal (`{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`),
//! then the array's bytes. The header is parsed as data, never evaluated.
//!
//! A little-endian C-order array is read in place; a big-endian one is
//! byte-swapped and a Fortran-order one transposed into a copy of its own
//! (asked for fallibly: a shape that fits the file may not fit memory). A
//! compressed `.npz` member is inflated straight into the buffer the tensor
//! is read from: its array's size once, plus its header.
//! A bf16 array saved through ml_dtypes reads as a 2-byte void (`<V2`):
//! `--as bf16` says how to read it.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::files::Map;

use crate::error::{one_line, Error, Result};
use crate::load::source::{map_file, Bytes, StoredDtype, TensorDesc, TensorSource};

/// The format's name in messages.
pub const FORMAT: &str = "NumPy .npy";

/// The longest header read (numpy itself refuses headers over 10,000 bytes
/// unless told otherwise).
const MAX_HEADER: usize = 1 << 20;

/// Byte order of a stored array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

/// A parsed `.npy` header and where its data lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Npy {
    pub dtype: StoredDtype,
    /// Bytes per element.
    pub item: usize,
    pub order: Order,
    pub fortran: bool,
    pub shape: Vec<usize>,
    /// The data's byte range in the file (exactly the array's size).
    pub data: Range<usize>,
}

/// Parses the `.npy` file held in `file`; the reason it is not valid otherwise.
pub fn parse(file: &[u8]) -> std::result::Result<Npy, String> {
    parse_prefix(file, file.len())
}

/// Parses a `.npy` file of `total` bytes from its first bytes, `file` (at
/// least its whole header): how a compressed `.npz` member is described
/// without inflating it.
pub fn parse_prefix(file: &[u8], total: usize) -> std::result::Result<Npy, String> {
    let magic = b"\x93NUMPY";
    if !file.starts_with(magic) {
        return Err("it does not start with the \\x93NUMPY magic string".into());
    }
    let (major, minor) = match file.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err("the file ends inside the version bytes".into()),
    };
    let (len, start) = match major {
        1 => match file.get(8..10) {
            Some(b) => (u16::from_le_bytes([b[0], b[1]]) as usize, 10),
            None => return Err("the file ends inside the header length".into()),
        },
        2 | 3 => match file.get(8..12) {
            Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
            None => return Err("the file ends inside the header length".into()),
        },
        _ => {
            return Err(format!(
                "format version {major}.{minor} is not one numpy writes (1.0, 2.0, 3.0)"
            ))
        }
    };
    if len > MAX_HEADER {
        return Err(format!(
            "the header length field says {len} bytes, more than the {MAX_HEADER} read"
        ));
    }
    let end = start + len;
    let Some(header) = file.get(start..end) else {
        return Err(format!(
            "the header length field says {len} bytes but the file has only {} after it",
            total.saturating_sub(start)
        ));
    };
    let header =
        std::str::from_utf8(header).map_err(|_| "the header is not text (UTF-8)".to_string())?;
    let dict = parse_dict(header)?;
    let descr = dict.descr.ok_or("the header has no 'descr'")?;
    let shape = dict.shape.ok_or("the header has no 'shape'")?;
    let fortran = dict.fortran.unwrap_or(false);
    let (dtype, item, order) = descr_dtype(&descr)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(item))
        .ok_or_else(|| format!("shape {shape:?} is too large to exist"))?;
    let have = total.saturating_sub(end);
    if count != have {
        return Err(format!(
            "shape {shape:?} of {} needs {count} bytes of data, and the file has {have} after the header",
            one_line(&descr)
        ));
    }
    Ok(Npy {
        dtype,
        item,
        order,
        fortran,
        shape,
        data: end..end + have,
    })
}

/// Where the header of the `.npy` file starting with `first` ends (its
/// magic, version, length field and dict), when `first` holds the length
/// field (12 bytes are enough).
fn header_end(first: &[u8]) -> Option<usize> {
    match (first.get(6), first.get(8..12)) {
        (Some(1), Some(b)) => Some(10 + u16::from_le_bytes([b[0], b[1]]) as usize),
        (Some(2 | 3), Some(b)) => Some(12 + u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
        _ => None,
    }
}

/// The dtype, item size and byte order of a numpy `descr` string.
fn descr_dtype(descr: &str) -> std::result::Result<(StoredDtype, usize, Order), String> {
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<') | Some(b'=') => (Order::Little, &descr[1..]),
        Some(b'|') => (Order::Little, &descr[1..]),
        Some(b'>') => (Order::Big, &descr[1..]),
        _ => (Order::Little, descr),
    };
    let dtype = match code {
        "f8" => StoredDtype::F64,
        "f4" => StoredDtype::F32,
        "f2" => StoredDtype::F16,
        "u2" => StoredDtype::U16,
        "i2" => StoredDtype::I16,
        // ml_dtypes' bfloat16 is saved as a 2-byte void: --as bf16 reads it.
        "V2" => StoredDtype::Other("V2".into()),
        other => {
            return Err(format!(
                "dtype {:?} is not a float matrix (supported: f8, f4, f2, and u2/i2/V2 with --as bf16|f16)",
                one_line(other)
            ))
        }
    };
    let item = match dtype {
        StoredDtype::F64 => 8,
        StoredDtype::F32 => 4,
        _ => 2,
    };
    Ok((dtype, item, order))
}

/// The three keys of a header dict.
#[derive(Default)]
struct Dict {
    descr: Option<String>,
    fortran: Option<bool>,
    shape: Option<Vec<usize>>,
}

/// A tiny reader for the one dict literal numpy writes: string keys, and
/// values that are a string, True/False, or a tuple of integers.
fn parse_dict(s: &str) -> std::result::Result<Dict, String> {
    let bad = |what: &str| format!("the header is not a numpy header dict ({what})");
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    let mut d = Dict::default();
    p.ws();
    if !p.eat(b'{') {
        return Err(bad("no opening brace"));
    }
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p
            .string()
            .ok_or_else(|| bad("a key is not a quoted string"))?;
        p.ws();
        if !p.eat(b':') {
            return Err(bad("no ':' after a key"));
        }
        p.ws();
        match key.as_str() {
            "descr" => {
                d.descr = Some(p.string().ok_or_else(|| {
                    bad("'descr' is not a string (structured dtypes are not matrices)")
                })?)
            }
            "fortran_order" => {
                d.fortran = Some(
                    p.boolean()
                        .ok_or_else(|| bad("'fortran_order' is not True or False"))?,
                )
            }
            "shape" => {
                d.shape = Some(
                    p.tuple()
                        .ok_or_else(|| bad("'shape' is not a tuple of integers"))?,
                )
            }
            other => return Err(bad(&format!("unexpected key {:?}", one_line(other)))),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            if p.eat(b'}') {
                break;
            }
            return Err(bad("no ',' or '}' after a value"));
        }
    }
    Ok(d)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&c);
        self.i += hit as usize;
        hit
    }
    fn string(&mut self) -> Option<String> {
        let q = *self.s.get(self.i)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let start = self.i + 1;
        let len = self.s.get(start..)?.iter().position(|&c| c == q)?;
        self.i = start + len + 1;
        String::from_utf8(self.s[start..start + len].to_vec()).ok()
    }
    fn boolean(&mut self) -> Option<bool> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s.get(self.i..)?.starts_with(word) {
                self.i += word.len();
                return Some(v);
            }
        }
        None
    }
    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Some(dims);
            }
            let start = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            // No more than 32 dimensions (numpy's own limit is 64).
            if self.i == start || dims.len() >= 32 {
                return None;
            }
            dims.push(
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()?,
            );
            self.ws();
            if !self.eat(b',') {
                self.ws();
                return self.eat(b')').then_some(dims);
            }
        }
    }
}

/// The array's bytes as row-major little-endian: in place when they are
/// stored so, else a copy (byte-swapped, transposed), sized by `npy.data`,
/// which was checked against the file; the reason otherwise.
pub fn data(map: &Arc<Map>, base: usize, npy: &Npy) -> std::result::Result<Bytes, String> {
    let outside = || "the data range lies outside the file".to_string();
    let range = base + npy.data.start..base + npy.data.end;
    if npy.order == Order::Little && !is_fortran_2d(npy) {
        return Bytes::mapped(map.clone(), range).ok_or_else(outside);
    }
    Ok(Bytes::owned(to_row_major(
        map.get(range).ok_or_else(outside)?,
        npy,
    )?))
}

/// A Fortran-order matrix, stored column by column (Fortran order changes
/// nothing for one dimension).
fn is_fortran_2d(npy: &Npy) -> bool {
    npy.fortran && npy.shape.len() == 2
}

/// A copy of `raw` (the array's stored bytes) as row-major little-endian,
/// or the reason it cannot be had (the memory for it).
pub fn to_row_major(raw: &[u8], npy: &Npy) -> std::result::Result<Vec<u8>, String> {
    let item = npy.item;
    let what = "the array's row-major copy";
    let mut out = if is_fortran_2d(npy) {
        let (rows, cols) = (npy.shape[0], npy.shape[1]);
        let mut out = crate::load::alloc::room(raw.len(), what)?;
        // Row r gathers element (r, c), stored at c * rows + r.
        for r in 0..rows {
            for c in 0..cols {
                let src = (c * rows + r) * item;
                out.extend_from_slice(raw.get(src..src + item).ok_or("the data is short")?);
            }
        }
        out
    } else {
        crate::load::alloc::copy(raw, what)?
    };
    if npy.order == Order::Big {
        swap_bytes(&mut out, item);
    }
    Ok(out)
}

/// Reverses the bytes of each `item`-byte element of `buf`, in place.
fn swap_bytes(buf: &mut [u8], item: usize) {
    for e in buf.chunks_exact_mut(item) {
        e.reverse();
    }
}

/// An open, memory-mapped `.npy` file.
pub struct NpyFile {
    path: PathBuf,
    map: Arc<Map>,
    npy: Npy,
    tensors: Vec<TensorDesc>,
}

impl NpyFile {
    /// Opens and maps `path`, and checks its header against its length.
    pub fn open(path: &Path) -> Result<Self> {
        let map = map_file(path, FORMAT)?;
        let npy = parse(&map).map_err(|reason| Error::Format {
            path: path.to_path_buf(),
            format: FORMAT,
            reason,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "array".into());
        let tensors = vec![TensorDesc {
            name,
            dtype: npy.dtype.clone(),
            shape: npy.shape.clone(),
        }];
        Ok(Self {
            path: path.to_path_buf(),
            map,
            npy,
            tensors,
        })
    }
}

impl TensorSource for NpyFile {
    fn format(&self) -> &'static str {
        FORMAT
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }
    fn data(&self, _index: usize) -> Result<Bytes> {
        data(&self.map, 0, &self.npy).map_err(|reason| Error::Format {
            path: self.path.clone(),
            format: FORMAT,
            reason,
        })
    }
}

/// The format's name in messages, for `.npz` archives.
pub const NPZ_FORMAT: &str = "NumPy .npz";

/// Largest member inflated from a compressed `.npz` (beyond the check that
/// deflate could produce it from the member's bytes).
const MAX_INFLATED: usize = 1 << 36;

/// Where one `.npz` member's array lies.
enum Member {
    /// Stored: the array's header and range in the memory map.
    Mapped { npy: Npy, base: usize },
    /// Compressed: described from its first bytes when the archive was
    /// opened, inflated only when its tensor is read.
    Deflated {
        npy: Npy,
        entry: crate::load::container::zip::Entry,
    },
}

/// An `.npz` archive (np.savez, np.savez_compressed): one tensor per `.npy`
/// member, named without the `.npy`. Stored members are read in place.
pub struct NpzFile {
    path: PathBuf,
    map: Arc<Map>,
    members: Vec<Member>,
    tensors: Vec<TensorDesc>,
}

impl NpzFile {
    /// Reads every member's header from an archive whose directory was read.
    pub fn from_zip(
        path: &Path,
        map: Arc<Map>,
        entries: &[crate::load::container::zip::Entry],
    ) -> Result<Self> {
        let err = |reason: String| Error::Format {
            path: path.to_path_buf(),
            format: NPZ_FORMAT,
            reason,
        };
        let mut members = Vec::with_capacity(entries.len());
        let mut tensors = Vec::with_capacity(entries.len());
        for e in entries {
            let name = e.name.strip_suffix(".npy").unwrap_or(&e.name).to_string();
            let in_member = |r: String| err(format!("member {:?}: {r}", one_line(&e.name)));
            let member = if e.method == crate::load::container::zip::STORED {
                let range = crate::load::container::zip::stored_range(&map, e).map_err(&err)?;
                let npy = parse(&map[range.clone()]).map_err(in_member)?;
                Member::Mapped {
                    npy,
                    base: range.start,
                }
            } else {
                let total = usize::try_from(e.uncompressed_size).unwrap_or(usize::MAX);
                // The header only: its length is in the first 12 bytes.
                let inflate = |n| crate::load::container::zip::inflate_prefix(&map, e, n);
                let mut head = inflate(12).map_err(&err)?;
                if let Some(end) = header_end(&head).filter(|&end| end > head.len()) {
                    head = inflate(end.min(MAX_HEADER + 12)).map_err(&err)?;
                }
                let npy = parse_prefix(&head, total).map_err(in_member)?;
                Member::Deflated {
                    npy,
                    entry: e.clone(),
                }
            };
            let npy = match &member {
                Member::Mapped { npy, .. } | Member::Deflated { npy, .. } => npy,
            };
            tensors.push(TensorDesc {
                name,
                dtype: npy.dtype.clone(),
                shape: npy.shape.clone(),
            });
            members.push(member);
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            members,
            tensors,
        })
    }
}

impl TensorSource for NpzFile {
    fn format(&self) -> &'static str {
        NPZ_FORMAT
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }
    fn data(&self, index: usize) -> Result<Bytes> {
        let bytes = match self.members.get(index) {
            Some(Member::Mapped { npy, base }) => data(&self.map, *base, npy),
            Some(Member::Deflated { npy, entry }) => {
                // The array's bytes only, inflated into their own buffer
                // (the header is inflated and checked, not kept); sized by
                // the declared size, which the inflater checks against the
                // cap and against what deflate can make of the member.
                crate::load::container::zip::inflate_from(
                    &self.map,
                    entry,
                    npy.data.start,
                    MAX_INFLATED,
                )
                .and_then(|mut raw| {
                    if raw.len() != npy.data.len() {
                        return Err("the array's size differs from its header's".to_string());
                    }
                    if is_fortran_2d(npy) {
                        // Transposed into a second buffer.
                        return to_row_major(&raw, npy).map(Bytes::owned);
                    }
                    if npy.order == Order::Big {
                        swap_bytes(&mut raw, npy.item);
                    }
                    Ok(Bytes::owned(raw))
                })
            }
            None => Err(format!("array number {index} lies outside the archive")),
        };
        bytes.map_err(|reason| Error::Format {
            path: self.path.clone(),
            format: NPZ_FORMAT,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        f.extend_from_slice(&(h.len() as u16).to_le_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn reads_numpy_headers() {
        let f = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &[0; 24],
        );
        let n = parse(&f).unwrap();
        assert_eq!(n.shape, vec![2, 3]);
        assert_eq!(n.dtype, StoredDtype::F32);
        assert_eq!(n.data, f.len() - 24..f.len());
        let f = npy(
            "{'descr': '>f2', 'fortran_order': True, 'shape': (4,), }",
            &[0; 8],
        );
        let n = parse(&f).unwrap();
        assert_eq!(
            (n.order, n.fortran, n.shape.clone()),
            (Order::Big, true, vec![4])
        );
        let f = npy(
            "{'descr': '<V2', 'fortran_order': False, 'shape': (1, 1)}",
            &[0; 2],
        );
        assert_eq!(parse(&f).unwrap().dtype, StoredDtype::Other("V2".into()));
    }

    #[test]
    fn refuses_bad_headers() {
        for (h, data, want) in [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                23,
                "needs 24 bytes",
            ),
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                16,
                "not a float",
            ),
            (
                "{'descr': [('a', '<f4')], 'shape': (2,), }",
                8,
                "structured",
            ),
            (
                "{'descr': '<f4', 'shape': (99999999999, 99999999999, 99999999999), }",
                0,
                "too large",
            ),
            ("__import__('os').system('true')", 0, "no opening brace"),
            (
                "{'descr': '<f4', 'evil': 1, 'shape': (1,)}",
                4,
                "unexpected key",
            ),
        ] {
            let e = parse(&npy(h, &vec![0; data])).unwrap_err();
            assert!(e.contains(want), "{h}: {e}");
        }
        assert!(parse(b"\x93NUMPY\x01\x00\xff\xff{")
            .unwrap_err()
            .contains("header length"));
        assert!(parse(b"\x93NUMPY\x09\x00").unwrap_err().contains("version"));
    }

    #[test]
    fn the_header_ends_where_the_data_starts() {
        let f = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &[0; 24],
        );
        assert_eq!(header_end(&f[..12]), Some(parse(&f).unwrap().data.start));
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend(1000u32.to_le_bytes());
        assert_eq!(header_end(&v2), Some(1012));
        assert_eq!(header_end(b"\x93NUMPY\x09\x00abcd"), None);
        assert_eq!(header_end(b"\x93NUMPY\x01"), None);
    }

    #[test]
    fn fortran_and_big_endian_become_row_major_little_endian() {
        // The 2×3 matrix [[1, 2, 3], [4, 5, 6]] as big-endian u16, column-major.
        let stored: Vec<u8> = [1u16, 4, 2, 5, 3, 6]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let f = npy(
            "{'descr': '>u2', 'fortran_order': True, 'shape': (2, 3), }",
            &stored,
        );
        let n = parse(&f).unwrap();
        let out = to_row_major(&f[n.data.clone()], &n).unwrap();
        let want: Vec<u8> = [1u16, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(out, want);
    }
}
