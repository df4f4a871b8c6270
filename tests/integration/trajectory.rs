//! `--trajectory`: every fixture of scripts/make_trajectory_fixtures.py (the
//! same 9×5×3 array stored as safetensors and as HDF5 in each layout h5py
//! writes) read step by step, compared with the bytes numpy wrote
//! (`expected_*.bin`); selections; and the errors, each one line naming the
//! problem, never a panic.

use std::path::{Path, PathBuf};

use singularity_gpu::dtype::Dtype;
use singularity_gpu::load::steps::trajectory::open_trajectory;
use singularity_gpu::load::steps::StepSource;
use singularity_gpu::load::LoadOptions;
use singularity_gpu::types::StepSelection;

use crate::common;

const STEPS: usize = 9;

fn fixture(name: &str) -> PathBuf {
    common::fixture("trajectory").join(name)
}

fn opts(key: Option<&str>, reinterpret: Option<Dtype>) -> LoadOptions {
    LoadOptions {
        key: key.map(str::to_string),
        reinterpret,
        ..LoadOptions::default()
    }
}

fn open(path: &Path, o: &LoadOptions, sel: &str) -> Box<dyn StepSource> {
    let sel = StepSelection::parse(sel).unwrap();
    open_trajectory(path, o, &sel).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn err(path: &Path, o: &LoadOptions) -> String {
    match open_trajectory(path, o, &StepSelection::default()) {
        Ok(_) => panic!("{}: opened", path.display()),
        Err(e) => {
            let m = e.to_string();
            assert!(!m.contains('\n'), "{m}");
            m
        }
    }
}

/// Reads every step of `name` and compares it with `expected`.
fn check(
    name: &str,
    key: Option<&str>,
    as_: Option<Dtype>,
    dtype: Dtype,
    stored: &str,
    format: &str,
    expected: &str,
) {
    let path = fixture(name);
    let mut src = open(&path, &opts(key, as_), ":");
    let want = std::fs::read(fixture(expected)).unwrap();
    let info = src.info().clone();
    assert_eq!((info.rows, info.cols), (5, 3), "{name}");
    assert_eq!(info.dtype, dtype, "{name}");
    assert_eq!(info.stored_dtype, stored, "{name}");
    assert_eq!(info.format, format, "{name}");
    assert_eq!(src.steps(), (0..STEPS as u64).collect::<Vec<_>>(), "{name}");
    assert_eq!(src.inputs(), vec![path.clone()]);
    let step = want.len() / STEPS;
    assert_eq!(step, 5 * 3 * dtype.size());
    for i in 0..STEPS {
        let got = src
            .read(i)
            .unwrap_or_else(|e| panic!("{name} step {i}: {e}"));
        assert_eq!(&got[..], &want[i * step..(i + 1) * step], "{name} step {i}");
    }
}

#[test]
fn safetensors_trajectories_read_every_step_exactly() {
    let bf16 = Some(Dtype::BF16);
    check(
        "traj_bf16.safetensors",
        None,
        bf16,
        Dtype::BF16,
        "U16",
        "safetensors",
        "expected_bf16.bin",
    );
    check(
        "traj_bf16.safetensors",
        Some("W"),
        bf16,
        Dtype::BF16,
        "U16",
        "safetensors",
        "expected_bf16.bin",
    );
    check(
        "traj_f32.safetensors",
        None,
        None,
        Dtype::F32,
        "F32",
        "safetensors",
        "expected_f32.bin",
    );
}

#[test]
fn hdf5_trajectories_read_every_step_exactly_in_every_layout() {
    let bf16 = Some(Dtype::BF16);
    for name in [
        "contiguous_u16.h5",
        "chunked_u16.h5",
        "gzip_u16.h5",
        "gzip_shuffle_u16.h5",
        "auto_u16.h5",
        "latest_gzip_u16.h5",
    ] {
        check(
            name,
            None,
            bf16,
            Dtype::BF16,
            "U16",
            "hdf5",
            "expected_bf16.bin",
        );
    }
    check(
        "chunked_u16.h5",
        Some("W"),
        Some(Dtype::F16),
        Dtype::F16,
        "U16",
        "hdf5",
        "expected_bf16.bin",
    );
    check(
        "f16_gzip.h5",
        None,
        None,
        Dtype::F16,
        "F16",
        "hdf5",
        "expected_f16.bin",
    );
    check(
        "f32_contiguous.h5",
        None,
        None,
        Dtype::F32,
        "F32",
        "hdf5",
        "expected_f32.bin",
    );
    check(
        "nested.h5",
        Some("run/W"),
        None,
        Dtype::F32,
        "F32",
        "hdf5",
        "expected_f32.bin",
    );
    check(
        "nested.h5",
        Some("/run/W"),
        None,
        Dtype::F32,
        "F32",
        "hdf5",
        "expected_f32.bin",
    );
}

#[test]
fn contiguous_steps_are_ranges_of_the_map() {
    for name in ["traj_f32.safetensors", "f32_contiguous.h5"] {
        let mut src = open(&fixture(name), &opts(None, None), ":");
        assert!(src.read(3).unwrap().is_mapped(), "{name}");
    }
    let mut src = open(&fixture("gzip_u16.h5"), &opts(None, Some(Dtype::BF16)), ":");
    assert!(!src.read(0).unwrap().is_mapped());
}

#[test]
fn a_selection_reads_only_its_steps() {
    let want = std::fs::read(fixture("expected_bf16.bin")).unwrap();
    let step = 5 * 3 * 2;
    for name in [
        "traj_bf16.safetensors",
        "contiguous_u16.h5",
        "gzip_shuffle_u16.h5",
        "latest_gzip_u16.h5",
    ] {
        for (sel, steps) in [
            ("1:7:3", vec![1u64, 4, 7]),
            ("5:", vec![5, 6, 7, 8]),
            ("::4", vec![0, 4, 8]),
            ("8:8", vec![8]),
        ] {
            let mut src = open(&fixture(name), &opts(None, Some(Dtype::BF16)), sel);
            assert_eq!(src.steps(), steps, "{name} {sel}");
            for (i, &s) in steps.iter().enumerate() {
                let s = s as usize;
                assert_eq!(
                    &src.read(i).unwrap()[..],
                    &want[s * step..(s + 1) * step],
                    "{name} {sel} {i}"
                );
            }
            assert!(src.read(steps.len()).is_err());
        }
    }
    // Out of order (not how a survey reads, but allowed): still exact.
    let mut src = open(&fixture("gzip_u16.h5"), &opts(None, Some(Dtype::BF16)), ":");
    for i in [8usize, 0, 5, 4, 3] {
        assert_eq!(&src.read(i).unwrap()[..], &want[i * step..(i + 1) * step]);
    }
}

#[test]
fn errors_name_the_problem() {
    let m = err(&fixture("nested.h5"), &opts(None, None));
    assert!(
        m.contains("--key")
            && m.contains("\"run/V\"")
            && m.contains("\"run/W\"")
            && m.contains("[9, 5, 3]")
            && m.contains("F32"),
        "{m}"
    );
    let m = err(&fixture("nested.h5"), &opts(Some("run/X"), None));
    assert!(
        m.contains("no tensor named \"run/X\"") && m.contains("run/W"),
        "{m}"
    );
    let m = err(&fixture("nested.h5"), &opts(Some("run/bias"), None));
    assert!(
        m.contains("run/bias") && m.contains("[2, 3]") && m.contains("3-D"),
        "{m}"
    );
    let m = err(&fixture("traj_bf16.safetensors"), &opts(Some("bias"), None));
    assert!(m.contains("3-D"), "{m}");
    for name in ["contiguous_u16.h5", "traj_bf16.safetensors"] {
        let m = err(&fixture(name), &opts(None, None));
        assert!(m.contains("U16") && m.contains("--as bf16"), "{m}");
    }
    let m = err(
        &fixture("f32_contiguous.h5"),
        &opts(None, Some(Dtype::BF16)),
    );
    assert!(m.contains("--as"), "{m}");
    let m = err(&fixture("no_such_file.h5"), &opts(None, None));
    assert!(m.contains("no_such_file.h5"), "{m}");
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "contiguous_u16.h5",
        "gzip_shuffle_u16.h5",
        "latest_gzip_u16.h5",
        "nested.h5",
        "traj_bf16.safetensors",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let key = (name == "nested.h5").then_some("run/W");
        let o = opts(key, Some(Dtype::BF16));
        let p = dir.path().join(name);
        // Cut anywhere: every open or read that fails says which file.
        for cut in (0..bytes.len()).step_by(61) {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            read_all_or_error(&p, &o);
        }
        // A few flipped bytes.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..3 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % b.len();
                b[i] ^= (seed >> 24) as u8 | 1;
            }
            std::fs::write(&p, &b).unwrap();
            read_all_or_error(&p, &o);
        }
    }
    std::fs::write(
        dir.path().join("t.h5"),
        &std::fs::read(fixture("gzip_u16.h5")).unwrap()[..100],
    )
    .unwrap();
    let m = err(&dir.path().join("t.h5"), &opts(None, Some(Dtype::BF16)));
    assert!(m.contains("t.h5") && m.contains("hdf5"), "{m}");
}

fn read_all_or_error(p: &Path, o: &LoadOptions) {
    match open_trajectory(p, o, &StepSelection::default()) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                !m.contains('\n') && m.contains(&*p.file_name().unwrap().to_string_lossy()),
                "{m}"
            );
        }
        Ok(mut src) => {
            let size = src.info().rows * src.info().cols * src.info().dtype.size();
            for i in 0..src.steps().len() {
                if let Ok(b) = src.read(i) {
                    assert_eq!(b.len(), size);
                }
            }
        }
    }
}

#[test]
fn file_says_an_hdf5_file_is_a_trajectory() {
    let e = singularity_gpu::load::open_file(&fixture("gzip_u16.h5"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("HDF5") && e.contains("--trajectory"), "{e}");
}
