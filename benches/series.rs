//! A checkpoint series at the scale of the Thimble-9 run
//! (`tests/fixtures/thimble9/metadata.json`): a generated trajectory of
//! 10,001 steps × 3,699 tokens × 64 dims of bf16 bit patterns stored as
//! uint16 (4.7 GB, one safetensors tensor `W`), surveyed with
//! `--trajectory FILE --key W --as bf16` on the CPU path and the GPU path,
//! against one read pass over the same bytes (the floor).
//!
//! cargo bench --bench series -- [--shape 1001x3699x64] [--file W.safetensors] [--reps N]
//!     [--data DIR] [--python PYTHON] [--gpu] [--no-cpu]
//!
//! Besides the trajectory, the same steps as a folder of per-step
//! safetensors files and (with a Python that has h5py: `--python`, or
//! `SG_PYTHON`) a contiguous and a gzip HDF5 file, each surveyed on the CPU
//! path with its peak resident set; the floor is a page-cache read of the
//! same bytes (`read` into one buffer, as `cat`), and h5py reading every
//! step of the gzip file is the peer of that row.
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
use singularity_gpu::engine::{BatchMoves, Engine, StepData};
use singularity_gpu::load::steps::{SeriesInfo, StepSource};
use singularity_gpu::load::{Bytes, Map, TokenNames};
use singularity_gpu::run::series;
use singularity_gpu::types::{ReadAt, StepSelection};
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
    /// An existing `[steps, tokens, dim]` U16 safetensors trajectory `W`
    /// to use instead of the generated one.
    file: Option<PathBuf>,
    /// The Python with numpy and h5py that writes the HDF5 files and times
    /// h5py (rows skipped, saying why, when it has no h5py).
    python: String,
    gpu: bool,
    cpu: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 1001,
        n: 3699,
        d: 64,
        reps: 5,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data"),
        file: None,
        python: std::env::var("SG_PYTHON").unwrap_or_else(|_| "python3".into()),
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
            "--reps" => a.reps = it.next().and_then(|s| s.parse().ok()).unwrap_or(5),
            "--data" => a.data = PathBuf::from(it.next().unwrap_or_default()),
            "--file" => a.file = it.next().map(PathBuf::from),
            "--python" => a.python = it.next().unwrap_or_default(),
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

fn run(engine: &dyn Engine, input: &SeriesInput) -> SeriesReport {
    run_batched(engine, input, series::BATCH_BYTES)
}

/// [`run`] with batches of `batch_bytes`.
fn run_batched(engine: &dyn Engine, input: &SeriesInput, batch_bytes: usize) -> SeriesReport {
    run_steps(engine, input, batch_bytes, StepSelection::default())
}

/// [`run_batched`] of the steps `steps` selects.
fn run_steps(
    engine: &dyn Engine,
    input: &SeriesInput,
    batch_bytes: usize,
    steps: StepSelection,
) -> SeriesReport {
    let opts = SeriesOptions {
        load: LoadOptions {
            key: Some("W".into()),
            reinterpret: Some(Dtype::BF16),
            ..Default::default()
        },
        steps,
        ..Default::default()
    };
    let kind = match input {
        SeriesInput::Files(_) => "series",
        SeriesInput::Trajectory(_) => "trajectory",
    };
    let start = Instant::now();
    let mut source = series::open(input, &opts).expect("open the series");
    series::survey_source_batched(
        engine,
        source.as_mut(),
        kind,
        false,
        None,
        start,
        batch_bytes,
    )
    .expect("survey the series")
}

