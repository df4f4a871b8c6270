//! Dequantization of ggml's block formats (GGUF tensors), our own and no ML
//! framework's: each function follows ggml's `dequantize_row_*` in
//! `ggml-quants.c` operation for operation, in f32 and without fused
//! multiply-adds, so the values are bit for bit those llama.cpp (and the
//! `gguf` Python package's `quants.py`) compute.
//!
//! A quantized matrix is stored row by row, each row a run of blocks: a
//! row of `cols` values holds `cols / elems` blocks of `bytes` bytes, so
//! `cols` must be a multiple of the block's element count.

use half::f16;
use rayon::prelude::*;

use crate::load::source::StoredDtype;

/// The shape of one block of a quantized type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// Values per block.
    pub elems: usize,
    /// Bytes per block.
    pub bytes: usize,
}

/// The quantized types this module decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // ggml's names.
enum Kind {
    Q8_0,
    Q4_0,
    Q4_K,
    Q6_K,
}

impl Kind {
    fn of(dtype: &StoredDtype) -> Option<Self> {
        match dtype {
            StoredDtype::Q8_0 => Some(Kind::Q8_0),
            StoredDtype::Q4_0 => Some(Kind::Q4_0),
            StoredDtype::Q4_K => Some(Kind::Q4_K),
            StoredDtype::Q6_K => Some(Kind::Q6_K),
            _ => None,
        }
    }

    const fn layout(self) -> BlockLayout {
        match self {
            // f16 d, 32 × i8.
            Kind::Q8_0 => BlockLayout {
                elems: 32,
                bytes: 34,
            },
            // f16 d, 16 bytes of nibbles.
            Kind::Q4_0 => BlockLayout {
                elems: 32,
                bytes: 18,
            },
            // f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles.
            Kind::Q4_K => BlockLayout {
                elems: 256,
                bytes: 144,
            },
            // 128 bytes ql, 64 bytes qh, 16 × i8 scales, f16 d.
            Kind::Q6_K => BlockLayout {
                elems: 256,
                bytes: 210,
            },
        }
    }
}

/// The block layout of `dtype`, or `None` when it is not a quantized type
/// this module decodes.
pub fn layout(dtype: &StoredDtype) -> Option<BlockLayout> {
    Kind::of(dtype).map(Kind::layout)
}

/// The bytes a `rows × cols` matrix of `dtype` occupies, checked: `cols` a
/// whole number of blocks, and no overflow.
pub fn stored_size(dtype: &StoredDtype, rows: usize, cols: usize) -> Result<usize, String> {
    let l = layout(dtype).ok_or_else(|| format!("{dtype} is not a quantized type"))?;
    if !cols.is_multiple_of(l.elems) {
        return Err(format!(
            "rows of {cols} values are not a whole number of {dtype} blocks of {}",
            l.elems
        ));
    }
    (cols / l.elems)
        .checked_mul(l.bytes)
        .and_then(|row| row.checked_mul(rows))
        .ok_or_else(|| format!("a {rows} × {cols} {dtype} matrix is too large to exist"))
}

/// Checks `blocks` against the matrix shape; the bytes in one stored row.
fn check(
    kind: Kind,
    dtype: &StoredDtype,
    blocks: &[u8],
    rows: usize,
    cols: usize,
) -> Result<usize, String> {
    let want = stored_size(dtype, rows, cols)?;
    if blocks.len() != want {
        return Err(format!(
            "{} bytes of {dtype} blocks, but a {rows} × {cols} matrix needs {want}",
            blocks.len()
        ));
    }
    // The output size must exist too (checked here, before anything is allocated).
    rows.checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| format!("a {rows} × {cols} matrix of f32 is too large to exist"))?;
    Ok(cols / kind.layout().elems * kind.layout().bytes)
}

