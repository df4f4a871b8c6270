//! The ground floor: the words several rooms share (how rows are compared,
//! the device that ran, which matrix of a model was read, how token strings
//! were decoded, which steps of a series to read, what a step differ
//! returns), so that the report sees results alone, the survey sees results
//! and this floor, and only `run/` knows both the loader and the engine.

use serde::Serialize;

/// How rows are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Equality {
    /// Rows are equal when their bytes are equal (+0.0 ≠ −0.0; NaNs by bit pattern).
    #[default]
    Bitwise,
    /// The notebook's `torch.unique` semantics: −0.0 == +0.0; rows holding a NaN
    /// equal nothing and are reported apart.
    Numeric,
}

/// Which kind of device ran the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

/// The device as reported in the survey.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    /// Adapter name (for the CPU path, the thread count).
    pub adapter: String,
    /// Graphics backend (Vulkan, Metal, Dx12, Gl) or "rayon".
    pub backend: String,
}

/// One step of a series compared with the step before, row by row (see
/// [`Engine::step_differ`](crate::engine::Engine::step_differ)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepRows {
    /// Bitwise row hashes of this step ([`hash`](crate::engine::hash)).
    pub hashes: Vec<u64>,
    /// Per row: whether its bytes differ from the previous step's; `None`
    /// at the first step.
    pub changed: Option<Vec<bool>>,
    /// Per row: the largest distance in steps of the dtype
    /// ([`Dtype::steps_between`](crate::dtype::Dtype::steps_between)) between
    /// an element and the same element at the previous step; 0 for a row
    /// that did not change. Empty at the first step and for F64 (whose
    /// steps do not fit the kernels' integers).
    pub linf_steps: Vec<u32>,
    /// Per row: the sum of those distances over the row's elements; empty
    /// likewise.
    pub l1_steps: Vec<u64>,
}

/// What moved in one step of a series, or a band of its rows: the rows
/// whose bytes differ from the step before's, ascending, with their hash,
/// displacement and bytes now; at the first step, every row (without
/// displacement). The survey keeps a copy of the current step and patches
/// in the moved rows, so a step costs the tokens that moved, not the
/// vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepMoves {
    /// The rows, ascending.
    pub ids: Vec<u32>,
    /// Their bitwise hashes now.
    pub hashes: Vec<u64>,
    /// Whether the displacement is counted: not at the first step, nor
    /// for F64 (see [`StepRows::linf_steps`]).
    pub displaced: bool,
    /// The moved rows' displacement, as in [`StepRows`] (empty when not
    /// counted).
    pub linf_steps: Vec<u32>,
    pub l1_steps: Vec<u64>,
    /// Their bytes now, one after the other, `row_len` each: a row's
    /// identity (its values, or a quantized tensor's stored blocks).
    pub bytes: Vec<u8>,
}

impl StepMoves {
    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.hashes.clear();
        self.linf_steps.clear();
        self.l1_steps.clear();
        self.bytes.clear();
    }

    /// Makes it the moves of `rows` (every row at the first step, where
    /// `rows.changed` is `None`), whose identity is `identity`: rows of
    /// `row_len` bytes each.
    pub fn fill_from_rows(&mut self, rows: &StepRows, identity: &[u8], row_len: usize) {
        self.clear();
        self.displaced = rows.changed.is_some() && !rows.linf_steps.is_empty();
        match &rows.changed {
            None => {
                let n = rows.hashes.len();
                self.ids.extend(0..n as u32);
                self.hashes.extend_from_slice(&rows.hashes);
                self.bytes
                    .extend_from_slice(&identity[..(n * row_len).min(identity.len())]);
            }
            Some(changed) => {
                let moved = changed.iter().enumerate().filter(|&(_, &c)| c);
                let displacement = !rows.linf_steps.is_empty();
                for (i, _) in moved {
                    self.ids.push(i as u32);
                    self.hashes.push(rows.hashes[i]);
                    if displacement {
                        self.linf_steps.push(rows.linf_steps[i]);
                        self.l1_steps.push(rows.l1_steps[i]);
                    }
                    self.bytes
                        .extend_from_slice(&identity[i * row_len..(i + 1) * row_len]);
                }
            }
        }
    }
}

/// A file (or anything like one) read with positioned reads.
pub trait ReadAt: Sync {
    /// Fills `buf` with the bytes from `offset`; an error (naming the
    /// file) when there are fewer.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> crate::error::Result<()>;
}

/// Which matrix of the model was surveyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The token embedding (the default).
    InputEmbedding,
    /// The output head, the unembedding (`--unembedding`).
    OutputHead,
}

/// How the output head relates to the input embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tied {
    /// One tensor: the file stores no separate head, or both names share storage.
    SameTensor,
    /// Two tensors with the same dtype, shape and bytes.
    BitIdentical,
    /// Two tensors that differ.
    Untied,
}

/// How token strings were decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VocabKind {
    /// GPT-2's byte-to-char table undone, bytes read as UTF-8.
    ByteLevelBpe,
    /// `▁` read as a space, ASCII byte-fallback tokens read as their byte.
    #[serde(rename = "sentencepiece")]
    SentencePiece,
    /// BERT's vocabulary, tokens as they are.
    #[serde(rename = "wordpiece")]
    WordPiece,
    /// Any other vocabulary, tokens as they are.
    Plain,
}

/// `--steps`: which of the available steps to survey.
///
/// `START:END[:EVERY]`, every part optional: the steps whose numbers lie in
/// `START..=END` (both inclusive), then every `EVERY`-th of those, counting
/// from the first. `::10` takes every tenth step, `1000:5000` a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepSelection {
    pub start: Option<u64>,
    pub end: Option<u64>,
    /// Keep every `every`-th step (1 = all).
    pub every: Option<u64>,
}

impl StepSelection {
    /// Parses `START:END[:EVERY]`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "expected START:END[:EVERY] (each part optional, e.g. ::10 or 100:500), got {s:?}"
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let num = |p: &str| -> std::result::Result<Option<u64>, String> {
            let p = p.trim();
            if p.is_empty() {
                Ok(None)
            } else {
                p.parse::<u64>().map(Some).map_err(|_| bad())
            }
        };
        let sel = Self {
            start: num(parts[0])?,
            end: num(parts[1])?,
            every: match parts.get(2) {
                Some(p) => num(p)?,
                None => None,
            },
        };
        if sel.every == Some(0) {
            return Err(format!("--steps {s:?}: EVERY must be at least 1"));
        }
        if let (Some(a), Some(b)) = (sel.start, sel.end) {
            if a > b {
                return Err(format!("--steps {s:?}: START is after END"));
            }
        }
        Ok(sel)
    }

    /// The positions (indices into `steps`, ascending) of the selected steps.
    pub fn select(&self, steps: &[u64]) -> Vec<usize> {
        let every = self.every.unwrap_or(1).max(1) as usize;
        (0..steps.len())
            .filter(|&i| {
                self.start.is_none_or(|a| steps[i] >= a) && self.end.is_none_or(|b| steps[i] <= b)
            })
            .step_by(every)
            .collect()
    }
}
