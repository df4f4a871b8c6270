//! One row in a process of its own (`--child`): load, exact survey, the
//! row, one JSON line with its time, results and peak RSS.

use std::time::Instant;

use rayon::prelude::*;
use serde_json::{json, Value};

use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::{Engine, VectorSet};
use singularity_gpu::progress::Progress;
use singularity_gpu::run::pairs::exact_nearest;
use singularity_gpu::survey::near::Near;
use singularity_gpu::survey::nearest::{Distinct, Nearest};
use singularity_gpu::{analyze, load, GpuOptions, GroupOptions, LoadOptions};
use singularity_gpu::{analyze_pairs, NearThreshold, NearestPaths, PairOptions};

use crate::common::{mix, KEY};
use crate::{ChildArgs, SINGLE_RUN_ABOVE};

/// A row run in this process: load, exact survey, one `analyze_pairs` (or
/// the sampled nearest neighbours); one JSON line on stdout.
pub fn child_main(c: ChildArgs) {
    let opts = LoadOptions {
        key: Some(KEY.into()),
        ..Default::default()
    };
    let loaded = load::open(&c.file, &opts).unwrap_or_else(|e| {
        eprintln!("child: {e}");
        std::process::exit(2)
    });
    let m = loaded.matrix();
    if c.row == "base" {
        // The process's own footprint: the file mapped but not read, and
        // the code of every row run once on a copy of the first 256 rows
        // (threads, allocator, the engine's tables).
        let rows = m.rows.min(256);
        let bytes = m.bytes[..rows * m.row_bytes()].to_vec();
        let small = singularity_gpu::Matrix::new(m.dtype, rows, m.cols, &bytes).expect("rows");
        let a = analyze(
            &CpuEngine,
            &small,
            GroupOptions::default(),
            &Progress::hidden(),
        )
        .expect("survey");
        let opts = PairOptions {
            nearest: true,
            near: Some(NearThreshold::Rel(1e-2)),
        };
        analyze_pairs(&CpuEngine, &small, &a.grouping.groups, opts, false).expect("pairs");
        emit(json!({"row": "base"}));
        return;
    }
    let gpu;
    let engine: &dyn Engine = if c.gpu {
        gpu = GpuEngine::new(c.software_gpu, GpuOptions::default()).unwrap_or_else(|e| {
            eprintln!("child: no GPU: {e}");
            std::process::exit(3)
        });
        &gpu
    } else {
        &CpuEngine
    };
    let t = Instant::now();
    let a = analyze(engine, &m, GroupOptions::default(), &Progress::hidden()).expect("survey");
    let survey_s = t.elapsed().as_secs_f64();
    let groups = &a.grouping.groups;
    let mut out = json!({
        "row": c.row,
        "device": engine.device().adapter,
        "survey_s": survey_s,
        "black_holes": groups.len(),
    });
    if let Some(n) = c.row.strip_prefix("nn-sample:") {
        let sample: usize = n.parse().expect("nn-sample size");
        let t = Instant::now();
        let (q, tokens, paths) = sampled_percentile(engine, &m, groups, sample);
        out["time_s"] = json!(t.elapsed().as_secs_f64());
        out["runs"] = json!(1);
        out["q01"] = json!(q);
        out["sampled"] = json!(tokens);
        out["paths"] = paths_json(paths);
        emit(out);
        return;
    }
    let opts = match c.row.split_once(':') {
        None if c.row == "nn" => PairOptions {
            nearest: true,
            near: None,
        },
        Some((kind, v)) => {
            let th = match kind {
                "near-ulp" => NearThreshold::Ulp(v.parse().expect("K")),
                "near-rel" => NearThreshold::Rel(v.parse().expect("F")),
                "near-l2" => NearThreshold::L2(v.parse().expect("R")),
                _ => panic!("unknown row {}", c.row),
            };
            PairOptions {
                nearest: false,
                near: Some(th),
            }
        }
        None => panic!("unknown row {}", c.row),
    };
    let run = || analyze_pairs(engine, &m, groups, opts, false).expect("all-pairs geometry");
    let t = Instant::now();
    let mut p = run();
    let first = t.elapsed();
    let mut times = vec![first];
    if first < SINGLE_RUN_ABOVE && c.reps > 1 {
        times.clear();
        for _ in 0..c.reps {
            let t = Instant::now();
            p = run();
            times.push(t.elapsed());
        }
    }
    out["runs"] = json!(times.len());
    times.sort();
    out["time_s"] = json!(times[times.len() / 2].as_secs_f64());
    out["paths"] = paths_json(p.nearest_paths);
    if let Some(nn) = &p.nearest {
        out["digest"] = json!(format!("{:016x}", nearest_digest(nn)));
        out["distinct"] = json!(nn.with_neighbour);
        let q = |x: f64| nn.quantiles.iter().find(|q| q.q == x).map(|q| q.distance);
        out["q01"] = json!(q(0.01));
        out["median"] = json!(q(0.5));
        out["gap"] = match &nn.gap {
            Some(g) => {
                json!({"lo": g.lo, "hi": g.hi, "tokens": g.tokens, "vectors": g.distinct_vectors})
            }
            None => Value::Null,
        };
        if let Some(path) = &c.dump {
            let bytes: Vec<u8> = nn
                .distances
                .iter()
                .flat_map(|d| d.unwrap_or(f64::NAN).to_le_bytes())
                .collect();
            std::fs::write(path, bytes).expect("write the exact distances");
        }
    }
    if let Some(near) = &p.near {
        out["digest"] = json!(format!("{:016x}", near_digest(near)));
        out["threshold"] = json!(near.threshold);
        out["pairs"] = json!(near.pairs);
        out["components"] = json!(near.components.len());
        let mut tokens: Vec<usize> = near
            .components
            .iter()
            .flat_map(|c| c.token_ids.iter().copied())
            .collect();
        tokens.sort_unstable();
        out["tokens"] = json!(tokens);
    }
    emit(out);
}

