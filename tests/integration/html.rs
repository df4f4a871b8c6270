//! `--html`: the page holds what the matrix holds. Matrices are built here
//! with known holes, components and gaps, and the page's plots (their
//! marks' tooltips) and tables are read back and compared with what was
//! built, not with another rendering of the program.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use singularity_gpu::Dtype;
use tempfile::TempDir;

use crate::common::*;

/// A safetensors file of one matrix named `emb`.
fn file_of(b: &Built) -> Vec<u8> {
    let dtype = match b.dtype {
        Dtype::BF16 => "BF16",
        Dtype::F16 => "F16",
        Dtype::F32 => "F32",
        Dtype::F64 => "F64",
    };
    let header = format!(
        r#"{{"emb":{{"dtype":"{dtype}","shape":[{},{}],"data_offsets":[0,{}]}}}}"#,
        b.rows,
        b.cols,
        b.bytes.len()
    );
    safetensors(&header, &b.bytes)
}

/// The page the binary writes for `file` with the extra flags (on the CPU).
pub fn page(file: &Path, extra: &[&str]) -> String {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("page.html");
    let mut cmd = on_cpu(file);
    cmd.args(extra).arg("--html").arg(&out);
    text_report(&mut cmd);
    std::fs::read_to_string(&out).expect("the page was written")
}

/// `&amp;` and friends back to text.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The SVG of the figure whose id is `id`, if the page has it.
pub fn figure<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!(r#"<figure class="plot" id="{id}">"#))?;
    let rest = &html[start..];
    Some(&rest[..rest.find("</figure>")?])
}

/// The tooltips of a figure's marks, in order.
pub fn mark_tips(svg: &str) -> Vec<String> {
    svg.split(r#"class="mark""#)
        .skip(1)
        .filter_map(|m| {
            let a = m.find("<title>")? + "<title>".len();
            let b = m[a..].find("</title>")? + a;
            Some(unescape(&m[a..b]))
        })
        .collect()
}

/// The cells of each body row of the table whose id is `id`.
pub fn table_rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let Some(start) = html.find(&format!(r#"<table class="sortable" id="{id}">"#)) else {
        return Vec::new();
    };
    let rest = &html[start..];
    let rest = &rest[..rest.find("</table>").expect("table closes")];
    let body = &rest[rest.find("<tbody>").expect("a body")..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let row = &row[row.find('>').unwrap() + 1..];
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let a = cell.find('>').unwrap() + 1;
                    let b = cell.find("</td>").unwrap();
                    unescape(&cell[a..b])
                })
                .collect()
        })
        .collect()
}

/// The leading count of a tooltip such as "1,234 in black holes …".
fn leading_count(tip: &str) -> usize {
    let n: String = tip
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    n.parse().unwrap_or_else(|_| panic!("no count in {tip:?}"))
}

/// Every `src`/`href` attribute and CSS `url(` of the page stays inside it.
pub fn assert_nothing_leaves(html: &str) {
    for attr in ["src=", "href=", "url(", "@import"] {
        for (i, _) in html.match_indices(attr) {
            let value = html[i + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                value.starts_with('#') || value.starts_with("data:"),
                "the page points outside itself: {}",
                &html[i..(i + 80).min(html.len())]
            );
        }
    }
    assert!(
        html.contains("Content-Security-Policy") && html.contains("default-src 'none'"),
        "the page forbids requests"
    );
}

