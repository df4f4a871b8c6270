//! The metadata section of a GGUF file: its values, and the bounded
//! reader that takes them (and the tensor infos) from the file without
//! reading past its end or allocating from a declared count.

use super::{MAX_ARRAY_DEPTH, MAX_HEADER_MEMORY};

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// Decoded as UTF-8, invalid sequences replaced.
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(MetaArray),
}

/// A metadata array: elements of one type, stored unboxed so that memory
/// stays proportional to the bytes in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Array(Vec<MetaArray>),
}

impl MetaValue {
    /// The value as an unsigned integer, whatever its integer type.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl MetaArray {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
            MetaArray::Array(v) => v.len(),
        }
    }

    /// True when the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as i32 when they are integers that all fit.
    pub(super) fn to_i32(&self) -> Option<Vec<i32>> {
        fn conv<T: Copy>(v: &[T]) -> Option<Vec<i32>>
        where
            i32: TryFrom<T>,
        {
            v.iter().map(|&x| i32::try_from(x).ok()).collect()
        }
        match self {
            MetaArray::I32(v) => Some(v.clone()),
            MetaArray::U8(v) => conv(v),
            MetaArray::I8(v) => conv(v),
            MetaArray::U16(v) => conv(v),
            MetaArray::I16(v) => conv(v),
            MetaArray::U32(v) => conv(v),
            MetaArray::U64(v) => conv(v),
            MetaArray::I64(v) => conv(v),
            _ => None,
        }
    }
}

/// A cursor over the file that never reads past its end, and the memory
/// the parsed header may still take.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    /// Bytes of [`MAX_HEADER_MEMORY`] not yet charged.
    pub(super) memory: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Charges `bytes` of memory that `what` is about to take, before it
    /// is allocated; an error once the header would pass its budget.
    pub(super) fn charge(
        &mut self,
        bytes: usize,
        what: &dyn Fn() -> String,
    ) -> std::result::Result<(), String> {
        self.memory = self.memory.checked_sub(bytes).ok_or_else(|| {
            format!(
                "{} would take the header's metadata and tensor infos past {MAX_HEADER_MEMORY} bytes of memory; no real model's header is that large (corrupt count?)",
                what()
            )
        })?;
        Ok(())
    }

    pub(super) fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {what} at byte {} needs {n} bytes, the file has {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(super) fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count or length, which must fit in memory at all.
    pub(super) fn len(&mut self, what: &str) -> std::result::Result<usize, String> {
        let n = self.u64(what)?;
        usize::try_from(n).map_err(|_| format!("{what} {n} does not fit in memory"))
    }

    /// A GGUF string: a u64 length, then that many bytes.
    fn bytes_of_string(&mut self, what: &str) -> std::result::Result<&'a [u8], String> {
        let n = self.len(&format!("the length of {what}"))?;
        if n > self.remaining() {
            return Err(format!(
                "{what} at byte {} claims {n} bytes, the file has {} left (truncated or corrupt)",
                self.pos,
                self.remaining()
            ));
        }
        self.take(n, what)
    }

    /// A string that must be UTF-8 (keys and tensor names), borrowed from
    /// the file; whoever keeps a copy charges it.
    pub(super) fn name(&mut self, what: &str) -> std::result::Result<&'a str, String> {
        let at = self.pos;
        let b = self.bytes_of_string(what)?;
        std::str::from_utf8(b).map_err(|_| format!("{what} at byte {at} is not UTF-8"))
    }

    /// A string value (invalid UTF-8 replaced, as tokenizers' byte pieces
    /// may hold some), its bytes charged (invalid UTF-8 may triple them).
    fn text(&mut self, what: &str) -> std::result::Result<String, String> {
        let b = self.bytes_of_string(what)?;
        let s = String::from_utf8_lossy(b);
        self.charge(s.len(), &|| what.to_string())?;
        Ok(s.into_owned())
    }
}

/// Metadata value types (`gguf_type` in ggml).
pub(super) const T_U8: u32 = 0;
pub(super) const T_I8: u32 = 1;
pub(super) const T_U16: u32 = 2;
pub(super) const T_I16: u32 = 3;
pub(super) const T_U32: u32 = 4;
pub(super) const T_I32: u32 = 5;
pub(super) const T_F32: u32 = 6;
pub(super) const T_BOOL: u32 = 7;
pub(super) const T_STRING: u32 = 8;
pub(super) const T_ARRAY: u32 = 9;
pub(super) const T_U64: u32 = 10;
pub(super) const T_I64: u32 = 11;
pub(super) const T_F64: u32 = 12;

/// The fewest bytes one element of value type `t` takes (0 when unknown).
fn min_size(t: u32) -> usize {
    match t {
        T_U8 | T_I8 | T_BOOL => 1,
        T_U16 | T_I16 => 2,
        T_U32 | T_I32 | T_F32 => 4,
        T_U64 | T_I64 | T_F64 | T_STRING => 8,
        T_ARRAY => 12,
        _ => 0,
    }
}

