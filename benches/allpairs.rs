//! All-pairs geometry on a Qwen3-4B-like bf16 embedding (151936×2560 by
//! default): exact nearest neighbours of every token and the near-singularity
//! components (`--near-ulp 5`, `--near-rel 1e-2`), on the GPU and the CPU
//! path, with float32 peers (numpy, torch) for the nearest neighbours.
//!
//! The trained tokens are an anisotropic cloud: Gaussian with per-dimension
//! standard deviation (c + 1)^-1/2, each row scaled to a norm of about 1
//! (±10%). The dead structure is Qwen3's: 2,212 tokens on 125 distinct
//! vectors (13 black holes of 814, 704, 306, 228, 11, 10, 6, 5, 4, 4, 3, 3, 2
//! tokens and 112 single tokens), all within 5 bf16 steps per coordinate of
//! one point of norm about 0.3 (so 1–10 steps from each other), at scattered
//! token ids.
//!
//! cargo bench --bench allpairs -- [--shape 151936x2560] [--reps N] [--cpu-only]
//!     [--gpu-only] [--no-peers] [--peers numpy-mm,numpy-direct,torch-mm,torch-cdist]
//!     [--data DIR] [--slices 32768,16384] [--budget SECS] [--peer-queries N]
//!     [--direct-queries N]
//!
//! Each row times `analyze_pairs` alone (the exact survey `analyze` that
//! provides its groups and norms is timed apart, as context): the median of
//! `--reps` runs after a warm-up run when the first run takes under 2 s,
//! else that one run. The exact nearest neighbours of all tokens are also
//! timed on slices of the matrix (all dead rows plus the first trained rows),
//! and skipped at full size when the largest slice's time, scaled by the
//! square of the number of distinct vectors, exceeds `--budget` (600 s).
//!
//! The peers search the nearest neighbour of each query among all rows of
//! another vector in float32, for the queries "all dead tokens + a sample of
//! `--peer-queries` trained tokens" (numpy's direct differences for an evenly
//! spaced `--direct-queries` of them); the table gives the measured time and
//! its extrapolation to all tokens, and how many dead tokens' distances are
//! off by more than 1% from the exact ones (which this bench computes first).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::{Engine, VectorSet};
use singularity_gpu::progress::Progress;
use singularity_gpu::run::pairs::exact_nearest;
use singularity_gpu::survey::near::Near;
use singularity_gpu::survey::nearest::Distinct;
use singularity_gpu::{analyze, Analysis, Dtype, GpuOptions, GroupOptions, Matrix};
use singularity_gpu::{analyze_pairs, NearThreshold, PairOptions, PairsAnalysis};

use common::{fmt_time, mix, normal, read_pass, scatter, time, write_bf16};

/// Tokens per black hole of the dead structure, largest first.
const HOLES: [usize; 13] = [814, 704, 306, 228, 11, 10, 6, 5, 4, 4, 3, 3, 2];
/// Dead tokens alone on their vector.
const SINGLES: usize = 112;
const DEAD_VECTORS: usize = HOLES.len() + SINGLES;
/// The dead vectors lie within this many bf16 steps of the dead point, per coordinate.
const MAX_OFFSET: u64 = 5;
/// Norm of the dead point.
const DEAD_NORM: f32 = 0.3;
/// A first run longer than this is the row's only run.
const SINGLE_RUN_ABOVE: Duration = Duration::from_secs(2);
/// Bumped whenever the generated data change (the file is reused by name).
const DATA_VERSION: u32 = 1;

