//! `--reference-tokens IDS|FILE`: the reference set as the user gives it,
//! checked for its form when the flags are read and against the matrix's
//! rows before anything is sized by the numbers in it.

use crate::error::{Error, Result};

/// `--reference-tokens` as given, checked for its form but not yet against a
/// matrix: nothing is sized by the user's numbers until
/// [`resolve`](Self::resolve) has checked them against the matrix's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceTokens {
    /// Inclusive ranges of ids, as written (one id is a range of one).
    Ranges(Vec<(usize, usize)>),
    /// A file of ids, read again (streaming) once the rows are known.
    File(std::path::PathBuf),
}

impl From<Vec<usize>> for ReferenceTokens {
    /// A list of ids a caller already holds.
    fn from(ids: Vec<usize>) -> Self {
        Self::Ranges(ids.into_iter().map(|i| (i, i)).collect())
    }
}

impl ReferenceTokens {
    /// The ids, ascending and without repeats, once every one has been
    /// checked to name one of `rows` rows; memory is bounded by `rows`.
    pub fn resolve(&self, rows: usize) -> Result<Vec<usize>> {
        let past = |id: usize| {
            Error::Usage(format!(
                "--reference-tokens: token id {id} is past the matrix's {rows} rows"
            ))
        };
        let mut chosen = vec![false; rows];
        match self {
            Self::Ranges(ranges) => {
                for &(a, b) in ranges {
                    if b >= rows {
                        return Err(past(b));
                    }
                    chosen[a..=b].iter_mut().for_each(|c| *c = true);
                }
            }
            Self::File(path) => each_file_id(path, &mut |id| {
                *chosen.get_mut(id).ok_or_else(|| past(id))? = true;
                Ok(())
            })?,
        }
        Ok((0..rows).filter(|&i| chosen[i]).collect())
    }
}

/// Parses `--reference-tokens`: ids and inclusive ranges separated by commas
/// (`0-9,120`), or else the path of a file of ids separated by whitespace,
/// commas or newlines, or holding a JSON array of ids. Only the form is
/// checked here: [`ReferenceTokens::resolve`] checks the ids against a
/// matrix.
pub fn parse_reference_tokens(arg: &str) -> Result<ReferenceTokens> {
    let path = std::path::Path::new(arg);
    let looks_like_a_list = !arg.trim().is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ',' | '-' | ' '));
    if looks_like_a_list {
        match parse_id_list(arg) {
            Ok(ranges) => return Ok(ReferenceTokens::Ranges(ranges)),
            // A file may be named like a list that is not one.
            Err(_) if path.is_file() => {}
            Err(reason) => {
                return Err(Error::Usage(format!(
                    "--reference-tokens {:?}: {reason}",
                    crate::error::one_line(arg)
                )))
            }
        }
    }
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "--reference-tokens {:?}: neither a list of ids (like 0-9,120) nor a file",
            crate::error::one_line(arg)
        )));
    }
    // Read it once now, so that a malformed file fails before the model loads.
    each_file_id(path, &mut |_| Ok(()))?;
    Ok(ReferenceTokens::File(path.to_path_buf()))
}

/// An id as written, or why it is not one.
fn parse_id(word: &str) -> std::result::Result<usize, String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{:?} is not a token id (a non-negative integer)",
            crate::error::one_line(word)
        ));
    }
    word.parse::<usize>().map_err(|_| {
        format!(
            "{:?} is too large for a token id",
            crate::error::one_line(word)
        )
    })
}

/// `0-9,120` style lists as inclusive ranges (not expanded), or why not.
fn parse_id_list(s: &str) -> std::result::Result<Vec<(usize, usize)>, String> {
    let mut ranges = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("an empty item between commas".into());
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim(), b.trim());
                if a.is_empty() || b.is_empty() {
                    return Err(format!(
                        "{:?} is neither an id nor a range (like 0-9)",
                        crate::error::one_line(part)
                    ));
                }
                let (a, b) = (parse_id(a)?, parse_id(b)?);
                if a > b {
                    return Err(format!("reversed range {a}-{b}"));
                }
                ranges.push((a, b));
            }
            None => {
                let id = parse_id(part)?;
                ranges.push((id, id));
            }
        }
    }
    Ok(ranges)
}

