//! `--indicators`: Magikarp's under-trained-token indicators, against numpy
//! (`scripts/make_indicator_fixtures.py` wrote tests/fixtures/indicators/ and
//! the values numpy computed for them in `expected.json`), a hand-built case
//! whose answer is known exactly, the engines' kernels bit for bit on every
//! dtype, the flag errors, and a real matrix (MiniLM's `[unusedN]` tokens,
//! with a given reference set: no real matrix here has a bit-identical hole).

use crate::common::{self, expect_error, fetched, json_report, on_cpu, require, sg, Built};

use std::path::{Path, PathBuf};

use serde_json::Value;
use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::split::Split;
use singularity_gpu::{Dtype, Engine, GpuOptions};
use tempfile::TempDir;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/indicators")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    let all: Value = serde_json::from_str(&text).expect("expected.json parses");
    all[name].clone()
}

/// The `indicators` object of a JSON run on `device` with extra flags.
fn indicators(file: &Path, device: &str, extra: &[&str]) -> Value {
    let mut cmd = sg();
    cmd.args(["--device", device, "--json", "--indicators", "--file"])
        .arg(file)
        .args(extra);
    json_report(&mut cmd)["indicators"].clone()
}

/// The devices to run on: the CPU, and the GPU (lavapipe on CI) where there is one.
fn devices() -> Vec<&'static str> {
    let mut d = vec!["cpu"];
    if common::gpu().is_some() {
        d.push("gpu");
    }
    d
}

fn values(v: &Value) -> Vec<Option<f64>> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(Value::as_f64)
        .collect()
}

fn ids(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as usize)
        .collect()
}

const NAMES: [&str; 4] = [
    "input_norm",
    "cosine_distance",
    "cosine_distance_pc1_removed",
    "l2_to_reference_mean",
];

#[test]
fn an_untied_model_is_measured_on_its_output_head_as_numpy_does() {
    for file in ["model_f32.safetensors", "model_bf16.safetensors"] {
        let want = expected(file);
        for device in devices() {
            let what = format!("{file} on {device}");
            let got = indicators(&fixture(file), device, &[]);
            assert_eq!(got["matrix"]["tensor"], "lm_head.weight", "{what}");
            assert_eq!(got["matrix"]["role"], "output_head", "{what}");
            assert_eq!(got["reference"]["source"], "survey", "{what}");
            assert_eq!(ids(&got["reference"]["token_ids"]), ids(&want["reference"]));
            assert_eq!(got["main"], "cosine_distance_pc1_removed", "{what}");
            assert_eq!(got["threshold_percentile"], 2, "{what}");
            assert_eq!(got["pc1_converged"], true, "{what}");
            for name in NAMES {
                let (g, w) = (values(&got["per_token"][name]), values(&want[name]));
                assert_eq!(g.len(), 1000, "{what} {name}");
                for (t, (g, w)) in g.iter().zip(&w).enumerate() {
                    match (g, w) {
                        (Some(g), Some(w)) => assert!(
                            (g - w).abs() <= 1e-4 * (w.abs() + 1e-2),
                            "{what} {name} token {t}: {g} vs numpy {w}"
                        ),
                        (None, None) => {}
                        _ => panic!("{what} {name} token {t}: {g:?} vs numpy {w:?}"),
                    }
                }
            }
            // Row 3 holds a NaN in the head only.
            assert!(got["per_token"]["cosine_distance"][3].is_null(), "{what}");
            assert!(got["per_token"]["input_norm"][3].is_number(), "{what}");
            let t = got["threshold"].as_f64().unwrap();
            let wt = want["threshold"].as_f64().unwrap();
            assert!((t - wt).abs() <= 1e-5, "{what}: threshold {t} vs {wt}");
            // The fixture leaves a wide margin at the threshold (checked
            // here), so the candidates are numpy's, in numpy's order up to
            // float32 rounding.
            assert!(want["margin"].as_f64().unwrap() > 1e-2);
            let (gc, wc) = (ids(&got["candidates"]), ids(&want["candidates"]));
            let mut sorted = (gc.clone(), wc.clone());
            sorted.0.sort_unstable();
            sorted.1.sort_unstable();
            assert_eq!(sorted.0, sorted.1, "{what}: candidates");
            let main = values(&want["cosine_distance_pc1_removed"]);
            for pair in gc.windows(2) {
                let (a, b) = (main[pair[0]].unwrap(), main[pair[1]].unwrap());
                assert!(a <= b + 1e-6, "{what}: {pair:?} out of numpy's order");
            }
            // The twelve hidden tokens are found beside the eight of the hole.
            let hidden = ids(&want["hidden"]);
            assert!(hidden.iter().all(|h| gc.contains(h)), "{what}: {gc:?}");
            assert_eq!(got["overlap"]["holes"], 8, "{what}");
            assert_eq!(got["overlap"]["reference"], 8, "{what}");
        }
    }
}

