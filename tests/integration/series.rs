//! Checkpoint series end to end (`--series`, `--trajectory`, `--steps`),
//! against a real training run: `scripts/train_series.py` trains a tiny bf16
//! byte-level model with AdamW from a singularity (every row of the embedding
//! on one point) and writes the run three ways under tests/fixtures/series/
//! (61 per-step safetensors files `run/step_<N>.safetensors` with unpadded
//! numbers, an h5py-written gzip-chunked `run.h5`, and `run_W.safetensors`),
//! beside `expected.json`, which the script computed in numpy from the bf16
//! bit patterns, never by running this program.
//!
//! Every case runs on the CPU path and, where an adapter is found, on the GPU
//! path (lavapipe on CI, where a missing adapter fails the test).

use crate::common::{self, expect_error, json_report, sg};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::{json, Value};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/series")
}

fn run_dir() -> PathBuf {
    fixtures().join("run")
}

/// expected.json, parsed once.
fn expected() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("expected.json"))
            .expect("tests/fixtures/series/expected.json (scripts/train_series.py)");
        serde_json::from_str(&text).expect("expected.json is JSON")
    })
}

/// The devices to test: the CPU, and the GPU when there is an adapter.
fn devices() -> Vec<&'static str> {
    let mut d = vec!["cpu"];
    if common::gpu().is_some() {
        d.push("gpu");
    }
    d
}

/// Runs the binary with `--device DEVICE` and the arguments.
fn run(device: &str, args: &[OsString]) -> Output {
    sg().arg("--device")
        .arg(device)
        .args(args)
        .output()
        .expect("run binary")
}

/// Arguments from string slices and paths.
fn args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

/// Runs with `--json` and parses stdout, after checking success.
fn run_json(device: &str, a: &[OsString]) -> Value {
    json_report(sg().arg("--device").arg(device).args(a).arg("--json"))
}

/// `--series <fixtures>/run` plus extra arguments.
fn folder_args(extra: &[&str]) -> Vec<OsString> {
    let mut a = args(["--series"]);
    a.push(run_dir().into());
    a.extend(args(extra.iter().copied()));
    a
}

/// `--trajectory FILE --key W --as bf16` plus extra arguments.
fn trajectory_args(file: &str, extra: &[&str]) -> Vec<OsString> {
    let mut a = args(["--trajectory"]);
    a.push(fixtures().join(file).into());
    a.extend(args(["--key", "W", "--as", "bf16"]));
    a.extend(args(extra.iter().copied()));
    a
}

fn as_u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap_or_else(|| panic!("not an integer: {x}")))
        .collect()
}

/// A per-token array of `null | step`.
fn per_token(v: &Value) -> Vec<Option<u64>> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| {
            if x.is_null() {
                None
            } else {
                Some(x.as_u64().unwrap_or_else(|| panic!("not a step: {x}")))
            }
        })
        .collect()
}

/// Groups a per-token `evaporated_at` by step: step → sorted token ids.
fn grouped(evaporated_at: &[Option<u64>]) -> BTreeMap<u64, Vec<u64>> {
    let mut by_step: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (tok, s) in evaporated_at.iter().enumerate() {
        if let Some(s) = s {
            by_step.entry(*s).or_default().push(tok as u64);
        }
    }
    by_step
}

/// The program's "evaporated" events, step → sorted token ids, checking that
/// there is one per step and that every event is well formed.
fn evaporated_events(series: &Value, steps: &[u64]) -> BTreeMap<u64, Vec<u64>> {
    let events = series["events"].as_array().expect("series.events");
    let mut out = BTreeMap::new();
    for e in events {
        let kind = e["kind"].as_str().expect("event kind");
        assert!(
            ["evaporated", "formed", "merged", "split"].contains(&kind),
            "unknown event kind in {e}"
        );
        let step = e["step"].as_u64().expect("event step");
        assert!(steps.contains(&step), "event at a step not surveyed: {e}");
        if kind == "split" || kind == "merged" {
            // Named by size and smallest id, with the pieces that parted
            // from (or joined) the largest one.
            assert!(e["size"].is_u64() && e["representative"].is_u64(), "{e}");
            assert!(e["largest_piece"]["size"].is_u64(), "{e}");
            assert!(!e["pieces"].as_array().unwrap().is_empty(), "{e}");
            assert!(e.get("token_ids").is_none(), "{e}");
            continue;
        }
        let mut ids = as_u64s(&e["token_ids"]);
        assert!(!ids.is_empty(), "an event without tokens: {e}");
        ids.sort_unstable();
        if kind == "evaporated" {
            assert!(
                out.insert(step, ids).is_none(),
                "two evaporated events at step {step}"
            );
        }
    }
    out
}

