//! What the all-pairs kernels compute, and how far from exact it may be.
//!
//! Both engines compute in f32, so that the GPU can run them at full speed:
//! each value is decoded to f32 (`x̂`: exact for bf16, f16 and f32; for f64
//! rounded or truncated, within 2^-23 relative; a subnormal may be flushed to
//! zero), and
//!
//! ```text
//! D̃²(x, y) = Σ_c (x̂_c − ŷ_c)²        P̃_k(x) = Σ_c u_kc · x̂_c
//! ```
//!
//! are accumulated in f32 from *direct differences* (never ‖x‖² + ‖y‖² − 2x·y,
//! which cancels when x and y are close), in any order. For n non-negative
//! terms any summation order is within γ_n relative of the exact sum, so an
//! f32 result brackets the exact distance ([`ErrorModel`]). The survey uses
//! these brackets only to discard pairs that cannot matter; every answer it
//! reports is computed again, exactly, from the stored values in f64.

use crate::dtype::Dtype;

/// Unit roundoff of f32 (round to nearest).
const U32: f64 = 1.0 / (1u64 << 24) as f64;
/// The smallest normal f32: the most a flushed subnormal can be off by.
const F32_MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;
/// Norms above this may overflow f32 squares: the f32 kernels cannot bracket
/// such rows, and the survey computes them exactly on the host instead.
pub const MAX_F32_SAFE_NORM: f64 = 1e18;

/// The error bounds of the f32 kernels for one matrix (dtype and width).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorModel {
    /// Relative error of a sum of `cols + 1` rounded non-negative terms (γ).
    pub rel: f64,
    /// Error relative to (‖x‖ + ‖y‖)², for kernels that use the norm form
    /// ‖x‖² + ‖y‖² − 2x·y to *discard* candidates (0 for direct differences).
    pub norm_rel: f64,
    /// Absolute error from flushed subnormal terms.
    pub abs: f64,
    /// Relative error of decoding a value to f32 (2^-23 for f64, else 0).
    pub decode_rel: f64,
    /// Absolute error of decoding (a flushed subnormal input), per row: √d · 2^-126.
    pub decode_abs: f64,
}

impl ErrorModel {
    /// Direct differences, as described above.
    pub fn new(dtype: Dtype, cols: usize) -> Self {
        let n = cols as f64 + 4.0;
        Self {
            // γ_n = n·u / (1 − n·u), with a little room for the f64 arithmetic here.
            rel: n * U32 / (1.0 - n * U32) * 1.001,
            norm_rel: 0.0,
            abs: (cols as f64 + 1.0) * 2.0 * F32_MIN_NORMAL,
            decode_rel: if dtype == Dtype::F64 {
                2.0 * U32 * 1.001
            } else {
                0.0
            },
            decode_abs: (cols as f64).sqrt() * F32_MIN_NORMAL * 1.001,
        }
    }

    /// The norm form D̃² = fl(‖x̂‖²) + fl(‖ŷ‖²) − 2·fl(x̂·ŷ), every sum in f32 in
    /// any order: each of the three sums is within γ_d of its exact value
    /// relative to Σ|terms| ≤ ‖x‖², ‖y‖², ‖x‖‖y‖, and the two final
    /// operations add 2u of the same scale, so |D̃² − D̂²| ≤ γ_{d+4}(‖x‖+‖y‖)².
    /// Cheaper (one multiply–add per column pair) but loose for close pairs:
    /// only for discarding candidates, never for answers.
    pub fn norm_form(dtype: Dtype, cols: usize) -> Self {
        let direct = Self::new(dtype, cols);
        Self {
            rel: 0.0,
            norm_rel: direct.rel,
            ..direct
        }
    }

    /// The norm-form term for rows of norms `nx`, `ny` (their f32 decodings
    /// may be larger by the decoding error).
    fn norm_term(&self, nx: f64, ny: f64) -> f64 {
        if self.norm_rel == 0.0 {
            return 0.0;
        }
        let s = nx + ny + self.decode_error(nx) + self.decode_error(ny);
        self.norm_rel * s * s
    }

    /// How far the f32 decoding of a row of norm `n` can be from the row (L2).
    fn decode_error(&self, n: f64) -> f64 {
        self.decode_rel * n + self.decode_abs
    }

    /// A lower bound on the exact distance ‖x − y‖ given the kernels' D̃² and
    /// the exact norms of x and y. 0 when D̃² is not finite.
    pub fn lower(&self, approx_sq: f32, nx: f64, ny: f64) -> f64 {
        let a = approx_sq as f64;
        if !a.is_finite() {
            return 0.0;
        }
        let slack = self.abs + self.norm_term(nx, ny);
        let d_hat = ((a - slack).max(0.0) / (1.0 + self.rel)).sqrt() * (1.0 - 1e-12);
        (d_hat - self.decode_error(nx) - self.decode_error(ny)).max(0.0)
    }

