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
/// Wider rows than this make γ_n (n·2^-24) too coarse to prune with (it is
/// meaningless from 2^24 columns on): such matrices are computed on the host.
pub const MAX_F32_COLUMNS: usize = 1 << 20;

/// The error bounds of the f32 kernels for one matrix (dtype and width).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorModel {
    /// Relative error of a sum of `cols + 1` rounded non-negative terms (γ).
    pub rel: f64,
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
            abs: (cols as f64 + 1.0) * 2.0 * F32_MIN_NORMAL,
            decode_rel: if dtype == Dtype::F64 {
                2.0 * U32 * 1.001
            } else {
                0.0
            },
            decode_abs: (cols as f64).sqrt() * F32_MIN_NORMAL * 1.001,
        }
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
        let d_hat = ((a - self.abs).max(0.0) / (1.0 + self.rel)).sqrt() * (1.0 - 1e-12);
        (d_hat - self.decode_error(nx) - self.decode_error(ny)).max(0.0)
    }

    /// An upper bound on ‖x − y‖ given D̃²; +∞ when D̃² is not finite.
    pub fn upper(&self, approx_sq: f32, nx: f64, ny: f64) -> f64 {
        let a = approx_sq as f64;
        if !a.is_finite() {
            return f64::INFINITY;
        }
        let d_hat = ((a + self.abs) / (1.0 - self.rel)).sqrt() * (1.0 + 1e-12);
        d_hat + self.decode_error(nx) + self.decode_error(ny)
    }

    /// The f32 threshold on D̃² that keeps every pair with ‖x − y‖ ≤ `bound`,
    /// for x of norm `nx` and any y of norm at most `ny_max`.
    pub fn threshold(&self, bound: f64, nx: f64, ny_max: f64) -> f32 {
        if !bound.is_finite() {
            return f32::INFINITY;
        }
        let d_hat = bound * (1.0 + 1e-12) + self.decode_error(nx) + self.decode_error(ny_max);
        let t = (1.0 + self.rel) * d_hat * d_hat + self.abs;
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

/// The error bound of the *matmul form*, which the CPU's nearest-neighbour
/// filter uses because it runs as a packed matrix product (one multiply–add
/// per column pair instead of a subtraction and a multiply–add):
///
/// ```text
/// Ṽ(x, y) = fl32( (‖x‖² + ‖y‖²) − 2·fl32(x̂ · ŷ) )
/// ```
///
/// with the squared norms taken in f64 from the stored values and rounded
/// to f32, and x̂ · ŷ accumulated in f32 in any order, fused or not. Then
/// |Ṽ − ‖x − y‖²| ≤ E(x, y), where
///
/// ```text
/// E = (2γ·‖x‖‖y‖ + 12u·(‖x‖² + ‖y‖²) + κ·(‖x‖ + ‖y‖) + a) · (1 + 2⁻¹⁰)
/// ```
///
/// - γ = γ_{n+4} = (n+4)u / (1 − (n+4)u), u = 2⁻²⁴ (Higham, Accuracy and
///   Stability, §3.1: a dot product of n terms in any order is within
///   γ_n Σ|x_c y_c| ≤ γ_n ‖x‖‖y‖ of the exact one), plus 2u for decoding
///   f64 values to f32 (each x̂_c within u|x_c|);
/// - 12u·(‖x‖² + ‖y‖²): rounding the squared norms to f32, the two f32
///   additions, and rounding Ṽ ± E, each within u of a quantity at most
///   2(‖x‖² + ‖y‖²) (|2x·y| ≤ ‖x‖² + ‖y‖²);
/// - κ·(‖x‖ + ‖y‖), κ = 2√n·2⁻¹²⁶: subnormal inputs read as zero (a CPU
///   with denormals-are-zero set by the host process), each within
///   2⁻¹²⁶|y_c|, so within 2⁻¹²⁶‖y‖₁ ≤ 2⁻¹²⁶√n‖y‖ in all;
/// - a = (2n + 8)·2⁻¹²⁶: products and partial sums flushed to zero;
/// - (1 + 2⁻¹⁰) covers the f32 rounding of E itself (far above 3u).
///
/// Unlike direct differences, whose error is relative to the distance
/// itself, this one is relative to ‖x‖‖y‖: it certifies a neighbour only
/// when the distances it separates differ by more than about 2γ‖x‖‖y‖. The
/// filter keeps every target that could still win and hands queries with too
/// many such targets to the direct form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DotModel {
    /// 2γ·(1 + 2⁻¹⁰): multiplies ‖x‖‖y‖.
    pub product: f64,
    /// 12u·(1 + 2⁻¹⁰): multiplies each squared norm.
    pub square: f64,
    /// κ·(1 + 2⁻¹⁰): multiplies each norm.
    pub norm: f64,
    /// a·(1 + 2⁻¹⁰), split evenly between the two rows.
    pub abs: f64,
}

impl DotModel {
    pub fn new(dtype: Dtype, cols: usize) -> Self {
        let n = cols as f64 + 4.0;
        let gamma = n * U32 / (1.0 - n * U32);
        let decode = if dtype == Dtype::F64 { 2.0 * U32 } else { 0.0 };
        let margin = 1.0 + 1.0 / 1024.0;
        Self {
            product: 2.0 * (gamma * (1.0 + 4.0 * U32) + decode * 1.0001) * margin,
            square: 12.0 * U32 * margin,
            norm: 2.0 * (cols as f64).sqrt().max(1.0) * F32_MIN_NORMAL * margin,
            abs: (2.0 * cols as f64 + 8.0) * F32_MIN_NORMAL * margin,
        }
    }