struct Args {
    n: usize,
    d: usize,
    reps: usize,
    gpu: bool,
    cpu: bool,
    peers: Vec<String>,
    data: PathBuf,
    slices: Vec<usize>,
    budget: Duration,
    peer_queries: usize,
    direct_queries: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        n: 151936,
        d: 2560,
        reps: 5,
        gpu: true,
        cpu: true,
        peers: ["numpy-mm", "numpy-direct", "torch-mm", "torch-cdist"]
            .map(String::from)
            .to_vec(),
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data"),
        slices: vec![16384, 32768],
        budget: Duration::from_secs(600),
        peer_queries: 2048,
        direct_queries: 64,
    };
    let mut it = std::env::args().skip(1);
    let num = |s: Option<String>| s.and_then(|s| s.parse::<usize>().ok());
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--shape" => {
                if let Some((n, d)) = it.next().as_deref().and_then(|s| {
                    let (n, d) = s.split_once('x')?;
                    Some((n.parse().ok()?, d.parse().ok()?))
                }) {
                    (a.n, a.d) = (n, d);
                }
            }
            "--reps" => a.reps = num(it.next()).unwrap_or(5).max(1),
            "--cpu-only" => a.gpu = false,
            "--gpu-only" => a.cpu = false,
            "--no-peers" => a.peers.clear(),
            "--peers" => {
                a.peers = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--data" => a.data = PathBuf::from(it.next().unwrap_or_default()),
            "--slices" => {
                a.slices = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect();
                a.slices.sort_unstable();
            }
            "--budget" => a.budget = Duration::from_secs(num(it.next()).unwrap_or(600) as u64),
            "--peer-queries" => a.peer_queries = num(it.next()).unwrap_or(2048),
            "--direct-queries" => a.direct_queries = num(it.next()).unwrap_or(64),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// Which dead vector each row holds, if any: vectors 0–12 are the black
/// holes (largest first), 13–124 the single tokens; ids scattered.
fn dead_assignment(n: usize) -> Vec<Option<u8>> {
    assert!(
        n >= 4 * (HOLES.iter().sum::<usize>() + SINGLES),
        "{n} rows: too few for the dead structure"
    );
    let sizes = HOLES.iter().copied().chain(std::iter::repeat_n(1, SINGLES));
    scatter(n, sizes, 0xdead_0000)
}

/// The bf16 bits of the dead vectors. Vector 0 is the dead point, a random
/// vector of norm [`DEAD_NORM`] rounded to bf16; every other vector moves
/// about 40% of its coordinates by 1 to [`MAX_OFFSET`] steps up or down
/// (adding to the bits of a normal bf16 value moves it by that many steps).
/// The moves are random, so the 125 vectors are distinct (asserted).
fn dead_vectors(d: usize) -> Vec<Vec<u16>> {
    let raw: Vec<f32> = (0..d)
        .map(|c| normal(mix(0xb1ac_0000 ^ c as u64)))
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    let base: Vec<u16> = raw
        .iter()
        .map(|x| {
            let b = half::bf16::from_f32(x * DEAD_NORM / norm).to_bits();
            // Keep every coordinate a normal number well away from zero, so
            // that moving its bits by ±5 stays on the same side of zero.
            if b & 0x7f80 == 0 {
                half::bf16::from_f32(1e-4).to_bits()
            } else {
                b
            }
        })
        .collect();
    let vectors: Vec<Vec<u16>> = (0..DEAD_VECTORS as u64)
        .map(|v| {
            let mut row = base.clone();
            if v > 0 {
                for (c, x) in row.iter_mut().enumerate() {
                    let r = mix((v << 32) ^ c as u64 ^ 0x0ff5_e700_0000_0000);
                    if r % 10 < 4 {
                        let steps = 1 + ((r >> 8) % MAX_OFFSET) as u16;
                        *x = if (r >> 16) & 1 == 0 {
                            *x + steps
                        } else {
                            *x - steps
                        };
                    }
                }
            }
            row
        })
        .collect();
    let mut sorted = vectors.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), DEAD_VECTORS, "the dead vectors are distinct");
    vectors
}

/// One trained token: N(0, diag((c + 1)^-1)) scaled to a norm of 1 ± 10%.
fn trained_row(r: usize, out: &mut [u16]) {
    let mut x: Vec<f32> = (0..out.len())
        .map(|c| normal(mix(((r as u64) << 24) ^ c as u64)) / ((c + 1) as f32).sqrt())
        .collect();
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    let target = 1.0 + 0.1 * normal(mix(0x9042_0000_0000 ^ r as u64));
    for (o, v) in out.iter_mut().zip(&mut x) {
        *o = half::bf16::from_f32(*v * target / norm).to_bits();
    }
}

/// Writes the matrix (unless already there); returns the data offset and
/// each row's dead vector.
fn generate(path: &Path, n: usize, d: usize) -> std::io::Result<(u64, Vec<Option<u8>>)> {
    let dead = dead_vectors(d);
    let who = dead_assignment(n);
    let offset = write_bf16(path, n, d, |r, out| match who[r] {
        Some(v) => out.copy_from_slice(&dead[v as usize]),
        None => trained_row(r, out),
    })?;
    Ok((offset, who))
}

