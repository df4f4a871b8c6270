//! The real pages in a real browser: the single-matrix page, the series
//! page and the comparison page, each made from the fixtures by the binary,
//! opened headless (`browser::check_page`): loaded without console errors
//! or requests, every plot drawn, the tables sorting and filtering; each
//! leaves a screenshot under `target/screenshots/` for a person to look at
//! (`scripts/screenshots.sh` copies them into `docs/`).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::browser::{assert_self_contained, check_page, screenshot_path};
use crate::common::*;

/// Runs the binary with `args` and `--html`, returns the page's path.
fn write_page(dir: &TempDir, name: &str, args: &[&std::ffi::OsStr]) -> PathBuf {
    let out = dir.path().join(format!("{name}.html"));
    let mut cmd = sg();
    cmd.args(["--device", "cpu"])
        .args(args)
        .arg("--html")
        .arg(&out);
    text_report(&mut cmd);
    let html = std::fs::read_to_string(&out).expect("the page was written");
    assert_self_contained(&html);
    out
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
    let example = example_path();
    let page = write_page(
        &dir,
        "single",
        &[
            os("--file"),
            example.as_os_str(),
            os("--nearest"),
            os("--near-ulp"),
            os("2"),
            os("--indicators"),
        ],
    );
    // Norms, populations, nearest, indicators (the example's hole has no
    // neighbour within two steps: no component).
    check(&page, "single", 4, 2);
}

#[test]
fn the_series_page_renders_with_every_plot_drawn() {
    let dir = TempDir::new().unwrap();
    let run = root().join("tests/fixtures/series/run");
    let page = write_page(&dir, "series", &[os("--series"), run.as_os_str()]);
    // The timeline and the evaporation steps; events and frozen tokens.
    check(&page, "series", 2, 2);
}

#[test]
fn the_comparison_page_renders_with_every_plot_drawn() {
    let dir = TempDir::new().unwrap();
    let example = example_path();
    let q4 = fixture("gguf/q4_k.gguf");
    let thimble = root().join("tests/fixtures/thimble9/checkpoint_step_00000.pt");
    let page = write_page(
        &dir,
        "comparison",
        &[
            os("--file"),
            example.as_os_str(),
            os("--file"),
            q4.as_os_str(),
            os("--file"),
            thimble.as_os_str(),
            os("--near-ulp"),
            os("1"),
        ],
    );
    // The bar chart, and each model's norm histogram at least.
    check(&page, "comparison", 4, 2);
}
