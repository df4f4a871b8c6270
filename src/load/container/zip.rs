//! A zip central-directory reader over the bytes of a whole file (a memory
//! map), for the containers tensors come in: PyTorch checkpoints (every
//! member STORED, so a tensor is read in place) and `.npz` archives (STORED
//! or DEFLATED).
//!
//! Nothing here trusts a header field: every offset and size is checked,
//! with checked arithmetic, against the file's length before it is used, and
//! nothing is sized by a declared count: the member list grows as records
//! are read (the count is first checked against how many 46-byte records the
//! directory's bytes can hold, and against [`MAX_LIST_MEMORY`]); a member is
//! inflated into one buffer of exactly its declared size, asked for
//! fallibly after that size was checked against deflate's largest ratio,
//! and filled as the stream really produces bytes, so that a size the
//! stream does not back costs no memory. ZIP64 (which torch writes for large
//! files) is read through its locator and end record and through each
//! entry's ZIP64 extra field.

use std::ops::Range;

use miniz_oxide::inflate::stream::{inflate as inflate_step, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use crate::load::alloc;

/// One member of the archive, as its central-directory record describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The member's name (lossily decoded as UTF-8).
    pub name: String,
    /// Compression method: 0 STORED, 8 DEFLATED.
    pub method: u16,
    /// General-purpose flags (bit 0: encrypted).
    pub flags: u16,
    /// The CRC-32 of the uncompressed data.
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Where the member's local header starts in the file.
    pub local_header_offset: u64,
}

/// STORED: the data is the member's bytes.
pub const STORED: u16 = 0;
/// DEFLATED: raw deflate.
pub const DEFLATED: u16 = 8;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;

/// The most memory the member list may take (each entry and its name):
/// millions of members, where a checkpoint or an archive of arrays has a
/// few thousand.
pub const MAX_LIST_MEMORY: usize = 1 << 30;

/// How much of an inflated member's buffer is made ready (zeroed) ahead of
/// the inflater at a time: the memory a member whose stream ends short of
/// its declared size costs beyond the bytes it really inflates to.
const INFLATE_STEP: usize = 8 << 20;

type Res<T> = std::result::Result<T, String>;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// Where the central directory is, and how many entries it declares.
struct Directory {
    offset: u64,
    size: u64,
    count: u64,
    /// Where the directory must end at the latest (the first end record).
    limit: usize,
}

/// Finds the end-of-central-directory record: the last signature whose
/// comment runs exactly to the end of the file.
fn find_eocd(file: &[u8]) -> Res<usize> {
    if file.len() < EOCD_LEN {
        return Err(format!(
            "the file is {} bytes long, too short for a zip archive",
            file.len()
        ));
    }
    let last = file.len() - EOCD_LEN;
    let first = last.saturating_sub(u16::MAX as usize);
    (first..=last)
        .rev()
        .find(|&pos| {
            u32_at(file, pos) == Some(EOCD_SIG)
                && u16_at(file, pos + 20).map(|c| pos + EOCD_LEN + c as usize) == Some(file.len())
        })
        .ok_or_else(|| {
            "no zip end-of-central-directory record at the end of the file (truncated?)".into()
        })
}

