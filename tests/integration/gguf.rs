//! GGUF files: the fixtures under tests/fixtures/gguf/ were written by
//! scripts/make_gguf_fixtures.py with the `gguf` Python package (llama.cpp's
//! own writer), from examples/notebook_128.safetensors and a 40 × 512 matrix
//! with planted duplicates. Everything expected comes from outside the
//! library: the safetensors original parsed here by hand, the byte ranges
//! `gguf.GGUFReader` reported (manifest.json), and the values
//! `gguf.quants.dequantize` computed (`*.f32`). Malformed files are built
//! here byte by byte.

use crate::common::{self, expect_error_naming, run, run_json};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use singularity_gpu::internals::gguf::{self, GgufFile};
use singularity_gpu::internals::quant;
use singularity_gpu::load::{self, LoadOptions, StoredDtype};
use singularity_gpu::{survey_file, DeviceChoice, Dtype, SurveyOptions};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

const FLOAT_FILES: &[(&str, &str)] = &[
    ("f32.gguf", "F32"),
    ("f16.gguf", "F16"),
    ("bf16.gguf", "BF16"),
];
const QUANT_FILES: &[(&str, &str)] = &[
    ("q8_0.gguf", "Q8_0"),
    ("q4_0.gguf", "Q4_0"),
    ("q4_k.gguf", "Q4_K"),
    ("q6_k.gguf", "Q6_K"),
];
const TENSORS: &[&str] = &["token_embd.weight", "output.weight"];

/// What the manifest says of one tensor.
struct Expect {
    ty: String,
    rows: usize,
    cols: usize,
    /// Absolute byte range in the file.
    range: std::ops::Range<usize>,
    /// The gguf package's dequantized values, for a quantized tensor.
    values: Option<Vec<f32>>,
}

fn expect(m: &Value, file: &str, tensor: &str) -> Expect {
    let t = &m[file]["tensors"][tensor];
    let n = |v: &Value| v.as_u64().expect("number") as usize;
    let start = n(&t["offset"]);
    Expect {
        ty: t["type"].as_str().expect("type").to_string(),
        rows: n(&t["shape"][0]),
        cols: n(&t["shape"][1]),
        range: start..start + n(&t["n_bytes"]),
        values: t["expected_f32"]
            .as_str()
            .map(|f| f32s(&std::fs::read(dir().join(f)).expect("expected values"))),
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The example's rows as stored (f32), parsed from the safetensors layout by hand.
fn notebook_rows() -> Vec<Vec<f32>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notebook_128.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let t = &header["embeddings"];
    assert_eq!(t["shape"], serde_json::json!([128, 64]));
    let start = 8 + n + t["data_offsets"][0].as_u64().unwrap() as usize;
    f32s(&bytes[start..start + 128 * 64 * 4])
        .chunks_exact(64)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Groups (ids of rows with equal bytes, two or more), sorted.
fn groups_of<'a>(rows: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<usize>> {
    let mut by: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.enumerate() {
        by.entry(r).or_default().push(i);
    }
    let mut g: Vec<Vec<usize>> = by.into_values().filter(|g| g.len() > 1).collect();
    g.sort();
    g
}

fn f32_rows_bytes(rows: &[Vec<f32>]) -> Vec<Vec<u8>> {
    rows.iter()
        .map(|r| r.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect()
}

fn l2(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

fn cpu() -> SurveyOptions {
    SurveyOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    }
}

fn with_key(key: &str) -> SurveyOptions {
    let mut o = cpu();
    o.load.key = Some(key.to_string());
    o
}

fn json_groups(v: &Value) -> Vec<Vec<usize>> {
    let mut g: Vec<Vec<usize>> = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            g["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect()
        })
        .collect();
    g.sort();
    g
}

fn bad(bytes: &[u8], extra: &[&str], phrases: &[&str]) -> String {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("bad.gguf");
    std::fs::write(&path, bytes).unwrap();
    expect_error_naming(&run(&path, extra), &path, phrases)
}

// ---------------------------------------------------------------------------
// A GGUF writer for malformed files
// ---------------------------------------------------------------------------

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// One tensor info: name, dims (innermost first), ggml type, data offset.
struct Info<'a>(&'a str, &'a [u64], u32, u64);

/// A GGUF file: header, metadata entries (already encoded: key, type, value),
/// tensor infos, padding to `align`, then `data`.
fn gguf_bytes(version: u32, kvs: &[Vec<u8>], infos: &[Info], align: usize, data: &[u8]) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(version.to_le_bytes());
    f.extend((infos.len() as u64).to_le_bytes());
    f.extend((kvs.len() as u64).to_le_bytes());
    for kv in kvs {
        f.extend(kv);
    }
    for Info(name, dims, ty, offset) in infos {
        gstr(&mut f, name);
        f.extend((dims.len() as u32).to_le_bytes());
        for d in *dims {
            f.extend(d.to_le_bytes());
        }
        f.extend(ty.to_le_bytes());
        f.extend(offset.to_le_bytes());
    }
    f.resize(f.len().next_multiple_of(align), 0);
    f.extend(data);
    f
}

