//! A checkpoint series at the scale of the Thimble-9 run
//! (`tests/fixtures/thimble9/metadata.json`): a generated trajectory of
//! 10,001 steps × 3,699 tokens × 64 dims of bf16 bit patterns stored as
//! uint16 (4.7 GB, one safetensors tensor `W`), surveyed with
//! `--trajectory FILE --key W --as bf16` on the CPU path and the GPU path,
//! against one read pass over the same bytes (the floor).
//!
//! cargo bench --bench series -- [--shape 10001x3699x64] [--reps N] [--data DIR] [--gpu] [--no-cpu]
//!
//! The dynamics are planted, deterministic and known: the tokens start on
//! 13 shared vectors (holes of 1,500 … 4 tokens); for the first 2,000 steps
//! one token in four steps leaves its hole (a unique change); every step one
//! hole in eight moves as one by a bf16 step (weight decay crossing a
//! rounding boundary for all its members at once); each token that left
//! moves again one step in twenty. Each row is the median of `--reps` runs
//! in one process after a warm-up run (the file in the page cache), so the
//! ratios compare.

mod common;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bf16_bits, cpu_model, fmt_time, mix, read_pass, time};

use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::load::steps::{SeriesInfo, StepSource};
use singularity_gpu::load::{Bytes, TokenNames};
use singularity_gpu::run::series;
use singularity_gpu::types::StepSelection;
use singularity_gpu::SeriesReport;
use singularity_gpu::{Dtype, GpuOptions, LoadOptions};
use singularity_gpu::{SeriesInput, SeriesOptions};

/// Hole sizes at step 0 (they add up to 3,699, every token in a hole).
const HOLES: [usize; 13] = [1500, 700, 500, 400, 250, 150, 80, 50, 30, 20, 10, 5, 4];

