//! End-to-end tests of the `singularity-gpu` binary.
//!
//! Every bad input must end the process with exit code 2, print nothing on
//! stdout, and print exactly one line on stderr that starts with
//! `singularity-gpu: error:`, names the problem and (where there is one) the
//! file. The bad inputs are a table, one row per input, run by one loop. The
//! good inputs check the report against values computed here, in f64, from
//! the numbers the test wrote. Everything runs with `--device cpu`, except
//! the test of `--device auto`'s fallback notice.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::{
    each_row, example_f32, example_path, expect_error, expect_error_naming, f32_matrix, run,
    run_json, run_text, safetensors, sg, write,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (n − 1).
fn sample_std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn widen(row: &[f32]) -> Vec<f64> {
    row.iter().map(|&x| x as f64).collect()
}

/// Asserts `actual` (a JSON number) is within 1e-9 relative of `expected`.
fn assert_close(actual: &Value, expected: f64, what: &str) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {actual}"));
    let tol = 1e-9 * expected.abs().max(1e-300);
    assert!(
        (a - expected).abs() <= tol,
        "{what}: got {a}, expected {expected}"
    );
}

// ---------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------

/// What a bad-input row runs the binary on (`--file PATH`).
enum Input {
    /// A file of these bytes, written under this name in a fresh folder.
    File(&'static str, Vec<u8>),
    /// A name in a fresh folder where nothing is.
    Missing(&'static str),
    /// A fresh, empty folder.
    EmptyFolder,
}

/// One bad input: the run must be a user error (see [`expect_error`]) whose
/// line names the input's path, holds every phrase of `says` and none of
/// `never`.
struct Bad {
    row: &'static str,
    input: Input,
    args: &'static [&'static str],
    says: Vec<String>,
    never: &'static [&'static str],
}

fn bad(row: &'static str, input: Input, args: &'static [&'static str], says: &[&str]) -> Bad {
    Bad {
        row,
        input,
        args,
        says: says.iter().map(|s| s.to_string()).collect(),
        never: &[],
    }
}

impl Bad {
    fn never(self, never: &'static [&'static str]) -> Self {
        Self { never, ..self }
    }
}

/// A safetensors file of this header over this many zero bytes of data.
fn zeros(header_json: &str, data_len: usize) -> Vec<u8> {
    safetensors(header_json, &vec![0u8; data_len])
}

