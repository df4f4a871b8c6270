//! The CPU step differ: each row of a step compared with the same row of the
//! step before. A row that did not change keeps its hash and costs one
//! `memcmp`; only rows that moved are hashed again and have their
//! displacement counted, so a series where few tokens move runs at about the
//! speed of reading it.

use rayon::prelude::*;

use super::rows_per_task;
use crate::dtype::Dtype;
use crate::engine::hash;
use crate::engine::{has_displacement, StepDiffer};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::types::StepRows;

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

/// Bytes compared at once before looking at single rows: most rows of a
/// step usually did not move, and one `memcmp` over a block of them is
/// cheaper than one per row.
const BLOCK_BYTES: usize = 4096;

/// Rows of a step one task of a batch takes through every step of it.
const BAND_BYTES: usize = 64 << 10;

/// Per-row outputs for a range of rows of one step.
struct RowsOut<'o> {
    changed: &'o mut [bool],
    /// Written for changed rows only.
    hashes: &'o mut [u64],
    /// Empty when the dtype has no displacement.
    linf: &'o mut [u32],
    l1: &'o mut [u64],
}

/// Compares rows `first..first + out.changed.len()` of two steps.
fn diff_rows(prev: &Matrix, cur: &Matrix, first: usize, out: RowsOut) {
    let rb = cur.row_bytes();
    let n = out.changed.len();
    let per_block = (BLOCK_BYTES / rb.max(1)).max(1);
    let displacement = !out.linf.is_empty();
    let mut k = 0;
    while k < n {
        let take = per_block.min(n - k);
        let span = (first + k) * rb..(first + k + take) * rb;
        if prev.bytes[span.clone()] != cur.bytes[span] {
            for j in k..k + take {
                let (a, b) = (prev.row(first + j), cur.row(first + j));
                if a != b {
                    out.changed[j] = true;
                    out.hashes[j] = hash::row_hash(b);
                    if displacement {
                        (out.linf[j], out.l1[j]) = row_displacement(cur.dtype, a, b);
                    }
                }
            }
        }
        k += take;
    }
}

impl CpuStepDiffer {
    /// Hashes every row of a first step.
    fn first(&mut self, cur: &Matrix) -> StepRows {
        let per_task = rows_per_task(cur.row_bytes());
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
        StepRows {
            hashes,
            ..StepRows::default()
        }
    }

    /// Empty outputs for one step after the first (hashes to be filled).
    fn blank(&self) -> StepRows {
        let width = if has_displacement(self.dtype) {
            self.rows
        } else {
            0
        };
        StepRows {
            hashes: vec![0; self.rows],
            changed: Some(vec![false; self.rows]),
            linf_steps: vec![0; width],
            l1_steps: vec![0; width],
        }
    }

    /// Gives unchanged rows the hash they had at the step before.
    fn carry_hashes(&mut self, rows: &mut StepRows) {
        if let Some(changed) = &rows.changed {
            for (i, &c) in changed.iter().enumerate() {
                if c {
                    self.hashes[i] = rows.hashes[i];
                } else {
                    rows.hashes[i] = self.hashes[i];
                }
            }
        }
    }
}

impl StepDiffer for CpuStepDiffer {
    fn push(&mut self, prev: Option<&Matrix>, cur: &Matrix) -> Result<StepRows> {
        self.check(cur)?;
        let Some(prev) = prev.filter(|_| self.hashes.len() == self.rows) else {
            return Ok(self.first(cur));
        };
        self.check(prev)?;
        let per_task = rows_per_task(cur.row_bytes());
        let mut out = self.blank();
        let StepRows {
            hashes,
            changed,
            linf_steps,
            l1_steps,
        } = &mut out;
        let changed = changed.as_mut().map_or(&mut [][..], |c| c.as_mut_slice());
        let width = if linf_steps.is_empty() { 0 } else { per_task };
        // Rows split among rayon tasks; the displacement vectors are empty
        // for F64, so they are chunked by 1 there and never indexed.
        let linf = linf_steps.par_chunks_mut(width.max(1));
        let l1 = l1_steps.par_chunks_mut(width.max(1));
        if width == 0 {
            hashes
                .par_chunks_mut(per_task)
                .zip(changed.par_chunks_mut(per_task))
                .enumerate()
                .for_each(|(t, (h, c))| {
                    let out = RowsOut {
                        changed: c,
                        hashes: h,
                        linf: &mut [],
                        l1: &mut [],
                    };
                    diff_rows(prev, cur, t * per_task, out)
                });
        } else {
            hashes
                .par_chunks_mut(per_task)
                .zip(changed.par_chunks_mut(per_task))
                .zip(linf.zip(l1))
                .enumerate()
                .for_each(|(t, ((h, c), (li, l1)))| {
                    let out = RowsOut {
                        changed: c,
                        hashes: h,
                        linf: li,
                        l1,
                    };
                    diff_rows(prev, cur, t * per_task, out)
                });
        }
        self.carry_hashes(&mut out);
        Ok(out)
    }

