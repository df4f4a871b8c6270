//! Split-product f32 arithmetic: the one definition of what
//! [`Engine::row_dots`](super::Engine::row_dots) and
//! [`Engine::weighted_column_sums`](super::Engine::weighted_column_sums)
//! compute, so that the CPU and the GPU give *bit-identical* results (and the
//! indicators built on them the same ranking) by construction, not by luck.
//!
//! Why this works: a WGSL (or SPIR-V) compiler may contract `acc + a * b` into
//! a fused multiply-add, or not; the two differ only when `a · b` is rounded.
//! Here no product is ever rounded. Every value is split into a high half
//! (its top 12 significant bits, by masking) and a low half (the rest, at
//! most 12 significant bits, `x − hi`, exact), and every product is of two
//! halves: at most 24 significant bits, exact in f32. Each output is then a
//! sum of exact products added one at a time in one fixed order, with
//! correctly rounded f32 additions (IEEE on the CPU; WGSL requires `+` and
//! `*` on f32 to be correctly rounded), so fused or not, the same bits come
//! out. Subnormals, which a GPU may flush, never arise: inputs below 2^-40
//! in magnitude count as zero ([`flush_input`]), so every product of halves
//! is at least 2^-126, and a sum that lands below the smallest normal f32 is
//! set to +0 on both engines ([`flush_sum`]). The cost: four products for
//! one (the kernels are bound by memory reads, not arithmetic), and values of
//! magnitude below 2^-40 (about 9e-13) are treated as zero.
//!
//! Rejected: an approximation with a certified bound and an exact f64 settle
//! of near-ties (as [`approx`](crate::approx) does for distances). Power
//! iteration feeds each result into the next pass, so a bound would have to
//! follow the whole iteration; identical bits make every later step identical.

use crate::dtype::Dtype;

/// Inputs of magnitude below 2^-40 count as zero: f32 exponent field below this.
const MIN_EXPONENT_FIELD: u32 = 127 - 40;

/// Rows per block of [`Engine::weighted_column_sums`](super::Engine::weighted_column_sums),
/// at least; more when the partials would pass 64 MiB.
pub const SUM_BLOCK_ROWS: usize = 256;

/// Keeps the top 12 significant bits of an f32.
const HIGH_MASK: u32 = 0xffff_f000;

/// Rows per block of the weighted column sums for a `rows × cols` matrix: the
/// same on every engine, a function of the shape only.
pub fn sum_block_rows(rows: usize, cols: usize) -> usize {
    let mut b = SUM_BLOCK_ROWS;
    while rows.div_ceil(b).saturating_mul(cols).saturating_mul(4) > 64 << 20 {
        b *= 2;
    }
    b
}

/// A value as the kernels see it: zero when its magnitude is below 2^-40
/// (subnormals included), else itself.
#[inline(always)]
pub fn flush_input(x: f32) -> f32 {
    if (x.to_bits() >> 23) & 0xff < MIN_EXPONENT_FIELD {
        0.0
    } else {
        x
    }
}

/// A running sum below the smallest normal f32 becomes +0 (a GPU may flush it).
#[inline(always)]
pub fn flush_sum(s: f32) -> f32 {
    if s.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        s
    }
}

/// The high and low halves of a (flushed) value: `hi + lo == x` exactly.
#[inline(always)]
pub fn split(x: f32) -> (f32, f32) {
    let hi = f32::from_bits(x.to_bits() & HIGH_MASK);
    (hi, x - hi)
}

/// `acc + a·b` for `a = (ah, al)` and `b = (bh, bl)`: four exact products
/// added in the order hh, hl, lh, ll, each sum flushed.
#[inline(always)]
pub fn add_product(acc: f32, (ah, al): (f32, f32), (bh, bl): (f32, f32)) -> f32 {
    let mut s = flush_sum(acc + ah * bh);
    s = flush_sum(s + ah * bl);
    s = flush_sum(s + al * bh);
    flush_sum(s + al * bl)
}

/// An f64 given as bits, truncated toward zero to f32 as `common.wgsl`'s
/// `f64_bits_to_f32` does (results below the normal range become zero,
/// which [`flush_input`] would make of them anyway).
pub fn f64_bits_to_f32(bits: u64) -> f32 {
    let (lo, hi) = (bits as u32, (bits >> 32) as u32);
    let sign = hi & 0x8000_0000;
    let e = (hi >> 20) & 0x7ff;
    let mant_hi = hi & 0xfffff;
    if e == 0x7ff {
        return if (mant_hi | lo) != 0 {
            f32::NAN
        } else {
            f32::from_bits(sign | 0x7f80_0000)
        };
    }
    let ee = e as i32 - 1023;
    if ee > 127 {
        return f32::from_bits(sign | 0x7f80_0000);
    }
    if e == 0 || ee < -126 {
        return f32::from_bits(sign);
    }
    f32::from_bits(sign | (((ee + 127) as u32) << 23) | (mant_hi << 3) | (lo >> 29))
}

