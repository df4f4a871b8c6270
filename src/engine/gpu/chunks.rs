//! Streaming a matrix through the GPU in row chunks that fit the adapter's
//! storage-binding limit.

use crate::error::{Error, Result};

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
                .max(row_bytes as u64 + 8),
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

    /// Always false: a plan covers at least one row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
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