fn directory(file: &[u8]) -> Res<Directory> {
    let eocd = find_eocd(file)?;
    let field = |at: usize| u16_at(file, eocd + at).unwrap_or(0);
    let disk = field(4);
    let cd_disk = field(6);
    let mut count = field(10) as u64;
    let mut size = u32_at(file, eocd + 12).unwrap_or(0) as u64;
    let mut offset = u32_at(file, eocd + 16).unwrap_or(0) as u64;
    let mut limit = eocd;
    if disk != 0 || cd_disk != 0 {
        return Err("a multi-disk (split) zip archive is not supported".into());
    }
    // A ZIP64 locator sits right before the end record when the archive has one.
    let locator = eocd
        .checked_sub(ZIP64_LOCATOR_LEN)
        .filter(|&at| u32_at(file, at) == Some(ZIP64_LOCATOR_SIG));
    if let Some(loc) = locator {
        let at = u64_at(file, loc + 8).unwrap_or(u64::MAX);
        let at = usize::try_from(at)
            .ok()
            .filter(|&at| at.checked_add(ZIP64_EOCD_LEN).is_some_and(|end| end <= loc))
            .ok_or_else(|| {
                format!(
                    "the ZIP64 locator points at offset {at}, outside the file's directory area"
                )
            })?;
        if u32_at(file, at) != Some(ZIP64_EOCD_SIG) {
            return Err(format!(
                "no ZIP64 end-of-central-directory record at offset {at}, where the locator points"
            ));
        }
        count = u64_at(file, at + 32).unwrap_or(u64::MAX);
        size = u64_at(file, at + 40).unwrap_or(u64::MAX);
        offset = u64_at(file, at + 48).unwrap_or(u64::MAX);
        limit = at;
    } else if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        return Err(
            "the end record defers to a ZIP64 record, but there is no ZIP64 locator".into(),
        );
    }
    Ok(Directory {
        offset,
        size,
        count,
        limit,
    })
}

/// Every member of the zip archive held in `file`, in directory order; the
/// reason it is not a readable zip archive otherwise.
pub fn entries(file: &[u8]) -> Res<Vec<Entry>> {
    let dir = directory(file)?;
    let start = usize::try_from(dir.offset).ok();
    let end = start.and_then(|s| s.checked_add(usize::try_from(dir.size).ok()?));
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) if e <= dir.limit => (s, e),
        _ => {
            return Err(format!(
            "the central directory ({} bytes at offset {}) does not lie inside the file ({} bytes)",
            dir.size,
            dir.offset,
            file.len()
        ))
        }
    };
    let cd = &file[start..end];
    let most = (cd.len() / CENTRAL_LEN) as u64;
    if dir.count > most {
        return Err(format!(
            "the archive declares {} entries but its {}-byte central directory can hold at most {most}",
            dir.count,
            cd.len()
        ));
    }
    // What one entry takes in memory besides its name: the entry, and its
    // index in the duplicate check.
    let each = size_of::<Entry>() + size_of::<usize>();
    if dir.count.saturating_mul(each as u64) > MAX_LIST_MEMORY as u64 {
        return Err(format!(
            "the archive declares {} entries, more than the {} that {MAX_LIST_MEMORY} bytes of memory hold; no checkpoint has that many (corrupt count?)",
            dir.count,
            MAX_LIST_MEMORY / each
        ));
    }
    // Grown as records are read, not sized by the declared count.
    let mut out: Vec<Entry> = Vec::new();
    let mut memory = 0usize;
    let mut at = 0usize;
    for i in 0..dir.count {
        let bad = |what: &str| format!("central directory entry {i}: {what}");
        if u32_at(cd, at) != Some(CENTRAL_SIG) {
            return Err(bad("bad signature (the directory is corrupt)"));
        }
        let fixed = cd
            .get(at..at + CENTRAL_LEN)
            .ok_or_else(|| bad("runs past the directory's end"))?;
        let h16 = |o: usize| u16::from_le_bytes([fixed[o], fixed[o + 1]]);
        let h32 =
            |o: usize| u32::from_le_bytes([fixed[o], fixed[o + 1], fixed[o + 2], fixed[o + 3]]);
        let flags = h16(8);
        let method = h16(10);
        let crc32 = h32(16);
        let mut compressed_size = h32(20) as u64;
        let mut uncompressed_size = h32(24) as u64;
        let name_len = h16(28) as usize;
        let extra_len = h16(30) as usize;
        let comment_len = h16(32) as usize;
        let mut local_header_offset = h32(42) as u64;
        let name_at = at + CENTRAL_LEN;
        let extra_at = name_at + name_len;
        let next = extra_at + extra_len + comment_len;
        if next > cd.len() {
            return Err(bad(
                "its name, extra field or comment runs past the directory's end",
            ));
        }
        let name = String::from_utf8_lossy(&cd[name_at..extra_at]).into_owned();
        let extra = &cd[extra_at..extra_at + extra_len];
        // ZIP64: the 0xFFFFFFFF fields are given, in this order, in extra field 0x0001.
        let wants = [
            uncompressed_size == 0xFFFF_FFFF,
            compressed_size == 0xFFFF_FFFF,
            local_header_offset == 0xFFFF_FFFF,
        ];
        if wants.iter().any(|&w| w) {
            let z = zip64_extra(extra).ok_or_else(|| {
                bad(&format!(
                    "{:?} needs a ZIP64 extra field and has none (or a malformed one)",
                    name
                ))
            })?;
            let mut k = 0;
            let mut take = |w: bool, v: &mut u64| -> Res<()> {
                if w {
                    *v = u64_at(z, k).ok_or_else(|| bad("the ZIP64 extra field is too short"))?;
                    k += 8;
                }
                Ok(())
            };
            take(wants[0], &mut uncompressed_size)?;
            take(wants[1], &mut compressed_size)?;
            take(wants[2], &mut local_header_offset)?;
        }
        memory += each + name.len();
        if memory > MAX_LIST_MEMORY {
            return Err(format!(
                "the names of the archive's first {} entries take more than {MAX_LIST_MEMORY} bytes of memory",
                i + 1
            ));
        }
        out.push(Entry {
            name,
            method,
            flags,
            crc32,
            compressed_size,
            uncompressed_size,
            local_header_offset,
        });
        at = next;
    }
    // Duplicates, found by sorting positions rather than copying names.
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_unstable_by(|&a, &b| out[a].name.cmp(&out[b].name));
    if let Some(w) = order.windows(2).find(|w| out[w[0]].name == out[w[1]].name) {
        return Err(format!("the archive holds {:?} twice", out[w[0]].name));
    }
    Ok(out)
}