struct Args {
    steps: usize,
    n: usize,
    d: usize,
    reps: usize,
    data: PathBuf,
    gpu: bool,
    cpu: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 10001,
        n: 3699,
        d: 64,
        reps: 3,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data"),
        gpu: false,
        cpu: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--shape" => {
                let s = it.next().unwrap_or_default();
                let v: Vec<usize> = s.split('x').filter_map(|x| x.parse().ok()).collect();
                if let [t, n, d] = v[..] {
                    (a.steps, a.n, a.d) = (t, n, d);
                }
            }
            "--reps" => a.reps = it.next().and_then(|s| s.parse().ok()).unwrap_or(3),
            "--data" => a.data = PathBuf::from(it.next().unwrap_or_default()),
            "--gpu" => a.gpu = true,
            "--no-cpu" => a.cpu = false,
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// Writes the trajectory (unless a file of that size is there) and returns
/// the number of tokens that left their hole.
fn generate(path: &Path, steps: usize, n: usize, d: usize) -> std::io::Result<()> {
    let data_len = steps * n * d * 2;
    let header = format!(
        "{{\"W\":{{\"dtype\":\"U16\",\"shape\":[{steps},{n},{d}],\"data_offsets\":[0,{data_len}]}}}}"
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let total = 8 + header.len() + data_len;
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(total as u64) {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let tmp = path.with_extension("partial");
    let mut f = BufWriter::with_capacity(8 << 20, std::fs::File::create(&tmp)?);
    f.write_all(&(header.len() as u64).to_le_bytes())?;
    f.write_all(&header)?;
    // Hole of each token (scattered over the ids), and the holes' vectors.
    let sizes: Vec<usize> = HOLES.iter().map(|&s| s * n / 3699).collect();
    let mut hole = vec![usize::MAX; n];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| mix(0x5eed ^ i as u64));
    let mut k = 0;
    for (h, &s) in sizes.iter().enumerate() {
        for &i in &order[k..(k + s).min(n)] {
            hole[i] = h;
        }
        k += s;
    }
    let vectors: Vec<Vec<u16>> = (0..HOLES.len() as u64)
        .map(|h| (0..d as u64).map(|c| bf16_bits(mix(h << 32 ^ c))).collect())
        .collect();
    let mut w: Vec<u16> = (0..n)
        .flat_map(|i| match vectors.get(hole[i]) {
            Some(v) => v.clone(),
            None => (0..d as u64)
                .map(|c| bf16_bits(mix(i as u64 ^ c << 40)))
                .collect(),
        })
        .collect();
    let mut left: Vec<usize> = Vec::new();
    let mut bytes = vec![0u8; n * d * 2];
    for t in 0..steps {
        let r = mix(t as u64 ^ 0x7ea5);
        if t > 0 {
            // A hole moves as one: every member changes identically.
            if r.is_multiple_of(8) {
                let h = (r >> 8) as usize % HOLES.len();
                let c = (r >> 16) as usize % d;
                let up = (r >> 24) & 1 == 1;
                for i in (0..n).filter(|&i| hole[i] == h) {
                    let x = &mut w[i * d + c];
                    *x = if up {
                        x.wrapping_add(1)
                    } else {
                        x.wrapping_sub(1)
                    };
                }
            }
            // A token leaves its hole.
            if t <= 2000 && (r >> 32).is_multiple_of(4) {
                let i = (r >> 40) as usize % n;
                if hole[i] != usize::MAX {
                    hole[i] = usize::MAX;
                    let c = (r >> 48) as usize % d;
                    w[i * d + c] = w[i * d + c].wrapping_add(1 + (i % 3) as u16);
                    left.push(i);
                }
            }
            // Tokens that left keep moving now and then.
            for &i in &left {
                let s = mix(((t as u64) << 20) ^ i as u64);
                if s.is_multiple_of(20) {
                    let c = (s >> 8) as usize % d;
                    w[i * d + c] =
                        w[i * d + c].wrapping_add(if s & 1 << 20 != 0 { 1 } else { 0xffff });
                }
            }
        }
        for (b, x) in bytes.chunks_exact_mut(2).zip(&w) {
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&bytes)?;
    }
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn run(engine: &dyn Engine, path: &Path) -> SeriesReport {
    let opts = SeriesOptions {
        load: LoadOptions {
            key: Some("W".into()),
            reinterpret: Some(Dtype::BF16),
            ..Default::default()
        },
        steps: StepSelection::default(),
        ..Default::default()
    };
    let input = SeriesInput::Trajectory(path.to_path_buf());
    let start = Instant::now();
    let mut source = series::open(&input, &opts).expect("open the trajectory");
    series::survey_source(engine, source.as_mut(), "trajectory", false, None, start)
        .expect("survey the trajectory")
}

/// The trajectory's steps straight from the map, with no reader: timing
/// the series through it leaves the engine and the survey.
struct MapSource {
    info: SeriesInfo,
    steps: Vec<u64>,
    map: Arc<memmap2::Mmap>,
    offset: usize,
}

impl StepSource for MapSource {
    fn info(&self) -> &SeriesInfo {
        &self.info
    }
    fn steps(&self) -> &[u64] {
        &self.steps
    }
    fn inputs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    fn tokens(&self) -> Option<&TokenNames> {
        None
    }
    fn read(&mut self, i: usize) -> singularity_gpu::Result<Bytes> {
        let sb = self.info.rows * self.info.cols * 2;
        let start = self.offset + i * sb;
        Ok(Bytes::mapped(self.map.clone(), start..start + sb).expect("inside the map"))
    }
}

fn compute_only(engine: &dyn Engine, map: &Arc<memmap2::Mmap>, a: &Args) -> SeriesReport {
    let offset = 8 + u64::from_le_bytes(map[..8].try_into().unwrap_or([0; 8])) as usize;
    let mut source = MapSource {
        info: SeriesInfo {
            tensor: "W".into(),
            stored_dtype: "U16".into(),
            format: "safetensors",
            dtype: Dtype::BF16,
            rows: a.n,
            cols: a.d,
        },
        steps: (0..a.steps as u64).collect(),
        map: map.clone(),
        offset,
    };
    series::survey_source(
        engine,
        &mut source,
        "trajectory",
        false,
        None,
        Instant::now(),
    )
    .expect("survey the mapped steps")
}

/// The engine alone: every step compared with the one before, in the
/// batches the series driver uses, nothing surveyed.
fn engine_only(engine: &dyn Engine, map: &memmap2::Mmap, a: &Args) -> usize {
    let offset = 8 + u64::from_le_bytes(map[..8].try_into().unwrap_or([0; 8])) as usize;
    let sb = a.n * a.d * 2;
    let step = |t: usize| {
        singularity_gpu::Matrix::new(
            Dtype::BF16,
            a.n,
            a.d,
            &map[offset + t * sb..offset + (t + 1) * sb],
        )
        .expect("step")
    };
    let mut differ = engine.step_differ(Dtype::BF16, a.n, a.d).expect("differ");
    let batch = ((32 << 20) / sb).clamp(1, 64);
    let mut moved = 0;
    let mut t = 0;
    while t < a.steps {
        let k = batch.min(a.steps - t);
        let ms: Vec<_> = (t..t + k).map(step).collect();
        let prev = t.checked_sub(1).map(step);
        for r in differ.push_many(prev.as_ref(), &ms).expect("push") {
            moved += r.changed.map_or(0, |c| c.iter().filter(|&&x| x).count());
        }
        t += k;
    }
    moved
}

fn main() {
    let a = parse_args();
    let (steps, n, d) = (a.steps, a.n, a.d);
    let path = a
        .data
        .join(format!("series-{steps}x{n}x{d}"))
        .join("W.safetensors");
    generate(&path, steps, n, d).expect("write the trajectory");
    let file = std::fs::File::open(&path).expect("open the trajectory");
    // SAFETY: read-only map of a file this process wrote.
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.expect("map the trajectory"));
    let bytes = (steps * n * d * 2) as f64;
    println!(
        "series: {steps} steps × {n} tokens × {d} dims, U16 read as bf16 ({:.2} GB); {}; median of {} runs",
        bytes / 1e9,
        cpu_model(),
        a.reps
    );
    let (floor, _) = time(a.reps, || read_pass(&map[..]));
    println!("\n| path | time | per step | GB/s | × read pass |\n|---|---:|---:|---:|---:|");
    let line = |name: &str, t: Duration| {
        println!(
            "| {name} | {} | {:.1} µs | {:.2} | {:.2}× |",
            fmt_time(t),
            t.as_secs_f64() * 1e6 / steps as f64,
            bytes / t.as_secs_f64() / 1e9,
            t.as_secs_f64() / floor.as_secs_f64()
        )
    };
    line("read pass (floor), the map already faulted in", floor);
    let (fresh, _) = time(a.reps, || {
        let file = std::fs::File::open(&path).expect("open the trajectory");
        // SAFETY: read-only map of a file this process wrote.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("map the trajectory");
        read_pass(&map[..])
    });
    line("read pass, mapped afresh (page faults included)", fresh);

    let mut reference: Option<SeriesReport> = None;
    if a.cpu {
        let (t, _) = time(a.reps, || engine_only(&CpuEngine, &map, &a));
        line("CPU engine only (steps from the map, nothing surveyed)", t);
        let (t, _) = time(a.reps, || compute_only(&CpuEngine, &map, &a));
        line("CPU engine + survey only (steps from the map)", t);
        let (t, r) = time(a.reps, || run(&CpuEngine, &path));
        line("CPU path (`--device cpu`)", t);
        let evaporated = r.series.tokens.evaporated_at.iter().flatten().count();
        println!(
            "|  | {evaporated} tokens evaporated, {} events, {} frozen cores at the end | | | |",
            r.series.events.len(),
            r.series.frozen.len()
        );
        reference = Some(r);
    }
    if a.gpu {
        let engine = GpuEngine::new(true, GpuOptions::default()).expect("a GPU adapter");
        let (t, r) = time(a.reps, || run(&engine, &path));
        line(
            &format!("GPU path ({}, device opened once)", engine.device().adapter),
            t,
        );
        if let Some(c) = &reference {
            assert_eq!(c.series, r.series, "GPU and CPU series differ");
        }
    }
}
