//! The HTML pages checked in a real (headless) browser, and offline.
//!
//! `check_page` opens a page in the system's Chromium over the DevTools
//! protocol and reports what a person would see go wrong: load errors,
//! console errors, requests leaving the file, plots without drawn marks,
//! tables that do not sort or filter; it writes a full-page screenshot.
//! `assert_self_contained` reads the HTML for references leaving the file.
//! Without a browser the browser tests skip, saying so (they fail under
//! `CI=true`; `scripts/test.sh` installs `chromium-headless-shell`).
//!
//! The page contract checked: every plot a `figure.plot` holding an inline
//! `svg` (its drawn elements of class `mark`) and a `figcaption`; every
//! token table a `table.sortable` whose `th` (`data-type="num"` or `"text"`)
//! sorts its rows ascending on a click and descending on the next, by each
//! cell's `data-v` or else its text, with an `input.filter[data-table=ID]`
//! that hides the rows not containing its text (ignoring case).
//!
//! The pages below are written by hand for these tests: a good one, and
//! one for each fault the checks must catch.

mod cdp;
mod offline;
mod page;

pub use offline::{assert_self_contained, external_references};
pub use page::{check_page, check_page_with, screenshot_path, PageReport};

use std::path::PathBuf;

use tempfile::TempDir;

const CSP: &str = r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">"#;

/// Sorting and filtering for the sample pages, written for these tests
/// (the real pages bring their own).
const SORT_JS: &str = r#"<script>
document.querySelectorAll('table.sortable').forEach(t => {
  const ths = [...t.tHead.rows[0].cells];
  ths.forEach((th, c) => th.addEventListener('click', () => {
    const asc = th.dataset.dir !== 'asc';
    ths.forEach(o => delete o.dataset.dir);
    th.dataset.dir = asc ? 'asc' : 'desc';
    const key = r => r.cells[c].dataset.v ?? r.cells[c].textContent.trim();
    const num = th.dataset.type === 'num';
    const rows = [...t.tBodies[0].rows];
    rows.sort((a, b) => { const d = num ? key(a) - key(b) : key(a).localeCompare(key(b)); return asc ? d : -d; });
    t.tBodies[0].append(...rows);
  }));
});
</script>"#;

const FILTER_JS: &str = r#"<script>
document.querySelectorAll('input.filter').forEach(box => box.addEventListener('input', () => {
  const q = box.value.toLowerCase();
  for (const r of document.getElementById(box.dataset.table).tBodies[0].rows)
    r.hidden = !r.textContent.toLowerCase().includes(q);
}));
</script>"#;

const PLOT: &str = r##"<figure class="plot" id="norms">
<svg width="420" height="220" viewBox="0 0 420 220" role="img">
  <line class="axis" x1="40" y1="200" x2="410" y2="200" stroke="#333"/>
  <rect class="mark" x="50" y="120" width="30" height="80" fill="#4a7ab5"/>
  <rect class="mark" x="90" y="40" width="30" height="160" fill="#4a7ab5"/>
  <rect class="mark" x="130" y="170" width="30" height="30" fill="#4a7ab5"/>
  <path class="mark" d="M 200 200 L 260 60 L 320 150" fill="none" stroke="#b5524a" stroke-width="2"/>
  <circle class="mark" cx="380" cy="80" r="6" fill="#b5524a"/>
  <text x="200" y="215" font-size="11">row norm</text>
</svg>
<figcaption>Row norms: the spike at the left is the black holes.</figcaption>
</figure>"##;

/// Token ids chosen so that their text order (100, 25, 3, 7) is not their
/// number order; the norm column's key is `data-v`, its text in another unit.
const TABLE: &str = r#"<p><input type="search" class="filter" data-table="tokens" placeholder="filter tokens"></p>
<table class="sortable" id="tokens">
<thead><tr><th data-type="text">token</th><th data-type="num">id</th><th data-type="num">norm</th></tr></thead>
<tbody>
<tr><td>alpha</td><td>7</td><td data-v="0.25">250 m</td></tr>
<tr><td>Bravo</td><td>100</td><td data-v="0.003">3 m</td></tr>
<tr><td>charlie</td><td>3</td><td data-v="1.5">1500 m</td></tr>
<tr><td>delta</td><td>25</td><td data-v="0.04">40 m</td></tr>
</tbody></table>"#;

