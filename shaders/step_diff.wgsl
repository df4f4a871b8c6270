// step_diff: one step of a series against the step before, row by row.
//
// For row r, with u_m the m-th little-endian 32-bit unit of its bytes in this
// step (`cur`) and v_m the same unit in the previous step (`prev`), both
// zero-padded past the row's end:
//
//   lane_a = Σ_m mix_a(u_m ^ (SEED_A + m·STEP_A))   (wrapping; likewise lane_b,
//            the hash of src/engine/hash.rs, finished on the host)
//   changed = ∃ m: u_m ≠ v_m
//   for 2- and 4-byte dtypes, per element j with bits x_j (cur) and y_j (prev):
//     pos(x) = ±(x without its sign bit)      (sign-magnitude: +0 and −0 are
//                                              both 0, NaN patterns beyond ∞)
//     d_j    = |pos(x_j) − pos(y_j)|          (< 2³² even for f32)
//     linf   = max_j d_j                      (u32)
//     l1     = Σ_j d_j                        (u64, as two u32 words with carry)
//   for f64, linf = l1 = 0 (the host reports no displacement).
//
// A row of a 2-byte dtype with an odd number of columns ends mid-unit, and may
// start mid-word: the half past its end is zeroed in both steps, so the next
// row's bytes neither hash, nor differ, nor move.
//
// `tpr` threads (a power of two ≤ 256) share one row and stride through its
// units; a workgroup of 256 threads covers 256/tpr rows (the workgroup index
// is wg.y · num_workgroups.x + wg.x).
//
// Bindings: 0 cur (read, array<u32>), 1 prev (read, array<u32>; the same
// layout), 2 params (uniform), 3 out (read_write): six u32 per row,
// (lane_a, lane_b, changed, linf, l1 low word, l1 high word).

struct Params {
    rows: u32,
    row_bytes: u32,
    units: u32,
    dtype: u32,
    tpr: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> cur: array<u32>;
@group(0) @binding(1) var<storage, read> prev: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

// Unit m of the row starting at byte `row0` (even) in the current step.
fn cur_unit(row0: u32, m: u32) -> u32 {
    let off = row0 + 4u * m;
    let w = off >> 2u;
    var u: u32;
    if ((off & 3u) == 0u) {
        u = cur[w];
    } else {
        u = (cur[w] >> 16u) | (cur[w + 1u] << 16u);
    }
    if (p.row_bytes - 4u * m < 4u) {
        u = u & 0xffffu;
    }
    return u;
}

// The same unit in the previous step.
fn prev_unit(row0: u32, m: u32) -> u32 {
    let off = row0 + 4u * m;
    let w = off >> 2u;
    var u: u32;
    if ((off & 3u) == 0u) {
        u = prev[w];
    } else {
        u = (prev[w] >> 16u) | (prev[w + 1u] << 16u);
    }
    if (p.row_bytes - 4u * m < 4u) {
        u = u & 0xffffu;
    }
    return u;
}

// |pos(x) − pos(y)| for sign-magnitude bits with sign bit `sign`.
fn steps(x: u32, y: u32, sign: u32) -> u32 {
    let mx = x & (sign - 1u);
    let my = y & (sign - 1u);
    if (((x ^ y) & sign) != 0u) {
        // On either side of zero: each magnitude is below 2³¹, so no overflow.
        return mx + my;
    }
    return max(mx, my) - min(mx, my);
}

// What one thread accumulates over its share of a row.
struct Acc {
    a: u32,
    b: u32,
    changed: u32,
    linf: u32,
    lo: u32,
    hi: u32,
}

fn add_steps(acc: ptr<function, Acc>, d: u32) {
    (*acc).linf = max((*acc).linf, d);
    let lo = (*acc).lo + d;
    (*acc).hi += select(0u, 1u, lo < d);
    (*acc).lo = lo;
}

// Adds unit m of the row: `u` in this step, `v` in the previous one.
fn absorb(acc: ptr<function, Acc>, u: u32, v: u32, m: u32) {
    (*acc).a += mix_a(u ^ (SEED_A + m * STEP_A));
    (*acc).b += mix_b(u ^ (SEED_B + m * STEP_B));
    if (u != v) {
        (*acc).changed = 1u;
        if (p.dtype == DT_F32) {
            add_steps(acc, steps(u, v, 0x80000000u));
        } else if (p.dtype != DT_F64) {
            add_steps(acc, steps(u & 0xffffu, v & 0xffffu, 0x8000u));
            add_steps(acc, steps(u >> 16u, v >> 16u, 0x8000u));
        }
    }
}

fn write_row(r: u32, acc: Acc) {
    let o = 6u * r;
    out[o] = acc.a;
    out[o + 1u] = acc.b;
    out[o + 2u] = acc.changed;
    out[o + 3u] = acc.linf;
    out[o + 4u] = acc.lo;
    out[o + 5u] = acc.hi;
}

var<workgroup> s_a: array<u32, 256>;
var<workgroup> s_b: array<u32, 256>;
var<workgroup> s_changed: array<u32, 256>;
var<workgroup> s_linf: array<u32, 256>;
var<workgroup> s_lo: array<u32, 256>;
var<workgroup> s_hi: array<u32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tpr = p.tpr;
    let lane = t % tpr;
    let r = (wg.y * nwg.x + wg.x) * (256u / tpr) + t / tpr;
    var acc = Acc(0u, 0u, 0u, 0u, 0u, 0u);
    if (r < p.rows) {
        let row0 = r * p.row_bytes;
        for (var m = lane; m < p.units; m += tpr) {
            absorb(&acc, cur_unit(row0, m), prev_unit(row0, m), m);
        }
    }
    if (tpr == 1u) {
        // One thread per row (what CPU adapters run best): nothing to combine.
        if (r < p.rows) {
            write_row(r, acc);
        }
        return;
    }
    s_a[t] = acc.a;
    s_b[t] = acc.b;
    s_changed[t] = acc.changed;
    s_linf[t] = acc.linf;
    s_lo[t] = acc.lo;
    s_hi[t] = acc.hi;
    workgroupBarrier();
    for (var s = tpr / 2u; s > 0u; s = s / 2u) {
        if (lane < s) {
            s_a[t] += s_a[t + s];
            s_b[t] += s_b[t + s];
            s_changed[t] |= s_changed[t + s];
            s_linf[t] = max(s_linf[t], s_linf[t + s]);
            let lo = s_lo[t] + s_lo[t + s];
            s_hi[t] += s_hi[t + s] + select(0u, 1u, lo < s_lo[t]);
            s_lo[t] = lo;
        }
        workgroupBarrier();
    }
    if (lane == 0u && r < p.rows) {
        write_row(r, Acc(s_a[t], s_b[t], s_changed[t], s_linf[t], s_lo[t], s_hi[t]));
    }
}