/// Every indicator value, candidate and threshold of two runs, compared exactly.
fn assert_same(a: &Value, b: &Value, what: &str) {
    assert_eq!(a["per_token"], b["per_token"], "{what}: per_token");
    assert_eq!(a["candidates"], b["candidates"], "{what}: candidates");
    assert_eq!(a["threshold"], b["threshold"], "{what}: threshold");
    assert_eq!(a["power_iterations"], b["power_iterations"], "{what}");
}

#[test]
fn gpu_and_cpu_give_the_same_indicators_and_ranking() {
    if common::gpu().is_none() {
        return;
    }
    let q4k = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/q4_k.gguf");
    let files = [
        fixture("model_f32.safetensors"),
        fixture("model_bf16.safetensors"),
        q4k,
    ];
    for file in &files {
        let cpu = indicators(file, "cpu", &[]);
        for extra in [
            &[][..],
            &["--chunk-bytes", "4096"],
            &["--chunk-bytes", "700"],
        ] {
            let gpu = indicators(file, "gpu", extra);
            assert_same(&cpu, &gpu, &format!("{} {extra:?}", file.display()));
        }
    }
}

/// A random matrix of `dtype` with special rows: one holding NaN, one with
/// values below the kernels' 2^-40 (and a subnormal of the dtype), one of
/// zeros.
fn special(dtype: Dtype, rows: usize, cols: usize) -> Built {
    let mut b = Built::random(dtype, rows, cols, 7 + dtype.size() as u64);
    let nan = match dtype {
        Dtype::F32 => 0x7fc0_0000,
        Dtype::F64 => 0x7ff8_0000_0000_0000,
        Dtype::F16 => 0x7e00,
        Dtype::BF16 => 0x7fc0,
    };
    b.set_bits(5, 3, nan);
    for c in 0..cols {
        b.set_bits(9, c, 1 + c as u64 % 3);
        b.set_bits(11, c, 0);
    }
    let rb = b.row_bytes();
    b.bytes[12 * rb..13 * rb].copy_from_slice(&common::encode(dtype, 1e-13).repeat(cols));
    b
}

fn same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what}: value {i}: {x:e} vs {y:e}"
        );
    }
}

