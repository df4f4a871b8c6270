//! Every input format and layout gives the same survey as the safetensors
//! original: NumPy arrays (C and Fortran order, big-endian, bf16 as raw
//! 2-byte voids, .npz), model folders (sharded or not), hub cache entries,
//! and the tensor choice (`--key`, the default names, `--unembedding`,
//! `--as`). Fixtures come from `scripts/make_fixtures.py`; the expected
//! groups and norms are computed here, in f64, from the example's raw bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{
    example_f32, example_path, expect_error, fixture, json_report, on_cpu, run_json,
};

/// Runs the binary on `file` with `--device cpu`, the extra flags and these
/// environment variables.
fn run_env(file: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Output {
    on_cpu(file)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .expect("run binary")
}

fn json_env(file: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Value {
    json_report(
        on_cpu(file)
            .arg("--json")
            .args(extra)
            .envs(env.iter().copied()),
    )
}

/// The one stderr line of a run that must fail with exit code 2.
fn error(file: &Path, extra: &[&str], env: &[(&str, &Path)]) -> String {
    expect_error(&run_env(file, extra, env), &[])
}

/// Groups of identical rows (≥ 2, ids ascending; largest first, then by
/// smallest id), the number of distinct rows, and each group's f64 norm.
struct Expected {
    groups: Vec<Vec<usize>>,
    n_unique: usize,
    norms: Vec<f64>,
}

fn expected(raw: &[u8], rows: usize, item: usize, decode: impl Fn(&[u8]) -> f64) -> Expected {
    let rb = raw.len() / rows;
    let mut by_row: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for i in 0..rows {
        by_row
            .entry(&raw[i * rb..(i + 1) * rb])
            .or_default()
            .push(i);
    }
    let n_unique = by_row.len();
    let mut groups: Vec<Vec<usize>> = by_row.into_values().filter(|g| g.len() > 1).collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let norms = groups
        .iter()
        .map(|g| {
            raw[g[0] * rb..(g[0] + 1) * rb]
                .chunks_exact(item)
                .map(|b| decode(b).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    Expected {
        groups,
        n_unique,
        norms,
    }
}

fn f32_of(b: &[u8]) -> f64 {
    f32::from_le_bytes(b.try_into().unwrap()) as f64
}

fn bf16_of(b: &[u8]) -> f64 {
    f32::from_bits((u16::from_le_bytes(b.try_into().unwrap()) as u32) << 16) as f64
}

fn example_expected() -> Expected {
    let (rows, _, raw) = example_f32();
    expected(&raw, rows, 4, f32_of)
}

/// The report's groups and norms are the expected ones.
fn check(j: &Value, want: &Expected, shape: [usize; 2], what: &str) {
    assert_eq!(j["shape"], json!(shape), "{what}");
    assert_eq!(j["n_unique"], want.n_unique, "{what}");
    let groups: Vec<Vec<usize>> = j["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| serde_json::from_value(g["token_ids"].clone()).unwrap())
        .collect();
    assert_eq!(groups, want.groups, "{what}");
    for (g, n) in j["groups"].as_array().unwrap().iter().zip(&want.norms) {
        let got = g["norm"].as_f64().unwrap();
        // Engines sum squares in f32 (see src/approx.rs): a relative 1e-6.
        assert!((got - n).abs() <= 1e-6 * n, "{what}: norm {got} vs {n}");
    }
}

#[test]
fn npy_in_every_layout_matches_the_safetensors_original() {
    let want = example_expected();
    assert_eq!((want.groups.len(), want.groups[0].len()), (1, 51));
    let original = run_json(&example_path(), &[]);
    check(&original, &want, [128, 64], "safetensors");
    for name in ["example.npy", "example_be.npy", "example_fortran.npy"] {
        let j = run_json(&fixture(&format!("npy/{name}")), &[]);
        check(&j, &want, [128, 64], name);
        assert_eq!(j["format"], "NumPy .npy");
        assert_eq!(j["dtype"], "F32");
    }
    // .npz, stored and deflated: "embeddings" is chosen over "positions".
    for name in ["example.npz", "example_compressed.npz"] {
        let j = run_json(&fixture(&format!("npy/{name}")), &[]);
        check(&j, &want, [128, 64], name);
        assert_eq!(
            (j["format"].as_str(), j["tensor"].as_str()),
            (Some("NumPy .npz"), Some("embeddings"))
        );
        // positions = arange(16 × 64): every row distinct.
        let j = run_json(&fixture(&format!("npy/{name}")), &["--key", "positions"]);
        assert_eq!(
            (j["shape"].clone(), j["n_unique"].clone()),
            (json!([16, 64]), json!(16))
        );
    }
    let e = error(&fixture("npy/example.npz"), &["--key", "nope"], &[]);
    assert!(
        e.contains("\"embeddings\" [128, 64] F32") && e.contains("\"positions\" [16, 64] F32"),
        "{e}"
    );
}

#[test]
fn bf16_npy_from_ml_dtypes_reads_with_as_bf16() {
    let path = fixture("npy/example_bf16.npy");
    let e = error(&path, &[], &[]);
    assert!(e.contains("--as bf16"), "{e}");
    let j = run_json(&path, &["--as", "bf16"]);
    assert_eq!(
        (j["dtype"].as_str(), j["stored_dtype"].as_str()),
        (Some("BF16"), Some("V2"))
    );
    // Independent: the data is the file's last 128×64×2 bytes.
    let bytes = std::fs::read(&path).unwrap();
    let raw = &bytes[bytes.len() - 128 * 64 * 2..];
    check(&j, &expected(raw, 128, 2, bf16_of), [128, 64], "bf16 npy");
}

#[test]
fn sharded_folder_opens_only_the_shard_it_needs() {
    let want = example_expected();
    let dir = fixture("hf/sharded");
    let j = run_json(&dir, &[]);
    check(&j, &want, [128, 64], "sharded");
    assert_eq!(j["tensor"], "model.embed_tokens.weight");
    assert!(j["tensor_file"]
        .as_str()
        .unwrap()
        .ends_with("model-00002-of-00003.safetensors"));

    // A copy whose other shards are garbage still works: they are never opened.
    let tmp = TempDir::new().unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_owned();
        let bytes = if name.to_string_lossy().contains("0000")
            && !name.to_string_lossy().contains("00002-")
        {
            b"not a safetensors file at all".to_vec()
        } else {
            std::fs::read(&p).unwrap()
        };
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    check(&run_json(tmp.path(), &[]), &want, [128, 64], "sharded copy");
    // Asking for a tensor in a broken shard opens it, and says so.
    let e = error(tmp.path(), &["--key", "lm_head.weight"], &[]);
    assert!(e.contains("model-00003-of-00003.safetensors"), "{e}");
}

#[test]
fn sharded_folder_lists_every_matrix_for_an_unknown_key() {
    let e = error(&fixture("hf/sharded"), &["--key", "nope"], &[]);
    for want in [
        "no tensor named \"nope\"",
        "\"model.embed_tokens.weight\" [128, 64] F32",
        "\"lm_head.weight\" [128, 64] F32",
        "\"model.layers.0.mlp.weight\" [16, 64] F32",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    assert!(
        !e.contains("model.norm.weight"),
        "1-D tensors are not listed: {e}"
    );
}

#[test]
fn unembedding_surveys_the_head_and_says_whether_it_is_tied() {
    // The head is the example times 2: same groups, twice the norms, untied.
    let mut want = example_expected();
    want.norms.iter_mut().for_each(|n| *n *= 2.0);
    let j = run_json(&fixture("hf/sharded"), &["--unembedding"]);
    check(&j, &want, [128, 64], "lm_head");
    assert_eq!(j["tensor"], "lm_head.weight");
    assert_eq!(j["role"], "output_head");
    assert_eq!(j["tied"], "untied");

    // One tensor only: the head is the input embedding.
    let j = run_json(&example_path(), &["--unembedding"]);
    assert_eq!(
        (j["tied"].as_str(), j["role"].as_str()),
        (Some("same_tensor"), Some("output_head"))
    );

    // A head that is a separate copy of the embedding's bytes.
    let (rows, cols, raw) = example_f32();
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("tied.safetensors");
    std::fs::write(&path, two_tensor_file(rows, cols, &raw, &raw)).unwrap();
    let j = run_json(&path, &["--unembedding"]);
    assert_eq!(
        (j["tensor"].as_str(), j["tied"].as_str()),
        (Some("lm_head.weight"), Some("bit_identical"))
    );
    let j = run_json(&path, &[]);
    assert_eq!(
        j["tensor"], "model.embed_tokens.weight",
        "the input embedding by default"
    );
    assert_eq!(j["role"], "input_embedding");
    assert!(j.get("tied").is_none());
    let e = error(&path, &["--unembedding", "--key", "lm_head.weight"], &[]);
    assert!(e.contains("--unembedding"), "{e}");
}

/// A safetensors file with `model.embed_tokens.weight`, `lm_head.weight`
/// and a 2-D `pos_embedding.weight` (all F32, rows × cols).
fn two_tensor_file(rows: usize, cols: usize, embed: &[u8], head: &[u8]) -> Vec<u8> {
    let n = embed.len();
    let pos = vec![0u8; 4 * cols * 4];
    let header = format!(
        r#"{{"lm_head.weight":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[0,{n}]}},"model.embed_tokens.weight":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[{n},{}]}},"pos_embedding.weight":{{"dtype":"F32","shape":[4,{cols}],"data_offsets":[{},{}]}}}}"#,
        2 * n,
        2 * n,
        2 * n + pos.len()
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(embed);
    out.extend_from_slice(&pos);
    out
}

#[test]
fn hub_cache_entry_by_folder_and_by_name_with_revisions() {
    let hub = fixture("hf/hub");
    let entry = hub.join("models--sg-test--tiny");
    let want = example_expected();
    let j = run_json(&entry, &[]);
    check(&j, &want, [128, 64], "cache entry");
    assert!(j["tensor_file"]
        .as_str()
        .unwrap()
        .contains(&format!("snapshots/{}/model.safetensors", "a".repeat(40))));
    // The snapshot's tokenizer.json is found.
    assert_eq!(j["tokenizer"]["vocab_size"], 120);

    let by_name = json_env(Path::new("sg-test/tiny"), &[], &[("HF_HUB_CACHE", &hub)]);
    check(&by_name, &want, [128, 64], "ORG/NAME");
    // HF_HOME/hub when HF_HUB_CACHE is not set.
    let home = TempDir::new().unwrap();
    std::os::unix::fs::symlink(&hub, home.path().join("hub")).unwrap();
    let j = json_env(Path::new("sg-test/tiny"), &[], &[("HF_HOME", home.path())]);
    check(&j, &want, [128, 64], "HF_HOME");

    // refs/v2 is the example as BF16 (round to nearest even of each f32).
    let j = json_env(
        Path::new("sg-test/tiny"),
        &["--revision", "v2"],
        &[("HF_HUB_CACHE", &hub)],
    );
    assert_eq!(j["dtype"], "BF16");
    assert!(j.get("tokenizer").is_none(), "v2 has no tokenizer");
    let (rows, _, raw) = example_f32();
    let bf16: Vec<u8> = raw
        .chunks_exact(4)
        .flat_map(|b| half::bf16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
        .collect();
    check(&j, &expected(&bf16, rows, 2, bf16_of), [128, 64], "v2");
    // A commit hash names its snapshot directly.
    let j = run_json(&entry, &["--revision", &"b".repeat(40)]);
    assert_eq!(j["dtype"], "BF16");

    let e = error(Path::new("sg-test/absent"), &[], &[("HF_HUB_CACHE", &hub)]);
    assert!(
        e.contains("huggingface-cli download sg-test/absent")
            && e.contains("nothing is downloaded"),
        "{e}"
    );
    let e = error(&entry, &["--revision", "v9"], &[]);
    assert!(e.contains("no revision \"v9\""), "{e}");
    let e = error(&entry, &["--revision", "../../etc"], &[]);
    assert!(e.contains("--revision"), "{e}");
    let e = error(&fixture("npy/example.npy"), &["--revision", "main"], &[]);
    assert!(e.contains("--revision"), "{e}");
}

#[test]
fn plain_model_folder_and_empty_folder() {
    let tmp = TempDir::new().unwrap();
    std::fs::copy(example_path(), tmp.path().join("model.safetensors")).unwrap();
    check(
        &run_json(tmp.path(), &[]),
        &example_expected(),
        [128, 64],
        "model folder",
    );
    let empty = TempDir::new().unwrap();
    let e = error(empty.path(), &[], &[]);
    assert!(e.contains("model.safetensors"), "{e}");
}

/// The byte-level tokenizer maps ids 0..120 to single bytes, id 0 being the
/// added special token "<|endoftext|>"; a byte b < 128 reads as char b.
fn byte_token(id: usize) -> String {
    if id == 0 {
        "<|endoftext|>".into()
    } else {
        char::from(id as u8).to_string()
    }
}

#[test]
fn token_strings_and_padding_rows() {
    let j = run_json(&fixture("hf/sharded"), &[]);
    assert_eq!(
        j["tokenizer"]["path"],
        fixture("hf/sharded/tokenizer.json").display().to_string()
    );
    assert_eq!(j["tokenizer"]["kind"], "byte-level-bpe");
    assert_eq!(j["padding_rows"], json!((120..128).collect::<Vec<_>>()));
    let want = example_expected();
    let tokens = j["tokens"].as_object().unwrap();
    let grouped: Vec<usize> = want.groups.iter().flatten().copied().collect();
    let in_vocab: Vec<usize> = grouped.iter().copied().filter(|&i| i < 120).collect();
    assert_eq!(tokens.len(), in_vocab.len());
    for id in in_vocab {
        assert_eq!(tokens[&id.to_string()], byte_token(id), "id {id}");
    }
    let special: Vec<usize> = grouped.iter().copied().filter(|&i| i == 0).collect();
    assert_eq!(j["special_tokens"], json!(special));

    // The text shows them quoted and escaped, next to the ids.
    let out = run_env(
        &fixture("hf/sharded"),
        &["--max-tokens-per-group", "200"],
        &[],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Padding rows (past the tokenizer's vocabulary): 120–127 (8 rows)"),
        "{text}"
    );
    assert!(text.contains("0 \"<|endoftext|>\" (special)"), "{text}");
    assert!(text.contains("1 \"\\u{1}\""), "{text}");
    assert!(text.contains("127 (padding row)"), "{text}");

    // --tokenizer overrides what is found; a vocab.txt works too.
    let tmp = TempDir::new().unwrap();
    let vocab: String = (0..128).map(|i| format!("tok{i}\n")).collect();
    let path = tmp.path().join("vocab.txt");
    std::fs::write(&path, vocab).unwrap();
    let j = run_json(
        &fixture("hf/sharded"),
        &["--tokenizer", path.to_str().unwrap()],
    );
    assert_eq!(j["tokenizer"]["kind"], "wordpiece");
    assert_eq!(j["padding_rows"], json!([]));
    assert_eq!(j["tokens"]["127"], "tok127");
    let e = error(
        &fixture("hf/sharded"),
        &["--tokenizer", "/nonexistent/tokenizer.json"],
        &[],
    );
    assert!(e.contains("/nonexistent/tokenizer.json"), "{e}");
}

#[test]
fn without_a_tokenizer_small_vocabularies_show_bytes_and_large_ones_ids() {
    let text = String::from_utf8(run_env(&example_path(), &[], &[]).stdout).unwrap();
    assert!(text.contains("Token IDs (byte values):"), "{text}");
    // With a tokenizer the same rows show strings instead.
    let text = String::from_utf8(run_env(&fixture("hf/sharded"), &[], &[]).stdout).unwrap();
    assert!(!text.contains("byte values"), "{text}");
    assert!(text.contains("  Tokens: "), "{text}");
}

/// Writes a safetensors file with one tensor `emb` of the given dtype name.
fn one_tensor(dir: &TempDir, dtype: &str, shape: [usize; 2], data: &[u8]) -> PathBuf {
    let header = format!(
        r#"{{"emb":{{"dtype":"{dtype}","shape":[{},{}],"data_offsets":[0,{}]}}}}"#,
        shape[0],
        shape[1],
        data.len()
    );
    let path = dir.path().join(format!("{dtype}.safetensors"));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn bf16_f64_and_reinterpreted_safetensors() {
    let (rows, _, raw) = example_f32();
    let tmp = TempDir::new().unwrap();
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    // F64: the f32 values widened exactly, so the same groups and norms.
    let f64s: Vec<u8> = values
        .iter()
        .flat_map(|&v| (v as f64).to_le_bytes())
        .collect();
    let j = run_json(&one_tensor(&tmp, "F64", [rows, 64], &f64s), &[]);
    check(&j, &example_expected(), [128, 64], "F64");
    assert_eq!(j["dtype"], "F64");
    // BF16 and F16, stored as such and as U16 read --as.
    for (dtype, enc) in [
        (
            "BF16",
            (|v: f32| half::bf16::from_f32(v).to_bits()) as fn(f32) -> u16,
        ),
        ("F16", |v: f32| half::f16::from_f32(v).to_bits()),
    ] {
        let bits: Vec<u8> = values.iter().flat_map(|&v| enc(v).to_le_bytes()).collect();
        let decode = |b: &[u8]| {
            let u = u16::from_le_bytes(b.try_into().unwrap());
            if dtype == "BF16" {
                half::bf16::from_bits(u).to_f64()
            } else {
                half::f16::from_bits(u).to_f64()
            }
        };
        let want = expected(&bits, rows, 2, decode);
        let j = run_json(&one_tensor(&tmp, dtype, [rows, 64], &bits), &[]);
        check(&j, &want, [128, 64], dtype);
        let u16_path = tmp.path().join(format!("u16-{dtype}.safetensors"));
        std::fs::rename(one_tensor(&tmp, "U16", [rows, 64], &bits), &u16_path).unwrap();
        let j = run_json(&u16_path, &["--as", &dtype.to_lowercase()]);
        check(&j, &want, [128, 64], "U16 --as");
        assert_eq!(
            (j["dtype"].as_str(), j["stored_dtype"].as_str()),
            (Some(dtype), Some("U16"))
        );
    }
}

#[test]
fn default_key_choice_among_several_matrices() {
    let (rows, cols, raw) = example_f32();
    let tmp = TempDir::new().unwrap();
    // lm_head.weight sorts first, pos_embedding.weight is 2-D too: the input
    // embedding's name wins.
    let path = tmp.path().join("three.safetensors");
    let zeros = vec![0u8; raw.len()];
    std::fs::write(&path, two_tensor_file(rows, cols, &raw, &zeros)).unwrap();
    let j = run_json(&path, &[]);
    assert_eq!(j["tensor"], "model.embed_tokens.weight");
    check(&j, &example_expected(), [128, 64], "default key");
    let j = run_json(&path, &["--key", "pos_embedding.weight"]);
    assert_eq!(j["shape"], json!([4, 64]));
}

#[test]
fn npz_inflates_only_the_member_it_reads() {
    // "junk" is deflated with its stream broken past the header.
    let path = fixture("npy/example_lazy.npz");
    check(
        &run_json(&path, &[]),
        &example_expected(),
        [128, 64],
        "lazy npz",
    );
    let e = error(&path, &["--key", "junk"], &[]);
    assert!(e.contains("junk.npy") && e.contains("corrupt"), "{e}");
}

#[test]
fn tied_weights_saved_once_are_the_same_tensor() {
    let j = run_json(&fixture("torch/tied.pt"), &["--unembedding"]);
    assert_eq!(j["tensor"], "lm_head.weight");
    assert_eq!(j["tied"], "same_tensor");
    check(&j, &example_expected(), [128, 64], "tied.pt");
}

#[test]
fn nested_input_embedding_wins_over_the_output_head() {
    // A multimodal layout: the language model's embedding is nested, the
    // head is at the top level.
    let (rows, cols, raw) = example_f32();
    let zeros = vec![0u8; raw.len()];
    let n = raw.len();
    let header = format!(
        r#"{{"lm_head.weight":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[0,{n}]}},"model.language_model.embed_tokens.weight":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[{n},{}]}}}}"#,
        2 * n
    );
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&zeros);
    file.extend_from_slice(&raw);
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("vlm.safetensors");
    std::fs::write(&path, file).unwrap();
    let j = run_json(&path, &[]);
    assert_eq!(j["tensor"], "model.language_model.embed_tokens.weight");
    check(&j, &example_expected(), [128, 64], "vlm");
    let j = run_json(&path, &["--unembedding"]);
    assert_eq!(
        (j["tensor"].as_str(), j["tied"].as_str()),
        (Some("lm_head.weight"), Some("untied"))
    );
}

#[test]
fn a_broken_tokenizer_found_beside_the_model_costs_only_the_strings() {
    let tmp = TempDir::new().unwrap();
    std::fs::copy(example_path(), tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("tokenizer.json"), b"{ not json").unwrap();
    let out = run_env(tmp.path(), &["--json"], &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tokenizer.json") && stderr.contains("--tokenizer"),
        "{stderr}"
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j.get("tokenizer").is_none() && j.get("tokens").is_none());
    // Asked for by name, the same file is an error.
    let bad = tmp.path().join("tokenizer.json");
    let e = error(tmp.path(), &["--tokenizer", bad.to_str().unwrap()], &[]);
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn pipes_and_devices_are_refused_without_reading_them() {
    let tmp = TempDir::new().unwrap();
    let fifo = tmp.path().join("pipe.safetensors");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success());
    if ok.unwrap_or(false) {
        let e = error(&fifo, &[], &[]);
        assert!(e.contains("not a regular file"), "{e}");
    }
    let e = error(&example_path(), &["--tokenizer", "/dev/zero"], &[]);
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn all_pairs_sections_name_their_tokens_too() {
    let dir = fixture("hf/sharded");
    let j = run_json(&dir, &["--nearest", "--near-rel", "0.25"]);
    let tokens = j["tokens"].as_object().unwrap();
    let mut named: Vec<usize> = Vec::new();
    for x in j["nearest"]["most_isolated"]
        .as_array()
        .unwrap()
        .iter()
        .chain(j["nearest"]["least_isolated"].as_array().unwrap())
    {
        named.push(x["token_id"].as_u64().unwrap() as usize);
        named.push(x["nearest"].as_u64().unwrap() as usize);
    }
    let components = j["near"]["components"].as_array().unwrap();
    assert!(!components.is_empty());
    for c in components {
        named.extend(
            c["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize),
        );
    }
    for id in named {
        match id {
            0..120 => assert_eq!(tokens[&id.to_string()], byte_token(id), "id {id}"),
            _ => assert!(tokens.get(&id.to_string()).is_none(), "padding row {id}"),
        }
    }
    let text =
        String::from_utf8(run_env(&dir, &["--nearest", "--near-rel", "0.25"], &[]).stdout).unwrap();
    assert!(
        text.contains("-> \"<|endoftext|>\" (special)")
            || text.contains("\"<|endoftext|>\" (special) ->"),
        "{text}"
    );
    assert!(text.contains("Nearest token outside: "), "{text}");
}
