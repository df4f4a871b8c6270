// row_dots: for every row x of a chunk, its dot products with p ≤ 3 vectors
// and its sum of squares, in split-product arithmetic (src/engine/split.rs):
//
//   out[(first + r)·w + k]     = Σ_c x[r][c] · u_k[c]      k < p
//   out[(first + r)·w + p]     = Σ_c x[r][c]²
//   out[(first + r)·w + p + 1] = Σ_c e[r][c]²,  e = x − centre rounded to f32
//                                (only when a centre is given; w = p + 1 + that)
//
// Every value x (decoded, then zero below 2^-40) and u (given as halves by the
// host) is split into a high half (top 12 significant bits) and a low half,
// and each output adds the exact products hh, hl, lh, ll of column 0, then of
// column 1, … one at a time, each sum set to +0 below the smallest normal.
// So each output is the same sequence of correctly rounded f32 additions of
// exact products as on the CPU (src/engine/cpu/indicators.rs), fused or not.
//
// A workgroup of 64 threads owns 64 rows, one thread a row. Columns go in
// slabs of 16: 64 rows × 16 columns decoded into workgroup memory (neighbouring
// threads read neighbouring columns), and the vectors' halves beside them.
// Rows are gathered on the host, `stride` words each (common.wgsl's
// col_word / col_value).
//
// Bindings: 0 rows (read), 1 vectors: p × cols high halves, then p × cols low
// halves, then the centre's cols values if any (read), 2 params (uniform),
// 3 out (read_write).

struct Params {
    dtype: u32,
    cols: u32,
    stride: u32,
    p: u32,
    // Rows in this chunk, and the index of its first one in `out`.
    rows: u32,
    first: u32,
    // 1 when a centre follows the vectors' halves.
    centre: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> vecs: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const BLOCK: u32 = 64u;
const SLAB: u32 = 16u;

var<workgroup> xs: array<f32, 1024>;
var<workgroup> uh: array<f32, 48>;
var<workgroup> ul: array<f32, 48>;
var<workgroup> cs: array<f32, 16>;

fn x_value(r: u32, c: u32) -> f32 {
    let w = r * p.stride + col_word(p.dtype, c);
    var w1 = 0u;
    if (p.dtype == DT_F64) {
        w1 = data[w + 1u];
    }
    return col_value(p.dtype, c, data[w], w1);
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let r0 = (wg.y * nwg.x + wg.x) * BLOCK;
    if (r0 >= p.rows) {
        return;
    }
    var acc = array<f32, 5>(0.0, 0.0, 0.0, 0.0, 0.0);
    let w = p.p + 1u + p.centre;
    for (var c0 = 0u; c0 < p.cols; c0 += SLAB) {
        for (var i = 0u; i < SLAB; i += 1u) {
            let e = li + BLOCK * i;
            let r = e / SLAB;
            let c = c0 + e % SLAB;
            var v = 0.0;
            if (c < p.cols && r0 + r < p.rows) {
                v = flush_input(x_value(r0 + r, c));
            }
            xs[(e % SLAB) * BLOCK + r] = v;
        }
        if (li < 48u) {
            let k = li / SLAB;
            let c = c0 + li % SLAB;
            var h = 0.0;
            var l = 0.0;
            if (k < p.p && c < p.cols) {
                h = vecs[k * p.cols + c];
                l = vecs[(p.p + k) * p.cols + c];
            }
            uh[li] = h;
            ul[li] = l;
        }
        if (li >= 48u && p.centre != 0u) {
            let c = c0 + li - 48u;
            var v = 0.0;
            if (c < p.cols) {
                v = vecs[2u * p.p * p.cols + c];
            }
            cs[li - 48u] = v;
        }
        workgroupBarrier();
        let n = min(SLAB, p.cols - c0);
        for (var kk = 0u; kk < n; kk += 1u) {
            let x = xs[kk * BLOCK + li];
            let xh = high(x);
            let xl = x - xh;
            for (var k = 0u; k < p.p; k += 1u) {
                acc[k] = add_product(acc[k], xh, xl, uh[k * SLAB + kk], ul[k * SLAB + kk]);
            }
            acc[p.p] = add_product(acc[p.p], xh, xl, xh, xl);
            if (p.centre != 0u) {
                let e = flush_input(x - cs[kk]);
                let eh = high(e);
                let el = e - eh;
                acc[p.p + 1u] = add_product(acc[p.p + 1u], eh, el, eh, el);
            }
        }
        workgroupBarrier();
    }
    let r = r0 + li;
    if (r < p.rows) {
        for (var k = 0u; k < w; k += 1u) {
            out[(p.first + r) * w + k] = acc[k];
        }
    }
}
