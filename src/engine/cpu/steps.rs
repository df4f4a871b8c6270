//! The CPU step differ: each row of a step compared with the same row of the
//! step before. A row that did not change keeps its hash and costs one
//! `memcmp`; only rows that moved are hashed again and have their
//! displacement counted, so a series where few tokens move runs at about the
//! speed of reading it.

use rayon::prelude::*;

use super::rows_per_task;
use crate::dtype::Dtype;
use crate::engine::hash;
use crate::engine::{StepDiffer, StepRows};
use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// Keeps the previous step's hashes (the previous bytes are the caller's).
pub struct CpuStepDiffer {
    dtype: Dtype,
    rows: usize,
    cols: usize,
    hashes: Vec<u64>,
}

impl CpuStepDiffer {
    pub fn new(dtype: Dtype, rows: usize, cols: usize) -> Self {
        Self {
            dtype,
            rows,
            cols,
            hashes: Vec::new(),
        }
    }

    fn check(&self, m: &Matrix) -> Result<()> {
        if (m.dtype, m.rows, m.cols) != (self.dtype, self.rows, self.cols) {
            return Err(Error::Usage(format!(
                "a step of {}×{} {} in a series of {}×{} {}",
                m.rows, m.cols, m.dtype, self.rows, self.cols, self.dtype
            )));
        }
        Ok(())
    }
}

/// Whether the kernels count displacement for `dtype` (not for F64, whose
/// step counts do not fit their integers).
pub fn has_displacement(dtype: Dtype) -> bool {
    dtype != Dtype::F64
}

impl StepDiffer for CpuStepDiffer {
    fn push(&mut self, prev: Option<&Matrix>, cur: &Matrix) -> Result<StepRows> {
        self.check(cur)?;
        let per_task = rows_per_task(cur.row_bytes());
        let Some(prev) = prev.filter(|_| self.hashes.len() == self.rows) else {
            let mut hashes = vec![0u64; cur.rows];
            hashes
                .par_chunks_mut(per_task)
                .enumerate()
                .for_each(|(t, h)| {
                    for (k, out) in h.iter_mut().enumerate() {
                        *out = hash::row_hash(cur.row(t * per_task + k));
                    }
                });
            self.hashes.clone_from(&hashes);
            return Ok(StepRows {
                hashes,
                ..StepRows::default()
            });
        };
        self.check(prev)?;
        let n = cur.rows;
        let displacement = has_displacement(cur.dtype);
        let width = if displacement { n } else { 0 };
        let mut changed = vec![false; n];
        let mut linf = vec![0u32; width];
        let mut l1 = vec![0u64; width];
        let dtype = cur.dtype;
        // Each task writes its own rows' hashes in place.
        self.hashes
            .par_chunks_mut(per_task)
            .zip(changed.par_chunks_mut(per_task))
            .enumerate()
            .for_each(|(t, (h, c))| {
                for k in 0..h.len() {
                    let i = t * per_task + k;
                    let (a, b) = (prev.row(i), cur.row(i));
                    if a != b {
                        c[k] = true;
                        h[k] = hash::row_hash(b);
                    }
                }
            });
        if displacement {
            linf.par_chunks_mut(per_task)
                .zip(l1.par_chunks_mut(per_task))
                .enumerate()
                .for_each(|(t, (li, l1))| {
                    for k in 0..li.len() {
                        let i = t * per_task + k;
                        if changed[i] {
                            (li[k], l1[k]) = row_displacement(dtype, prev.row(i), cur.row(i));
                        }
                    }
                });
        }
        Ok(StepRows {
            hashes: self.hashes.clone(),
            changed: Some(changed),
            linf_steps: linf,
            l1_steps: l1,
        })
    }
}

/// Position of a 16-bit float in the ordered list of its values (sign and
/// magnitude; see [`Dtype::ordered_position`]).
#[inline(always)]
fn position16(b: u16) -> i32 {
    let m = (b & 0x7fff) as i32;
    if b & 0x8000 != 0 {
        -m
    } else {
        m
    }
}