#[test]
fn the_kernels_give_the_same_bits_on_both_engines_for_every_dtype() {
    let Some(gpu) = common::fresh_gpu(GpuOptions {
        max_chunk_bytes: Some(2048),
        ..Default::default()
    }) else {
        return;
    };
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64] {
        // Odd widths put 2-byte rows off word boundaries; 700 rows span
        // several 256-row blocks, cut by the small chunks.
        for cols in [37, 64] {
            let b = special(dtype, 700, cols);
            let m = b.matrix();
            let what = format!("{dtype} × {cols}");
            let mut rng = common::Rng::new(3);
            let vecs: Vec<Split> = (0..3)
                .map(|_| Split::new(&(0..cols).map(|_| rng.unit() - 0.5).collect::<Vec<_>>()))
                .collect();
            let centre: Vec<f32> = (0..cols).map(|c| (c as f32 - 20.0) / 64.0).collect();
            for p in 0..=3 {
                for c in [None, Some(&centre[..])] {
                    let want = CpuEngine.row_dots(&m, &vecs[..p], c).unwrap();
                    let got = gpu.row_dots(&m, &vecs[..p], c).unwrap();
                    same_bits(&want, &got, &format!("{what}: row_dots p={p}"));
                }
            }
            let mut w: Vec<f64> = (0..700).map(|_| rng.unit() * 4.0 - 2.0).collect();
            w[5] = 0.0;
            w[100..300].iter_mut().for_each(|x| *x = 0.0);
            let w = Split::new(&w);
            let want = CpuEngine.weighted_column_sums(&m, &w).unwrap();
            let got = gpu.weighted_column_sums(&m, &w).unwrap();
            same_bits(&want, &got, &format!("{what}: weighted sums"));
            // Against f64: each block's sum is within float32 rounding.
            let sums = singularity_gpu::engine::split::add_blocks(&want, cols);
            for (c, s) in sums.iter().enumerate() {
                let exact: f64 = (0..700)
                    .filter(|&r| r != 5 && r != 9 && r != 12)
                    .map(|r| w.value(r) * b.values(r)[c] * 2f64.powi(w.shift))
                    .sum();
                let scale: f64 = (0..700)
                    .filter(|&r| r != 5)
                    .map(|r| (w.value(r) * b.values(r)[c] * 2f64.powi(w.shift)).abs())
                    .sum();
                assert!(
                    (s - exact).abs() <= 1e-5 * scale + 1e-9,
                    "{what}: column {c}: {s} vs {exact}"
                );
            }
        }
    }
}

/// Writes a one-matrix f32 safetensors file of the given rows.
fn one_matrix(dir: &TempDir, rows: &[&[f32]]) -> PathBuf {
    common::write(
        dir,
        "m.safetensors",
        &common::f32_matrix("embeddings", rows),
    )
}

#[test]
fn a_hand_built_case_has_the_exact_answer() {
    // Mean zero; the covariance is diagonal with 100 on z and 0.5 on x and y,
    // so the first principal component is the z axis. The reference is token
    // 0 alone: m̄ = (1, 0, 10), and once z is removed, (1, 0, 0).
    let rows: [[f32; 3]; 8] = [
        [1.0, 0.0, 10.0],
        [1.0, 0.0, -10.0],
        [-1.0, 0.0, 10.0],
        [-1.0, 0.0, -10.0],
        [0.0, 1.0, 10.0],
        [0.0, 1.0, -10.0],
        [0.0, -1.0, 10.0],
        [0.0, -1.0, -10.0],
    ];
    let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
    let dir = TempDir::new().unwrap();
    let file = one_matrix(&dir, &refs);
    let s101 = 101f64.sqrt();
    let want: [(&str, [f64; 8]); 4] = [
        ("input_norm", [s101; 8]),
        (
            // 1 − (x + 10z)/101
            "cosine_distance",
            [
                0.0,
                200.0 / 101.0,
                2.0 / 101.0,
                2.0,
                1.0 / 101.0,
                201.0 / 101.0,
                1.0 / 101.0,
                201.0 / 101.0,
            ],
        ),
        (
            "cosine_distance_pc1_removed",
            [0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0],
        ),
        (
            "l2_to_reference_mean",
            [
                0.0,
                20.0,
                2.0,
                404f64.sqrt(),
                2f64.sqrt(),
                402f64.sqrt(),
                2f64.sqrt(),
                402f64.sqrt(),
            ],
        ),
    ];
    for device in devices() {
        let got = indicators(&file, device, &["--reference-tokens", "0"]);
        assert_eq!(got["matrix"]["tensor"], "embeddings");
        assert_eq!(got["matrix"]["role"], "input_embedding");
        assert_eq!(got["reference"]["source"], "given");
        assert_eq!(ids(&got["reference"]["token_ids"]), vec![0]);
        for (name, w) in &want {
            let g = values(&got["per_token"][*name]);
            for t in 0..8 {
                let g = g[t].unwrap();
                assert!(
                    (g - w[t]).abs() <= 1e-5 * (1.0 + w[t]),
                    "{device} {name} token {t}: {g} vs {}",
                    w[t]
                );
            }
        }
        // Tokens 0 and 1 tie at 0 up to rounding: the candidates are among
        // them, the lowest first.
        let c = ids(&got["candidates"]);
        assert!(
            !c.is_empty() && c.iter().all(|t| *t <= 1),
            "{device}: {c:?}"
        );
    }
}