fn kv_u32(key: &str, v: u32) -> Vec<u8> {
    let mut kv = Vec::new();
    gstr(&mut kv, key);
    kv.extend(4u32.to_le_bytes());
    kv.extend(v.to_le_bytes());
    kv
}

/// A valid 2 × 32 F32 `token_embd.weight` (rows 0 and 1 equal), with `kvs`.
fn small(kvs: &[Vec<u8>], align: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..64)
        .flat_map(|i| ((i % 32) as f32).to_le_bytes())
        .collect();
    gguf_bytes(
        3,
        kvs,
        &[Info("token_embd.weight", &[32, 2], 0, 0)],
        align,
        &data,
    )
}

// ---------------------------------------------------------------------------
// Reading every type
// ---------------------------------------------------------------------------

#[test]
fn identity_is_on_the_stored_blocks() {
    // Four Q8_0 rows of one 34-byte block each (f16 scale d, 32 i8 q). Rows
    // 0, 1 and 3 have scale 0, so all decode to +0.0, but only rows 0 and 3
    // store the same block; row 2 is the same block as row 0 with scale 1.
    let block = |d: u16, q: i8| {
        let mut b = d.to_le_bytes().to_vec();
        b.extend(std::iter::repeat_n(q as u8, 32));
        b
    };
    let mut data = block(0, 1);
    data.extend(block(0, 2));
    data.extend(block(0x3c00, 1));
    data.extend(block(0, 1));
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[32, 4], 8, 0)],
        32,
        &data,
    );
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("zero_scales.gguf");
    std::fs::write(&path, f).unwrap();
    let v = run_json(&path, &[]);
    assert_eq!(v["stored_dtype"], "Q8_0");
    assert_eq!(json_groups(&v), vec![vec![0, 3]]);
    assert_eq!(v["n_unique"], 3);
    assert_eq!(v["groups"][0]["norm"], 0.0);
}

#[test]
fn hand_built_file_reads() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("small.gguf");
    std::fs::write(&path, small(&[], 32)).unwrap();
    let v = run_json(&path, &[]);
    assert_eq!(v["shape"], serde_json::json!([2, 32]));
    assert_eq!(json_groups(&v), vec![vec![0, 1]]);
    // Version 2 is read too.
    let mut f = small(&[], 32);
    f[4] = 2;
    std::fs::write(&path, &f).unwrap();
    assert_eq!(run_json(&path, &[])["shape"], serde_json::json!([2, 32]));
}

#[test]
fn float_types_match_the_safetensors_original() {
    let m = manifest();
    let rows = notebook_rows();
    let want_groups = groups_of(f32_rows_bytes(&rows).iter().map(Vec::as_slice));
    assert_eq!(want_groups.len(), 1);
    assert_eq!(want_groups[0].len(), 51);
    let original = survey_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notebook_128.safetensors"),
        &cpu(),
    )
    .unwrap();
    for &(file, ty) in FLOAT_FILES {
        let path = dir().join(file);
        let r = survey_file(&path, &cpu()).unwrap();
        assert_eq!(r.tensor, "token_embd.weight", "{file}");
        assert_eq!(r.shape, [128, 64], "{file}: dims [64, 128] reversed");
        assert_eq!(r.stored_dtype, ty);
        assert_eq!(r.dtype, ty);
        let mut got: Vec<Vec<usize>> = r.groups.iter().map(|g| g.token_ids.clone()).collect();
        got.sort();
        assert_eq!(got, want_groups, "{file}");
        // Norms against the f32 source: to the engine's f32 accumulation for F32
        // (and equal to the original's, below), else within the dtype's rounding.
        let rel = match ty {
            "F32" => 1e-7,
            "F16" => 2f64.powi(-10),
            _ => 2f64.powi(-7),
        };
        for g in &r.groups {
            let want = l2(&rows[g.token_ids[0]]);
            common::assert_close(g.norm.unwrap(), want, rel, &format!("{file} norm"));
        }
        if ty == "F32" {
            let a: Vec<_> = r.groups.iter().map(|g| g.norm).collect();
            let b: Vec<_> = original.groups.iter().map(|g| g.norm).collect();
            assert_eq!(a, b, "F32 norms equal the safetensors original's");
        }
        // Zero-copy: the bytes are the file's, at the range GGUFReader reported.
        let e = expect(&m, file, "token_embd.weight");
        assert_eq!(e.ty, ty);
        let loaded = load::open(&path, &LoadOptions::default()).unwrap();
        assert!(loaded.identity.is_none());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(loaded.matrix().bytes, &bytes[e.range.clone()]);
    }
}

