//! The CPU side of the direct-form all-pairs kernels ([`crate::approx`]):
//! rows decoded to zero-padded f32 a block at a time (the scratch stays
//! within an eighth of the matrix's stored bytes), distances from direct
//! differences in eight f32 lanes (AVX2 + FMA where the CPU has them), four
//! queries against one target at a time so each target row is loaded once
//! per four queries.

use rayon::prelude::*;

use crate::engine::{Top2, VectorSet};
use crate::matrix::Matrix;
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
fn dist4<const FUSED: bool>(q: [&[f32]; 4], t: &[f32]) -> [f32; 4] {
    let mut acc = [[0f32; LANES]; 4];
    for (c, tv) in t.chunks_exact(LANES).enumerate() {
        let base = c * LANES;
        for r in 0..4 {
            let qv = &q[r][base..base + LANES];
            for l in 0..LANES {
                let d = qv[l] - tv[l];
                acc[r][l] = if FUSED {
                    d.mul_add(d, acc[r][l])
                } else {
                    acc[r][l] + d * d
                };
            }
        }
    }
    acc.map(hsum)
}

/// Σ u_r,c · x_c for four directions against one row.
#[inline(always)]
fn dot4<const FUSED: bool>(u: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    let mut acc = [[0f32; LANES]; 4];
    for (c, xv) in x.chunks_exact(LANES).enumerate() {
        let base = c * LANES;
        for r in 0..4 {
            let uv = &u[r][base..base + LANES];
            for l in 0..LANES {
                acc[r][l] = if FUSED {
                    uv[l].mul_add(xv[l], acc[r][l])
                } else {
                    acc[r][l] + uv[l] * xv[l]
                };
            }
        }
    }
    acc.map(hsum)
}

#[inline(always)]
fn hsum(a: [f32; LANES]) -> f32 {
    let h = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (h[0] + h[2]) + (h[1] + h[3])
}

/// `out[j]` = the four rows' D̃² to the j-th row of `targets` (rows of
/// `width` values), or with `DOT` their dot products.
#[inline(always)]
fn block<const FUSED: bool, const DOT: bool>(
    q: [&[f32]; 4],
    targets: &[f32],
    width: usize,
    out: &mut [[f32; 4]],
) {
    for (t, o) in targets.chunks_exact(width).zip(out) {
        *o = if DOT {
            dot4::<FUSED>(q, t)
        } else {
            dist4::<FUSED>(q, t)
        };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const DOT: bool>(
    q: [&[f32]; 4],
    targets: &[f32],
    width: usize,
    out: &mut [[f32; 4]],
) {
    if DOT {
        return block::<true, true>(q, targets, width, out);
    }
    // Distances two targets at a time with explicit intrinsics: eight
    // accumulators, six loads per 64 column pairs (the portable loop left
    // the compiler bounds checks and spills, at a tenth of this speed).
    let n = targets.len() / width;
    out[..n].iter_mut().for_each(|o| *o = [0.0; 4]);
    // Columns in chunks, so that the four query chunks stay in L1 and the
    // block's target chunks in L2 while every target passes by.
    for c0 in (0..width).step_by(COLUMN_CHUNK) {
        let c1 = (c0 + COLUMN_CHUNK).min(width);
        let qc = q.map(|r| &r[c0..c1]);
        let mut t = 0;
        while t + 2 <= n {
            let pair = &targets[t * width..(t + 2) * width];
            let (a, b) = simd::dist4x2(qc, &pair[c0..], c1 - c0, width);
            for k in 0..4 {
                out[t][k] += a[k];
                out[t + 1][k] += b[k];
            }
            t += 2;
        }
        if t < n {
            let last = &targets[t * width..(t + 1) * width];
            let a = dist4::<true>(qc, &last[c0..c1]);
            for k in 0..4 {
                out[t][k] += a[k];
            }
        }
    }
}

/// Columns per pass of the AVX2 distance kernel (8 KiB of four f32 query rows).
const COLUMN_CHUNK: usize = 512;

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// Σ(q_r − t_j)² over `len` columns (a multiple of 8) for four query
    /// rows and two target rows, the second `stride` values after the first.
    ///
    /// # Safety
    /// AVX2 and FMA must be present; the rows hold `len` values.
    #[inline(always)]
    pub unsafe fn dist4x2(
        q: [&[f32]; 4],
        t: &[f32],
        len: usize,
        stride: usize,
    ) -> ([f32; 4], [f32; 4]) {
        debug_assert!(q.iter().all(|r| r.len() >= len) && t.len() >= stride + len);
        let width = len;
        let (t0, t1) = (t.as_ptr(), t.as_ptr().add(stride));
        let qp = q.map(|r| r.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut c = 0;
        while c < width {
            let x = _mm256_loadu_ps(t0.add(c));
            let y = _mm256_loadu_ps(t1.add(c));
            for r in 0..4 {
                let v = _mm256_loadu_ps(qp[r].add(c));
                let d = _mm256_sub_ps(v, x);
                acc[r] = _mm256_fmadd_ps(d, d, acc[r]);
                let e = _mm256_sub_ps(v, y);
                acc[4 + r] = _mm256_fmadd_ps(e, e, acc[4 + r]);
            }
            c += 8;
        }
        (
            [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])],
            [hsum(acc[4]), hsum(acc[5]), hsum(acc[6]), hsum(acc[7])],
        )
    }
}

