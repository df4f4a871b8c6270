//! Many inputs in one run: `--file` repeated, `--files-from`, `--shard`.
//! The table and the JSON Lines are checked against each input's single
//! `--file` run and against a hand-built matrix whose answers are known;
//! failing inputs, lists and shards as a user meets them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

/// 1.0f32 plus one step (ULP): 1 + 2^-23.
fn one_plus_ulp() -> f32 {
    f32::from_bits(0x3f80_0001)
}

/// Nine F32 rows of four: black hole A = rows 0, 3, 5 (e0); black hole
/// B = rows 1, 6 (e1); row 2 is A's vector one step away in its first
/// coordinate; rows 4, 7 and 8 (e2, e3, all ones) stand alone.
///
/// By hand: 6 distinct vectors; holes of 3 and 2 tokens (5 tokens in holes);
/// under `--near-ulp 1` one component of A and row 2 (tokens 0, 2, 3, 5);
/// under `--nearest` tokens 0, 2, 3, 5 have their nearest vector at 2^-23
/// and every other token at √2 or more (rows 1, 4, 6, 7 at √2, row 8 at
/// √3): a gap from 2^-23 to √2 with 4 tokens below it.
fn hand_built(dir: &TempDir) -> PathBuf {
    let u = one_plus_ulp();
    let rows: [&[f32]; 9] = [
        &[1.0, 0.0, 0.0, 0.0],
        &[0.0, 1.0, 0.0, 0.0],
        &[u, 0.0, 0.0, 0.0],
        &[1.0, 0.0, 0.0, 0.0],
        &[0.0, 0.0, 1.0, 0.0],
        &[1.0, 0.0, 0.0, 0.0],
        &[0.0, 1.0, 0.0, 0.0],
        &[0.0, 0.0, 0.0, 1.0],
        &[1.0, 1.0, 1.0, 1.0],
    ];
    write(dir, "hand.safetensors", &f32_matrix("embeddings", &rows))
}

/// The three inputs of most tests: the hand-built matrix, the bundled
/// example (one hole of 51) and a quantized GGUF (three holes).
fn three(dir: &TempDir) -> Vec<PathBuf> {
    vec![hand_built(dir), example_path(), fixture("gguf/q4_k.gguf")]
}

/// The binary on the CPU with `--file` for each input, then `extra`.
fn many(inputs: &[PathBuf], extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = sg();
    cmd.args(["--device", "cpu"]);
    for f in inputs {
        cmd.arg("--file").arg(f);
    }
    cmd.args(extra);
    cmd
}

