//! The human-readable report, section by section as the 08.3b notebook prints it.

use std::fmt::Write;

use super::fmt::{count, fixed, sci, sci_or, thousands};
use super::{allpairs, Exporter, Report, TokenDisplay};
use crate::escape::quoted;
use crate::survey::indicators::{Indicators, ReferenceSource};
use crate::types::{Equality, Role, Tied, VocabKind};

/// Renders the report as text.
pub struct TextExporter {
    /// `--max-tokens`: token ids shown per group or event (0: counts only).
    pub max_tokens: usize,
}

const RULE: &str =
    "================================================================================";
const THIN: &str =
    "--------------------------------------------------------------------------------";

/// Python's `repr` of a one-character (or `\xNN`) string, as a list element.
fn py_repr(s: &str) -> String {
    if s == "'" {
        return "\"'\"".into();
    }
    format!("'{}'", s.replace('\\', "\\\\"))
}

/// The notebook's character display of a byte token.
fn byte_char(id: usize) -> String {
    if (32..127).contains(&id) {
        ((id as u8) as char).to_string()
    } else {
        format!("\\x{id:02x}")
    }
}

/// `id "string"`, marked `(special)` or `(padding row)` where it is one.
fn token(r: &Report, id: usize) -> String {
    if r.token_display == TokenDisplay::Bytes && id < 256 {
        return format!("{id} {}", quoted(&char::from(id as u8).to_string()));
    }
    let text = r.tokens.as_ref().and_then(|t| t.get(&id));
    let special = r
        .special_tokens
        .as_ref()
        .is_some_and(|s| s.binary_search(&id).is_ok());
    let padding = r
        .padding_rows
        .as_ref()
        .is_some_and(|p| p.first().is_some_and(|&first| id >= first));
    match text {
        Some(t) if special => format!("{id} {} (special)", quoted(t)),
        Some(t) => format!("{id} {}", quoted(t)),
        None if padding => format!("{id} (padding row)"),
        None => format!("{id} (not in the tokenizer)"),
    }
}

fn kind_name(k: VocabKind) -> &'static str {
    match k {
        VocabKind::ByteLevelBpe => "byte-level BPE",
        VocabKind::SentencePiece => "SentencePiece",
        VocabKind::WordPiece => "WordPiece",
        VocabKind::Plain => "plain",
    }
}

fn list<T: ToString>(items: impl Iterator<Item = T>) -> String {
    let v: Vec<String> = items.map(|x| x.to_string()).collect();
    format!("[{}]", v.join(", "))
}

impl Exporter<Report> for TextExporter {
    fn render(&self, r: &Report) -> String {
        let mut o = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut o, r);
        o
    }
}

