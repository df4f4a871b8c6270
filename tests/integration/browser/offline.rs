//! A check that needs no browser: nothing in a page's HTML or CSS points
//! outside the file. Links to a `#fragment` of the page and `data:` URIs
//! are the only references allowed.

/// Attributes whose value the browser fetches or navigates to.
const URL_ATTRIBUTES: &[&str] = &[
    "src",
    "href",
    "xlink:href",
    "srcset",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
    "manifest",
    "ping",
    "icon",
    "lowsrc",
    "longdesc",
    "codebase",
    "archive",
];

/// Panics listing every reference in `html` that leaves the file.
pub fn assert_self_contained(html: &str) {
    let found = external_references(html);
    assert!(
        found.is_empty(),
        "the page is not self-contained:\n  {}",
        found.join("\n  ")
    );
}

/// Every reference in `html` that leaves the file, one line each naming the
/// line of the page and what points where: `src`/`href` (and kin)
/// attributes, CSS `url(...)` in `<style>`, `style=` or any attribute, and
/// every CSS `@import`. Script text is not read (the browser test sees
/// what a script asks for).
pub fn external_references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = html.as_bytes();
    let line_of = |at: usize| html[..at].matches('\n').count() + 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"<!--") {
            i = html[i..].find("-->").map_or(bytes.len(), |end| i + end + 3);
            continue;
        }
        let tag_start =
            bytes[i] == b'<' && bytes.get(i + 1).is_some_and(|b| b.is_ascii_alphabetic());
        if !tag_start {
            i += 1;
            continue;
        }
        let (name, attributes, end) = parse_tag(html, i + 1);
        let line = line_of(i);
        for (attr, value) in &attributes {
            if URL_ATTRIBUTES.contains(&attr.as_str()) && !stays_inside(value) {
                found.push(format!("line {line}: <{name} {attr}=\"{value}\">"));
            }
            for problem in css_problems(value) {
                found.push(format!("line {line}: <{name} {attr}=...> {problem}"));
            }
        }
        i = end;
        // Raw text: <style> is CSS to read, <script> is skipped to its end.
        if name == "style" || name == "script" {
            let close = format!("</{name}");
            let body_end =
                find_ascii_case_insensitive(&html[i..], &close).map_or(bytes.len(), |e| i + e);
            if name == "style" {
                for problem in css_problems(&html[i..body_end]) {
                    found.push(format!("line {}: <style> {problem}", line_of(i)));
                }
            }
            i = body_end;
        }
    }
    found
}

/// True for a reference that stays in the file: `#fragment` or `data:`.
fn stays_inside(value: &str) -> bool {
    let v = value.trim();
    v.starts_with('#') || v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:"))
}

/// `@import` rules and `url(...)` leaving the file, in a piece of CSS.
fn css_problems(css: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lower = css.to_ascii_lowercase();
    if lower.contains("@import") {
        problems.push("CSS @import".to_string());
    }
    let mut rest = lower.as_str();
    let mut offset = 0;
    while let Some(at) = rest.find("url(") {
        let start = offset + at + 4;
        let arg = &css[start..];
        let arg = &arg[..arg.find(')').unwrap_or(arg.len())];
        let target = arg.trim().trim_matches(|c| c == '"' || c == '\'');
        if !stays_inside(target) {
            problems.push(format!("CSS url({})", arg.trim()));
        }
        offset = start;
        rest = &lower[offset..];
    }
    problems
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

/// Parses the tag whose name starts at `at`: its lowercased name, its
/// attributes (lowercased names, unquoted values), and where it ends.
fn parse_tag(html: &str, at: usize) -> (String, Vec<(String, String)>, usize) {
    let bytes = html.as_bytes();
    let is_name = |b: u8| !b.is_ascii_whitespace() && !b"/>=\"'".contains(&b);
    let mut i = at;
    while i < bytes.len() && is_name(bytes[i]) {
        i += 1;
    }
    let name = html[at..i].to_ascii_lowercase();
    let mut attributes = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'>' {
            return (name, attributes, (i + 1).min(bytes.len()));
        }
        let name_start = i;
        while i < bytes.len() && is_name(bytes[i]) {
            i += 1;
        }
        if i == name_start {
            i += 1; // a stray quote or '=': step over it
            continue;
        }
        let attr = html[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let end = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(bytes.len(), |e| i + 1 + e);
                value = html[i + 1..end].to_string();
                i = (end + 1).min(bytes.len());
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = html[start..i].to_string();
            }
        }
        attributes.push((attr, value));
    }
}
