//! Streaming a matrix through the GPU in row chunks that fit the adapter's
//! storage-binding limit: a [`ChunkPlan`] cuts the rows, a [`Stream`] uploads
//! chunk after chunk through two alternating staging + device buffer pairs, so
//! the host copies one chunk (in parallel) while the GPU works on the other.

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

/// Rows gathered from a matrix into contiguous raw bits, each row padded with
/// zeros to a whole number of 32-bit words so every row starts on a word (the
/// kernels then read column `c` of row `r` at word `r · stride + c·size/4`).
pub struct Gathered {
    pub bytes: Vec<u8>,
    /// Words per row.
    pub stride: usize,
}

impl Gathered {
    pub fn new(m: &Matrix, rows: &[usize]) -> Self {
        let rb = m.row_bytes();
        let stride = rb.div_ceil(4).max(1);
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
        let copy = write_padded(&slot.staging, src)?;
        slot.staging.unmap();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&slot.staging, 0, &slot.data, 0, copy);
        encode(&mut enc, i, &slot.data);
        slot.submitted = Some(ctx.queue.submit([enc.finish()]));
        // Map the staging buffer again once the GPU has copied out of it: for
        // this slot's next chunk, or for the next stream.
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
    let copy = ((src.len() as u64 + 4).div_ceil(4) * 4).min(staging.size());
    let mut view = staging
        .slice(..copy)
        .get_mapped_range_mut()
        .map_err(|e| Error::Gpu(e.to_string()))?;
    let (body, mut pad) = view.slice(..).split_at(src.len());
    par_copy(SendWriteOnly(body), src);
    pad.fill(0);
    Ok(copy)
}

/// A write-only view of mapped memory handed to another thread.
struct SendWriteOnly<'a>(wgpu::WriteOnly<'a, [u8]>);

// SAFETY: `WriteOnly<[T]>` is a unique handle to a disjoint range of mapped
// memory, like `&mut [T]`; wgpu implements `Send` for sized `T` only, and the
// slice case is sound for the same reason (`u8` is `Send`).
unsafe impl Send for SendWriteOnly<'_> {}

/// Copies `src` into mapped memory from several threads.
fn par_copy(dst: SendWriteOnly<'_>, src: &[u8]) {
    const PIECE: usize = 8 << 20;
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

    #[test]
    fn a_row_larger_than_the_limit_is_an_error() {
        assert!(ChunkPlan::new(10, 5000, 4096, None).is_err());
    }
}
