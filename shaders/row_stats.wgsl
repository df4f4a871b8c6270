// row_stats: per row, the two hash lanes, the L2 norm and a NaN flag.
//
//   lane_a = Σ_m mix_a(u_m ^ (SEED_A + m·STEP_A))   (wrapping; likewise lane_b)
//   norm   = sqrt(Σ_j x_j²)                          (f32, tree-reduced)
// (when that sum overflows or underflows — values beyond about 1.8e19 or
// below about 1e-15 — one thread recomputes the norm of that row as
// 2^e · sqrt(Σ_j (x_j · 2^-e)²), with 2^e at the row's largest magnitude)
// where u_m is the m-th little-endian 32-bit unit of the row's bytes (the last
// one zero-padded), with −0.0 written as +0.0 when `numeric` is set. The host
// finalizes the lanes into the 64-bit hash (src/engine/hash.rs).
//
// `tpr` threads (a power of two ≤ 256) share one row and stride through its
// units, so neighbouring threads read neighbouring words (coalesced); a
// workgroup of 256 threads covers 256/tpr rows.
//
// Bindings: 0 data (read), 1 params (uniform), 2 out: vec4<u32> per row
// (lane_a, lane_b, bitcast<u32>(norm), flags: bit 0 = row holds a NaN),
// 3 data again as vec4<u32> (used when `quads` ≠ 0: every row starts on a
// 16-byte boundary and has `quads` × 16 bytes).

struct Params {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    units: u32,
    dtype: u32,
    numeric: u32,
    tpr: u32,
    quads: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<u32>>;
// The same buffer as `data`, read 16 bytes at a time when rows allow it.
@group(0) @binding(3) var<storage, read> data4: array<vec4<u32>>;

// SEED_*, STEP_*, mix_a and mix_b: shaders/common.wgsl.

// Unit m of the row starting at byte `row0` (even): 4 bytes, the part past the
// row's end zeroed.
fn fetch_unit(row0: u32, m: u32) -> u32 {
    let off = row0 + 4u * m;
    let w = off >> 2u;
    var u: u32;
    if ((off & 3u) == 0u) {
        u = data[w];
    } else {
        u = (data[w] >> 16u) | (data[w + 1u] << 16u);
    }
    if (p.row_bytes - 4u * m < 4u) {
        u = u & 0xffffu;
    }
    return u;
}

// What one thread accumulates over its share of a row.
struct Acc {
    a: u32,
    b: u32,
    sq: f32,
    flags: u32,
}

// Adds unit `m0` (value `u0`) of a 4-byte or 2-byte dtype row.
fn absorb(acc: ptr<function, Acc>, u0: u32, m: u32) {
    var u = u0;
    if (p.dtype == DT_F32) {
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            (*acc).flags |= 1u;
        }
        if (p.numeric != 0u && u == 0x80000000u) {
            u = 0u;
        }
        let v = bitcast<f32>(u);
        (*acc).sq += v * v;
    } else {
        var lo = u & 0xffffu;
        var hi = u >> 16u;
        if (half_is_nan(lo, p.dtype) || half_is_nan(hi, p.dtype)) {
            (*acc).flags |= 1u;
        }
        if (p.numeric != 0u) {
            lo = select(lo, 0u, lo == 0x8000u);
            hi = select(hi, 0u, hi == 0x8000u);
            u = lo | (hi << 16u);
        }
        let x = half_to_f32(lo, p.dtype);
        let y = half_to_f32(hi, p.dtype);
        (*acc).sq += x * x + y * y;
    }
    (*acc).a += mix_a(u ^ (SEED_A + m * STEP_A));
    (*acc).b += mix_b(u ^ (SEED_B + m * STEP_B));
}

// Value of column c of the row starting at byte `row0`, as f32.
fn value_at(row0: u32, c: u32) -> f32 {
    if (p.dtype == DT_F64) {
        return f64_bits_to_f32(fetch_unit(row0, 2u * c), fetch_unit(row0, 2u * c + 1u));
    }
    if (p.dtype == DT_F32) {
        return bitcast<f32>(fetch_unit(row0, c));
    }
    let u = fetch_unit(row0, c >> 1u);
    return half_to_f32((u >> (16u * (c & 1u))) & 0xffffu, p.dtype);
}

// The slow path for rows whose plain f32 sum of squares is not usable: scaled
// by a power of two at the row's largest magnitude, so no square overflows
// and the largest ones do not underflow. Serial, taken by one thread.
fn scaled_norm(row0: u32) -> f32 {
    var big = 0.0;
    for (var c = 0u; c < p.cols; c += 1u) {
        big = max(big, abs(value_at(row0, c)));
    }
    if (big == 0.0 || bitcast<u32>(big) >= 0x7f800000u) {
        return big;
    }
    let e = frexp(big).exp;
    var sq = 0.0;
    for (var c = 0u; c < p.cols; c += 1u) {
        let x = ldexp(value_at(row0, c), -e);
        sq += x * x;
    }
    return ldexp(sqrt(sq), e);
}

