//! All-pairs geometry against numpy's matmul form and a read pass, on three
//! generated clouds shaped like Qwen3-4B's embedding (151936×2560 bf16 by
//! default) and on the real matrices the tests use.
//!
//! Clouds (the trained tokens; every row's values rounded to bf16):
//! - `steep`: Gaussian with per-dimension standard deviation (c + 1)^-1/2,
//!   each row scaled to a norm of 1 ± 10%;
//! - `flat`: Gaussian with per-dimension scales drawn uniformly in [1, 3]
//!   (within 3× of each other), each row scaled to a norm of 1 ± 10%;
//! - `clustered`: a mixture of 300 Gaussian clusters: centres isotropic of
//!   norm 1, each member the centre plus isotropic noise of L2 size s (s
//!   drawn per cluster in [0.1, 0.2]), so two members of a cluster lie about
//!   s√2 ≈ 0.14–0.28 apart and two centres about √2 ≈ 1.41 apart; norms
//!   about 1.01.
//!
//! Every cloud holds the same dead structure (Qwen3's): 2,212 tokens on 125
//! distinct vectors (13 black holes of 814, 704, 306, 228, 11, 10, 6, 5, 4, 4,
//! 3, 3, 2 tokens and 112 single tokens), all within 5 bf16 steps per
//! coordinate of one point of norm 0.3, at scattered token ids.
//!
//! The real matrices: MiniLM-L6-v2 (f32 30522×384) and WordLlama (f16
//! 32000×256) from `scripts/fetch_realdata.sh`, and the Thimble-9 checkpoint
//! (bf16 10000×64) from `/work/shared/realdata` or the test fixtures; each is
//! copied as it is stored into a safetensors file of its own, so that every
//! row and the peer read the same kind of file. A missing one is skipped.
//!
//! Rows, per matrix: exact nearest neighbours on slices (all dead rows plus
//! the first trained ones; the first rows of a real matrix) and on the full
//! matrix (extrapolated from the largest slice by the square of the number
//! of distinct vectors when that estimate exceeds `--budget`), then
//! `--near-ulp 5`, `--near-rel 1e-2` and `--near-l2` at the 1st percentile of
//! the nearest-neighbour distances, at full size. Each of our rows runs in a
//! child process (this binary, `--child`): it loads the file, runs the exact
//! survey, then times `analyze_pairs` for its one row (the median of
//! `--reps` runs after a warm-up when the first takes under 2 s) and reports
//! its peak RSS (`VmHWM`; `wait4`'s `ru_maxrss` would also hold the
//! parent's peak, which Linux carries across `exec`).
//!
//! The peer (`scripts/bench_allpairs_peer.py`) computes the same answers by
//! ‖x‖² + ‖y‖² − 2x·y in float32 with numpy's BLAS, in blocks of 256 queries
//! against all rows, timing a sample of the blocks and extrapolating when
//! all of them would take more than `--peer-budget` seconds.
//!
//! cargo bench --bench allpairs -- --help

mod child;
#[path = "../common/mod.rs"]
mod common;
mod data;
mod render;
mod run;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::GpuOptions;

use child::child_main;
use data::{cloud_case, real_cases, Case, Cloud};
use render::render;
use run::run_case;

pub const USAGE: &str = "\
cargo bench --bench allpairs -- [FLAGS]

  --rows N, --cols D      shape of the generated clouds (default 151936, 2560)
  --clouds LIST           steep,flat,clustered (default all; `none` for none)
  --no-real               skip the real matrices
  --slices LIST           slice sizes for exact NN (default 8192,16384)
  --budget SECS           run exact NN at full size only when the largest
                          slice's time × (vectors ratio)² is at most this
                          (default 120); else extrapolate
  --cpu-only, --gpu-only  one path only (the GPU path needs a hardware
                          adapter unless --software-gpu)
  --software-gpu          allow a software adapter (lavapipe) for the GPU rows
  --no-peers              skip numpy
  --peer-budget SECS      numpy time per task before it samples blocks (default 60)
  --reps N                runs per row when a run takes under 2 s (default 3)
  --near-ulp K            (default 5)
  --near-rel F            (default 1e-2)
  --nn-sample N           tokens sampled to estimate the 1st percentile of NN
                          distances (the `--near-l2` threshold) when the full
                          NN is not run (default 4096)
  --child-timeout SECS    kill a row's process after this long (default 3600)
  --data DIR              generated files (default target/allpairs-data)
  --out FILE              the markdown results (default: a complete run at the
                          default shape in benches/results/, any other run in
                          the data folder)
";

