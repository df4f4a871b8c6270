//! The markdown tables of one matrix.

use std::fmt::Write as _;

use crate::common::fmt_time;
use crate::data::dtype_name;
use crate::run::{secs, CaseReport, ChildRun, Kind, PeerRun};
use crate::{
    BOOKKEEPING_PER_ROW, DEAD_VECTORS, HOLES, MEMORY_FACTOR, NN_VS_NUMPY, SLOW_FRACTION,
    THRESHOLD_SECS,
};

/// A ratio cell: ours over theirs.
pub fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(o), Some(t)) if t > 0.0 => format!("{:.2}", o / t),
        _ => "–".into(),
    }
}

pub fn mb(kib: u64) -> String {
    format!("{:.0} MB", kib as f64 * 1024.0 / 1e6)
}

/// The markdown of one matrix; counts the failed checks.
pub fn render(r: &CaseReport, failed: &mut usize) -> String {
    let c = &r.case;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### {}: {}×{} {} ({:.1} MB stored), {} distinct vectors{}\n",
        c.title,
        c.n,
        c.d,
        dtype_name(c.dtype).to_lowercase(),
        c.stored() as f64 / 1e6,
        r.distinct,
        match &c.dead {
            Some(d) => format!(
                "; dead: {} tokens on {DEAD_VECTORS} vectors ({} black holes)",
                d.len(),
                HOLES.len()
            ),
            None => String::new(),
        }
    );
    let _ = writeln!(s, "{}.\n", c.about);
    let _ = writeln!(
        s,
        "Context: one read pass {}; exact survey (`analyze`, in each row's process) {}; a process that maps the file without reading it and runs every row on 256 rows peaks at {} (the baseline).\n",
        fmt_time(secs(r.read_pass)),
        r.survey.map_or("–".into(), |t| fmt_time(secs(t))),
        mb(r.base_kib)
    );
    let _ = writeln!(s, "| row | CPU path | GPU path | numpy ‖x‖²+‖y‖²−2x·y (float32 BLAS) | CPU ÷ numpy | CPU ÷ read pass | time target (CPU) | met |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|");
    for row in &r.rows {
        let cpu = row.cpu.secs();
        let peer = row.peer.as_ref().map(PeerRun::total);
        let extra = row.cpu.extrapolated() || row.peer.as_ref().is_some_and(PeerRun::extrapolated);
        let (target, met) = match row.kind {
            Kind::Nn => (
                format!("≤ {NN_VS_NUMPY}× numpy"),
                match (cpu, peer) {
                    (Some(o), Some(t)) => {
                        let ok = o <= NN_VS_NUMPY * t;
                        format!(
                            "{}{}",
                            if ok { "yes" } else { "**no**" },
                            if extra { " (extrapolated)" } else { "" }
                        )
                    }
                    _ => "– (no numpy)".into(),
                },
            ),
            Kind::Threshold if c.dead.is_some() && row.full => (
                format!("≤ {THRESHOLD_SECS} s"),
                match cpu {
                    Some(o) if o <= THRESHOLD_SECS => "yes".into(),
                    Some(_) => "**no**".into(),
                    None => "–".into(),
                },
            ),
            Kind::Threshold => ("none (real matrix)".into(), "–".into()),
        };
        let peer_cell = match &row.peer {
            Some(p) => {
                let mut t = p.cell();
                if let Some((off, n)) = p.off {
                    let _ = write!(t, "; {off}/{n} NN distances off > 1%");
                }
                t + &row.peer_note
            }
            None => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {peer_cell} | {} | {} | {target} | {met} |",
            row.name,
            row.cpu.cell(),
            row.gpu.cell(),
            ratio(cpu, peer),
            cpu.map_or("–".into(), |t| format!("{:.0}", t / r.read_pass)),
        );
    }
    let _ = writeln!(
        s,
        "\n| row | peak RSS (CPU path) | peak − baseline (÷ stored) | memory target: ≤ stored × {MEMORY_FACTOR} + {BOOKKEEPING_PER_ROW:.0} B/row | met | NN queries: alone / among candidates / slow | slow ≤ {:.0}% | checks |",
        SLOW_FRACTION * 100.0
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|---|---|");
    for row in &r.rows {
        let bound = row.stored as f64 * MEMORY_FACTOR + BOOKKEEPING_PER_ROW * row.n as f64;
        let (peak, frac, met) = match &row.cpu_run {
            Some(run) if run.out.is_ok() => {
                let used = run.peak_kib.saturating_sub(r.base_kib) as f64 * 1024.0;
                (
                    mb(run.peak_kib),
                    format!(
                        "{} ({:.2})",
                        mb((used / 1024.0) as u64),
                        used / row.stored as f64
                    ),
                    if used <= bound { "yes" } else { "**no**" }.to_string(),
                )
            }
            _ => ("–".into(), "–".into(), "– (not run)".into()),
        };
        let (paths, slow_met) = match row.cpu_run.as_ref().and_then(ChildRun::paths) {
            Some(p) if row.kind == Kind::Nn => (
                format!(
                    "{} / {} / {} of {} ({:.2}% slow)",
                    p.alone,
                    p.among_candidates,
                    p.slow,
                    p.queries,
                    100.0 * p.slow_fraction()
                ),
                if p.slow_fraction() <= SLOW_FRACTION {
                    "yes"
                } else {
                    "**no**"
                }
                .to_string(),
            ),
            _ if row.kind == Kind::Nn => ("–".into(), "– (not run)".into()),
            _ => ("n/a".into(), "n/a".into()),
        };
        *failed += row.checks.iter().filter(|c| c.starts_with('✗')).count();
        let _ = writeln!(
            s,
            "| {} | {peak} | {frac} | {} | {met} | {paths} | {slow_met} | {} |",
            row.name,
            mb((bound / 1024.0) as u64),
            row.checks.join("; ")
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "\n{n}");
    }
    s
}