#[test]
fn quantized_types_dequantize_like_the_gguf_package() {
    let m = manifest();
    for &(file, ty) in QUANT_FILES {
        let path = dir().join(file);
        let bytes = std::fs::read(&path).unwrap();
        for &tensor in TENSORS {
            let e = expect(&m, file, tensor);
            assert_eq!(e.ty, ty);
            let want = e.values.expect("expected values");
            assert_eq!(want.len(), e.rows * e.cols);
            let opts = LoadOptions {
                key: Some(tensor.into()),
                ..Default::default()
            };
            let loaded = load::open(&path, &opts).unwrap();
            assert_eq!(
                (loaded.rows, loaded.cols),
                (e.rows, e.cols),
                "{file} {tensor}"
            );
            assert_eq!(loaded.dtype, Dtype::F32);
            assert_eq!(loaded.info.stored_dtype, ty);
            assert_eq!(loaded.info.format, "GGUF");
            // Bit for bit the gguf package's values.
            assert_eq!(
                bits(&f32s(loaded.matrix().bytes)),
                bits(&want),
                "{file} {tensor}: dequantized values differ from gguf.quants.dequantize"
            );
            // Identity: exactly the stored blocks.
            let identity = loaded
                .identity
                .as_ref()
                .expect("identity of a quantized tensor");
            assert!(identity.is_mapped());
            assert_eq!(&identity[..], &bytes[e.range.clone()], "{file} {tensor}");
            // And the public dequantizer on the raw blocks.
            let dtype = match ty {
                "Q8_0" => StoredDtype::Q8_0,
                "Q4_0" => StoredDtype::Q4_0,
                "Q4_K" => StoredDtype::Q4_K,
                _ => StoredDtype::Q6_K,
            };
            assert_eq!(dtype.to_string(), ty);
            let v = quant::dequantize(&dtype, &bytes[e.range.clone()], e.rows, e.cols).unwrap();
            assert_eq!(bits(&v), bits(&want));
        }
    }
}

#[test]
fn quantized_groups_are_the_groups_of_identical_blocks() {
    let m = manifest();
    for &(file, _) in QUANT_FILES {
        let path = dir().join(file);
        let bytes = std::fs::read(&path).unwrap();
        for &tensor in TENSORS {
            let e = expect(&m, file, tensor);
            let blocks = &bytes[e.range.clone()];
            let want = groups_of(blocks.chunks_exact(blocks.len() / e.rows));
            assert!(
                !want.is_empty(),
                "{file} {tensor}: the fixture plants duplicates"
            );
            let values = e.values.unwrap();
            let r = survey_file(&path, &with_key(tensor)).unwrap();
            assert_eq!(r.shape, [e.rows, e.cols]);
            let mut got: Vec<Vec<usize>> = r.groups.iter().map(|g| g.token_ids.clone()).collect();
            got.sort();
            assert_eq!(got, want, "{file} {tensor}");
            for g in &r.groups {
                let i = g.token_ids[0];
                let want = l2(&values[i * e.cols..(i + 1) * e.cols]);
                // The CPU engine accumulates in f32 (notebook.rs allows 1e-7 too).
                common::assert_close(
                    g.norm.unwrap(),
                    want,
                    1e-7,
                    &format!("{file} {tensor} norm"),
                );
            }
        }
    }
}

#[test]
fn binary_reads_every_type() {
    let m = manifest();
    for &(file, ty) in FLOAT_FILES.iter().chain(QUANT_FILES) {
        let path = dir().join(file);
        let bytes = std::fs::read(&path).unwrap();
        for (tensor, extra) in [
            ("token_embd.weight", &[][..]),
            ("output.weight", &["--key", "output.weight"][..]),
        ] {
            let e = expect(&m, file, tensor);
            let v = run_json(&path, extra);
            assert_eq!(v["tensor"], tensor, "{file}");
            assert_eq!(
                v["shape"],
                serde_json::json!([e.rows, e.cols]),
                "{file} {tensor}"
            );
            assert_eq!(v["stored_dtype"], ty);
            let quantized = e.values.is_some();
            assert_eq!(v["dtype"], if quantized { "F32" } else { ty });
            let row_bytes = e.range.len() / e.rows;
            let want = groups_of(bytes[e.range.clone()].chunks_exact(row_bytes));
            assert_eq!(json_groups(&v), want, "{file} {tensor}");
        }
    }
}

