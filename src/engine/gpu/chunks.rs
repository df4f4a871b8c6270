//! Streaming a matrix through the GPU in row chunks that fit the adapter's
//! storage-binding limit: a [`ChunkPlan`] cuts the rows, a [`Stream`] uploads
//! chunk after chunk through two alternating staging + device buffer pairs, so
//! the host copies one chunk (in parallel) while the GPU works on the other.
//! A chunk of scattered rows (a vector set) is gathered from the matrix straight
//! into the mapped staging memory, so no host copy of the set is ever made.

use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;

use rayon::prelude::*;

use super::{buffer, GpuContext};
use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// Chunk bytes are kept below 2 GiB so byte offsets fit the kernels' u32 arithmetic.
const MAX_CHUNK_BYTES: u64 = (1 << 31) - 4096;

/// Beyond this, chunks gain nothing: larger ones delay the overlap of upload and
/// compute and cost more staging memory (two chunks are in flight).
const PREFERRED_CHUNK_BYTES: u64 = 64 << 20;

/// How a matrix of `rows` rows of `row_bytes` bytes is cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    pub rows: usize,
    pub row_bytes: usize,
    /// Rows in every chunk but possibly the last.
    pub rows_per_chunk: usize,
}

impl ChunkPlan {
    /// Plans chunks of at most `limit` bytes (the binding limit, or a smaller
    /// test override). Each chunk buffer carries 4 bytes of padding so a
    /// misaligned last row can be read a word at a time.
    pub fn new(rows: usize, row_bytes: usize, limit: u64, preferred: Option<u64>) -> Result<Self> {
        let cap = limit.min(MAX_CHUNK_BYTES).min(
            preferred
                .unwrap_or(PREFERRED_CHUNK_BYTES)
                // At least one row, rounded up to a word, and the padding.
                .max(row_bytes.div_ceil(4) as u64 * 4 + 8),
        );
        let usable = cap.saturating_sub(8) / 4 * 4;
        let rows_per_chunk = (usable / row_bytes.max(1) as u64) as usize;
        if rows_per_chunk == 0 {
            return Err(Error::Usage(format!(
                "one row is {row_bytes} bytes, more than the GPU adapter can bind at once ({limit} bytes); use --device cpu"
            )));
        }
        Ok(Self {
            rows,
            row_bytes,
            rows_per_chunk: rows_per_chunk.min(rows),
        })
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.rows.div_ceil(self.rows_per_chunk)
    }

    /// Row range of chunk `i`.
    pub fn chunk(&self, i: usize) -> std::ops::Range<usize> {
        let start = i * self.rows_per_chunk;
        start..(start + self.rows_per_chunk).min(self.rows)
    }

    /// Size of the device buffer for one chunk: the largest chunk's bytes,
    /// padded by one word and rounded up to a multiple of 4.
    pub fn buffer_bytes(&self) -> u64 {
        ((self.rows_per_chunk * self.row_bytes) as u64 + 4).div_ceil(4) * 4
    }
}

/// Words per row once each row of `m` is padded to whole 32-bit words.
pub fn row_stride(m: &Matrix) -> usize {
    m.row_bytes().div_ceil(4).max(1)
}

/// Rows gathered from a matrix into contiguous raw bits, each row padded with
/// zeros to a whole number of 32-bit words so every row starts on a word (the
/// kernels then read column `c` of row `r` at word `r · stride + c·size/4`).
/// [`Stream::push_rows`] lays out the same bits without a host copy.
pub struct Gathered {
    pub bytes: Vec<u8>,
    /// Words per row.
    pub stride: usize,
}

impl Gathered {
    pub fn new(m: &Matrix, rows: &[usize]) -> Self {
        let rb = m.row_bytes();
        let stride = row_stride(m);
        let mut bytes = vec![0u8; rows.len() * stride * 4];
        bytes
            .par_chunks_mut(stride * 4)
            .zip(rows.par_iter())
            .for_each(|(dst, &r)| dst[..rb].copy_from_slice(m.row(r)));
        Self { bytes, stride }
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.stride * 4
    }
}

/// Staging and chunk buffers kept from one [`Stream`] for the next (a series
/// of checkpoints reuses them instead of allocating and zero-filling two
/// staging and two chunk buffers per file).
#[derive(Default)]
pub struct SparePool(Mutex<Vec<(wgpu::Buffer, wgpu::Buffer)>>);

/// One chunk in flight: its staging memory (mapped while the host fills it)
/// and the device buffer the kernels read.
struct Slot {
    staging: wgpu::Buffer,
    data: wgpu::Buffer,
    /// Set while the staging buffer is being mapped again after its last use.
    remap: Option<Receiver<Result<(), wgpu::BufferAsyncError>>>,
    /// The submission that last used this slot.
    submitted: Option<wgpu::SubmissionIndex>,
}

