//! The drivers: the only code that wires load → engine → survey → report.

pub mod pairs;
pub mod series;
