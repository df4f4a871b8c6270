// Shared helpers, prepended to each kernel's source by src/engine/gpu/mod.rs.
//
// Matrix data arrives as the raw little-endian bytes of consecutive rows,
// viewed as array<u32>; a row may start at a byte offset ≡ 2 (mod 4) when a
// 2-byte dtype has an odd number of columns. Dtype codes: 0 f32, 1 f16, 2 bf16, 3 f64.

const DT_F32: u32 = 0u;
const DT_F16: u32 = 1u;
const DT_BF16: u32 = 2u;
const DT_F64: u32 = 3u;

// An f64 given as (lo, hi) words, rounded toward zero to f32 (WGSL has no
// portable f64). Values beyond f32's range become ±inf, tiny ones ±0.
fn f64_bits_to_f32(lo: u32, hi: u32) -> f32 {
    let sign = hi & 0x80000000u;
    let e = (hi >> 20u) & 0x7ffu;
    let mant_hi = hi & 0xfffffu;
    if (e == 0x7ffu) {
        if ((mant_hi | lo) != 0u) {
            return bitcast<f32>(0x7fc00000u);
        }
        return bitcast<f32>(sign | 0x7f800000u);
    }
    let ee = i32(e) - 1023;
    if (ee > 127) {
        return bitcast<f32>(sign | 0x7f800000u);
    }
    if (e == 0u || ee < -149) {
        return bitcast<f32>(sign);
    }
    if (ee >= -126) {
        return bitcast<f32>(sign | (u32(ee + 127) << 23u) | (mant_hi << 3u) | (lo >> 29u));
    }
    let v = ldexp(1.0 + f32(mant_hi) / 1048576.0, ee);
    return select(v, -v, sign != 0u);
}

// A 16-bit float (bf16 or f16, by dtype code) to f32, with integer
// operations only: unpack2x16float may flush f16 subnormals to zero (WGSL
// allows it, and some drivers do), although every f16 value, subnormals
// included, is a normal f32.
fn half_to_f32(h: u32, dtype: u32) -> f32 {
    if (dtype == DT_BF16) {
        return bitcast<f32>(h << 16u);
    }
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let mant = h & 0x3ffu;
    if (e == 0x1fu) {
        // ±∞ and NaN (payload kept).
        return bitcast<f32>(sign | 0x7f800000u | (mant << 13u));
    }
    if (e != 0u) {
        return bitcast<f32>(sign | ((e + 112u) << 23u) | (mant << 13u));
    }
    if (mant == 0u) {
        return bitcast<f32>(sign);
    }
    // A subnormal, mant · 2^-24: normalise the mantissa into an f32 exponent.
    let top = firstLeadingBit(mant);
    let m = (mant << (23u - top)) & 0x7fffffu;
    return bitcast<f32>(sign | ((top + 103u) << 23u) | m);
}

// Whether 16-bit float bits encode a NaN.
fn half_is_nan(h: u32, dtype: u32) -> bool {
    let a = h & 0x7fffu;
    if (dtype == DT_BF16) {
        return a > 0x7f80u;
    }
    return a > 0x7c00u;
}

// Rows gathered on the host (src/engine/gpu/chunks.rs, `Gathered`) start on a
// 32-bit word: column c of a row lies at word `col_word(dtype, c)` of it.
fn col_word(dtype: u32, c: u32) -> u32 {
    if (dtype == DT_F64) {
        return 2u * c;
    }
    if (dtype == DT_F32) {
        return c;
    }
    return c >> 1u;
}

// Column c decoded to f32 from the word `w` that holds it (and the next word
// `w1`, read only for f64).
fn col_value(dtype: u32, c: u32, w: u32, w1: u32) -> f32 {
    if (dtype == DT_F32) {
        return bitcast<f32>(w);
    }
    if (dtype == DT_F64) {
        return f64_bits_to_f32(w, w1);
    }
    return half_to_f32((w >> (16u * (c & 1u))) & 0xffffu, dtype);
}

// The row hash of src/engine/hash.rs (row_stats.wgsl, step_diff.wgsl): each
// unit u_m of a row adds mix_a(u_m ^ (SEED_A + m·STEP_A)) to lane a and
// mix_b(u_m ^ (SEED_B + m·STEP_B)) to lane b; the host finishes the lanes.
const SEED_A: u32 = 0x243f6a88u;
const STEP_A: u32 = 0x9e3779b9u;
const SEED_B: u32 = 0xb7e15162u;
const STEP_B: u32 = 0x85ebca77u;

fn mix_a(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x85ebca6bu;
    x ^= x >> 13u;
    x *= 0xc2b2ae35u;
    return x ^ (x >> 16u);
}

fn mix_b(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    return x ^ (x >> 16u);
}

// The split-product arithmetic of the indicator kernels (row_dots,
// weighted_sums), the same operations as src/engine/split.rs on the CPU:
// each value splits into a 12-bit high half and the rest, so every product
// is exact in f32 and both engines give the same bits.

// Zero below 2^-40 (f32 exponent field below 87), subnormals included.
fn flush_input(x: f32) -> f32 {
    if (((bitcast<u32>(x) >> 23u) & 0xffu) < 87u) {
        return 0.0;
    }
    return x;
}

// A running sum below the smallest normal f32 is +0 (no subnormal ever
// reaches a GPU that might flush it).
fn flush_sum(s: f32) -> f32 {
    return select(s, 0.0, abs(s) < bitcast<f32>(0x00800000u));
}

fn high(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) & 0xfffff000u);
}

fn add_product(acc: f32, ah: f32, al: f32, bh: f32, bl: f32) -> f32 {
    var s = flush_sum(acc + ah * bh);
    s = flush_sum(s + ah * bl);
    s = flush_sum(s + al * bh);
    return flush_sum(s + al * bl);
}
