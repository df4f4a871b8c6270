//! Element types of an embedding matrix: the one place that knows bit layouts.
//!
//! Rows are compared and hashed as raw little-endian bytes; values are decoded
//! only for norms, sums and distances.

use std::fmt;

/// The element type of the matrix being surveyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    /// Name as safetensors spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F64 => "F64",
        }
    }

    /// The code the WGSL kernels switch on (see `shaders/common.wgsl`).
    pub const fn shader_code(self) -> u32 {
        match self {
            Dtype::F32 => 0,
            Dtype::F16 => 1,
            Dtype::BF16 => 2,
            Dtype::F64 => 3,
        }
    }

    /// Decodes the element stored in `b` (exactly `self.size()` little-endian bytes).
    #[inline]
    pub fn decode(self, b: &[u8]) -> f64 {
        match self {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Dtype::F16 => half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
            Dtype::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
            Dtype::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    /// The element's raw bits, zero-extended.
    #[inline]
    pub fn bits(self, b: &[u8]) -> u64 {
        match self {
            Dtype::F16 | Dtype::BF16 => u16::from_le_bytes([b[0], b[1]]) as u64,
            Dtype::F32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64,
            Dtype::F64 => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    /// The bit pattern of negative zero.
    pub const fn negative_zero_bits(self) -> u64 {
        match self {
            Dtype::F16 | Dtype::BF16 => 0x8000,
            Dtype::F32 => 0x8000_0000,
            Dtype::F64 => 0x8000_0000_0000_0000,
        }
    }

    /// Whether the bits encode a NaN.
    #[inline]
    pub fn is_nan_bits(self, bits: u64) -> bool {
        match self {
            Dtype::F16 => (bits & 0x7fff) > 0x7c00,
            Dtype::BF16 => (bits & 0x7fff) > 0x7f80,
            Dtype::F32 => (bits & 0x7fff_ffff) > 0x7f80_0000,
            Dtype::F64 => (bits & 0x7fff_ffff_ffff_ffff) > 0x7ff0_0000_0000_0000,
        }
    }

    /// The bits with negative zero replaced by positive zero: the canonical form
    /// under numeric equality, where `-0.0 == +0.0`.
    #[inline]
    pub fn canonical_bits(self, bits: u64) -> u64 {
        if bits == self.negative_zero_bits() {
            0
        } else {
            bits
        }
    }

    /// The value's position in the ordered list of this dtype's values, from
    /// its bits: consecutive representable values have consecutive positions,
    /// +0 and −0 share position 0, negatives are negative, and ±∞ sit one past
    /// the largest finite magnitude. The number of steps (ULPs) between two
    /// values is the difference of their positions ([`Dtype::steps_between`]).
    /// NaN bit patterns sit beyond ±∞, ordered by payload.
    #[inline]
    pub fn ordered_position(self, bits: u64) -> i64 {
        let sign = self.negative_zero_bits();
        // Below the sign bit, IEEE magnitudes are ordered as integers.
        let magnitude = (bits & (sign - 1)) as i64;
        if bits & sign != 0 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Steps between two values given by their bits: how many representable
    /// values of this dtype one passes going from one to the other (0 for
    /// equal values and for +0 vs −0).
    #[inline]
    pub fn steps_between(self, a: u64, b: u64) -> u64 {
        let d = self.ordered_position(a) as i128 - self.ordered_position(b) as i128;
        d.unsigned_abs() as u64
    }

    /// Explicit mantissa bits: one step at a normal value `x` is at most
    /// `|x| · 2^-mantissa_bits`.
    pub const fn mantissa_bits(self) -> i32 {
        match self {
            Dtype::F16 => 10,
            Dtype::BF16 => 7,
            Dtype::F32 => 23,
            Dtype::F64 => 52,
        }
    }

    /// The smallest step of this dtype (the spacing of its subnormals), the
    /// step size everywhere below the smallest normal value.
    pub fn smallest_step(self) -> f64 {
        self.decode_bits(1)
    }

    /// Decodes raw bits (as [`Dtype::bits`] returns them).
    #[inline]
    pub fn decode_bits(self, bits: u64) -> f64 {
        match self {
            Dtype::F32 => f32::from_bits(bits as u32) as f64,
            Dtype::F16 => half::f16::from_bits(bits as u16).to_f64(),
            Dtype::BF16 => f32::from_bits((bits as u32) << 16) as f64,
            Dtype::F64 => f64::from_bits(bits),
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_bit_patterns() {
        assert_eq!(Dtype::BF16.decode(&0x3f80u16.to_le_bytes()), 1.0);
        assert_eq!(Dtype::BF16.decode(&0xc000u16.to_le_bytes()), -2.0);
        assert_eq!(Dtype::F16.decode(&0x3c00u16.to_le_bytes()), 1.0);
        assert_eq!(Dtype::F16.decode(&0x0001u16.to_le_bytes()), 2f64.powi(-24));
        assert_eq!(Dtype::F32.decode(&0.5f32.to_le_bytes()), 0.5);
        assert_eq!(Dtype::F64.decode(&(-3.25f64).to_le_bytes()), -3.25);
    }

    #[test]
    fn nan_and_negative_zero() {
        assert!(Dtype::BF16.is_nan_bits(0x7fc0));
        assert!(!Dtype::BF16.is_nan_bits(0x7f80)); // +inf
        assert!(Dtype::F16.is_nan_bits(0xfe00));
        assert!(!Dtype::F16.is_nan_bits(0x7c00));
        assert!(Dtype::F32.is_nan_bits(f32::NAN.to_bits() as u64));
        assert!(Dtype::F64.is_nan_bits(f64::NAN.to_bits()));
        assert_eq!(Dtype::F32.canonical_bits((-0.0f32).to_bits() as u64), 0);
        assert_eq!(
            Dtype::F32.canonical_bits(1.0f32.to_bits() as u64),
            0x3f80_0000
        );
    }

    /// Positions counted by hand: the next value up, across zero, across a
    /// binade boundary (where a step doubles), among subnormals, and to ∞.
    #[test]
    fn ordered_positions_count_steps() {
        let bf = Dtype::BF16;
        // 1.0 = 0x3f80; the next value up is 0x3f81, the one below 0x3f7f.
        assert_eq!(bf.steps_between(0x3f80, 0x3f81), 1);
        assert_eq!(bf.steps_between(0x3f80, 0x3f7f), 1);
        // +0 and −0 are one position; the smallest subnormals either side are 1 away.
        assert_eq!(bf.steps_between(0x0000, 0x8000), 0);
        assert_eq!(bf.steps_between(0x0001, 0x8001), 2);
        assert_eq!(bf.steps_between(0x8000, 0x0001), 1);
        // Largest finite to +inf: one step.
        assert_eq!(bf.steps_between(0x7f7f, 0x7f80), 1);
        // f64 extremes: −max to +max does not overflow.
        let max = f64::MAX.to_bits();
        assert_eq!(Dtype::F64.steps_between(max, max | (1 << 63)), 2 * max);
        // Values across a binade: 2.0 − one step is 1.9921875 in bf16, and
        // 2.0 + one step is 2.015625 (a step twice as large).
        let below = half::bf16::from_f64(1.9921875).to_bits() as u64;
        let above = half::bf16::from_f64(2.015625).to_bits() as u64;
        let two = half::bf16::from_f64(2.0).to_bits() as u64;
        assert_eq!(bf.steps_between(below, two), 1);
        assert_eq!(bf.steps_between(two, above), 1);
        // f64 just below a power of two: one step of 2^-53 (the old log2 rounding got 2^-52).
        let a = (1.0f64 - f64::EPSILON / 2.0).to_bits();
        assert_eq!(Dtype::F64.steps_between(a, 1.0f64.to_bits()), 1);
        assert_eq!(Dtype::F32.smallest_step(), 2f64.powi(-149));
        assert_eq!(Dtype::F16.smallest_step(), 2f64.powi(-24));
        assert_eq!(Dtype::BF16.smallest_step(), 2f64.powi(-133));
    }
}
