//! The CPU engine: one pass over the rows with rayon, each row hashed, its norm
//! and NaN flag taken, and its values added to per-thread column sums.
//! Norms and sums accumulate in f64: this is the reference the GPU is checked against.

use rayon::prelude::*;

use super::hash::{self, Lanes};
use super::{DeviceInfo, DeviceKind, Engine, Equality, RowStats};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::load::Matrix;
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
                    let first = t * per_task;
                    for (k, ((h, nr), nan)) in h.iter_mut().zip(nr).zip(nan).enumerate() {
                        let row = m.row(first + k);
                        let (sq, row_nan) = accumulate_row(m.dtype, row, &mut sums);
                        *nr = sq.sqrt();
                        *nan = row_nan;
                        *h = match eq {
                            Equality::Bitwise => hash::lanes(row).finish(units),
                            Equality::Numeric => {
                                canonicalize_into(m.dtype, row, &mut scratch);
                                hash::lanes(&scratch).finish(units)
                            }
                        };
                    }
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
}

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

/// Adds the row's values to `sums`; returns (Σx², any NaN).
#[inline]
fn accumulate_row(dtype: Dtype, row: &[u8], sums: &mut [f64]) -> (f64, bool) {
    match dtype {
        Dtype::BF16 => accumulate::<2>(row, sums, |b| {
            let h = u16::from_le_bytes(b);
            (
                f32::from_bits((h as u32) << 16) as f64,
                (h & 0x7fff) > 0x7f80,
            )
        }),
        Dtype::F16 => accumulate::<2>(row, sums, |b| {
            let h = u16::from_le_bytes(b);
            (half::f16::from_bits(h).to_f64(), (h & 0x7fff) > 0x7c00)
        }),
        Dtype::F32 => accumulate::<4>(row, sums, |b| {
            let x = f32::from_le_bytes(b);
            (x as f64, x.is_nan())
        }),
        Dtype::F64 => accumulate::<8>(row, sums, |b| {
            let x = f64::from_le_bytes(b);
            (x, x.is_nan())
        }),
    }
}

/// Eight independent accumulators so the loop pipelines and vectorizes.
#[inline(always)]
fn accumulate<const S: usize>(
    row: &[u8],
    sums: &mut [f64],
    decode: impl Fn([u8; S]) -> (f64, bool),
) -> (f64, bool) {
    const L: usize = 8;
    let mut acc = [0f64; L];
    let mut nan = false;
    let (body, tail) = row.split_at(row.len() / (S * L) * (S * L));
    let (sums_body, sums_tail) = sums.split_at_mut(body.len() / S);
    for (cb, sb) in body.chunks_exact(S * L).zip(sums_body.chunks_exact_mut(L)) {
        for k in 0..L {
            let mut e = [0u8; S];
            e.copy_from_slice(&cb[k * S..(k + 1) * S]);
            let (v, is_nan) = decode(e);
            acc[k] += v * v;
            sb[k] += v;
            nan |= is_nan;
        }
    }
    for (cb, s) in tail.chunks_exact(S).zip(sums_tail) {
        let mut e = [0u8; S];
        e.copy_from_slice(cb);
        let (v, is_nan) = decode(e);
        acc[0] += v * v;
        *s += v;
        nan |= is_nan;
    }
    (acc.iter().sum(), nan)
}

/// The lane sums of a row, as the GPU computes them before finalization
/// (exposed for the parity tests of the kernels).
pub fn row_lanes(row: &[u8]) -> Lanes {
    hash::lanes(row)
}