/// The data of extra field 0x0001 (ZIP64) in an extra-field block.
fn zip64_extra(extra: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at)?;
        let len = u16_at(extra, at + 2)? as usize;
        let data = extra.get(at + 4..at + 4 + len)?;
        if id == 1 {
            return Some(data);
        }
        at += 4 + len;
    }
    None
}

/// The byte range in `file` of member `e`'s stored (compressed) bytes, after
/// checking its local header and that the range lies inside the file.
pub fn data_range(file: &[u8], e: &Entry) -> Res<Range<usize>> {
    let bad = |what: String| format!("member {:?}: {what}", e.name);
    if e.flags & 1 != 0 {
        return Err(bad("it is encrypted".into()));
    }
    let local = usize::try_from(e.local_header_offset)
        .ok()
        .filter(|&l| {
            l.checked_add(LOCAL_LEN)
                .is_some_and(|end| end <= file.len())
        })
        .ok_or_else(|| {
            bad(format!(
                "its local header offset {} lies outside the file ({} bytes)",
                e.local_header_offset,
                file.len()
            ))
        })?;
    if u32_at(file, local) != Some(LOCAL_SIG) {
        return Err(bad(format!(
            "no local file header at offset {local} (the archive is corrupt)"
        )));
    }
    let name_len = u16_at(file, local + 26).unwrap_or(0) as usize;
    let extra_len = u16_at(file, local + 28).unwrap_or(0) as usize;
    let method = u16_at(file, local + 8).unwrap_or(0);
    if method != e.method {
        return Err(bad(format!(
            "its local header says compression method {method}, its directory entry {}",
            e.method
        )));
    }
    let name_at = local + LOCAL_LEN;
    let data_at = name_at + name_len + extra_len;
    let local_name = file.get(name_at..name_at + name_len);
    if local_name != Some(e.name.as_bytes()) {
        return Err(bad(
            "its local header names a different member (the archive is corrupt)".into(),
        ));
    }
    let end = usize::try_from(e.compressed_size)
        .ok()
        .and_then(|n| data_at.checked_add(n))
        .filter(|&end| end <= file.len())
        .ok_or_else(|| {
            bad(format!(
                "its {} bytes of data at offset {data_at} run past the end of the file ({} bytes): truncated?",
                e.compressed_size,
                file.len()
            ))
        })?;
    Ok(data_at..end)
}

