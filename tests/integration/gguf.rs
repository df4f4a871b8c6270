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
