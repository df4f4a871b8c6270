//! The real pages in a real browser: the single-matrix page, the series
//! page and the comparison page, each made from the fixtures by the binary,
//! opened headless (`browser::check_page`): loaded without console errors
//! or requests, every plot drawn, the tables sorting and filtering; each
//! leaves a screenshot under `target/screenshots/` for a person to look at,
//! beside the page itself (`scripts/screenshots.sh` photographs those pages
//! for the README).

use std::path::{Path, PathBuf};

use singularity_gpu::Dtype;

use tempfile::TempDir;

use crate::browser::{assert_self_contained, check_page, screenshot_path};
use crate::common::*;

/// Runs the binary with `args` and `--html`, returns the page's path
/// (`target/screenshots/NAME.html`, beside its screenshot). The run may
/// fail (a failed input of several) as long as it writes the page.
fn write_page(name: &str, args: &[&std::ffi::OsStr]) -> PathBuf {
    let out = screenshot_path(name).with_extension("html");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let run = sg()
        .args(["--device", "cpu"])
        .args(args)
        .arg("--html")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let html = std::fs::read_to_string(&out).unwrap_or_else(|_| panic!("no page: {stderr}"));
    assert_self_contained(&html);
    out
}

/// A small model with everything a page can show, and its vocabulary: 3,000
/// bf16 tokens × 32, six black holes one or two steps apart (a lattice),
/// sixty `[unused]` tokens a step or two from them (a near-singularity
/// component, and a gap below the cloud's nearest-neighbour distances).
fn frozen_model(dir: &TempDir) -> PathBuf {
    let mut b = Built::random(Dtype::BF16, 3000, 32, 17);
    let base = 2800;
    for c in 0..32 {
        let v = half::bf16::from_f64(0.004 * (c as f64 - 15.5) / 16.0 + 0.001);
        b.set_bits(base, c, v.to_bits() as u64);
    }
    let mut next = base;
    for (h, size) in [60, 30, 12, 6, 3, 2].into_iter().enumerate() {
        let first = next;
        b.copy_row(base, first);
        if h > 0 {
            b.set_bits(first, h, b.get_bits(base, h) + 1 + (h % 2) as u64);
        }
        for t in first..first + size {
            b.copy_row(first, t);
        }
        next += size;
    }
    for k in 0..60 {
        let t = next + k;
        b.copy_row(base, t);
        b.set_bits(t, k % 32, b.get_bits(base, k % 32) - 1 - (k / 32) as u64);
    }
    let header = format!(
        r#"{{"model.embed_tokens.weight":{{"dtype":"BF16","shape":[3000,32],"data_offsets":[0,{}]}}}}"#,
        b.bytes.len()
    );
    let model = write(dir, "model.safetensors", &safetensors(&header, &b.bytes));
    let vocab: String = (0..3000)
        .map(|i| {
            if i >= base {
                format!("[unused{}]\n", i - base)
            } else {
                format!("word{i}\n")
            }
        })
        .collect();
    write(dir, "vocab.txt", vocab.as_bytes());
    model
}

/// Opens the page in the browser and checks it as a person would see it.
fn check(page: &Path, name: &str, min_plots: usize, min_tables: usize) {
    let Some(report) = check_page(page, &screenshot_path(name)) else {
        return;
    };
    report.assert_ok();
    assert!(
        report.plots_drawn >= min_plots,
        "{name}: {} plots drawn, expected at least {min_plots}",
        report.plots_drawn
    );
    assert!(
        report.tables_sorted >= min_tables,
        "{name}: {} tables sorted, expected at least {min_tables}",
        report.tables_sorted
    );
    assert!(report.screenshot_bytes > 10_000, "{name}: a screenshot");
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn the_single_matrix_page_renders_with_every_plot_drawn() {
    let dir = TempDir::new().unwrap();
    let model = frozen_model(&dir);
    let page = write_page(
        "single",
        &[
            os("--file"),
            model.as_os_str(),
            os("--nearest"),
            os("--near-ulp"),
            os("2"),
            os("--indicators"),
        ],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for id in [
        "norms",
        "populations",
        "lattice",
        "nearest",
        "components",
        "indicator",
    ] {
        assert!(
            html.contains(&format!(r#"<figure class="plot" id="{id}">"#)),
            "no {id} plot"
        );
    }
    assert!(html.contains(r#"class="band""#), "the gap is shaded");
    assert!(html.contains("[unused0]"), "token strings");
    check(&page, "single", 6, 4);
}

#[test]
fn the_series_page_renders_with_every_plot_drawn() {
    let run = root().join("tests/fixtures/series/run");
    let page = write_page("series", &[os("--series"), run.as_os_str()]);
    // The timeline and the evaporation steps; events and frozen tokens.
    check(&page, "series", 2, 2);
}

#[test]
fn the_comparison_page_renders_with_every_plot_drawn() {
    let dir = TempDir::new().unwrap();
    let example = example_path();
    let q4 = fixture("gguf/q4_k.gguf");
    let thimble = root().join("tests/fixtures/thimble9/checkpoint_step_00000.pt");
    let missing = dir.path().join("missing.safetensors");
    let page = write_page(
        "comparison",
        &[
            os("--file"),
            example.as_os_str(),
            os("--file"),
            q4.as_os_str(),
            os("--file"),
            thimble.as_os_str(),
            os("--file"),
            missing.as_os_str(),
            os("--near-ulp"),
            os("1"),
        ],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(r#"<tr class="failed">"#),
        "the failed input's row"
    );
    // The bar chart, and each model's norm histogram at least.
    check(&page, "comparison", 4, 2);
}
