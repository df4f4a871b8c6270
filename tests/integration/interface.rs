//! The command line as a user meets it: help headings, what an unknown or
//! missing input is called, `--max-tokens`, plurals, the timing line, a
//! series of one step, and when token ids are shown as bytes. Expected
//! texts are written out here from the rules, never copied from a run.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

use crate::common::{expect_error, sg};

/// A safetensors file of one F32 matrix named "emb".
fn matrix_file(rows: &[Vec<f32>]) -> Vec<u8> {
    let cols = rows[0].len();
    let data: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut header = format!(
        r#"{{"emb":{{"dtype":"F32","shape":[{},{cols}],"data_offsets":[0,{}]}}}}"#,
        rows.len(),
        data.len()
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// `n` rows of 4 values, all distinct except rows `0..group`, which share one vector.
fn rows_with_group(n: usize, group: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            let k = if i < group { 0.5 } else { i as f32 };
            vec![k, 1.0, -k, 2.0]
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The binary, with no hub cache configured from the environment.
fn bin() -> Command {
    let mut cmd = sg();
    cmd.env_remove("HF_HUB_CACHE").env_remove("HF_HOME");
    cmd
}

fn run_in(cwd: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(cwd)
        .args(args)
        .args(["--device", "cpu"])
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A user error (see [`expect_error`]) holding every phrase and none of `absent`.
fn one_line_error(out: &Output, phrases: &[&str], absent: &[&str], case: &str) {
    let stderr = expect_error(out, phrases);
    for p in absent {
        assert!(!stderr.contains(p), "{case}: {p:?} in {stderr}");
    }
}

#[test]
fn help_groups_the_flags_under_headings_in_order() {
    let out = bin().arg("--help").output().unwrap();
    let help = text(&out);
    let headings = [
        "Input:",
        "Tensor choice:",
        "Geometry:",
        "Series:",
        "Output:",
        "Device:",
    ];
    let at: Vec<usize> = headings
        .iter()
        .map(|h| {
            help.lines()
                .position(|l| l == *h)
                .unwrap_or_else(|| panic!("no heading {h:?} in:\n{help}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    // Each flag under its heading.
    let under = |flag: &str, heading: &str| {
        // The flag's own entry: an indented line that starts with it
        // (after its short form, if any).
        let line = help
            .lines()
            .position(|l| {
                let l = l.trim_start();
                l.starts_with(flag)
                    || l.get(4..)
                        .is_some_and(|r| l.starts_with('-') && r.starts_with(flag))
            })
            .unwrap_or_else(|| panic!("no entry for {flag}"));
        let h = headings.iter().position(|x| *x == heading).unwrap();
        assert!(
            line > at[h] && at.get(h + 1).is_none_or(|&next| line < next),
            "{flag} not under {heading}"
        );
    };
    under("--file", "Input:");
    under("--key", "Tensor choice:");
    under("--near-ulp", "Geometry:");
    under("--steps", "Series:");
    under("--max-tokens <N>", "Output:");
    under("--device", "Device:");
    assert!(help.contains("[alias: --max-tokens-per-group]"), "{help}");
}

#[test]
fn unknown_files_are_named_by_their_first_bytes() {
    let dir = TempDir::new().unwrap();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "README.md",
            b"# A model card\n\nSome text.\n",
            r##""# A model card\n\n""##,
        ),
        (
            "short.safetensors",
            &[1, 2, 3, 4, 5],
            r#""\x01\x02\x03\x04\x05""#,
        ),
        ("empty.safetensors", &[], "none (the file is empty)"),
        (
            "picture.safetensors",
            png,
            r#""\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR""#,
        ),
    ];
    for (name, bytes, shown) in cases {
        let path = write(dir.path(), name, bytes);
        let out = run_in(dir.path(), &["-f", path.to_str().unwrap()]);
        one_line_error(
            &out,
            &[
                name,
                "not a file format singularity-gpu reads (safetensors, PyTorch zip, GGUF, .npy, .npz, HDF5 trajectory): first bytes ",
                shown,
            ],
            &["header length"],
            name,
        );
    }
}

#[test]
fn a_trajectory_that_is_not_one_says_what_it_is() {
    let dir = TempDir::new().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text_file = write(dir.path(), "notes.txt", b"step 1: loss 2.3\n");
    let out = run_in(
        dir.path(),
        &["--trajectory", text_file.to_str().unwrap(), "--key", "W"],
    );
    one_line_error(
        &out,
        &[
            "not a file format singularity-gpu reads",
            r#"first bytes "step 1: loss 2.3""#,
        ],
        &["safetensors file"],
        "text",
    );
    let gguf = root.join("tests/fixtures/gguf/f32.gguf");
    let out = run_in(
        dir.path(),
        &["--trajectory", gguf.to_str().unwrap(), "--key", "W"],
    );
    one_line_error(
        &out,
        &[
            "--trajectory reads a [step, token, dim] tensor from a safetensors or HDF5 file",
            "--file",
        ],
        &["header length"],
        "gguf",
    );
}

#[test]
fn a_missing_path_is_looked_up_in_the_hub_cache_only_when_it_reads_as_a_model_name() {
    let dir = TempDir::new().unwrap();
    let cache = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("mymodels")).unwrap();
    let hub = "Hugging Face cache";
    // (argument, phrases, phrases that must not appear)
    let cases: [(&str, &[&str], &[&str]); 5] = [
        // A format's extension: a mistyped file.
        ("nosuch/llama.safetensors", &["nosuch/llama.safetensors: no such file or folder"], &[hub]),
        ("org/model.GGUF", &["no such file or folder"], &[hub]),
        // A local folder ORG exists: a path into it.
        ("mymodels/llama", &["mymodels/llama: no such file or folder"], &[hub]),
        // Not ORG/NAME at all.
        ("a/b/c", &["a/b/c: no such file or folder"], &[hub]),
        // ORG/NAME, in neither place: both said, then the download.
        (
            "some-org/some.model-1.5",
            &[
                "some-org/some.model-1.5: no such file or folder here, and not in the Hugging Face cache",
                "models--some-org--some.model-1.5 not found",
                "`huggingface-cli download some-org/some.model-1.5`",
            ],
            &[],
        ),
    ];
    for (arg, want, not) in cases {
        let out = bin()
            .current_dir(dir.path())
            .env("HF_HUB_CACHE", cache.path())
            .args(["-f", arg, "--device", "cpu"])
            .output()
            .unwrap();
        one_line_error(&out, want, not, arg);
    }
    // The same name once the cache holds it: surveyed.
    let snapshot = cache
        .path()
        .join("models--some-org--some.model-1.5/snapshots/abc");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(cache.path().join("models--some-org--some.model-1.5/refs")).unwrap();
    std::fs::write(
        cache
            .path()
            .join("models--some-org--some.model-1.5/refs/main"),
        "abc",
    )
    .unwrap();
    write(
        &snapshot,
        "model.safetensors",
        &matrix_file(&rows_with_group(8, 2)),
    );
    let out = bin()
        .current_dir(dir.path())
        .env("HF_HUB_CACHE", cache.path())
        .args(["-f", "some-org/some.model-1.5", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(text(&out).contains("Unique vectors: 7"));
}

#[test]
fn max_tokens_limits_the_ids_and_zero_shows_counts_only() {
    let dir = TempDir::new().unwrap();
    let f = write(
        dir.path(),
        "m.safetensors",
        &matrix_file(&rows_with_group(300, 30)),
    );
    let f = f.to_str().unwrap();

    let five = text(&run_in(dir.path(), &["-f", f, "--max-tokens", "5"]));
    assert!(five.contains("  Token IDs: [0, 1, 2, 3, 4]\n"), "{five}");
    assert!(five.contains("  ... and 25 more tokens\n"), "{five}");
    // The old name is an alias.
    let alias = text(&run_in(
        dir.path(),
        &["-f", f, "--max-tokens-per-group", "5"],
    ));
    assert!(alias.contains("  Token IDs: [0, 1, 2, 3, 4]\n"), "{alias}");

    let zero = text(&run_in(dir.path(), &["-f", f, "--max-tokens", "0"]));
    assert!(
        zero.contains("Group 1/1: 30 tokens sharing the vector of token 0"),
        "{zero}"
    );
    assert!(!zero.contains("Token IDs"), "{zero}");
    assert!(!zero.contains("more"), "{zero}");
    assert!(zero.contains("Token ids hidden (--max-tokens 0)"), "{zero}");
}

#[test]
fn counts_of_one_are_singular() {
    let dir = TempDir::new().unwrap();
    let f = write(
        dir.path(),
        "m.safetensors",
        &matrix_file(&rows_with_group(300, 2)),
    );
    let out = text(&run_in(dir.path(), &["-f", f.to_str().unwrap()]));
    assert!(out.contains("⚠ Found 1 duplicate token\n"), "{out}");
    assert!(out.contains("\n     2 tokens:    1 group\n"), "{out}");
    assert!(out.contains("Singularity groups: 1\n"), "{out}");
    assert!(
        !out.contains(" 1 groups") && !out.contains(" 1 tokens"),
        "{out}"
    );

    // A near-singularity component of one black hole (rows 0 and 1) and a
    // row 0.1 from it: one hole, two distinct vectors, three tokens.
    let mut rows = rows_with_group(300, 2);
    rows[2] = vec![0.6, 1.0, -0.5, 2.0];
    let f = write(dir.path(), "near.safetensors", &matrix_file(&rows));
    let out = text(&run_in(
        dir.path(),
        &["-f", f.to_str().unwrap(), "--near-l2", "0.2"],
    ));
    assert!(
        out.contains("Component 1/1: 3 tokens on 2 distinct vectors (1 black hole)"),
        "{out}"
    );
    // A one-token tokenizer beside a one-row matrix.
    let one = TempDir::new().unwrap();
    let f = write(one.path(), "m.safetensors", &matrix_file(&[vec![1.0, 2.0]]));
    write(
        one.path(),
        "tokenizer.json",
        tokenizer(1, |_| "a".into()).as_bytes(),
    );
    let out = text(&run_in(one.path(), &["-f", f.to_str().unwrap()]));
    assert!(out.contains("(plain, 1 token)\n"), "{out}");
}

#[test]
fn the_time_line_names_only_the_stages_that_ran() {
    let dir = TempDir::new().unwrap();
    let f = write(
        dir.path(),
        "m.safetensors",
        &matrix_file(&rows_with_group(300, 2)),
    );
    let f = f.to_str().unwrap();
    let time = |extra: &[&str]| -> String {
        let mut args = vec!["-f", f];
        args.extend_from_slice(extra);
        let out = text(&run_in(dir.path(), &args));
        out.lines()
            .find(|l| l.starts_with("Time: "))
            .unwrap()
            .to_string()
    };
    let stages = |line: &str| -> Vec<String> {
        line["Time: ".len()..]
            .split(", ")
            .map(|s| s.split(' ').next().unwrap().to_string())
            .collect()
    };
    // One black hole: no lattice; neither all-pairs search was asked for.
    assert_eq!(
        stages(&time(&[])),
        ["load", "hash", "group", "geometry", "total"]
    );
    assert_eq!(
        stages(&time(&["--nearest", "--near-l2", "0.1"])),
        ["load", "hash", "group", "geometry", "nearest", "near", "total"]
    );
}

#[test]
fn a_series_of_one_step_is_an_error() {
    let dir = TempDir::new().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let m = matrix_file(&rows_with_group(8, 2));
    write(&run_dir, "step_10.safetensors", &m);
    let out = run_in(dir.path(), &["--series", "run"]);
    one_line_error(
        &out,
        &["a series needs at least two steps, and only step 10 was found"],
        &[],
        "one file",
    );
    write(&run_dir, "step_20.safetensors", &m);
    write(&run_dir, "step_30.safetensors", &m);
    let out = run_in(dir.path(), &["--series", "run", "--steps", "15:25"]);
    one_line_error(
        &out,
        &["a series needs at least two steps, and only step 20 was selected by --steps"],
        &[],
        "one selected",
    );
    // A trajectory of which one step is selected.
    let data: Vec<u8> = (0..3 * 8 * 4)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    let mut header = format!(
        r#"{{"W":{{"dtype":"F32","shape":[3,8,4],"data_offsets":[0,{}]}}}}"#,
        data.len()
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    write(dir.path(), "traj.safetensors", &bytes);
    let out = run_in(
        dir.path(),
        &[
            "--trajectory",
            "traj.safetensors",
            "--key",
            "W",
            "--steps",
            "1:1",
        ],
    );
    one_line_error(
        &out,
        &["a series needs at least two steps, and only step 1 was selected by --steps; select more with --steps"],
        &["--file"],
        "one trajectory step",
    );
    // Two steps are a series.
    let out = run_in(dir.path(), &["--series", "run", "--steps", "15:", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&text(&out).into_bytes()).unwrap();
    assert_eq!(doc["series"]["steps"], serde_json::json!([20, 30]));
}

/// A word-level tokenizer.json whose token i is `piece(i)`.
fn tokenizer(n: usize, piece: impl Fn(usize) -> String) -> String {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..n).map(|i| (piece(i), serde_json::json!(i))).collect();
    serde_json::json!({"model": {"type": "WordLevel", "vocab": vocab}}).to_string()
}

#[test]
fn ids_show_as_bytes_only_for_a_byte_vocabulary() {
    let bytes_line = "  Token IDs (byte values): [0, 1]\n";
    let chars_line = "  Characters: ['\\\\x00', '\\\\x01']\n";
    let ids_line = "  Token IDs: [0, 1]\n";
    let byte_piece = |i: usize| char::from(i as u8).to_string();
    // (rows, tokenizer beside the matrix, shown as bytes)
    let cases: [(usize, Option<String>, bool); 5] = [
        (256, None, true),
        (200, None, false),
        (128, Some(tokenizer(128, byte_piece)), true),
        // Token i is not the byte i: strings, not bytes.
        (128, Some(tokenizer(128, |i| format!("t{i}"))), false),
        (300, None, false),
    ];
    for (rows, tok, as_bytes) in cases {
        let dir = TempDir::new().unwrap();
        let f = write(
            dir.path(),
            "m.safetensors",
            &matrix_file(&rows_with_group(rows, 2)),
        );
        if let Some(t) = &tok {
            write(dir.path(), "tokenizer.json", t.as_bytes());
        }
        let out = text(&run_in(dir.path(), &["-f", f.to_str().unwrap()]));
        let case = format!("{rows} rows, tokenizer {}", tok.is_some());
        if as_bytes {
            assert!(
                out.contains(bytes_line) && out.contains(chars_line),
                "{case}:\n{out}"
            );
        } else {
            assert!(
                out.contains(ids_line) && !out.contains("byte values"),
                "{case}:\n{out}"
            );
        }
        if tok.is_some() && !as_bytes {
            assert!(
                out.contains("  Tokens: 0 \"t0\", 1 \"t1\"\n"),
                "{case}:\n{out}"
            );
        }
    }
}

#[test]
fn a_byte_vocabulary_labels_the_all_pairs_tables_with_its_bytes() {
    // 256 rows, no tokenizer: rows 65 ('A') and 66 ('B') are each other's
    // nearest neighbours, closer than any other pair.
    let mut rows = rows_with_group(256, 2);
    rows[66] = vec![65.001, 1.0, -65.0, 2.0];
    let dir = TempDir::new().unwrap();
    let f = write(dir.path(), "m.safetensors", &matrix_file(&rows));
    let out = text(&run_in(
        dir.path(),
        &["-f", f.to_str().unwrap(), "--nearest"],
    ));
    assert!(
        out.contains(r#"65 "A""#) && out.contains(r#"66 "B""#),
        "{out}"
    );
}

#[test]
fn the_bundled_example_ships_its_byte_vocabulary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = text(&run_in(root, &["-f", "examples/notebook_128.safetensors"]));
    assert!(
        out.contains("Tokenizer: examples/tokenizer.json (a byte vocabulary, 128 tokens)"),
        "{out}"
    );
    assert!(
        out.contains("  Token IDs (byte values): [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11,"),
        "{out}"
    );
}

/// The binary's stderr when it runs on a pseudo-terminal (`script`), with
/// progress shown after `after_ms` (None: the default few seconds).
fn on_a_terminal(cwd: &Path, args: &str, after_ms: Option<u64>) -> Option<String> {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`script` (util-linux) is needed to test progress on a terminal"
        );
        eprintln!("skipped: no `script` to run the binary on a pseudo-terminal");
        return None;
    }
    let bin = env!("CARGO_BIN_EXE_singularity-gpu");
    let mut cmd = std::process::Command::new("script");
    cmd.current_dir(cwd).args([
        "-qec",
        &format!("{bin} {args} --device cpu 2>&1 >/dev/null"),
        "/dev/null",
    ]);
    match after_ms {
        Some(ms) => cmd.env("SINGULARITY_GPU_PROGRESS_AFTER_MS", ms.to_string()),
        None => cmd.env_remove("SINGULARITY_GPU_PROGRESS_AFTER_MS"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn progress_shows_on_a_terminal_once_work_has_taken_a_while() {
    let dir = TempDir::new().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let m = matrix_file(&rows_with_group(64, 2));
    for step in [1, 2, 3] {
        write(&run_dir, &format!("step_{step}.safetensors"), &m);
    }
    write(dir.path(), "m.safetensors", &m);
    let scan = "--series run";
    let near = "-f m.safetensors --near-l2 1";
    // Shown at once when the delay is 0 ms: the count of a folder scan, the
    // spinner of a threshold search.
    let Some(shown) = on_a_terminal(dir.path(), scan, Some(0)) else {
        return;
    };
    assert!(shown.contains("scanning the folder: "), "{shown:?}");
    let shown = on_a_terminal(dir.path(), near, Some(0)).unwrap();
    assert!(shown.contains("near-singularities ("), "{shown:?}");
    // Work that ends within the default delay shows nothing.
    for args in [scan, near] {
        let quiet = on_a_terminal(dir.path(), args, None).unwrap();
        assert!(quiet.trim().is_empty(), "{args}: {quiet:?}");
    }
    // Nor does anything show when stderr is not a terminal.
    for args in [scan, near] {
        let out = bin()
            .current_dir(dir.path())
            .env("SINGULARITY_GPU_PROGRESS_AFTER_MS", "0")
            .args(args.split(' '))
            .args(["--device", "cpu"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            out.stderr.is_empty(),
            "{args}: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
