//! The house keeps its shape: no room of `src/` imports a room that imports
//! it back, `report/` sees no loader or engine, and a file format imports
//! only the loader's floor (`source.rs` and the leaves below it), never
//! another format or `load/mod.rs`. Read from the `use crate::…` paths of
//! the sources, comments and unit tests left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::root;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The module path of a source file (`src/load/format/npy.rs` → `load::format::npy`).
fn module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

/// The `crate::a::b…` paths a file names outside comments and its unit tests.
fn crate_paths(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let path: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_string());
            rest = &tail[path.len()..];
        }
    }
    out
}

/// Module → the modules it names, each cut to its first `depth` parts.
fn graph(depth: usize, within: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(&src) {
        let m = module(&src, &file);
        if ["main", "cli", "lib"].contains(&m.as_str()) || !m.starts_with(within) {
            continue;
        }
        // Unit tests in a file of their own (`tests.rs`) are not the module.
        if m.ends_with("::tests") {
            continue;
        }
        let cut = |p: &str| p.split("::").take(depth).collect::<Vec<_>>().join("::");
        let from = cut(&m);
        for p in crate_paths(&std::fs::read_to_string(&file).unwrap()) {
            let to = cut(&p);
            if to != from && to.starts_with(within) {
                g.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    g
}

/// A circle in `g`, if there is one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_room_imports_one_that_imports_it_back() {
    let rooms = graph(1, "");
    assert!(
        rooms.contains_key("run") && rooms.contains_key("load"),
        "{rooms:?}"
    );
    assert_eq!(circle(&rooms), None, "{rooms:#?}");
    let load = graph(2, "load");
    assert!(load.contains_key("load::format"), "{load:?}");
    assert_eq!(circle(&load), None, "{load:#?}");
}

#[test]
fn the_report_sees_results_only_and_the_survey_no_loader() {
    let rooms = graph(1, "");
    for (room, banned) in [
        ("report", ["load", "engine", "run"]),
        ("survey", ["load", "run", "report"]),
    ] {
        let seen = &rooms[room];
        for b in banned {
            assert!(!seen.contains(b), "{room} imports {b}: {seen:?}");
        }
    }
    // Only the drivers know both the loader and the engine.
    let both: Vec<&String> = rooms
        .iter()
        .filter(|(_, to)| to.contains("load") && to.contains("engine"))
        .map(|(from, _)| from)
        .collect();
    assert_eq!(both, ["run"]);
}

#[test]
fn a_format_imports_only_the_floor_of_the_loader() {
    let src = root().join("src");
    let allowed = [
        "load::source",
        "load::files",
        "load::alloc",
        "load::container",
    ];
    let formats = sources(&src.join("load/format"));
    assert!(formats.len() >= 5, "{formats:?}");
    for file in formats {
        let m = module(&src, &file);
        let own = m.split("::").take(3).collect::<Vec<_>>().join("::");
        for p in crate_paths(&std::fs::read_to_string(&file).unwrap()) {
            if !p.starts_with("load") || p.starts_with(&own) {
                continue;
            }
            assert!(
                allowed.iter().any(|a| p.starts_with(a)),
                "{m} imports crate::{p}: a format sees only {allowed:?}"
            );
        }
    }
}