#[test]
fn tokenizer_metadata_is_read_back() {
    let m = manifest();
    for &(file, _) in FLOAT_FILES.iter().chain(QUANT_FILES) {
        let g = GgufFile::open(&dir().join(file)).unwrap();
        let want = &m[file]["tokenizer"];
        let tokens = g.tokens().expect("tokenizer metadata");
        assert_eq!(tokens.model, want["model"].as_str().unwrap(), "{file}");
        let want_tokens: Vec<&str> = want["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tokens.tokens, want_tokens, "{file}");
        let want_types: Option<Vec<i32>> = want["token_types"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_i64().unwrap() as i32).collect());
        assert_eq!(tokens.token_types, want_types, "{file}");
        assert_eq!(g.gguf().version, 3);
        assert_eq!(
            g.gguf().alignment,
            m[file]["alignment"].as_u64().unwrap() as usize
        );
        assert_eq!(g.gguf().data_start % g.gguf().alignment, 0);
    }
    // Spot checks against the literals the script wrote.
    let t = GgufFile::open(&dir().join("q4_k.gguf"))
        .unwrap()
        .tokens()
        .unwrap();
    assert_eq!(t.model, "llama");
    assert_eq!(t.tokens[3], "<0x0A>");
    assert_eq!(t.tokens[4], "\u{2581}the");
    assert_eq!(t.token_types.as_deref(), Some(&[2, 3, 3, 6, 1, 1, 1][..]));
    let t = GgufFile::open(&dir().join("f32.gguf"))
        .unwrap()
        .tokens()
        .unwrap();
    assert_eq!(t.model, "gpt2");
    assert_eq!(t.tokens[1], "\u{120}hello");
    assert_eq!(t.token_types, None);
    // A file without tokenizer metadata.
    assert_eq!(gguf::parse(&small(&[], 32)).unwrap().tokens(), None);
}

#[test]
fn memory_is_the_stored_size_beside_the_values_size() {
    // The sizes gguf.GGUFReader reported (manifest.json n_bytes), and rows ×
    // columns × 4 for the f32 a quantized tensor is dequantized to.
    let m = manifest();
    for &(file, ty) in FLOAT_FILES.iter().chain(QUANT_FILES) {
        let path = dir().join(file);
        let e = expect(&m, file, "token_embd.weight");
        let v = run_json(&path, &[]);
        let quantized = e.values.is_some();
        let values = e.rows
            * e.cols
            * if quantized {
                4
            } else {
                e.range.len() / (e.rows * e.cols)
            };
        assert_eq!(v["memory_bytes"], e.range.len(), "{file}");
        assert_eq!(v["values_bytes"], values, "{file}");
        let text = String::from_utf8(run(&path, &[]).stdout).unwrap();
        let line = if quantized {
            format!(
                "Memory footprint: {:.2} MB as stored ({ty}), {:.2} MB dequantized to F32\n",
                e.range.len() as f64 / 1e6,
                values as f64 / 1e6
            )
        } else {
            format!("Memory footprint: {:.2} MB\n", e.range.len() as f64 / 1e6)
        };
        assert!(text.contains(&line), "{file}: no {line:?} in\n{text}");
    }
}

// ---------------------------------------------------------------------------
// One identity in every mode: --file and --series group a quantized tensor by
// its stored blocks, and a series counts displacement on the values
// ---------------------------------------------------------------------------

/// One Q8_0 block: f16 scale bits, then 32 quants.
fn q8_block(d: u16, q: [i8; 32]) -> Vec<u8> {
    let mut b = d.to_le_bytes().to_vec();
    b.extend(q.iter().map(|&x| x as u8));
    b
}

/// A Q8_0 block dequantized by hand (ggml's dequantize_row_q8_0: q × d in f32).
fn q8_values(block: &[u8]) -> Vec<f32> {
    let d = half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
    block[2..34].iter().map(|&q| q as i8 as f32 * d).collect()
}

/// Rows of Q8_0 blocks as a GGUF file holding `token_embd.weight`.
fn q8_file(rows: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let cols = 32 * rows[0].len() as u64;
    let data: Vec<u8> = rows.iter().flatten().flatten().copied().collect();
    gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[cols, rows.len() as u64], 8, 0)],
        32,
        &data,
    )
}

