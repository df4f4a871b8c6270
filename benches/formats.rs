//! One row per input format: load + survey of the same 151936×896 bf16
//! matrix (the survey bench's, 2,000 dead rows on 13 vectors) stored as
//! safetensors, a sharded folder, a PyTorch checkpoint, GGUF (BF16, and
//! Q8_0 which adds a dequantization), .npy and .npz, against one read pass
//! over the bytes (the floor) and the safetensors file.
//!
//! cargo bench --bench formats -- [--shape 151936x896] [--reps N] [--data DIR] [--gpu]
//!
//! Every file is written here, in Rust, from the safetensors original (the
//! PyTorch one with a hand-built pickle and the zip crate, storages stored).
//! Each row is the median of `--reps` runs of `survey_file_with` on the CPU
//! path (`--gpu` adds the GPU path, its device opened once), all in one
//! process so ratios compare.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{cpu_model, fmt_time, generate, read_pass, time, DEAD_SIZES};

use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::{survey_file_with, Dtype, GpuOptions, LoadOptions, SurveyOptions};

struct Args {
    n: usize,
    d: usize,
    reps: usize,
    data: PathBuf,
    gpu: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        n: 151936,
        d: 896,
        reps: 5,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data"),
        gpu: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--shape" => {
                if let Some((n, d)) = it.next().unwrap_or_default().split_once('x') {
                    a.n = n.parse().unwrap_or(a.n);
                    a.d = d.parse().unwrap_or(a.d);
                }
            }
            "--reps" => a.reps = it.next().and_then(|s| s.parse().ok()).unwrap_or(5),
            "--data" => a.data = PathBuf::from(it.next().unwrap_or_default()),
            "--gpu" => a.gpu = true,
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// A `.npy` file of the bf16 bits, saved as numpy saves ml_dtypes' bfloat16 (`<V2`).
fn write_npy(path: &Path, n: usize, d: usize, bits: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, npy_bytes(n, d, bits))
}

fn npy_bytes(n: usize, d: usize, bits: &[u8]) -> Vec<u8> {
    let mut h =
        format!("{{'descr': '<V2', 'fortran_order': False, 'shape': ({n}, {d}), }}").into_bytes();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend_from_slice(&(h.len() as u16).to_le_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(bits);
    f
}

/// A zip archive of stored (uncompressed) members, each aligned to 64 bytes
/// as torch aligns its storages.
fn write_zip(path: &Path, members: &[(&str, &[u8])]) -> std::io::Result<()> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path)?);
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64)
        .large_file(true);
    for (name, bytes) in members {
        z.start_file(*name, opts).map_err(std::io::Error::other)?;
        z.write_all(bytes)?;
    }
    z.finish().map_err(std::io::Error::other)?;
    Ok(())
}

/// torch.save's data.pkl for {"model.embed_tokens.weight": bf16 n×d in storage "0"}
/// (protocol 2, as torch writes it).
fn torch_pickle(n: usize, d: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    let global = |p: &mut Vec<u8>, m: &str, name: &str| {
        p.push(b'c');
        p.extend_from_slice(format!("{m}\n{name}\n").as_bytes());
    };
    let unicode = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    };
    let int = |p: &mut Vec<u8>, v: usize| {
        p.push(b'J');
        p.extend_from_slice(&(v as i32).to_le_bytes());
    };
    global(&mut p, "collections", "OrderedDict");
    p.extend_from_slice(b")R"); // OrderedDict()
    unicode(&mut p, "model.embed_tokens.weight");
    global(&mut p, "torch._utils", "_rebuild_tensor_v2");
    p.push(b'('); // args
    p.push(b'('); // persistent id tuple
    unicode(&mut p, "storage");
    global(&mut p, "torch", "BFloat16Storage");
    unicode(&mut p, "0");
    unicode(&mut p, "cpu");
    int(&mut p, n * d);
    p.extend_from_slice(b"tQ"); // tuple, BINPERSID
    int(&mut p, 0); // storage offset
    p.push(b'(');
    int(&mut p, n);
    int(&mut p, d);
    p.push(b't'); // size
    p.push(b'(');
    int(&mut p, d);
    int(&mut p, 1);
    p.push(b't'); // stride
    p.push(0x89); // requires_grad False
    global(&mut p, "collections", "OrderedDict");
    p.extend_from_slice(b")R"); // backward hooks
    p.extend_from_slice(b"tR"); // args tuple, REDUCE
    p.extend_from_slice(b"s."); // SETITEM, STOP
    p
}

/// GGUF v3 with one tensor `token_embd.weight` (dims innermost first).
fn gguf_bytes(n: usize, d: usize, ggml_type: u32, data: &[u8]) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(1u64.to_le_bytes()); // tensors
    f.extend(0u64.to_le_bytes()); // metadata
    let name = "token_embd.weight";
    f.extend((name.len() as u64).to_le_bytes());
    f.extend(name.as_bytes());
    f.extend(2u32.to_le_bytes());
    f.extend((d as u64).to_le_bytes());
    f.extend((n as u64).to_le_bytes());
    f.extend(ggml_type.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.resize(f.len().next_multiple_of(32), 0);
    f.extend_from_slice(data);
    f
}

/// Q8_0 blocks of the bf16 values: per 32 values an f16 scale d = max|x|/127
/// and 32 i8 round(x/d), as ggml's quantize_row_q8_0_ref.
fn q8_0(bits: &[u8]) -> Vec<u8> {
    let vals: Vec<f32> = bits
        .chunks_exact(2)
        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let mut out = Vec::with_capacity(vals.len() / 32 * 34);
    for block in vals.chunks_exact(32) {
        let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|x| (x * id).round() as i8 as u8));
    }
    out
}

