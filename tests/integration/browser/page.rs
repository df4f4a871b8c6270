//! Opens one HTML page in the headless browser and checks what a person
//! would: it loads, says nothing in red in the console, asks for nothing
//! beyond its own file, draws every plot, sorts and filters every token
//! table when clicked and typed into, and leaves a full-page screenshot.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cdp::{base64_decode, Browser};

/// What [`check_page`] found on one page.
#[derive(Debug, Default)]
pub struct PageReport {
    /// The page checked.
    pub page: PathBuf,
    /// Everything that was wrong, one line each; empty when the page passed.
    pub failures: Vec<String>,
    /// What could not be checked and why (a table too small to sort, ...).
    pub notes: Vec<String>,
    /// Plots (`figure.plot`) found with drawn marks.
    pub plots_drawn: usize,
    /// Tables whose sorting was checked (both directions).
    pub tables_sorted: usize,
    /// Tables whose filter box was checked.
    pub tables_filtered: usize,
    /// The screenshot's size in bytes (0 when none was written).
    pub screenshot_bytes: usize,
    /// Wall time of the whole check, browser start included.
    pub elapsed: Duration,
}

impl PageReport {
    /// Panics listing every failure (and the notes), if there is any.
    pub fn assert_ok(&self) {
        assert!(
            self.failures.is_empty(),
            "{} failed in the browser:\n  {}\nnotes:\n  {}",
            self.page.display(),
            self.failures.join("\n  "),
            self.notes.join("\n  ")
        );
    }

    /// True when some failure line contains `needle`.
    pub fn failed_with(&self, needle: &str) -> bool {
        self.failures.iter().any(|f| f.contains(needle))
    }
}

/// The browser to drive: `$SINGULARITY_GPU_BROWSER`, else the first of
/// `chromium-headless-shell`, `chromium`, `chromium-browser`,
/// `google-chrome` on `PATH`. None with a printed reason (the test skips),
/// except under `CI=true` where a missing browser fails the test.
pub fn browser() -> Option<PathBuf> {
    match find_browser() {
        Ok(p) => Some(p),
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {why} (scripts/test.sh installs chromium-headless-shell)");
            }
            eprintln!("skipping browser test: {why}");
            None
        }
    }
}

fn find_browser() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SINGULARITY_GPU_BROWSER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "SINGULARITY_GPU_BROWSER={} is not a file",
                p.display()
            ))
        };
    }
    let names = [
        "chromium-headless-shell",
        "chromium",
        "chromium-browser",
        "google-chrome",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "no browser found (none of {names:?} on PATH, SINGULARITY_GPU_BROWSER unset)"
    ))
}

/// Where a test's screenshot goes: `target/screenshots/NAME.png`.
pub fn screenshot_path(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("screenshots")
        .join(format!("{name}.png"))
}

/// Checks `html` in the system browser (see [`browser`]) and writes a
/// full-page PNG to `screenshot`. None when there is no browser (skipped).
pub fn check_page(html: &Path, screenshot: &Path) -> Option<PageReport> {
    let exe = browser()?;
    Some(check_page_with(&exe, html, screenshot))
}

/// [`check_page`] with a given browser executable.
pub fn check_page_with(exe: &Path, html: &Path, screenshot: &Path) -> PageReport {
    // One browser at a time: the tests run in parallel on few cores, and
    // several browsers at once would only make each one slower.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let mut report = PageReport {
        page: html.to_path_buf(),
        ..PageReport::default()
    };
    if let Err(e) = drive(exe, html, screenshot, &mut report) {
        report.failures.push(format!("browser: {e}"));
    }
    report.elapsed = start.elapsed();
    report
}