/// A bf16 matrix of 151,936 tokens (Qwen's vocabulary) × 16, random but
/// for 13 black holes of 2,100 tokens one or two steps apart, and a frozen
/// structure of 300 more tokens one step from a hole in one coordinate.
/// Returns the matrix, the holes' members and the structure's members
/// (holes included).
fn qwen_shaped() -> (Built, BTreeSet<usize>, BTreeSet<usize>) {
    const SIZES: [usize; 13] = [700, 400, 300, 200, 150, 100, 80, 60, 40, 30, 20, 12, 8];
    let mut b = Built::random(Dtype::BF16, 151_936, 16, 7);
    let base = 149_000;
    // The first hole's vector: small values, as an initialization leaves them.
    for c in 0..16 {
        let v = half::bf16::from_f64(0.01 * (c as f64 - 7.5) / 8.0 + 0.002);
        b.set_bits(base, c, v.to_bits() as u64);
    }
    let mut holes = BTreeSet::new();
    let mut frozen = BTreeSet::new();
    let mut next = base;
    for (h, &size) in SIZES.iter().enumerate() {
        let first = next;
        if h > 0 {
            b.copy_row(base, first);
            let c = h % 16;
            b.set_bits(first, c, b.get_bits(base, c) + 1 + (h / 16) as u64);
        }
        for t in first..first + size {
            b.copy_row(first, t);
            holes.insert(t);
            frozen.insert(t);
        }
        next += size;
    }
    // 300 tokens one step below the first hole in one coordinate (the
    // holes are one step above it), and one step either way in a second,
    // each in its own way (one step down in two coordinates is the same
    // whichever is named first).
    let up = (0..16).flat_map(|c| {
        (0..16)
            .filter(move |&c2| c2 != c)
            .map(move |c2| (c, Some((c2, 1))))
    });
    let down = (0..16).flat_map(|c| (c + 1..16).map(move |c2| (c, Some((c2, u64::MAX)))));
    let mut ways = (0..16).map(|c| (c, None)).chain(up).chain(down);
    for k in 0..300 {
        let t = next + k;
        let (c, second) = ways.next().unwrap();
        b.copy_row(base, t);
        b.set_bits(t, c, b.get_bits(base, c) - 1);
        if let Some((c2, dir)) = second {
            b.set_bits(t, c2, b.get_bits(base, c2).wrapping_add(dir));
        }
        frozen.insert(t);
    }
    let n = b.rows;
    assert!(next + 300 <= n);
    (b, holes, frozen)
}

#[test]
fn a_vocabulary_of_151936_tokens_makes_a_small_page_that_shows_every_hole() {
    let (b, holes, frozen) = qwen_shaped();
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "qwen_shaped.safetensors", &file_of(&b));
    let html = page(&file, &["--near-ulp", "2", "--indicators"]);
    assert!(
        html.len() <= 2_000_000,
        "the page is {} bytes, more than 2 MB",
        html.len()
    );
    assert_nothing_leaves(&html);

    // The norm histogram: the red bars count the hole members, the orange
    // ones the structure's.
    let norms = figure(&html, "norms").expect("a norm histogram");
    let tips = mark_tips(norms);
    let count_of = |what: &str| -> usize {
        tips.iter()
            .filter(|t| t.contains(what))
            .map(|t| leading_count(t))
            .sum()
    };
    assert_eq!(count_of(" in black holes "), holes.len());
    assert_eq!(count_of(" in near-singularity components "), frozen.len());
    assert_eq!(count_of(" all tokens "), b.rows);

    // Group populations: one bar per size, each one hole.
    let pops = mark_tips(figure(&html, "populations").expect("populations"));
    assert_eq!(pops.len(), 13);
    assert!(pops.iter().all(|t| t.starts_with("1 black hole of ")));

    // The lattice: a 13 × 13 heatmap, zero on the diagonal, 1 or 2 steps
    // between the first hole and each other.
    let cells = mark_tips(figure(&html, "lattice").expect("a lattice heatmap"));
    assert_eq!(cells.len(), 13 * 13);
    assert!(cells[0].ends_with(": 0 steps (L∞)"), "{}", cells[0]);
    for tip in &cells[1..13] {
        assert!(
            tip.ends_with(": 1 steps (L∞)") || tip.ends_with(": 2 steps (L∞)"),
            "{tip}"
        );
    }

    // The tables list the members, every one and only them.
    let ids = |rows: Vec<Vec<String>>, col: usize| -> BTreeSet<usize> {
        rows.iter().map(|r| r[col].parse().unwrap()).collect()
    };
    assert_eq!(ids(table_rows(&html, "groups"), 3), holes);
    let comp = table_rows(&html, "component-tokens");
    assert_eq!(comp.len(), frozen.len());
    assert_eq!(ids(comp, 4), frozen);
    assert!(figure(&html, "components").is_some());
}