/// Prints the child's JSON line with its peak RSS: `VmHWM` of
/// /proc/self/status, the high-water mark of this process image alone.
/// (`wait4`'s `ru_maxrss` is no use here: Linux carries the spawning
/// process's own peak into it at `exec`.)
pub fn emit(mut out: Value) {
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        });
    out["vm_hwm_kib"] = json!(hwm);
    println!("{out}");
}

pub fn paths_json(p: NearestPaths) -> Value {
    json!({"queries": p.queries, "alone": p.alone, "among": p.among_candidates, "slow": p.slow})
}

pub fn fold(h: u64, x: u64) -> u64 {
    mix(h ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A digest of every token's nearest neighbour and distance (bits).
pub fn nearest_digest(nn: &Nearest) -> u64 {
    nn.ids.iter().zip(&nn.distances).fold(1, |h, (id, d)| {
        let h = fold(h, id.map_or(u64::MAX, |i| i as u64));
        fold(h, d.map_or(u64::MAX, f64::to_bits))
    })
}

/// A digest of the threshold, the pair count and every component's tokens.
pub fn near_digest(near: &Near) -> u64 {
    let mut h = fold(fold(2, near.threshold.to_bits()), near.pairs as u64);
    for c in &near.components {
        h = fold(h, c.token_ids.len() as u64);
        for &t in &c.token_ids {
            h = fold(h, t as u64);
        }
    }
    h
}

/// numpy's linear percentile of sorted values, `q` in [0, 1].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The 1st percentile of the tokens' exact nearest-neighbour distances,
/// estimated from `sample` tokens drawn uniformly (their exact nearest
/// neighbours among all rows); also the tokens that had one.
pub fn sampled_percentile(
    engine: &dyn Engine,
    m: &singularity_gpu::Matrix,
    groups: &[singularity_gpu::survey::Group],
    sample: usize,
) -> (f64, usize, NearestPaths) {
    let norms: Vec<f64> = (0..m.rows)
        .into_par_iter()
        .map(|r| m.exact_norm(r))
        .collect();
    let dist = Distinct::new(m.rows, groups, |r| norms[r].is_finite());
    let mut tokens: Vec<usize> = if sample >= m.rows {
        (0..m.rows).collect()
    } else {
        let mut chosen = vec![false; m.rows];
        let mut k = 0u64;
        let mut v = Vec::with_capacity(sample);
        while v.len() < sample {
            let r = (mix(0x5a3b_1e00_0000 ^ k) % m.rows as u64) as usize;
            k += 1;
            if !chosen[r] {
                chosen[r] = true;
                v.push(r);
            }
        }
        v
    };
    tokens.sort_unstable();
    let mut qv: Vec<u32> = tokens.iter().filter_map(|&t| dist.vector_of[t]).collect();
    qv.sort_unstable();
    qv.dedup();
    let labels: Vec<u32> = (0..dist.len() as u32).collect();
    let set = VectorSet {
        rows: &dist.rows,
        labels: &labels,
    };
    let vnorms: Vec<f64> = dist.rows.iter().map(|&r| norms[r]).collect();
    let (answers, paths) =
        exact_nearest(engine, m, set, &qv, &vnorms, &Progress::hidden()).expect("exact nearest");
    let mut d: Vec<f64> = tokens
        .iter()
        .filter_map(|&t| {
            let v = dist.vector_of[t]?;
            let i = qv.binary_search(&v).ok()?;
            answers[i].map(|a| a.1)
        })
        .collect();
    d.sort_by(f64::total_cmp);
    (percentile(&d, 0.01), d.len(), paths)
}
