//! The CPU step differ: each row of a step compared with the same row of the
//! step before. A row that did not change keeps its hash and costs one
//! `memcmp`; only rows that moved are hashed again and have their
//! displacement counted, so a series where few tokens move runs at about the
//! speed of reading it.

use rayon::prelude::*;

use super::rows_per_task;
use crate::dtype::Dtype;
use crate::engine::hash;
use crate::engine::{has_displacement, BatchMoves, StepData, StepDiffer};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::types::StepRows;

mod moves;

/// Keeps the previous step's hashes (the previous bytes are the caller's),
/// and for [`StepDiffer::push_moves`] the last step it read, band by band.
pub struct CpuStepDiffer {
    dtype: Dtype,
    rows: usize,
    cols: usize,
    hashes: Vec<u64>,
    /// The last step `push_moves` read, when `bands_hold_last` (no other
    /// push came after it).
    held: Vec<u8>,
    bands_hold_last: bool,
    /// Whether a step was pushed: the `prev` given with the first push is
    /// not the differ's own (the series starts there), as on the GPU.
    pushed: bool,
}

impl CpuStepDiffer {
    pub fn new(dtype: Dtype, rows: usize, cols: usize) -> Self {
        Self {
            dtype,
            rows,
            cols,
            hashes: Vec::new(),
            held: Vec::new(),
            bands_hold_last: false,
            pushed: false,
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

/// Compares rows `first..first + out.changed.len()` of two steps, with the
/// CPU's widest kernels.
fn diff_rows(prev: &Matrix, cur: &Matrix, first: usize, out: RowsOut) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2.
        return unsafe { diff_rows_avx2(prev, cur, first, out) };
    }
    diff_rows_with(prev, cur, first, out, hash::row_hash)
}

/// [`diff_rows`] compiled for AVX2: the row compares and the displacement
/// vectorize 32 bytes at a time, and moved rows hash with [`hash::lanes_avx2`].
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn diff_rows_avx2(prev: &Matrix, cur: &Matrix, first: usize, out: RowsOut) {
    let units = hash::units(cur.row_bytes());
    // SAFETY: the caller checked AVX2.
    let h = |r: &[u8]| unsafe { hash::lanes_avx2(r) }.finish(units);
    diff_rows_with(prev, cur, first, out, h)
}

/// Whether two rows of equal length hold the same bytes: an inline compare
/// of 32 bytes at a time (a `memcmp` call per short row costs more than the
/// compare itself).
#[inline(always)]
fn same_row(a: &[u8], b: &[u8]) -> bool {
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut diff = [0u64; 4];
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            let w = |v: &[u8]| u64::from_le_bytes(v[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
            diff[i] |= w(x) ^ w(y);
        }
    }
    diff == [0; 4] && ra == rb
}

/// The compare of one range of rows (see [`diff_rows`]); `hash` hashes a
/// moved row. Every row costs one inline compare; the work beyond that is
/// proportional to the rows that moved.
#[inline(always)]
fn diff_rows_with(
    prev: &Matrix,
    cur: &Matrix,
    first: usize,
    out: RowsOut,
    hash: impl Fn(&[u8]) -> u64,
) {
    let rb = cur.row_bytes();
    let n = out.changed.len();
    let displacement = !out.linf.is_empty();
    let span = first * rb..(first + n) * rb;
    let (pa, pb) = (&prev.bytes[span.clone()], &cur.bytes[span]);
    if rb == 0 {
        return;
    }
    for (j, (a, b)) in pa.chunks_exact(rb).zip(pb.chunks_exact(rb)).enumerate() {
        if same_row(a, b) {
            continue;
        }
        out.changed[j] = true;
        out.hashes[j] = hash(b);
        if displacement {
            (out.linf[j], out.l1[j]) = row_displacement(cur.dtype, a, b);
        }
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

    /// Makes `r` (the outputs of an earlier step, given back, or empty) the
    /// empty outputs of one step after the first, in the buffers it has:
    /// `changed` and the displacement zeroed, `hashes` of the right length
    /// (every one of them is written by the compare).
    fn reset(&self, r: &mut StepRows) {
        let width = if has_displacement(self.dtype) {
            self.rows
        } else {
            0
        };
        r.hashes.resize(self.rows, 0);
        let changed = r.changed.get_or_insert_with(Vec::new);
        changed.clear();
        changed.resize(self.rows, false);
        r.linf_steps.clear();
        r.linf_steps.resize(width, 0);
        r.l1_steps.clear();
        r.l1_steps.resize(width, 0);
    }

    /// Makes the hashes carried those of `prev`, when they are not (no step
    /// was pushed, or the last went through `push_moves`).
    fn seed(&mut self, prev: &Matrix) {
        if self.hashes.len() != self.rows {
            self.first(prev);
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
        self.bands_hold_last = false;
        let fresh = !std::mem::replace(&mut self.pushed, true);
        let Some(prev) = prev.filter(|_| !fresh) else {
            return Ok(self.first(cur));
        };
        self.check(prev)?;
        self.seed(prev);
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

    fn push_many(&mut self, prev: Option<&Matrix>, steps: &[Matrix]) -> Result<Vec<StepRows>> {
        let mut out = Vec::with_capacity(steps.len());
        self.push_many_into(prev, steps, &mut out)?;
        Ok(out)
    }

    /// The steps of the batch compared with their predecessors, tiled: each
    /// rayon task takes a band of rows (about 64 KiB of a step) through
    /// every step of the batch in order, so the previous step's band is
    /// still in cache when the next step's is compared, and carries the
    /// hashes of unchanged rows forward itself. The outputs are written into
    /// the buffers `out` holds (an earlier batch's), so a series allocates
    /// them for its first two batches only.
    fn push_many_into(
        &mut self,
        prev: Option<&Matrix>,
        steps: &[Matrix],
        out: &mut Vec<StepRows>,
    ) -> Result<()> {
        self.bands_hold_last = false;
        out.truncate(steps.len());
        let fresh = !std::mem::replace(&mut self.pushed, true);
        let prev = prev.filter(|_| !fresh);
        if let Some(p) = prev {
            self.check(p)?;
            self.seed(p);
        }
        let mut rest = steps;
        let mut done = 0;
        if prev.is_none() {
            let Some((head, tail)) = steps.split_first() else {
                return Ok(());
            };
            let first = self.push(None, head)?;
            match out.first_mut() {
                Some(r) => *r = first,
                None => out.push(first),
            }
            done = 1;
            rest = tail;
        }
        if rest.is_empty() {
            out.truncate(done);
            return Ok(());
        }
        for m in rest {
            self.check(m)?;
        }
        let before: Vec<&Matrix> = match prev.filter(|_| done == 0) {
            Some(p) => {
                self.check(p)?;
                std::iter::once(p).chain(rest).collect()
            }
            None => steps.iter().collect(),
        };
        out.resize_with(steps.len(), StepRows::default);
        // Each task resets (zeroes) its own step's outputs.
        let this = &*self;
        out[done..].par_iter_mut().for_each(|r| this.reset(r));
        let rows = &mut out[done..];
        let band = (BAND_BYTES / rest[0].row_bytes().max(1)).max(1);
        let bands = self.rows.div_ceil(band);
        // outs[b][k]: band b of step k.
        let mut outs: Vec<Vec<RowsOut>> = (0..bands).map(|_| Vec::new()).collect();
        for r in rows.iter_mut() {
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
        if let Some(r) = out.last() {
            self.hashes.clone_from(&r.hashes);
        }
        Ok(())
    }

    /// Reads the steps' bands itself (see [`moves`]). The hashes
    /// [`push`](StepDiffer::push) carries are not kept: a `push` after it
    /// hashes its `prev` first.
    fn push_moves(
        &mut self,
        prev: Option<&StepData>,
        steps: &[StepData],
        out: &mut BatchMoves,
    ) -> Result<()> {
        self.hashes.clear();
        self.moves(prev, steps, out)
    }

    fn last_step(&self) -> Option<&[u8]> {
        self.bands_hold_last.then_some(self.held.as_slice())
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
#[inline(always)]
pub fn row_displacement(dtype: Dtype, a: &[u8], b: &[u8]) -> (u32, u64) {
    match dtype.size() {
        2 => displacement16(a, b),
        4 => displacement32(a, b),
        _ => (0, 0),
    }
}

/// [`row_displacement`] of 16-bit floats, sixteen at a time: a distance is
/// at most 2·(2¹⁵ − 1), so it fits 16 bits, and sixteen of them a 32-bit sum.
#[inline(always)]
fn displacement16(a: &[u8], b: &[u8]) -> (u32, u64) {
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut max = [0u16; 16];
    let mut sum = 0u64;
    for (x, y) in ca.zip(cb) {
        let mut part = [0u32; 16];
        for i in 0..16 {
            let px = position16(u16::from_le_bytes([x[2 * i], x[2 * i + 1]]));
            let py = position16(u16::from_le_bytes([y[2 * i], y[2 * i + 1]]));
            let d = px.abs_diff(py) as u16;
            max[i] = max[i].max(d);
            part[i] = d as u32;
        }
        sum += part.iter().sum::<u32>() as u64;
    }
    let mut m = max.iter().copied().max().unwrap_or(0) as u32;
    for (x, y) in ra.chunks_exact(2).zip(rb.chunks_exact(2)) {
        let px = position16(u16::from_le_bytes([x[0], x[1]]));
        let py = position16(u16::from_le_bytes([y[0], y[1]]));
        let d = px.abs_diff(py);
        m = m.max(d);
        sum += d as u64;
    }
    (m, sum)
}

/// [`displacement16`] with AVX2, sixteen elements an instruction: each
/// 16-bit float's position in the ordered list of its values (magnitude,
/// negated for a negative sign) fits an `i16`, and the distance between
/// two, at most 2·(2¹⁵ − 1), a `u16` (max − min, wrapping).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn displacement16_avx2(a: &[u8], b: &[u8]) -> (u32, u64) {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len()) / 32 * 32;
    let magnitude = _mm256_set1_epi16(0x7fff);
    let zero = _mm256_setzero_si256();
    let position = |v: __m256i| {
        let sign = _mm256_srai_epi16(v, 15);
        let m = _mm256_and_si256(v, magnitude);
        _mm256_sub_epi16(_mm256_xor_si256(m, sign), sign)
    };
    let mut max = zero;
    let mut sum = zero;
    let mut i = 0;
    while i < n {
        // SAFETY: `i + 32 <= n` bytes lie in both rows; unaligned loads.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                _mm256_loadu_si256(b.as_ptr().add(i).cast()),
            )
        };
        let (px, py) = (position(x), position(y));
        let d = _mm256_sub_epi16(_mm256_max_epi16(px, py), _mm256_min_epi16(px, py));
        max = _mm256_max_epu16(max, d);
        // Widened to 32 bits before summing: 2¹⁶ − 2 at most each, so a
        // lane overflows only past 65,537 blocks (a row of 2 MB).
        sum = _mm256_add_epi32(sum, _mm256_unpacklo_epi16(d, zero));
        sum = _mm256_add_epi32(sum, _mm256_unpackhi_epi16(d, zero));
        i += 32;
    }
    let mut lanes16 = [0u16; 16];
    let mut lanes32 = [0u32; 8];
    // SAFETY: stores into arrays of 32 bytes.
    unsafe {
        _mm256_storeu_si256(lanes16.as_mut_ptr().cast(), max);
        _mm256_storeu_si256(lanes32.as_mut_ptr().cast(), sum);
    }
    let m = lanes16.iter().copied().max().unwrap_or(0) as u32;
    let s: u64 = lanes32.iter().map(|&x| x as u64).sum();
    let (tm, ts) = displacement16(&a[n..], &b[n..]);
    (m.max(tm), s + ts)
}

/// [`row_displacement`] of 32-bit floats.
#[inline(always)]
fn displacement32(a: &[u8], b: &[u8]) -> (u32, u64) {
    let (mut max, mut sum) = (0u32, 0u64);
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        let px = position32(u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
        let py = position32(u32::from_le_bytes([y[0], y[1], y[2], y[3]]));
        // At most 2·(2³¹ − 1): fits.
        let d = px.abs_diff(py) as u32;
        max = max.max(d);
        sum += d as u64;
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
    fn displacement_of_long_rows_is_the_definitions() {
        // Rows of 1..=70 elements (whole 32-byte blocks and a remainder),
        // random bits: every sign, NaNs and infinities included.
        let mut z = 11u64;
        let mut next = move || {
            z = z
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (z >> 24) as u8
        };
        for dtype in [Dtype::BF16, Dtype::F16, Dtype::F32] {
            for len in 1..=70usize {
                let bytes = len * dtype.size();
                let a: Vec<u8> = (0..bytes).map(|_| next()).collect();
                let b: Vec<u8> = (0..bytes).map(|_| next()).collect();
                assert_eq!(
                    row_displacement(dtype, &a, &b),
                    reference(dtype, &a, &b),
                    "{dtype} × {len}"
                );
                #[cfg(target_arch = "x86_64")]
                if dtype.size() == 2 && std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2.
                    let got = unsafe { displacement16_avx2(&a, &b) };
                    assert_eq!(got, reference(dtype, &a, &b), "AVX2, {dtype} × {len}");
                }
                assert!(same_row(&a, &a) && !same_row(&a, &b), "{dtype} × {len}");
                let mut c = a.clone();
                c[bytes - 1] ^= 0x80;
                assert!(!same_row(&a, &c), "last byte, {dtype} × {len}");
            }
        }
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