/// A row's time: a measurement (median, and how many runs), or why not.
#[derive(Clone)]
enum Timed {
    Ran(Duration, usize),
    Skipped(String),
}

impl Timed {
    fn cell(&self) -> String {
        match self {
            Timed::Ran(t, 1) => format!("{} (1 run)", fmt_time(*t)),
            Timed::Ran(t, _) => fmt_time(*t),
            Timed::Skipped(why) => why.clone(),
        }
    }
    fn secs(&self) -> Option<f64> {
        match self {
            Timed::Ran(t, _) => Some(t.as_secs_f64()),
            Timed::Skipped(_) => None,
        }
    }
}

/// The median of `reps` runs after a warm-up when the first run is short,
/// else the first run alone.
fn time_long<T>(reps: usize, mut f: impl FnMut() -> T) -> (Timed, T) {
    let t = Instant::now();
    let first = f();
    let once = t.elapsed();
    if once > SINGLE_RUN_ABOVE || reps <= 1 {
        return (Timed::Ran(once, 1), first);
    }
    let (t, last) = time(reps, f);
    (Timed::Ran(t, reps), last)
}

struct Engines {
    gpu: Option<GpuEngine>,
    cpu: bool,
}

impl Engines {
    /// The engines to run, GPU first, with their column names.
    fn each(&self) -> Vec<(&'static str, &dyn Engine)> {
        let mut v: Vec<(&'static str, &dyn Engine)> = Vec::new();
        if let Some(g) = &self.gpu {
            v.push(("GPU", g));
        }
        if self.cpu {
            v.push(("CPU", &CpuEngine));
        }
        v
    }
}

/// One table row: a time per engine and what was found.
struct Row {
    name: String,
    gpu: Option<Timed>,
    cpu: Option<Timed>,
    found: String,
}

fn set_time(row: &mut Row, engine: &str, t: Timed) {
    if engine == "GPU" {
        row.gpu = Some(t);
    } else {
        row.cpu = Some(t);
    }
}

/// The exact survey (context for the pair rows, which take its groups and
/// norms); asserts that it found the planted black holes.
fn survey(engine: &dyn Engine, m: &Matrix, reps: usize) -> (Duration, Analysis) {
    let (t, a) = time(reps, || {
        analyze(engine, m, GroupOptions::default(), &Progress::hidden()).expect("survey")
    });
    let sizes: Vec<usize> = a.grouping.groups.iter().map(|g| g.ids.len()).collect();
    if m.rows > 100_000 {
        assert_eq!(sizes, HOLES, "the survey found the planted black holes");
    }
    (t, a)
}

fn pairs(engine: &dyn Engine, m: &Matrix, a: &Analysis, opts: PairOptions) -> PairsAnalysis {
    analyze_pairs(engine, m, &a.grouping.groups, opts, false).expect("all-pairs geometry")
}

/// Panics unless the GPU and CPU near searches joined the same components;
/// says how their thresholds compare (`--near-rel` scales by the median of
/// each engine's own row norms).
fn same_near(g: Option<&Near>, c: Option<&Near>) -> String {
    let (Some(g), Some(c)) = (g, c) else {
        panic!("a near search returned nothing");
    };
    assert_eq!(g.pairs, c.pairs, "GPU and CPU joined as many pairs");
    assert_eq!(g.components.len(), c.components.len(), "as many components");
    for (i, (a, b)) in g.components.iter().zip(&c.components).enumerate() {
        assert!(
            a == b,
            "component {i} differs: GPU {} tokens, CPU {} tokens",
            a.token_ids.len(),
            b.token_ids.len()
        );
    }
    if g.threshold == c.threshold {
        "identical components and threshold".into()
    } else {
        format!(
            "identical components; thresholds differ: GPU {:e}, CPU {:e} (relative {:.1e})",
            g.threshold,
            c.threshold,
            (g.threshold - c.threshold).abs() / c.threshold
        )
    }
}

/// Panics unless the GPU and CPU nearest neighbours are the same, naming
/// the first token where they differ.
fn same_nearest(g: &PairsAnalysis, c: &PairsAnalysis, what: &str) {
    let (Some(g), Some(c)) = (&g.nearest, &c.nearest) else {
        panic!("{what}: no nearest neighbours");
    };
    let diff = (0..g.ids.len()).find(|&t| g.ids[t] != c.ids[t] || g.distances[t] != c.distances[t]);
    if let Some(t) = diff {
        panic!(
            "{what}: token {t}: GPU {:?} at {:?}, CPU {:?} at {:?}",
            g.ids[t], g.distances[t], c.ids[t], c.distances[t]
        );
    }
    assert!(
        g == c,
        "{what}: the same neighbours but different summaries"
    );
}

/// What a near search found about the dead tokens; panics unless its
/// components hold all of them.
fn describe_near(near: &Near, dead: &[usize]) -> String {
    let holding: Vec<_> = near
        .components
        .iter()
        .filter(|c| dead.iter().any(|t| c.token_ids.binary_search(t).is_ok()))
        .collect();
    let mut inside: Vec<usize> = holding
        .iter()
        .flat_map(|c| c.token_ids.iter().copied())
        .collect();
    inside.sort_unstable();
    let missing = dead
        .iter()
        .filter(|t| inside.binary_search(t).is_err())
        .count();
    assert_eq!(
        missing,
        0,
        "the near components hold all {} dead tokens",
        dead.len()
    );
    let mut s = format!(
        "{} pairs, {} components; dead tokens in {}",
        near.pairs,
        near.components.len(),
        holding.len()
    );
    for c in &holding {
        let _ = write!(
            s,
            ": {} tokens on {} vectors ({} black holes), diameter {} steps / {:.2e} L2, nearest outside at {}",
            c.token_ids.len(),
            c.distinct_vectors,
            c.black_holes,
            c.diameter_steps.map_or("–".into(), |x| x.to_string()),
            c.diameter_l2.unwrap_or(f64::NAN),
            c.nearest_outside
                .as_ref()
                .map_or("–".into(), |o| format!("{:.3}", o.distance)),
        );
    }
    let _ = write!(
        s,
        "; = the planted set: {}",
        if inside == dead { "yes" } else { "no" }
    );
    s
}

/// What the nearest neighbours show of the dead tokens (the gap below which they sit).
fn describe_nearest(p: &PairsAnalysis, dead: &[usize]) -> String {
    let Some(nn) = &p.nearest else {
        return String::new();
    };
    let med = nn
        .quantiles
        .iter()
        .find(|q| q.q == 0.5)
        .map_or(f64::NAN, |q| q.distance);
    match &nn.gap {
        Some(g) => format!(
            "median NN {med:.3}; gap {:.2e}–{:.2e}: {} tokens on {} vectors ({} black holes) below, = the dead tokens: {}",
            g.lo,
            g.hi,
            g.tokens.len(),
            g.distinct_vectors,
            g.black_holes,
            if g.tokens == dead { "yes" } else { "no" }
        ),
        None => format!("median NN {med:.3}; no gap"),
    }
}

/// All dead rows and the first trained rows, `size` in all, in id order.
fn slice_rows(who: &[Option<u8>], size: usize) -> Vec<usize> {
    let dead = who.iter().filter(|w| w.is_some()).count();
    let mut trained = 0;
    (0..who.len())
        .filter(|&r| {
            who[r].is_some() || {
                trained += 1;
                trained <= size - dead
            }
        })
        .collect()
}

/// The peers' queries: every dead token, then a sample of trained ones.
fn query_tokens(who: &[Option<u8>], sample: usize) -> Vec<usize> {
    let mut q: Vec<usize> = (0..who.len()).filter(|&r| who[r].is_some()).collect();
    let mut trained: Vec<usize> = Vec::new();
    let mut k = 0u64;
    let available = who.len() - q.len();
    while trained.len() < sample.min(available) {
        let r = (mix(0x5a3b_1e00_0000 ^ k) % who.len() as u64) as usize;
        k += 1;
        if who[r].is_none() && !trained.contains(&r) {
            trained.push(r);
        }
    }
    trained.sort_unstable();
    q.extend(trained);
    q
}

struct PeerResult {
    peer: String,
    prep: f64,
    compute: f64,
    queries: usize,
    dead: usize,
    dead_off: usize,
    dead_other: usize,
    trained: usize,
    trained_off: usize,
}

fn run_peer(
    peer: &str,
    file: &Path,
    a: &Args,
    offset: u64,
    labels: &Path,
    queries: &Path,
) -> Option<PeerResult> {
    let script = common::script("bench_allpairs_peer.py")?;
    let max_q = if peer == "numpy-direct" {
        a.direct_queries
    } else {
        0
    };
    eprintln!("peer {peer} …");
    let out = Command::new("python3")
        .arg(script)
        .arg(peer)
        .arg(file)
        .args([a.n, a.d, offset as usize].map(|x| x.to_string()))
        .arg(labels)
        .arg(queries)
        .arg(max_q.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "  ({peer} peer unavailable: exit {:?}{})",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .map_or(String::new(), |l| format!(": {l}"))
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let u = |k: &str| v[k].as_u64().unwrap_or(0) as usize;
    Some(PeerResult {
        peer: peer.to_string(),
        prep: v["prep_s"].as_f64()?,
        compute: v["compute_s"].as_f64()?,
        queries: u("queries"),
        dead: u("dead"),
        dead_off: u("dead_off"),
        dead_other: u("dead_other"),
        trained: u("trained"),
        trained_off: u("trained_off"),
    })
}

fn peer_label(peer: &str) -> &'static str {
    match peer {
        "numpy-mm" => "numpy, ‖x‖²+‖y‖²−2x·y (BLAS), CPU",
        "numpy-direct" => "numpy, direct differences in blocks, CPU",
        "torch-mm" => "torch, ‖x‖²+‖y‖²−2x·y, CUDA (incl. host→device)",
        "torch-cdist" => "torch.cdist(donot_use_mm_for_euclid_dist), CUDA (incl. host→device)",
        _ => "?",
    }
}

fn main() {
    let args = parse_args();
    let (n, d) = (args.n, args.d);
    println!(
        "CPU: {}; rayon threads: {}",
        common::cpu_model(),
        rayon::current_num_threads()
    );
    let gpu = if args.gpu {
        let t = Instant::now();
        match GpuEngine::new(true, GpuOptions::default()) {
            Ok(g) => {
                let dev = g.device();
                println!(
                    "GPU: {} ({}); adapter + device + pipelines in {:.0} ms",
                    dev.adapter,
                    dev.backend,
                    t.elapsed().as_secs_f64() * 1e3
                );
                Some(g)
            }
            Err(e) => {
                println!("GPU: none ({e})");
                None
            }
        }
    } else {
        println!("GPU: not used (--cpu-only)");
        None
    };
    let engines = Engines { gpu, cpu: args.cpu };
    println!(
        "reps: median of {} after a warm-up when a run takes under {} s, else 1 run; budget per estimated row: {} s",
        args.reps,
        SINGLE_RUN_ABOVE.as_secs(),
        args.budget.as_secs()
    );

    let path = args
        .data
        .join(format!("allpairs-v{DATA_VERSION}_bf16_{n}x{d}.safetensors"));
    let t = Instant::now();
    let (offset, who) = generate(&path, n, d).expect("write benchmark matrix");
    eprintln!(
        "generated {} in {:.1} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    let dead: Vec<usize> = (0..n).filter(|&r| who[r].is_some()).collect();
    let file = std::fs::File::open(&path).expect("open");
    // SAFETY: read-only map of a file this process wrote.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap");
    let m = Matrix::new(Dtype::BF16, n, d, &map[offset as usize..]).expect("matrix");
    let (floor, _) = time(args.reps, || read_pass(m.bytes));

    // The exact survey per engine: the groups and norms the pair rows start from.
    let mut surveys: Vec<(&str, &dyn Engine, Duration, Analysis)> = Vec::new();
    for (name, e) in engines.each() {
        let (t, a) = survey(e, &m, args.reps);
        eprintln!("exact survey ({name}): {}", fmt_time(t));
        surveys.push((name, e, t, a));
    }
    if surveys.len() == 2 {
        assert_eq!(
            surveys[0].3.grouping, surveys[1].3.grouping,
            "GPU and CPU groups agree"
        );
    }
    let Some(first) = surveys.first() else {
        println!("nothing to run");
        return;
    };
    let distinct = Distinct::new(n, &first.3.grouping.groups, |_| true);
    let k = distinct.len();

    let mut rows: Vec<Row> = Vec::new();
    let mut agree: Vec<String> = Vec::new();

    // Near-singularities at full size.
    for (label, th) in [
        ("near-ulp 5", NearThreshold::Ulp(5)),
        ("near-rel 1e-2", NearThreshold::Rel(0.01)),
    ] {
        let mut row = Row {
            name: format!("{label}, all {n} tokens"),
            gpu: None,
            cpu: None,
            found: String::new(),
        };
        let mut results: Vec<PairsAnalysis> = Vec::new();
        for (name, e, _, a) in &surveys {
            let opts = PairOptions {
                nearest: false,
                near: Some(th),
            };
            let (t, p) = time_long(args.reps, || pairs(*e, &m, a, opts));
            eprintln!("{label} ({name}): {}", t.cell());
            set_time(&mut row, name, t);
            results.push(p);
        }
        if let [g, c] = &results[..] {
            agree.push(format!(
                "{label}: {}",
                same_near(g.near.as_ref(), c.near.as_ref())
            ));
        }
        if let Some(near) = results.first().and_then(|p| p.near.as_ref()) {
            row.found = describe_near(near, &dead);
            if let NearThreshold::Rel(_) = th {
                row.name = format!("{label} (r = {:.3e}), all {n} tokens", near.threshold);
            }
        }
        rows.push(row);
    }

    // Exact nearest neighbours of all tokens on slices, then at full size.
    let nn = PairOptions {
        nearest: true,
        near: None,
    };
    let mut largest: Vec<(&str, usize, f64)> = Vec::new(); // engine, distinct vectors, seconds
    let mut cpu_slices: Vec<(usize, usize, f64)> = Vec::new(); // rows, vectors, seconds
    for &size in args.slices.iter().filter(|&&s| s < n) {
        let ids = slice_rows(&who, size);
        let bytes: Vec<u8> = ids.iter().flat_map(|&r| m.row(r).iter().copied()).collect();
        let sm = Matrix::new(Dtype::BF16, size, d, &bytes).expect("slice");
        let slice_dead: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, &r)| who[r].is_some())
            .map(|(i, _)| i)
            .collect();
        let mut row = Row {
            name: String::new(),
            gpu: None,
            cpu: None,
            found: String::new(),
        };
        let mut results: Vec<PairsAnalysis> = Vec::new();
        let mut ks = 0;
        for (name, e) in engines.each() {
            let a = analyze(e, &sm, GroupOptions::default(), &Progress::hidden()).expect("survey");
            ks = Distinct::new(size, &a.grouping.groups, |_| true).len();
            let (t, p) = time_long(args.reps, || pairs(e, &sm, &a, nn));
            eprintln!("exact NN {size} ({name}): {}", t.cell());
            if let Some(s) = t.secs() {
                largest.retain(|l| l.0 != name);
                largest.push((name, ks, s));
                if name == "CPU" {
                    cpu_slices.push((size, ks, s));
                }
            }
            set_time(&mut row, name, t);
            results.push(p);
        }
        row.name =
            format!("exact NN, {size}-row slice ({ks} distinct vectors, dead rows included)");
        if let [g, c] = &results[..] {
            same_nearest(g, c, &format!("NN on {size} rows"));
            agree.push(format!("NN on {size} rows: identical ids and distances"));
        }
        if let Some(p) = results.first() {
            row.found = describe_nearest(p, &slice_dead);
        }
        rows.push(row);
    }
    {
        let mut row = Row {
            name: format!("exact NN, all {n} tokens ({k} distinct vectors)"),
            gpu: None,
            cpu: None,
            found: String::new(),
        };
        let mut results: Vec<PairsAnalysis> = Vec::new();
        for (name, e, _, a) in &surveys {
            let estimate = largest
                .iter()
                .find(|l| l.0 == *name)
                .map(|&(_, ks, s)| s * (k as f64 / ks as f64).powi(2));
            if let Some(est) = estimate.filter(|&est| est > args.budget.as_secs_f64()) {
                let why = format!(
                    "skipped: est. {:.0} s (largest slice × (vectors ratio)²)",
                    est
                );
                eprintln!("exact NN all ({name}): {why}");
                set_time(&mut row, name, Timed::Skipped(why));
                continue;
            }
            let (t, p) = time_long(args.reps, || pairs(*e, &m, a, nn));
            eprintln!("exact NN all ({name}): {}", t.cell());
            set_time(&mut row, name, t);
            results.push(p);
        }
        if let [g, c] = &results[..] {
            same_nearest(g, c, "NN on all rows");
            agree.push("NN on all rows: identical ids and distances".into());
        }
        if let Some(p) = results.first() {
            row.found = describe_nearest(p, &dead);
        }
        rows.push(row);
    }

