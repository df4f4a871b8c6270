//! Many inputs in one run (`--file A --file B`, `--files-from LIST`,
//! `--shard I/N`): the engine opens once, each input is surveyed as `--file`
//! surveys it, and a failing input is an entry with its error while the run
//! goes on.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::survey::{survey_file_with, SurveyOptions};
use crate::engine::{self, Engine};
use crate::error::{one_line, Error, Result};
use crate::report::compare::{Comparison, Entry, Failure, Surveyed};

/// `--shard I/N`: of the inputs, those whose position p (0-based) in the
/// whole list has p mod N = I. Round robin rather than blocks, so that the
/// shards of a list sorted by size (or by model family) are alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// I, in 0..N.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Default for Shard {
    /// `0/1`: every input.
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// True when the input at position `p` belongs to this shard.
    pub fn keeps(&self, p: usize) -> bool {
        p % self.count == self.index
    }

    /// The inputs of this shard, in their order.
    pub fn select<T: Clone>(&self, inputs: &[T]) -> Vec<T> {
        inputs
            .iter()
            .enumerate()
            .filter(|(p, _)| self.keeps(*p))
            .map(|(_, x)| x.clone())
            .collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with N ≥ 1 and 0 ≤ I < N (as `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("expected I/N with N >= 1 and 0 <= I < N, got {s:?}");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The inputs a `--files-from` list names: one a line, surrounding
/// whitespace trimmed; blank lines and lines starting with `#` skipped.
pub fn parse_list(text: &str) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect()
}

/// Reads a `--files-from` list (`-`: standard input); see [`parse_list`].
pub fn read_list(path: &Path) -> Result<Vec<PathBuf>> {
    let cannot = |e: std::io::Error| Error::Input {
        path: path.to_path_buf(),
        reason: format!("cannot read the --files-from list: {e}"),
    };
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    }
    .map_err(cannot)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Input {
        path: path.to_path_buf(),
        reason: "the --files-from list is not UTF-8 text".into(),
    })?;
    Ok(parse_list(&text))
}

/// Everything a many-input run can be asked to do.
#[derive(Clone, Debug, Default)]
pub struct ManyOptions {
    /// What each input's survey does, as for `--file`.
    pub survey: SurveyOptions,
    /// Which of the inputs this run takes.
    pub shard: Shard,
    /// Keep each input's full [`Report`](crate::report::Report) in the
    /// [`Comparison`] (for `--details` and pages that show every model);
    /// without it only the table rows are kept, so a long list needs no more
    /// memory than one survey does.
    pub keep_reports: bool,
}

/// Surveys the inputs of `opts.shard` (files, folders, `ORG/NAME` cache
/// entries, as `--file` takes them) on one engine. Each entry is handed to
/// `each` as soon as it is ready, its report still attached (the binary
/// prints JSON Lines that way), and then kept in the [`Comparison`], with
/// its report only under [`ManyOptions::keep_reports`]. An input that fails
/// is an entry with its error; only an engine that cannot be opened fails
/// the whole run.
pub fn survey_many_each(
    inputs: &[PathBuf],
    opts: &ManyOptions,
    each: impl FnMut(&Entry),
) -> Result<Comparison> {
    let (engine, notice) = engine::select(opts.survey.device, opts.survey.gpu)?;
    let mut comparison = survey_many_with(engine.as_ref(), inputs, opts, each);
    comparison.notices.splice(0..0, notice);
    Ok(comparison)
}

/// [`survey_many_each`] on an engine the caller opened; `opts.survey.device`
/// and `opts.survey.gpu` are not used.
pub fn survey_many_with(
    engine: &dyn Engine,
    inputs: &[PathBuf],
    opts: &ManyOptions,
    mut each: impl FnMut(&Entry),
) -> Comparison {
    let mut comparison = Comparison::default();
    for path in opts.shard.select(inputs) {
        let input = path.display().to_string();
        let outcome = survey_file_with(engine, &path, &opts.survey)
            .map(Surveyed::of)
            .map_err(|e| failure(&input, &e));
        let mut entry = Entry { input, outcome };
        each(&entry);
        if !opts.keep_reports {
            if let Ok(s) = &mut entry.outcome {
                s.report = None;
            }
        }
        comparison.entries.push(entry);
    }
    comparison
}

/// [`survey_many_each`] with nothing to do per entry.
pub fn survey_many(inputs: &[PathBuf], opts: &ManyOptions) -> Result<Comparison> {
    survey_many_each(inputs, opts, |_| {})
}

/// The error of `input` as one line that names it.
fn failure(input: &str, e: &Error) -> Failure {
    let message = e.to_string();
    // Most errors name the file already; a cache entry's may name the
    // snapshot's file instead, and a device error none.
    let message = if message.contains(input) {
        message
    } else {
        format!("{}: {message}", one_line(input))
    };
    Failure {
        message,
        device: !e.is_user_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_take_every_nth_input() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("0/1".parse(), Ok(Shard::default()));
        for bad in ["3/3", "1/0", "0/0", "-1/2", "1", "a/b", "1/2/3", "", "/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} should be refused");
        }
        let inputs: Vec<usize> = (0..10).collect();
        let s = Shard { index: 1, count: 3 };
        assert_eq!(s.select(&inputs), vec![1, 4, 7]);
        // The shards of any N partition the inputs.
        for n in 1..=12 {
            let mut all: Vec<usize> = (0..n)
                .flat_map(|i| Shard { index: i, count: n }.select(&inputs))
                .collect();
            all.sort_unstable();
            assert_eq!(all, inputs, "N = {n}");
        }
    }

    #[test]
    fn lists_skip_blank_lines_and_comments() {
        let text =
            "# models\n\na.safetensors\n  Qwen/Qwen3-0.6B  \r\n\t# off: b.gguf\nmy model/c.pt\n";
        let want: Vec<PathBuf> = ["a.safetensors", "Qwen/Qwen3-0.6B", "my model/c.pt"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(parse_list(text), want);
        assert!(parse_list("").is_empty());
    }
}