/// Dequantizes a `rows × cols` matrix of `dtype` stored as `blocks`
/// (exactly `rows × (cols / elems) × bytes` of them) to f32, row-major.
pub fn dequantize(
    dtype: &StoredDtype,
    blocks: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>, String> {
    let kind = Kind::of(dtype).ok_or_else(|| format!("{dtype} is not a quantized type"))?;
    let row_bytes = check(kind, dtype, blocks, rows, cols)?;
    if rows == 0 || cols == 0 {
        return Ok(Vec::new());
    }
    // Checked to exist; asked for fallibly, as 7 times the blocks' bytes
    // may be more than the machine has.
    let mut out = crate::load::alloc::room(rows * cols, "the dequantized matrix")?;
    out.resize(rows * cols, 0f32);
    out.par_chunks_mut(cols)
        .zip(blocks.par_chunks(row_bytes))
        .for_each(|(y, x)| dequantize_row(kind, x, y));
    Ok(out)
}

/// Like [`dequantize`], but the values come back as little-endian f32
/// bytes (what a [`crate::load::source::Bytes`] the engines read holds), written in place
/// without an intermediate `Vec<f32>`.
pub fn dequantize_le_bytes(
    dtype: &StoredDtype,
    blocks: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, String> {
    let kind = Kind::of(dtype).ok_or_else(|| format!("{dtype} is not a quantized type"))?;
    let row_bytes = check(kind, dtype, blocks, rows, cols)?;
    if rows == 0 || cols == 0 {
        return Ok(Vec::new());
    }
    // Checked to exist; asked for fallibly, as 7 times the blocks' bytes
    // may be more than the machine has.
    let mut out = crate::load::alloc::zeroed(rows * cols * 4, "the dequantized matrix")?;
    let l = kind.layout();
    out.par_chunks_mut(cols * 4)
        .zip(blocks.par_chunks(row_bytes))
        .for_each(|(y, x)| {
            // One block at a time through a buffer of one block's values
            // (a row may be as long as the file allows).
            let mut values = [0f32; 256];
            let values = &mut values[..l.elems];
            for (block, y) in x.chunks_exact(l.bytes).zip(y.chunks_exact_mut(l.elems * 4)) {
                dequantize_row(kind, block, values);
                for (b, v) in y.chunks_exact_mut(4).zip(values.iter()) {
                    b.copy_from_slice(&v.to_le_bytes());
                }
            }
        });
    Ok(out)
}

/// Dequantizes one row: `x` holds whole blocks, `y` their values.
fn dequantize_row(kind: Kind, x: &[u8], y: &mut [f32]) {
    let l = kind.layout();
    for (block, out) in x.chunks_exact(l.bytes).zip(y.chunks_exact_mut(l.elems)) {
        match kind {
            Kind::Q8_0 => q8_0(block, out),
            Kind::Q4_0 => q4_0(block, out),
            Kind::Q4_K => q4_k(block, out),
            Kind::Q6_K => q6_k(block, out),
        }
    }
}

/// The f16 stored little-endian at `b[at..at + 2]`, widened (exactly) to f32.
#[inline]
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `dequantize_row_q8_0`: `y[j] = qs[j] * d`.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    for (v, &q) in y.iter_mut().zip(&b[2..34]) {
        *v = (q as i8) as f32 * d;
    }
}

/// `dequantize_row_q4_0`: `y[j] = ((qs[j] & 0xF) - 8) * d` for the first 16,
/// `((qs[j] >> 4) - 8) * d` for the last 16.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    let qs = &b[2..18];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8).
#[inline]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `dequantize_row_q4_K`: eight sub-blocks of 32, each `d·sc·q − dmin·m`,
/// a 64-value chunk taking the low nibbles of 32 bytes, then their high ones.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    let min = half_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for chunk in 0..4 {
        let is = chunk * 2;
        let (sc, m) = scale_min_k4(is, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(is + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        let q = &qs[chunk * 32..chunk * 32 + 32];
        let out = &mut y[chunk * 64..chunk * 64 + 64];
        for l in 0..32 {
            out[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            out[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// `dequantize_row_q6_K`: two halves of 128; in each, value `l + 32k` is
/// the 6-bit `(ql nibble | qh 2 bits << 4) − 32` times `d · scale`.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 208);
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let out = &mut y[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * (sc[is + k] as i8) as f32;
            out[l] = s(0) * q1 as f32;
            out[l + 32] = s(2) * q2 as f32;
            out[l + 64] = s(4) * q3 as f32;
            out[l + 96] = s(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_decoded_are_the_types_called_quantized() {
        let all = [
            StoredDtype::F64,
            StoredDtype::F32,
            StoredDtype::F16,
            StoredDtype::BF16,
            StoredDtype::U16,
            StoredDtype::I16,
            StoredDtype::Q8_0,
            StoredDtype::Q4_0,
            StoredDtype::Q4_K,
            StoredDtype::Q6_K,
            StoredDtype::Other("Q5_K".into()),
        ];
        for d in all {
            assert_eq!(Kind::of(&d).is_some(), d.is_quantized(), "{d}");
        }
    }

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_by_hand() {
        let mut b = h(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(&StoredDtype::Q8_0, &b, 1, 32).unwrap();
        let want: Vec<f32> = (0..32).map(|i| (i - 16) as f32 * 0.5).collect();
        assert_eq!(y, want);
    }

    #[test]
    fn q4_0_nibble_order() {
        // Byte j holds element j (low nibble) and element j + 16 (high nibble).
        let mut b = h(2.0).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(&StoredDtype::Q4_0, &b, 1, 32).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 2.0);
            assert_eq!(y[j + 16], ((15 - j) as f32 - 8.0) * 2.0);
        }
    }

    #[test]
    fn q4_k_scales_and_mins() {
        // Sub-block j: scale j + 1 (and 40 + j for j ≥ 4, to use the high bits),
        // min 2j + 3 (and 50 + j); every nibble 5.
        let sc: Vec<u8> = (0..8).map(|j| if j < 4 { j + 1 } else { 40 + j }).collect();
        let mn: Vec<u8> = (0..8)
            .map(|j| if j < 4 { 2 * j + 3 } else { 50 + j })
            .collect();
        let mut scales = [0u8; 12];
        for j in 0..4 {
            scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
            scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
            scales[j + 8] = (sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4);
        }
        let mut b = h(0.25).to_vec();
        b.extend(h(0.125));
        b.extend(scales);
        b.extend([0x55u8; 128]);
        let y = dequantize(&StoredDtype::Q4_K, &b, 1, 256).unwrap();
        for (i, v) in y.iter().enumerate() {
            let j = i / 32;
            assert_eq!(*v, 0.25 * sc[j] as f32 * 5.0 - 0.125 * mn[j] as f32, "{i}");
        }
    }

    #[test]
    fn q6_k_layout() {
        // Value i gets q = i % 64 (6 bits), scale of sub-block i / 16 = that index − 8.
        let q: Vec<u8> = (0..256).map(|i| (i % 64) as u8).collect();
        let mut b = vec![0u8; 210];
        for half in 0..2 {
            for l in 0..32 {
                let at = |k: usize| q[half * 128 + l + 32 * k];
                b[half * 64 + l] = (at(0) & 0xF) | ((at(2) & 0xF) << 4);
                b[half * 64 + l + 32] = (at(1) & 0xF) | ((at(3) & 0xF) << 4);
                b[128 + half * 32 + l] =
                    (at(0) >> 4) | ((at(1) >> 4) << 2) | ((at(2) >> 4) << 4) | ((at(3) >> 4) << 6);
            }
        }
        for s in 0..16 {
            b[192 + s] = (s as i8 - 8) as u8;
        }
        b[208..].copy_from_slice(&h(0.5));
        let y = dequantize(&StoredDtype::Q6_K, &b, 1, 256).unwrap();
        for (i, v) in y.iter().enumerate() {
            let want = 0.5 * (i / 16) as f32 - 4.0;
            assert_eq!(*v, want * (q[i] as f32 - 32.0), "{i}");
        }
    }

    #[test]
    fn sizes_are_checked_before_allocating() {
        let e = dequantize(&StoredDtype::Q4_K, &[0u8; 144], 1, 128).unwrap_err();
        assert!(e.contains("whole number"), "{e}");
        let e = dequantize(&StoredDtype::Q8_0, &[0u8; 34], usize::MAX / 2, 32).unwrap_err();
        assert!(e.contains("too large") || e.contains("needs"), "{e}");
        let e = dequantize(&StoredDtype::Q8_0, &[0u8; 33], 1, 32).unwrap_err();
        assert!(e.contains("needs 34"), "{e}");
        assert!(dequantize(&StoredDtype::F32, &[], 1, 1).is_err());
    }

    #[test]
    fn le_bytes_match_values() {
        let b: Vec<u8> = (0..2 * 210).map(|i| (i * 37 % 251) as u8).collect();
        let v = dequantize(&StoredDtype::Q6_K, &b, 2, 256).unwrap();
        let le = dequantize_le_bytes(&StoredDtype::Q6_K, &b, 2, 256).unwrap();
        let back: Vec<f32> = le
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