/// A page following the contract; `head_extra`, `body_extra` and `scripts`
/// let a test add one fault.
fn page_with(head_extra: &str, body_extra: &str, scripts: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n{CSP}\n<title>sample</title>\n\
         <style>body {{ font: 14px sans-serif; margin: 2em; }} th {{ cursor: pointer; }} td, th {{ padding: 2px 8px; }}</style>\n\
         {head_extra}</head>\n<body>\n<h1>Sample report</h1>\n{PLOT}\n{TABLE}\n{body_extra}\n{scripts}\n</body></html>\n"
    )
}

fn good_page() -> String {
    page_with("", "", &format!("{SORT_JS}{FILTER_JS}"))
}

/// Writes `html` into a fresh folder and checks it in the browser; None
/// when there is no browser (the test skips).
fn check_html(name: &str, html: &str) -> Option<PageReport> {
    let dir = TempDir::new().expect("temp dir");
    let path: PathBuf = dir.path().join(format!("{name}.html"));
    std::fs::write(&path, html).expect("write page");
    let report = check_page(&path, &screenshot_path(&format!("browser-test-{name}")))?;
    eprintln!(
        "{name}: checked in {:?}; failures {:?}; notes {:?}",
        report.elapsed, report.failures, report.notes
    );
    Some(report)
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24, "a PNG of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR", "the first chunk of a PNG is IHDR");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn good_page_passes_every_check() {
    let Some(report) = check_html("good", &good_page()) else {
        return;
    };
    report.assert_ok();
    assert_eq!(report.plots_drawn, 1);
    assert_eq!(report.tables_sorted, 1);
    assert_eq!(report.tables_filtered, 1);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}

#[test]
fn screenshot_is_a_png_of_the_whole_page() {
    // Taller than the 900-pixel window: the screenshot must reach beyond it.
    let tall = r#"<div style="height: 2400px; border-left: 4px solid #4a7ab5">tall</div>"#;
    let Some(report) = check_html(
        "tall",
        &page_with("", tall, &format!("{SORT_JS}{FILTER_JS}")),
    ) else {
        return;
    };
    report.assert_ok();
    let png = std::fs::read(screenshot_path("browser-test-tall")).expect("screenshot written");
    assert_eq!(png.len(), report.screenshot_bytes);
    assert!(png.len() > 2_000, "a screenshot of {} bytes", png.len());
    let (width, height) = png_size(&png);
    assert_eq!(width, cdp::WINDOW.0, "the page is as wide as the window");
    assert!(height > 2400, "a full-page screenshot {height} pixels tall");
}

#[test]
fn script_errors_are_caught() {
    let thrown = page_with(
        "",
        "",
        &format!("{SORT_JS}{FILTER_JS}<script>noSuchFunction();</script>"),
    );
    let Some(report) = check_html("thrown", &thrown) else {
        return;
    };
    assert!(
        report.failed_with("uncaught exception") && report.failed_with("noSuchFunction"),
        "{report:?}"
    );

    let logged = page_with(
        "",
        "",
        &format!("{SORT_JS}{FILTER_JS}<script>console.error('plot data missing');</script>"),
    );
    let report = check_html("console-error", &logged).expect("a browser was found above");
    assert!(
        report.failed_with("console.error: plot data missing"),
        "{report:?}"
    );

    // An error only a click brings out is caught too.
    let on_click = r#"<script>document.querySelectorAll('th').forEach(th => th.addEventListener('click', () => { null.x; }));</script>"#;
    let report = check_html(
        "click-error",
        &page_with("", "", &format!("{on_click}{SORT_JS}{FILTER_JS}")),
    )
    .expect("a browser was found above");
    assert!(report.failed_with("uncaught exception"), "{report:?}");
}

#[test]
fn requests_leaving_the_file_are_caught() {
    let scripts = format!("{SORT_JS}{FILTER_JS}");
    // Without the policy the browser asks the network for the image.
    let img = r#"<img src="http://example.invalid/x.png" alt="">"#;
    let open = page_with("", img, &scripts).replace(CSP, "");
    let Some(report) = check_html("remote-img", &open) else {
        return;
    };
    assert!(
        report.failed_with("request leaving the file: http://example.invalid/x.png"),
        "{report:?}"
    );

    // With it, the policy refuses the stylesheet, and that is caught as well.
    let css = r#"<link rel="stylesheet" href="https://example.invalid/style.css">"#;
    let report =
        check_html("remote-css", &page_with(css, "", &scripts)).expect("a browser was found above");
    assert!(!report.failures.is_empty(), "{report:?}");
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("example.invalid/style.css") || f.contains("blocked")),
        "{report:?}"
    );

    // A script asking for another file beside the page: a file:// request
    // all the same, and not the page.
    let image = r#"<script>new Image().src = 'beside.png';</script>"#;
    let report = check_html(
        "beside",
        &page_with("", "", &format!("{scripts}{image}")).replace(CSP, ""),
    )
    .expect("a browser was found above");
    assert!(
        report.failed_with("request leaving the file: file://")
            && report.failed_with("/beside.png"),
        "{report:?}"
    );

    // fetch() of a file is refused before any request; the refusal is caught.
    let fetch = r#"<script>fetch('other.json').catch(() => {});</script>"#;
    let report = check_html(
        "fetch",
        &page_with("", "", &format!("{scripts}{fetch}")).replace(CSP, ""),
    )
    .expect("a browser was found above");
    assert!(report.failed_with("other.json"), "{report:?}");
}

