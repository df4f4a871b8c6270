//! Helpers shared by the benchmarks: reproducible data, the safetensors
//! writer, timing, the machine's description, and finding the peer scripts.
// Each bench uses only part of this module.
#![allow(dead_code)]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

pub const KEY: &str = "model.embed_tokens.weight";

/// splitmix64, for reproducible data generated in parallel.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An approximately standard normal value from 64 random bits (the sum of
/// four uniforms, rescaled: Irwin–Hall, variance 4/12).
pub fn normal(r: u64) -> f32 {
    let u = |s: u32| ((r >> s) & 0xffff) as f32 / 65536.0;
    (u(0) + u(16) + u(32) + u(48) - 2.0) * 3f32.sqrt()
}

/// Writes a bf16 safetensors file of `n × d` at `path` (unless one of that
/// size is already there) with row `r` filled by `row(r, &mut bits)`, and
/// returns the data offset. Rows are generated in parallel, 4,096 at a time.
pub fn write_bf16(
    path: &Path,
    n: usize,
    d: usize,
    row: impl Fn(usize, &mut [u16]) + Sync,
) -> std::io::Result<u64> {
    let data_len = n * d * 2;
    let header = format!(
        "{{\"{KEY}\":{{\"dtype\":\"BF16\",\"shape\":[{n},{d}],\"data_offsets\":[0,{data_len}]}}}}"
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let offset = 8 + header.len() as u64;
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(offset + data_len as u64) {
        return Ok(offset);
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let tmp = path.with_extension("partial");
    let mut f = BufWriter::with_capacity(8 << 20, std::fs::File::create(&tmp)?);
    f.write_all(&(header.len() as u64).to_le_bytes())?;
    f.write_all(&header)?;
    let block = 4096;
    let mut bits = vec![0u16; block * d];
    for start in (0..n).step_by(block) {
        let end = (start + block).min(n);
        let chunk = &mut bits[..(end - start) * d];
        chunk
            .par_chunks_mut(d)
            .enumerate()
            .for_each(|(i, out)| row(start + i, out));
        let bytes: Vec<u8> = chunk.iter().flat_map(|b| b.to_le_bytes()).collect();
        f.write_all(&bytes)?;
    }
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    Ok(offset)
}

/// One read pass over the bytes: the floor for any exact survey.
pub fn read_pass(bytes: &[u8]) -> u64 {
    bytes
        .par_chunks(1 << 20)
        .map(|c| {
            let mut acc = 0u64;
            for w in c.chunks_exact(8) {
                acc = acc.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
            }
            acc
        })
        .reduce(|| 0, u64::wrapping_add)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median of `reps` runs after one warm-up run (page cache, pipelines,
/// thread pool), and the last run's result.
pub fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = f();
    let times = (0..reps)
        .map(|_| {
            let t = Instant::now();
            last = f();
            t.elapsed()
        })
        .collect();
    (median(times), last)
}

pub fn free_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// The CPU's model name (from /proc/cpuinfo) and its hardware threads.
pub fn cpu_model() -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| Some(l.split_once(':')?.1.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{name}, {threads} hardware threads")
}

/// A script under `scripts/`, relative to the working directory first (so a
/// copied binary finds it too), then to the source tree.
pub fn script(name: &str) -> Option<PathBuf> {
    [
        PathBuf::from("scripts").join(name),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// A duration as the tables print it.
pub fn fmt_time(t: Duration) -> String {
    let s = t.as_secs_f64();
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// Scatters groups of rows over `n` ids: the i-th of `sizes` gets `sizes[i]`
/// distinct ids drawn from a fixed sequence (`seed`); `who[r]` is its group.
pub fn scatter(n: usize, sizes: impl Iterator<Item = usize>, seed: u64) -> Vec<Option<u8>> {
    let mut who = vec![None; n];
    let mut k = 0u64;
    for (v, size) in sizes.enumerate() {
        let mut placed = 0;
        while placed < size {
            let r = (mix(seed ^ k) % n as u64) as usize;
            k += 1;
            if who[r].is_none() {
                who[r] = Some(v as u8);
                placed += 1;
            }
        }
    }
    who
}

/// Dead-row sizes of the 13 black holes of the benchmark matrices (Qwen3-like).
pub const DEAD_SIZES: [usize; 13] = [1200, 300, 150, 100, 80, 50, 40, 30, 20, 12, 8, 6, 4];

/// A bf16 value near N(0, 0.02) from 64 random bits.
pub fn bf16_bits(r: u64) -> u16 {
    let u = |s: u32| ((r >> s) & 0xffff) as f32 / 65536.0;
    let x = (u(0) + u(16) + u(32) + u(48) - 2.0) * 0.035;
    half::bf16::from_f32(x).to_bits()
}

/// Which of the 13 dead vectors row `r` holds, if any.
pub fn dead_assignment(n: usize) -> Vec<Option<u8>> {
    scatter(n, DEAD_SIZES.iter().copied(), 0xdead)
}

/// Writes the matrix as safetensors at `path` (unless already there) and
/// returns the data offset.
pub fn generate(path: &Path, n: usize, d: usize) -> std::io::Result<u64> {
    // 13 dead vectors a few bf16 steps apart: a base row, each other vector
    // moved by 1–3 steps in a few columns.
    let base: Vec<u16> = (0..d).map(|c| bf16_bits(mix(0xb1ac ^ c as u64))).collect();
    let dead: Vec<Vec<u16>> = (0..13u64)
        .map(|v| {
            let mut row = base.clone();
            for j in 0..v.min(3) + 1 {
                if v > 0 {
                    let c = (mix(v * 131 + j) % d as u64) as usize;
                    row[c] = row[c].wrapping_add(1 + (j as u16 % 3));
                }
            }
            row
        })
        .collect();
    let who = dead_assignment(n);
    write_bf16(path, n, d, |r, out| match who[r] {
        Some(v) => out.copy_from_slice(&dead[v as usize]),
        None => out
            .iter_mut()
            .enumerate()
            .for_each(|(c, x)| *x = bf16_bits(mix(((r as u64) << 24) ^ c as u64))),
    })
}