/// The table's lines as header → cell maps (cells are separated by two or
/// more spaces; no cell holds two spaces in a row), after checking the rule
/// under the header.
fn parse_table(out: &str) -> Vec<BTreeMap<String, String>> {
    let split = |l: &str| -> Vec<String> {
        l.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut lines = out.lines();
    let header = split(lines.next().expect("a header line"));
    assert_eq!(header[0], "model", "{out}");
    let rule = lines.next().expect("a rule under the header");
    assert!(!rule.is_empty() && rule.chars().all(|c| c == '-'), "{out}");
    lines
        .map(|l| {
            let cells = split(l);
            if cells.len() == 2 && cells[1].starts_with("error: ") {
                return BTreeMap::from([
                    ("model".to_string(), cells[0].clone()),
                    ("error".to_string(), cells[1]["error: ".len()..].to_string()),
                ]);
            }
            assert_eq!(cells.len(), header.len(), "a full row: {l:?}\n{out}");
            header.iter().cloned().zip(cells).collect()
        })
        .collect()
}

/// A number as the table writes it (thousands separators).
fn number(cell: &str) -> u64 {
    cell.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {cell:?}"))
}

/// `doc` without the fields that differ from run to run: `timings_ms`
/// (wall-clock times) and nothing else: the device, paths, numbers and
/// token strings are the same on every run on one machine.
fn steady(mut doc: Value) -> Value {
    doc.as_object_mut()
        .expect("a JSON object")
        .remove("timings_ms")
        .expect("every report has timings_ms");
    doc
}

/// stdout's lines, each parsed as one JSON document.
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("UTF-8 stdout");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

/// The table's row of each input matches its own `--file --json` run, and
/// the hand-built matrix's row is the hand-known one.
#[test]
fn the_table_holds_each_single_run_and_the_hand_known_values() {
    let dir = TempDir::new().unwrap();
    let inputs = three(&dir);
    let flags = ["--nearest", "--near-ulp", "1"];
    let out = text_report(&mut many(&inputs, &flags));
    let rows = parse_table(&out);
    assert_eq!(rows.len(), 3, "{out}");
    for (input, row) in inputs.iter().zip(&rows) {
        let single = run_json(input, &flags);
        assert_eq!(row["model"], input.display().to_string());
        let groups = single["groups"].as_array().unwrap();
        let sizes: Vec<u64> = groups.iter().map(|g| g["size"].as_u64().unwrap()).collect();
        assert_eq!(number(&row["vocabulary"]), single["shape"][0]);
        assert_eq!(number(&row["dim"]), single["shape"][1]);
        let dtype = if single["dtype"] == single["stored_dtype"] {
            single["dtype"].as_str().unwrap().to_string()
        } else {
            format!(
                "{} as {}",
                single["stored_dtype"].as_str().unwrap(),
                single["dtype"].as_str().unwrap()
            )
        };
        assert_eq!(row["dtype"], dtype);
        assert_eq!(number(&row["unique"]), single["n_unique"]);
        assert_eq!(number(&row["holes"]), groups.len() as u64);
        match sizes.iter().max() {
            Some(&m) => assert_eq!(number(&row["largest hole"]), m),
            None => assert_eq!(row["largest hole"], "-"),
        }
        assert_eq!(number(&row["tokens in holes"]), sizes.iter().sum::<u64>());
        let largest_component = single["near"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["token_ids"].as_array().unwrap().len() as u64)
            .max()
            .unwrap_or(0);
        assert_eq!(number(&row["frozen component"]), largest_component);
        let gap = &single["nearest"]["gap"];
        if gap.is_null() {
            assert_eq!(row["nearest-neighbour gap"], "-");
        } else {
            let want = format!("{} tokens, ", gap["tokens"].as_array().unwrap().len());
            assert!(row["nearest-neighbour gap"].starts_with(&want), "{row:?}");
        }
        let time = &row["time"];
        assert!(time.ends_with(" ms") || time.ends_with(" s"), "{time:?}");
    }
    // The hand-built matrix, by hand (see `hand_built`).
    let hand = &rows[0];
    let want = [
        ("vocabulary", "9"),
        ("dim", "4"),
        ("dtype", "F32"),
        ("unique", "6"),
        ("holes", "2"),
        ("largest hole", "3"),
        ("tokens in holes", "5"),
        ("frozen component", "4"),
    ];
    for (column, value) in want {
        assert_eq!(hand[column], value, "{column} in {hand:?}");
    }
    // 2^-23 = 1.19e-07 and √2 = 1.41e+00 to three digits.
    assert_eq!(hand["nearest-neighbour gap"], "4 tokens, 1.19e-07–1.41e+00");
    // The example: one hole of 51 tokens among 128 rows, no component
    // within one step, no gap.
    let example = &rows[1];
    assert_eq!(
        (
            &*example["holes"],
            &*example["largest hole"],
            &*example["frozen component"]
        ),
        ("1", "51", "0")
    );
}

/// Without `--nearest` or `--near-*` the table has no column for them; the
/// numbers are right-aligned, and no line is wider than the rule.
#[test]
fn the_table_has_only_the_columns_asked_for_and_no_more_width() {
    let dir = TempDir::new().unwrap();
    let out = text_report(&mut many(&three(&dir), &[]));
    let header = out.lines().next().unwrap();
    assert!(
        !header.contains("frozen") && !header.contains("gap"),
        "{header}"
    );
    let width = out.lines().nth(1).unwrap().chars().count();
    for l in out.lines() {
        assert!(
            l.chars().count() <= width,
            "{l:?} is wider than the rule\n{out}"
        );
        assert_eq!(l, l.trim_end(), "trailing spaces: {l:?}");
    }
    // Right-aligned: the vocabulary column's cells end where its header does.
    let end = header.find("vocabulary").unwrap() + "vocabulary".len();
    for l in out.lines().skip(2) {
        let before: String = l.chars().take(end).collect();
        assert!(before.ends_with(|c: char| c.is_ascii_digit()), "{l:?}");
    }
    // Nothing but the table.
    assert_eq!(out.lines().count(), 2 + 3, "{out}");
}

/// `--details`: after the table, each input's text report as `--file`
/// prints it (its `Time:` line aside, wall-clock times that vary).
#[test]
fn details_follow_the_table_with_each_full_report() {
    let dir = TempDir::new().unwrap();
    let inputs = three(&dir);
    let out = text_report(&mut many(&inputs, &["--details", "--nearest"]));
    let timeless = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with("Time: "))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let out = timeless(&out);
    let mut at = 0;
    for input in &inputs {
        let single = timeless(&run_text(input, &["--nearest"]));
        let found = out[at..]
            .find(&single)
            .unwrap_or_else(|| panic!("{} report missing or out of order", input.display()));
        at += found + single.len();
    }
    assert_eq!(parse_table(out.split("\nLoading").next().unwrap()).len(), 3);
}