    /// E for rows of norms `nx` and `ny`, in f64 (the filter computes the
    /// same sum in f32 from [`DotModel::row_term`] and `product`).
    pub fn bound(&self, nx: f64, ny: f64) -> f64 {
        self.product * nx * ny + self.row_term(nx) + self.row_term(ny)
    }

    /// The part of E that belongs to one row of norm `n`.
    pub fn row_term(&self, n: f64) -> f64 {
        self.square * n * n + self.norm * n + self.abs / 2.0
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

    /// Σ a_i with an error-free transformation per addition (TwoSum), so
    /// the reference is exact to well below the bounds tested.
    fn exact_sum(terms: impl Iterator<Item = f64>) -> f64 {
        let (mut s, mut c) = (0f64, 0f64);
        for t in terms {
            let x = s + t;
            let z = x - s;
            c += (s - (x - z)) + (t - z);
            s = x;
        }
        s + c
    }

    /// Ṽ as the CPU filter computes it, with the dot product accumulated
    /// in f32 in the given order, and the exact squared distance.
    fn matmul_form(x: &[f32], y: &[f32], order: &str) -> (f32, f64) {
        let dot = match order {
            "forward" => x.iter().zip(y).fold(0f32, |s, (a, b)| s + a * b),
            "fused" => x.iter().zip(y).fold(0f32, |s, (a, b)| a.mul_add(*b, s)),
            "reverse" => x.iter().zip(y).rev().fold(0f32, |s, (a, b)| s + a * b),
            _ => {
                // Pairwise, in eight lanes then halves, as SIMD kernels do.
                let mut lanes = [0f32; 8];
                for (k, (a, b)) in x.iter().zip(y).enumerate() {
                    lanes[k % 8] = a.mul_add(*b, lanes[k % 8]);
                }
                ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
                    + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
            }
        };
        let sq = |v: &[f32]| exact_sum(v.iter().map(|&a| a as f64 * a as f64));
        let v = ((sq(x) as f32) + (sq(y) as f32)) - 2.0 * dot;
        let d2 = exact_sum(x.iter().zip(y).map(|(&a, &b)| {
            let d = a as f64 - b as f64;
            d * d
        }));
        (v, d2)
    }

    fn norm(v: &[f32]) -> f64 {
        exact_sum(v.iter().map(|&a| a as f64 * a as f64)).sqrt()
    }

    /// The matmul-form bound holds at its edges, in every accumulation
    /// order: norms near 8 with differences near 1e-6, subnormals, ±0, the
    /// top of the f32 range the kernels accept, and long rows of equal
    /// terms (the worst case for a sequential sum).
    #[test]
    fn matmul_bound_brackets_the_exact_squared_distance() {
        let mut cases: Vec<(&str, Vec<f32>, Vec<f32>)> = Vec::new();
        let n = 2560;
        let mut seed = 0x1234_5678u64;
        let mut unit = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        // Norm about 8, differences of about 1e-6 in a few coordinates.
        let x: Vec<f32> = (0..n)
            .map(|_| (unit() * 8.0 * 3f64.sqrt() / (n as f64).sqrt()) as f32)
            .collect();
        let mut y = x.clone();
        for c in [3, 700, 2559] {
            y[c] = (x[c] as f64 + 1e-6) as f32;
        }
        cases.push(("norm 8, micro differences", x.clone(), y));
        // Every term equal: the sequential sum loses the most.
        cases.push((
            "equal terms",
            vec![1.0 + 2f32.powi(-12); n],
            vec![1.0 - 2f32.powi(-12); n],
        ));
        // Subnormal values, and subnormal products of normal values.
        cases.push((
            "subnormals",
            (0..n).map(|c| f32::from_bits(1 + c as u32 * 997)).collect(),
            (0..n).map(|c| f32::from_bits(3 + c as u32 * 991)).collect(),
        ));
        cases.push((
            "subnormal products",
            (0..n).map(|_| (unit() * 1e-20) as f32).collect(),
            (0..n).map(|_| (unit() * 1e-20) as f32).collect(),
        ));
        // Signed zeros against each other and against tiny values.
        cases.push((
            "±0",
            vec![0.0; n],
            (0..n)
                .map(|c| if c % 2 == 0 { -0.0 } else { 0.0 })
                .collect(),
        ));
        cases.push(("zero and tiny", vec![-0.0; n], vec![f32::MIN_POSITIVE; n]));
        // Norms up to MAX_F32_SAFE_NORM: squares near 1e36, close to f32's top.
        let big = MAX_F32_SAFE_NORM / (n as f64).sqrt();
        let x: Vec<f32> = (0..n).map(|_| (unit() * big) as f32).collect();
        let y: Vec<f32> = x.iter().map(|&a| a * (1.0 + 2f32.powi(-20))).collect();
        cases.push(("norms near 1e18", x, y));
        for dtype in [Dtype::F32, Dtype::BF16] {
            let model = DotModel::new(dtype, n);
            for (name, x, y) in &cases {
                for order in ["forward", "fused", "reverse", "lanes"] {
                    let (v, d2) = matmul_form(x, y, order);
                    let e = model.bound(norm(x), norm(y));
                    assert!(
                        (v as f64 - d2).abs() <= e,
                        "{name} ({order}, {dtype:?}): |{v} − {d2}| > {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn rounding_up_never_goes_down() {
        for x in [0.1f64, 1.0 / 3.0, 1e-40, 3.4e38, 0.0] {
            assert!(round_up_f32(x) as f64 >= x);
        }
    }
}