/// Every bad input; each row is named after what it tests.
#[rustfmt::skip] // a table: one row per input, laid out by hand
fn bad_inputs() -> Vec<Bad> {
    use Input::{EmptyFolder, File, Missing};

    // A ZIP local-file header with no archive after it: recognised as a zip
    // (a PyTorch checkpoint's container), and refused as a truncated one.
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    zip.extend_from_slice(&[0u8; 20]);
    zip.extend_from_slice(b"tensor.bin");
    zip.extend_from_slice(&[0xAB; 40]);

    // The header length says 200 bytes; the file has far fewer after it.
    let mut cut_header = 200u64.to_le_bytes().to_vec();
    cut_header.extend_from_slice(br#"{"emb":{"dtype":"F32""#);
    let only = format!("only {}", cut_header.len() - 8);

    // 5e9 × 4096 F32 = 81,920,000,000,000 bytes declared. Nothing may be
    // allocated from that size: the run must come back at once with an error.
    let declared: u64 = 5_000_000_000 * 4096 * 4;
    let huge = format!(
        r#"{{"emb":{{"dtype":"F32","shape":[5000000000,4096],"data_offsets":[0,{declared}]}}}}"#
    );

    let len_2_62: u64 = 1 << 62;
    let header_length = |n: u64| [n.to_le_bytes().to_vec(), br#"{"emb":{}}"#.to_vec()].concat();

    let mut not_utf8 = vec![b'{', b'"'];
    not_utf8.extend_from_slice(&[0xFF, 0xFE, 0xC3, 0x28]);
    not_utf8.extend_from_slice(b"\":{}}");
    let not_utf8 = [(not_utf8.len() as u64).to_le_bytes().to_vec(), not_utf8].concat();

    let two_by_two = f32_matrix("emb", &[&[1.0, 2.0], &[3.0, 4.0]]);
    let padded = [two_by_two.clone(), b"GARBAGE!".to_vec()].concat();

    // JSON lets a name hold a newline; the error must still be one line.
    let newline_name = zeros(concat!(
        r#"{"a\nb":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#,
        r#""c":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}"#), 32);

    vec![
        // Not a tensor file at all.
        bad("missing_file", Missing("does-not-exist.safetensors"), &[], &["no such file or folder"]),
        bad("directory_as_file", EmptyFolder, &[],
            &["a folder", "model.safetensors.index.json", "model.safetensors"]),
        bad("not_safetensors_zip", File("model.zip", zip), &[],
            &["not a valid zip file", "end-of-central-directory"]),
        bad("not_safetensors_text",
            File("notes.txt", b"This is a plain text file, not a tensor file.\nSecond line.\n".to_vec()),
            &[], &["not a file format singularity-gpu reads", r#"first bytes "This is a plain ""#]),
        bad("shorter_than_header_length", File("short.safetensors", vec![1, 2, 3, 4, 5]), &[],
            &["not a file format", r#"first bytes "\x01\x02\x03\x04\x05""#]),
        bad("empty_file", File("empty.safetensors", vec![]), &[],
            &["not a file format", "none (the file is empty)"]),

        // Sizes and offsets that do not add up.
        bad("truncated_data: [4, 4] F32 = 64 bytes declared, 40 present",
            File("truncated.safetensors",
                 zeros(r#"{"emb":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}"#, 40)),
            &[], &["truncated"]),
        bad("truncated_header", File("cut-header.safetensors", cut_header), &[],
            &["header length", "200 bytes", &only]),
        bad("offsets_not_matching_dtype_and_shape: [4, 4] F32 is 64 bytes, the offsets claim 60",
            File("lying-offsets.safetensors",
                 zeros(r#"{"emb":{"dtype":"F32","shape":[4,4],"data_offsets":[0,60]}}"#, 60)),
            &[], &["data offsets", "dtype and shape"]),
        bad("overlapping_offsets: a [0, 16), b [8, 24)",
            File("overlap.safetensors", zeros(concat!(
                r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#,
                r#""b":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#), 24)),
            &[], &["data offsets", "\"b\"", "overlap"]),
        bad("gap_between_offsets: a [0, 16), b [20, 36)",
            File("gap.safetensors", zeros(concat!(
                r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#,
                r#""b":{"dtype":"F32","shape":[2,2],"data_offsets":[20,36]}}"#), 36)),
            &[], &["data offsets", "\"b\"", "gap"]),
        bad("offsets_past_end_of_file: [8, 8] F32 = 256 bytes, the file ends after 16",
            File("past-end.safetensors",
                 zeros(r#"{"emb":{"dtype":"F32","shape":[8,8],"data_offsets":[0,256]}}"#, 16)),
            &[], &["does not end where the file ends"]),
        bad("billions_of_rows_with_tiny_data: offsets as declared",
            File("huge.safetensors", zeros(&huge, 64)), &[], &["truncated"]),
        bad("billions_of_rows_with_tiny_data: offsets covering only the data",
            File("huge-small-offsets.safetensors",
                 zeros(r#"{"emb":{"dtype":"F32","shape":[5000000000,4096],"data_offsets":[0,64]}}"#, 64)),
            &[], &["dtype and shape"]),
        bad("shape_whose_size_overflows: 2^62 × 2^62 elements",
            File("overflow.safetensors", zeros(concat!(
                r#"{"emb":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"#,
                r#""data_offsets":[0,16]}}"#), 16)),
            &[], &["too large", "overflows"]),
        bad("header_length_two_to_the_62", File("len-2-62.safetensors", header_length(len_2_62)), &[],
            &["header length", &len_2_62.to_string(), "100 MB"]),
        bad("header_length_u64_max", File("len-max.safetensors", header_length(u64::MAX)), &[],
            &["header length", &u64::MAX.to_string(), "100 MB"]),

        // Headers that are not what they should be.
        bad("header_not_json", File("not-json.safetensors", safetensors("this is { not json", &[])),
            &[], &["not valid safetensors JSON"]),
        bad("header_json_of_wrong_form: valid JSON, not a map of tensor descriptions",
            File("array.safetensors", safetensors("[1, 2, 3]", &[])), &[],
            &["not valid safetensors JSON"]),
        bad("header_not_utf8", File("not-utf8.safetensors", not_utf8), &[], &["not UTF-8"]),
        bad("unsupported_dtype_i32",
            File("i32.safetensors",
                 zeros(r#"{"emb":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#, 16)),
            &[], &["dtype I32", "supported", "\"emb\""]),
        bad("unsupported_dtype_bool",
            File("bool.safetensors", safetensors(
                r#"{"mask":{"dtype":"BOOL","shape":[2,2],"data_offsets":[0,4]}}"#, &[1, 0, 0, 1])),
            &[], &["dtype BOOL", "supported", "\"mask\""]),
        bad("unknown_dtype_name",
            File("q4.safetensors",
                 zeros(r#"{"emb":{"dtype":"Q4_K","shape":[2,2],"data_offsets":[0,16]}}"#, 16)),
            &[], &["not valid safetensors JSON", "Q4_K"]),
        bad("newline_in_dtype_still_one_line",
            File("nl-dtype.safetensors",
                 zeros(r#"{"emb":{"dtype":"F\n32","shape":[2,2],"data_offsets":[0,16]}}"#, 16)),
            &[], &["not valid safetensors JSON"]),

        // The tensor choice.
        bad("unknown_key_lists_two_d_tensors (and not the 1-D one)",
            File("keys.safetensors", zeros(concat!(
                r#"{"alpha":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#,
                r#""beta":{"dtype":"F16","shape":[3,2],"data_offsets":[16,28]},"#,
                r#""bias":{"dtype":"F32","shape":[4],"data_offsets":[28,44]}}"#), 44)),
            &["--key", "gamma"],
            &["no tensor named \"gamma\"", "2-D tensors", "\"alpha\" [2, 2] F32", "\"beta\" [3, 2] F16"])
            .never(&["bias"]),
        bad("key_naming_a_one_d_tensor",
            File("one-d.safetensors", zeros(concat!(
                r#"{"emb":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#,
                r#""bias":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}"#), 32)),
            &["--key", "bias"], &["\"bias\"", "[4]", "must be 2-D"]),
        bad("key_naming_a_three_d_tensor",
            File("three-d.safetensors", zeros(concat!(
                r#"{"emb":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"#,
                r#""conv":{"dtype":"F32","shape":[2,2,2],"data_offsets":[16,48]}}"#), 48)),
            &["--key", "conv"], &["\"conv\"", "[2, 2, 2]", "must be 2-D"]),
        bad("no_two_d_tensor_at_all",
            File("no-2d.safetensors", zeros(concat!(
                r#"{"bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"#,
                r#""cube":{"dtype":"F32","shape":[2,2,2],"data_offsets":[16,48]}}"#), 48)),
            &[], &["no 2-D tensor"]),
        bad("newline_in_tensor_name_still_one_line: --key",
            File("nl-name.safetensors", newline_name.clone()), &["--key", "zz"], &["no tensor named"]),
        bad("newline_in_tensor_name_still_one_line: neither name is an embedding name",
            File("nl-name2.safetensors", newline_name), &[], &["no embedding tensor found"]),

        // Shapes and dtypes the survey cannot take.
        bad("zero_rows",
            File("zero-rows.safetensors",
                 zeros(r#"{"emb":{"dtype":"F32","shape":[0,8],"data_offsets":[0,0]}}"#, 0)),
            &[], &["[0, 8]", "no rows"]),
        bad("zero_columns",
            File("zero-cols.safetensors",
                 zeros(r#"{"emb":{"dtype":"F32","shape":[8,0],"data_offsets":[0,0]}}"#, 0)),
            &[], &["[8, 0]", "no columns"]),
        bad("u16_without_as",
            File("u16.safetensors",
                 zeros(r#"{"emb":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#, 8)),
            &[], &["U16", "--as bf16", "--as f16"]),
        bad("as_bf16_on_f32", File("f32.safetensors", two_by_two), &["--as", "bf16"],
            &["--as applies to U16/I16", "F32"]),
        bad("trailing_garbage_after_data", File("padded.safetensors", padded), &[], &["padded"]),
    ]
}

#[test]
fn bad_inputs_are_one_line_errors_naming_the_file() {
    each_row(
        &bad_inputs(),
        |b| b.row.to_string(),
        |b| {
            let dir = TempDir::new().unwrap();
            let path = match &b.input {
                Input::File(name, bytes) => write(&dir, name, bytes),
                Input::Missing(name) => dir.path().join(name),
                Input::EmptyFolder => dir.path().to_path_buf(),
            };
            let says: Vec<&str> = b.says.iter().map(String::as_str).collect();
            let line = expect_error_naming(&run(&path, b.args), &path, &says);
            for word in b.never {
                assert!(!line.contains(word), "{word:?} should not be in:\n{line}");
            }
        },
    );
}

#[test]
fn newline_in_file_name_still_one_line() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "two\nlines.safetensors", &[1, 2, 3]);
    let out = run(&path, &[]);
    // The path is named with its newline escaped.
    let line = expect_error(&out, &["not a file format"]);
    let escaped = dir.path().join("two\\nlines.safetensors");
    assert!(line.contains(&escaped.display().to_string()), "{line}");
}

// ---------------------------------------------------------------------------
// Good inputs
// ---------------------------------------------------------------------------

#[test]
fn json_report_of_hand_built_matrix() {
    // Rows 0, 2, 5 share A; rows 1, 4 share B; row 3 is alone.
    let a: &[f32] = &[1.0, 2.0, 2.0];
    let b: &[f32] = &[0.5, -1.5, 3.25];
    let c: &[f32] = &[-4.0, 0.0, 1.0];
    let rows: [&[f32]; 6] = [a, b, a, c, b, a];
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "six.safetensors", &f32_matrix("embeddings", &rows));
    let j = run_json(&path, &[]);

    let keys: BTreeSet<&str> = j
        .as_object()
        .expect("top level is an object")
        .keys()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = [
        "schema",
        "file",
        "format",
        "tensor",
        "role",
        "dtype",
        "stored_dtype",
        "shape",
        "memory_bytes",
        "values_bytes",
        "device",
        "equality",
        "n_unique",
        "n_duplicate",
        "uniqueness",
        "duplicate_fraction",
        "dedup_ratio",
        "group_sizes",
        "groups",
        "pairwise_skipped",
        "geometry",
        "lattice",
        "lattice_skipped",
        "timings_ms",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, want);
    // Nested objects have exactly the documented fields too.
    let key_set = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |names: &[&str]| -> Vec<String> {
        let mut k: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(
        key_set(&j["device"]),
        sorted(&["kind", "adapter", "backend"])
    );
    assert_eq!(
        key_set(&j["groups"][0]),
        sorted(&["size", "token_ids", "norm"])
    );
    assert_eq!(
        key_set(&j["group_sizes"]),
        sorted(&["largest", "smallest", "mean", "median", "distribution"])
    );
    assert_eq!(
        key_set(&j["group_sizes"]["distribution"][0]),
        sorted(&["size", "count"])
    );
    let geo = &j["geometry"];
    assert_eq!(
        key_set(geo),
        sorted(&[
            "black_hole_norms",
            "pairwise_l2",
            "cloud_norms",
            "centroid_norm",
            "norm_ratio"
        ])
    );
    assert_eq!(
        key_set(&geo["black_hole_norms"]),
        sorted(&["min", "max", "mean", "std"])
    );
    assert_eq!(
        key_set(&geo["pairwise_l2"]),
        sorted(&["min", "max", "mean", "median"])
    );
    assert_eq!(key_set(&geo["cloud_norms"]), sorted(&["mean", "std"]));
    assert_eq!(
        key_set(&j["timings_ms"]),
        sorted(&["load", "hash", "group", "geometry", "lattice", "nearest", "near", "total"])
    );

    assert_eq!(j["schema"], "singularity-gpu/1");
    assert_eq!(j["file"], path.display().to_string());
    assert_eq!(j["tensor"], "embeddings");
    assert_eq!(j["dtype"], "F32");
    assert_eq!(j["stored_dtype"], "F32");
    assert_eq!(j["shape"], serde_json::json!([6, 3]));
    assert_eq!(
        j["memory_bytes"],
        rows.len() * 3 * std::mem::size_of::<f32>()
    );
    // Not quantized: the values surveyed are what is stored.
    assert_eq!(j["values_bytes"], j["memory_bytes"]);
    assert_eq!(j["device"]["kind"], "cpu");
    assert_eq!(j["equality"], "bitwise");
    assert_eq!(j["n_unique"], 3);
    assert_eq!(j["n_duplicate"], 3);
    assert_eq!(j["uniqueness"].as_f64(), Some(0.5));
    assert_close(&j["duplicate_fraction"], 3.0 / 6.0, "duplicate fraction");
    assert_close(&j["dedup_ratio"], 6.0 / 3.0, "dedup ratio");
    // Groups of 3 and 2 rows: numpy.median([2, 3]) = 2.5.
    assert_eq!(
        j["group_sizes"],
        serde_json::json!({
            "largest": 3,
            "smallest": 2,
            "mean": 2.5,
            "median": 2.5,
            "distribution": [{"size": 2, "count": 1}, {"size": 3, "count": 1}]
        })
    );
    assert!(j["pairwise_skipped"].is_null());

    let (a64, b64) = (widen(a), widen(b));
    let (na, nb) = (l2(&a64), l2(&b64));
    let groups = j["groups"].as_array().expect("groups array");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["size"], 3);
    assert_eq!(groups[0]["token_ids"], serde_json::json!([0, 2, 5]));
    assert_close(&groups[0]["norm"], na, "group 1 norm");
    assert_eq!(groups[1]["size"], 2);
    assert_eq!(groups[1]["token_ids"], serde_json::json!([1, 4]));
    assert_close(&groups[1]["norm"], nb, "group 2 norm");

    let geo = &j["geometry"];
    // Two black holes: one distance.
    let diff: Vec<f64> = a64.iter().zip(&b64).map(|(x, y)| x - y).collect();
    let d = l2(&diff);
    for k in ["min", "max", "mean", "median"] {
        assert_close(&geo["pairwise_l2"][k], d, &format!("pairwise_l2.{k}"));
    }
    let bh = [na, nb];
    assert_close(&geo["black_hole_norms"]["min"], na.min(nb), "bh min");
    assert_close(&geo["black_hole_norms"]["max"], na.max(nb), "bh max");
    assert_close(&geo["black_hole_norms"]["mean"], mean(&bh), "bh mean");
    assert_close(&geo["black_hole_norms"]["std"], sample_std(&bh), "bh std");

    let norms: Vec<f64> = rows.iter().map(|r| l2(&widen(r))).collect();
    assert_close(&geo["cloud_norms"]["mean"], mean(&norms), "cloud mean");
    assert_close(&geo["cloud_norms"]["std"], sample_std(&norms), "cloud std");
    let centroid: Vec<f64> = (0..3)
        .map(|col| rows.iter().map(|r| r[col] as f64).sum::<f64>() / rows.len() as f64)
        .collect();
    assert_close(&geo["centroid_norm"], l2(&centroid), "centroid norm");
    assert_close(
        &geo["norm_ratio"],
        mean(&bh) / mean(&norms),
        "black hole / cloud norm ratio",
    );

    let t = j["timings_ms"].as_object().expect("timings object");
    let tk: BTreeSet<&str> = t.keys().map(String::as_str).collect();
    let want_t: BTreeSet<&str> = [
        "load", "hash", "group", "geometry", "lattice", "nearest", "near", "total",
    ]
    .into_iter()
    .collect();
    assert_eq!(tk, want_t);
    for (k, v) in t {
        let ms = v
            .as_f64()
            .unwrap_or_else(|| panic!("timing {k} not a number"));
        assert!(ms.is_finite() && ms >= 0.0, "timing {k} = {ms}");
    }
}

#[test]
fn one_group_has_no_pairwise_and_no_std() {
    let rows: [&[f32]; 3] = [&[1.0, 2.0], &[1.0, 2.0], &[3.0, 4.0]];
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "one-group.safetensors", &f32_matrix("emb", &rows));

    let j = run_json(&path, &[]);
    assert_eq!(j["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(j["groups"][0]["token_ids"], serde_json::json!([0, 1]));
    assert!(j["geometry"]["pairwise_l2"].is_null(), "{}", j["geometry"]);
    assert!(
        j["geometry"]["black_hole_norms"]["std"].is_null(),
        "{}",
        j["geometry"]
    );
    let n = l2(&[1.0, 2.0]);
    for k in ["min", "max", "mean"] {
        assert_close(&j["geometry"]["black_hole_norms"][k], n, k);
    }

    let text = run_text(&path, &[]);
    assert!(text.contains("n/a"), "text report should say n/a:\n{text}");
    let std_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Std:"))
        .unwrap_or_else(|| panic!("no Std line:\n{text}"));
    assert!(std_line.contains("n/a"), "{std_line}");
    assert!(
        !text.contains("Pairwise L2 distances"),
        "no pairwise section with one black hole:\n{text}"
    );
    // Only the Equality line may speak of NaN; no number is printed as NaN.
    for line in text.lines().filter(|l| !l.starts_with("Equality:")) {
        assert!(!line.to_lowercase().contains("nan"), "{line}");
    }
}

#[test]
fn no_groups_has_null_black_hole_geometry() {
    let rows: [&[f32]; 3] = [&[1.0, 2.0], &[2.0, 1.0], &[3.0, 4.0]];
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "no-groups.safetensors", &f32_matrix("emb", &rows));
    let j = run_json(&path, &[]);
    assert_eq!(j["groups"], serde_json::json!([]));
    assert_eq!(j["n_unique"], 3);
    assert_eq!(j["n_duplicate"], 0);
    assert_eq!(j["duplicate_fraction"].as_f64(), Some(0.0));
    assert_eq!(j["dedup_ratio"].as_f64(), Some(1.0));
    assert!(j["group_sizes"].is_null());
    assert!(j["pairwise_skipped"].is_null());
    assert!(j["geometry"]["pairwise_l2"].is_null());
    for k in ["min", "max", "mean", "std"] {
        assert!(j["geometry"]["black_hole_norms"][k].is_null(), "{k}");
    }
    assert!(j["geometry"]["norm_ratio"].is_null());
}

#[test]
fn numeric_equality_merges_signed_zeros() {
    let rows: [&[f32]; 2] = [&[0.0, 1.0], &[-0.0, 1.0]];
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "zeros.safetensors", &f32_matrix("emb", &rows));

    let bitwise = run_json(&path, &[]);
    assert_eq!(bitwise["groups"], serde_json::json!([]));
    assert_eq!(bitwise["n_unique"], 2);
    assert!(bitwise.get("nan_rows").is_none());

    assert_eq!(bitwise["equality"], "bitwise");

    let numeric = run_json(&path, &["--numeric-equality"]);
    assert_eq!(numeric["equality"], "numeric");
    assert_eq!(numeric["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(numeric["groups"][0]["size"], 2);
    assert_eq!(numeric["groups"][0]["token_ids"], serde_json::json!([0, 1]));
    assert_eq!(numeric["n_unique"], 1);
    assert_eq!(numeric["n_duplicate"], 1);
    assert_eq!(numeric["nan_rows"], serde_json::json!([]));
}

#[test]
fn numeric_equality_reports_nan_rows() {
    // Rows 0 and 2 hold the same NaN bits; row 1 is ordinary.
    let nan = f32::NAN;
    let rows: [&[f32]; 3] = [&[nan, 1.0], &[2.0, 3.0], &[nan, 1.0]];
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "nan.safetensors", &f32_matrix("emb", &rows));

    let numeric = run_json(&path, &["--numeric-equality"]);
    assert_eq!(numeric["nan_rows"], serde_json::json!([0, 2]));
    // A row holding NaN equals nothing, so every row is unique.
    assert_eq!(numeric["groups"], serde_json::json!([]));
    assert_eq!(numeric["n_unique"], 3);

    let bitwise = run_json(&path, &[]);
    assert!(
        bitwise.get("nan_rows").is_none(),
        "nan_rows must be absent without the flag: {bitwise}"
    );
    // Bitwise, identical NaN bit patterns do group; their norm is undefined (null).
    assert_eq!(bitwise["groups"][0]["token_ids"], serde_json::json!([0, 2]));
    assert!(bitwise["groups"][0]["norm"].is_null());
    assert!(bitwise["geometry"]["cloud_norms"]["mean"].is_null());

    let text = run_text(&path, &["--numeric-equality"]);
    assert!(text.contains("Rows holding NaN"), "{text}");
}

/// The bundled example's F32 shape, read from its header: (rows, columns).
fn example_shape() -> (usize, usize) {
    let (rows, cols, _) = example_f32();
    (rows, cols)
}

/// Unique-row statistics of the bundled example, computed here from its bytes:
/// (rows, unique rows, size of the largest group of identical rows). Also
/// checks that there is exactly one group (the report says "Group 1/1").
fn example_stats() -> (usize, usize, usize) {
    let (rows, cols, data) = example_f32();
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for row in data.chunks_exact(cols * 4) {
        *counts.entry(row).or_default() += 1;
    }
    let largest = counts.values().copied().max().unwrap();
    assert_eq!(counts.values().filter(|&&c| c > 1).count(), 1);
    (rows, counts.len(), largest)
}

#[test]
fn bundled_example_text_report() {
    let (rows, unique, largest) = example_stats();
    assert_eq!((rows, unique, largest), (128, 78, 51));
    let text = run_text(&example_path(), &[]);
    assert!(
        text.contains(&format!("Unique vectors: {unique}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Duplicate tokens: {}", rows - unique)),
        "{text}"
    );
    assert!(
        text.contains(&format!("Group 1/1: {largest} tokens")),
        "{text}"
    );
    assert!(text.contains("Unique vectors: 78"), "{text}");
    assert!(text.contains("Duplicate tokens: 50"), "{text}");
    assert!(text.contains("Group 1/1: 51 tokens"), "{text}");
}

#[test]
fn bundled_example_truncates_long_groups() {
    let (_, _, largest) = example_stats();
    let text = run_text(&example_path(), &["--max-tokens-per-group", "5"]);
    let more = format!("... and {} more tokens", largest - 5);
    assert!(text.contains(&more), "{text}");
}

#[test]
fn bundled_example_derived_numbers() {
    let (rows, cols) = example_shape();
    let (_, unique, largest) = example_stats();
    let memory = rows * cols * std::mem::size_of::<f32>();
    let duplicates = rows - unique;

    let j = run_json(&example_path(), &[]);
    assert_eq!(j["memory_bytes"], memory);
    assert_close(
        &j["duplicate_fraction"],
        duplicates as f64 / rows as f64,
        "duplicate fraction",
    );
    assert_close(
        &j["dedup_ratio"],
        rows as f64 / unique as f64,
        "dedup ratio",
    );
    assert_eq!(j["group_sizes"]["largest"], largest);
    assert_eq!(j["group_sizes"]["smallest"], largest);
    assert_eq!(
        j["group_sizes"]["distribution"],
        serde_json::json!([{"size": largest, "count": 1}])
    );

    let text = run_text(&example_path(), &[]);
    let mb = format!("Memory footprint: {:.2} MB", memory as f64 / 1e6);
    assert!(text.contains(&mb), "{text}");
    let pct = 100.0 * duplicates as f64 / rows as f64;
    let line = format!("Duplicate tokens: {duplicates} ({pct:.2}%)");
    assert!(text.contains(&line), "{text}");
    let ratio = format!("Deduplication ratio: {:.2}x", rows as f64 / unique as f64);
    assert!(text.contains(&ratio), "{text}");
}

#[test]
fn reinterpreted_u16_reports_both_dtypes() {
    // Four rows of two bf16 values stored as U16; rows 0 and 3 are equal.
    let values: [u16; 8] = [
        0x3f80, 0x4000, 0x4040, 0x4080, 0xbf80, 0x0000, 0x3f80, 0x4000,
    ];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = format!(
        r#"{{"emb":{{"dtype":"U16","shape":[4,2],"data_offsets":[0,{}]}}}}"#,
        data.len()
    );
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "u16.safetensors", &safetensors(&header, &data));
    let j = run_json(&path, &["--as", "bf16"]);
    assert_eq!(j["dtype"], "BF16");
    assert_eq!(j["stored_dtype"], "U16");
    assert_eq!(j["memory_bytes"], 4 * 2 * 2);
    assert_eq!(j["values_bytes"], 4 * 2 * 2);
    assert_eq!(j["groups"][0]["token_ids"], serde_json::json!([0, 3]));
    let text = run_text(&path, &["--as", "bf16"]);
    assert!(text.contains("Tensor: emb (U16 read as BF16)"), "{text}");
}

#[test]
fn too_many_black_holes_skip_pairwise_distances() {
    // 4,097 pairs of equal one-column rows: one more black hole than the
    // 4,096 whose pairwise distances are computed.
    let k = 4097;
    let values: Vec<f32> = (0..2 * k).map(|i| (i / 2) as f32).collect();
    let rows: Vec<&[f32]> = values.chunks(1).collect();
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "pairs.safetensors", &f32_matrix("emb", &rows));
    let j = run_json(&path, &[]);
    assert_eq!(j["pairwise_skipped"], k);
    assert!(j["geometry"]["pairwise_l2"].is_null());
    assert_eq!(j["n_unique"], k);
    assert_eq!(
        j["group_sizes"],
        serde_json::json!({
            "largest": 2,
            "smallest": 2,
            "mean": 2.0,
            "median": 2.0,
            "distribution": [{"size": 2, "count": k}]
        })
    );
    let text = run_text(&path, &["--max-tokens-per-group", "1"]);
    assert!(
        text.contains("skipped (4,097 black holes, more than 4,096)"),
        "{text}"
    );
}

#[test]
fn auto_device_notice_goes_to_stderr_only() {
    // Without a hardware GPU (lavapipe does not count), `--device auto` takes
    // the CPU path and says so in one line on stderr; with one, it says nothing.
    for json in [true, false] {
        let mut cmd = sg();
        cmd.args(["--device", "auto", "--file"]).arg(example_path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run binary");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "failed: {:?}\n{stderr}", out.status);
        let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
        let on_cpu = if json {
            let j: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("stdout is not only JSON ({e}):\n{stdout}"));
            assert!(j.get("notices").is_none(), "{j}");
            j["device"]["kind"] == "cpu"
        } else {
            assert!(
                stdout.starts_with("Loading embeddings from:"),
                "stdout holds only the report:\n{stdout}"
            );
            stdout.contains("\nDevice: cpu")
        };
        assert!(!stdout.contains("notice:"), "{stdout}");
        if on_cpu {
            assert!(
                stderr.starts_with("notice: ")
                    && stderr.ends_with("; using the CPU path\n")
                    && stderr.matches('\n').count() == 1,
                "stderr should be the one-line fallback notice, got:\n{stderr:?}"
            );
        } else {
            assert!(stderr.is_empty(), "a GPU run says nothing:\n{stderr}");
        }
    }
}

// ---------------------------------------------------------------------------
// All-pairs flags
// ---------------------------------------------------------------------------

/// A flag that cannot be used is one line and exit 2, like a bad file.
#[test]
fn unusable_all_pairs_flags_are_one_line_errors() {
    let path = example_path();
    let rows = [
        (&["--near-l2", "-1"][..], "--near-l2"),
        (&["--near-l2", "nan"][..], "--near-l2"),
        (&["--near-rel", "inf"][..], "--near-rel"),
        (&["--near-ulp", "-3"][..], "--near-ulp"),
        (&["--near-ulp", "1.5"][..], "--near-ulp"),
        (
            &["--near-l2", "1", "--near-ulp", "2"][..],
            "cannot be used with",
        ),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ];
    each_row(
        &rows,
        |(args, _)| format!("{args:?}"),
        |(args, phrase)| {
            expect_error(&run(&path, args), &[phrase]);
        },
    );
}

/// Rows of a hand-built matrix, in f64, for the brute force below.
fn brute_rows() -> Vec<Vec<f32>> {
    vec![
        vec![1.0, 0.0, 0.0],
        vec![1.0, 0.0, 0.0], // the vector of row 0: a black hole
        vec![1.0, 1e-3, 0.0],
        vec![0.0, 2.0, 0.0],
        vec![0.0, 2.0, 1e-2],
        vec![5.0, 5.0, 5.0],
        vec![0.0, 2.0, 0.0], // the vector of row 3: a second black hole
    ]
}

fn dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// `--nearest --near-l2 R`: every token's nearest distinct vector (smallest
/// id on it), the components and their nearest outside token, against a
/// brute force over the rows.
#[test]
fn nearest_and_near_components_match_brute_force() {
    let rows = brute_rows();
    let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "brute.safetensors", &f32_matrix("embeddings", &refs));
    let j = run_json(&path, &["--nearest", "--near-l2", "0.05"]);
    let n = rows.len();
    // Brute force: the nearest row with a different vector, smallest id on ties
    // (and the smallest id on that vector, which a scan in id order finds first).
    for t in 0..n {
        let (mut best, mut best_d) = (usize::MAX, f64::INFINITY);
        for u in 0..n {
            let d = dist(&rows[t], &rows[u]);
            if rows[u] != rows[t] && d < best_d {
                best = u;
                best_d = d;
            }
        }
        assert_eq!(j["nearest"]["ids"][t], best, "token {t}");
        assert_close(&j["nearest"]["distances"][t], best_d, "nearest distance");
    }
    // Near components at 0.05: {0, 1, 2} (1e-3 apart) and {3, 4, 6} (1e-2).
    let near = &j["near"];
    assert_eq!(near["metric"], "l2");
    assert_eq!(near["pairs"], 2);
    let comps = near["components"].as_array().unwrap();
    assert_eq!(comps.len(), 2);
    assert_eq!(comps[0]["token_ids"], serde_json::json!([0, 1, 2]));
    assert_eq!(comps[1]["token_ids"], serde_json::json!([3, 4, 6]));
    let outside = [vec![3, 4, 5, 6], vec![0, 1, 2, 5]];
    for (c, members, outside_ids) in [
        (&comps[0], [0, 2], &outside[0]),
        (&comps[1], [3, 4], &outside[1]),
    ] {
        assert_eq!(c["distinct_vectors"], 2);
        assert_eq!(c["black_holes"], 1);
        assert_close(
            &c["diameter_l2"],
            dist(&rows[members[0]], &rows[members[1]]),
            "diameter",
        );
        let (mut best, mut best_d) = (usize::MAX, f64::INFINITY);
        for m in members {
            for &o in outside_ids {
                let d = dist(&rows[m], &rows[o]);
                if d < best_d {
                    best = o;
                    best_d = d;
                }
            }
        }
        assert_eq!(c["nearest_outside"]["token_id"], best);
        assert_close(&c["nearest_outside"]["distance"], best_d, "outside");
        assert_eq!(c["constant_coordinates"], 2);
    }
    // The lattice of the two holes (rows 0 and 3): steps counted from the bits.
    let steps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
    let linf = (0..3).map(|c| steps(rows[0][c], rows[3][c])).max().unwrap();
    let l1: u64 = (0..3).map(|c| steps(rows[0][c], rows[3][c])).sum();
    assert_eq!(j["lattice"]["linf_steps"][0][1], linf);
    assert_eq!(j["lattice"]["l1_steps"][1][0], l1);
    assert_eq!(j["lattice"]["linf_steps"][1][1], 0);
    assert_eq!(j["lattice"]["components"], serde_json::json!([[0], [1]]));
    // The text report shows the sections.
    let text = run_text(&path, &["--nearest", "--near-ulp", "2"]);
    for section in [
        "NEAREST NEIGHBOURS",
        "NEAR-SINGULARITIES",
        "LATTICE OF BLACK HOLES",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
}

/// A threshold that joins nearly everything stops with a one-line error
/// instead of holding n²/2 pairs: 10,001 distinct rows all within reach make
/// 50,005,000 pairs, past the 50,000,000 the search keeps.
#[test]
fn a_threshold_joining_too_many_pairs_is_a_one_line_error() {
    let rows: Vec<Vec<f32>> = (0..10_001).map(|i| vec![i as f32]).collect();
    let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "wide.safetensors", &f32_matrix("embeddings", &refs));
    let out = run(&path, &["--near-l2", "1e9"]);
    expect_error(&out, &["joins more than 50000000 pairs", "smaller"]);
}