/// Tokens per black hole of the dead structure, largest first.
pub const HOLES: [usize; 13] = [814, 704, 306, 228, 11, 10, 6, 5, 4, 4, 3, 3, 2];
/// Dead tokens alone on their vector.
pub const SINGLES: usize = 112;
pub const DEAD_VECTORS: usize = HOLES.len() + SINGLES;
/// The dead vectors lie within this many bf16 steps of the dead point, per coordinate.
pub const MAX_OFFSET: u64 = 5;
/// Norm of the dead point.
pub const DEAD_NORM: f32 = 0.3;
/// Clusters of the clustered cloud, and the range of their spreads.
pub const CLUSTERS: usize = 300;
pub const SPREAD: (f32, f32) = (0.1, 0.2);
/// A first run longer than this is the row's only run.
pub const SINGLE_RUN_ABOVE: Duration = Duration::from_secs(2);
/// Bumped whenever the generated data change (files are reused by name).
pub const DATA_VERSION: u32 = 2;
/// Time target of exact NN: at most this many times numpy's matmul form.
pub const NN_VS_NUMPY: f64 = 1.2;
/// At most this fraction of NN queries settled by the slow path.
pub const SLOW_FRACTION: f64 = 0.01;
/// Time target of a threshold search on a cloud at full size.
pub const THRESHOLD_SECS: f64 = 5.0;
/// Peak memory: stored bytes × this, plus [`BOOKKEEPING_PER_ROW`] per row,
/// above the process's baseline (a child that only maps the file).
pub const MEMORY_FACTOR: f64 = 1.25;
pub const BOOKKEEPING_PER_ROW: f64 = 1024.0;

#[derive(Clone)]
pub struct Args {
    pub n: usize,
    pub d: usize,
    pub clouds: Vec<Cloud>,
    pub real: bool,
    pub slices: Vec<usize>,
    pub budget: f64,
    pub cpu: bool,
    pub gpu: bool,
    pub software_gpu: bool,
    pub peers: bool,
    pub peer_budget: f64,
    pub reps: usize,
    pub ulp: u64,
    pub rel: f64,
    pub nn_sample: usize,
    pub child_timeout: f64,
    pub data: PathBuf,
    pub out: Option<PathBuf>,
    pub command: String,
}

/// What a child process is asked to run (`--child ROW --file PATH --engine E`).
pub struct ChildArgs {
    pub row: String,
    pub file: PathBuf,
    pub gpu: bool,
    pub software_gpu: bool,
    pub reps: usize,
    pub dump: Option<PathBuf>,
}

pub enum Mode {
    Parent(Args),
    Child(ChildArgs),
}

pub fn fail(msg: &str) -> ! {
    eprintln!("allpairs: {msg}\n\n{USAGE}");
    std::process::exit(2)
}