impl TextExporter {
    fn write(&self, o: &mut String, r: &Report) -> std::fmt::Result {
        let [n, d] = r.shape;
        writeln!(o, "Loading embeddings from: {}\n", r.file)?;
        writeln!(o, "✓ Embeddings loaded")?;
        match &r.tensor_file {
            Some(f) => writeln!(o, "Format: {} (tensor read from {f})", r.format)?,
            None => writeln!(o, "Format: {}", r.format)?,
        }
        if r.role == Role::OutputHead {
            let tied = match r.tied {
                Some(Tied::SameTensor) => "tied to the input embedding (the same tensor)",
                Some(Tied::BitIdentical) => {
                    "tied to the input embedding (a separate, bit-identical tensor)"
                }
                Some(Tied::Untied) => "not tied (it differs from the input embedding)",
                None => "no input embedding found to compare with",
            };
            writeln!(o, "Output head (--unembedding): {tied}")?;
        }
        if r.stored_dtype != r.dtype {
            writeln!(
                o,
                "Tensor: {} ({} read as {})",
                r.tensor, r.stored_dtype, r.dtype
            )?;
        } else {
            writeln!(o, "Tensor: {} ({})", r.tensor, r.dtype)?;
        }
        writeln!(o, "Shape: [{n}, {d}]")?;
        writeln!(o, "Vocabulary size: {}", thousands(n))?;
        writeln!(o, "Hidden dimension: {}", thousands(d))?;
        writeln!(o, "Total parameters: {}", thousands(n * d))?;
        let mb = |b: u64| b as f64 / 1e6;
        if r.values_bytes != r.memory_bytes {
            writeln!(
                o,
                "Memory footprint: {:.2} MB as stored ({}), {:.2} MB dequantized to {}",
                mb(r.memory_bytes),
                r.stored_dtype,
                mb(r.values_bytes),
                r.dtype
            )?;
        } else {
            writeln!(o, "Memory footprint: {:.2} MB", mb(r.memory_bytes))?;
        }
        writeln!(
            o,
            "Device: {} — {} ({})",
            match r.device.kind {
                crate::types::DeviceKind::Gpu => "gpu",
                crate::types::DeviceKind::Cpu => "cpu",
            },
            r.device.adapter,
            r.device.backend
        )?;
        writeln!(
            o,
            "Equality: {}",
            match r.equality {
                Equality::Bitwise =>
                    "bitwise (+0.0 and -0.0 differ; NaN rows compare by bit pattern)",
                Equality::Numeric => "numeric (+0.0 == -0.0; rows holding NaN equal nothing)",
            }
        )?;

        if let Some(t) = &r.tokenizer {
            writeln!(
                o,
                "Tokenizer: {} ({}, {})",
                t.path,
                if r.token_display == TokenDisplay::Bytes {
                    "a byte vocabulary"
                } else {
                    kind_name(t.kind)
                },
                count(t.vocab_size, "token", "tokens")
            )?;
        }
        if let Some(p) = r.padding_rows.as_deref().filter(|p| !p.is_empty()) {
            writeln!(
                o,
                "Padding rows (past the tokenizer's vocabulary): {}–{} ({})",
                thousands(p[0]),
                thousands(p[p.len() - 1]),
                count(p.len(), "row", "rows")
            )?;
        }

        writeln!(o, "\nSearching for singularities...\n")?;
        let n_dup = r.n_duplicate;
        writeln!(o, "Total tokens: {}", thousands(n))?;
        writeln!(o, "Unique vectors: {}", thousands(r.n_unique))?;
        writeln!(o, "Duplicate tokens: {}", thousands(n_dup))?;
        writeln!(o, "Uniqueness: {:.2}%\n", 100.0 * r.uniqueness)?;
        if let Some(nan) = &r.nan_rows {
            if !nan.is_empty() {
                let shown = nan.iter().take(self.max_tokens);
                writeln!(
                    o,
                    "Rows holding NaN (each counted as unique): {}",
                    thousands(nan.len())
                )?;
                if self.max_tokens > 0 {
                    writeln!(o, "  Token IDs: {}", list(shown))?;
                    if nan.len() > self.max_tokens {
                        let more = count(nan.len() - self.max_tokens, "more token", "more tokens");
                        writeln!(o, "  ... and {more}")?;
                    }
                }
                writeln!(o)?;
            }
        }
        if n_dup == 0 {
            writeln!(
                o,
                "✓ No singularities found. Every token has a unique vector."
            )?;
        } else {
            writeln!(
                o,
                "⚠ Found {}",
                count(n_dup, "duplicate token", "duplicate tokens")
            )?;
        }

        if let Some(s) = &r.group_sizes {
            writeln!(o, "\nSingularity groups: {}", thousands(r.groups.len()))?;
            writeln!(o, "Largest group: {}", count(s.largest, "token", "tokens"))?;
            writeln!(
                o,
                "Smallest group: {}",
                count(s.smallest, "token", "tokens")
            )?;
            writeln!(o, "Mean group size: {:.1} tokens", s.mean)?;
            writeln!(o, "Median group size: {:.1} tokens", s.median)?;
            writeln!(o, "\nGroup size distribution:")?;
            for c in &s.distribution {
                let groups = if c.count == 1 { "group" } else { "groups" };
                writeln!(o, "  {:4} tokens: {:4} {groups}", c.size, c.count)?;
            }

            let max = self.max_tokens;
            if max == 0 {
                writeln!(o, "\nToken ids hidden (--max-tokens 0)\n")?;
            } else {
                writeln!(o, "\nDisplaying up to {max} tokens per group\n")?;
            }
            writeln!(o, "{RULE}")?;
            let bytes_vocab = r.token_display == TokenDisplay::Bytes;
            for (gi, g) in r.groups.iter().enumerate() {
                writeln!(
                    o,
                    "\nGroup {}/{}: {} tokens sharing the vector of token {} (L2 norm {})",
                    gi + 1,
                    r.groups.len(),
                    g.size,
                    g.token_ids[0],
                    fixed(g.norm, 6)
                )?;
                writeln!(o, "{THIN}")?;
                let shown = &g.token_ids[..g.size.min(max)];
                if max == 0 {
                    writeln!(o, "{RULE}")?;
                    continue;
                }
                if bytes_vocab {
                    writeln!(o, "  Token IDs (byte values): {}", list(shown.iter()))?;
                    let chars = shown.iter().map(|&id| py_repr(&byte_char(id)));
                    writeln!(o, "  Characters: {}", list(chars))?;
                } else {
                    writeln!(o, "  Token IDs: {}", list(shown.iter()))?;
                }
                if r.token_display == TokenDisplay::Strings {
                    let tokens: Vec<String> = shown.iter().map(|&id| token(r, id)).collect();
                    writeln!(o, "  Tokens: {}", tokens.join(", "))?;
                }
                if g.size > max {
                    let more = count(g.size - max, "more token", "more tokens");
                    writeln!(o, "  ... and {more}")?;
                }
                writeln!(o, "{RULE}")?;
            }
        }

        let geo = &r.geometry;
        if !r.groups.is_empty() {
            writeln!(o, "\n{RULE}\nBLACK HOLE GEOMETRY\n{RULE}\n")?;
            let bh = &geo.black_hole_norms;
            writeln!(o, "Black hole L2 norms:")?;
            writeln!(o, "  Min: {}", fixed(bh.min, 6))?;
            writeln!(o, "  Max: {}", fixed(bh.max, 6))?;
            writeln!(o, "  Mean: {}", fixed(bh.mean, 6))?;
            let std = match (bh.std, r.groups.len()) {
                (None, 1) => "n/a (one black hole)".to_string(),
                (s, _) => fixed(s, 6),
            };
            writeln!(o, "  Std: {std}")?;
            if let Some(p) = &geo.pairwise_l2 {
                writeln!(o, "\nPairwise L2 distances between black holes:")?;
                writeln!(o, "  Min: {}", sci_or(p.min))?;
                writeln!(o, "  Max: {}", sci_or(p.max))?;
                writeln!(o, "  Mean: {}", sci_or(p.mean))?;
                writeln!(o, "  Median: {}", sci_or(p.median))?;
            } else if let Some(k) = r.pairwise_skipped {
                writeln!(
                    o,
                    "\nPairwise L2 distances between black holes: skipped ({} black holes, more than {})",
                    thousands(k),
                    thousands(crate::survey::MAX_PAIRWISE_REPRESENTATIVES)
                )?;
            }
            writeln!(o, "\nComparison to full cloud:")?;
        } else {
            writeln!(o, "\n{RULE}\nCLOUD GEOMETRY\n{RULE}\n")?;
        }
        writeln!(
            o,
            "  Full cloud L2 norms: mean={}, std={}",
            fixed(geo.cloud_norms.mean, 6),
            fixed(geo.cloud_norms.std, 6)
        )?;
        writeln!(o, "  Centroid L2 norm: {}", fixed(geo.centroid_norm, 6))?;
        if !r.groups.is_empty() {
            writeln!(
                o,
                "  Black holes vs full cloud: {}× mean norm",
                fixed(geo.norm_ratio, 4)
            )?;
        }

        if let Some(l) = &r.lattice {
            allpairs::lattice(o, l, &r.dtype)?;
        } else if let Some(k) = r.lattice_skipped {
            writeln!(
                o,
                "\nLattice of black holes: skipped ({} black holes, more than {})",
                thousands(k),
                thousands(crate::survey::lattice::MAX_LATTICE_HOLES)
            )?;
        }
        let label = |id: usize| token(r, id);
        let label: allpairs::Label =
            (r.token_display != TokenDisplay::Ids).then_some(&label as &dyn Fn(usize) -> String);
        if let Some(nn) = &r.nearest {
            allpairs::nearest(o, nn, self.max_tokens, label)?;
        }
        if let Some(near) = &r.near {
            allpairs::near(o, near, &r.dtype, self.max_tokens, label)?;
        }
        if let Some(ind) = &r.indicators {
            let named = |id: usize| match r.token_display {
                TokenDisplay::Ids => id.to_string(),
                _ => token(r, id),
            };
            indicators(o, ind, self.max_tokens, &named)?;
        }

        writeln!(o, "\n{RULE}\nSUMMARY\n{RULE}")?;
        let file_name = std::path::Path::new(&r.file)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| r.file.clone());
        writeln!(o, "Embedding file: {file_name}")?;
        writeln!(o, "Vocabulary size: {}", thousands(n))?;
        writeln!(o, "Unique vectors: {}", thousands(r.n_unique))?;
        writeln!(
            o,
            "Duplicate tokens: {} ({:.2}%)",
            thousands(n_dup),
            100.0 * r.duplicate_fraction
        )?;
        if let Some(s) = &r.group_sizes {
            writeln!(o, "Singularity groups: {}", thousands(r.groups.len()))?;
            writeln!(
                o,
                "Largest singularity: {}",
                count(s.largest, "token", "tokens")
            )?;
            writeln!(o, "Deduplication ratio: {:.2}x", r.dedup_ratio)?;
        } else {
            writeln!(o, "No singularities detected.")?;
        }
        writeln!(o, "{RULE}")?;
        // Only the stages that ran.
        let t = &r.timings_ms;
        let stages = [
            ("load", Some(t.load)),
            ("hash", Some(t.hash)),
            ("group", Some(t.group)),
            ("geometry", Some(t.geometry)),
            ("lattice", r.lattice.as_ref().map(|_| t.lattice)),
            ("nearest", r.nearest.as_ref().map(|_| t.nearest)),
            ("near", r.near.as_ref().map(|_| t.near)),
            ("indicators", t.indicators),
            ("total", Some(t.total)),
        ];
        let shown: Vec<String> = stages
            .iter()
            .filter_map(|(name, ms)| ms.map(|ms| format!("{name} {ms:.1} ms")))
            .collect();
        writeln!(o, "Time: {}", shown.join(", "))?;
        Ok(())
    }
}