/// Element `c` of a raw row decoded to f32 as the kernels decode it
/// (exact for bf16, f16, f32; f64 truncated), then flushed.
#[inline(always)]
pub fn decode(dtype: Dtype, row: &[u8], c: usize) -> f32 {
    let x = match dtype {
        Dtype::F32 => {
            f32::from_le_bytes([row[4 * c], row[4 * c + 1], row[4 * c + 2], row[4 * c + 3]])
        }
        Dtype::BF16 => {
            f32::from_bits((u16::from_le_bytes([row[2 * c], row[2 * c + 1]]) as u32) << 16)
        }
        Dtype::F16 => half::f16::from_le_bytes([row[2 * c], row[2 * c + 1]]).to_f32(),
        Dtype::F64 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&row[8 * c..8 * c + 8]);
            f64_bits_to_f32(u64::from_le_bytes(b))
        }
    };
    flush_input(x)
}

/// Values prepared for the kernels: scaled by a power of two so that the
/// largest magnitude lies in [0.5, 1), rounded to f32, flushed, and split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub hi: Vec<f32>,
    pub lo: Vec<f32>,
    /// log2 of the scale applied: the kernels' results are to be multiplied by 2^`-shift`.
    pub shift: i32,
}

impl Split {
    /// `values` (finite; non-finite ones count as zero) prepared as above.
    pub fn new(values: &[f64]) -> Self {
        let max = values
            .iter()
            .filter(|x| x.is_finite())
            .fold(0f64, |a, x| a.max(x.abs()));
        let shift = if max > 0.0 {
            // 2^e ≤ max < 2^(e+1): scale by 2^-(e+1) into [0.5, 1).
            -(max.log2().floor() as i32 + 1)
        } else {
            0
        };
        let scale = 2f64.powi(shift);
        let (hi, lo) = values
            .iter()
            .map(|&x| {
                let v = if x.is_finite() { x * scale } else { 0.0 };
                // f64 → f32 may round up to 1.0: still below 2 (no overflow).
                split(flush_input(v as f32))
            })
            .unzip();
        Self { hi, lo, shift }
    }

    /// The value the kernels use for element `i`, unscaled, in f64.
    pub fn value(&self, i: usize) -> f64 {
        (self.hi[i] as f64 + self.lo[i] as f64) * 2f64.powi(-self.shift)
    }

    /// The factor that undoes the scaling of a kernel result.
    pub fn unscale(&self) -> f64 {
        2f64.powi(-self.shift)
    }
}

/// Adds the per-block partials of the weighted column sums (`blocks × cols`
/// f32, block order) in f64, in block order.
pub fn add_blocks(partials: &[f32], cols: usize) -> Vec<f64> {
    let mut sums = vec![0f64; cols];
    for block in partials.chunks_exact(cols.max(1)) {
        sums.iter_mut()
            .zip(block)
            .for_each(|(s, &p)| *s += p as f64);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_add_up_and_products_of_halves_are_exact() {
        let mut x = 0.123_456_79_f32;
        for _ in 0..1000 {
            let (h, l) = split(x);
            assert_eq!(h + l, x);
            let (h2, l2) = split(1.0 / x.sqrt());
            for (a, b) in [(h, h2), (h, l2), (l, h2), (l, l2)] {
                assert_eq!((a as f64) * (b as f64), (a * b) as f64, "{a} * {b}");
                // A fused multiply-add gives the same sum as the separate ops.
                assert_eq!(a.mul_add(b, 0.3), 0.3 + a * b);
            }
            x = x * 1.618_034 + 0.001;
            if x > 1e6 {
                x *= 1e-9;
            }
        }
    }

    #[test]
    fn tiny_inputs_are_flushed() {
        assert_eq!(flush_input(1e-13), 0.0);
        assert_eq!(flush_input(-1e-13), 0.0);
        assert_eq!(flush_input(1e-12), 1e-12);
        assert_eq!(flush_input(f32::from_bits(1)), 0.0);
    }

    #[test]
    fn f64_truncation_matches_the_shader() {
        assert_eq!(f64_bits_to_f32(1.5f64.to_bits()), 1.5);
        let x = 0.1f64;
        let t = f64_bits_to_f32(x.to_bits());
        assert!((t as f64) <= x && x - (t as f64) < 1e-8);
        assert_eq!(f64_bits_to_f32((-0.1f64).to_bits()), -t);
        assert_eq!(f64_bits_to_f32(1e300f64.to_bits()), f32::INFINITY);
        assert!(f64_bits_to_f32(f64::NAN.to_bits()).is_nan());
    }

    #[test]
    fn split_scales_into_half_open_unit_range() {
        let s = Split::new(&[3.0, -0.25, 0.0, f64::NAN]);
        assert_eq!(s.shift, -2);
        assert_eq!(s.hi[0] + s.lo[0], 0.75);
        assert_eq!(s.value(1), -0.25);
        assert_eq!(s.value(3), 0.0);
        assert_eq!(sum_block_rows(1000, 10), 256);
        assert!(sum_block_rows(10_000_000, 100_000) > 256);
    }
}