    /// An upper bound on ‖x − y‖ given D̃²; +∞ when D̃² is not finite.
    pub fn upper(&self, approx_sq: f32, nx: f64, ny: f64) -> f64 {
        let a = approx_sq as f64;
        if !a.is_finite() {
            return f64::INFINITY;
        }
        let slack = self.abs + self.norm_term(nx, ny);
        let d_hat = ((a + slack).max(0.0) / (1.0 - self.rel)).sqrt() * (1.0 + 1e-12);
        d_hat + self.decode_error(nx) + self.decode_error(ny)
    }

    /// The f32 threshold on D̃² that keeps every pair with ‖x − y‖ ≤ `bound`,
    /// for x of norm `nx` and any y of norm at most `ny_max`.
    pub fn threshold(&self, bound: f64, nx: f64, ny_max: f64) -> f32 {
        if !bound.is_finite() {
            return f32::INFINITY;
        }
        let d_hat = bound * (1.0 + 1e-12) + self.decode_error(nx) + self.decode_error(ny_max);
        let t = (1.0 + self.rel) * d_hat * d_hat + self.abs + self.norm_term(nx, ny_max);
        round_up_f32(t * (1.0 + 1e-12))
    }

    /// How far a kernel projection P̃ onto `u` (of L2 norm `u_norm`, as the
    /// f32 values the kernel used) can be from u · x, for x of norm `nx`.
    pub fn projection_error(&self, u_norm: f64, nx: f64) -> f64 {
        (u_norm * ((self.rel + 2.0 * self.decode_rel) * nx * (1.0 + 1e-9) + 2.0 * self.decode_abs)
            + self.abs)
            * 1.001
    }
}

/// The smallest f32 at or above `x` (f64 → f32 rounds to nearest, which may go down).
pub fn round_up_f32(x: f64) -> f32 {
    if x.is_nan() {
        return f32::INFINITY;
    }
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounds bracket the exact distance for values whose f32 sum loses
    /// the most: many equal terms accumulated one by one.
    #[test]
    fn bounds_bracket_a_sequential_f32_sum() {
        let cols = 4096;
        let e = ErrorModel::new(Dtype::F32, cols);
        // x − y = 1 + 2^-20 in every coordinate, summed sequentially in f32.
        let diff = 1.0f32 + 2f32.powi(-20);
        let approx: f32 = (0..cols).fold(0f32, |s, _| s + diff * diff);
        let exact = ((diff as f64) * (diff as f64) * cols as f64).sqrt();
        assert!(e.lower(approx, 1.0, 1.0) <= exact);
        assert!(e.upper(approx, 1.0, 1.0) >= exact);
        assert!(e.threshold(exact, 1.0, 1.0) >= approx);
        assert_eq!(e.lower(f32::INFINITY, 1.0, 1.0), 0.0);
        assert_eq!(e.upper(f32::NAN, 1.0, 1.0), f64::INFINITY);
    }

    /// The norm form's bound holds where it cancels worst: two nearly equal
    /// rows, whose f32 norm-form distance is mostly rounding noise.
    #[test]
    fn norm_form_bounds_hold_under_cancellation() {
        let cols = 2560;
        let e = ErrorModel::norm_form(Dtype::F32, cols);
        let x: Vec<f32> = (0..cols)
            .map(|c| ((c * 7919) % 1000) as f32 / 25000.0)
            .collect();
        let mut y = x.clone();
        y[3] += 1e-6;
        let (nx2, ny2, xy) = x
            .iter()
            .zip(&y)
            .fold((0f32, 0f32, 0f32), |(a, b, c), (&p, &q)| {
                (a + p * p, b + q * q, c + p * q)
            });
        let approx = nx2 + ny2 - 2.0 * xy;
        let exact: f64 = x
            .iter()
            .zip(&y)
            .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let (nx, ny) = ((nx2 as f64).sqrt(), (ny2 as f64).sqrt());
        assert!(e.lower(approx, nx, ny) <= exact);
        assert!(e.upper(approx, nx, ny) >= exact);
        assert!(e.threshold(exact, nx, ny) >= approx);
    }

    #[test]
    fn rounding_up_never_goes_down() {
        for x in [0.1f64, 1.0 / 3.0, 1e-40, 3.4e38, 0.0] {
            assert!(round_up_f32(x) as f64 >= x);
        }
    }
}
