//! The CPU engine: one pass over the rows with rayon, each row hashed, its norm
//! and NaN flag taken, and its values added to per-thread column sums.
//! Norms and sums accumulate in f64: this is the reference the GPU is checked against.

pub(crate) mod indicators;
mod matmul;
mod pairs;
pub(crate) mod steps;

use rayon::prelude::*;

use super::hash;
use super::{
    Candidates, DeviceInfo, DeviceKind, Engine, Equality, RowStats, StepDiffer, Top2, VectorSet,
};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::progress::Progress;

/// The rayon engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

impl CpuEngine {
    pub fn new() -> Self {
        Self
    }
}

/// Rows handed to one rayon task: about 256 KiB of input.
fn rows_per_task(row_bytes: usize) -> usize {
    ((256 << 10) / row_bytes.max(1)).clamp(1, 4096)
}

impl Engine for CpuEngine {
    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Cpu,
            adapter: format!("CPU ({} threads)", rayon::current_num_threads()),
            backend: "rayon".into(),
        }
    }

    fn row_stats(&self, m: &Matrix, eq: Equality, progress: &Progress) -> Result<RowStats> {
        let n = m.rows;
        let d = m.cols;
        let rb = m.row_bytes();
        let per_task = rows_per_task(rb);
        let mut hashes = vec![0u64; n];
        let mut norms = vec![0f64; n];
        let mut has_nan = vec![false; n];
        let units = hash::units(rb);
        let column_sums = hashes
            .par_chunks_mut(per_task)
            .zip(norms.par_chunks_mut(per_task))
            .zip(has_nan.par_chunks_mut(per_task))
            .enumerate()
            .fold(
                || (vec![0f64; d], Vec::new()),
                |(mut sums, mut scratch), (t, ((h, nr), nan))| {
                    let rows = RowBlock {
                        m,
                        first: t * per_task,
                        eq,
                        units,
                    };
                    rows.run(Outputs {
                        hashes: h,
                        norms: nr,
                        has_nan: nan,
                        sums: &mut sums,
                        scratch: &mut scratch,
                    });
                    progress.inc((h.len() * rb) as u64);
                    (sums, scratch)
                },
            )
            .map(|(sums, _)| sums)
            .reduce(
                || vec![0f64; d],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        Ok(RowStats {
            hashes,
            norms,
            has_nan,
            column_sums,
        })
    }

    fn pairwise_l2(&self, m: &Matrix, rows: &[usize]) -> Result<Vec<f64>> {
        let decoded: Vec<Vec<f64>> = rows.iter().map(|&r| m.row_f64(r)).collect();
        let per_i: Vec<Vec<f64>> = (0..decoded.len())
            .into_par_iter()
            .map(|i| {
                decoded[i + 1..]
                    .iter()
                    .map(|b| {
                        decoded[i]
                            .iter()
                            .zip(b)
                            .map(|(x, y)| (x - y) * (x - y))
                            .sum::<f64>()
                            .sqrt()
                    })
                    .collect()
            })
            .collect();
        Ok(per_i.into_iter().flatten().collect())
    }

    fn nearest_approx(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        progress: &Progress,
    ) -> Result<Vec<Top2>> {
        let out = pairs::nearest_approx(m, set, queries, progress);
        progress.check()?;
        Ok(out)
    }

    fn nearest_candidates(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        progress: &Progress,
    ) -> Result<Option<Candidates>> {
        let out = matmul::nearest_candidates(m, set, queries, progress);
        progress.check()?;
        Ok(Some(out))
    }

    fn pairs_within(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        thresholds: &[f32],
        progress: &Progress,
    ) -> Result<Vec<(u32, u32)>> {
        let out = pairs::pairs_within(m, set, queries, thresholds, progress);
        progress.check()?;
        Ok(out)
    }

    fn project(&self, m: &Matrix, rows: &[usize], directions: &[f32]) -> Result<Vec<f32>> {
        Ok(pairs::project(m, rows, directions))
    }

    fn row_dots(
        &self,
        m: &Matrix,
        vectors: &[super::split::Split],
        centre: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        Ok(indicators::row_dots(m, vectors, centre))
    }

    fn weighted_column_sums(&self, m: &Matrix, weights: &super::split::Split) -> Result<Vec<f32>> {
        Ok(indicators::weighted_column_sums(m, weights))
    }

    fn step_differ(
        &self,
        dtype: Dtype,
        rows: usize,
        cols: usize,
    ) -> Result<Box<dyn StepDiffer + Send>> {
        Ok(Box::new(steps::CpuStepDiffer::new(dtype, rows, cols)))
    }
}

/// One rayon task's rows, processed with the widest SIMD the CPU has.
struct RowBlock<'a, 'm> {
    m: &'a Matrix<'m>,
    first: usize,
    eq: Equality,
    units: u32,
}