/// `--json`: one line per input, in input order, each the document of the
/// input's own `--file --json` run (after `timings_ms`).
#[test]
fn json_lines_are_the_single_runs_documents() {
    let dir = TempDir::new().unwrap();
    let inputs = three(&dir);
    let flags = ["--nearest", "--near-ulp", "2"];
    let out = many(&inputs, &[&["--json"][..], &flags].concat())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.matches('\n').count(), inputs.len(), "one line each");
    let lines = json_lines(&out.stdout);
    for (input, line) in inputs.iter().zip(lines) {
        let single = run_json(input, &flags);
        assert_eq!(steady(line), steady(single), "{}", input.display());
    }
}

/// A missing file and a file in no format: rows (and lines) with their
/// errors, the other inputs reported, an error on stderr for each, exit 2.
#[test]
fn a_failing_input_is_a_row_with_its_error_and_the_run_goes_on() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let garbage = write(
        &dir,
        "garbage.bin",
        b"this is not a model at all, only words",
    );
    let inputs = vec![
        example_path(),
        missing.clone(),
        hand_built(&dir),
        garbage.clone(),
    ];
    for json in [false, true] {
        let out = many(&inputs, if json { &["--json"] } else { &[] })
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let errors: Vec<&str> = stderr.lines().collect();
        assert_eq!(errors.len(), 2, "one line per failed input:\n{stderr}");
        assert!(
            errors[0].starts_with("singularity-gpu: error: ")
                && errors[0].contains(&missing.display().to_string())
        );
        assert!(
            errors[0].contains("no such file or folder"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains(&garbage.display().to_string()));
        assert!(errors[1].contains("not a file format"), "{}", errors[1]);
        if json {
            let lines = json_lines(&out.stdout);
            assert_eq!(lines.len(), 4);
            for (i, path) in [(1, &missing), (3, &garbage)] {
                let line = lines[i].as_object().unwrap();
                let keys: Vec<&str> = line.keys().map(String::as_str).collect();
                assert_eq!(keys.len(), 3, "{line:?}");
                assert_eq!(line["schema"], "singularity-gpu/1");
                assert_eq!(line["file"], path.display().to_string());
                let message = line["error"].as_str().unwrap();
                assert!(
                    errors[i / 2].ends_with(message),
                    "{message} vs {}",
                    errors[i / 2]
                );
            }
            assert_eq!(steady(lines[0].clone()), steady(run_json(&inputs[0], &[])));
            assert_eq!(steady(lines[2].clone()), steady(run_json(&inputs[2], &[])));
        } else {
            let rows = parse_table(&String::from_utf8(out.stdout).unwrap());
            assert_eq!(rows.len(), 4);
            assert_eq!(rows[0]["holes"], "1");
            assert_eq!(rows[2]["holes"], "2");
            for (i, path) in [(1, &missing), (3, &garbage)] {
                assert_eq!(rows[i]["model"], path.display().to_string());
                assert_eq!(rows[i].len(), 2, "only the error: {:?}", rows[i]);
                assert!(errors[i / 2].ends_with(&rows[i]["error"]));
            }
        }
    }
}

/// `--files-from`: comments and blank lines skipped, surrounding spaces
/// trimmed, its inputs after the `--file` ones; `-` reads standard input.
#[test]
fn files_from_skips_comments_and_blank_lines() {
    let dir = TempDir::new().unwrap();
    let inputs = three(&dir);
    let list = format!(
        "# the models to compare\n\n  {}  \n# {}\n\t\n{}\n",
        inputs[1].display(),
        inputs[0].display(),
        inputs[2].display()
    );
    let list_path = write(&dir, "models.txt", list.as_bytes());
    let want = json_lines(&many(&inputs, &["--json"]).output().unwrap().stdout);
    let want: Vec<Value> = want.into_iter().map(steady).collect();

    let mut from_file = many(&inputs[..1], &["--json", "--files-from"]);
    from_file.arg(&list_path);
    let mut from_stdin = many(&inputs[..1], &["--json", "--files-from", "-"]);
    from_stdin.write_stdin(list.clone());
    for mut cmd in [from_file, from_stdin] {
        let out = text_report(&mut cmd);
        let got: Vec<Value> = json_lines(out.as_bytes()).into_iter().map(steady).collect();
        assert_eq!(got, want);
    }

    // A list of one line is still a many-input run: JSON Lines, one line.
    let one = write(
        &dir,
        "one.txt",
        format!("{}\n", inputs[1].display()).as_bytes(),
    );
    let mut cmd = many(&[], &["--json", "--files-from"]);
    cmd.arg(&one);
    let out = text_report(&mut cmd);
    assert_eq!(out.lines().count(), 1, "{out}");

    // A list that cannot be read is a one-line error naming it.
    let absent = dir.path().join("absent.txt");
    let mut cmd = many(&[], &["--files-from"]);
    cmd.arg(&absent);
    expect_error_naming(&cmd.output().unwrap(), &absent, &["--files-from"]);
}

