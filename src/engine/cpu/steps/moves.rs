//! The CPU step differ reading its own bands: each rayon task takes a band
//! of rows (about 64 KiB of a step) through every step of a batch, reading
//! the band of each step into a buffer that stays in the core's cache
//! (with a positioned read from the file when the step lies in one, else a
//! copy from memory), comparing it there with the same band of the step
//! before, and writing out only the rows that moved. The bytes of a step
//! cross from the page cache once, with no page faults and no map to tear
//! down, and the work beyond that copy is proportional to the rows that
//! moved.
//!
//! The differ keeps the last step it read (the rows that moved copied into
//! it): one step's bytes (plus one band per thread), whatever the length of
//! the series, which the survey may read in place
//! ([`StepDiffer::last_step`](crate::engine::StepDiffer::last_step)).

use std::cell::RefCell;

use rayon::prelude::*;

use super::{row_displacement, same_row, CpuStepDiffer, BAND_BYTES};
use crate::dtype::Dtype;
use crate::engine::hash;
use crate::engine::{has_displacement, BatchMoves, StepData};
use crate::error::{Error, Result};
use crate::types::StepMoves;

thread_local! {
    /// The band a task reads a step into, one per thread, swapped with the
    /// band it is compared with: after the first batch nothing is
    /// allocated.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What the band buffers hold when a batch starts.
#[derive(Clone, Copy)]
enum Start<'s> {
    /// Nothing: the batch's first step is the series' first.
    First,
    /// The step before the batch (the last one read).
    Held,
    /// Something else: the step before, `prev`, is read into them first.
    Load(&'s StepData<'s>),
}

/// `out.len()` bytes of `step` from `offset`: read from its file, or
/// copied from memory.
fn read_band(step: &StepData, offset: usize, out: &mut [u8]) -> Result<()> {
    match step.file {
        Some((file, base)) => file.read_at(out, base + offset as u64),
        None => {
            out.copy_from_slice(&step.matrix.bytes[offset..offset + out.len()]);
            Ok(())
        }
    }
}

/// Every row of a band as moved (the series' first step), rows from
/// `first`; their bytes too when `with_rows`.
fn all_rows(
    band: &[u8],
    row_bytes: usize,
    rows: usize,
    first: usize,
    with_rows: bool,
    out: &mut StepMoves,
) {
    out.clear();
    out.displaced = false;
    out.ids.extend((first..first + rows).map(|i| i as u32));
    out.hashes
        .extend((0..rows).map(|j| hash::row_hash(&band[j * row_bytes..(j + 1) * row_bytes])));
    if with_rows {
        out.bytes.extend_from_slice(band);
    }
}

/// One band of a step compared with the same band of the step before.
struct Band<'a> {
    /// The step before's rows, made this step's (the rows that moved are
    /// copied in).
    prev: &'a mut [u8],
    cur: &'a [u8],
    /// Bytes of a row.
    rb: usize,
    /// The band's first row.
    first: usize,
    /// Whether the moved rows' bytes are written out.
    with_rows: bool,
}

/// The rows of `band.cur` that differ from `band.prev`, into `out`, with the
/// CPU's widest kernels.
fn band_moves(dtype: Dtype, band: Band, out: &mut StepMoves) {
    out.clear();
    out.displaced = has_displacement(dtype);
    if band.rb == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2.
        return unsafe { band_moves_avx2(dtype, band, out) };
    }
    let displacement = |a: &[u8], b: &[u8]| row_displacement(dtype, a, b);
    band_moves_with(dtype, band, out, same_row, displacement, hash::row_hash)
}

/// [`band_moves`] compiled for AVX2 (see `diff_rows_avx2`).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn band_moves_avx2(dtype: Dtype, band: Band, out: &mut StepMoves) {
    let units = hash::units(band.rb);
    // SAFETY: the caller checked AVX2.
    let h = |r: &[u8]| unsafe { hash::lanes_avx2(r) }.finish(units);
    // SAFETY: likewise.
    let same = |a: &[u8], b: &[u8]| unsafe { same_row_avx2(a, b) };
    let displacement = |a: &[u8], b: &[u8]| match dtype.size() {
        // SAFETY: likewise.
        2 => unsafe { super::displacement16_avx2(a, b) },
        _ => row_displacement(dtype, a, b),
    };
    band_moves_with(dtype, band, out, same, displacement, h)
}