fn main() {
    let a = parse_args();
    let (n, d) = (a.n, a.d);
    let dir = a.data.join(format!("formats-{n}x{d}"));
    std::fs::create_dir_all(&dir).expect("bench data folder");
    let st = dir.join("model.safetensors");
    let offset = generate(&st, n, d).expect("write benchmark matrix") as usize;
    let file = std::fs::read(&st).expect("read the safetensors file");
    let bits = &file[offset..offset + n * d * 2];

    // Every other format, written from the same bytes.
    let sharded = dir.join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    std::fs::write(sharded.join("model-00002-of-00002.safetensors"), &file).unwrap();
    let other = r#"{"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut shard1 = (other.len() as u64).to_le_bytes().to_vec();
    shard1.extend_from_slice(other.as_bytes());
    shard1.extend_from_slice(&[0; 16]);
    std::fs::write(sharded.join("model-00001-of-00002.safetensors"), shard1).unwrap();
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        r#"{"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors","model.embed_tokens.weight":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let pt = dir.join("model.pt");
    write_zip(
        &pt,
        &[
            ("archive/data.pkl", &torch_pickle(n, d)),
            ("archive/byteorder", b"little"),
            ("archive/data/0", bits),
            ("archive/version", b"3\n"),
        ],
    )
    .unwrap();
    let gguf_bf16 = dir.join("bf16.gguf");
    std::fs::write(&gguf_bf16, gguf_bytes(n, d, 30, bits)).unwrap();
    let gguf_q8 = dir.join("q8_0.gguf");
    std::fs::write(&gguf_q8, gguf_bytes(n, d, 8, &q8_0(bits))).unwrap();
    let npy = dir.join("model.npy");
    write_npy(&npy, n, d, bits).unwrap();
    let npz = dir.join("model.npz");
    write_zip(&npz, &[("embeddings.npy", &npy_bytes(n, d, bits))]).unwrap();
    drop(file);

    let cases: Vec<(&str, &Path, Option<Dtype>)> = vec![
        ("safetensors", &st, None),
        ("sharded folder (index.json)", &sharded, None),
        ("PyTorch .pt (zip, stored)", &pt, None),
        ("GGUF BF16", &gguf_bf16, None),
        ("GGUF Q8_0 (+ dequantization)", &gguf_q8, None),
        ("NumPy .npy (<V2, --as bf16)", &npy, Some(Dtype::BF16)),
        ("NumPy .npz (stored)", &npz, Some(Dtype::BF16)),
        // The first row timed runs slower on a small machine whatever it
        // is: the same file again, last, shows how much of it is order.
        ("safetensors (again, timed last)", &st, None),
    ];
    println!(
        "formats: {n}x{d} bf16 ({:.0} MB), {} dead rows on 13 vectors; {}; median of {} runs",
        (n * d * 2) as f64 / 1e6,
        DEAD_SIZES.iter().sum::<usize>(),
        cpu_model(),
        a.reps
    );
    let floor = {
        let f = std::fs::read(&st).unwrap();
        time(a.reps, || read_pass(&f[offset..])).0
    };
    let mut engines: Vec<Box<dyn Engine>> = vec![Box::new(CpuEngine::new())];
    if a.gpu {
        match GpuEngine::new(true, GpuOptions::default()) {
            Ok(g) => engines.push(Box::new(g)),
            Err(e) => println!("no GPU row: {e}"),
        }
    }
    let opts_for = |reinterpret: Option<Dtype>| SurveyOptions {
        load: LoadOptions {
            reinterpret,
            ..Default::default()
        },
        ..Default::default()
    };
    for engine in &engines {
        let engine = engine.as_ref();
        // One untimed pass over every case first, so that no row pays for
        // the page cache warming up.
        for (_, path, reinterpret) in &cases {
            survey_file_with(engine, path, &opts_for(*reinterpret)).expect("survey");
        }
        let device = engine.device();
        println!(
            "\n| input ({}, {}) | load | load + survey | vs safetensors | vs read pass |",
            device.adapter, device.backend
        );
        println!("|---|---:|---:|---:|---:|");
        let mut base: Option<Duration> = None;
        let mut notes = Vec::new();
        for (name, path, reinterpret) in &cases {
            let opts = opts_for(*reinterpret);
            let (total, report) = time(a.reps, || {
                survey_file_with(engine, path, &opts).expect("survey")
            });
            let groups: Vec<usize> = report.groups.iter().map(|g| g.size).collect();
            if report.stored_dtype.starts_with('Q') {
                // Quantization is lossy: holes a bf16 step apart can merge.
                let dead: usize = groups.iter().sum();
                assert!(
                    dead >= DEAD_SIZES.iter().sum::<usize>(),
                    "{name}: {groups:?}"
                );
                notes.push(format!(
                    "{name}: {} groups of sizes {groups:?} (quantization merges holes a step apart)",
                    groups.len()
                ));
            } else {
                assert_eq!(groups, DEAD_SIZES, "{name}: the planted groups");
            }
            let load = Duration::from_secs_f64(report.timings_ms.load / 1e3);
            let base = *base.get_or_insert(total);
            println!(
                "| {name} | {} | {} | {:.2}× | {:.1}× |",
                fmt_time(load),
                fmt_time(total),
                total.as_secs_f64() / base.as_secs_f64(),
                total.as_secs_f64() / floor.as_secs_f64()
            );
        }
        for n in notes {
            println!("\n{n}");
        }
    }
    println!("\nread pass over the bytes (floor): {}", fmt_time(floor));
}
