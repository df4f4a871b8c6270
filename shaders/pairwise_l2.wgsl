// pairwise_l2: L2 distances between two tiles of representative rows.
//
//   out[i·tj + j] = sqrt(Σ_k (a[i][k] − b[j][k])²)
//
// Rows are f32, zero-padded to a multiple of 4 columns and read as vec4, with
// four partial sums per thread. One thread per (i, j) pair.
//
// Bindings: 0 a (read), 1 b (read), 2 params (uniform), 3 out (read_write).

struct Params {
    ti: u32,
    tj: u32,
    dv: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.y;
    let j = g.x;
    if (i >= p.ti || j >= p.tj) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < p.dv; k += 1u) {
        let d = a[i * p.dv + k] - b[j * p.dv + k];
        acc += d * d;
    }
    out[i * p.tj + j] = sqrt(acc.x + acc.y + acc.z + acc.w);
}
