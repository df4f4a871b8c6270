// column_sums: partial sums of each column over blocks of rows, for the centroid.
//
//   partial[b·cols + c] += Σ_{r in block b} x[r][c]      (f32; the host adds the
//   partials of all blocks in f64)
//
// One thread per column group: two neighbouring columns of a 2-byte dtype
// (one 32-bit word), one column otherwise, so neighbouring threads read
// neighbouring words of a row (coalesced). Each thread walks the rows of its
// block four at a time, the four loads issued before any is used, into four
// partial sums (each adds about rows_per_block/4 values). Workgroup (x, y)
// covers groups 256x.. and row block y. Partials accumulate across the
// streamed chunks of one survey.
//
// Bindings: 0 data (read), 1 params (uniform), 2 partial (read_write).

struct Params {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    dtype: u32,
    rows_per_block: u32,
    groups: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

// The one or two values of column group g in row r (the second is zero when
// the row has an odd number of 2-byte columns and g is the last group).
fn values(r: u32, g: u32) -> vec2<f32> {
    let row0 = r * p.row_bytes;
    if (p.dtype == DT_F32) {
        return vec2<f32>(bitcast<f32>(data[(row0 >> 2u) + g]), 0.0);
    }
    if (p.dtype == DT_F64) {
        let w = (row0 >> 2u) + 2u * g;
        return vec2<f32>(f64_bits_to_f32(data[w], data[w + 1u]), 0.0);
    }
    let off = row0 + 4u * g;
    let w = off >> 2u;
    var u = data[w];
    if ((off & 3u) != 0u) {
        u = (u >> 16u) | (data[w + 1u] << 16u);
    }
    let hi = select(half_to_f32(u >> 16u, p.dtype), 0.0, 2u * g + 1u >= p.cols);
    return vec2<f32>(half_to_f32(u & 0xffffu, p.dtype), hi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = wg.x * 256u + lid.x;
    if (g >= p.groups) {
        return;
    }
    let r0 = wg.y * p.rows_per_block;
    let r1 = min(r0 + p.rows_per_block, p.rows);
    var a0 = vec2<f32>(0.0);
    var a1 = vec2<f32>(0.0);
    var a2 = vec2<f32>(0.0);
    var a3 = vec2<f32>(0.0);
    var r = r0;
    while (r + 3u < r1) {
        let v0 = values(r, g);
        let v1 = values(r + 1u, g);
        let v2 = values(r + 2u, g);
        let v3 = values(r + 3u, g);
        a0 += v0;
        a1 += v1;
        a2 += v2;
        a3 += v3;
        r += 4u;
    }
    for (; r < r1; r += 1u) {
        a0 += values(r, g);
    }
    let s = (a0 + a1) + (a2 + a3);
    let base = wg.y * p.cols;
    if (p.dtype == DT_F16 || p.dtype == DT_BF16) {
        partial[base + 2u * g] += s.x;
        if (2u * g + 1u < p.cols) {
            partial[base + 2u * g + 1u] += s.y;
        }
    } else {
        partial[base + g] += s.x;
    }
}