#[inline(always)]
fn position32(b: u32) -> i64 {
    let m = (b & 0x7fff_ffff) as i64;
    if b & 0x8000_0000 != 0 {
        -m
    } else {
        m
    }
}

/// The largest and the summed element displacement between two rows, in
/// steps of `dtype` (not F64).
pub fn row_displacement(dtype: Dtype, a: &[u8], b: &[u8]) -> (u32, u64) {
    let (mut max, mut sum) = (0u32, 0u64);
    match dtype.size() {
        2 => {
            for (x, y) in a.chunks_exact(2).zip(b.chunks_exact(2)) {
                let px = position16(u16::from_le_bytes([x[0], x[1]]));
                let py = position16(u16::from_le_bytes([y[0], y[1]]));
                let d = px.abs_diff(py);
                max = max.max(d);
                sum += d as u64;
            }
        }
        4 => {
            for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
                let px = position32(u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
                let py = position32(u32::from_le_bytes([y[0], y[1], y[2], y[3]]));
                // At most 2·(2³¹ − 1): fits.
                let d = px.abs_diff(py) as u32;
                max = max.max(d);
                sum += d as u64;
            }
        }
        _ => {}
    }
    (max, sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, element by element, through [`Dtype::steps_between`].
    fn reference(dtype: Dtype, a: &[u8], b: &[u8]) -> (u32, u64) {
        let s = dtype.size();
        let d: Vec<u64> = a
            .chunks_exact(s)
            .zip(b.chunks_exact(s))
            .map(|(x, y)| dtype.steps_between(dtype.bits(x), dtype.bits(y)))
            .collect();
        (*d.iter().max().unwrap() as u32, d.iter().sum())
    }

    #[test]
    fn displacement_counts_steps_across_zero_and_to_infinity() {
        // bf16: 1.0 (0x3f80) → next up (0x3f81): 1 step; +0 → −0: 0 steps;
        // −min subnormal (0x8001) → +min subnormal (0x0001): 2 steps;
        // largest finite (0x7f7f) → +∞ (0x7f80): 1 step.
        let a: Vec<u8> = [0x3f80u16, 0x0000, 0x8001, 0x7f7f]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b: Vec<u8> = [0x3f81u16, 0x8000, 0x0001, 0x7f80]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(row_displacement(Dtype::BF16, &a, &b), (2, 4));
        assert_eq!(reference(Dtype::BF16, &a, &b), (2, 4));
        // f32: −largest finite → +largest finite: 2·0x7f7fffff steps.
        let a = f32::MIN.to_le_bytes();
        let b = f32::MAX.to_le_bytes();
        let want = 2 * 0x7f7f_ffffu64;
        assert_eq!(row_displacement(Dtype::F32, &a, &b), (want as u32, want));
    }

    #[test]
    fn unchanged_rows_keep_their_hash_and_moved_rows_are_rehashed() {
        let a: Vec<u8> = (0..24u8).collect();
        let mut b = a.clone();
        b[8] ^= 1; // row 1 of three 8-byte rows (four f16 each): one step
        let (ma, mb) = (
            Matrix::new(Dtype::F16, 3, 4, &a).unwrap(),
            Matrix::new(Dtype::F16, 3, 4, &b).unwrap(),
        );
        let mut d = CpuStepDiffer::new(Dtype::F16, 3, 4);
        let first = d.push(None, &ma).unwrap();
        assert_eq!(first.changed, None);
        assert!(first.linf_steps.is_empty());
        let second = d.push(Some(&ma), &mb).unwrap();
        assert_eq!(second.changed, Some(vec![false, true, false]));
        let want: Vec<u64> = (0..3).map(|i| hash::row_hash(mb.row(i))).collect();
        assert_eq!(second.hashes, want);
        assert_eq!(second.linf_steps, vec![0, 1, 0]);
        assert_eq!(second.l1_steps, vec![0, 1, 0]);
    }
}