/// Per-row outputs of one task.
struct Outputs<'o> {
    hashes: &'o mut [u64],
    norms: &'o mut [f64],
    has_nan: &'o mut [bool],
    sums: &'o mut [f64],
    scratch: &'o mut Vec<u8>,
}

impl RowBlock<'_, '_> {
    fn run(&self, out: Outputs) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { self.run_avx2(out) };
        }
        let dtype = self.m.dtype;
        self.rows(
            out,
            hash::lanes,
            |rows, sums| rows.map(|r| accumulate_row(dtype, r, sums)),
            |r, sums| accumulate_row(dtype, r, sums),
        )
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run_avx2(&self, out: Outputs) {
        let dtype = self.m.dtype;
        // SAFETY: this function only runs where AVX2, FMA and F16C are present.
        self.rows(
            out,
            |r| unsafe { hash::lanes_avx2(r) },
            |rows, sums| unsafe { simd::accumulate_avx2(dtype, rows, sums) },
            |r, sums| unsafe { simd::accumulate_avx2(dtype, [r], sums)[0] },
        )
    }

    /// Inlined into each caller, so it is compiled for each one's features.
    /// `accumulate` adds four rows to the column sums and returns their Σx².
    #[inline(always)]
    fn rows(
        &self,
        out: Outputs,
        lanes: impl Fn(&[u8]) -> hash::Lanes,
        accumulate: impl Fn([&[u8]; 4], &mut [f64]) -> [f64; 4],
        accumulate_one: impl Fn(&[u8], &mut [f64]) -> f64,
    ) {
        let n = out.hashes.len();
        let row = |k: usize| self.m.row(self.first + k);
        let mut k = 0;
        while k < n {
            let take = if k + 4 <= n { 4 } else { 1 };
            if take == 4 {
                let sq = accumulate([row(k), row(k + 1), row(k + 2), row(k + 3)], out.sums);
                out.norms[k..k + 4].copy_from_slice(&sq);
            } else {
                out.norms[k] = accumulate_one(row(k), out.sums);
            }
            // Hash the rows while they are still in L1.
            for j in k..k + take {
                let sq = out.norms[j];
                out.has_nan[j] = sq.is_nan();
                out.norms[j] = if sq.is_infinite() || sq < TINY_SUM_OF_SQUARES {
                    // f32 squares overflowed or underflowed (|x| above ~1.8e19
                    // or below ~1e-19): take the rare exact path.
                    self.m.exact_norm(self.first + j)
                } else {
                    sq.sqrt()
                };
                out.hashes[j] = match self.eq {
                    Equality::Bitwise => lanes(row(j)).finish(self.units),
                    Equality::Numeric => {
                        canonicalize_into(self.m.dtype, row(j), out.scratch);
                        lanes(out.scratch).finish(self.units)
                    }
                };
            }
            k += take;
        }
    }
}

/// Below this, a sum of f32 squares may have lost terms to underflow.
const TINY_SUM_OF_SQUARES: f64 = 1e-30;

/// Writes `row` into `out` with every −0.0 replaced by +0.0.
pub(crate) fn canonicalize_into(dtype: Dtype, row: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(row);
    let s = dtype.size();
    let nz = dtype.negative_zero_bits();
    for e in out.chunks_exact_mut(s) {
        if dtype.bits(e) == nz {
            e.fill(0);
        }
    }
}

