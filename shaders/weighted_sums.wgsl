// weighted_sums: per-block weighted column sums, in split-product arithmetic
// (src/engine/split.rs), for Xᵀw (power iteration, column and reference means):
//
//   partial[b·cols + c] = Σ_{r in block b, w_r ≠ 0} w_r · x[r][c]
//
// Blocks are `block_rows` consecutive rows of the whole matrix (a function of
// its shape only); the host adds the partials in f64 in block order. Each
// thread owns one column of one block and adds, row after row in order, the
// exact products hh, hl, lh, ll of w_r and x[r][c] (each split into a high
// half of 12 significant bits and a low half), each sum set to +0 below the
// smallest normal: the same sequence of correctly rounded f32 additions as on
// the CPU (src/engine/cpu/indicators.rs). A block cut by two streamed chunks
// resumes from the partial the first chunk stored, so the order is unchanged.
// Rows whose weight halves are both zero are skipped (they may hold NaN).
//
// Bindings: 0 rows of this chunk, `stride` words each (read), 1 weights:
// `total` high halves then `total` low halves (read), 2 params (uniform),
// 3 partial (read_write, zero at the start).

struct Params {
    dtype: u32,
    cols: u32,
    stride: u32,
    // Rows in this chunk, and the index of its first one in the matrix.
    rows: u32,
    first: u32,
    block_rows: u32,
    total: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

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
    let groups = (p.cols + 63u) / 64u;
    let wid = wg.y * nwg.x + wg.x;
    let c = (wid % groups) * 64u + li;
    let b = p.first / p.block_rows + wid / groups;
    let end = p.first + p.rows;
    if (c >= p.cols || b * p.block_rows >= end) {
        return;
    }
    let r0 = max(b * p.block_rows, p.first);
    let r1 = min((b + 1u) * p.block_rows, end);
    var acc = partial[b * p.cols + c];
    for (var r = r0; r < r1; r += 1u) {
        let wh = weights[r];
        let wl = weights[p.total + r];
        if (wh == 0.0 && wl == 0.0) {
            continue;
        }
        let x = flush_input(x_value(r - p.first, c));
        let xh = high(x);
        acc = add_product(acc, wh, wl, xh, x - xh);
    }
    partial[b * p.cols + c] = acc;
}