/// Checks a `series` object against one section of expected.json (the whole
/// run, or a selection such as "every_3"): steps, every per-step number,
/// first_moved, evaporated_at, and the evaporated events.
fn check_series(series: &Value, want: &Value, what: &str) {
    let steps = as_u64s(&want["steps"]);
    assert_eq!(as_u64s(&series["steps"]), steps, "{what}: steps");

    let got = series["per_step"].as_array().expect("series.per_step");
    let exp = want["per_step"].as_array().unwrap();
    assert_eq!(got.len(), exp.len(), "{what}: per_step length");
    for (i, (g, e)) in got.iter().zip(exp).enumerate() {
        let at = format!("{what}: per_step[{i}] (step {})", e["step"]);
        for key in [
            "step",
            "n_unique",
            "black_holes",
            "largest",
            "tokens_in_holes",
            "moved",
        ] {
            assert_eq!(g[key], e[key], "{at}: {key}\n got {g}");
        }
        let d = &g["displacement"];
        if i == 0 {
            assert!(e["moved"].is_null());
            assert!(d.is_null(), "{at}: displacement at the first step: {d}");
            continue;
        }
        assert_eq!(
            d["max_linf_steps"].as_u64(),
            e["max_linf_steps"].as_u64(),
            "{at}: max_linf_steps\n got {g}"
        );
        match e["mean_l1_steps"].as_f64() {
            None => assert!(d["mean_l1_steps"].is_null(), "{at}: mean_l1_steps {d}"),
            Some(want_l1) => {
                let got_l1 = d["mean_l1_steps"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{at}: mean_l1_steps missing in {d}"));
                common::assert_close(got_l1, want_l1, 1e-12, &format!("{at}: mean_l1_steps"));
            }
        }
    }

    let tokens = &series["tokens"];
    let first_moved = per_token(&tokens["first_moved"]);
    assert_eq!(
        first_moved,
        per_token(&want["first_moved"]),
        "{what}: first_moved"
    );
    let evaporated_at = per_token(&tokens["evaporated_at"]);
    assert_eq!(
        evaporated_at,
        per_token(&want["evaporated_at"]),
        "{what}: evaporated_at"
    );

    // The evaporated events are evaporated_at grouped by step, both the
    // program's own and the expected one.
    let events = evaporated_events(series, &steps);
    assert_eq!(events, grouped(&evaporated_at), "{what}: events vs tokens");
    let want_events: BTreeMap<u64, Vec<u64>> = want["evaporated_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["step"].as_u64().unwrap(), as_u64s(&e["token_ids"])))
        .collect();
    assert_eq!(events, want_events, "{what}: evaporated events");
    // Every event, split, merged and formed included, as numpy found them.
    assert_eq!(series["events"], want["events"], "{what}: events");
}

/// The file name of `step_<n>.safetensors` in the fixture folder.
fn step_file(n: u64) -> String {
    format!("step_{n}.safetensors")
}

/// Checks `inputs`: the step files of `steps`, in that order.
fn check_inputs_are_step_files(doc: &Value, steps: &[u64]) {
    let inputs = doc["inputs"].as_array().expect("inputs");
    let names: Vec<String> = inputs
        .iter()
        .map(|p| {
            let p = Path::new(p.as_str().expect("an input path"));
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    let want: Vec<String> = steps.iter().map(|&n| step_file(n)).collect();
    assert_eq!(names, want, "inputs in numeric step order");
}

// ---------------------------------------------------------------------------
// The fixture itself (no binary): what the run is meant to show
// ---------------------------------------------------------------------------

/// The training run shows what the tests need: exactly the text bytes
/// evaporate, spread over several steps, at least one later than its first
/// gradient, while weight decay moves the dead bytes' hole at some steps.
#[test]
fn the_fixture_run_shows_evaporation_and_a_drifting_hole() {
    let e = expected();
    let text = std::fs::read(fixtures().join("text.txt")).unwrap();
    let mut text_tokens: Vec<u64> = text.iter().map(|&b| b as u64).collect();
    text_tokens.sort_unstable();
    text_tokens.dedup();
    assert_eq!(as_u64s(&e["text_tokens"]), text_tokens);
    let dead = as_u64s(&e["dead_tokens"]);
    assert_eq!(dead.len() + text_tokens.len(), 256);

    let evaporated = per_token(&e["evaporated_at"]);
    let first_grad = per_token(&e["first_gradient"]);
    for t in 0..256u64 {
        let in_text = text_tokens.contains(&t);
        assert_eq!(evaporated[t as usize].is_some(), in_text, "token {t}");
        if in_text {
            assert!(
                evaporated[t as usize] >= first_grad[t as usize],
                "token {t}"
            );
        }
    }
    assert!(
        text_tokens
            .iter()
            .any(|&t| evaporated[t as usize] > first_grad[t as usize]),
        "no byte evaporates later than its first gradient"
    );
    assert!(grouped(&evaporated).len() >= 4, "evaporation is spread out");
    assert!(!as_u64s(&e["dead_moved_steps"]).is_empty());
    assert_eq!(e["shape"], json!([61, 256, 8]));
}

// ---------------------------------------------------------------------------
// Good inputs
// ---------------------------------------------------------------------------

/// The folder of per-step files: every number equals expected.json's.
#[test]
fn series_folder_matches_the_training_run() {
    let e = expected();
    let steps = as_u64s(&e["steps"]);
    for device in devices() {
        let doc = run_json(device, &folder_args(&[]));
        let what = format!("--series run/ on {device}");
        assert_eq!(doc["schema"], "singularity-gpu-series/2", "{what}");
        assert_eq!(doc["tensor"], "model.embed_tokens.weight", "{what}");
        assert_eq!(doc["dtype"], "BF16", "{what}");
        assert_eq!(doc["shape"], e["shape"], "{what}");
        assert_eq!(doc["device"]["kind"], device, "{what}");
        assert!(doc["timings_ms"].is_object(), "{what}: timings_ms");
        check_inputs_are_step_files(&doc, &steps);
        check_series(&doc["series"], e, &what);
    }
}

/// Steps whose files are laid out otherwise than the first's (a header
/// with metadata; the tensors' data in the other order, under a header of
/// the same length) are read through the loader; the rest skip it. Either
/// way the series is the training run's.
#[test]
fn steps_laid_out_otherwise_than_the_first_give_the_same_series() {
    let e = expected();
    let dir = TempDir::new().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(run_dir())
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    assert!(files.len() > 20);
    for (k, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        let mut data = &bytes[8 + n..];
        let mut swapped = Vec::new();
        let header: String = match k % 3 {
            // Metadata in the header: another length.
            1 => {
                let mut v: Value = serde_json::from_str(header).unwrap();
                v["__metadata__"] = json!({ "step": k.to_string() });
                v.to_string()
            }
            // The two tensors' data swapped, and their offsets: a header
            // of the same length, the embedding elsewhere in a file of the
            // same length.
            2 => {
                let mut v: Value = serde_json::from_str(header).unwrap();
                let names = ["model.embed_tokens.weight", "lm_head.weight"];
                let [a, b] = names.map(|t| v[t]["data_offsets"].clone());
                assert_eq!(a, json!([0, data.len() / 2]), "two tensors of equal size");
                v[names[0]]["data_offsets"] = b;
                v[names[1]]["data_offsets"] = a;
                let (first, second) = data.split_at(data.len() / 2);
                swapped = [second, first].concat();
                let t = v.to_string();
                assert!(t.len() <= header.len());
                format!("{t}{}", " ".repeat(header.len() - t.len()))
            }
            _ => header.to_string(),
        };
        if !swapped.is_empty() {
            data = &swapped;
        }
        let name = f.file_name().unwrap();
        std::fs::write(dir.path().join(name), common::safetensors(&header, data)).unwrap();
    }
    for device in devices() {
        let doc = run_json(device, &series_of(dir.path()));
        check_series(&doc["series"], e, &format!("re-laid-out steps on {device}"));
    }
}

/// A list of files (a shell glob hands them over in name order, step_10
/// before step_2) is put in step order too.
#[test]
fn series_file_list_is_ordered_by_step_number() {
    let e = expected();
    let steps = as_u64s(&e["steps"]);
    let mut files: Vec<String> = steps.iter().map(|&n| step_file(n)).collect();
    files.sort(); // name order, as a glob gives it: step_0, step_1, step_10, …
    assert_ne!(files[2], step_file(2));
    let mut a = args(["--series"]);
    a.extend(files.iter().map(|f| OsString::from(run_dir().join(f))));
    let doc = run_json("cpu", &a);
    check_inputs_are_step_files(&doc, &steps);
    check_series(&doc["series"], e, "--series run/step_*.safetensors");
}

/// The HDF5 trajectory (h5py, gzip, 4 steps a chunk) and the safetensors
/// trajectory give the same series as the folder, and the expected one.
#[test]
fn trajectories_match_the_folder() {
    let e = expected();
    for device in devices() {
        let folder = run_json(device, &folder_args(&[]));
        for file in ["run.h5", "run_W.safetensors"] {
            let what = format!("--trajectory {file} on {device}");
            let doc = run_json(device, &trajectory_args(file, &[]));
            assert_eq!(doc["schema"], "singularity-gpu-series/2", "{what}");
            assert_eq!(doc["tensor"], "W", "{what}");
            assert_eq!(doc["dtype"], "BF16", "{what}");
            assert_eq!(doc["shape"], e["shape"], "{what}");
            assert_eq!(doc["device"]["kind"], device, "{what}");
            let inputs = doc["inputs"].as_array().expect("inputs");
            assert_eq!(inputs.len(), 1, "{what}: one input");
            assert!(
                inputs[0].as_str().unwrap().ends_with(file),
                "{what}: {inputs:?}"
            );
            check_series(&doc["series"], e, &what);
            assert_eq!(doc["series"], folder["series"], "{what} vs the folder");
        }
    }
}

/// Exactly the bytes of the text evaporate, each at its expected step; the
/// dead bytes never do, although weight decay moved their hole (so they
/// have a first_moved, and every dead token moved at those steps).
#[test]
fn only_text_bytes_evaporate_though_the_hole_moves() {
    let e = expected();
    let text_tokens = as_u64s(&e["text_tokens"]);
    let dead = as_u64s(&e["dead_tokens"]);
    let dead_moved = as_u64s(&e["dead_moved_steps"]);
    assert!(!dead_moved.is_empty());
    let want = per_token(&e["evaporated_at"]);
    for device in devices() {
        let doc = run_json(device, &folder_args(&[]));
        let series = &doc["series"];
        let evaporated = per_token(&series["tokens"]["evaporated_at"]);
        let first_moved = per_token(&series["tokens"]["first_moved"]);
        assert_eq!(evaporated.len(), 256);
        for &t in &text_tokens {
            assert_eq!(
                evaporated[t as usize], want[t as usize],
                "{device}: byte {t}"
            );
            assert!(evaporated[t as usize].is_some(), "{device}: byte {t}");
        }
        for &t in &dead {
            assert_eq!(evaporated[t as usize], None, "{device}: dead byte {t}");
            assert_eq!(
                first_moved[t as usize],
                Some(dead_moved[0]),
                "{device}: dead byte {t} moves with its hole"
            );
        }
        let steps = as_u64s(&series["steps"]);
        for &s in &dead_moved {
            let i = steps.iter().position(|&x| x == s).unwrap();
            let moved = series["per_step"][i]["moved"].as_u64().unwrap();
            assert!(moved >= dead.len() as u64, "{device}: step {s}: {moved}");
        }
        let evaporated_tokens: Vec<u64> = grouped(&evaporated).into_values().flatten().collect();
        let mut sorted = evaporated_tokens.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, text_tokens, "{device}: the evaporated tokens");
    }
}

/// `--steps ::3` and `--steps 10:20`, on the folder and on both trajectories:
/// moved and displacement compare with the previous selected step, and
/// evaporation follows the groups of the first selected step.
#[test]
fn step_selections_match() {
    let e = expected();
    for key in ["every_3", "range_10_20"] {
        let want = &e[key];
        let opt = want["steps_option"].as_str().unwrap();
        let steps = as_u64s(&want["steps"]);
        for device in devices() {
            let what = format!("--series run/ --steps {opt} on {device}");
            let doc = run_json(device, &folder_args(&["--steps", opt]));
            let mut shape = e["shape"].clone();
            shape[0] = json!(steps.len());
            assert_eq!(doc["shape"], shape, "{what}: shape counts selected steps");
            check_inputs_are_step_files(&doc, &steps);
            check_series(&doc["series"], want, &what);
            for file in ["run.h5", "run_W.safetensors"] {
                let what = format!("--trajectory {file} --steps {opt} on {device}");
                let t = run_json(device, &trajectory_args(file, &["--steps", opt]));
                check_series(&t["series"], want, &what);
            }
        }
    }
}

/// The text report holds a timeline and the events.
#[test]
fn text_report_has_a_timeline_and_events() {
    let e = expected();
    for device in devices() {
        let out = run(device, &folder_args(&[]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{device}: {:?}\n{stderr}", out.status);
        let text = String::from_utf8(out.stdout).expect("UTF-8 stdout");
        let lower = text.to_lowercase();
        assert!(lower.contains("timeline"), "{device}: no timeline:\n{text}");
        assert!(lower.contains("evaporated"), "{device}: no events:\n{text}");
        assert!(!text.trim_start().starts_with('{'), "not JSON:\n{text}");
        // The last evaporation step is in the timeline (sampled timelines
        // keep every step that had an event).
        let last = grouped(&per_token(&e["evaporated_at"]))
            .into_keys()
            .last()
            .unwrap();
        assert!(
            text.contains(&last.to_string()),
            "{device}: step {last}:\n{text}"
        );
    }
}

/// One hole of 50,000 tokens (f32, one dim) that two tokens, drawn at
/// random among those still in it, leave together for a value of their own
/// at each of 100 steps (token 0 among them at step 37, so the hole's
/// smallest id changes), written as a 20 MB safetensors trajectory. The
/// events name the two tokens and the hole by its size and smallest id,
/// never its 50,000 tokens: the document stays under 2 MB (listing the hole
/// in each split event, as the events once did, took 178 MB).
#[test]
fn events_name_the_tokens_that_left_a_big_hole_not_the_hole() {
    const N: usize = 50_000;
    const STEPS: u64 = 100;
    let mut rng = common::Rng::new(12);
    let mut in_hole: Vec<usize> = (0..N).collect();
    let mut values = vec![1.0f32; N];
    let mut data: Vec<u8> = Vec::with_capacity((STEPS as usize + 1) * N * 4);
    let mut push = |values: &[f32]| data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    push(&values);
    let mut want_events = Vec::new();
    let mut want_sizes = Vec::new();
    for step in 1..=STEPS {
        let before = (in_hole.len(), in_hole[0]);
        let first = if step == 37 {
            0
        } else {
            in_hole.remove(rng.below(in_hole.len()))
        };
        if first == 0 {
            in_hole.remove(0);
        }
        let second = in_hole.remove(rng.below(in_hole.len()));
        let pair = if first < second {
            [first, second]
        } else {
            [second, first]
        };
        for t in pair {
            values[t] = 1.0 + step as f32;
        }
        push(&values);
        want_sizes.push(in_hole.len());
        want_events.push(json!({"step": step, "kind": "evaporated", "token_ids": pair}));
        want_events.push(json!({
            "step": step, "kind": "split", "size": before.0, "representative": before.1,
            "largest_piece": {"size": in_hole.len(), "representative": in_hole[0]},
            "pieces": [pair],
        }));
    }
    assert_eq!(in_hole.len(), N - 2 * STEPS as usize);
    assert!(!in_hole.contains(&0));

    let dir = TempDir::new().unwrap();
    let file = dir.path().join("trajectory.safetensors");
    let shape = [STEPS as usize + 1, N, 1];
    let header = format!(
        r#"{{"W":{{"dtype":"F32","shape":{shape:?},"data_offsets":[0,{}]}}}}"#,
        data.len()
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    std::fs::write(&file, bytes).unwrap();

    for device in devices() {
        let mut a = args(["--trajectory"]);
        a.push(file.clone().into());
        a.extend(args(["--key", "W", "--json"]));
        let out = run(device, &a);
        assert!(
            out.status.success(),
            "{device}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size = out.stdout.len();
        assert!(size < 2_000_000, "{device}: the JSON is {size} bytes");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["schema"], "singularity-gpu-series/2");
        let series = &doc["series"];
        assert_eq!(series["events"], json!(want_events), "{device}: events");
        // The events alone grow with the 200 tokens that moved: about 150
        // bytes a step (the hole listed twice would be 600 KB a step).
        let events = serde_json::to_string(&series["events"]).unwrap();
        assert!(events.len() < 40_000, "{device}: events {}", events.len());
        for (k, &largest) in want_sizes.iter().enumerate() {
            let p = &series["per_step"][k + 1];
            assert_eq!(p["largest"], largest, "{device}: step {}", k + 1);
            assert_eq!(p["black_holes"], k + 2, "{device}: step {}", k + 1);
            assert_eq!(p["moved"], 2, "{device}: step {}", k + 1);
        }
        assert_eq!(series["frozen"], json!([in_hole]), "{device}: frozen");
    }

    // The text names the hole by its size and smallest id, and lists the
    // two tokens; its events take a few lines a step.
    let mut a = args(["--trajectory"]);
    a.push(file.into());
    a.extend(args(["--key", "W"]));
    let out = run("cpu", &a);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let events = &text[text.find("EVENTS").unwrap()..text.find("AT THE END").unwrap()];
    let first = &want_events[1]["pieces"][0];
    let want = format!(
        "step 1: a hole of 50,000 (smallest id 0) split into 49,998 + 2\n    49,998 together (smallest id 0)\n    2 together: {}, {}\n",
        first[0], first[1]
    );
    assert!(events.contains(&want), "{want}\nin\n{events}");
    assert!(events.len() < 20_000, "{} bytes of events", events.len());
}

// ---------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------

/// A safetensors file with one tensor `name` of `dtype` and `shape`, its
/// data zeros.
fn safetensors(name: &str, dtype: &str, shape: &[usize]) -> Vec<u8> {
    let size = match dtype {
        "BF16" | "F16" | "U16" => 2,
        "F32" => 4,
        other => panic!("dtype {other}"),
    };
    let bytes = shape.iter().product::<usize>() * size;
    let header = format!(
        r#"{{"{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[0,{bytes}]}}}}"#
    );
    common::safetensors(&header, &vec![0; bytes])
}

fn series_of(dir: &Path) -> Vec<OsString> {
    let mut a = args(["--series"]);
    a.push(dir.into());
    a
}

#[test]
fn folder_without_numbered_files_is_an_error() {
    let dir = TempDir::new().unwrap();
    let m = safetensors("model.embed_tokens.weight", "BF16", &[4, 2]);
    std::fs::write(dir.path().join("final.safetensors"), &m).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"no numbers here").unwrap();
    let out = run("cpu", &series_of(dir.path()));
    expect_error(&out, &[&dir.path().display().to_string()]);

    let empty = TempDir::new().unwrap();
    let out = run("cpu", &series_of(empty.path()));
    expect_error(&out, &[&empty.path().display().to_string()]);
}

#[test]
fn a_step_with_another_shape_or_dtype_is_an_error_naming_it() {
    let key = "model.embed_tokens.weight";
    for (dtype, shape) in [
        ("BF16", &[4usize, 3][..]),
        ("BF16", &[5, 2]),
        ("F32", &[4, 2]),
    ] {
        let dir = TempDir::new().unwrap();
        for n in [0, 1, 3] {
            let m = safetensors(key, "BF16", &[4, 2]);
            std::fs::write(dir.path().join(format!("step_{n}.safetensors")), m).unwrap();
        }
        let bad = dir.path().join("step_2.safetensors");
        std::fs::write(&bad, safetensors(key, dtype, shape)).unwrap();
        for device in devices() {
            let out = run(device, &series_of(dir.path()));
            expect_error(&out, &[&bad.display().to_string()]);
        }
    }
}

#[test]
fn series_with_file_is_an_error() {
    let mut a = folder_args(&[]);
    a.push("--file".into());
    a.push(run_dir().join(step_file(0)).into());
    let out = run("cpu", &a);
    expect_error(&out, &["--series", "--file"]);
}

#[test]
fn bad_step_selections_and_lists_are_one_line_errors() {
    // --steps without a series, a reversed range, EVERY of 0, a selection
    // that keeps nothing.
    let file = run_dir().join(step_file(0));
    let mut a = args(["--file"]);
    a.push(file.clone().into());
    a.extend(args(["--steps", "::2"]));
    expect_error(&run("cpu", &a), &["--steps"]);
    expect_error(
        &run("cpu", &folder_args(&["--steps", "9:3"])),
        &["START is after END"],
    );
    expect_error(&run("cpu", &folder_args(&["--steps", "::0"])), &["EVERY"]);
    expect_error(
        &run("cpu", &folder_args(&["--steps", "1000:2000"])),
        &["selects none"],
    );
    // The same for a trajectory, and a trajectory of no steps at all.
    expect_error(
        &run("cpu", &trajectory_args("run.h5", &["--steps", "1000:2000"])),
        &["selects none"],
    );
    let empty = TempDir::new().unwrap();
    let none = empty.path().join("none.safetensors");
    std::fs::write(&none, safetensors("W", "F32", &[0, 4, 3])).unwrap();
    let mut a = args(["--trajectory"]);
    a.push(none.into());
    expect_error(&run("cpu", &a), &["no steps"]);

    // A listed file without a step number; two files of the same step.
    let dir = TempDir::new().unwrap();
    let key = "model.embed_tokens.weight";
    let plain = dir.path().join("model.safetensors");
    std::fs::write(&plain, safetensors(key, "BF16", &[4, 2])).unwrap();
    let mut a = args(["--series"]);
    a.push(file.clone().into());
    a.push(plain.clone().into());
    expect_error(
        &run("cpu", &a),
        &[&plain.display().to_string(), "no step number"],
    );
    let twin = dir.path().join("ckpt_000.safetensors");
    std::fs::write(&twin, safetensors(key, "BF16", &[256, 8])).unwrap();
    let mut a = args(["--series"]);
    a.push(file.into());
    a.push(twin.into());
    expect_error(&run("cpu", &a), &["step 0 twice"]);
}

#[test]
fn a_series_folder_skips_entries_that_hold_no_checkpoint() {
    // Two steps of the run beside what real run folders hold: logs, a
    // config, an event file with a timestamp, a trajectory, a folder of
    // text; and a step named with a dtype tag before its extension.
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    for n in [0u64, 1] {
        std::fs::copy(run_dir().join(step_file(n)), d.join(step_file(n))).unwrap();
    }
    std::fs::copy(
        run_dir().join(step_file(2)),
        d.join("step_2.bf16.safetensors"),
    )
    .unwrap();
    std::fs::write(d.join("notes_v2.txt"), "lr 3e-4\n").unwrap();
    std::fs::write(d.join("config.json"), "{}").unwrap();
    std::fs::write(d.join("events.out.tfevents.1700000000.host"), [0u8; 64]).unwrap();
    std::fs::copy(fixtures().join("run.h5"), d.join("trajectory_v1.h5")).unwrap();
    std::fs::create_dir(d.join("logs3")).unwrap();
    std::fs::write(d.join("logs3/train.log"), "step 3\n").unwrap();
    // Files that start like a format we read but hold no step: pickled
    // arguments, a zip of logs, a 1-D array of losses.
    std::fs::write(d.join("args_7.bin"), b"\x80\x02}q\x00.").unwrap();
    {
        use std::io::Write;
        let f = std::fs::File::create(d.join("logs_2024.zip")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("train.log", o).unwrap();
        z.write_all(b"step 1 loss 5.5\n").unwrap();
        z.finish().unwrap();
    }
    let mut losses = b"\x93NUMPY\x01\x00".to_vec();
    let mut h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".to_vec();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    losses.extend_from_slice(&(h.len() as u16).to_le_bytes());
    losses.extend_from_slice(&h);
    losses.extend_from_slice(&[0u8; 12]);
    std::fs::write(d.join("losses_300.npy"), losses).unwrap();
    let out = run("cpu", &{
        let mut a = series_of(d);
        a.push("--json".into());
        a
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(as_u64s(&doc["series"]["steps"]), vec![0, 1, 2]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for skipped in [
        "notes_v2.txt",
        "events.out.tfevents",
        "trajectory_v1.h5",
        "logs3",
    ] {
        assert!(
            stderr.contains(skipped),
            "{skipped} named as skipped:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("config.json"),
        "no number, not worth a note:\n{stderr}"
    );
}

#[test]
fn one_tensor_flags_are_refused_with_a_series() {
    let mut a = args(["--trajectory"]);
    a.push(fixtures().join("run.h5").into());
    a.extend(args(["--key", "W", "--as", "bf16", "--unembedding"]));
    expect_error(&run("cpu", &a), &["--trajectory", "--unembedding"]);
    expect_error(
        &run("cpu", &folder_args(&["--nearest"])),
        &["--series", "--nearest"],
    );
    let missing = Path::new("/nonexistent/series");
    expect_error(
        &run("cpu", &series_of(missing)),
        &["no such file or folder"],
    );
}