/// Six rows of two blocks. A (scale 0.5, even quants) and A' (scale 1, the
/// quants halved) decode to the same values, and so do B and B'; C is apart.
/// Rows 0 and 2 store [A, B], rows 1 and 3 [A', B], row 4 [A', B']: five
/// rows of one value, in three classes of blocks.
fn identity_blocks() -> [Vec<u8>; 7] {
    let p: [i8; 32] = std::array::from_fn(|j| 2 * (j as i8 % 8 + 1));
    let q: [i8; 32] = std::array::from_fn(|j| 4 * (j as i8 % 4 + 1));
    let c: [i8; 32] = std::array::from_fn(|j| j as i8 + 1);
    let mut c2 = c;
    c2[0] = 2;
    let a = q8_block(0x3800, p);
    let a2 = q8_block(0x3c00, p.map(|x| x / 2));
    let b = q8_block(0x3400, q);
    let b2 = q8_block(0x3800, q.map(|x| x / 2));
    [
        a,
        a2,
        b,
        b2,
        q8_block(0x3c00, c),
        q8_block(0x3c00, c2),
        Vec::new(),
    ]
}

/// The step-0 rows and the step-1 rows: row 2 re-encoded from [A, B] to
/// [A', B] (same values, other blocks), row 5's first value 1 → 2.
fn identity_steps() -> [Vec<Vec<Vec<u8>>>; 2] {
    let [a, a2, b, b2, c, c2, _] = identity_blocks();
    let step0 = vec![
        vec![a.clone(), b.clone()],
        vec![a2.clone(), b.clone()],
        vec![a.clone(), b.clone()],
        vec![a2.clone(), b.clone()],
        vec![a2.clone(), b2.clone()],
        vec![c.clone(), c.clone()],
    ];
    let mut step1 = step0.clone();
    step1[2] = vec![a2, b];
    step1[5] = vec![c2, c];
    [step0, step1]
}

/// Groups of rows by their stored blocks, and by their dequantized values.
fn block_and_value_groups(rows: &[Vec<Vec<u8>>]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let stored: Vec<Vec<u8>> = rows.iter().map(|r| r.concat()).collect();
    let values: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .flat_map(|b| q8_values(b))
                .flat_map(f32::to_le_bytes)
                .collect()
        })
        .collect();
    (
        groups_of(stored.iter().map(Vec::as_slice)),
        groups_of(values.iter().map(Vec::as_slice)),
    )
}

/// The devices to test: the CPU, and the GPU when there is an adapter.
fn devices() -> Vec<&'static str> {
    let mut d = vec!["cpu"];
    if common::gpu().is_some() {
        d.push("gpu");
    }
    d
}

/// `--series DIR --json` on `device`.
fn run_series_json(device: &str, dir: &Path) -> Value {
    let out = common::sg()
        .args(["--device", device, "--json", "--series"])
        .arg(dir)
        .output()
        .expect("run binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{device}: {:?}\n{stderr}", out.status);
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// Writes `steps` as `step_<k>.gguf` in a new folder under `tmp`.
fn write_steps(tmp: &TempDir, name: &str, steps: &[Vec<Vec<Vec<u8>>>]) -> PathBuf {
    let d = tmp.path().join(name);
    std::fs::create_dir(&d).unwrap();
    for (k, rows) in steps.iter().enumerate() {
        std::fs::write(d.join(format!("step_{k}.gguf")), q8_file(rows)).unwrap();
    }
    d
}

fn sorted_lists(v: &Value) -> Vec<Vec<usize>> {
    let mut g: Vec<Vec<usize>> = v
        .as_array()
        .expect("a list")
        .iter()
        .map(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect()
        })
        .collect();
    g.sort();
    g
}

#[test]
fn a_quantized_matrix_has_the_same_groups_by_file_and_by_series() {
    let [step0, _] = identity_steps();
    let (by_blocks, by_values) = block_and_value_groups(&step0);
    assert_eq!(by_blocks, vec![vec![0, 2], vec![1, 3]]);
    assert_eq!(
        by_values,
        vec![vec![0, 1, 2, 3, 4]],
        "the fixture is built so that blocks and values group differently"
    );
    let tmp = TempDir::new().unwrap();
    // The same file twice: two steps where nothing moves.
    let copy = write_steps(&tmp, "copy", &[step0.clone(), step0.clone()]);
    let file = run_json(&copy.join("step_0.gguf"), &[]);
    assert_eq!(json_groups(&file), by_blocks);
    assert_eq!(file["n_unique"], 4);
    // 6 rows × 2 blocks × 34 bytes stored; 6 × 64 f32 values.
    assert_eq!(file["memory_bytes"], 6 * 2 * 34);
    assert_eq!(file["values_bytes"], 6 * 64 * 4);
    for device in devices() {
        let doc = run_series_json(device, &copy);
        let s = &doc["series"];
        assert_eq!(doc["stored_dtype"], "Q8_0", "{device}");
        for p in s["per_step"].as_array().unwrap() {
            assert_eq!(p["n_unique"], file["n_unique"], "{device}");
            assert_eq!(p["black_holes"], by_blocks.len(), "{device}");
            assert_eq!(p["largest"], 2, "{device}");
            assert_eq!(p["tokens_in_holes"], 4, "{device}");
        }
        assert_eq!(s["per_step"][1]["moved"], 0, "{device}");
        assert!(s["events"].as_array().unwrap().is_empty(), "{device}");
        // The holes of step 0, still whole at the end, are --file's groups.
        assert_eq!(sorted_lists(&s["frozen"]), by_blocks, "{device}");
    }
}