/// Adds the row's values to `sums` and returns Σx². A row holds a NaN exactly
/// when Σx² is NaN (squares are never negative, so no ∞ − ∞ arises).
fn accumulate_row(dtype: Dtype, row: &[u8], sums: &mut [f64]) -> f64 {
    let s = dtype.size();
    let mut acc = [0f64; 4];
    for (k, (e, sum)) in row.chunks_exact(s).zip(sums).enumerate() {
        let v = dtype.decode(e);
        acc[k % 4] += v * v;
        *sum += v;
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use crate::dtype::Dtype;

    /// Eight elements starting at `p` as f32 (exact for bf16, f16 and f32).
    #[inline(always)]
    unsafe fn load8(dtype: Dtype, p: *const u8) -> __m256 {
        match dtype {
            Dtype::BF16 => {
                let h = _mm_loadu_si128(p.cast());
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            }
            Dtype::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
            _ => _mm256_loadu_ps(p.cast()),
        }
    }

    /// f32x8 → two f64x4.
    #[inline(always)]
    unsafe fn widen(f: __m256) -> (__m256d, __m256d) {
        (
            _mm256_cvtps_pd(_mm256_castps256_ps128(f)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(f)),
        )
    }

    /// Columns per f32 block: each f32 partial adds at most this many / 8
    /// terms before it is flushed into f64, so its rounding stays near 1e-7.
    const BLOCK: usize = 64;

    /// [`super::accumulate_row`] with AVX2 for `R` rows at once (bf16, f16 and
    /// f32; f64 rows take the portable path). Eight columns a step: squares
    /// by FMA into f32 partials flushed into f64 every 64 columns (about 1e-8
    /// relative), and the column sums loaded and stored once for all `R` rows.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; each row holds `sums.len()` elements.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn accumulate_avx2<const R: usize>(
        dtype: Dtype,
        rows: [&[u8]; R],
        sums: &mut [f64],
    ) -> [f64; R] {
        if dtype == Dtype::F64 {
            return rows.map(|r| super::accumulate_row(dtype, r, sums));
        }
        let n = sums.len();
        let size = dtype.size();
        let s = sums.as_mut_ptr();
        let mut acc = [_mm256_setzero_pd(); R];
        // 2-byte values (≤ 11 significant bits) add up in f32 with at most
        // one rounding of the sum; f32 values are widened first.
        let narrow = size == 2;
        let mut c = 0;
        while c + BLOCK <= n {
            let mut part = [_mm256_setzero_ps(); R];
            for step in 0..BLOCK / 8 {
                let cc = c + step * 8;
                let mut col = _mm256_setzero_ps();
                let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
                for r in 0..R {
                    let v = load8(dtype, rows[r].as_ptr().add(cc * size));
                    part[r] = _mm256_fmadd_ps(v, v, part[r]);
                    if narrow {
                        col = _mm256_add_ps(col, v);
                    } else {
                        let (l, h) = widen(v);
                        lo = _mm256_add_pd(lo, l);
                        hi = _mm256_add_pd(hi, h);
                    }
                }
                if narrow {
                    (lo, hi) = widen(col);
                }
                let sp = s.add(cc);
                _mm256_storeu_pd(sp, _mm256_add_pd(_mm256_loadu_pd(sp), lo));
                _mm256_storeu_pd(sp.add(4), _mm256_add_pd(_mm256_loadu_pd(sp.add(4)), hi));
            }
            for r in 0..R {
                let (lo, hi) = widen(part[r]);
                acc[r] = _mm256_add_pd(acc[r], _mm256_add_pd(lo, hi));
            }
            c += BLOCK;
        }
        let mut out = [0f64; R];
        for r in 0..R {
            let mut lanes = [0f64; 4];
            _mm256_storeu_pd(lanes.as_mut_ptr(), acc[r]);
            out[r] = lanes.iter().sum::<f64>();
            for (e, sum) in rows[r][c * size..].chunks_exact(size).zip(&mut sums[c..]) {
                let v = dtype.decode(e);
                out[r] += v * v;
                *sum += v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `cols` values of every dtype, built from a simple sequence.
    fn rows(dtype: Dtype, cols: usize) -> Vec<Vec<u8>> {
        (0..4)
            .map(|r| {
                (0..cols)
                    .flat_map(|c| {
                        let x = ((r * 131 + c * 37) % 97) as f64 / 13.0 - 3.5;
                        match dtype {
                            Dtype::F32 => (x as f32).to_le_bytes().to_vec(),
                            Dtype::F64 => x.to_le_bytes().to_vec(),
                            Dtype::F16 => half::f16::from_f64(x).to_le_bytes().to_vec(),
                            Dtype::BF16 => half::bf16::from_f64(x).to_le_bytes().to_vec(),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn simd_and_portable_accumulation_agree() {
        if !(std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c"))
        {
            return;
        }
        for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64] {
            for cols in [1, 8, 63, 64, 200] {
                let r = rows(dtype, cols);
                let mut portable = vec![0f64; cols];
                let want: Vec<f64> = r
                    .iter()
                    .map(|row| accumulate_row(dtype, row, &mut portable))
                    .collect();
                let mut simd4 = vec![0f64; cols];
                let got = unsafe {
                    simd::accumulate_avx2(dtype, [&r[0], &r[1], &r[2], &r[3]], &mut simd4)
                };
                let mut simd1 = vec![0f64; cols];
                for (k, row) in r.iter().enumerate() {
                    let one =
                        unsafe { simd::accumulate_avx2(dtype, [row.as_slice()], &mut simd1) }[0];
                    assert!(
                        (one - want[k]).abs() <= 1e-7 * want[k],
                        "{dtype} d={cols} row {k}"
                    );
                }
                for k in 0..4 {
                    assert!(
                        (got[k] - want[k]).abs() <= 1e-7 * want[k],
                        "{dtype} d={cols} row {k}"
                    );
                }
                for c in 0..cols {
                    assert!((simd4[c] - portable[c]).abs() <= 1e-9, "{dtype} column {c}");
                    assert!((simd1[c] - portable[c]).abs() <= 1e-9, "{dtype} column {c}");
                }
            }
        }
    }
}
