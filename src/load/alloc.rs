//! Buffers whose size was checked against the file but may still be more
//! than the machine can give (a dequantized, byte-swapped, gathered or
//! inflated tensor of a large or hostile file): asked for fallibly, so that
//! such a size is a one-line error and never `memory allocation of … failed`
//! and an abort.

/// An empty vector with room for exactly `len` elements, or why it cannot
/// be had; `what` names the buffer in the error.
pub(crate) fn room<T>(len: usize, what: &str) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| too_much(len.saturating_mul(size_of::<T>()), what))?;
    Ok(v)
}

/// `len` zero bytes (see [`room`]).
pub(crate) fn zeroed(len: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut v = room(len, what)?;
    v.resize(len, 0);
    Ok(v)
}

/// A copy of `src` (see [`room`]).
pub(crate) fn copy(src: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let mut v = room(src.len(), what)?;
    v.extend_from_slice(src);
    Ok(v)
}

/// The error for a buffer of `bytes` bytes the allocator refused.
pub(crate) fn too_much(bytes: usize, what: &str) -> String {
    format!(
        "{what} needs {bytes} bytes ({:.1} GiB) of memory, more than this machine can allocate",
        bytes as f64 / (1u64 << 30) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_no_machine_has_are_errors_not_aborts() {
        let e = zeroed(usize::MAX / 2, "the test buffer").unwrap_err();
        assert!(e.starts_with("the test buffer needs"), "{e}");
        assert!(room::<u64>(usize::MAX / 4, "x").is_err());
        assert!(copy(&[1, 2, 3], "x").unwrap() == [1, 2, 3]);
        assert_eq!(zeroed(5, "x").unwrap(), [0; 5]);
    }
}