/// A `file://` URL for an absolute path, bytes outside the safe set escaped.
fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut url = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// One page session of the browser.
struct Page {
    browser: Browser,
    session: String,
}

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.browser.call(Some(&self.session), method, params)
    }

    /// Evaluates `expression` in the page and returns its value (JSON).
    fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!(
                "evaluating a check in the page threw: {}",
                describe_exception(ex)
            ));
        }
        Ok(r["result"]["value"].clone())
    }

    /// A real left click at the centre of `selector` (scrolled into view first).
    fn click(&mut self, selector: &str) -> Result<(), String> {
        let at = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); el.scrollIntoView({{block: 'center'}});
               const r = el.getBoundingClientRect(); const x = r.left + r.width / 2, y = r.top + r.height / 2;
               return {{x, y, hit: el.contains(document.elementFromPoint(x, y))}}; }})()",
            sel = json!(selector)
        ))?;
        if at["hit"] != true {
            return Err(format!(
                "{selector} is covered by another element where it would be clicked"
            ));
        }
        let (x, y) = (&at["x"], &at["y"]);
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
        )?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
            )?;
        }
        Ok(())
    }
}

fn describe_exception(ex: &Value) -> String {
    let what = ex["exception"]["description"]
        .as_str()
        .or(ex["text"].as_str())
        .unwrap_or("?");
    format!(
        "{what} (line {}, {})",
        ex["lineNumber"],
        ex["url"].as_str().unwrap_or("inline")
    )
}

fn drive(
    exe: &Path,
    html: &Path,
    screenshot: &Path,
    report: &mut PageReport,
) -> Result<(), String> {
    let path = html
        .canonicalize()
        .map_err(|e| format!("cannot open {}: {e}", html.display()))?;
    let url = file_url(&path);
    let mut browser = Browser::launch(exe)?;
    let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
    let attached = browser.call(
        None,
        "Target.attachToTarget",
        json!({ "targetId": target["targetId"], "flatten": true }),
    )?;
    let session = attached["sessionId"]
        .as_str()
        .ok_or("no session id from the browser")?
        .to_string();
    let mut page = Page { browser, session };
    for domain in ["Page", "Runtime", "Log", "Network"] {
        page.call(&format!("{domain}.enable"), json!({}))?;
    }
    page.browser.events.clear();
    let nav = page.call("Page.navigate", json!({ "url": url }))?;
    if let Some(err) = nav["errorText"].as_str() {
        return Err(format!("navigating to {url}: {err}"));
    }
    page.browser
        .wait_event("Page.loadEventFired")
        .map_err(|e| format!("the page did not finish loading: {e}"))?;

    // Each step runs even when one before it could not finish.
    let steps = [
        check_plots(&mut page, report),
        check_tables(&mut page, report),
        take_screenshot(&mut page, screenshot, report),
    ];
    // A last round trip, so that every event the checks caused is in.
    page.eval("0")?;
    check_events(
        &page.browser.events,
        &page.session,
        &url,
        nav["loaderId"].as_str(),
        report,
    );
    steps.into_iter().collect()
}

/// Console errors, uncaught exceptions, failed requests, and any request
/// for something other than the page itself or a `data:` URI.
fn check_events(
    events: &[Value],
    session: &str,
    url: &str,
    loader: Option<&str>,
    report: &mut PageReport,
) {
    for e in events.iter().filter(|e| e["sessionId"] == session) {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.exceptionThrown" => report.failures.push(format!(
                "uncaught exception: {}",
                describe_exception(&p["exceptionDetails"])
            )),
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| match &a["value"] {
                        Value::String(s) => s.clone(),
                        Value::Null => a["description"].as_str().unwrap_or("?").to_string(),
                        v => v.to_string(),
                    })
                    .collect();
                report.failures.push(format!(
                    "console.{}: {}",
                    p["type"].as_str().unwrap_or(""),
                    args.join(" ")
                ));
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => report.failures.push(format!(
                "console error ({}): {} {}",
                p["entry"]["source"].as_str().unwrap_or("?"),
                p["entry"]["text"].as_str().unwrap_or("?"),
                p["entry"]["url"].as_str().unwrap_or("")
            )),
            "Network.requestWillBeSent" => {
                let requested = p["request"]["url"].as_str().unwrap_or("");
                let without_fragment = requested.split('#').next().unwrap_or("");
                let is_page = without_fragment == url
                    || (p["type"] == "Document"
                        && loader.is_some()
                        && p["loaderId"].as_str() == loader);
                if !is_page && !requested.starts_with("data:") {
                    report
                        .failures
                        .push(format!("request leaving the file: {requested}"));
                }
            }
            "Network.loadingFailed" => report.failures.push(format!(
                "failed request ({}): {}{}",
                p["type"].as_str().unwrap_or("?"),
                p["errorText"].as_str().unwrap_or("?"),
                p["blockedReason"]
                    .as_str()
                    .map(|r| format!(", blocked: {r}"))
                    .unwrap_or_default()
            )),
            _ => {}
        }
    }
}

