//! How the renderers write numbers: thousands separators, Python's
//! scientific notation, fixed decimals and counted nouns. Shared by every
//! renderer, so none of them imports another.

/// `1234567` → `1,234,567` (Python's `{:,}`).
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Python's `{:.6e}`: `7.529632e+00`.
pub fn sci(x: f64) -> String {
    let s = format!("{x:.6e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => s,
    }
}

/// `1.00e-04`: three significant digits, Python's `{:.2e}`.
pub fn sci2(x: f64) -> String {
    let s = format!("{x:.2e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => s,
    }
}

/// `x` with `digits` decimals, or `n/a`.
pub fn fixed(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) => format!("{v:.digits$}"),
        None => "n/a".into(),
    }
}

/// [`sci`], or `n/a`.
pub fn sci_or(x: Option<f64>) -> String {
    x.map(sci).unwrap_or_else(|| "n/a".into())
}

/// A mean with thousands separators and one decimal.
pub fn decimal(x: f64) -> String {
    let s = format!("{x:.1}");
    match s.split_once('.') {
        Some((int, frac)) if x.abs() < 1e15 => match int.parse::<usize>() {
            Ok(i) => format!("{}.{frac}", thousands(i)),
            Err(_) => s.clone(),
        },
        _ => s.clone(),
    }
}

/// `n noun`, with the noun in the plural unless `n` is 1.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        assert_eq!(thousands(151936), "151,936");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(sci(7.529632), "7.529632e+00");
        assert_eq!(sci(0.00012345), "1.234500e-04");
        assert_eq!(sci2(0.0001), "1.00e-04");
        assert_eq!(decimal(12345.67), "12,345.7");
        assert_eq!(count(1, "hole", "holes"), "1 hole");
        assert_eq!(count(1000, "hole", "holes"), "1,000 holes");
    }
}