/// The position of an f32 in the order of all f32 values (adjacent values
/// one apart): the brute-force measure of a step.
fn f32_position(x: f32) -> i64 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        -((b & 0x7fff_ffff) as i64)
    } else {
        b as i64
    }
}

#[test]
fn a_quantized_series_moves_by_blocks_and_counts_steps_of_the_values() {
    let steps = identity_steps();
    let tmp = TempDir::new().unwrap();
    let dir = write_steps(&tmp, "run", &steps);
    let (g0, _) = block_and_value_groups(&steps[0]);
    let (g1, v1) = block_and_value_groups(&steps[1]);
    assert_eq!(g1, vec![vec![1, 2, 3]]);
    assert_eq!(v1, vec![vec![0, 1, 2, 3, 4]]);
    // Moved: the rows whose blocks differ (2, re-encoded to the same values,
    // and 5), and how far their values went in f32 steps.
    let moved: Vec<usize> = (0..6).filter(|&t| steps[0][t] != steps[1][t]).collect();
    assert_eq!(moved, vec![2, 5]);
    let values =
        |rows: &[Vec<u8>]| -> Vec<f32> { rows.iter().flat_map(|b| q8_values(b)).collect() };
    let (mut max, mut sum) = (0u64, 0u64);
    for &t in &moved {
        let (a, b) = (values(&steps[0][t]), values(&steps[1][t]));
        let d: Vec<u64> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| f32_position(x).abs_diff(f32_position(y)))
            .collect();
        max = max.max(*d.iter().max().unwrap());
        sum += d.iter().sum::<u64>();
    }
    assert_eq!(max, 1 << 23, "1.0 → 2.0 is 2²³ steps of f32");
    let mut docs = Vec::new();
    for device in devices() {
        let doc = run_series_json(device, &dir);
        let s = &doc["series"];
        // Each step's summary is the one --file gives of that step's file.
        for (k, g) in [g0.clone(), g1.clone()].iter().enumerate() {
            let file = run_json(&dir.join(format!("step_{k}.gguf")), &[]);
            assert_eq!(json_groups(&file), *g, "step {k}");
            let p = &s["per_step"][k];
            assert_eq!(p["n_unique"], file["n_unique"], "{device} step {k}");
            assert_eq!(p["black_holes"], g.len(), "{device} step {k}");
            let largest = g.iter().map(Vec::len).max().unwrap_or(0);
            assert_eq!(p["largest"], largest, "{device} step {k}");
        }
        let p = &s["per_step"][1];
        assert_eq!(p["moved"], moved.len(), "{device}");
        assert_eq!(p["displacement"]["max_linf_steps"], max, "{device}");
        assert_eq!(
            p["displacement"]["mean_l1_steps"].as_f64(),
            Some(sum as f64 / moved.len() as f64),
            "{device}"
        );
        // Row 2 left the hole {0, 2}, which broke apart (2 evaporated from its
        // core: the tie keeps the smallest id); it joined {1, 3} as a single
        // token, which is no event.
        let n = serde_json::Value::Null;
        assert_eq!(
            s["tokens"]["first_moved"],
            serde_json::json!([n, n, 1, n, n, 1]),
            "{device}"
        );
        assert_eq!(
            s["tokens"]["evaporated_at"],
            serde_json::json!([n, n, 1, n, n, n]),
            "{device}"
        );
        assert_eq!(
            s["events"],
            serde_json::json!([
                { "step": 1, "kind": "evaporated", "token_ids": [2] },
                // Schema /2: the hole {0, 2} by size and smallest id; its
                // pieces are single tokens, the largest (a tie) the one
                // holding the smallest id, so only [2] is listed.
                {
                    "step": 1, "kind": "split", "size": 2, "representative": 0,
                    "largest_piece": { "size": 1, "representative": 0 },
                    "pieces": [[2]]
                }
            ]),
            "{device}"
        );
        assert_eq!(s["frozen"], serde_json::json!([[1, 3]]), "{device}");
        docs.push(doc["series"].clone());
    }
    // Both engines agree on everything, displacement included.
    assert!(docs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_series_whose_steps_are_quantized_differently_is_an_error() {
    // Step 1 holds step 0's dequantized values as F32: equal values, but
    // no blocks to compare with step 0's.
    let [step0, _] = identity_steps();
    let tmp = TempDir::new().unwrap();
    let dir = write_steps(&tmp, "mixed", std::slice::from_ref(&step0));
    let data: Vec<u8> = step0
        .iter()
        .flatten()
        .flat_map(|b| q8_values(b))
        .flat_map(f32::to_le_bytes)
        .collect();
    let f32_file = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[64, 6], 0, 0)],
        32,
        &data,
    );
    let step1 = dir.join("step_1.gguf");
    std::fs::write(&step1, f32_file).unwrap();
    let out = common::sg()
        .args(["--device", "cpu", "--series"])
        .arg(&dir)
        .output()
        .unwrap();
    expect_error_naming(&out, &step1, &["step 1", "F32", "Q8_0", "stored blocks"]);
}