    // The peers' queries, answered exactly (the reference for their errors).
    let queries = query_tokens(&who, args.peer_queries);
    let mut qv: Vec<u32> = queries
        .iter()
        .filter_map(|&t| distinct.vector_of[t])
        .collect();
    qv.sort_unstable();
    qv.dedup();
    let labels: Vec<u32> = (0..k as u32).collect();
    let set = VectorSet {
        rows: &distinct.rows,
        labels: &labels,
    };
    let mut exact: Option<Vec<Option<(u32, f64)>>> = None;
    let mut ours_queries = Row {
        name: format!(
            "exact NN of the peers' {} query tokens ({} dead + {} trained; {} distinct vectors)",
            queries.len(),
            dead.len(),
            queries.len() - dead.len(),
            qv.len()
        ),
        gpu: None,
        cpu: None,
        found: String::new(),
    };
    for (name, e, _, a) in &surveys {
        let vnorms: Vec<f64> = distinct.rows.iter().map(|&r| a.norms[r]).collect();
        let (t, r) = time_long(args.reps, || {
            exact_nearest(*e, &m, set, &qv, &vnorms, &Progress::hidden())
                .expect("exact nearest")
                .0
        });
        eprintln!("exact NN of the peer queries ({name}): {}", t.cell());
        set_time(&mut ours_queries, name, t);
        if let Some(prev) = &exact {
            let diff = prev.iter().zip(&r).position(|(a, b)| a != b);
            assert!(
                diff.is_none(),
                "NN of the peer queries: GPU and CPU differ at query vector {:?}: {:?} vs {:?}",
                diff.map(|i| qv[i]),
                diff.map(|i| prev[i]),
                diff.map(|i| r[i])
            );
            agree.push("NN of the peer queries: identical".into());
        }
        exact = Some(r);
    }
    let exact = exact.expect("one engine ran");
    let answer = |t: usize| -> Option<(usize, f64)> {
        let v = distinct.vector_of[t]?;
        let i = qv.binary_search(&v).ok()?;
        exact[i].map(|(nv, dist)| (distinct.rows[nv as usize], dist))
    };
    let dead_nn: Vec<f64> = dead
        .iter()
        .filter_map(|&t| answer(t).map(|a| a.1))
        .collect();
    ours_queries.found = format!(
        "dead tokens' NN distance {:.2e}–{:.2e}",
        dead_nn.iter().copied().fold(f64::INFINITY, f64::min),
        dead_nn.iter().copied().fold(0.0, f64::max)
    );
    rows.push(ours_queries);
    let ours_q = rows.last().map(|r| (r.gpu.clone(), r.cpu.clone()));

