// nearest: approximate squared L2 distances from each query to every target of
// another label, as in src/engine/approx.rs:
//
//   d̃²(q, t) = Σ_c (q̂_c − t̂_c)²        (f32, direct differences)
//
// mode 0 keeps, per query, the two smallest (best, its target, second: the
// smallest over the other targets; NaN never counts) and merges them into
// `tops`, which earlier dispatches over other targets filled; mode 1 appends
// every (query, target) with d̃² ≤ the query's threshold to `pairs`.
//
// A workgroup of 16×16 threads owns a block of 64 queries. It walks the
// dispatch's targets in blocks of 64 and the columns in slabs of 16: each
// slab of the 64 queries and the 64 targets is decoded from raw bits into
// workgroup memory (neighbouring threads read neighbouring columns), then
// thread (x, y) adds up queries 4y..4y+3 against targets 4x..4x+3 in sixteen
// registers. Per query, the 16 threads sharing it reduce their Top2 through
// workgroup memory at the end. Rows are gathered on the host, `stride`
// words each (common.wgsl's col_word / col_value).
//
// Bindings: 0 query rows (read), 1 target rows (read), 2 labels per set index
// (read), 3 per query: (set index, threshold bits) (read), 4 params (uniform),
// 5 tops per split and query: (best bits, best index, second bits, 0) (read_write),
// 6 pairs (read_write), 7 pair counter (read_write).

struct Params {
    dtype: u32,
    cols: u32,
    stride: u32,
    mode: u32,
    // Queries in this panel, and the index of its first one in `info` / `tops`.
    q_count: u32,
    q_first: u32,
    // Target rows [t_begin, t_end) of the panel in this dispatch, and the set
    // index of the panel's first row.
    t_begin: u32,
    t_end: u32,
    t_first: u32,
    // Room in `pairs`.
    cap: u32,
    // +∞ (WGSL has no infinite literal).
    inf: f32,
    // Queries in all panels: the size of one split's slice of `tops`.
    q_total: u32,
}

@group(0) @binding(0) var<storage, read> qdata: array<u32>;
@group(0) @binding(1) var<storage, read> tdata: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> info: array<vec2<u32>>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> tops: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read_write> count: array<atomic<u32>>;

const BLOCK: u32 = 64u;
const SLAB: u32 = 16u;
const NONE: u32 = 0xffffffffu;

// Slabs [column][row], four rows to a vec4 so the inner loop reads each
// thread's four queries and four targets with one 16-byte load apiece;
// reused for the final reduction ([query][thread]).
var<workgroup> qs: array<vec4<f32>, 256>;
var<workgroup> ts: array<vec4<f32>, 256>;
var<workgroup> red_index: array<u32, 1024>;

fn q_value(r: u32, c: u32) -> f32 {
    let w = r * p.stride + col_word(p.dtype, c);
    var w1 = 0u;
    if (p.dtype == DT_F64) {
        w1 = qdata[w + 1u];
    }
    return col_value(p.dtype, c, qdata[w], w1);
}

