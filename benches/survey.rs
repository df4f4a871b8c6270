//! Benchmarks on bf16 matrices of real model shapes, each with 2,000 dead rows
//! frozen on 13 vectors a few bf16 steps apart (like Qwen3's black holes).
//!
//! For each shape it prints one table: one read pass over the tensor's bytes
//! (the floor), the CPU path, the GPU path end to end and its kernels alone,
//! and `numpy.unique(axis=0)` / `torch.unique(dim=0)` as peers when installed.
//!
//! cargo bench --bench survey -- [--shapes 151936x896,151936x4096,128256x16384]
//!     [--reps N] [--no-peers] [--no-numpy-above BYTES] [--data DIR] [--cpu-only]
//!
//! Shapes whose matrix would not fit in half of the free memory are skipped.
//! Timings are medians of `--reps` runs in this one process, so ratios between
//! rows are comparable; absolute numbers depend on the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_memory, generate, read_pass, time, DEAD_SIZES};

use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::internals::Passes;
use singularity_gpu::progress::Progress;
use singularity_gpu::{analyze, Dtype, Equality, GpuOptions, GroupOptions, Matrix};

struct Args {
    shapes: Vec<(usize, usize)>,
    reps: usize,
    peers: bool,
    numpy_max_bytes: u64,
    data: PathBuf,
    gpu: bool,
    tpr_sweep: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        shapes: vec![(151936, 896), (151936, 4096), (128256, 16384)],
        reps: 5,
        peers: true,
        numpy_max_bytes: 2 << 30,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data"),
        gpu: true,
        tpr_sweep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--shapes" => {
                a.shapes = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| {
                        let (n, d) = s.split_once('x')?;
                        Some((n.parse().ok()?, d.parse().ok()?))
                    })
                    .collect()
            }
            "--reps" => a.reps = it.next().and_then(|s| s.parse().ok()).unwrap_or(5),
            "--no-peers" => a.peers = false,
            "--no-numpy-above" => {
                a.numpy_max_bytes = it.next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
            }
            "--data" => a.data = PathBuf::from(it.next().unwrap_or_default()),
            "--cpu-only" => a.gpu = false,
            "--tpr-sweep" => a.tpr_sweep = true,
            _ => {} // cargo passes --bench
        }
    }
    a
}

fn peer(
    which: &str,
    path: &Path,
    n: usize,
    d: usize,
    offset: u64,
    reps: usize,
) -> Option<Duration> {
    let script = common::script("bench_peer.py")?;
    let out = Command::new("python3")
        .arg(script)
        .args([which, &path.display().to_string()])
        .args([n, d, offset as usize, reps].map(|x| x.to_string()))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("  ({which} peer unavailable: exit {:?})", out.status.code());
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let mut f = s.split_whitespace().skip(1);
    let secs: f64 = f.next()?.parse().ok()?;
    let uniq: usize = f.next()?.parse().ok()?;
    assert_eq!(uniq, n - 2000 + 13, "{which} found {uniq} unique rows");
    Some(Duration::from_secs_f64(secs))
}

