//! The matrix every stage shares: a row-major 2-D view over bytes that some
//! owner (a memory map, or a buffer the loader filled) keeps alive.

use crate::dtype::Dtype;

/// A row-major 2-D matrix viewed in place: `rows × cols` elements of `dtype`,
/// little-endian, with no alignment guarantee.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    pub dtype: Dtype,
    pub rows: usize,
    pub cols: usize,
    pub bytes: &'a [u8],
}

impl<'a> Matrix<'a> {
    /// Wraps `bytes` after checking that their length is exactly `rows × cols × size`.
    pub fn new(dtype: Dtype, rows: usize, cols: usize, bytes: &'a [u8]) -> Option<Self> {
        let want = rows.checked_mul(cols)?.checked_mul(dtype.size())?;
        (want == bytes.len() && rows > 0 && cols > 0).then_some(Self {
            dtype,
            rows,
            cols,
            bytes,
        })
    }

    /// Bytes in one row.
    pub fn row_bytes(&self) -> usize {
        self.cols * self.dtype.size()
    }

    /// The raw bytes of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.bytes[i * rb..(i + 1) * rb]
    }

    /// The L2 norm of row `i` in f64 from the stored values, scaled by a
    /// power of two near its largest magnitude where the squares would
    /// overflow or underflow (+∞ for a row holding ±∞, NaN for one holding NaN).
    pub fn exact_norm(&self, i: usize) -> f64 {
        // 16- and 32-bit values square exactly in f64: the same sum as
        // below, in the same order, without a copy of the row.
        let sum = match self.dtype {
            Dtype::BF16 => self.sum_squares(i, 2, |b| {
                f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
            }),
            Dtype::F16 => self.sum_squares(i, 2, |b| {
                half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
            }),
            Dtype::F32 => self.sum_squares(i, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::F64 => f64::NAN,
        };
        if (sum.is_finite() && sum > 1e-280) || (sum.is_nan() && self.dtype != Dtype::F64) {
            return sum.sqrt();
        }
        let v = self.row_f64(i);
        let sum: f64 = v.iter().map(|x| x * x).sum();
        if (sum.is_finite() && sum > 1e-280) || sum.is_nan() {
            return sum.sqrt();
        }
        let max = v.iter().fold(0f64, |a, x| a.max(x.abs()));
        if max == 0.0 || !max.is_finite() {
            return max;
        }
        // Clamped so that the scale itself stays finite for f64 subnormals.
        let scale = 2f64.powi(-(max.log2().floor() as i32).clamp(-1000, 1000));
        v.iter()
            .map(|x| (x * scale) * (x * scale))
            .sum::<f64>()
            .sqrt()
            / scale
    }

    /// Σ x² over row `i` in f64, in column order, each value read by `value`.
    fn sum_squares(&self, i: usize, size: usize, value: impl Fn(&[u8]) -> f32) -> f64 {
        self.row(i)
            .chunks_exact(size)
            .map(|b| {
                let x = value(b) as f64;
                x * x
            })
            .sum()
    }

    /// Row `i` decoded to f64.
    pub fn row_f64(&self, i: usize) -> Vec<f64> {
        let s = self.dtype.size();
        self.row(i)
            .chunks_exact(s)
            .map(|b| self.dtype.decode(b))
            .collect()
    }
}
