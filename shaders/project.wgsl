// project: projections of rows onto p directions, as in src/engine/approx.rs:
//
//   out[r·p + k] = Σ_c u[k][c] · x̂[r][c]        (f32, any order)
//
// A workgroup of 256 threads owns 64 rows; thread t takes row t/4 and
// directions 4(t%4)..+3 of each group of 16 directions. Columns go in slabs
// of 16: 64 rows × 16 columns decoded from raw bits (neighbouring threads
// read neighbouring columns) and 16 directions × 16 columns, into workgroup
// memory. Rows are gathered on the host, `stride` words each (common.wgsl's
// col_word / col_value).
//
// Bindings: 0 rows (read), 1 directions: p × cols f32 (read), 2 params
// (uniform), 3 out (read_write).

struct Params {
    dtype: u32,
    cols: u32,
    stride: u32,
    p: u32,
    // Rows in this panel, and the index of its first one in `out`.
    rows: u32,
    first: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> dirs: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const BLOCK: u32 = 64u;
const SLAB: u32 = 16u;

var<workgroup> xs: array<f32, 1024>;
var<workgroup> us: array<f32, 256>;

fn x_value(r: u32, c: u32) -> f32 {
    let w = r * p.stride + col_word(p.dtype, c);
    var w1 = 0u;
    if (p.dtype == DT_F64) {
        w1 = data[w + 1u];
    }
    return col_value(p.dtype, c, data[w], w1);
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let r0 = (wg.y * nwg.x + wg.x) * BLOCK;
    if (r0 >= p.rows) {
        return;
    }
    let row = li / 4u;
    let part = li % 4u;
    for (var k0 = 0u; k0 < p.p; k0 += 16u) {
        var acc = vec4<f32>(0.0);
        for (var c0 = 0u; c0 < p.cols; c0 += SLAB) {
            for (var i = 0u; i < 4u; i += 1u) {
                let e = li + 256u * i;
                let r = e / SLAB;
                let c = c0 + e % SLAB;
                var v = 0.0;
                if (c < p.cols && r0 + r < p.rows) {
                    v = x_value(r0 + r, c);
                }
                xs[(e % SLAB) * BLOCK + r] = v;
            }
            // Direction k0 + li/16, column c0 + li%16.
            let k = k0 + li / SLAB;
            let c = c0 + li % SLAB;
            var u = 0.0;
            if (k < p.p && c < p.cols) {
                u = dirs[k * p.cols + c];
            }
            us[li] = u;
            workgroupBarrier();
            for (var kk = 0u; kk < SLAB; kk += 1u) {
                let x = xs[kk * BLOCK + row];
                let d = 4u * part;
                let uv = vec4<f32>(
                    us[d * SLAB + kk],
                    us[(d + 1u) * SLAB + kk],
                    us[(d + 2u) * SLAB + kk],
                    us[(d + 3u) * SLAB + kk],
                );
                acc += uv * x;
            }
            workgroupBarrier();
        }
        let r = r0 + row;
        let a = acc;
        if (r < p.rows) {
            for (var j = 0u; j < 4u; j += 1u) {
                let k = k0 + 4u * part + j;
                if (k < p.p) {
                    out[(p.first + r) * p.p + k] = a[j];
                }
            }
        }
    }
}