/// This process's peak resident set, in bytes (`VmHWM` of
/// `/proc/self/status`; 0 where there is none).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The series of `path` (`kind`: `folder` or `trajectory`) on `device`
/// (`cpu`, `gpu`), in batches of `batch` bytes, the steps `steps` selects
/// (`all`, or a `--steps` selection), surveyed in a process of its own (this
/// benchmark run again with `--peak-child`): its peak resident set, in
/// bytes. A process of its own, so that no earlier run's heap is reused.
fn child_peak(kind: &str, path: &Path, batch: usize, device: &str, steps: &str) -> Option<u64> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .arg("--peak-child")
        .args([
            kind,
            &path.display().to_string(),
            &batch.to_string(),
            device,
            steps,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM ")?.trim().parse().ok())
}

/// What a whole series adds to the peak resident set of its first two
/// steps (opening the input, the engine, a first comparison), each in a
/// process of its own; `None` where it cannot be measured.
fn peak_growth(kind: &str, path: &Path, batch: usize, device: &str) -> Option<u64> {
    let all = child_peak(kind, path, batch, device, "all")?;
    let two = child_peak(kind, path, batch, device, "0:1")?;
    (all > 0 && two > 0).then(|| all.saturating_sub(two))
}

/// `--peak-child KIND PATH BATCH DEVICE STEPS`: one series, then its peak
/// resident set on stdout.
fn peak_child(args: &[String]) {
    singularity_gpu::run::large_buffers_back_to_the_system();
    let [kind, path, batch, device, steps] = args else {
        panic!("--peak-child KIND PATH BATCH DEVICE STEPS");
    };
    let path = PathBuf::from(path);
    let input = match kind.as_str() {
        "folder" => SeriesInput::Files(vec![path]),
        _ => SeriesInput::Trajectory(path),
    };
    let steps = match steps.as_str() {
        "all" => StepSelection::default(),
        s => StepSelection::parse(s).expect("a step selection"),
    };
    let batch = batch.parse().expect("batch bytes");
    match device.as_str() {
        "gpu" => {
            let engine = GpuEngine::new(true, GpuOptions::default()).expect("a GPU adapter");
            run_steps(&engine, &input, batch, steps);
        }
        _ => {
            run_steps(&CpuEngine, &input, batch, steps);
        }
    }
    println!("VmHWM {}", peak_rss());
}

/// The page-cache read of `paths` as `cat` does it: each file opened and
/// `read` into one reused 128 KiB buffer (coreutils' buffer size), the
/// bytes touched once (the last of each read summed, so nothing is elided).
fn cat(paths: &[PathBuf]) -> u64 {
    use std::io::Read;
    let mut buf = vec![0u8; 128 << 10];
    let mut acc = 0u64;
    for p in paths {
        let mut f = std::fs::File::open(p).expect("open for reading");
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            acc = acc.wrapping_add(buf[n - 1] as u64);
        }
    }
    acc
}