/// Whether two rows of equal length hold the same bytes, 32 at a time
/// (a `memcmp` call per short row costs more than the compare).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn same_row_avx2(a: &[u8], b: &[u8]) -> bool {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: `i + 32 <= n` bytes lie in both rows; unaligned loads.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                _mm256_loadu_si256(b.as_ptr().add(i).cast()),
            )
        };
        acc = _mm256_or_si256(acc, _mm256_xor_si256(x, y));
        i += 32;
    }
    _mm256_testz_si256(acc, acc) == 1 && a[i..] == b[i..]
}

/// The compare of one band (see [`band_moves`]); `same` compares two rows,
/// `displacement` measures how far a moved one went, `hash` hashes it.
#[inline(always)]
fn band_moves_with(
    dtype: Dtype,
    band: Band,
    out: &mut StepMoves,
    same: impl Fn(&[u8], &[u8]) -> bool,
    displacement: impl Fn(&[u8], &[u8]) -> (u32, u64),
    hash: impl Fn(&[u8]) -> u64,
) {
    let Band {
        prev,
        cur,
        rb,
        first,
        with_rows,
    } = band;
    let displaced = has_displacement(dtype);
    for (j, (a, b)) in prev
        .chunks_exact_mut(rb)
        .zip(cur.chunks_exact(rb))
        .enumerate()
    {
        if same(a, b) {
            continue;
        }
        out.ids.push((first + j) as u32);
        out.hashes.push(hash(b));
        if displaced {
            let (linf, l1) = displacement(a, b);
            out.linf_steps.push(linf);
            out.l1_steps.push(l1);
        }
        if with_rows {
            out.bytes.extend_from_slice(b);
        }
        a.copy_from_slice(b);
    }
}

