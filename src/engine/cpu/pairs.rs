//! The CPU side of the all-pairs kernels ([`crate::engine::approx`]): rows
//! decoded once to zero-padded f32, distances from direct differences in
//! eight f32 lanes (AVX2 + FMA where the CPU has them), four queries against
//! one target at a time so each target row is loaded once per four queries.

use rayon::prelude::*;

use crate::engine::{Top2, VectorSet};
use crate::load::Matrix;
use crate::progress::Progress;

/// Lanes per accumulator: one AVX register of f32.
const LANES: usize = 8;

/// Rows decoded to f32, each padded with zeros to a multiple of [`LANES`].
pub struct Decoded {
    pub width: usize,
    pub values: Vec<f32>,
}

impl Decoded {
    pub fn new(m: &Matrix, rows: &[usize]) -> Self {
        let width = m.cols.div_ceil(LANES) * LANES;
        let mut values = vec![0f32; rows.len() * width];
        values
            .par_chunks_mut(width)
            .zip(rows.par_iter())
            .for_each(|(dst, &r)| {
                let s = m.dtype.size();
                for (d, b) in dst.iter_mut().zip(m.row(r).chunks_exact(s)) {
                    *d = m.dtype.decode(b) as f32;
                }
            });
        Self { width, values }
    }

    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// Σ (q_r − t)² for four query rows against one target, in f32 lanes.
#[inline(always)]
fn dist4(q: [&[f32]; 4], t: &[f32], fused: bool) -> [f32; 4] {
    let mut acc = [[0f32; LANES]; 4];
    for (c, tv) in t.chunks_exact(LANES).enumerate() {
        let base = c * LANES;
        for r in 0..4 {
            let qv = &q[r][base..base + LANES];
            for l in 0..LANES {
                let d = qv[l] - tv[l];
                acc[r][l] = if fused {
                    d.mul_add(d, acc[r][l])
                } else {
                    acc[r][l] + d * d
                };
            }
        }
    }
    acc.map(|a| {
        let h = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
        (h[0] + h[2]) + (h[1] + h[3])
    })
}

/// Σ u_c x_c for one row against four directions.
#[inline(always)]
fn dot4(u: [&[f32]; 4], x: &[f32], fused: bool) -> [f32; 4] {
    let mut acc = [[0f32; LANES]; 4];
    for (c, xv) in x.chunks_exact(LANES).enumerate() {
        let base = c * LANES;
        for r in 0..4 {
            let uv = &u[r][base..base + LANES];
            for l in 0..LANES {
                acc[r][l] = if fused {
                    uv[l].mul_add(xv[l], acc[r][l])
                } else {
                    acc[r][l] + uv[l] * xv[l]
                };
            }
        }
    }
    acc.map(|a| {
        let h = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
        (h[0] + h[2]) + (h[1] + h[3])
    })
}

/// Calls `f(fused)` compiled for AVX2 + FMA where the CPU has them.
#[inline(always)]
fn with_simd<R>(f: impl FnOnce(bool) -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce(bool) -> R) -> R {
            f(true)
        }
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { avx2(f) };
    }
    f(false)
}

/// Queries per rayon task: four at a time, several fours per task.
const QUERIES_PER_TASK: usize = 16;

/// Runs `visit(state, k, target, d̃²)` for the k-th query of a block against
/// every target of another label, in parallel over blocks of queries (each
/// with the state `init(first query's position, block)` makes), and returns
/// the blocks' states in order.
fn sweep<T: Send>(
    dec: &Decoded,
    set: VectorSet,
    queries: &[u32],
    progress: &Progress,
    row_bytes: u64,
    init: impl Fn(usize, &[u32]) -> T + Sync,
    visit: impl Fn(&mut T, usize, u32, f32) + Sync,
) -> Vec<T> {
    let n = set.rows.len();
    queries
        .par_chunks(QUERIES_PER_TASK)
        .enumerate()
        .map(|(b, block)| {
            let mut state = init(b * QUERIES_PER_TASK, block);
            for (b4, quad) in block.chunks(4).enumerate() {
                let qi: [usize; 4] = std::array::from_fn(|k| quad[k.min(quad.len() - 1)] as usize);
                let q = qi.map(|i| dec.row(i));
                let labels = qi.map(|i| set.labels[i]);
                with_simd(|fused| {
                    for t in 0..n {
                        let d = dist4(q, dec.row(t), fused);
                        for k in 0..quad.len() {
                            if set.labels[t] != labels[k] {
                                visit(&mut state, b4 * 4 + k, t as u32, d[k]);
                            }
                        }
                    }
                });
            }
            progress.inc(block.len() as u64 * n as u64 * row_bytes);
            state
        })
        .collect()
}

pub fn nearest_approx(
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    progress: &Progress,
) -> Vec<Top2> {
    let dec = Decoded::new(m, set.rows);
    sweep(
        &dec,
        set,
        queries,
        progress,
        m.row_bytes() as u64,
        |_, block| vec![Top2::EMPTY; block.len()],
        |tops, k, t, d| tops[k].push(d, t),
    )
    .into_iter()
    .flatten()
    .collect()
}

pub fn pairs_within(
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    thresholds: &[f32],
    progress: &Progress,
) -> Vec<(u32, u32)> {
    let dec = Decoded::new(m, set.rows);
    sweep(
        &dec,
        set,
        queries,
        progress,
        m.row_bytes() as u64,
        |start, _| (start, Vec::new()),
        |(start, out): &mut (usize, Vec<(u32, u32)>), k, t, d| {
            if d <= thresholds[*start + k] {
                out.push((queries[*start + k], t));
            }
        },
    )
    .into_iter()
    .flat_map(|(_, v)| v)
    .collect()
}

pub fn project(m: &Matrix, rows: &[usize], directions: &[f32]) -> Vec<f32> {
    let d = m.cols;
    let p = directions.len() / d.max(1);
    let dec = Decoded::new(m, rows);
    let w = dec.width;
    // Directions padded like the rows, in whole fours (missing ones zero).
    let mut dirs = vec![0f32; p.div_ceil(4) * 4 * w];
    for k in 0..p {
        dirs[k * w..k * w + d].copy_from_slice(&directions[k * d..(k + 1) * d]);
    }
    let mut out = vec![0f32; rows.len() * p];
    out.par_chunks_mut(p.max(1)).enumerate().for_each(|(i, o)| {
        let x = dec.row(i);
        with_simd(|fused| {
            for k0 in (0..p).step_by(4) {
                let u = std::array::from_fn(|j| &dirs[(k0 + j) * w..(k0 + j + 1) * w]);
                let v = dot4(u, x, fused);
                let n = 4.min(p - k0);
                o[k0..k0 + n].copy_from_slice(&v[..n]);
            }
        })
    });
    out
}
