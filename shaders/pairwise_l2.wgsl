// pairwise_l2: L2 distances between two tiles of representative rows.
//
//   out[i·tj + j] = sqrt(Σ_c (a[i][c] − b[j][c])²)       (f32)
//
// Rows are raw bits gathered on the host, `stride` words each (common.wgsl's
// col_word / col_value decode them), with four partial sums per thread. One
// thread per (i, j) pair.
//
// Bindings: 0 a (read), 1 b (read), 2 params (uniform), 3 out (read_write).

struct Params {
    ti: u32,
    tj: u32,
    stride: u32,
    cols: u32,
    dtype: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn a_value(i: u32, c: u32) -> f32 {
    let w = i * p.stride + col_word(p.dtype, c);
    var w1 = 0u;
    if (p.dtype == DT_F64) {
        w1 = a[w + 1u];
    }
    return col_value(p.dtype, c, a[w], w1);
}

fn b_value(j: u32, c: u32) -> f32 {
    let w = j * p.stride + col_word(p.dtype, c);
    var w1 = 0u;
    if (p.dtype == DT_F64) {
        w1 = b[w + 1u];
    }
    return col_value(p.dtype, c, b[w], w1);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.y;
    let j = g.x;
    if (i >= p.ti || j >= p.tj) {
        return;
    }
    var acc = vec4<f32>(0.0);
    var c = 0u;
    while (c + 3u < p.cols) {
        let x = vec4<f32>(a_value(i, c), a_value(i, c + 1u), a_value(i, c + 2u), a_value(i, c + 3u));
        let y = vec4<f32>(b_value(j, c), b_value(j, c + 1u), b_value(j, c + 2u), b_value(j, c + 3u));
        let d = x - y;
        acc += d * d;
        c += 4u;
    }
    for (; c < p.cols; c += 1u) {
        let d = a_value(i, c) - b_value(j, c);
        acc.x += d * d;
    }
    out[i * p.tj + j] = sqrt((acc.x + acc.y) + (acc.z + acc.w));
}
