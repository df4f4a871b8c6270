//! Text sections of the all-pairs geometry: nearest neighbours, near-
//! singularities and the lattice of black holes. One function per section;
//! every number was computed in the survey.

use std::fmt::{Result, Write};

use super::fmt::{count, sci, sci2, thousands};
use crate::survey::lattice::Lattice;
use crate::survey::near::Near;
use crate::survey::nearest::Nearest;

const RULE: &str =
    "================================================================================";

/// The largest lattice printed as matrices in the text report (JSON has all).
pub const MAX_LATTICE_SHOWN: usize = 64;
/// Width of the histogram bars.
const BAR: usize = 40;

fn header(o: &mut String, title: &str) -> Result {
    writeln!(o, "\n{RULE}\n{title}\n{RULE}\n")
}

fn ids(v: &[usize], max: usize) -> String {
    let shown: Vec<String> = v.iter().take(max).map(|x| x.to_string()).collect();
    let more = if v.len() > max {
        format!(" ... and {} more", thousands(v.len() - max))
    } else {
        String::new()
    };
    format!("[{}]{more}", shown.join(", "))
}

/// How token ids are labelled in these sections: `id "string"` with a
/// tokenizer (see `text.rs`), `None` without one.
pub type Label<'a> = Option<&'a dyn Fn(usize) -> String>;

/// The `Tokens:` line of up to `max` ids, when there are strings to show.
fn tokens_line(o: &mut String, v: &[usize], max: usize, label: Label) -> Result {
    if let Some(label) = label {
        let shown: Vec<String> = v.iter().take(max).map(|&id| label(id)).collect();
        writeln!(o, "  Tokens: {}", shown.join(", "))?;
    }
    Ok(())
}

/// `--nearest`.
pub fn nearest(o: &mut String, n: &Nearest, max_ids: usize, label: Label) -> Result {
    header(
        o,
        "NEAREST NEIGHBOURS (each token's nearest distinct vector, exact L2)",
    )?;
    writeln!(
        o,
        "Tokens with a neighbour: {} of {}",
        thousands(n.with_neighbour),
        thousands(n.distances.len())
    )?;
    if n.with_neighbour == 0 {
        writeln!(o, "(no two distinct finite vectors to compare)")?;
        return Ok(());
    }
    writeln!(o, "\nNearest-neighbour distance quantiles:")?;
    for q in &n.quantiles {
        writeln!(
            o,
            "  {:>5}%: {}",
            format!("{}", q.q * 100.0),
            sci(q.distance)
        )?;
    }
    writeln!(o, "\nHistogram (log scale, 4 bins per decade):")?;
    let top = n
        .histogram
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(1)
        .max(1);
    for b in &n.histogram {
        let len = (b.count * BAR).div_ceil(top);
        let range = if b.hi == 0.0 {
            format!("{:>21}", "exactly 0")
        } else {
            format!("[{}, {})", sci2(b.lo), sci2(b.hi))
        };
        writeln!(
            o,
            "  {range}  {:<BAR$} {}",
            "#".repeat(len),
            thousands(b.count)
        )?;
    }
    match &n.gap {
        Some(g) => {
            writeln!(
                o,
                "\nThe gap: no token's nearest neighbour lies between {} and {}",
                sci(g.lo),
                sci(g.hi)
            )?;
            writeln!(
                o,
                "  Below it: {} on {} ({})",
                count(g.tokens.len(), "token", "tokens"),
                count(g.distinct_vectors, "distinct vector", "distinct vectors"),
                count(g.black_holes, "black hole", "black holes")
            )?;
            writeln!(
                o,
                "  L2 radius around their centroid: {}; centroid norm: {:.6}",
                sci(g.radius),
                g.centroid_norm
            )?;
            if max_ids > 0 {
                writeln!(o, "  Token IDs: {}", ids(&g.tokens, max_ids))?;
                tokens_line(o, &g.tokens, max_ids, label)?;
            }
        }
        None => writeln!(
            o,
            "\nThe gap: none (no empty interval of at least 2x splits off a low population of at most half the tokens)"
        )?,
    }
    for (title, list) in [
        ("Most isolated tokens", &n.most_isolated),
        ("Least isolated tokens", &n.least_isolated),
    ] {
        writeln!(o, "\n{title} (token -> nearest, distance):")?;
        for x in list {
            write!(
                o,
                "  {:>8} -> {:<8} {}",
                x.token_id,
                x.nearest,
                sci(x.distance)
            )?;
            match label {
                // The strings only: the ids are on the line already.
                Some(label) => {
                    let text = |id: usize| {
                        let l = label(id);
                        l.strip_prefix(&format!("{id} ")).unwrap_or(&l).to_string()
                    };
                    writeln!(o, "   {} -> {}", text(x.token_id), text(x.nearest))?
                }
                None => writeln!(o)?,
            }
        }
    }
    Ok(())
}