impl CpuStepDiffer {
    /// [`StepDiffer::push_moves`](crate::engine::StepDiffer::push_moves)
    /// on the CPU: see the module's comment.
    pub(super) fn moves(
        &mut self,
        prev: Option<&StepData>,
        steps: &[StepData],
        out: &mut BatchMoves,
    ) -> Result<()> {
        for s in prev.into_iter().chain(steps) {
            self.check(&s.matrix)?;
        }
        if u32::try_from(self.rows).is_err() {
            return Err(Error::Usage(format!(
                "a series of {} tokens; at most {} are surveyed",
                self.rows,
                u32::MAX
            )));
        }
        let rb = self.cols * self.dtype.size();
        let band = match rb {
            0 => self.rows.max(1),
            _ => (BAND_BYTES / rb).max(1),
        };
        let bands = self.rows.div_ceil(band).max(1);
        if steps.is_empty() {
            out.shape(bands, 0);
            return Ok(());
        }
        let fresh = !std::mem::replace(&mut self.pushed, true);
        let held = rb * self.rows;
        let start = match prev.filter(|_| !fresh) {
            None => Start::First,
            Some(_) if self.bands_hold_last && self.held.len() == held => Start::Held,
            Some(p) => Start::Load(p),
        };
        // Left false if a read fails half-way.
        self.bands_hold_last = false;
        self.held.resize(held, 0);
        out.shape(bands, steps.len());
        let with_rows = !out.skip_rows;
        let (dtype, rows) = (self.dtype, self.rows);
        if held == 0 {
            // No rows, or rows of no bytes (all alike: none ever moves).
            for (k, part) in out.parts[0].iter_mut().take(steps.len()).enumerate() {
                part.clear();
                match (k, start) {
                    (0, Start::First) => all_rows(&[], 0, rows, 0, with_rows, part),
                    _ => part.displaced = has_displacement(dtype),
                }
            }
            self.bands_hold_last = true;
            return Ok(());
        }
        self.held
            .par_chunks_mut(band * rb)
            .zip(out.parts.par_iter_mut())
            .enumerate()
            .try_for_each(|(b, (held, parts))| -> Result<()> {
                let first = b * band;
                let (offset, len) = (first * rb, held.len());
                let mut next = 0;
                match start {
                    Start::First => {
                        read_band(&steps[0], offset, held)?;
                        all_rows(held, rb, len / rb, first, with_rows, &mut parts[0]);
                        next = 1;
                    }
                    Start::Load(p) => read_band(p, offset, held)?,
                    Start::Held => {}
                }
                // Taken out while the band is read: a reader that runs
                // rayon tasks itself may start another band on this thread.
                let mut cur = SCRATCH.take();
                let mut done = Ok(());
                for (s, part) in steps.iter().zip(parts.iter_mut()).skip(next) {
                    cur.resize(len, 0);
                    if let Err(e) = read_band(s, offset, &mut cur) {
                        done = Err(e);
                        break;
                    }
                    let band = Band {
                        prev: &mut *held,
                        cur: &cur,
                        rb,
                        first,
                        with_rows,
                    };
                    band_moves(dtype, band, part);
                }
                SCRATCH.set(cur);
                done
            })?;
        self.bands_hold_last = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StepDiffer;
    use crate::matrix::Matrix;
    use crate::types::ReadAt;

    /// A file read with positioned reads, as a mapped checkpoint is.
    struct FileAt(std::fs::File);

    impl ReadAt for FileAt {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
            std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset).map_err(|source| {
                Error::Io {
                    path: "steps".into(),
                    source,
                }
            })
        }
    }

    /// `count` steps of `n` rows of `rb` bytes, each changing a few bits of
    /// the one before (some rows several times, some back again).
    fn steps(n: usize, rb: usize, count: usize) -> Vec<Vec<u8>> {
        let mut z = 3u64;
        let mut next = move || {
            z = z
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (z >> 33) as usize
        };
        let mut out: Vec<Vec<u8>> = vec![(0..n * rb).map(|_| next() as u8).collect()];
        for _ in 1..count {
            let mut s = out.last().unwrap().clone();
            for _ in 0..next() % 60 {
                let k = next() % s.len();
                s[k] ^= 1 << (next() % 8);
            }
            out.push(s);
        }
        out
    }

    /// What moved at step `k` by the definitions, row by row.
    fn expected(dtype: Dtype, data: &[Vec<u8>], n: usize, d: usize, k: usize) -> StepMoves {
        let rb = d * dtype.size();
        let row = |s: &Vec<u8>, i: usize| s[i * rb..(i + 1) * rb].to_vec();
        let mut m = StepMoves::default();
        for i in 0..n {
            let now = row(&data[k], i);
            if k > 0 && now == row(&data[k - 1], i) {
                continue;
            }
            m.ids.push(i as u32);
            m.hashes.push(hash::row_hash(&now));
            if k > 0 && has_displacement(dtype) {
                let (linf, l1) = row_displacement(dtype, &row(&data[k - 1], i), &now);
                m.linf_steps.push(linf);
                m.l1_steps.push(l1);
            }
            m.bytes.extend_from_slice(&now);
        }
        m.displaced = k > 0 && has_displacement(dtype);
        m
    }

    /// The parts of step `j` of a batch as one.
    fn joined(out: &BatchMoves, j: usize) -> StepMoves {
        let mut m = StepMoves::default();
        for p in out.step(j) {
            m.ids.extend_from_slice(&p.ids);
            m.hashes.extend_from_slice(&p.hashes);
            m.linf_steps.extend_from_slice(&p.linf_steps);
            m.l1_steps.extend_from_slice(&p.l1_steps);
            m.bytes.extend_from_slice(&p.bytes);
            m.displaced = p.displaced;
        }
        m
    }

    #[test]
    fn batches_read_from_memory_or_a_file_give_the_rows_that_moved() {
        // 9 steps of 25,000 rows × 3 16-bit floats (6-byte rows: three
        // bands, the last short), 3,000 × 40 (80-byte rows: whole 32-byte
        // blocks and a tail, four bands), f32 and f64 (no displacement), and
        // 3 rows of 80,000 bytes (each row wider than a band), from memory
        // and from a file, in batches split anywhere, with and without the
        // bands held from the batch before.
        let half = [Dtype::F16, Dtype::BF16];
        moves_of(&half, 25_000, 3);
        moves_of(&half, 3_000, 40);
        moves_of(&[Dtype::F32], 3_000, 10);
        moves_of(&[Dtype::F64], 2_000, 9);
        moves_of(&[Dtype::F16], 3, 40_000);
    }

    fn moves_of(dtypes: &[Dtype], n: usize, d: usize) {
        let count = 9;
        let size = dtypes[0].size();
        let data = steps(n, d * size, count);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steps");
        let pad = 40; // the steps start past a header
        let mut bytes = vec![7u8; pad];
        bytes.extend(data.iter().flatten());
        std::fs::write(&path, bytes).unwrap();
        let file = FileAt(std::fs::File::open(&path).unwrap());
        let sb = n * d * size;
        for &dtype in dtypes {
            let want: Vec<StepMoves> = (0..count)
                .map(|k| expected(dtype, &data, n, d, k))
                .collect();
            let moving = want[1..].iter().filter(|m| !m.ids.is_empty()).count();
            assert!(moving >= count / 2, "{dtype}: {moving} steps with moves");
            for from_file in [false, true] {
                let step = |k: usize| StepData {
                    matrix: Matrix::new(dtype, n, d, &data[k]).unwrap(),
                    file: from_file.then_some((&file as &dyn ReadAt, (pad + k * sb) as u64)),
                };
                for split in [1, 4, 8] {
                    let mut differ = CpuStepDiffer::new(dtype, n, d);
                    let mut out = BatchMoves::default();
                    let head: Vec<StepData> = (0..split).map(step).collect();
                    differ.push_moves(None, &head, &mut out).unwrap();
                    let mut got: Vec<StepMoves> = (0..split).map(|j| joined(&out, j)).collect();
                    let tail: Vec<StepData> = (split..count).map(step).collect();
                    differ
                        .push_moves(Some(&step(split - 1)), &tail, &mut out)
                        .unwrap();
                    got.extend((0..count - split).map(|j| joined(&out, j)));
                    assert_eq!(got, want, "{dtype}, file {from_file}, split at {split}");

                    // A differ that did not read the step before (its last
                    // push went another way) reads it from `prev`.
                    let mut other = CpuStepDiffer::new(dtype, n, d);
                    other.push(None, &step(0).matrix).unwrap();
                    other
                        .push_moves(Some(&step(split - 1)), &tail, &mut out)
                        .unwrap();
                    let again: Vec<StepMoves> =
                        (0..count - split).map(|j| joined(&out, j)).collect();
                    assert_eq!(again[..], want[split..], "{dtype}, other, split at {split}");
                }
                // Asked for no rows' bytes, it writes the rest alike and keeps
                // the last step, to be read in place.
                let mut lean = CpuStepDiffer::new(dtype, n, d);
                let mut out = BatchMoves {
                    skip_rows: true,
                    ..BatchMoves::default()
                };
                let all: Vec<StepData> = (0..count).map(step).collect();
                lean.push_moves(None, &all, &mut out).unwrap();
                for (k, w) in want.iter().enumerate() {
                    let mut w = w.clone();
                    w.bytes.clear();
                    assert_eq!(joined(&out, k), w, "{dtype}, no rows, step {k}");
                }
                assert_eq!(lean.last_step(), Some(&data[count - 1][..]), "{dtype}");
                // The `prev` given with a differ's first push is not its own:
                // the series starts at the first step given, as on the GPU.
                let mut fresh = CpuStepDiffer::new(dtype, n, d);
                let mut out = BatchMoves::default();
                fresh
                    .push_moves(Some(&step(0)), &[step(1)], &mut out)
                    .unwrap();
                assert_eq!(joined(&out, 0), expected(dtype, &data[1..2], n, d, 0));
                // A push after push_moves compares with the `prev` it is given.
                let rows = fresh.push(Some(&step(1).matrix), &step(2).matrix).unwrap();
                let changed = rows.changed.unwrap();
                let moved: Vec<u32> = (0..n as u32).filter(|&i| changed[i as usize]).collect();
                assert_eq!(moved, want[2].ids, "{dtype}: push after push_moves");
                let hashes: Vec<u64> = (0..n).map(|i| rows.hashes[i]).collect();
                let m = Matrix::new(dtype, n, d, &data[2]).unwrap();
                let want_hashes: Vec<u64> = (0..n).map(|i| hash::row_hash(m.row(i))).collect();
                assert_eq!(hashes, want_hashes, "{dtype}: hashes of every row");
            }
        }
    }

    #[test]
    fn a_file_shorter_than_its_steps_is_an_error() {
        let (n, d) = (1000, 4);
        let data = steps(n, d * 2, 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steps");
        // The last step is cut short in the file (it shrank after opening).
        let mut bytes: Vec<u8> = data.iter().flatten().copied().collect();
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&path, bytes).unwrap();
        let file = FileAt(std::fs::File::open(&path).unwrap());
        let sb = n * d * 2;
        let steps: Vec<StepData> = (0..3)
            .map(|k| StepData {
                matrix: Matrix::new(Dtype::F16, n, d, &data[k]).unwrap(),
                file: Some((&file as &dyn ReadAt, (k * sb) as u64)),
            })
            .collect();
        let mut differ = CpuStepDiffer::new(Dtype::F16, n, d);
        let mut out = BatchMoves::default();
        let err = differ.push_moves(None, &steps, &mut out).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        // The same differ, given the steps from memory and the one before,
        // compares them as if nothing had failed.
        let memory: Vec<StepData> = (0..3)
            .map(|k| StepData::in_memory(Matrix::new(Dtype::F16, n, d, &data[k]).unwrap()))
            .collect();
        differ
            .push_moves(Some(&memory[0]), &memory[1..], &mut out)
            .unwrap();
        for k in 1..3 {
            assert_eq!(
                joined(&out, k - 1),
                expected(Dtype::F16, &data, n, d, k),
                "step {k}"
            );
        }
    }
}