/// The `--indicators` section: the matrix, the reference set, each
/// indicator's distribution, the candidates with their strings and values,
/// and their overlap with the survey's findings.
fn indicators(
    o: &mut String,
    ind: &Indicators,
    max_tokens: usize,
    label: &dyn Fn(usize) -> String,
) -> std::fmt::Result {
    writeln!(
        o,
        "\n{RULE}\nIndicators (under-trained tokens, as Magikarp's)\n{RULE}\n"
    )?;
    let role = match ind.matrix.role {
        Role::InputEmbedding => "input embedding",
        Role::OutputHead => "output head",
    };
    writeln!(o, "Matrix: {} ({role})", ind.matrix.tensor)?;
    let refs = &ind.reference.token_ids;
    let source = match ind.reference.source {
        ReferenceSource::Survey => {
            "from the survey (black holes, components, rows past the vocabulary)"
        }
        ReferenceSource::Given => "given (--reference-tokens)",
    };
    let shown: Vec<String> = refs
        .iter()
        .take(max_tokens.min(10))
        .map(|&t| label(t))
        .collect();
    let more = refs.len().saturating_sub(shown.len());
    writeln!(
        o,
        "reference: {} {source}{}{}{}",
        count(refs.len(), "token", "tokens"),
        if shown.is_empty() { "" } else { ": " },
        shown.join(", "),
        if more > 0 {
            format!(" ... and {} more", thousands(more))
        } else {
            String::new()
        }
    )?;
    let out = &ind.reference.left_out_non_finite;
    if !out.is_empty() {
        let shown: Vec<String> = out.iter().take(10).map(|&t| label(t)).collect();
        let more = out.len() - shown.len();
        writeln!(
            o,
            "left out of the reference set: {} holding NaN or ±∞: {}{}",
            count(out.len(), "token", "tokens"),
            shown.join(", "),
            if more > 0 {
                format!(" ... and {} more", thousands(more))
            } else {
                String::new()
            }
        )?;
    }
    if let Some(steps) = ind.power_iterations {
        writeln!(
            o,
            "first principal component: {} of power iteration{}",
            count(steps, "step", "steps"),
            if ind.pc1_converged == Some(false) {
                " (not converged)"
            } else {
                ""
            }
        )?;
    }
    writeln!(
        o,
        "\n{:<36} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "indicator (lower: more under-trained)", "min", "q1", "median", "q3", "max"
    )?;
    for (name, q) in ind.summary.each() {
        let title = if name == ind.main {
            format!("{name} (main)")
        } else {
            name.to_string()
        };
        writeln!(
            o,
            "{title:<36} {:>12} {:>12} {:>12} {:>12} {:>12}",
            sci(q.min),
            sci(q.q1),
            sci(q.median),
            sci(q.q3),
            sci(q.max)
        )?;
    }
    let main = ind.per_token.get(ind.main);
    let threshold = ind.threshold.map(sci).unwrap_or_else(|| "none".into());
    writeln!(
        o,
        "\ncandidates: {} at or below the {}nd percentile of {} ({threshold}), most under-trained first:",
        thousands(ind.candidates.len()),
        ind.threshold_percentile,
        ind.main
    )?;
    for &t in ind.candidates.iter().take(max_tokens) {
        let v = main.and_then(|m| m[t]).map(sci).unwrap_or_default();
        writeln!(o, "  {v:>12}  {}", label(t))?;
    }
    if ind.candidates.len() > max_tokens {
        writeln!(
            o,
            "  ... and {} more (--max-tokens, or all in --json)",
            thousands(ind.candidates.len() - max_tokens)
        )?;
    }
    writeln!(
        o,
        "overlap: in black holes: {}, in near components: {}, in the reference set: {}",
        thousands(ind.overlap.holes),
        thousands(ind.overlap.components),
        thousands(ind.overlap.reference)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_print_as_python_reprs() {
        assert_eq!(py_repr(&byte_char(0)), r"'\\x00'");
        assert_eq!(py_repr(&byte_char(39)), "\"'\"");
        assert_eq!(py_repr(&byte_char(92)), r"'\\'");
        assert_eq!(py_repr(&byte_char(65)), "'A'");
    }
}