// ---------------------------------------------------------------------------
// Malformed files: one line, exit 2, no panic
// ---------------------------------------------------------------------------

#[test]
fn truncated_files() {
    let f = std::fs::read(dir().join("f32.gguf")).unwrap();
    for n in [4, 7, 12, 23, 30, 100, 300, 420, 1000, f.len() - 1] {
        bad(&f[..n], &[], &["not a valid GGUF file"]);
    }
    bad(&f[..f.len() - 1], &[], &["runs past the end of the file"]);
    bad(&f[..100], &[], &["could hold"]);
    bad(&f[..150], &[], &["claims 20 bytes", "18 left"]);
    bad(&f[..200], &[], &["truncated", "tokenizer.ggml.tokens"]);
}

#[test]
fn huge_counts() {
    let mut f = small(&[], 32);
    f[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    bad(&f, &[], &["could hold"]);
    let mut f = small(&[], 32);
    f[16..24].copy_from_slice(&(1u64 << 62).to_le_bytes());
    bad(&f, &[], &["could hold"]);
    // An array claiming 2^60 strings.
    let mut kv = Vec::new();
    gstr(&mut kv, "tokenizer.ggml.tokens");
    kv.extend(9u32.to_le_bytes());
    kv.extend(8u32.to_le_bytes());
    kv.extend((1u64 << 60).to_le_bytes());
    bad(&small(&[kv], 32), &[], &["claims", "could hold"]);
    // A string claiming 2^63 bytes.
    let mut kv = Vec::new();
    gstr(&mut kv, "general.name");
    kv.extend(8u32.to_le_bytes());
    kv.extend((1u64 << 63).to_le_bytes());
    bad(&small(&[kv], 32), &[], &["claims"]);
    // Dimensions whose product overflows.
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[1 << 40, 1 << 40], 0, 0)],
        32,
        &[0; 64],
    );
    bad(&f, &[], &["too large"]);
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[32, 1 << 40], 0, 0)],
        32,
        &[0; 64],
    );
    bad(&f, &[], &["runs past the end"]);
}

#[test]
fn misaligned_offsets_and_offsets_past_eof() {
    let data = [0u8; 256];
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[32, 2], 0, 4)],
        32,
        &data,
    );
    bad(&f, &[], &["data offset 4", "alignment 32"]);
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[32, 2], 0, 1 << 20)],
        32,
        &data,
    );
    bad(&f, &[], &["runs past the end"]);
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[32, 2], 0, u64::MAX - 31)],
        32,
        &data,
    );
    bad(&f, &[], &["runs past the end"]);
}

#[test]
fn too_many_dimensions() {
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[1; 9], 0, 0)],
        32,
        &[0; 64],
    );
    bad(&f, &[], &["9 dimensions", "at most 4"]);
}

#[test]
fn bad_alignment() {
    for a in [0, 48, 3] {
        bad(
            &small(&[kv_u32("general.alignment", a)], 32),
            &[],
            &["general.alignment", "power of two"],
        );
    }
    // A string where an integer belongs.
    let mut kv = Vec::new();
    gstr(&mut kv, "general.alignment");
    kv.extend(8u32.to_le_bytes());
    gstr(&mut kv, "64");
    bad(&small(&[kv], 32), &[], &["general.alignment"]);
    // A valid non-default alignment moves the data.
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("a.gguf");
    std::fs::write(&path, small(&[kv_u32("general.alignment", 256)], 256)).unwrap();
    assert_eq!(run_json(&path, &[])["shape"], serde_json::json!([2, 32]));
}