    /// The steps of the batch compared with their predecessors, tiled: each
    /// rayon task takes a band of rows (about 64 KiB of a step) through
    /// every step of the batch in order, so the previous step's band is
    /// still in cache when the next step's is compared, and carries the
    /// hashes of unchanged rows forward itself.
    fn push_many(&mut self, prev: Option<&Matrix>, steps: &[Matrix]) -> Result<Vec<StepRows>> {
        let mut out = Vec::with_capacity(steps.len());
        let mut rest = steps;
        if prev.is_none() || self.hashes.len() != self.rows {
            let Some((head, tail)) = steps.split_first() else {
                return Ok(out);
            };
            out.push(self.push(None, head)?);
            rest = tail;
        }
        if rest.is_empty() {
            return Ok(out);
        }
        for m in rest {
            self.check(m)?;
        }
        let before: Vec<&Matrix> = match prev.filter(|_| out.is_empty()) {
            Some(p) => {
                self.check(p)?;
                std::iter::once(p).chain(rest).collect()
            }
            None => steps.iter().collect(),
        };
        // Each task allocates (and zeroes) its own step's outputs.
        let this = &*self;
        let mut rows: Vec<StepRows> = (0..rest.len())
            .into_par_iter()
            .map(|_| this.blank())
            .collect();
        let band = (BAND_BYTES / rest[0].row_bytes().max(1)).max(1);
        let bands = self.rows.div_ceil(band);
        // outs[b][k]: band b of step k.
        let mut outs: Vec<Vec<RowsOut>> = (0..bands).map(|_| Vec::new()).collect();
        for r in &mut rows {
            let changed = r.changed.as_mut().map_or(&mut [][..], |c| c.as_mut_slice());
            let mut linf = r.linf_steps.chunks_mut(band);
            let mut l1 = r.l1_steps.chunks_mut(band);
            for ((o, h), c) in outs
                .iter_mut()
                .zip(r.hashes.chunks_mut(band))
                .zip(changed.chunks_mut(band))
            {
                o.push(RowsOut {
                    changed: c,
                    hashes: h,
                    linf: linf.next().unwrap_or(&mut []),
                    l1: l1.next().unwrap_or(&mut []),
                });
            }
        }
        let carried = &self.hashes;
        outs.into_par_iter().enumerate().for_each(|(b, band_outs)| {
            let first = b * band;
            let mut last: Vec<u64> = carried[first..(first + band).min(carried.len())].to_vec();
            for (k, o) in band_outs.into_iter().enumerate() {
                let RowsOut {
                    changed,
                    hashes,
                    linf,
                    l1,
                } = o;
                diff_rows(
                    before[k],
                    &rest[k],
                    first,
                    RowsOut {
                        changed: &mut *changed,
                        hashes: &mut *hashes,
                        linf,
                        l1,
                    },
                );
                for ((h, &c), l) in hashes.iter_mut().zip(changed.iter()).zip(&mut last) {
                    if c {
                        *l = *h;
                    } else {
                        *h = *l;
                    }
                }
            }
        });
        if let Some(r) = rows.last() {
            self.hashes.clone_from(&r.hashes);
        }
        out.extend(rows);
        Ok(out)
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

    #[test]
    fn a_batch_gives_the_rows_of_steps_pushed_one_by_one() {
        // 9 steps of 25,000 rows × 3 f16 (6-byte rows: blocks end mid-row;
        // three bands of rows), each changing a few rows from the one before.
        let (n, d) = (25_000, 3);
        let mut z = 7u64;
        let mut next = move || {
            z = z
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (z >> 33) as usize
        };
        let mut steps: Vec<Vec<u8>> = vec![(0..n * d * 2).map(|_| next() as u8).collect()];
        for _ in 1..9 {
            let mut s = steps.last().unwrap().clone();
            for _ in 0..next() % 40 {
                let k = next() % s.len();
                s[k] ^= 1 << (next() % 8);
            }
            steps.push(s);
        }
        for dtype in [Dtype::F16, Dtype::BF16] {
            let ms: Vec<Matrix> = steps
                .iter()
                .map(|b| Matrix::new(dtype, n, d, b).unwrap())
                .collect();
            let mut one = CpuStepDiffer::new(dtype, n, d);
            let mut want = Vec::new();
            for k in 0..ms.len() {
                want.push(one.push(k.checked_sub(1).map(|j| &ms[j]), &ms[k]).unwrap());
            }
            for split in [1, 4, 8] {
                let mut many = CpuStepDiffer::new(dtype, n, d);
                let mut got = many.push_many(None, &ms[..split]).unwrap();
                got.extend(many.push_many(Some(&ms[split - 1]), &ms[split..]).unwrap());
                assert_eq!(got, want, "{dtype} split at {split}");
                // No previous step: the series starts over.
                assert_eq!(many.push_many(None, &ms).unwrap(), want, "{dtype} again");
            }
            // And the definition, row by row.
            for k in 1..ms.len() {
                for i in 0..n {
                    let (a, b) = (ms[k - 1].row(i), ms[k].row(i));
                    assert_eq!(want[k].changed.as_ref().unwrap()[i], a != b);
                    assert_eq!(want[k].hashes[i], hash::row_hash(b));
                    assert_eq!(
                        (want[k].linf_steps[i], want[k].l1_steps[i]),
                        reference(dtype, a, b)
                    );
                }
            }
        }
    }
}
