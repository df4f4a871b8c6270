// column_sums: partial sums of each column over blocks of rows, for the centroid.
//
//   partial[b·cols + c] += Σ_{r in block b} x[r][c]      (f32; the host adds the
//   partials of all blocks in f64)
//
// One thread per column; neighbouring threads read neighbouring elements of
// the same row (coalesced). Workgroup (x, y) covers columns 256x.. and row
// block y. Partials accumulate across the streamed chunks of one survey.
//
// Bindings: 0 data (read), 1 params (uniform), 2 partial (read_write).

struct Params {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    dtype: u32,
    rows_per_block: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

fn element(off: u32) -> f32 {
    let w = off >> 2u;
    if (p.dtype == DT_F32) {
        return bitcast<f32>(data[w]);
    }
    if (p.dtype == DT_F64) {
        return f64_bits_to_f32(data[w], data[w + 1u]);
    }
    let h = (data[w] >> ((off & 2u) * 8u)) & 0xffffu;
    return half_to_f32(h, p.dtype);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.x * 256u + lid.x;
    if (c >= p.cols) {
        return;
    }
    let size = p.row_bytes / p.cols;
    let r0 = wg.y * p.rows_per_block;
    let r1 = min(r0 + p.rows_per_block, p.rows);
    var acc = 0.0;
    for (var r = r0; r < r1; r += 1u) {
        acc += element(r * p.row_bytes + c * size);
    }
    partial[wg.y * p.cols + c] += acc;
}