#[test]
fn without_a_reference_set_the_input_norm_ranks_alone() {
    // No black holes, no tokenizer: an empty reference set.
    let mut rows: Vec<Vec<f32>> = (0..60)
        .map(|i| vec![1.0 + i as f32 / 10.0, (i % 7) as f32, 2.0])
        .collect();
    rows[17] = vec![0.1, 0.0, 0.2];
    let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
    let dir = TempDir::new().unwrap();
    let file = one_matrix(&dir, &refs);
    let out = on_cpu(&file)
        .args(["--json", "--indicators"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reference set is empty"), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ind = &r["indicators"];
    assert_eq!(ind["main"], "input_norm");
    assert!(ind["reference"]["token_ids"].as_array().unwrap().is_empty());
    assert!(ind["per_token"].get("cosine_distance").is_none());
    assert!(ind["power_iterations"].is_null());
    // numpy.percentile(norms, 2) lies at position 60·0.02 − 0.02 = 1.18 of
    // the sorted norms: between the second smallest, ‖(1, 0, 2)‖ (row 0), and
    // the third, ‖(1.1, 1, 2)‖. At or below it: ‖(0.1, 0, 0.2)‖ (row 17), then row 0.
    assert_eq!(ids(&ind["candidates"]), vec![17, 0]);
    let n = ind["per_token"]["input_norm"][17].as_f64().unwrap();
    assert!((n - 0.05f64.sqrt()).abs() < 1e-7, "{n}");
}

#[test]
fn reference_tokens_come_as_lists_and_files_and_bad_ones_are_one_line_errors() {
    let file = fixture("model_f32.safetensors");
    let dir = TempDir::new().unwrap();
    let list = common::write(&dir, "ids.txt", b"990 991\n992,993\n");
    let json = common::write(&dir, "ids.json", b"[990, 991, 992, 993]");
    for arg in ["990-993", "993,990-992"] {
        let got = indicators(&file, "cpu", &["--reference-tokens", arg]);
        assert_eq!(got["reference"]["source"], "given");
        assert_eq!(
            ids(&got["reference"]["token_ids"]),
            vec![990, 991, 992, 993]
        );
    }
    for path in [&list, &json] {
        let got = indicators(
            &file,
            "cpu",
            &["--reference-tokens", path.to_str().unwrap()],
        );
        assert_eq!(
            ids(&got["reference"]["token_ids"]),
            vec![990, 991, 992, 993]
        );
    }
    let bad = common::write(&dir, "bad.txt", b"1 2 x3\n");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec![
                "--indicators".into(),
                "--reference-tokens".into(),
                "1000".into(),
            ],
            vec!["token id 1000", "1000 rows"],
        ),
        (
            vec![
                "--indicators".into(),
                "--reference-tokens".into(),
                "abc".into(),
            ],
            vec!["--reference-tokens", "neither a list of ids"],
        ),
        (
            vec![
                "--indicators".into(),
                "--reference-tokens".into(),
                bad.display().to_string(),
            ],
            vec!["\"x3\" is not a token id", "bad.txt"],
        ),
        (
            vec!["--reference-tokens".into(), "1".into()],
            vec!["--indicators"],
        ),
        (
            vec![
                "--indicators".into(),
                "--reference-tokens".into(),
                "3-1".into(),
            ],
            vec!["reversed range 3-1"],
        ),
        (
            vec![
                "--indicators".into(),
                "--reference-tokens".into(),
                "0-99999999999999".into(),
            ],
            vec!["token id 99999999999999 is past the matrix's 1000 rows"],
        ),
        // Two ranges of 10⁸ ids: checked against the rows before any id
        // is expanded (the first past them is the end of the first range).
        (
            vec![
                "--indicators".into(),
                "--reference-tokens".into(),
                "0-100000000,0-100000000".into(),
            ],
            vec!["token id 100000000 is past the matrix's 1000 rows"],
        ),
    ];
    for (args, phrases) in &cases {
        let out = on_cpu(&file).args(args).output().unwrap();
        expect_error(&out, phrases);
    }
    let out = sg()
        .args(["--series"])
        .arg(&file)
        .arg("--indicators")
        .output()
        .unwrap();
    expect_error(&out, &["--indicators"]);
}