/// Every `figure.plot` holds an svg with at least one drawn `.mark`.
fn check_plots(page: &mut Page, report: &mut PageReport) -> Result<(), String> {
    let plots = page.eval(
        "[...document.querySelectorAll('figure.plot')].map((f, i) => {
           const svg = f.querySelector('svg');
           const marks = svg ? [...svg.querySelectorAll('.mark')] : [];
           let drawn = 0;
           for (const m of marks) {
             try { const b = m.getBBox(); if (b.width > 0 || b.height > 0) drawn++; } catch (e) {}
           }
           const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
           return {id: f.id || ('number ' + (i + 1)), svg: !!svg, caption: !!f.querySelector('figcaption'),
                   marks: marks.length, drawn, width: r.width, height: r.height};
         })",
    )?;
    let plots = plots.as_array().cloned().unwrap_or_default();
    if plots.is_empty() {
        report
            .failures
            .push("no plot on the page (no figure.plot)".into());
    }
    for p in &plots {
        let id = p["id"].as_str().unwrap_or("?");
        let size = (
            p["width"].as_f64().unwrap_or(0.0),
            p["height"].as_f64().unwrap_or(0.0),
        );
        if p["svg"] != true {
            report.failures.push(format!("plot {id}: no svg"));
        } else if p["marks"] == 0 {
            report
                .failures
                .push(format!("plot {id}: empty (no .mark element in its svg)"));
        } else if p["drawn"] == 0 {
            report.failures.push(format!(
                "plot {id}: none of its {} marks has a size",
                p["marks"]
            ));
        } else if size.0 <= 0.0 || size.1 <= 0.0 {
            report.failures.push(format!(
                "plot {id}: its svg takes no room ({} × {})",
                size.0, size.1
            ));
        } else {
            report.plots_drawn += 1;
        }
        if p["caption"] != true {
            report.failures.push(format!("plot {id}: no figcaption"));
        }
    }
    Ok(())
}

/// JavaScript defining `rowsOf(table)` and `keyOf(row, column)` as the page
/// contract has them (the key is `data-v`, else the cell's text).
const TABLE_JS: &str = "const rowsOf = t => t.tBodies[0] ? [...t.tBodies[0].rows] : [];
  const keyOf = (r, c) => { const td = r.cells[c]; if (!td) return '';
    return td.hasAttribute('data-v') ? td.getAttribute('data-v') : td.textContent.trim(); };
  const shown = r => !r.hidden && getComputedStyle(r).display !== 'none';";

