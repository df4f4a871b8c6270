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

    /// Distance from `x` to the next representable value of this dtype away
    /// from zero (one "step", the unit in the last place), as f64.
    pub fn ulp(self, x: f64) -> f64 {
        let a = x.abs();
        if !a.is_finite() {
            return f64::NAN;
        }
        // (mantissa bits, minimum normal exponent)
        let (mant, emin) = match self {
            Dtype::F16 => (10, -14),
            Dtype::BF16 => (7, -126),
            Dtype::F32 => (23, -126),
            Dtype::F64 => (52, -1022),
        };
        let e = if a == 0.0 {
            emin
        } else {
            (a.log2().floor() as i32).max(emin)
        };
        2f64.powi(e - mant)
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

    #[test]
    fn ulp_matches_spacing() {
        assert_eq!(Dtype::BF16.ulp(1.0), 2f64.powi(-7));
        assert_eq!(Dtype::F32.ulp(1.5), f32::EPSILON as f64);
        assert_eq!(Dtype::F16.ulp(0.0), 2f64.powi(-24));
    }
}
