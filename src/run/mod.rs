//! The drivers: the only code that wires load → engine → survey → report.

pub mod many;
pub mod pairs;
pub mod recorder;
pub mod series;
pub mod survey;

/// Makes buffers of several MB (the decoded slabs of a compressed
/// trajectory, 30 MB at a time) go back to the system when freed: glibc
/// raises its mmap threshold to the size of the first such buffer freed and
/// keeps the later ones in its heap, where a series that decodes slab after
/// slab grew by several of them (90 MB peak instead of 62 MB for a 474 MB
/// gzip HDF5 trajectory; BENCHMARKS.md, "Checkpoint series"). It sets a
/// parameter of the process's allocator, so the binary calls it first
/// thing, and a program embedding the library may; elsewhere than Linux
/// with glibc it does nothing.
pub fn large_buffers_back_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: sets one parameter of the allocator (it takes its own lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
    }
}

use std::time::Instant;

use crate::load::TokenNames;
use crate::report::TokenDisplay;

/// How a report shows token ids: as the notebook's byte characters for a
/// byte vocabulary (a tokenizer that is one and covers every row, or 256
/// rows and no tokenizer),
/// as strings with any other tokenizer, else as ids.
fn token_display(rows: usize, tokens: Option<&TokenNames>) -> TokenDisplay {
    match tokens {
        Some(t) if t.vocab.is_byte_vocabulary() && rows <= t.vocab.vocab_size() => {
            TokenDisplay::Bytes
        }
        Some(_) => TokenDisplay::Strings,
        None if rows == 256 => TokenDisplay::Bytes,
        None => TokenDisplay::Ids,
    }
}

/// A note when the tokenizer has more tokens than the matrix has rows.
fn tokenizer_too_large(tokens: Option<&TokenNames>, rows: usize) -> Option<String> {
    let t = tokens?;
    let size = t.vocab.vocab_size();
    (size > rows).then(|| {
        format!(
            "note: the tokenizer {} has {size} tokens, more than the matrix's {}: is it this model's tokenizer?",
            t.path.display(),
            if rows == 1 { "1 row".to_string() } else { format!("{rows} rows") }
        )
    })
}

/// Milliseconds since `since`, to the microsecond (more digits would be noise).
fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}
