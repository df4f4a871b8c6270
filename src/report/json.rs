//! `--json`: one JSON document. Undefined numbers are `null`, never NaN.

use serde::Serialize;

use super::Exporter;

/// Renders a result as pretty-printed JSON.
pub struct JsonExporter;

impl<R: Serialize> Exporter<R> for JsonExporter {
    fn render(&self, result: &R) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        let mut s = serde_json::to_string_pretty(result)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}