#[test]
fn the_nearest_histogram_shades_the_gap_and_names_its_population() {
    // 2,000 random f32 rows in [-1, 1)^8, and a structure of 60 tokens a
    // few f32 steps apart: their nearest neighbours are ~1e-7 away, the
    // cloud's ~0.3, and nothing lies between.
    let mut b = Built::random(Dtype::F32, 2000, 8, 11);
    for k in 0..60 {
        let t = 1900 + k;
        b.copy_row(0, t);
        b.set_bits(t, k % 8, b.get_bits(0, k % 8) + 1 + (k / 8) as u64);
    }
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "gap.safetensors", &file_of(&b));
    let html = page(&file, &["--nearest"]);
    let svg = figure(&html, "nearest").expect("a nearest-neighbour histogram");
    // Row 0 and the 60 are the structure.
    assert!(svg.contains(r#"class="band""#), "the gap is shaded");
    assert!(
        svg.contains("gap: 61 tokens below"),
        "the gap's population is named"
    );
    let tips = mark_tips(svg);
    let total: usize = tips.iter().map(|t| leading_count(t)).sum();
    assert_eq!(total, 2000, "every token is in one bar");
    let gap: BTreeSet<usize> = table_rows(&html, "gap")
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    let want: BTreeSet<usize> = std::iter::once(0).chain(1900..1960).collect();
    assert_eq!(gap, want);
}

#[test]
fn a_series_page_plots_the_timeline_and_the_evaporation_steps() {
    let fixtures = root().join("tests/fixtures/series");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap())
            .unwrap();
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("series.html");
    let mut cmd = sg();
    cmd.args(["--device", "cpu", "--series"])
        .arg(fixtures.join("run"))
        .arg("--html")
        .arg(&out);
    text_report(&mut cmd);
    let html = std::fs::read_to_string(&out).unwrap();
    assert_nothing_leaves(&html);

    let steps = expected["steps"].as_array().unwrap().len();
    let timeline = figure(&html, "timeline").expect("a timeline");
    // Three lines, and a point per step on each (tokens in holes, holes,
    // tokens moved, the last from the second step on).
    let tips = mark_tips(timeline);
    let points = |what: &str| {
        tips.iter()
            .filter(|t| t.starts_with("step ") && t.ends_with(what))
            .count()
    };
    assert_eq!(points(" tokens in holes"), steps);
    assert_eq!(points(" holes") - points(" tokens in holes"), steps);
    assert!(tips.iter().any(|t| t == "tokens in holes"));

    // The evaporation histogram counts every token that left its hole, as
    // the training script recorded them.
    let evaporated = expected["evaporated_at"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v.is_null())
        .count();
    let bars = mark_tips(figure(&html, "evaporation").expect("an evaporation histogram"));
    let total: usize = bars.iter().map(|t| leading_count(t)).sum();
    assert_eq!(total, evaporated);

    let events = table_rows(&html, "events");
    assert_eq!(events.len(), expected["events"].as_array().unwrap().len());
}

#[test]
fn a_matrix_without_holes_still_has_its_norm_histogram() {
    let b = Built::random(Dtype::F16, 300, 12, 3);
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "distinct.safetensors", &file_of(&b));
    let html = page(&file, &[]);
    assert!(html.contains("No two tokens share a vector"));
    let tips = mark_tips(figure(&html, "norms").unwrap());
    let total: usize = tips.iter().map(|t| leading_count(t)).sum();
    assert_eq!(total, 300);
    assert!(figure(&html, "populations").is_none());
    assert!(table_rows(&html, "groups").is_empty());
}