#[test]
fn plots_without_drawn_marks_are_caught() {
    let scripts = format!("{SORT_JS}{FILTER_JS}");
    let empty = r#"<figure class="plot" id="empty"><svg width="200" height="100"></svg><figcaption>nothing</figcaption></figure>"#;
    let Some(report) = check_html("empty-plot", &page_with("", empty, &scripts)) else {
        return;
    };
    assert!(report.failed_with("plot empty: empty"), "{report:?}");
    assert_eq!(report.plots_drawn, 1, "the good plot still counts");

    let flat = r#"<figure class="plot" id="flat"><svg width="200" height="100"><rect class="mark" x="5" y="5" width="0" height="0"/></svg><figcaption>zero-size</figcaption></figure>"#;
    let report =
        check_html("flat-plot", &page_with("", flat, &scripts)).expect("a browser was found above");
    assert!(
        report.failed_with("plot flat: none of its 1 marks has a size"),
        "{report:?}"
    );

    let no_plot = page_with("", "", &scripts).replace(PLOT, "");
    let report = check_html("no-plot", &no_plot).expect("a browser was found above");
    assert!(report.failed_with("no plot on the page"), "{report:?}");
}

#[test]
fn tables_that_do_not_sort_are_caught() {
    // No sorting script at all: the header click does nothing.
    let Some(report) = check_html("unsorted", &page_with("", "", FILTER_JS)) else {
        return;
    };
    assert!(
        report.failed_with(
            "table tokens, column 2 (numbers): click 1 on its header did not sort it ascending"
        ),
        "{report:?}"
    );
    assert_eq!(report.tables_sorted, 0);

    // Numbers sorted as text: 100 before 25 before 3 before 7.
    let as_text = SORT_JS.replace(
        "const num = th.dataset.type === 'num';",
        "const num = false;",
    );
    let report = check_html(
        "sorted-as-text",
        &page_with("", "", &format!("{as_text}{FILTER_JS}")),
    )
    .expect("a browser was found above");
    assert!(
        report.failed_with("did not sort it ascending"),
        "{report:?}"
    );

    // Sorts ascending on every click, never descending.
    let one_way = SORT_JS.replace("const asc = th.dataset.dir !== 'asc';", "const asc = true;");
    let report = check_html(
        "one-way",
        &page_with("", "", &format!("{one_way}{FILTER_JS}")),
    )
    .expect("a browser was found above");
    assert!(
        report.failed_with("click 2 on its header did not sort it descending"),
        "{report:?}"
    );
    assert!(!report.failed_with("ascending"), "{report:?}");
}

#[test]
fn filters_that_do_not_hide_rows_are_caught() {
    // Matching with case: the check types in capitals.
    let with_case = FILTER_JS
        .replace("const q = box.value.toLowerCase();", "const q = box.value;")
        .replace(
            "r.textContent.toLowerCase().includes(q)",
            "r.textContent.includes(q)",
        );
    let Some(report) = check_html(
        "filter-case",
        &page_with("", "", &format!("{SORT_JS}{with_case}")),
    ) else {
        return;
    };
    assert!(
        report.failed_with("in its filter box left rows wrong"),
        "{report:?}"
    );

    let report =
        check_html("no-filter", &page_with("", "", SORT_JS)).expect("a browser was found above");
    assert!(
        report.failed_with("in its filter box left rows wrong"),
        "{report:?}"
    );

    let no_box = page_with("", "", &format!("{SORT_JS}{FILTER_JS}")).replace(
        r#"<input type="search" class="filter" data-table="tokens" placeholder="filter tokens">"#,
        "",
    );
    let report = check_html("no-box", &no_box).expect("a browser was found above");
    assert!(
        report.failed_with("table tokens: no filter box"),
        "{report:?}"
    );
}

