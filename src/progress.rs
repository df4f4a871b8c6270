//! Progress on stderr for long inputs; silent when stderr is not a terminal.
//! A progress also carries the caller's [`Interrupt`]: long work polls it
//! where it counts progress, and stops with [`Error::Interrupted`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Inputs smaller than this finish too fast for a bar to help.
const MIN_BYTES_FOR_BAR: u64 = 256 << 20;
/// All-pairs work (query × target × row bytes) below this takes a few
/// seconds at most, even on two CPU cores.
const MIN_WORK_FOR_BAR: u64 = 20_000_000_000;

/// How long work runs unseen before its bar or spinner shows
/// ([`Progress::for_steps`], [`Progress::spinner`]): 3 s, or the
/// milliseconds `SINGULARITY_GPU_PROGRESS_AFTER_MS` says (a test hook, so a
/// test on a pseudo-terminal need not run for seconds).
fn reveal_after() -> Duration {
    std::env::var("SINGULARITY_GPU_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(3), Duration::from_millis)
}

/// A flag a caller sets to stop a long call (a notebook's Ctrl-C): the call
/// returns [`Error::Interrupted`] soon after. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the call to stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to stop.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Error::Interrupted)` once set.
    pub fn check(&self) -> Result<()> {
        if self.is_set() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// A progress bar or spinner, or nothing; and the interrupt to poll.
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    /// When a hidden bar shows itself ([`Progress::for_steps`]).
    reveal_at: Option<Instant>,
    interrupt: Option<Interrupt>,
}

impl Progress {
    fn of(bar: ProgressBar, reveal_at: Option<Instant>) -> Self {
        Self {
            bar: Some(bar),
            reveal_at,
            interrupt: None,
        }
    }

    /// No output at all (library use, tests, benchmarks).
    pub fn hidden() -> Self {
        Self::default()
    }

    /// The same progress, stopping when `interrupt` is set.
    pub fn with_interrupt(mut self, interrupt: Option<&Interrupt>) -> Self {
        self.interrupt = interrupt.cloned();
        self
    }

    /// No output, but the same interrupt (for work nested in this one).
    pub fn quiet(&self) -> Progress {
        Progress::hidden().with_interrupt(self.interrupt.as_ref())
    }

    /// Whether the caller asked the work to stop.
    pub fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(Interrupt::is_set)
    }

    /// `Err(Error::Interrupted)` once the caller asked the work to stop.
    pub fn check(&self) -> Result<()> {
        match &self.interrupt {
            Some(i) => i.check(),
            None => Ok(()),
        }
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
        Self::of(bar, None)
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
        Self::of(bar, None)
    }

    /// A spinner with the time spent, for work that reports no progress of
    /// its own (the threshold searches): it appears on a terminal once the
    /// work has taken a few seconds, and never for work that ends sooner.
    pub fn spinner(what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        let reveal = |bar: &ProgressBar| {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.tick();
            bar.enable_steady_tick(Duration::from_millis(200));
        };
        let delay = reveal_after();
        if delay.is_zero() {
            reveal(&bar);
        } else {
            // Nothing calls `inc` during such work: a thread reveals it.
            let shown = bar.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                if !shown.is_finished() {
                    reveal(&shown);
                }
            });
        }
        Self::of(bar, None)
    }

    /// A bar over `total` steps of a series, or a count of items when
    /// `total` is `None` (the entries of a folder being scanned): shown only
    /// on a terminal, and only once the work has taken a few seconds.
    pub fn for_steps(total: Option<u64>, what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = if total.is_some() {
            "{msg} [{bar:30}] {pos}/{len} ({elapsed} spent, {eta} left)"
        } else {
            "{spinner} {msg}: {pos} ({elapsed})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self::of(bar, Some(Instant::now() + reveal_after()))
    }

    /// Records `n` more units (bytes, work or items) done.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            if self.reveal_at.is_some_and(|at| Instant::now() >= at) && bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.tick();
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