    // Peers.
    let mut peers: Vec<PeerResult> = Vec::new();
    if !args.peers.is_empty() {
        let labels_path = path.with_extension("labels.i32");
        let lab: Vec<u8> = distinct
            .vector_of
            .iter()
            .flat_map(|v| (v.map_or(-1, |v| v as i32)).to_le_bytes())
            .collect();
        std::fs::write(&labels_path, lab).expect("write labels");
        let queries_path = path.with_extension("queries.txt");
        let mut text = String::new();
        for &t in &queries {
            let (nn, dist) = answer(t).expect("every query has a neighbour");
            let _ = writeln!(text, "{t} {} {nn} {dist:.17e}", who[t].is_some() as u8);
        }
        std::fs::write(&queries_path, text).expect("write queries");
        for p in &args.peers {
            if let Some(r) = run_peer(p, &path, &args, offset, &labels_path, &queries_path) {
                peers.push(r);
            }
        }
    }

    // The table.
    let gb = (n * d * 2) as f64 / 1e9;
    println!(
        "\n### {n}×{d} bf16 ({gb:.2} GB), {k} distinct vectors; dead: {} tokens on {DEAD_VECTORS} vectors ({} black holes)\n",
        dead.len(),
        HOLES.len()
    );
    print!("Context: one read pass {}", fmt_time(floor));
    for (name, _, t, _) in &surveys {
        print!("; exact survey (`analyze`, {name}) {}", fmt_time(*t));
    }
    println!(". Rows time `analyze_pairs` (or `exact_nearest`) alone.\n");
    println!("| row | GPU path | CPU path | GPU vs CPU | × read pass (best) | found |");
    println!("|---|---:|---:|---:|---:|---|");
    for r in &rows {
        let cell = |t: &Option<Timed>| t.as_ref().map_or("not run".into(), Timed::cell);
        let g = r.gpu.as_ref().and_then(Timed::secs);
        let c = r.cpu.as_ref().and_then(Timed::secs);
        let ratio = match (g, c) {
            (Some(g), Some(c)) => format!("{:.1}×", c / g),
            _ => "–".into(),
        };
        let best = [g, c].into_iter().flatten().fold(f64::INFINITY, f64::min);
        let floor_ratio = if best.is_finite() {
            format!("{:.0}", best / floor.as_secs_f64())
        } else {
            "–".into()
        };
        println!(
            "| {} | {} | {} | {ratio} | {floor_ratio} | {} |",
            r.name,
            cell(&r.gpu),
            cell(&r.cpu),
            r.found
        );
    }
    for w in cpu_slices.windows(2) {
        let ((r0, k0, t0), (r1, k1, t1)) = (w[0], w[1]);
        println!(
            "\nCPU exact NN scaling: {r0} → {r1} rows took {:.2}× the time; (vectors ratio)² = {:.2}.",
            t1 / t0,
            (k1 as f64 / k0 as f64).powi(2)
        );
    }
    for line in &agree {
        println!("- GPU = CPU: {line}");
    }

