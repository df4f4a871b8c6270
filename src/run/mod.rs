//! The drivers: the only code that wires load → engine → survey → report.

pub mod pairs;
pub mod series;
pub mod survey;

use std::time::Instant;

use crate::load::TokenNames;
use crate::report::TokenDisplay;

/// How a report shows token ids: as the notebook's byte characters for a
/// byte vocabulary (a tokenizer that is one, or 256 rows and no tokenizer),
/// as strings with any other tokenizer, else as ids.
fn token_display(rows: usize, tokens: Option<&TokenNames>) -> TokenDisplay {
    match tokens {
        Some(t) if t.vocab.is_byte_vocabulary() => TokenDisplay::Bytes,
        Some(_) => TokenDisplay::Strings,
        None if rows == 256 => TokenDisplay::Bytes,
        None => TokenDisplay::Ids,
    }
}

/// Milliseconds since `since`, to the microsecond (more digits would be noise).
fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}
