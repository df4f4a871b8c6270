//! Progress on stderr for long inputs; silent when stderr is not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Inputs smaller than this finish too fast for a bar to help.
const MIN_BYTES_FOR_BAR: u64 = 256 << 20;
/// All-pairs work (query × target × row bytes) below this takes a few
/// seconds at most, even on two CPU cores.
const MIN_WORK_FOR_BAR: u64 = 20_000_000_000;

/// A byte-counting progress bar, or nothing.
#[derive(Default)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// No output at all (library use, tests, benchmarks).
    pub fn hidden() -> Self {
        Self(None)
    }

    /// A bar over `total` bytes, shown only when stderr is a terminal and the input is long.
    pub fn for_bytes(total: u64, what: &str) -> Self {
        if total < MIN_BYTES_FOR_BAR || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self(Some(bar))
    }

    /// A bar over `total` units of all-pairs work (query × target × row
    /// bytes), with a percentage and an ETA: shown only on a terminal and
    /// when the work is large enough to take more than a few seconds.
    pub fn for_work(total: u64, what: &str) -> Self {
        if total < MIN_WORK_FOR_BAR || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent}% ({elapsed} spent, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self(Some(bar))
    }

    /// Records `bytes` more bytes done.
    pub fn inc(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
