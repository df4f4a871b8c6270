//! `--json`: one JSON document. Undefined numbers are `null`, never NaN.

use serde::Serialize;

use super::timeline::SeriesReport;
use super::{Exporter, Report};

/// Renders a result as pretty-printed JSON.
pub struct JsonExporter;

/// `result` pretty-printed, with a final newline.
fn pretty<R: Serialize>(result: &R) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    serde_json::to_string_pretty(result).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

impl Exporter<Report> for JsonExporter {
    fn render(&self, report: &Report) -> String {
        pretty(report) + "\n"
    }
}

/// A series is pretty-printed with each array of numbers or strings on one
/// line: its per-token arrays hold one entry per token, and a line each
/// would triple the document.
impl Exporter<SeriesReport> for JsonExporter {
    fn render(&self, report: &SeriesReport) -> String {
        inline_flat_arrays(&pretty(report)) + "\n"
    }
}

/// The end (exclusive) of the string literal that opens at `b[i]`.
fn string_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Puts every array of `pretty` (JSON as serde_json pretty-prints it) that
/// holds no array or object on one line: `[1, 2, "a"]`.
fn inline_flat_arrays(pretty: &str) -> String {
    let b = pretty.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = string_end(b, i);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'[' => {
                // The first bracket or brace after this one, outside strings.
                let mut j = i + 1;
                while j < b.len() && !matches!(b[j], b'[' | b']' | b'{') {
                    j = if b[j] == b'"' {
                        string_end(b, j)
                    } else {
                        j + 1
                    };
                }
                if b.get(j) != Some(&b']') {
                    out.push(b'[');
                    i += 1;
                    continue;
                }
                // Flat: its values without the line breaks and indents.
                out.push(b'[');
                let mut k = i + 1;
                while k < j {
                    match b[k] {
                        b'"' => {
                            let end = string_end(b, k);
                            out.extend_from_slice(&b[k..end]);
                            k = end;
                        }
                        b',' => {
                            out.extend_from_slice(b", ");
                            k += 1;
                        }
                        c if c.is_ascii_whitespace() => k += 1,
                        c => {
                            out.push(c);
                            k += 1;
                        }
                    }
                }
                out.push(b']');
                i = j + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII whitespace was dropped, between whole UTF-8 sequences.
    String::from_utf8(out).unwrap_or_else(|_| pretty.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_arrays_go_on_one_line_and_the_document_stays_the_same() {
        let doc = json!({
            "steps": [0, 1, 2],
            "empty": [],
            "names": ["a [b], c", "q\"[", "{x}", "\\", "é ,"],
            "pieces": [[3, 4], [5]],
            "rows": [{"ids": [1, null, 2.5]}, {"ids": []}],
            "nested": {"deep": [true, false]},
        });
        let pretty = serde_json::to_string_pretty(&doc).unwrap();
        let got = inline_flat_arrays(&pretty);
        let back: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(back, doc);
        // serde_json sorts the keys of a `json!` object.
        let want = r#"{
  "empty": [],
  "names": ["a [b], c", "q\"[", "{x}", "\\", "é ,"],
  "nested": {
    "deep": [true, false]
  },
  "pieces": [
    [3, 4],
    [5]
  ],
  "rows": [
    {
      "ids": [1, null, 2.5]
    },
    {
      "ids": []
    }
  ],
  "steps": [0, 1, 2]
}"#;
        assert_eq!(got, want);
    }
}