/// `--near-l2`, `--near-rel`, `--near-ulp`.
pub fn near(o: &mut String, n: &Near, dtype: &str, max_ids: usize, label: Label) -> Result {
    let what = match n.metric {
        "ulp" => format!("every coordinate within {} {dtype} steps", n.threshold),
        _ => format!("L2 distance <= {}", sci(n.threshold)),
    };
    header(o, &format!("NEAR-SINGULARITIES ({what})"))?;
    writeln!(
        o,
        "Joined pairs of distinct vectors: {}",
        thousands(n.pairs)
    )?;
    writeln!(o, "Components: {}", thousands(n.components.len()))?;
    for (i, c) in n.components.iter().enumerate() {
        writeln!(
            o,
            "\nComponent {}/{}: {} on {} ({})",
            i + 1,
            n.components.len(),
            count(c.token_ids.len(), "token", "tokens"),
            count(c.distinct_vectors, "distinct vector", "distinct vectors"),
            count(c.black_holes, "black hole", "black holes")
        )?;
        match (c.diameter_l2, c.diameter_steps) {
            (Some(l2), Some(st)) => writeln!(
                o,
                "  Diameter: L2 {}, {} (largest in one coordinate)",
                sci(l2),
                count(st as usize, "step", "steps")
            )?,
            _ => writeln!(o, "  Diameter: not computed (too many vectors)")?,
        }
        writeln!(o, "  Centroid norm: {:.6}", c.centroid_norm)?;
        match &c.nearest_outside {
            Some(x) => writeln!(
                o,
                "  Nearest token outside: {} at {}",
                match label {
                    Some(label) => label(x.token_id),
                    None => x.token_id.to_string(),
                },
                sci(x.distance)
            )?,
            None => writeln!(o, "  Nearest token outside: none")?,
        }
        writeln!(
            o,
            "  Constant coordinates: {}",
            thousands(c.constant_coordinates)
        )?;
        if max_ids > 0 {
            writeln!(o, "  Token IDs: {}", ids(&c.token_ids, max_ids))?;
            tokens_line(o, &c.token_ids, max_ids, label)?;
        }
    }
    Ok(())
}

fn matrix(o: &mut String, m: &[Vec<u64>]) -> Result {
    let width = m
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1)
        .max(m.len().to_string().len());
    write!(o, "  {:>w$}", "", w = width)?;
    for j in 0..m.len() {
        write!(o, " {:>width$}", j + 1)?;
    }
    writeln!(o)?;
    for (i, row) in m.iter().enumerate() {
        write!(o, "  {:>width$}", i + 1)?;
        for v in row {
            write!(o, " {v:>width$}")?;
        }
        writeln!(o)?;
    }
    Ok(())
}

/// The lattice of black holes (holes numbered as the groups above).
pub fn lattice(o: &mut String, l: &Lattice, dtype: &str) -> Result {
    header(
        o,
        &format!("LATTICE OF BLACK HOLES (distances in {dtype} steps)"),
    )?;
    let k = l.linf_steps.len();
    if k <= MAX_LATTICE_SHOWN {
        writeln!(o, "L-inf steps (most in one coordinate), hole i vs hole j:")?;
        matrix(o, &l.linf_steps)?;
        writeln!(o, "\nL1 steps (summed over coordinates):")?;
        matrix(o, &l.l1_steps)?;
    } else {
        writeln!(
            o,
            "{} black holes: the {k}x{k} step matrices are in the JSON output (--json)",
            thousands(k)
        )?;
    }
    writeln!(
        o,
        "\nComponents at L-inf <= 1 step: {} (those of two or more holes below)",
        thousands(l.components.len())
    )?;
    for c in l.components.iter().filter(|c| c.len() > 1) {
        let holes: Vec<usize> = c.iter().map(|i| i + 1).collect();
        writeln!(o, "  Groups {}", ids(&holes, 64))?;
    }
    Ok(())
}
