//! PyTorch checkpoints (torch.save's zip format) through `--file` and the library.
//!
//! The fixtures in tests/fixtures/torch are written by
//! scripts/make_torch_fixtures.py with Python's own pickle and zipfile (no
//! torch); the values checked here are the formulas that script used, not
//! anything this program printed.

use std::path::{Path, PathBuf};
use std::process::Output;

use singularity_gpu::load::{self, LoadOptions, StoredDtype};
use singularity_gpu::{survey_file, DeviceChoice, SurveyOptions};
use tempfile::TempDir;

use crate::common::{self, example_path, expect_error_naming, on_cpu};

fn fixture(name: &str) -> PathBuf {
    common::fixture("torch").join(name)
}

/// Runs the binary on `file` with `--device cpu`, in `cwd`.
fn run_in(cwd: &Path, file: &Path, extra: &[&str]) -> Output {
    on_cpu(file)
        .current_dir(cwd)
        .args(extra)
        .output()
        .expect("run binary")
}

fn cpu(key: Option<&str>) -> SurveyOptions {
    SurveyOptions {
        load: LoadOptions {
            key: key.map(String::from),
            ..Default::default()
        },
        device: DeviceChoice::Cpu,
        ..Default::default()
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The bytes of tensor `name` of `file`, read through the library.
fn tensor(file: &Path, name: &str) -> (load::TensorDesc, load::Bytes) {
    let src = load::open_file(file).unwrap();
    assert_eq!(src.format(), "PyTorch");
    let i = src
        .tensors()
        .iter()
        .position(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", src.tensors()));
    (src.tensors()[i].clone(), src.data(i).unwrap())
}

#[test]
fn the_example_as_a_state_dict_surveys_like_the_safetensors_original() {
    let pt = survey_file(&fixture("notebook.pt"), &cpu(None)).unwrap();
    let st = survey_file(&example_path(), &cpu(None)).unwrap();
    // The default choice finds the embedding by name, not lm_head.
    assert_eq!(pt.tensor, "embed_tokens.weight");
    assert_eq!(pt.shape, [128, 64]);
    assert_eq!(pt.shape, st.shape);
    assert_eq!(pt.dtype, "F32");
    assert_eq!(pt.n_unique, st.n_unique);
    assert_eq!(
        serde_json::to_value(&pt.groups).unwrap(),
        serde_json::to_value(&st.groups).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&pt.geometry).unwrap(),
        serde_json::to_value(&st.geometry).unwrap()
    );
    // The example's planted black hole: 51 dead tokens in one group.
    assert_eq!(pt.groups.len(), 1);
    assert_eq!(pt.groups[0].size, 51);
    // And the binary agrees, and reads the file in place.
    let (_, bytes) = tensor(&fixture("notebook.pt"), "embed_tokens.weight");
    assert!(bytes.is_mapped());
    let dir = TempDir::new().unwrap();
    let out = run_in(dir.path(), &fixture("notebook.pt"), &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tensor"], "embed_tokens.weight");
    assert_eq!(v["groups"][0]["size"], 51);
}

#[test]
fn strided_offset_bf16_nested_and_tied_views_read_the_right_elements() {
    let f = fixture("strided.pt");
    // m[i][j] = 100 i + j (16x8, row-major); its transpose is 8x16.
    let (t, b) = tensor(&f, "transposed.weight");
    assert_eq!(t.shape, [8, 16]);
    assert!(!b.is_mapped(), "a transposed view is gathered");
    let want: Vec<f32> = (0..8)
        .flat_map(|r| (0..16).map(move |c| (100 * c + r) as f32))
        .collect();
    assert_eq!(f32s(&b), want);
    // Rows 3..8 of m, at a storage offset of 24 elements: read in place.
    let (t, b) = tensor(&f, "offset.weight");
    assert_eq!(t.shape, [5, 8]);
    assert!(b.is_mapped());
    let want: Vec<f32> = (3..8)
        .flat_map(|i| (0..8).map(move |j| (100 * i + j) as f32))
        .collect();
    assert_eq!(f32s(&b), want);
    // bf16 0.5 k.
    let (t, b) = tensor(&f, "bf16.weight");
    assert_eq!(t.dtype, StoredDtype::BF16);
    let got: Vec<f32> = b
        .chunks_exact(2)
        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(got, (0..24).map(|k| 0.5 * k as f32).collect::<Vec<_>>());
    // A tensor in a list in a dict: elements 8..16 of 0..64.
    let (t, b) = tensor(&f, "model.layers.0");
    assert_eq!(t.shape, [2, 4]);
    assert_eq!(f32s(&b), (8..16).map(|k| k as f32).collect::<Vec<_>>());
    // Tied weights: two names, one storage.
    let (_, a) = tensor(&f, "tied_a");
    let (_, b) = tensor(&f, "tied_b");
    assert_eq!(&a[..], &b[..]);
    assert_eq!(f32s(&a), (0..64).map(|k| k as f32).collect::<Vec<_>>());
    // The binary surveys the transposed view: 8 distinct rows.
    let r = survey_file(&f, &cpu(Some("transposed.weight"))).unwrap();
    assert_eq!(r.shape, [8, 16]);
    assert_eq!(r.n_unique, 8);
    assert!(r.groups.is_empty());
}

#[test]
fn a_big_endian_checkpoint_is_byte_swapped() {
    let (_, b) = tensor(&fixture("bigendian.pt"), "embed_tokens.weight");
    let want: Vec<f32> = (0..16)
        .flat_map(|i| (0..8).map(move |j| (100 * i + j) as f32))
        .collect();
    assert_eq!(f32s(&b), want);
}

#[test]
fn hostile_pickles_are_refused_by_name_and_nothing_runs() {
    for (file, global) in [
        ("evil_os_system.pt", "os.system"),
        ("evil_eval.pt", "builtins.eval"),
        ("evil_popen.pt", "subprocess.Popen"),
        ("evil_getattr_p4.pt", "builtins.getattr"),
    ] {
        let dir = TempDir::new().unwrap();
        let f = fixture(file);
        let out = run_in(dir.path(), &f, &[]);
        expect_error_naming(
            &out,
            &f,
            &[&format!("asks for {global},"), "refused, nothing was run"],
        );
        assert!(
            !dir.path().join("sg_pwned_marker").exists(),
            "{file}: the payload ran"
        );
        // The library refuses it the same way.
        let e = load::open_file(&f).err().expect("refused").to_string();
        assert!(e.contains(global), "{e}");
    }
}

#[test]
fn legacy_and_bare_pickles_get_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let f = fixture("legacy.pt");
    expect_error_naming(
        &run_in(dir.path(), &f, &[]),
        &f,
        &[
            "legacy (pre-1.6) PyTorch file",
            "_use_new_zipfile_serialization=True",
        ],
    );
    let f = fixture("bare_pickle.pkl");
    expect_error_naming(&run_in(dir.path(), &f, &[]), &f, &["bare Python pickle"]);
}

#[test]
fn archives_that_lie_are_one_line_errors() {
    let dir = TempDir::new().unwrap();
    for (file, phrases) in [
        ("compressed_storage.pt", &["data/0 is compressed"][..]),
        ("missing_storage.pt", &["no member data/1"]),
        ("short_storage.pt", &["holds 16384 bytes"]),
        ("bad_byteorder.pt", &["byteorder", "middle"]),
        ("view_overrun.pt", &["reaches past its storage"]),
        (
            "not_torch.zip",
            &["neither a torch.save checkpoint", "hello.txt"],
        ),
    ] {
        let f = fixture(file);
        expect_error_naming(&run_in(dir.path(), &f, &[]), &f, phrases);
    }
}

#[test]
fn truncated_and_corrupted_archives_never_panic() {
    let good = std::fs::read(fixture("notebook.pt")).unwrap();
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cut.pt");
    // Through the library at every 97th cut and corruption (fast), and
    // through the binary at a few.
    for cut in (4..good.len()).step_by(97) {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(
            load::open(&path, &LoadOptions::default()).is_err(),
            "cut {cut}"
        );
    }
    for at in (0..good.len()).step_by(53) {
        let mut bad = good.clone();
        bad[at] ^= 0x5A;
        std::fs::write(&path, &bad).unwrap();
        // May still load (a byte of tensor data) but must not panic.
        let _ = load::open(&path, &LoadOptions::default());
    }
    for cut in [10, 200, good.len() / 2, good.len() - 30, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        expect_error_naming(&run_in(dir.path(), &path, &[]), &path, &["not a valid"]);
    }
    // The end record intact but the central directory overwritten.
    let mut bad = good.clone();
    let n = bad.len();
    for b in &mut bad[n - 200..n - 22] {
        *b = 0xEE;
    }
    std::fs::write(&path, &bad).unwrap();
    expect_error_naming(&run_in(dir.path(), &path, &[]), &path, &["zip"]);
}