fn main() {
    let args = parse_args();
    let gpu = if args.gpu {
        let t = Instant::now();
        match GpuEngine::new(true, GpuOptions::default()) {
            Ok(g) => {
                let dev = g.device();
                println!(
                    "GPU: {} ({}); adapter + device + pipelines in {:.0} ms; max storage binding {} MiB",
                    dev.adapter,
                    dev.backend,
                    t.elapsed().as_secs_f64() * 1e3,
                    g.limits().max_storage_buffer_binding_size >> 20
                );
                Some(g)
            }
            Err(e) => {
                println!("GPU: none ({e})");
                None
            }
        }
    } else {
        None
    };
    println!(
        "CPU: {} threads; reps per row: {} (median)",
        rayon::current_num_threads(),
        args.reps
    );
    for &(n, d) in &args.shapes {
        let bytes = (n * d * 2) as u64;
        if bytes > free_memory() / 2 {
            println!(
                "\n### {n}×{d} bf16: skipped ({} MB, not enough free memory)",
                bytes / 1_000_000
            );
            continue;
        }
        let path = args.data.join(format!("bf16_{n}x{d}.safetensors"));
        let t = Instant::now();
        let offset = generate(&path, n, d).expect("write benchmark matrix");
        eprintln!(
            "generated {} in {:.1} s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
        let file = std::fs::File::open(&path).expect("open");
        // SAFETY: read-only map of a file this process wrote.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap");
        let m = Matrix::new(Dtype::BF16, n, d, &map[offset as usize..]).expect("matrix");
        let gb = bytes as f64 / 1e9;
        println!(
            "\n### {n}×{d} bf16 ({:.2} GB), 2,000 dead rows on 13 vectors\n",
            gb
        );
        println!("| step | median time | throughput | × read pass |");
        println!("|---|---:|---:|---:|");
        let (floor, _) = time(args.reps, || read_pass(m.bytes));
        let row = |name: &str, t: Duration| {
            let rate = gb / t.as_secs_f64();
            println!(
                "| {name} | {:.1} ms | {} GB/s | {:.2} |",
                t.as_secs_f64() * 1e3,
                if rate < 1.0 {
                    format!("{rate:.3}")
                } else {
                    format!("{rate:.1}")
                },
                t.as_secs_f64() / floor.as_secs_f64()
            );
        };
        row("read pass (floor)", floor);
        let opts = GroupOptions::default();
        let (cpu_t, cpu) = time(args.reps, || {
            analyze(&CpuEngine, &m, opts, &Progress::hidden()).expect("cpu survey")
        });
        let sizes: Vec<usize> = cpu.grouping.groups.iter().map(|g| g.ids.len()).collect();
        assert_eq!(sizes, DEAD_SIZES, "CPU path found the planted groups");
        row("CPU path (hash + group + geometry)", cpu_t);
        if let Some(g) = &gpu {
            let (gpu_t, res) = time(args.reps, || {
                analyze(g, &m, opts, &Progress::hidden()).expect("gpu survey")
            });
            assert_eq!(res.grouping, cpu.grouping, "GPU and CPU groups agree");
            row(
                "GPU path end to end (upload + kernels + group + geometry)",
                gpu_t,
            );
            let kernels = |passes| {
                g.time_kernels(&m, Equality::Bitwise, args.reps.max(10), passes)
                    .expect("kernels")
            };
            row(
                "GPU kernels only (row_stats + column_sums)",
                kernels(Passes::BOTH),
            );
            let only = |row_stats, column_sums| Passes {
                row_stats,
                column_sums,
            };
            row(
                "  row_stats kernel (hash + norm)",
                kernels(only(true, false)),
            );
            row("  column_sums kernel", kernels(only(false, true)));
            if args.tpr_sweep {
                for tpr in [32, 64, 128, 256] {
                    if let Ok(e) = GpuEngine::new(
                        true,
                        GpuOptions {
                            threads_per_row: Some(tpr),
                            ..Default::default()
                        },
                    ) {
                        let t = e
                            .time_kernels(
                                &m,
                                Equality::Bitwise,
                                args.reps.max(10),
                                only(true, false),
                            )
                            .expect("kernels");
                        row(&format!("  row_stats, {tpr} threads per row"), t);
                    }
                }
            }
        }
        if args.peers {
            if bytes <= args.numpy_max_bytes {
                if let Some(t) = peer("numpy", &path, n, d, offset, 1) {
                    row("peer: numpy.unique(axis=0), CPU", t);
                    println!(
                        "\nCPU path vs numpy.unique: {:.0}× faster",
                        t.as_secs_f64() / cpu_t.as_secs_f64()
                    );
                }
            }
            if let Some(t) = peer("torch", &path, n, d, offset, args.reps) {
                row("peer: torch.unique(dim=0), CUDA, incl. host→device", t);
            }
        }
    }
}