#[test]
fn versions_and_byte_order() {
    let mut f = small(&[], 32);
    f[4..8].copy_from_slice(&1u32.to_le_bytes());
    bad(&f, &[], &["version 1", "not supported"]);
    f[4..8].copy_from_slice(&7u32.to_le_bytes());
    bad(&f, &[], &["version 7"]);
    let be = std::fs::read(dir().join("big_endian.gguf")).unwrap();
    bad(&be, &[], &["big-endian"]);
}

#[test]
fn unknown_and_unsupported_types() {
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[32, 2], 200, 0)],
        32,
        &[0; 256],
    );
    bad(&f, &[], &["GGML type 200"]);
    // Q5_K (13) is known, so its size is checked, but not decoded.
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[256, 2], 13, 0)],
        32,
        &[0; 352],
    );
    bad(&f, &[], &["Q5_K", "supported"]);
    // Rows that are not whole blocks.
    let f = gguf_bytes(
        3,
        &[],
        &[Info("token_embd.weight", &[100, 2], 12, 0)],
        32,
        &[0; 512],
    );
    bad(&f, &[], &["whole number of Q4_K blocks"]);
    // Unknown metadata value type.
    let mut kv = Vec::new();
    gstr(&mut kv, "x");
    kv.extend(99u32.to_le_bytes());
    kv.extend([0u8; 8]);
    bad(&small(&[kv], 32), &[], &["unknown value type 99"]);
    // --as applies to U16/I16 only.
    let q = dir().join("q8_0.gguf");
    let out = run(&q, &["--as", "bf16"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--as") && stderr.contains("Q8_0"),
        "{stderr}"
    );
}

#[test]
fn duplicate_names_and_non_utf8() {
    let f = gguf_bytes(
        3,
        &[],
        &[Info("t", &[32, 2], 0, 0), Info("t", &[32, 2], 0, 256)],
        32,
        &[0; 512],
    );
    bad(&f, &[], &["appears twice"]);
    let f = small(&[kv_u32("k", 1), kv_u32("k", 2)], 32);
    bad(&f, &[], &["appears twice"]);
    let mut f = small(&[], 32);
    let at = 24 + 8; // the first byte of the tensor's name
    f[at] = 0xFF;
    bad(&f, &[], &["not UTF-8"]);
}

/// Damage every header byte of every fixture in a few ways: the parser
/// answers Ok or Err, never panics, and what it accepts lies inside the file.
#[test]
fn parse_never_panics_on_damaged_headers() {
    for &(file, _) in FLOAT_FILES.iter().chain(QUANT_FILES) {
        let f = std::fs::read(dir().join(file)).unwrap();
        let header = gguf::parse(&f).unwrap().data_start;
        for n in 0..header {
            let _ = gguf::parse(&f[..n]);
        }
        let mut g = f.clone();
        for i in 0..header {
            for v in [0x00, 0xFF, 0x80, 0x09, g[i] ^ 0x01] {
                let old = g[i];
                g[i] = v;
                if let Ok(p) = gguf::parse(&g) {
                    for r in p.ranges.iter().flatten() {
                        assert!(r.start <= r.end && r.end <= g.len());
                    }
                }
                g[i] = old;
            }
        }
    }
}

#[test]
fn near_ulp_on_a_quantized_tensor_counts_steps_of_the_dequantized_values() {
    // Three Q8_0 rows of one block, scale 1: row 1 differs from row 0 in one
    // quant (5 → 6), row 2 in every quant (+40). In f32, 5.0 and 6.0 lie
    // bits(6.0) − bits(5.0) = 2^21 steps apart: the threshold that joins rows
    // 0 and 1 is exactly that many steps, whatever a quant step is.
    let q0: [i8; 32] = std::array::from_fn(|j| j as i8 % 7 + 1);
    let mut q1 = q0;
    q1[4] = 6;
    assert_eq!(q0[4], 5);
    let q2 = q0.map(|x| x + 40);
    let rows = [
        vec![q8_block(0x3c00, q0)],
        vec![q8_block(0x3c00, q1)],
        vec![q8_block(0x3c00, q2)],
    ];
    let steps = (6.0f32.to_bits() - 5.0f32.to_bits()) as u64;
    assert_eq!(q8_values(&rows[1][0])[4], 6.0);
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("near.gguf");
    std::fs::write(&path, q8_file(&rows)).unwrap();
    let components = |k: u64| -> Vec<Vec<u64>> {
        let v = run_json(&path, &["--near-ulp", &k.to_string()]);
        v["near"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["token_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect()
            })
            .collect()
    };
    assert_eq!(components(steps), vec![vec![0, 1]]);
    assert!(components(steps - 1).is_empty());
}