/// The trajectory as a folder of per-step safetensors files
/// (`step_<t>.safetensors`, tensor `W`, U16), unless it is there already.
fn write_folder(traj: &Path, dir: &Path, a: &Args) -> std::io::Result<Vec<PathBuf>> {
    let sb = a.n * a.d * 2;
    let paths: Vec<PathBuf> = (0..a.steps)
        .map(|t| dir.join(format!("step_{t}.safetensors")))
        .collect();
    let header = format!(
        "{{\"W\":{{\"dtype\":\"U16\",\"shape\":[{},{}],\"data_offsets\":[0,{sb}]}}}}",
        a.n, a.d
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let want = (8 + header.len() + sb) as u64;
    if paths
        .iter()
        .all(|p| std::fs::metadata(p).map(|m| m.len()).ok() == Some(want))
    {
        return Ok(paths);
    }
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::open(traj)?;
    // SAFETY: read-only map of a file this bench wrote.
    let map = unsafe { memmap2::Mmap::map(&file) }?;
    let offset = 8 + u64::from_le_bytes(map[..8].try_into().unwrap_or([0; 8])) as usize;
    for (t, p) in paths.iter().enumerate() {
        let mut f = BufWriter::new(std::fs::File::create(p)?);
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(&header)?;
        f.write_all(&map[offset + t * sb..offset + (t + 1) * sb])?;
        f.flush()?;
    }
    Ok(paths)
}

/// Writes `contiguous.h5` and `gzip.h5` (dataset `W`, uint16; the second
/// chunked as h5py chooses and gzip-compressed, as h5py writes by default
/// with `compression="gzip"`) beside the trajectory, unless they are there.
const WRITE_H5: &str = r#"
import sys, os, json, numpy as np, h5py
src, out = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    h = json.loads(f.read(n))
shape = h["W"]["shape"]
w = np.memmap(src, dtype="<u2", mode="r", offset=8 + n, shape=tuple(shape))
for name, kw in (("contiguous.h5", {}), ("gzip.h5", {"compression": "gzip"})):
    path = os.path.join(out, name)
    if os.path.exists(path):
        continue
    with h5py.File(path + ".partial", "w") as f:
        d = f.create_dataset("W", shape=shape, dtype="<u2", **kw)
        for t in range(0, shape[0], 64):
            d[t:t + 64] = w[t:t + 64]
        print(name, "chunks", d.chunks)
    os.rename(path + ".partial", path)
"#;

/// h5py reading every step of `W` in order (`ds[t]`, its default chunk
/// cache), one run (the file is in the page cache from the runs before;
/// each step inflates every chunk it touches again, so one run takes long),
/// in seconds.
const TIME_H5PY: &str = r#"
import sys, time, h5py
path = sys.argv[1]
t = time.perf_counter()
with h5py.File(path, "r") as f:
    d = f["W"]
    for s in range(d.shape[0]):
        d[s]
print(time.perf_counter() - t)
"#;

fn python(a: &Args, script: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(&a.python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", a.python))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The trajectory's steps straight from memory (the file read whole
/// beforehand), with no reader: timing the series through it leaves the
/// engine and the survey.
struct MemorySource {
    info: SeriesInfo,
    steps: Vec<u64>,
    data: Arc<Vec<u8>>,
    offset: usize,
}

impl StepSource for MemorySource {
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
        Ok(Bytes::shared(self.data.clone(), start..start + sb).expect("inside the file"))
    }
}

/// Where the trajectory's data starts in the file.
fn data_offset(file: &[u8]) -> usize {
    8 + u64::from_le_bytes(file[..8].try_into().unwrap_or([0; 8])) as usize
}

fn compute_only(engine: &dyn Engine, data: &Arc<Vec<u8>>, a: &Args) -> SeriesReport {
    let mut source = MemorySource {
        info: SeriesInfo {
            tensor: "W".into(),
            stored_dtype: "U16".into(),
            format: "safetensors",
            dtype: Dtype::BF16,
            rows: a.n,
            cols: a.d,
        },
        steps: (0..a.steps as u64).collect(),
        data: data.clone(),
        offset: data_offset(data),
    };
    series::survey_source(
        engine,
        &mut source,
        "trajectory",
        false,
        None,
        Instant::now(),
    )
    .expect("survey the steps in memory")
}

/// How [`engine_only`] has the engine get the steps' bytes.
#[derive(Clone, Copy)]
enum Reading {
    /// From memory: the file read whole beforehand.
    Memory,
    /// From a map of the file made for the run, copied band by band out of
    /// it (page faults included), its pages given back behind.
    Map,
    /// With positioned reads from the file, band by band (as the CPU path).
    Pread,
}

/// The engine alone: every step compared with the one before, in the
/// batches the series driver uses, nothing surveyed; the steps' bytes got
/// as `how` says (`data`: the file read whole, for [`Reading::Memory`]).
fn engine_only(engine: &dyn Engine, path: &Path, data: &[u8], how: Reading, a: &Args) -> usize {
    let file = std::fs::File::open(path).expect("open the trajectory");
    // SAFETY: read-only maps of a file this process wrote.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map the trajectory");
    let reader = unsafe { Map::new(file, path) }.expect("map the trajectory");
    let bytes: &[u8] = match how {
        Reading::Memory => data,
        Reading::Map => &map,
        Reading::Pread => &reader,
    };
    let offset = data_offset(data);
    let sb = a.n * a.d * 2;
    let step = |t: usize| StepData {
        matrix: singularity_gpu::Matrix::new(
            Dtype::BF16,
            a.n,
            a.d,
            &bytes[offset + t * sb..offset + (t + 1) * sb],
        )
        .expect("step"),
        file: match how {
            Reading::Pread => Some((&reader as &dyn ReadAt, (offset + t * sb) as u64)),
            _ => None,
        },
    };
    let mut differ = engine.step_differ(Dtype::BF16, a.n, a.d).expect("differ");
    let batch = (series::BATCH_BYTES / sb).clamp(1, 64);
    let mut out = BatchMoves::default();
    let mut moved = 0;
    let mut t = 0;
    while t < a.steps {
        let k = batch.min(a.steps - t);
        let ms: Vec<_> = (t..t + k).map(step).collect();
        let prev = t.checked_sub(1).map(step);
        differ
            .push_moves(prev.as_ref(), &ms, &mut out)
            .expect("push");
        moved += (0..k)
            .flat_map(|j| out.step(j))
            .map(|p| p.ids.len())
            .sum::<usize>();
        if let Reading::Map = how {
            // SAFETY: read-only map; the pages of steps done are not read again.
            let end = (offset + (t + k - 1) * sb) / 4096 * 4096;
            let _ =
                unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end) };
        }
        t += k;
    }
    moved
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(k) = args.iter().position(|x| x == "--peak-child") {
        return peak_child(&args[k + 1..]);
    }
    singularity_gpu::run::large_buffers_back_to_the_system();
    let a = parse_args();
    let (steps, n, d) = (a.steps, a.n, a.d);
    let path = match &a.file {
        Some(p) => p.clone(),
        None => {
            let p = a
                .data
                .join(format!("series-{steps}x{n}x{d}"))
                .join("W.safetensors");
            generate(&p, steps, n, d).expect("write the trajectory");
            p
        }
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let folder = write_folder(&path, &dir.join("steps"), &a).expect("write the folder");
    let h5 = python(
        &a,
        WRITE_H5,
        &[&path.display().to_string(), &dir.display().to_string()],
    );
    let step_bytes = n * d * 2;
    let bytes = (steps * step_bytes) as f64;
    let batch = (series::BATCH_BYTES / step_bytes).clamp(1, 64);
    println!(
        "series: {steps} steps × {n} tokens × {d} dims, U16 read as bf16 ({:.2} GB); {}; median of {} runs",
        bytes / 1e9,
        cpu_model(),
        a.reps
    );
    println!(
        "two batches: 2 × {batch} steps = {:.1} MB; state: two steps (the engine's last, the survey's copy) = {:.1} MB; peak RSS measured in a process of its own for each row",
        (2 * batch * step_bytes) as f64 / 1e6,
        (2 * step_bytes) as f64 / 1e6
    );
    if let Err(e) = &h5 {
        println!("HDF5 rows skipped: {} has no h5py ({e})", a.python);
    }
    let traj = [path.clone()];
    let (floor, _) = time(a.reps, || cat(&traj));
    let (folder_floor, _) = time(a.reps, || cat(&folder));
    println!(
        "\n| path | time | per step | GB/s | × page-cache read | peak RSS − that of 2 steps |\n|---|---:|---:|---:|---:|---:|"
    );
    let line = |name: &str, t: Duration, floor: Duration, peak: Option<u64>| {
        println!(
            "| {name} | {} | {:.1} µs | {:.2} | {:.2}× | {} |",
            fmt_time(t),
            t.as_secs_f64() * 1e6 / steps as f64,
            bytes / t.as_secs_f64() / 1e9,
            t.as_secs_f64() / floor.as_secs_f64(),
            peak.map_or("–".into(), |p| format!("{:.1} MB", p as f64 / 1e6))
        )
    };
    line(
        "page-cache read (`cat`: `read` into one 128 KiB buffer), the trajectory",
        floor,
        floor,
        None,
    );
    line(
        "page-cache read of the folder's files",
        folder_floor,
        floor,
        None,
    );
    let (fresh, _) = time(a.reps, || {
        let file = std::fs::File::open(&path).expect("open the trajectory");
        // SAFETY: read-only map of a file this process wrote.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("map the trajectory");
        read_pass(&map[..])
    });
    line(
        "read pass, mapped afresh (page faults included)",
        fresh,
        floor,
        None,
    );

    let mut reference: Option<SeriesReport> = None;
    let input = SeriesInput::Trajectory(path.clone());
    if a.cpu {
        {
            let data = Arc::new(std::fs::read(&path).expect("read the trajectory"));
            for (how, label) in [
                (
                    Reading::Memory,
                    "CPU engine only (steps from memory, nothing surveyed)",
                ),
                (
                    Reading::Map,
                    "CPU engine only, steps copied out of a map made afresh (DONTNEED behind)",
                ),
                (
                    Reading::Pread,
                    "CPU engine only, steps `pread` band by band (as the CPU path)",
                ),
            ] {
                let (t, _) = time(a.reps, || engine_only(&CpuEngine, &path, &data, how, &a));
                line(label, t, floor, None);
            }
            let (t, _) = time(a.reps, || compute_only(&CpuEngine, &data, &a));
            line("CPU engine + survey (steps from memory)", t, floor, None);
        }
        let (t, r) = time(a.reps, || run(&CpuEngine, &input));
        let peak = peak_growth("trajectory", &path, series::BATCH_BYTES, "cpu");
        line(
            "**CPU path, trajectory** (`--trajectory W.safetensors`)",
            t,
            floor,
            peak,
        );
        let (t, m) = time(a.reps, || run_batched(&CpuEngine, &input, 32 << 20));
        let peak = peak_growth("trajectory", &path, 32 << 20, "cpu");
        line(
            "CPU path, trajectory, batches of 32 MB (as before)",
            t,
            floor,
            peak,
        );
        assert_eq!(m.series, r.series, "batch sizes give other series");
        let evaporated = r.series.tokens.evaporated_at.iter().flatten().count();
        println!(
            "|  | {evaporated} tokens evaporated, {} events, {} frozen cores at the end | | | | |",
            r.series.events.len(),
            r.series.frozen.len()
        );
        let files = SeriesInput::Files(vec![dir.join("steps")]);
        let (t, f) = time(a.reps, || run(&CpuEngine, &files));
        let peak = peak_growth("folder", &dir.join("steps"), series::BATCH_BYTES, "cpu");
        line("**CPU path, folder** (`--series steps/`)", t, floor, peak);
        println!(
            "|  | × the folder's own page-cache read: {:.2}× | | | | |",
            t.as_secs_f64() / folder_floor.as_secs_f64()
        );
        assert_eq!(f.series, r.series, "folder and trajectory series differ");
        if h5.is_ok() {
            for (name, label) in [
                ("contiguous.h5", "HDF5 contiguous"),
                ("gzip.h5", "HDF5 gzip (h5py's chunks)"),
            ] {
                let input = SeriesInput::Trajectory(dir.join(name));
                let (t, h) = time(a.reps, || run(&CpuEngine, &input));
                let peak = peak_growth("trajectory", &dir.join(name), series::BATCH_BYTES, "cpu");
                line(&format!("**CPU path, {label}**"), t, floor, peak);
                assert_eq!(h.series, r.series, "{name} and the trajectory differ");
                if name == "gzip.h5" {
                    let file = dir.join(name).display().to_string();
                    let peer = python(&a, TIME_H5PY, &[&file])
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok());
                    if let Some(p) = peer {
                        let p = Duration::from_secs_f64(p);
                        line(
                            "peer: h5py reading every step of the gzip file",
                            p,
                            floor,
                            None,
                        );
                        println!(
                            "|  | CPU path, HDF5 gzip ÷ h5py: {:.2}× | | | | |",
                            t.as_secs_f64() / p.as_secs_f64()
                        );
                    }
                }
            }
        }
        reference = Some(r);
    }
    if a.gpu {
        let engine = GpuEngine::new(true, GpuOptions::default()).expect("a GPU adapter");
        let (t, r) = time(a.reps, || run(&engine, &input));
        let peak = peak_growth("trajectory", &path, series::BATCH_BYTES, "gpu");
        line(
            &format!(
                "GPU path, trajectory ({}, device opened once)",
                engine.device().adapter
            ),
            t,
            floor,
            peak,
        );
        if let Some(c) = &reference {
            assert_eq!(c.series, r.series, "GPU and CPU series differ");
        }
    }
}
