//! Loading: each file format is a sibling module that validates everything
//! before touching tensor data and returns a zero-copy [`Matrix`] view over
//! bytes owned by a memory map that lives outside it.

pub mod safetensors;
pub mod tokenizer;

use crate::dtype::Dtype;

/// How the user asked for the tensor to be chosen and read.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--key`: the tensor's name; `None` picks one (see [`safetensors::DEFAULT_KEYS`]).
    pub key: Option<String>,
    /// `--as`: how to read a U16/I16 tensor (bf16 or f16 bits stored as integers).
    pub reinterpret: Option<Dtype>,
}

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

    /// Row `i` decoded to f64.
    pub fn row_f64(&self, i: usize) -> Vec<f64> {
        let s = self.dtype.size();
        self.row(i)
            .chunks_exact(s)
            .map(|b| self.dtype.decode(b))
            .collect()
    }
}

/// What a loader found: the tensor's name and how it was stored.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// The dtype as stored in the file (for example `U16` when read `--as bf16`).
    pub stored_dtype: String,
}