#[test]
fn html_dash_writes_the_page_instead_of_the_report() {
    let out = run(&example_path(), &["--html", "-"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("<!DOCTYPE html>"), "{}", &stdout[..60]);
    assert!(!stdout.contains("Searching for singularities"));
}

#[test]
fn an_unwritable_page_is_a_one_line_error() {
    let dir = TempDir::new().unwrap();
    let target = dir.path().join("no/such/folder/page.html");
    let out = run(&example_path(), &["--html", target.to_str().unwrap()]);
    expect_error(&out, &["cannot write", "page.html"]);
}

#[test]
fn the_comparison_page_has_a_row_and_a_bar_per_model_and_links_to_each_section() {
    // A: two holes (3 and 2 tokens); B: every row distinct; C: no file.
    let mut a = Built::random(Dtype::F32, 40, 6, 21);
    for t in [5, 9] {
        a.copy_row(2, t);
    }
    a.copy_row(30, 31);
    let b = Built::random(Dtype::F16, 25, 4, 22);
    let dir = TempDir::new().unwrap();
    let fa = write(&dir, "a.safetensors", &file_of(&a));
    let fb = write(&dir, "b.safetensors", &file_of(&b));
    let fc = dir.path().join("missing.safetensors");
    let out = dir.path().join("many.html");
    let run = sg()
        .args(["--device", "cpu"])
        .arg("--file")
        .arg(&fa)
        .arg("--file")
        .arg(&fb)
        .arg("--file")
        .arg(&fc)
        .arg("--html")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "a failed input: exit 2 at the end"
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert_nothing_leaves(&html);

    let rows = table_rows(&html, "models");
    assert_eq!(rows.len(), 3);
    // #, model, vocabulary, dim, dtype, unique, holes, largest, tokens in holes.
    assert!(rows[0][1].contains("a.safetensors") && rows[0][1].contains("href=\"#m1\""));
    assert_eq!(&rows[0][2..9], ["40", "6", "F32", "37", "2", "3", "5"]);
    assert_eq!(&rows[1][2..9], ["25", "4", "F16", "25", "0", "-", "0"]);
    assert_eq!((rows[0][0].as_str(), rows[2][0].as_str()), ("1", "3"));
    assert!(rows[2][1].contains("missing.safetensors"));
    assert!(rows[2][2].starts_with("error: "), "{:?}", rows[2]);

    let marks = mark_tips(figure(&html, "tokens-in-holes").expect("a mark per model"));
    assert_eq!(marks.len(), 3, "{marks:?}");
    assert!(
        marks[0].ends_with("a.safetensors: 5 tokens in holes"),
        "{}",
        marks[0]
    );
    assert!(marks[1].ends_with("b.safetensors: no hole"), "{}", marks[1]);
    assert!(
        marks[2].ends_with("missing.safetensors: failed"),
        "{}",
        marks[2]
    );

    // Each surveyed model has its section, ids kept apart; the failed one none.
    assert!(html.contains(r#"<section id="m1">"#) && html.contains(r#"<section id="m2">"#));
    assert!(!html.contains(r#"<section id="m3">"#));
    assert_eq!(table_rows(&html, "m1-groups").len(), 5);
    assert!(figure(&html, "m1-norms").is_some() && figure(&html, "m2-norms").is_some());
}

#[test]
fn the_indicator_section_ranks_the_candidates_as_numpy_does() {
    // tests/fixtures/indicators: scripts/make_indicator_fixtures.py computed
    // the indicators and the candidates with numpy.
    let dir = root().join("tests/fixtures/indicators");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let want = &expected["model_f32.safetensors"];
    let html = page(&dir.join("model_f32.safetensors"), &["--indicators"]);
    assert_nothing_leaves(&html);

    let candidates: Vec<usize> = table_rows(&html, "candidates")
        .iter()
        .map(|r| r[1].parse().unwrap())
        .collect();
    let numpy: Vec<usize> = want["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(
        candidates, numpy,
        "the candidates, most under-trained first"
    );

    let svg = figure(&html, "indicator").expect("the main indicator's histogram");
    assert!(
        svg.contains(r#"class="band""#),
        "the candidates' range is shaded"
    );
    let tips = mark_tips(svg);
    let sum = |what: &str| -> usize {
        tips.iter()
            .filter(|t| t.contains(what))
            .map(|t| leading_count(t))
            .sum()
    };
    let defined = want["cosine_distance_pc1_removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v.is_null())
        .count();
    assert_eq!(sum(" all tokens "), defined);
    let reference = want["reference"].as_array().unwrap().len();
    assert_eq!(sum(" reference tokens "), reference);
}

#[test]
fn a_page_is_never_written_over_an_input() {
    let dir = TempDir::new().unwrap();
    let model = dir.path().join("m.safetensors");
    std::fs::copy(example_path(), &model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let out = run(&model, &["--html", model.to_str().unwrap()]);
    expect_error(&out, &["cannot write", "it is one of the inputs"]);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the model is untouched"
    );
}

#[test]
fn html_dash_does_not_go_with_json() {
    let out = run(&example_path(), &["--html", "-", "--json"]);
    expect_error(&out, &["--html -", "--json"]);
}