pub fn parse_args() -> Mode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        n: 151936,
        d: 2560,
        clouds: vec![Cloud::Steep, Cloud::Flat, Cloud::Clustered],
        real: true,
        slices: vec![8192, 16384],
        budget: 120.0,
        cpu: true,
        gpu: true,
        software_gpu: false,
        peers: true,
        peer_budget: 60.0,
        reps: 3,
        ulp: 5,
        rel: 1e-2,
        nn_sample: 4096,
        child_timeout: 3600.0,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/allpairs-data"),
        out: None,
        command: String::new(),
    };
    let mut child: Option<String> = None;
    let (mut file, mut engine, mut dump) = (None, String::from("cpu"), None);
    let mut it = raw.iter().cloned();
    while let Some(arg) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        fn num<T: std::str::FromStr>(name: &str, s: String) -> T {
            s.parse()
                .unwrap_or_else(|_| fail(&format!("{name}: cannot read {s:?}")))
        }
        fn list(name: &str, s: String) -> Vec<usize> {
            s.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| num(name, s.into()))
                .collect()
        }
        match arg.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0)
            }
            "--bench" => {} // cargo passes it
            "--rows" => a.n = num("--rows", val("--rows")),
            "--cols" => a.d = num("--cols", val("--cols")),
            "--clouds" => {
                a.clouds = val("--clouds")
                    .split(',')
                    .filter(|s| !s.is_empty() && *s != "none")
                    .map(|s| Cloud::parse(s).unwrap_or_else(|| fail(&format!("no cloud {s:?}"))))
                    .collect()
            }
            "--no-real" => a.real = false,
            "--slices" => a.slices = list("--slices", val("--slices")),
            "--budget" => a.budget = num("--budget", val("--budget")),
            "--cpu-only" => a.gpu = false,
            "--gpu-only" => a.cpu = false,
            "--software-gpu" => a.software_gpu = true,
            "--no-peers" => a.peers = false,
            "--peer-budget" => a.peer_budget = num("--peer-budget", val("--peer-budget")),
            "--reps" => a.reps = num::<usize>("--reps", val("--reps")).max(1),
            "--near-ulp" => a.ulp = num("--near-ulp", val("--near-ulp")),
            "--near-rel" => a.rel = num("--near-rel", val("--near-rel")),
            "--nn-sample" => a.nn_sample = num("--nn-sample", val("--nn-sample")),
            "--child-timeout" => a.child_timeout = num("--child-timeout", val("--child-timeout")),
            "--data" => a.data = PathBuf::from(val("--data")),
            "--out" => a.out = Some(PathBuf::from(val("--out"))),
            "--child" => child = Some(val("--child")),
            "--file" => file = Some(PathBuf::from(val("--file"))),
            "--engine" => engine = val("--engine"),
            "--dump" => dump = Some(PathBuf::from(val("--dump"))),
            other => fail(&format!("unknown flag {other:?}")),
        }
    }
    a.slices.sort_unstable();
    a.slices.dedup();
    if let Some(row) = child {
        return Mode::Child(ChildArgs {
            row,
            file: file.unwrap_or_else(|| fail("--child needs --file")),
            gpu: engine == "gpu",
            software_gpu: a.software_gpu,
            reps: a.reps,
            dump,
        });
    }
    let shown: Vec<&str> = raw
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "--bench")
        .collect();
    a.command = format!("cargo bench --bench allpairs -- {}", shown.join(" "));
    Mode::Parent(a)
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let a = match parse_args() {
        Mode::Child(c) => return child_main(c),
        Mode::Parent(a) => a,
    };
    let gpu_ok = a.gpu && {
        let t = Instant::now();
        match GpuEngine::new(a.software_gpu, GpuOptions::default()) {
            Ok(g) => {
                let dev = g.device();
                println!(
                    "GPU: {} ({}); adapter + device + pipelines in {:.0} ms",
                    dev.adapter,
                    dev.backend,
                    t.elapsed().as_secs_f64() * 1e3
                );
                true
            }
            Err(e) => {
                println!("GPU: none ({e}); GPU rows not run");
                false
            }
        }
    };
    let numpy = Command::new("python3")
        .args(["-c", "import numpy; print(numpy.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut head = String::new();
    let _ = writeln!(head, "# All-pairs benchmark, {}", today());
    let _ = writeln!(head, "\n`{}`\n", a.command.trim_end());
    let _ = writeln!(
        head,
        "CPU: {}; rayon threads: {}; GPU rows: {}; numpy: {}; load average at start: {}.",
        common::cpu_model(),
        rayon::current_num_threads(),
        if gpu_ok { "yes" } else { "no" },
        numpy.as_deref().unwrap_or("not installed"),
        loadavg()
    );
    let _ = writeln!(
        head,
        "\nEach of our rows runs in its own process: load (mapped), exact survey, then `analyze_pairs` for that row alone, timed ({}); peak RSS is the process's `VmHWM` at its end (`wait4`'s `ru_maxrss` where there is none; on Linux that one also holds the spawning process's own peak, so it is not used there). numpy (prep: bits to float32, included) goes over all rows as queries in blocks of 256 against all rows; over {:.0} s per task it times evenly spaced blocks and extrapolates. Full-size exact NN is extrapolated from the largest slice by (vectors ratio)² when that estimate exceeds {:.0} s (`--budget`).",
        if a.reps > 1 {
            format!(
                "the median of {} runs after a warm-up when a run takes under {} s, else that one run",
                a.reps,
                SINGLE_RUN_ABOVE.as_secs()
            )
        } else {
            "one run".into()
        },
        a.peer_budget,
        a.budget
    );
    print!("{head}");
    let out_path = a.out.clone().unwrap_or_else(|| {
        let name = format!(
            "allpairs-{threads}core{}-{}",
            if gpu_ok { "-gpu" } else { "" },
            today()
        );
        // A complete run at the default shape goes with the results; any
        // other next to its data.
        if (a.n, a.d) == (151936, 2560) && a.clouds.len() == 3 && a.real {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("benches/results/{name}.md"))
        } else {
            a.data.join(format!("{name}-{}x{}.md", a.n, a.d))
        }
    });
    let mut doc = head;
    let mut failed = 0;
    let mut cases: Vec<Box<dyn Fn() -> Vec<Case>>> = Vec::new();
    for &cloud in &a.clouds {
        let a = a.clone();
        cases.push(Box::new(move || vec![cloud_case(&a, cloud)]));
    }
    if a.real {
        let a = a.clone();
        cases.push(Box::new(move || real_cases(&a)));
    }
    for make in cases {
        for case in make() {
            let report = run_case(&a, gpu_ok, case);
            let text = render(&report, &mut failed);
            print!("{text}");
            doc.push_str(&text);
            let _ = std::fs::create_dir_all(out_path.parent().unwrap_or(Path::new(".")));
            if let Err(e) = std::fs::write(&out_path, &doc) {
                eprintln!("cannot write {}: {e}", out_path.display());
            }
        }
    }
    let tail = format!(
        "\nLoad average at the end: {}. Checks failed: {failed}.\n",
        loadavg()
    );
    print!("{tail}");
    doc.push_str(&tail);
    let _ = std::fs::write(&out_path, &doc);
    println!("written to {}", out_path.display());
    if failed > 0 {
        std::process::exit(1);
    }
}
