//! The drivers: the only code that wires load → engine → survey → report.

pub mod pairs;
pub mod series;
pub mod survey;

use std::time::Instant;

/// Milliseconds since `since`, to the microsecond (more digits would be noise).
fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}