/// [`block`] compiled for AVX2 + FMA where the CPU has them (its
/// `#[inline(always)]` body is compiled inside the feature-enabled function;
/// a closure handed to such a function would not be, and its `mul_add`
/// would become a libm call).
fn run_block<const DOT: bool>(q: [&[f32]; 4], targets: &[f32], width: usize, out: &mut [[f32; 4]]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { block_avx2::<DOT>(q, targets, width, out) };
    }
    block::<false, DOT>(q, targets, width, out)
}

/// Targets per call of [`run_block`]: distances land in a small buffer.
const TARGETS_PER_BLOCK: usize = 64;

/// Queries per rayon task: four at a time, several fours per task.
const QUERIES_PER_TASK: usize = 64;

/// Scratch the direct-form sweeps may hold at once: an eighth of the
/// matrix's stored bytes, or 1 MiB for small matrices (half for decoded
/// queries, half for a block of decoded targets).
fn sweep_budget(m: &Matrix) -> usize {
    (m.bytes.len() / 8).max(1 << 20)
}

/// Runs `visit(state, k, target, d̃²)` for the k-th query of a block against
/// every target of another label, in parallel over blocks of queries (each
/// with the state `init(first query's position, block)` makes), and returns
/// the blocks' states in order. Queries are decoded a chunk at a time and
/// the targets stream past each chunk in decoded blocks, so the scratch
/// stays within [`sweep_budget`] whatever the set's size.
fn sweep<T: Send>(
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    progress: &Progress,
    init: impl Fn(usize, &[u32]) -> T + Sync,
    visit: impl Fn(&mut T, usize, u32, f32) + Sync,
) -> Vec<T> {
    let n = set.rows.len();
    let row_bytes = m.row_bytes() as u64;
    let width = m.cols.div_ceil(LANES) * LANES;
    let rows_in = |bytes: usize| (bytes / (width * 4).max(1)).max(QUERIES_PER_TASK);
    let q_chunk = rows_in(sweep_budget(m) / 2).div_ceil(QUERIES_PER_TASK) * QUERIES_PER_TASK;
    let t_block = rows_in(sweep_budget(m) / 2).div_ceil(TARGETS_PER_BLOCK) * TARGETS_PER_BLOCK;
    let mut states = Vec::with_capacity(queries.len().div_ceil(QUERIES_PER_TASK));
    for (c, chunk) in queries.chunks(q_chunk).enumerate() {
        let q_rows: Vec<usize> = chunk.iter().map(|&q| set.rows[q as usize]).collect();
        let qdec = Decoded::new(m, &q_rows);
        let mut blocks: Vec<(T, usize, &[u32])> = chunk
            .chunks(QUERIES_PER_TASK)
            .enumerate()
            .map(|(b, block)| {
                let first = c * q_chunk + b * QUERIES_PER_TASK;
                (init(first, block), b * QUERIES_PER_TASK, block)
            })
            .collect();
        for t_start in (0..n).step_by(t_block) {
            // An interrupted sweep stops here; the engine then reports it.
            if progress.interrupted() {
                break;
            }
            let t_end = (t_start + t_block).min(n);
            let tdec = Decoded::new(m, &set.rows[t_start..t_end]);
            blocks.par_iter_mut().for_each(|(state, offset, block)| {
                let quads: Vec<([&[f32]; 4], [u32; 4])> = block
                    .chunks(4)
                    .enumerate()
                    .map(|(k4, quad)| {
                        let qi: [usize; 4] =
                            std::array::from_fn(|k| k4 * 4 + k.min(quad.len() - 1));
                        (
                            qi.map(|i| qdec.row(*offset + i)),
                            qi.map(|i| set.labels[block[i] as usize]),
                        )
                    })
                    .collect();
                let mut out = [[0f32; 4]; TARGETS_PER_BLOCK];
                let w = tdec.width;
                // Targets outside, quads inside: a block of targets is read
                // from memory once for all the task's queries, then served
                // from cache.
                for t0 in (0..t_end - t_start).step_by(TARGETS_PER_BLOCK) {
                    let t1 = (t0 + TARGETS_PER_BLOCK).min(t_end - t_start);
                    for (b4, (q, labels)) in quads.iter().enumerate() {
                        let len = 4.min(block.len() - b4 * 4);
                        run_block::<false>(*q, &tdec.values[t0 * w..t1 * w], w, &mut out);
                        for (t, d) in (t_start + t0..t_start + t1).zip(&out) {
                            for k in 0..len {
                                if set.labels[t] != labels[k] {
                                    visit(state, b4 * 4 + k, t as u32, d[k]);
                                }
                            }
                        }
                    }
                }
                progress.inc(block.len() as u64 * (t_end - t_start) as u64 * row_bytes);
            });
        }
        states.extend(blocks.into_iter().map(|(state, _, _)| state));
    }
    states
}