/// Calls `f` on each id of a `--reference-tokens` file, in order: ids
/// separated by whitespace or commas, the whole optionally one JSON array.
/// Read in pieces, so a file of any size takes fixed memory.
fn each_file_id(path: &std::path::Path, f: &mut dyn FnMut(usize) -> Result<()>) -> Result<()> {
    use std::io::Read;
    let bad = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason: format!("--reference-tokens: {reason}"),
    };
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    // A word longer than any id is kept only in part, to be shown.
    const KEPT: usize = 40;
    let mut word: Vec<u8> = Vec::with_capacity(KEPT);
    let mut long = false;
    let (mut started, mut open, mut closed) = (false, false, false);
    let mut end_word = |word: &mut Vec<u8>, long: &mut bool| -> Result<()> {
        if word.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(word).into_owned();
        let text = if *long { format!("{text}…") } else { text };
        word.clear();
        *long = false;
        let id = parse_id(&text).map_err(bad)?;
        f(id)
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad(e.to_string())),
        };
        for &b in &buf[..got] {
            if b == b',' || b.is_ascii_whitespace() {
                end_word(&mut word, &mut long)?;
            } else if b == b'[' && !started {
                open = true;
            } else if b == b']' && open && !closed {
                end_word(&mut word, &mut long)?;
                closed = true;
            } else if closed {
                return Err(bad("text after the closing ]".into()));
            } else if word.len() < KEPT {
                word.push(b);
            } else {
                long = true;
            }
            started |= !b.is_ascii_whitespace();
        }
    }
    end_word(&mut word, &mut long)?;
    if open && !closed {
        return Err(bad("a [ without its closing ]".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_parse_and_bad_ones_do_not() {
        let ids = |arg: &str, rows: usize| parse_reference_tokens(arg).unwrap().resolve(rows);
        assert_eq!(ids("3,0-2,2", 10).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(ids("5", 10).unwrap(), vec![5]);
        assert_eq!(ids("9-9, 0", 10).unwrap(), vec![0, 9]);
        for bad in ["", "a", "1,,2", "-1", "/nonexistent/ids.txt"] {
            let e = parse_reference_tokens(bad).unwrap_err().to_string();
            assert!(e.contains("--reference-tokens"), "{bad}: {e}");
        }
        let e = parse_reference_tokens("3-1").unwrap_err().to_string();
        assert!(e.contains("reversed range 3-1"), "{e}");
        let e = parse_reference_tokens("99999999999999999999999").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        let e = ids("0,10", 10).unwrap_err().to_string();
        assert!(e.contains("token id 10") && e.contains("10 rows"), "{e}");
        let e = ids("0-99999999999999", 1000).unwrap_err().to_string();
        assert!(
            e.contains("token id 99999999999999 is past the matrix's 1000 rows"),
            "{e}"
        );
    }

    #[test]
    fn huge_ranges_are_checked_before_anything_is_sized_by_them() {
        // Expanded, these would be 2⁶⁴ ids: they are kept as ranges, and
        // the check against the rows comes first.
        let max = usize::MAX;
        let arg = format!("0-{},0-{}", max - 1, max - 1);
        let given = parse_reference_tokens(&arg).unwrap();
        assert_eq!(given, ReferenceTokens::Ranges(vec![(0, max - 1); 2]));
        let e = given.resolve(1000).unwrap_err().to_string();
        assert!(e.contains(&format!("token id {}", max - 1)), "{e}");
        let from: ReferenceTokens = vec![4, 2, 4].into();
        assert_eq!(from.resolve(5).unwrap(), vec![2, 4]);
        assert!(from.resolve(4).is_err());
    }

    #[test]
    fn reference_files_are_read_in_pieces_and_checked() {
        let dir = tempfile::TempDir::new().unwrap();
        let write = |name: &str, text: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let resolve = |p: &str, rows| parse_reference_tokens(p).unwrap().resolve(rows);
        let plain = write("ids.txt", b"7 3\n3,,1\n");
        assert_eq!(resolve(&plain, 8).unwrap(), vec![1, 3, 7]);
        let json = write("ids.json", b" [7, 3,1]\n");
        assert_eq!(resolve(&json, 8).unwrap(), vec![1, 3, 7]);
        assert!(resolve(&json, 7)
            .unwrap_err()
            .to_string()
            .contains("token id 7 is past the matrix's 7 rows"));
        // Past one read buffer (64 KiB): a range of ids written out, one
        // of them split across the buffers' boundary.
        let many: String = (0..20_000).map(|i| format!("{i} ")).collect();
        let long = write("many.txt", many.as_bytes());
        assert_eq!(
            resolve(&long, 20_000).unwrap(),
            (0..20_000).collect::<Vec<_>>()
        );
        for (text, phrase) in [
            (&b"1 2 x3"[..], "\"x3\" is not a token id"),
            (b"[1, 2", "without its closing ]"),
            (b"[1] 2", "after the closing ]"),
            (b"1 99999999999999999999999", "too large"),
            (b"1 -2", "\"-2\" is not a token id"),
        ] {
            let p = write("bad.txt", text);
            let e = parse_reference_tokens(&p).unwrap_err().to_string();
            assert!(e.contains(phrase) && e.contains("bad.txt"), "{e}");
        }
    }
}