/// The byte range in `file` of a STORED member's data, read in place.
pub fn stored_range(file: &[u8], e: &Entry) -> Res<Range<usize>> {
    if e.method != STORED {
        return Err(format!(
            "member {:?} is compressed (method {}); only stored (uncompressed) members are read in place",
            e.name, e.method
        ));
    }
    if e.compressed_size != e.uncompressed_size {
        return Err(format!(
            "member {:?} is stored but declares {} bytes compressed and {} uncompressed",
            e.name, e.compressed_size, e.uncompressed_size
        ));
    }
    data_range(file, e)
}

/// The uncompressed bytes of member `e` (STORED or DEFLATED), at most
/// `max_len` of them (see [`inflate_from`]).
pub fn inflate(file: &[u8], e: &Entry, max_len: usize) -> Res<Vec<u8>> {
    inflate_from(file, e, 0, max_len)
}

/// The uncompressed bytes of member `e` (STORED or DEFLATED) from byte
/// `skip` on, when it declares at most `max_len` in all: the first `skip`
/// (a header the caller already read) are inflated and checked but not
/// kept, the rest inflated straight into the buffer returned, which holds
/// exactly them (no second copy). The declared size is checked against
/// `max_len` and against the most deflate can expand the member's bytes,
/// the buffer is asked for fallibly, and it is filled as the stream
/// produces bytes: a stream that ends early is an error that cost no more
/// memory than what it inflated to. The CRC-32 is checked.
pub fn inflate_from(file: &[u8], e: &Entry, skip: usize, max_len: usize) -> Res<Vec<u8>> {
    let bad = |what: String| format!("member {:?}: {what}", e.name);
    let declared = usize::try_from(e.uncompressed_size)
        .ok()
        .filter(|&n| n <= max_len)
        .ok_or_else(|| {
            bad(format!(
                "it declares {} bytes uncompressed, more than the {max_len} allowed",
                e.uncompressed_size
            ))
        })?;
    let want = declared.checked_sub(skip).ok_or_else(|| {
        bad(format!(
            "it declares {declared} bytes uncompressed, fewer than the {skip} of its header"
        ))
    })?;
    let buffer = format!("member {:?}, inflated,", e.name);
    match e.method {
        STORED => {
            let data = &file[stored_range(file, e)?];
            if crc32(data) != e.crc32 {
                return Err(bad("its CRC-32 does not match its data (corrupt)".into()));
            }
            let kept = data
                .get(skip..)
                .ok_or_else(|| bad(format!("it is shorter than the {skip} bytes of its header")))?;
            alloc::copy(kept, &buffer)
        }
        DEFLATED => {
            let range = data_range(file, e)?;
            // Deflate expands by at most 1032:1; a larger claim is a lie.
            if (declared as u128) > (range.len() as u128) * 1032 + 1032 {
                return Err(bad(format!(
                    "it declares {declared} bytes uncompressed from only {} compressed",
                    range.len()
                )));
            }
            // Short of the declared size: a stream that ended there, or
            // one that cannot go on (its input spent or broken).
            let short = |got: usize, ended: bool| {
                bad(if ended {
                    format!("it inflates to {got} bytes, not the {declared} declared")
                } else {
                    format!(
                        "its deflate stream is corrupt or truncated: it stops after {got} of the {declared} bytes declared"
                    )
                })
            };
            let mut z = Inflater::new(&file[range]);
            let mut head = alloc::zeroed(skip, &buffer)?;
            let got = z.fill(&mut head).map_err(&bad)?;
            if got < skip {
                return Err(short(got, z.ended));
            }
            let mut crc = crc32_update(!0, &head);
            drop(head);
            let mut out: Vec<u8> = alloc::room(want, &buffer)?;
            while out.len() < want {
                let at = out.len();
                out.resize(want.min(at + INFLATE_STEP), 0);
                let got = z.fill(&mut out[at..]).map_err(&bad)?;
                crc = crc32_update(crc, &out[at..at + got]);
                let full = at + got == out.len();
                out.truncate(at + got);
                if !full {
                    return Err(short(skip + out.len(), z.ended));
                }
            }
            if z.fill(&mut [0u8; 1]).map_err(&bad)? > 0 {
                return Err(bad(format!(
                    "it inflates to more than the {declared} bytes declared"
                )));
            }
            if !z.ended {
                return Err(bad(
                    "its deflate stream stops before its end (truncated or corrupt)".into(),
                ));
            }
            if !crc != e.crc32 {
                return Err(bad("its CRC-32 does not match its data (corrupt)".into()));
            }
            Ok(out)
        }
        other => Err(bad(format!("unsupported compression method {other}"))),
    }
}