#[test]
fn the_text_report_shows_the_indicators_section() {
    let file = fixture("model_f32.safetensors");
    let text = common::run_text(&file, &["--indicators"]);
    for phrase in [
        "Indicators",
        "lm_head.weight (output head)",
        "reference: 8 tokens from the survey",
        "cosine_distance_pc1_removed (main)",
        "candidates: 20",
        "in black holes: 8",
    ] {
        assert!(text.contains(phrase), "no {phrase:?} in:\n{text}");
    }
}

/// A real matrix: MiniLM (BERT uncased) keeps [unused0]..[unused98] at ids
/// 1..99 and [unused99]..[unused993] at ids 104..998. With the first 99 as
/// the reference, numpy (float64, full SVD) puts 382 of the other 895 below
/// the 2nd percentile (611 candidates; by chance about 18 would be) and 894
/// of them below the 5th.
///
/// Neither real matrix the tests fetch (MiniLM, WordLlama) has a
/// bit-identical hole, so a survey would find no reference set in either:
/// this check gives one (`--reference-tokens`) instead.
#[test]
fn minilm_unused_tokens_rank_among_the_candidates() {
    let dir = fetched();
    let path = dir.join("minilm_l6_v2.safetensors");
    if !require(&path) {
        return;
    }
    let got = indicators(
        &path,
        "cpu",
        &[
            "--key",
            "embeddings.word_embeddings.weight",
            "--reference-tokens",
            "1-99",
        ],
    );
    assert_eq!(got["pc1_converged"], true);
    let c = ids(&got["candidates"]);
    assert_eq!(c.len(), 611);
    let held_out = |t: &usize| (104..=998).contains(t);
    let found = c.iter().filter(|t| held_out(t)).count();
    assert!(
        found >= 370,
        "{found} of the held-out unused tokens among the candidates"
    );
    let mut main: Vec<f64> = values(&got["per_token"]["cosine_distance_pc1_removed"])
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    let by_token = main.clone();
    main.sort_by(f64::total_cmp);
    // numpy.percentile(main, 5), numpy's default linear method written out
    // here (not the program's): the sorted values at position (n − 1)·0.05,
    // interpolated between the two either side.
    let h = (main.len() - 1) as f64 * 0.05;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(main.len() - 1);
    let p5 = main[lo] + (h - lo as f64) * (main[hi] - main[lo]);
    let below = (104..=998).filter(|&t| by_token[t] <= p5).count();
    assert!(below >= 890, "{below} of 895 below the 5th percentile");
    if common::gpu().is_some() {
        let gpu = indicators(
            &path,
            "gpu",
            &[
                "--key",
                "embeddings.word_embeddings.weight",
                "--reference-tokens",
                "1-99",
            ],
        );
        assert_same(&got, &gpu, "minilm");
    }
}