/// Each `table.sortable` with two rows or more: a click on a header sorts
/// ascending, a second click descending; its filter box hides non-matches.
fn check_tables(page: &mut Page, report: &mut PageReport) -> Result<(), String> {
    let tables = page.eval(&format!(
        "(() => {{ {TABLE_JS}
           return [...document.querySelectorAll('table.sortable')].map((t, i) => {{
             const ths = t.tHead && t.tHead.rows[0] ? [...t.tHead.rows[0].cells] : [];
             const rows = rowsOf(t);
             return {{id: t.id, rows: rows.length,
               columns: ths.map((th, c) => ({{type: th.dataset.type || 'text',
                                              distinct: new Set(rows.map(r => keyOf(r, c))).size}}))}};
           }}); }})()"
    ))?;
    for (index, t) in tables
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let id = t["id"].as_str().unwrap_or("").to_string();
        let name = if id.is_empty() {
            format!("table.sortable number {}", index + 1)
        } else {
            format!("table {id}")
        };
        let rows = t["rows"].as_u64().unwrap_or(0);
        if rows < 2 {
            report
                .notes
                .push(format!("{name}: {rows} row(s), nothing to sort"));
            continue;
        }
        if id.is_empty() {
            report.failures.push(format!(
                "{name}: no id (its filter box names the table by id)"
            ));
        }
        let columns = t["columns"].as_array().cloned().unwrap_or_default();
        let varied = |c: &&Value| c["distinct"].as_u64().unwrap_or(0) >= 2;
        let column = columns
            .iter()
            .position(|c| c["type"] == "num" && varied(&c))
            .or_else(|| columns.iter().position(|c| varied(&c)));
        match column {
            None => report.notes.push(format!(
                "{name}: every column holds one value, sorting cannot show"
            )),
            Some(c) => {
                let numeric = columns[c]["type"] == "num";
                sort_column(page, report, index, &name, c, numeric)?;
            }
        }
        if !id.is_empty() {
            filter_table(page, report, index, &name, &id)?;
        }
    }
    Ok(())
}

fn sort_column(
    page: &mut Page,
    report: &mut PageReport,
    index: usize,
    name: &str,
    column: usize,
    numeric: bool,
) -> Result<(), String> {
    // Mark the header so that a plain selector reaches it.
    page.eval(&format!(
        "(() => {{ document.querySelectorAll('[data-sg-check]').forEach(e => e.removeAttribute('data-sg-check'));
           const t = document.querySelectorAll('table.sortable')[{index}];
           t.tHead.rows[0].cells[{column}].setAttribute('data-sg-check', 'th'); }})()"
    ))?;
    let read = format!(
        "(() => {{ {TABLE_JS}
           const t = document.querySelectorAll('table.sortable')[{index}];
           const rows = rowsOf(t); const all = rows.map(r => keyOf(r, {column}));
           const isNumber = k => k.trim() !== '' && !isNaN(Number(k));
           // Numbers sort among themselves; where a key is no number the order is the page's to choose.
           const keys = {numeric} ? all.filter(isNumber) : all;
           const cmp = {numeric} ? ((a, b) => Number(a) - Number(b)) : ((a, b) => a.localeCompare(b));
           const raw = (a, b) => a < b ? -1 : a > b ? 1 : 0;
           const ordered = (f, dir) => keys.every((k, i) => i === 0 || dir * f(keys[i - 1], k) <= 0);
           const numbers = all.filter(isNumber).length;
           return {{keys: keys.slice(0, 12), numbers, count: all.length,
                    rows: rows.map(r => r.textContent).sort(),
                    asc: ordered(cmp, 1) || (!{numeric} && ordered(raw, 1)),
                    desc: ordered(cmp, -1) || (!{numeric} && ordered(raw, -1))}}; }})()"
    );
    let before = page.eval(&read)?;
    if numeric && before["numbers"] != before["count"] {
        report.notes.push(format!(
            "{name}: column {} is numeric but only {} of {} keys are numbers",
            column + 1,
            before["numbers"],
            before["count"]
        ));
    }
    let what = format!(
        "{name}, column {} ({})",
        column + 1,
        if numeric { "numbers" } else { "text" }
    );
    let mut ok = true;
    for (click, direction) in [(1, "asc"), (2, "desc")] {
        page.click("[data-sg-check=th]")?;
        let after = page.eval(&read)?;
        if after[direction] != true {
            ok = false;
            let word = if direction == "asc" {
                "ascending"
            } else {
                "descending"
            };
            report.failures.push(format!(
                "{what}: click {click} on its header did not sort it {word}; keys now {}",
                after["keys"]
            ));
        }
        if after["rows"] != before["rows"] {
            ok = false;
            report.failures.push(format!(
                "{what}: sorting changed the rows themselves, not only their order"
            ));
        }
    }
    page.eval("document.querySelectorAll('[data-sg-check]').forEach(e => e.removeAttribute('data-sg-check'))")?;
    report.tables_sorted += usize::from(ok);
    Ok(())
}

