//! Progress on stderr for long inputs; silent when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Inputs smaller than this finish too fast for a bar to help.
const MIN_BYTES_FOR_BAR: u64 = 256 << 20;
/// All-pairs work (query × target × row bytes) below this takes a few
/// seconds at most, even on two CPU cores.
const MIN_WORK_FOR_BAR: u64 = 20_000_000_000;

/// How long a count of items runs unseen before it shows
/// ([`Progress::for_items`]).
const ITEMS_BAR_AFTER: Duration = Duration::from_secs(3);

/// A progress bar or spinner, or nothing.
#[derive(Default)]
pub struct Progress(Option<ProgressBar>, Option<Instant>);

impl Progress {
    /// No output at all (library use, tests, benchmarks).
    pub fn hidden() -> Self {
        Self(None, None)
    }

    /// A bar over `total` bytes, shown only when stderr is a terminal and the input is long.
    pub fn for_bytes(total: u64, what: &str) -> Self {
        if total < MIN_BYTES_FOR_BAR || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self(Some(bar), None)
    }

    /// A bar over `total` units of all-pairs work (query × target × row
    /// bytes), with a percentage and an ETA: shown only on a terminal and
    /// when the work is large enough to take more than a few seconds.
    pub fn for_work(total: u64, what: &str) -> Self {
        if total < MIN_WORK_FOR_BAR || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent}% ({elapsed} spent, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self(Some(bar), None)
    }

    /// A spinner with the time spent, for all-pairs work that reports no
    /// progress of its own (the threshold searches): shown only on a
    /// terminal and when `work` (as [`Progress::for_work`] counts it) is
    /// large enough to take more than a few seconds.
    pub fn spinner(work: u64, what: &str) -> Self {
        if work < MIN_WORK_FOR_BAR || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar), None)
    }

    /// A count of items (the entries of a folder being scanned) that shows
    /// only on a terminal, and only once counting has taken a few seconds.
    pub fn for_items(what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}: {pos} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        Self(Some(bar), Some(Instant::now() + ITEMS_BAR_AFTER))
    }

    /// Records `n` more units (bytes, work or items) done.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
            if self.1.is_some_and(|at| Instant::now() >= at) && bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