fn t_value(r: u32, c: u32) -> f32 {
    let w = r * p.stride + col_word(p.dtype, c);
    var w1 = 0u;
    if (p.dtype == DT_F64) {
        w1 = tdata[w + 1u];
    }
    return col_value(p.dtype, c, tdata[w], w1);
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// The two smallest distances seen, as Top2 in src/engine/mod.rs.
struct Top2 {
    best: f32,
    index: u32,
    second: f32,
}

// `t` with one more target taken into account.
fn push(t: Top2, d: f32, index: u32) -> Top2 {
    if (!is_nan(d) && (d < t.best || t.index == NONE)) {
        return Top2(d, index, t.best);
    }
    if (d < t.second) {
        return Top2(t.best, t.index, d);
    }
    return t;
}

// `t` combined with `o`, a Top2 over other targets.
fn merge(t: Top2, o: Top2) -> Top2 {
    if (o.index == NONE) {
        return t;
    }
    var r = push(t, o.best, o.index);
    if (o.second < r.second) {
        r.second = o.second;
    }
    return r;
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let q0 = (wg.y * nwg.x + wg.x) * BLOCK;
    if (q0 >= p.q_count) {
        return;
    }
    // This thread's four queries: set index, label, threshold, whether real.
    var q_set: array<u32, 4>;
    var q_label: array<u32, 4>;
    var q_thr: array<f32, 4>;
    var q_ok: array<bool, 4>;
    var top: array<Top2, 4>;
    for (var i = 0u; i < 4u; i += 1u) {
        let q = q0 + 4u * lid.y + i;
        q_ok[i] = q < p.q_count;
        top[i] = Top2(p.inf, NONE, p.inf);
        if (q_ok[i]) {
            let qi = info[p.q_first + q];
            q_set[i] = qi.x;
            q_label[i] = labels[qi.x];
            q_thr[i] = bitcast<f32>(qi.y);
        }
    }
    // Split z of the grid takes its share of the dispatch's target blocks,
    // and keeps its Top2 in its own slice of `tops`.
    let blocks = (p.t_end - p.t_begin + BLOCK - 1u) / BLOCK;
    let per_split = (blocks + nwg.z - 1u) / nwg.z;
    let t_lo = min(p.t_end, p.t_begin + wg.z * per_split * BLOCK);
    let t_hi = min(p.t_end, t_lo + per_split * BLOCK);
    for (var tb = t_lo; tb < t_hi; tb += BLOCK) {
        // Four accumulators named, not an array: a dynamically indexed
        // function array may live in local memory instead of registers.
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        for (var c0 = 0u; c0 < p.cols; c0 += SLAB) {
            for (var i = 0u; i < 4u; i += 1u) {
                let e = li + 256u * i;
                let r = e / SLAB;
                let k = e % SLAB;
                let c = c0 + k;
                var qv = 0.0;
                if (c < p.cols && q0 + r < p.q_count) {
                    qv = q_value(q0 + r, c);
                }
                var tv = 0.0;
                if (c < p.cols && tb + r < t_hi) {
                    tv = t_value(tb + r, c);
                }
                let slot = k * BLOCK + r;
                qs[slot >> 2u][slot & 3u] = qv;
                ts[slot >> 2u][slot & 3u] = tv;
            }
            workgroupBarrier();
            for (var k = 0u; k < SLAB; k += 1u) {
                let qv = qs[k * (BLOCK / 4u) + lid.y];
                let tv = ts[k * (BLOCK / 4u) + lid.x];
                let d0 = tv - vec4<f32>(qv.x);
                let d1 = tv - vec4<f32>(qv.y);
                let d2 = tv - vec4<f32>(qv.z);
                let d3 = tv - vec4<f32>(qv.w);
                a0 = fma(d0, d0, a0);
                a1 = fma(d1, d1, a1);
                a2 = fma(d2, d2, a2);
                a3 = fma(d3, d3, a3);
            }
            workgroupBarrier();
        }
        let acc = array<vec4<f32>, 4>(a0, a1, a2, a3);
        for (var j = 0u; j < 4u; j += 1u) {
            let t = tb + 4u * lid.x + j;
            if (t < t_hi) {
                let t_set = p.t_first + t;
                let t_label = labels[t_set];
                for (var i = 0u; i < 4u; i += 1u) {
                    let a = acc[i];
                    let d = a[j];
                    if (q_ok[i] && q_label[i] != t_label) {
                        if (p.mode == 0u) {
                            top[i] = push(top[i], d, t_set);
                        } else if (d <= q_thr[i]) {
                            let slot = atomicAdd(&count[0], 1u);
                            if (slot < p.cap) {
                                pairs[slot] = vec2<u32>(q_set[i], t_set);
                            }
                        }
                    }
                }
            }
        }
    }
    if (p.mode != 0u) {
        return;
    }
    // Reduce over the 16 threads sharing each query: [query][thread].
    for (var i = 0u; i < 4u; i += 1u) {
        let s = (4u * lid.y + i) * 16u + lid.x;
        let t = top[i];
        qs[s >> 2u][s & 3u] = t.best;
        ts[s >> 2u][s & 3u] = t.second;
        red_index[s] = t.index;
    }
    workgroupBarrier();
    if (li < BLOCK && q0 + li < p.q_count) {
        let g = wg.z * p.q_total + p.q_first + q0 + li;
        let prev = tops[g];
        var t = Top2(bitcast<f32>(prev.x), prev.y, bitcast<f32>(prev.z));
        for (var k = 0u; k < 16u; k += 1u) {
            let s = li * 16u + k;
            t = merge(t, Top2(qs[s >> 2u][s & 3u], red_index[s], ts[s >> 2u][s & 3u]));
        }
        tops[g] = vec4<u32>(bitcast<u32>(t.best), t.index, bitcast<u32>(t.second), 0u);
    }
}