/// A 200 × 16 matrix of distinct finite rows (sin of a hash of the
/// position), with rows 5 and 6 all NaN (one bit pattern: a black hole of
/// two) and, with `hole`, rows 10, 11 and 12 one finite vector.
fn nan_rows_matrix(dir: &TempDir, hole: bool) -> PathBuf {
    let mut rows: Vec<Vec<f32>> = (0..200)
        .map(|r| {
            (0..16)
                .map(|c| ((r * 16 + c) as f32 * 0.731).sin())
                .collect()
        })
        .collect();
    rows[5] = vec![f32::NAN; 16];
    rows[6] = vec![f32::NAN; 16];
    if hole {
        for r in [11, 12] {
            rows[r] = rows[10].clone();
        }
    }
    let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
    one_matrix(dir, &refs)
}

#[test]
fn non_finite_reference_rows_are_named_apart_from_the_reference_used() {
    let dir = TempDir::new().unwrap();
    // The only hole is the NaN rows: nothing is left to take a mean over.
    let file = nan_rows_matrix(&dir, false);
    let out = on_cpu(&file)
        .args(["--json", "--indicators"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ind = &r["indicators"];
    assert_eq!(ind["reference"]["source"], "survey");
    assert_eq!(ids(&ind["reference"]["token_ids"]), Vec::<usize>::new());
    assert_eq!(ids(&ind["reference"]["left_out_non_finite"]), vec![5, 6]);
    assert_eq!(ind["main"], "input_norm");
    assert!(
        stderr.contains("reference set is empty")
            && stderr.contains("NaN or ±∞")
            && stderr.contains("5, 6")
            && !stderr.contains("no black holes"),
        "{stderr}"
    );
    let text = common::run_text(&file, &["--indicators"]);
    assert!(text.contains("reference: 0 tokens"), "{text}");
    assert!(
        text.contains("left out of the reference set: 2 tokens holding NaN or ±∞: 5, 6"),
        "{text}"
    );

    // Beside a finite hole, the NaN rows are left out and the rest is used.
    let dir = TempDir::new().unwrap();
    let file = nan_rows_matrix(&dir, true);
    let out = on_cpu(&file)
        .args(["--json", "--indicators"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ind = &r["indicators"];
    assert_eq!(ids(&ind["reference"]["token_ids"]), vec![10, 11, 12]);
    assert_eq!(ids(&ind["reference"]["left_out_non_finite"]), vec![5, 6]);
    assert_eq!(ind["main"], "cosine_distance_pc1_removed");
    assert!(
        stderr.contains("2 tokens of the reference set hold NaN or ±∞") && stderr.contains("5, 6"),
        "{stderr}"
    );
    // The mean is row 10 itself: distance 0 for the hole, and the three
    // used reference tokens are all the overlap.
    let l2 = values(&ind["per_token"]["l2_to_reference_mean"]);
    assert!(l2[10].unwrap() < 1e-6, "{:?}", l2[10]);
    assert!(l2[5].is_none() && l2[6].is_none());
    assert_eq!(ind["overlap"]["reference"], 3);
}

#[test]
fn unembedding_takes_the_reference_from_the_input_embedding_too() {
    // Surveyed as the input embedding or (--unembedding) as the output head,
    // the untied fixture gives the same indicators: computed on the head,
    // with the input embedding's hole 990..997 (numpy's reference) as the
    // reference set. The head itself has no hole.
    let file = fixture("model_f32.safetensors");
    let want = ids(&expected("model_f32.safetensors")["reference"]);
    for device in devices() {
        let plain = indicators(&file, device, &[]);
        let head = indicators(&file, device, &["--unembedding"]);
        let what = format!("--unembedding on {device}");
        assert_eq!(head["matrix"]["tensor"], "lm_head.weight", "{what}");
        assert_eq!(ids(&head["reference"]["token_ids"]), want, "{what}");
        assert_eq!(head["main"], "cosine_distance_pc1_removed", "{what}");
        assert_same(&plain, &head, &what);
        // The overlap counts the report's own holes: the head's, none.
        assert_eq!(head["overlap"]["holes"], 0, "{what}");
        assert_eq!(head["overlap"]["reference"], 8, "{what}");
    }
    // With near components: the input embedding's, in both runs (the head
    // has a component of its own, the 20 rows near one vector, which is not
    // the reference set).
    let plain = indicators(&file, "cpu", &["--near-l2", "2.5"]);
    let head = indicators(&file, "cpu", &["--near-l2", "2.5", "--unembedding"]);
    let (p, h) = (
        ids(&plain["reference"]["token_ids"]),
        ids(&head["reference"]["token_ids"]),
    );
    assert!(p.len() > 8 && want.iter().all(|t| p.contains(t)), "{p:?}");
    assert_eq!(p, h);
    assert_same(&plain, &head, "--near-l2 2.5 --unembedding");
}

/// Each row's L2 norm in f64 from a raw little-endian f32 file of `rows` rows.
fn f32_file_norms(path: &Path, rows: usize) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let vals: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
        .collect();
    vals.chunks_exact(vals.len() / rows)
        .map(|r| r.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect()
}

fn assert_norms(got: &Value, want: &[f64], what: &str) {
    let got = values(got);
    assert_eq!(got.len(), want.len(), "{what}");
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.unwrap();
        assert!((g - w).abs() <= 1e-5 * w, "{what} row {r}: {g} vs {w}");
    }
}

#[test]
fn an_output_head_alone_reports_its_own_row_norm_never_an_input_norm() {
    // q4_k.gguf's output head has 24 rows, its input embedding 40: with
    // --unembedding the head is used alone, and its norms are named as its
    // own. The dequantized values are the fixture's, from gguf-py.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf");
    let file = dir.join("q4_k.gguf");
    let out = on_cpu(&file)
        .args(["--json", "--indicators", "--unembedding"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("40 rows") && stderr.contains("row_norm"),
        "{stderr}"
    );
    let ind = serde_json::from_slice::<Value>(&out.stdout).unwrap()["indicators"].clone();
    assert_eq!(ind["matrix"]["tensor"], "output.weight");
    assert!(ind["per_token"].get("input_norm").is_none());
    assert!(ind["summary"].get("input_norm").is_none());
    let head = f32_file_norms(&dir.join("q4_k.gguf.output.f32"), 24);
    assert_norms(&ind["per_token"]["row_norm"], &head, "q4_k head");
    assert_eq!(ind["summary"]["row_norm"]["count"], 24);
    // Without the flag the input embedding is surveyed and used (the head
    // does not fit it): its norms are input_norm.
    let ind = indicators(&file, "cpu", &[]);
    assert_eq!(ind["matrix"]["tensor"], "token_embd.weight");
    assert!(ind["per_token"].get("row_norm").is_none());
    let input = f32_file_norms(&dir.join("q4_k.gguf.token_embd.f32"), 40);
    assert_norms(&ind["per_token"]["input_norm"], &input, "q4_k input");

    // A file that holds only an output head: no input embedding at all.
    let rows: Vec<Vec<f32>> = (0..50)
        .map(|i| vec![1.0 + i as f32, (i % 5) as f32, -2.0])
        .collect();
    let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
    let tmp = TempDir::new().unwrap();
    let lone = common::write(
        &tmp,
        "head.safetensors",
        &common::f32_matrix("lm_head.weight", &refs),
    );
    let out = on_cpu(&lone)
        .args(["--json", "--indicators", "--unembedding"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no input embedding"), "{stderr}");
    let ind = serde_json::from_slice::<Value>(&out.stdout).unwrap()["indicators"].clone();
    assert!(ind["per_token"].get("input_norm").is_none());
    assert_eq!(ind["main"], "row_norm");
    let want: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt())
        .collect();
    assert_norms(&ind["per_token"]["row_norm"], &want, "lone head");
}