/// Uploads chunks through one or two alternating slots.
pub struct Stream {
    slots: Vec<Slot>,
}

impl Stream {
    /// Slots for `chunks` chunks of up to `chunk_bytes` bytes each, taken from
    /// `pool` where it holds buffers large enough.
    pub fn new(ctx: &GpuContext, chunk_bytes: u64, chunks: usize, pool: &SparePool) -> Self {
        use wgpu::BufferUsages as U;
        let mut spare = pool
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        spare.retain(|(staging, _)| staging.size() >= chunk_bytes);
        let slots = (0..chunks.clamp(1, 2))
            .map(|_| {
                let (staging, data) = spare.pop().unwrap_or_else(|| {
                    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("staging"),
                        size: chunk_bytes.max(16),
                        usage: U::MAP_WRITE | U::COPY_SRC,
                        mapped_at_creation: true,
                    });
                    let data = buffer(ctx, "chunk", chunk_bytes, U::STORAGE | U::COPY_DST);
                    (staging, data)
                });
                Slot {
                    staging,
                    data,
                    remap: None,
                    submitted: None,
                }
            })
            .collect();
        Self { slots }
    }

    /// Number of slots (one or two).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The device buffer of slot `i` (chunk `ci` lands in slot `ci % len()`).
    pub fn data(&self, i: usize) -> &wgpu::Buffer {
        &self.slots[i].data
    }

    /// Uploads `src` as chunk `ci`, then submits the copy to the device buffer
    /// followed by whatever `encode` records (given the slot's index and device
    /// buffer). Waits
    /// only for the slot's previous chunk, so the chunk submitted just before
    /// keeps the GPU busy while the host copies.
    pub fn push(
        &mut self,
        ctx: &GpuContext,
        ci: usize,
        src: &[u8],
        encode: impl FnOnce(&mut wgpu::CommandEncoder, usize, &wgpu::Buffer),
    ) -> Result<()> {
        let (i, copy) = self.fill(ctx, ci, src.len(), |dst| par_copy(dst, src))?;
        self.submit(ctx, i, |enc, slot| {
            enc.copy_buffer_to_buffer(&slot.staging, 0, &slot.data, 0, copy);
            encode(enc, i, &slot.data);
        })
    }

    /// As [`push`](Self::push) for the rows `rows` of `m` (any order, repeats
    /// allowed), laid out as [`Gathered`] lays them out (each row padded to
    /// [`row_stride`] words) but gathered straight into the staging memory.
    pub fn push_rows(
        &mut self,
        ctx: &GpuContext,
        ci: usize,
        m: &Matrix,
        rows: &[usize],
        encode: impl FnOnce(&mut wgpu::CommandEncoder, usize, &wgpu::Buffer),
    ) -> Result<()> {
        let stride = row_stride(m);
        let len = rows.len() * stride * 4;
        let (i, copy) = self.fill(ctx, ci, len, |dst| gather(dst, m, rows, stride))?;
        self.submit(ctx, i, |enc, slot| {
            enc.copy_buffer_to_buffer(&slot.staging, 0, &slot.data, 0, copy);
            encode(enc, i, &slot.data);
        })
    }

    /// Gathers the rows `rows` of `m` as [`push_rows`](Self::push_rows) does,
    /// as upload `ci` of this stream, into `dst` from byte `offset` on, rather
    /// than into a slot's device buffer (for a panel larger than one chunk,
    /// uploaded a chunk at a time). Copies past `dst`'s end are cut short.
    pub fn upload_rows(
        &mut self,
        ctx: &GpuContext,
        ci: usize,
        m: &Matrix,
        rows: &[usize],
        dst: &wgpu::Buffer,
        offset: u64,
    ) -> Result<()> {
        let stride = row_stride(m);
        let len = rows.len() * stride * 4;
        if offset + len as u64 > dst.size() {
            return Err(Error::Gpu(format!(
                "{len} bytes at {offset} do not fit a buffer of {} bytes",
                dst.size()
            )));
        }
        let (i, copy) = self.fill(ctx, ci, len, |d| gather(d, m, rows, stride))?;
        let copy = copy.min(dst.size() - offset);
        self.submit(ctx, i, |enc, slot| {
            enc.copy_buffer_to_buffer(&slot.staging, 0, dst, offset, copy);
        })
    }

    /// Waits until the slot of upload `ci` is free and its staging memory
    /// mapped, then has `write` fill its first `len` bytes and zeros a word
    /// and more after them (see [`write_padded`]). Returns the slot's index
    /// and the bytes to copy out of its staging buffer.
    fn fill(
        &mut self,
        ctx: &GpuContext,
        ci: usize,
        len: usize,
        write: impl FnOnce(SendWriteOnly<'_>),
    ) -> Result<(usize, u64)> {
        let i = ci % self.slots.len();
        let slot = &mut self.slots[i];
        if let (Some(rx), Some(index)) = (slot.remap.take(), slot.submitted.take()) {
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu(e.to_string()))?;
            rx.recv()
                .map_err(|e| Error::Gpu(e.to_string()))?
                .map_err(|e| Error::Gpu(e.to_string()))?;
        }
        let copy = write_padded_with(&slot.staging, len, write)?;
        slot.staging.unmap();
        Ok((i, copy))
    }

    /// Submits what `record` records for slot `i` (whose staging buffer
    /// [`fill`](Self::fill) has just filled), then maps the staging buffer
    /// again once the GPU has copied out of it: for this slot's next chunk,
    /// or for the next stream.
    fn submit(
        &mut self,
        ctx: &GpuContext,
        i: usize,
        record: impl FnOnce(&mut wgpu::CommandEncoder, &Slot),
    ) -> Result<()> {
        let slot = &mut self.slots[i];
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        record(&mut enc, slot);
        slot.submitted = Some(ctx.queue.submit([enc.finish()]));
        let (tx, rx) = channel();
        slot.staging
            .slice(..)
            .map_async(wgpu::MapMode::Write, move |r| {
                let _ = tx.send(r);
            });
        slot.remap = Some(rx);
        ctx.check()
    }

    /// Returns the slots whose staging buffers are mapped again to `pool`.
    /// Call once the device is idle (after a read-back).
    pub fn finish(self, ctx: &GpuContext, pool: &SparePool) {
        // Delivers the callbacks of finished mappings.
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        let keep: Vec<_> = self
            .slots
            .into_iter()
            .filter_map(|slot| match slot.remap.map(|rx| rx.try_recv()) {
                Some(Ok(Ok(()))) => Some((slot.staging, slot.data)),
                _ => None,
            })
            .collect();
        if let Ok(mut spare) = pool.0.lock() {
            *spare = keep;
        }
    }
}

