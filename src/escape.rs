//! Strings from inputs made safe to print: [`one_line`] for messages that
//! hold a file name or a string from a file header, [`quoted`] for a token's
//! text as the reports show it.

use std::fmt::Write;

/// `s` with its control characters (newlines included) escaped, so that a
/// message holding a file name or a string from a file header stays one line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` in double quotes with `\\`, `\"`, `\n`, `\t`, `\r` escaped, and every
/// other control, invisible or non-space whitespace character written
/// `\u{..}` (lowercase hex), so that a token's text reads unambiguously on
/// one line.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters that print as nothing, or as a blank that looks like a space:
/// controls, whitespace other than U+0020, and the format characters,
/// fillers and selectors that render invisibly.
fn invisible(c: char) -> bool {
    ((c.is_control() || c.is_whitespace()) && c != ' ')
        || matches!(
            c,
            '\u{AD}'
                | '\u{34F}'
                | '\u{61C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_does_not_read() {
        assert_eq!(quoted("a b"), "\"a b\"");
        assert_eq!(quoted("\\\"\n\t\r"), r#""\\\"\n\t\r""#);
        assert_eq!(quoted("\0\u{7F}\u{85}"), r#""\u{0}\u{7f}\u{85}""#);
        assert_eq!(
            quoted("x\u{200B}\u{A0}\u{3000}\u{FEFF}\u{AD}"),
            r#""x\u{200b}\u{a0}\u{3000}\u{feff}\u{ad}""#
        );
        assert_eq!(quoted("\u{2014}é是▁<0xE6>"), "\"\u{2014}é是▁<0xE6>\"");
        assert_eq!(quoted(""), "\"\"");
    }
}