pub(super) fn scalar(r: &mut Reader, t: u32, key: &str) -> std::result::Result<MetaValue, String> {
    let what = format!("the value of {key:?}");
    Ok(match t {
        T_U8 => MetaValue::U8(r.array::<1>(&what)?[0]),
        T_I8 => MetaValue::I8(i8::from_le_bytes(r.array(&what)?)),
        T_U16 => MetaValue::U16(u16::from_le_bytes(r.array(&what)?)),
        T_I16 => MetaValue::I16(i16::from_le_bytes(r.array(&what)?)),
        T_U32 => MetaValue::U32(u32::from_le_bytes(r.array(&what)?)),
        T_I32 => MetaValue::I32(i32::from_le_bytes(r.array(&what)?)),
        T_F32 => MetaValue::F32(f32::from_le_bytes(r.array(&what)?)),
        T_BOOL => MetaValue::Bool(r.array::<1>(&what)?[0] != 0),
        T_STRING => MetaValue::String(r.text(&what)?),
        T_U64 => MetaValue::U64(u64::from_le_bytes(r.array(&what)?)),
        T_I64 => MetaValue::I64(i64::from_le_bytes(r.array(&what)?)),
        T_F64 => MetaValue::F64(f64::from_le_bytes(r.array(&what)?)),
        T_ARRAY => MetaValue::Array(array(r, key, 1)?),
        other => return Err(format!("metadata {key:?} has unknown value type {other}")),
    })
}

/// Decodes `len` fixed-size little-endian elements after checking they are
/// in the file (the array's memory was charged by the caller).
fn fixed<T, const N: usize>(
    r: &mut Reader,
    len: usize,
    key: &str,
    decode: fn([u8; N]) -> T,
) -> std::result::Result<Vec<T>, String> {
    let n = len
        .checked_mul(N)
        .ok_or_else(|| format!("array {key:?} of {len} elements is too large to exist"))?;
    let b = r.take(n, &format!("array {key:?} of {len} elements"))?;
    // Exactly `len` elements, read: the collected vector is their size.
    Ok(b.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            decode(a)
        })
        .collect())
}

/// An array value (after its key and the array type tag); `depth` counts
/// the arrays it is inside of, itself included.
fn array(r: &mut Reader, key: &str, depth: usize) -> std::result::Result<MetaArray, String> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(format!(
            "array {key:?} nests arrays more than {MAX_ARRAY_DEPTH} deep"
        ));
    }
    let t = r.u32(&format!("the element type of array {key:?}"))?;
    let len = r.len(&format!("the length of array {key:?}"))?;
    let min = min_size(t);
    if min == 0 {
        return Err(format!("array {key:?} has unknown element type {t}"));
    }
    // Before anything is allocated: could the rest of the file hold them at
    // all, and the budget their elements as they are kept in memory?
    if len > r.remaining() / min {
        return Err(format!(
            "array {key:?} claims {len} elements, more than the {} bytes left could hold",
            r.remaining()
        ));
    }
    let each = match t {
        T_U8 | T_I8 | T_BOOL => 1,
        T_U16 | T_I16 => 2,
        T_U32 | T_I32 | T_F32 => 4,
        T_U64 | T_I64 | T_F64 => 8,
        T_STRING => size_of::<String>(),
        _ => size_of::<MetaArray>(),
    };
    r.charge(len.saturating_mul(each), &|| {
        format!("array {key:?} of {len} elements")
    })?;
    Ok(match t {
        T_U8 => MetaArray::U8(fixed(r, len, key, |[b]: [u8; 1]| b)?),
        T_I8 => MetaArray::I8(fixed(r, len, key, i8::from_le_bytes)?),
        T_U16 => MetaArray::U16(fixed(r, len, key, u16::from_le_bytes)?),
        T_I16 => MetaArray::I16(fixed(r, len, key, i16::from_le_bytes)?),
        T_U32 => MetaArray::U32(fixed(r, len, key, u32::from_le_bytes)?),
        T_I32 => MetaArray::I32(fixed(r, len, key, i32::from_le_bytes)?),
        T_F32 => MetaArray::F32(fixed(r, len, key, f32::from_le_bytes)?),
        T_BOOL => MetaArray::Bool(fixed(r, len, key, |[b]: [u8; 1]| b != 0)?),
        T_U64 => MetaArray::U64(fixed(r, len, key, u64::from_le_bytes)?),
        T_I64 => MetaArray::I64(fixed(r, len, key, i64::from_le_bytes)?),
        T_F64 => MetaArray::F64(fixed(r, len, key, f64::from_le_bytes)?),
        T_STRING => {
            // Grown as the strings are read: a count that the file's bytes
            // do not back fails at the first missing string.
            let mut v = Vec::new();
            for i in 0..len {
                v.push(r.text(&format!("element {i} of array {key:?}"))?);
            }
            MetaArray::String(v)
        }
        _ => {
            // T_ARRAY (min_size rejected every other type).
            let mut v = Vec::new();
            for _ in 0..len {
                v.push(array(r, key, depth + 1)?);
            }
            MetaArray::Array(v)
        }
    })
}