#[test]
fn a_browser_that_dies_fails_the_check_without_hanging() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("good.html");
    std::fs::write(&path, good_page()).expect("write page");
    // `true` exits at once, as a browser that crashes on start would.
    let report = check_page_with(
        std::path::Path::new("/bin/true"),
        &path,
        &dir.path().join("x.png"),
    );
    assert!(report.failed_with("browser: "), "{report:?}");
    assert!(report.elapsed < cdp::TIMEOUT, "{report:?}");
}

#[test]
fn self_contained_pages_pass_the_static_check() {
    assert_self_contained(&good_page());
    let fine = r##"<a href="#tokens">tokens</a> <A HREF='#x'>x</A>
        <img src="data:image/png;base64,iVBORw0KGgo=" alt="">
        <svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><rect fill="url(#grad)"/><use xlink:href="#m"/></svg>
        <div style="background: url( 'data:image/svg+xml,%3Csvg%3E' )"></div>
        <style>.a { background: url("data:image/png;base64,AAAA") } .b { mask: url(#m) }</style>
        <script>const u = "https://example.com/"; if (0) { a.href = u; }</script>
        <!-- <img src="http://example.com/commented-out.png"> -->
        <p>Write src="x.png" in text, it is only text.</p>"##;
    assert_eq!(external_references(fine), Vec::<String>::new());
}

#[test]
fn references_leaving_the_file_fail_the_static_check() {
    let cases = [
        (r#"<img src="x.png">"#, "<img src=\"x.png\">"),
        (
            r#"<script src="https://cdn.example.com/d3.js"></script>"#,
            "<script src=\"https://cdn.example.com/d3.js\">",
        ),
        (
            "<link rel=stylesheet href=style.css>",
            "<link href=\"style.css\">",
        ),
        (
            r#"<IMG SRC="HTTP://EXAMPLE.COM/A.PNG">"#,
            "<img src=\"HTTP://EXAMPLE.COM/A.PNG\">",
        ),
        (
            r#"<svg><image xlink:href="pic.png"/></svg>"#,
            "<image xlink:href=\"pic.png\">",
        ),
        (
            r#"<a href="https://example.com/">home</a>"#,
            "<a href=\"https://example.com/\">",
        ),
        (
            r#"<style>@import "more.css";</style>"#,
            "<style> CSS @import",
        ),
        (
            r#"<style>body { font-family: x; src: url(font.woff2) }</style>"#,
            "<style> CSS url(font.woff2)",
        ),
        (
            r#"<div style="background:url('http://example.com/bg.png')"></div>"#,
            "CSS url('http://example.com/bg.png')",
        ),
        (
            r#"<svg><rect fill="url(http://example.com/p.svg#g)"/></svg>"#,
            "<rect fill=...> CSS url(http://example.com/p.svg#g)",
        ),
        (r#"<img srcset="a.png 1x, b.png 2x">"#, "<img srcset="),
        (
            r#"<form action="https://example.com/post"></form>"#,
            "<form action=",
        ),
        (r#"<object data="movie.swf"></object>"#, "<object data="),
    ];
    for (html, expected) in cases {
        let found = external_references(&format!("<p>before</p>\n{html}\n<p>after</p>"));
        assert_eq!(found.len(), 1, "{html}: {found:?}");
        assert!(
            found[0].starts_with("line 2: ") && found[0].contains(expected),
            "{html}: {found:?}"
        );
        let caught = std::panic::catch_unwind(|| assert_self_contained(html));
        assert!(caught.is_err(), "{html} passed assert_self_contained");
    }
}

#[test]
fn text_tables_and_one_row_tables() {
    // A table of text only sorts by text; a table of one row is noted, not sorted.
    let more = r#"<input type="search" class="filter" data-table="names">
<table class="sortable" id="names"><thead><tr><th data-type="text">name</th></tr></thead>
<tbody><tr><td>mike</td></tr><tr><td>Echo</td></tr><tr><td>zulu</td></tr><tr><td>lima</td></tr></tbody></table>
<table class="sortable" id="single"><thead><tr><th data-type="num">n</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"#;
    let Some(report) = check_html(
        "text-table",
        &page_with("", more, &format!("{SORT_JS}{FILTER_JS}")),
    ) else {
        return;
    };
    report.assert_ok();
    assert_eq!(
        (report.tables_sorted, report.tables_filtered),
        (2, 2),
        "{report:?}"
    );
    assert_eq!(report.notes, ["table single: 1 row(s), nothing to sort"]);

    // The same text table with sorting turned off is caught.
    let report = check_html("text-table-unsorted", &page_with("", more, FILTER_JS))
        .expect("a browser was found above");
    assert!(
        report.failed_with(
            "table names, column 1 (text): click 1 on its header did not sort it ascending"
        ),
        "{report:?}"
    );
}