pub fn nearest_approx(
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    progress: &Progress,
) -> Vec<Top2> {
    sweep(
        m,
        set,
        queries,
        progress,
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
    sweep(
        m,
        set,
        queries,
        progress,
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

/// Rows projected per task: one packed product of this many rows by the
/// directions (2.6 MB of f32 scratch for 2,560 columns).
const PROJECT_ROWS: usize = 256;

/// The rows' projections onto `directions`, streamed: each task decodes a
/// block of rows into scratch of its own and multiplies it by the
/// directions with the packed product of [`super::matmul`] (any order of
/// accumulation, within [`crate::approx::ErrorModel::projection_error`]),
/// so the set is never held decoded as a whole.
pub fn project(m: &Matrix, rows: &[usize], directions: &[f32]) -> Vec<f32> {
    let d = m.cols;
    let p = directions.len() / d.max(1);
    let mut out = vec![0f32; rows.len() * p];
    if p == 0 || d == 0 {
        return out;
    }
    out.par_chunks_mut(p * PROJECT_ROWS)
        .zip(rows.par_chunks(PROJECT_ROWS))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(x, c), (o, chunk)| {
                super::matmul::decode(m, chunk.iter().copied(), x);
                super::matmul::products(x, &directions[..p * d], d, c);
                o.copy_from_slice(c);
            },
        );
    out
}
