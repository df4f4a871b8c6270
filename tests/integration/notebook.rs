//! The 08.3b notebook's case (examples/notebook_128.safetensors, written by
//! scripts/make_example.py): 128 byte tokens × 64 float32, 51 bytes absent
//! from English prose sharing one vector. Every expected number is computed
//! here in f64 from the file's bytes, parsed without the library.

use singularity_gpu::{survey_file, DeviceChoice, SurveyOptions};

use crate::common::{self, assert_close, example_f32, example_path, json_report, sg};

/// The 51 dead bytes as the notebook describes them: control characters
/// other than newline, DEL, and rare symbols.
fn dead_bytes() -> Vec<usize> {
    let rare = "#$%*+<=>@[\\]^_`{|}~";
    let mut v: Vec<usize> = (0..32).filter(|&b| b != 10).collect();
    v.push(127);
    v.extend(rare.bytes().map(|b| b as usize));
    v.sort_unstable();
    v
}

/// Rows of the example, decoded by hand from the safetensors layout.
fn rows() -> Vec<Vec<f64>> {
    let (rows, cols, data) = example_f32();
    assert_eq!((rows, cols), (128, 64));
    data.chunks_exact(64 * 4)
        .map(|r| {
            r.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect()
        })
        .collect()
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn check(device: DeviceChoice, rel: f64) {
    let rows = rows();
    let dead = dead_bytes();
    assert_eq!(dead.len(), 51);
    let r = survey_file(
        &example_path(),
        &SurveyOptions {
            device,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.shape, [128, 64]);
    assert!(
        r.notices.is_empty(),
        "a device asked for by name: {:?}",
        r.notices
    );
    assert_eq!(r.n_unique, 78);
    assert_eq!(r.n_duplicate, 50);
    assert_close(r.uniqueness, 78.0 / 128.0, 1e-15, "uniqueness");
    assert_close(
        r.duplicate_fraction,
        50.0 / 128.0,
        1e-15,
        "duplicate fraction",
    );
    assert_close(r.dedup_ratio, 128.0 / 78.0, 1e-15, "dedup ratio");
    assert_eq!(r.memory_bytes, 128 * 64 * 4, "rows × columns × 4 bytes");
    assert_eq!(r.stored_dtype, "F32");
    let sizes = r.group_sizes.as_ref().expect("one group");
    assert_eq!((sizes.largest, sizes.smallest), (51, 51));
    assert_eq!((sizes.mean, sizes.median), (51.0, 51.0));
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].size, 51);
    assert_eq!(r.groups[0].token_ids, dead);
    // The dead rows really are identical in the file, and no other row equals them.
    for &t in &dead {
        assert_eq!(rows[t], rows[dead[0]]);
    }
    let bh = l2(&rows[dead[0]]);
    let norms: Vec<f64> = rows.iter().map(|r| l2(r)).collect();
    let mean = norms.iter().sum::<f64>() / 128.0;
    let std = (norms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 127.0).sqrt();
    let centroid: Vec<f64> = (0..64)
        .map(|c| rows.iter().map(|r| r[c]).sum::<f64>() / 128.0)
        .collect();
    let g = &r.geometry;
    assert_close(r.groups[0].norm.unwrap(), bh, rel, "group norm");
    assert_close(g.black_hole_norms.min.unwrap(), bh, rel, "bh min");
    assert_close(g.black_hole_norms.max.unwrap(), bh, rel, "bh max");
    assert_close(g.black_hole_norms.mean.unwrap(), bh, rel, "bh mean");
    assert_eq!(
        g.black_hole_norms.std, None,
        "std of one value is undefined"
    );
    assert!(g.pairwise_l2.is_none(), "one black hole has no pairs");
    assert_close(g.cloud_norms.mean.unwrap(), mean, rel, "cloud mean");
    assert_close(g.cloud_norms.std.unwrap(), std, rel * 100.0, "cloud std");
    assert_close(g.centroid_norm.unwrap(), l2(&centroid), rel, "centroid");
    assert_close(g.norm_ratio.unwrap(), bh / mean, rel, "ratio");
}

#[test]
fn notebook_case_on_the_cpu() {
    // The CPU path squares in f32 (exact inputs, one rounding per product)
    // and accumulates in f64: about 1e-8 relative.
    check(DeviceChoice::Cpu, 1e-7);
}

#[test]
fn notebook_case_on_the_gpu() {
    if common::gpu().is_none() {
        return;
    }
    check(DeviceChoice::Gpu, 1e-5);
}

/// The hidden test hooks, end to end through the binary: `--hash-bits 0`
/// puts every row in one hash bucket (only byte comparison can separate
/// them) and `--chunk-bytes 1000` streams three 256-byte rows per GPU chunk.
#[test]
fn test_hooks_through_the_cli_change_nothing() {
    let mut devices = vec!["cpu"];
    if common::gpu().is_some() {
        devices.push("gpu");
    }
    let hooks: [&[&str]; 3] = [
        &[],
        &["--hash-bits", "0"],
        &["--hash-bits", "0", "--chunk-bytes", "1000"],
    ];
    for device in devices {
        for extra in hooks {
            let j = json_report(
                sg().args(["--json", "--device", device, "--file"])
                    .arg(example_path())
                    .args(extra),
            );
            assert_eq!(j["n_unique"], 78, "{device} {extra:?}");
            assert_eq!(
                j["groups"].as_array().unwrap().len(),
                1,
                "{device} {extra:?}"
            );
            assert_eq!(
                j["groups"][0]["token_ids"],
                serde_json::json!(dead_bytes()),
                "{device} {extra:?}"
            );
            assert_eq!(j["device"]["kind"], device);
        }
    }
}