/// `--shard I/N` for N = 1, 2, 3: shard I holds exactly the inputs at the
/// positions p with p mod N = I, in order, and the shards' lines together
/// are the unsharded run's lines. Round robin interleaves the shards, so
/// plain concatenation is the unsharded lines in another order: they are
/// compared as sorted multisets, and each shard's positions are checked.
#[test]
fn shards_split_the_inputs_and_merge_back_exactly() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing.npy");
    let mut inputs = three(&dir);
    inputs.extend([
        missing,
        fixture("npy/example.npy"),
        fixture("gguf/f32.gguf"),
        fixture("gguf/q8_0.gguf"),
    ]);
    let list = inputs
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect::<String>();
    let list_path = write(&dir, "models.txt", list.as_bytes());
    let run = |shard: Option<&str>| -> Vec<Value> {
        let mut cmd = many(&[], &["--json", "--files-from"]);
        cmd.arg(&list_path);
        if let Some(s) = shard {
            cmd.args(["--shard", s]);
        }
        let out = cmd.output().unwrap();
        let lines = json_lines(&out.stdout);
        // The missing input fails in whichever shard holds it: exit 2 there.
        let failed = lines.iter().any(|l| l.get("error").is_some());
        assert_eq!(out.status.code(), Some(if failed { 2 } else { 0 }));
        lines.into_iter().map(steady_line).collect()
    };
    let all = run(None);
    assert_eq!(all.len(), inputs.len());
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all_sorted = sorted(all.iter().map(Value::to_string).collect());
    for n in 1..=3usize {
        let mut merged = Vec::new();
        for i in 0..n {
            let shard = run(Some(&format!("{i}/{n}")));
            let positions: Vec<usize> = (0..inputs.len()).filter(|p| p % n == i).collect();
            let files: Vec<&str> = shard.iter().map(|l| l["file"].as_str().unwrap()).collect();
            let want: Vec<String> = positions
                .iter()
                .map(|&p| inputs[p].display().to_string())
                .collect();
            assert_eq!(files, want, "shard {i}/{n}");
            for (line, &p) in shard.iter().zip(&positions) {
                assert_eq!(line, &all[p], "shard {i}/{n}, position {p}");
            }
            merged.extend(shard);
        }
        assert_eq!(
            sorted(merged.iter().map(Value::to_string).collect()),
            all_sorted,
            "N = {n}"
        );
    }
    // A shard with no inputs prints nothing and succeeds.
    let mut cmd = many(&[example_path()], &["--shard", "1/2"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
}

/// A line without the fields that vary (see [`steady`]); an error line as it is.
fn steady_line(v: Value) -> Value {
    if v.get("error").is_some() {
        v
    } else {
        steady(v)
    }
}

/// Unusable `--shard` values, and flags that do not go with several inputs.
#[test]
fn bad_shards_and_conflicting_flags_are_one_line_errors() {
    let e = example_path();
    let series = fixture("series/run");
    let rows: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--shard", "2/2"], "--shard"),
        (vec!["--shard", "0/0"], "--shard"),
        (vec!["--shard", "-1/3"], "--shard"),
        (vec!["--shard", "1"], "--shard"),
        (vec!["--shard", "a/b"], "--shard"),
        (vec!["--shard", "1/2/3"], "--shard"),
        (vec!["--details"], "--details"),
        (
            vec!["--file", "x", "--details", "--json"],
            "cannot be used with",
        ),
        (
            vec!["--series", series.to_str().unwrap()],
            "cannot be used with",
        ),
        (vec!["--trajectory", "x.h5"], "cannot be used with"),
    ];
    each_row(
        &rows,
        |(args, _)| format!("{args:?}"),
        |(args, phrase)| {
            expect_error(&run(&e, args), &[phrase]);
        },
    );
    // --shard and --files-from conflict with a series even without --file.
    let out = sg()
        .args(["--series", series.to_str().unwrap(), "--shard", "0/2"])
        .output()
        .unwrap();
    expect_error(&out, &["cannot be used with"]);
    let out = sg()
        .args(["--files-from", "-", "--trajectory", "x.h5"])
        .output()
        .unwrap();
    expect_error(&out, &["cannot be used with"]);
}

/// A single `--file` is the one-matrix report, as before; with `--shard
/// 0/1` it is a many-input run of one input (one JSON line).
#[test]
fn a_single_file_is_the_one_matrix_report_unless_sharded() {
    let e = example_path();
    let pretty = String::from_utf8(run(&e, &["--json"]).stdout).unwrap();
    assert!(pretty.lines().count() > 1, "pretty-printed");
    let sharded = run(&e, &["--json", "--shard", "0/1"]);
    assert!(sharded.status.success());
    let lines = json_lines(&sharded.stdout);
    assert_eq!(lines.len(), 1);
    let single: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(steady(lines[0].clone()), steady(single));
}