var<workgroup> s_a: array<u32, 256>;
var<workgroup> s_b: array<u32, 256>;
var<workgroup> s_sq: array<f32, 256>;
var<workgroup> s_flags: array<u32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tpr = p.tpr;
    let lane = t % tpr;
    let r = (wg.y * nwg.x + wg.x) * (256u / tpr) + t / tpr;
    var acc = Acc(0u, 0u, 0.0, 0u);
    if (r < p.rows) {
        let row0 = r * p.row_bytes;
        if (p.dtype == DT_F64) {
            for (var e = lane; e < p.cols; e += tpr) {
                let lo = fetch_unit(row0, 2u * e);
                var hi = fetch_unit(row0, 2u * e + 1u);
                let ahi = hi & 0x7fffffffu;
                if (ahi > 0x7ff00000u || (ahi == 0x7ff00000u && lo != 0u)) {
                    acc.flags |= 1u;
                }
                if (p.numeric != 0u && hi == 0x80000000u && lo == 0u) {
                    hi = 0u;
                }
                let m = 2u * e;
                acc.a += mix_a(lo ^ (SEED_A + m * STEP_A)) + mix_a(hi ^ (SEED_A + (m + 1u) * STEP_A));
                acc.b += mix_b(lo ^ (SEED_B + m * STEP_B)) + mix_b(hi ^ (SEED_B + (m + 1u) * STEP_B));
                let v = f64_bits_to_f32(lo, hi);
                acc.sq += v * v;
            }
        } else if (p.quads != 0u) {
            // Rows start on 16-byte boundaries and hold whole quads of units:
            // 16-byte loads, two in flight per thread.
            let q0 = row0 >> 4u;
            var k = lane;
            while (k + tpr < p.quads) {
                let x = data4[q0 + k];
                let y = data4[q0 + k + tpr];
                let m = 4u * k;
                let n = 4u * (k + tpr);
                absorb(&acc, x.x, m);
                absorb(&acc, x.y, m + 1u);
                absorb(&acc, x.z, m + 2u);
                absorb(&acc, x.w, m + 3u);
                absorb(&acc, y.x, n);
                absorb(&acc, y.y, n + 1u);
                absorb(&acc, y.z, n + 2u);
                absorb(&acc, y.w, n + 3u);
                k += 2u * tpr;
            }
            if (k < p.quads) {
                let x = data4[q0 + k];
                let m = 4u * k;
                absorb(&acc, x.x, m);
                absorb(&acc, x.y, m + 1u);
                absorb(&acc, x.z, m + 2u);
                absorb(&acc, x.w, m + 3u);
            }
        } else {
            // Four loads issued before any is used, to keep more bytes in flight.
            var m = lane;
            while (m + 3u * tpr < p.units) {
                let u0 = fetch_unit(row0, m);
                let u1 = fetch_unit(row0, m + tpr);
                let u2 = fetch_unit(row0, m + 2u * tpr);
                let u3 = fetch_unit(row0, m + 3u * tpr);
                absorb(&acc, u0, m);
                absorb(&acc, u1, m + tpr);
                absorb(&acc, u2, m + 2u * tpr);
                absorb(&acc, u3, m + 3u * tpr);
                m += 4u * tpr;
            }
            for (; m < p.units; m += tpr) {
                absorb(&acc, fetch_unit(row0, m), m);
            }
        }
    }
    s_a[t] = acc.a;
    s_b[t] = acc.b;
    s_sq[t] = acc.sq;
    s_flags[t] = acc.flags;
    workgroupBarrier();
    for (var s = tpr / 2u; s > 0u; s = s / 2u) {
        if (lane < s) {
            s_a[t] += s_a[t + s];
            s_b[t] += s_b[t + s];
            s_sq[t] += s_sq[t + s];
            s_flags[t] |= s_flags[t + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u && r < p.rows) {
        var norm = sqrt(s_sq[t]);
        // Overflowed (and no NaN), or small enough that squares may have underflowed.
        if ((s_flags[t] & 1u) == 0u && (bitcast<u32>(s_sq[t]) >= 0x7f800000u || s_sq[t] < 1e-30)) {
            norm = scaled_norm(r * p.row_bytes);
        }
        out[r] = vec4<u32>(s_a[t], s_b[t], bitcast<u32>(norm), s_flags[t]);
    }
}