/// A raw deflate stream, inflated piece by piece into buffers the caller gives.
struct Inflater<'a> {
    state: Box<InflateState>,
    input: &'a [u8],
    /// The stream's last block was read.
    ended: bool,
}

impl<'a> Inflater<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self {
            state: InflateState::new_boxed(DataFormat::Raw),
            input,
            ended: false,
        }
    }

    /// Fills `out` from the stream; the bytes written, fewer than `out`
    /// holds only when the stream ended or cannot go on (its input is spent).
    fn fill(&mut self, out: &mut [u8]) -> Res<usize> {
        let mut written = 0;
        while written < out.len() && !self.ended {
            let r = inflate_step(
                &mut self.state,
                self.input,
                &mut out[written..],
                MZFlush::None,
            );
            self.input = &self.input[r.bytes_consumed.min(self.input.len())..];
            written += r.bytes_written;
            match r.status {
                Ok(MZStatus::StreamEnd) => self.ended = true,
                Ok(_) if r.bytes_consumed == 0 && r.bytes_written == 0 => break,
                Ok(_) => {}
                Err(MZError::Buf) => break,
                Err(err) => return Err(format!("its deflate stream is corrupt ({err:?})")),
            }
        }
        Ok(written)
    }
}

/// The first bytes of member `e`, at most `n` of them (STORED or
/// DEFLATED), inflating no more than that: how a member is looked into
/// without inflating all of it. The CRC cannot be checked on a prefix.
pub fn inflate_prefix(file: &[u8], e: &Entry, n: usize) -> Res<Vec<u8>> {
    let bad = |what: String| format!("member {:?}: {what}", e.name);
    match e.method {
        STORED => {
            let r = stored_range(file, e)?;
            Ok(file[r.start..r.end.min(r.start.saturating_add(n))].to_vec())
        }
        DEFLATED => {
            // No more than the member declares (a bound, not a size: the
            // buffer is cut to what the stream really gives).
            let n = usize::try_from(e.uncompressed_size).map_or(n, |d| d.min(n));
            let mut z = Inflater::new(&file[data_range(file, e)?]);
            let mut out = alloc::zeroed(n, "a member's first bytes")?;
            let written = z.fill(&mut out).map_err(bad)?;
            out.truncate(written);
            Ok(out)
        }
        other => Err(bad(format!("unsupported compression method {other}"))),
    }
}

/// `crc`, a CRC-32 register (before its final inversion), updated with `data`.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    data.iter().fold(crc, |c, &b| {
        CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// The CRC-32 table (IEEE, reflected, as zip uses it).
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The CRC-32 (IEEE, as zip uses it) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

#[cfg(test)]
mod tests;