    if !peers.is_empty() {
        let (g, c) = ours_q.unwrap_or((None, None));
        let ours: Vec<(&str, f64)> = [("GPU", g), ("CPU", c)]
            .into_iter()
            .filter_map(|(name, t)| Some((name, t?.secs()?)))
            .collect();
        let per_ours = |secs: f64| secs / queries.len() as f64;
        println!(
            "\nPeers, float32, nearest neighbour of each query token among all {n} rows of another vector. \
             Measured on the queries shown; **extrapolated** to all {n} tokens as prep + compute × {n} / queries. \
             \"vs ours\": the peer's time per query over ours on the same {} query tokens (ours computes each distinct vector once).\n",
            queries.len()
        );
        println!("| peer | queries | prep | compute (measured) | extrapolated to all tokens | vs ours per query | dead tokens: distance off > 1% | dead: NN on another vector | trained: distance off > 1% |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for p in &peers {
            let extrapolated = p.prep + p.compute * n as f64 / p.queries.max(1) as f64;
            let per_query = p.compute / p.queries.max(1) as f64;
            let vs: Vec<String> = ours
                .iter()
                .map(|(name, s)| {
                    let r = per_query / per_ours(*s);
                    if r >= 1.0 {
                        format!("{r:.1}× slower than {name}")
                    } else {
                        format!("{:.1}× faster than {name}", 1.0 / r)
                    }
                })
                .collect();
            let frac = |a: usize, b: usize| {
                if b == 0 {
                    "–".into()
                } else {
                    format!("{a}/{b} ({:.1}%)", 100.0 * a as f64 / b as f64)
                }
            };
            println!(
                "| {} | {} | {} | {} | {} (extrapolated) | {} | {} | {} | {} |",
                peer_label(&p.peer),
                p.queries,
                fmt_time(Duration::from_secs_f64(p.prep)),
                fmt_time(Duration::from_secs_f64(p.compute)),
                fmt_time(Duration::from_secs_f64(extrapolated)),
                vs.join(", "),
                frac(p.dead_off, p.dead),
                frac(p.dead_other, p.dead),
                frac(p.trained_off, p.trained),
            );
        }
    }
}