fn filter_table(
    page: &mut Page,
    report: &mut PageReport,
    index: usize,
    name: &str,
    id: &str,
) -> Result<(), String> {
    let box_selector = format!(
        "input.filter[data-table=\"{}\"]",
        id.replace('\\', "\\\\").replace('"', "\\\"")
    );
    // A word from some cell that some rows hold and others do not.
    let needle = page.eval(&format!(
        "(() => {{ {TABLE_JS}
           if (!document.querySelector({sel})) return {{box: false}};
           const rows = rowsOf(document.querySelectorAll('table.sortable')[{index}]);
           const texts = rows.map(r => r.textContent.toLowerCase());
           for (const r of rows) for (const td of r.cells) {{
             const w = td.textContent.trim();
             if (w.length === 0 || w.length > 40) continue;
             const n = texts.filter(t => t.includes(w.toLowerCase())).length;
             if (n > 0 && n < rows.length) return {{box: true, needle: w}};
           }}
           return {{box: true}}; }})()",
        sel = json!(box_selector)
    ))?;
    if needle["box"] != true {
        report
            .failures
            .push(format!("{name}: no filter box ({box_selector})"));
        return Ok(());
    }
    let Some(needle) = needle["needle"].as_str() else {
        report.notes.push(format!(
            "{name}: no cell text tells its rows apart, the filter cannot show"
        ));
        return Ok(());
    };
    page.click(&box_selector)?;
    page.eval(&format!("(() => {{ const b = document.querySelector({}); if (document.activeElement !== b) b.focus(); }})()", json!(box_selector)))?;
    // Typed in other case: the filter ignores case.
    let typed = needle.to_ascii_uppercase();
    page.call("Input.insertText", json!({ "text": typed }))?;
    let wrong = page.eval(&format!(
        "(() => {{ {TABLE_JS}
           const rows = rowsOf(document.querySelectorAll('table.sortable')[{index}]);
           const q = {q}.toLowerCase();
           return rows.filter(r => shown(r) !== r.textContent.toLowerCase().includes(q))
                      .map(r => (shown(r) ? 'shown: ' : 'hidden: ') + r.textContent.trim().slice(0, 60)); }})()",
        q = json!(needle)
    ))?;
    match wrong.as_array() {
        Some(w) if w.is_empty() => report.tables_filtered += 1,
        _ => report.failures.push(format!(
            "{name}: typing {typed:?} in its filter box left rows wrong: {wrong}"
        )),
    }
    // Empty the box again, so that the screenshot shows every row.
    page.eval(&format!(
        "(() => {{ const b = document.querySelector({}); b.value = ''; b.dispatchEvent(new Event('input', {{bubbles: true}})); b.blur(); }})()",
        json!(box_selector)
    ))?;
    Ok(())
}

/// A full-page PNG of the page, written to `path`.
fn take_screenshot(page: &mut Page, path: &Path, report: &mut PageReport) -> Result<(), String> {
    page.eval("window.scrollTo(0, 0)")?;
    let metrics = page.call("Page.getLayoutMetrics", json!({}))?;
    let size = &metrics["cssContentSize"];
    // Capped, so that a runaway page cannot ask for a gigapixel image.
    let width = size["width"]
        .as_f64()
        .unwrap_or(0.0)
        .clamp(1.0, 4096.0)
        .ceil();
    let height = size["height"]
        .as_f64()
        .unwrap_or(0.0)
        .clamp(1.0, 32768.0)
        .ceil();
    let shot = page.call(
        "Page.captureScreenshot",
        json!({ "format": "png", "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 } }),
    )?;
    let png = base64_decode(
        shot["data"]
            .as_str()
            .ok_or("the screenshot came without data")?,
    )?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, &png).map_err(|e| format!("writing {}: {e}", path.display()))?;
    report.screenshot_bytes = png.len();
    Ok(())
}