/// Writes `src` into the mapped `staging` buffer (from several threads when
/// large), then zeros up to a whole word and one word more (the kernels may
/// read one word past a row that ends mid-word). Returns how many bytes to
/// copy out of it, a multiple of 4.
pub(super) fn write_padded(staging: &wgpu::Buffer, src: &[u8]) -> Result<u64> {
    write_padded_with(staging, src.len(), |dst| par_copy(dst, src))
}

/// As [`write_padded`], with `write` filling the first `len` bytes.
fn write_padded_with(
    staging: &wgpu::Buffer,
    len: usize,
    write: impl FnOnce(SendWriteOnly<'_>),
) -> Result<u64> {
    if len as u64 > staging.size() {
        return Err(Error::Gpu(format!(
            "a chunk of {len} bytes does not fit its staging buffer of {} bytes",
            staging.size()
        )));
    }
    let copy = ((len as u64 + 4).div_ceil(4) * 4).min(staging.size());
    let mut view = staging
        .slice(..copy)
        .get_mapped_range_mut()
        .map_err(|e| Error::Gpu(e.to_string()))?;
    let (body, mut pad) = view.slice(..).split_at(len);
    write(SendWriteOnly(body));
    pad.fill(0);
    Ok(copy)
}

/// A write-only view of mapped memory handed to another thread.
struct SendWriteOnly<'a>(wgpu::WriteOnly<'a, [u8]>);

// SAFETY: `WriteOnly<[T]>` is a unique handle to a disjoint range of mapped
// memory, like `&mut [T]`; wgpu implements `Send` for sized `T` only, and the
// slice case is sound for the same reason (`u8` is `Send`).
unsafe impl Send for SendWriteOnly<'_> {}

/// Bytes one thread copies into mapped memory before the work is split.
const PIECE: usize = 8 << 20;

/// Copies `src` into mapped memory from several threads.
fn par_copy(dst: SendWriteOnly<'_>, src: &[u8]) {
    let mut dst = dst;
    if src.len() <= PIECE {
        dst.0.copy_from_slice(src);
        return;
    }
    let mid = src.len() / 2;
    let (a, b) = dst.0.split_at(mid);
    let (a, b) = (SendWriteOnly(a), SendWriteOnly(b));
    rayon::join(|| par_copy(a, &src[..mid]), || par_copy(b, &src[mid..]));
}

/// Writes the rows `rows` of `m` into `dst` (`rows.len() × stride` words),
/// each followed by zeros up to `stride` words, from several threads when
/// large.
fn gather(dst: SendWriteOnly<'_>, m: &Matrix, rows: &[usize], stride: usize) {
    gather_in_pieces(dst, m, rows, stride, PIECE);
}

/// [`gather`], split in halves until a half holds at most `piece` bytes.
fn gather_in_pieces(
    dst: SendWriteOnly<'_>,
    m: &Matrix,
    rows: &[usize],
    stride: usize,
    piece: usize,
) {
    let step = stride * 4;
    if rows.len() < 2 || rows.len() * step <= piece {
        return gather_serial(dst, m, rows, stride);
    }
    let mid = rows.len() / 2;
    let (a, b) = dst.0.split_at(mid * step);
    let (a, b) = (SendWriteOnly(a), SendWriteOnly(b));
    rayon::join(
        || gather_in_pieces(a, m, &rows[..mid], stride, piece),
        || gather_in_pieces(b, m, &rows[mid..], stride, piece),
    );
}

/// [`gather`] on one thread. When rows are whole words (no padding), each
/// run of consecutive row ids (a set's rows often are long runs) is one copy
/// out of the matrix.
fn gather_serial(dst: SendWriteOnly<'_>, m: &Matrix, rows: &[usize], stride: usize) {
    let mut dst = dst.0;
    let rb = m.row_bytes();
    let step = stride * 4;
    if rb == step {
        let mut i = 0;
        while i < rows.len() {
            let mut j = i + 1;
            while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                j += 1;
            }
            dst.slice(i * step..j * step)
                .copy_from_slice(&m.bytes[rows[i] * rb..(rows[j - 1] + 1) * rb]);
            i = j;
        }
    } else {
        for (i, &r) in rows.iter().enumerate() {
            let (mut body, mut pad) = dst.slice(i * step..(i + 1) * step).split_at(rb);
            body.copy_from_slice(m.row(r));
            pad.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_all_rows_once() {
        let plan = ChunkPlan::new(1000, 126, 4096, None).unwrap();
        assert!(plan.rows_per_chunk * 126 + 4 <= 4096);
        let mut next = 0;
        for i in 0..plan.len() {
            let r = plan.chunk(i);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next, 1000);
        assert!(plan.buffer_bytes() <= 4096);
    }

    /// Rows gathered into memory holding stale bytes (as a reused staging
    /// buffer does) come out as each row's bytes followed by zeros to whole
    /// words: runs of consecutive ids, gaps, repeats and a scrambled order,
    /// rows of whole words (one copy per run) and not (padding), on one
    /// thread and split into pieces.
    #[test]
    fn gathered_rows_are_the_rows_padded_with_zeros() {
        use crate::dtype::Dtype;
        let row_sets: [&[usize]; 4] = [
            &[0, 1, 2, 3, 5, 6, 9, 10, 11, 12, 13, 20, 38, 39],
            &[7, 3, 3, 4, 5, 0, 39, 38, 12, 13, 13, 14],
            &[17],
            &[],
        ];
        for (dtype, cols) in [
            (Dtype::BF16, 6),
            (Dtype::BF16, 7),
            (Dtype::F16, 1),
            (Dtype::F32, 3),
            (Dtype::F64, 2),
        ] {
            let rb = cols * dtype.size();
            let bytes: Vec<u8> = (0..40 * rb).map(|i| (i * 7 + 1) as u8).collect();
            let m = Matrix::new(dtype, 40, cols, &bytes).unwrap();
            let stride = row_stride(&m);
            assert_eq!(stride, rb.div_ceil(4));
            for rows in row_sets {
                let mut want = Vec::new();
                for &r in rows {
                    want.extend_from_slice(&bytes[r * rb..(r + 1) * rb]);
                    want.resize(want.len() + stride * 4 - rb, 0);
                }
                for piece in [usize::MAX, 1, 3 * stride * 4] {
                    let mut got = vec![0xAAu8; rows.len() * stride * 4];
                    let dst = SendWriteOnly(wgpu::WriteOnly::from(&mut got[..]));
                    gather_in_pieces(dst, &m, rows, stride, piece);
                    assert_eq!(got, want, "{dtype} × {cols}, rows {rows:?}, piece {piece}");
                }
            }
        }
    }

    #[test]
    fn a_row_larger_than_the_limit_is_an_error() {
        assert!(ChunkPlan::new(10, 5000, 4096, None).is_err());
    }
}
