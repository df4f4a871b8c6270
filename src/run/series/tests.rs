//! The series driver's own tests: batches, buffer reuse, the step sources.

use super::*;
use crate::dtype::Dtype;
use crate::engine::cpu::steps::CpuStepDiffer;
use crate::engine::cpu::CpuEngine;
use crate::engine::StepDiffer;
use crate::load::steps::SeriesInfo;
use crate::load::TokenNames;

/// Steps held in memory (with stored blocks beside the values, when
/// `stored` is not empty).
struct Steps {
    info: SeriesInfo,
    numbers: Vec<u64>,
    data: Vec<Vec<u8>>,
    stored: Vec<Vec<u8>>,
    /// Steps read and not yet released, and the most held at once.
    held: std::collections::BTreeSet<usize>,
    most_held: usize,
    /// The arguments of `release_before`, in order.
    released: Vec<usize>,
}

impl StepSource for Steps {
    fn info(&self) -> &SeriesInfo {
        &self.info
    }
    fn steps(&self) -> &[u64] {
        &self.numbers
    }
    fn inputs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    fn tokens(&self) -> Option<&TokenNames> {
        None
    }
    fn read(&mut self, i: usize) -> Result<Bytes> {
        self.held.insert(i);
        self.most_held = self.most_held.max(self.held.len());
        Ok(Bytes::owned(self.data[i].clone()))
    }
    fn release_before(&mut self, i: usize) {
        self.held.retain(|&j| j >= i);
        self.released.push(i);
    }
    fn read_step(&mut self, i: usize) -> Result<StepBytes> {
        Ok(StepBytes {
            values: self.read(i)?,
            stored: self.stored.get(i).map(|s| Bytes::owned(s.clone())),
        })
    }
}

/// A seeded generator of numbers (a linear congruential one).
fn generator(seed: u64) -> impl FnMut() -> usize {
    let mut z = seed;
    move || {
        z = z
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (z >> 33) as usize
    }
}

/// Options that read the trajectory tensor `W`.
fn key_w() -> SeriesOptions {
    SeriesOptions {
        load: crate::load::LoadOptions {
            key: Some("W".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn f32_info(rows: usize) -> SeriesInfo {
    SeriesInfo {
        tensor: "W".into(),
        stored_dtype: "F32".into(),
        format: "test",
        dtype: Dtype::F32,
        rows,
        cols: 1,
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn stored_blocks_are_the_identity_and_values_the_displacement() {
    // 150 steps (three batches) of 12 tokens whose "blocks" are 3 bytes
    // (not a whole number of hash units) and whose one value depends on
    // the first byte only, so that other blocks can decode alike.
    let (n, count) = (12, 150);
    let mut next = generator(7);
    let decode = |b: &[u8]| (b[0] % 3) as f32;
    let mut blocks = vec![[1u8, 0, 0]; n];
    let (mut stored, mut values, mut encoded) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        for _ in 0..next() % 3 {
            blocks[next() % n] = [(next() % 4) as u8, (next() % 2) as u8, 7];
        }
        stored.push(blocks.concat());
        values.push(f32_bytes(
            &blocks.iter().map(|b| decode(b)).collect::<Vec<_>>(),
        ));
        // The blocks one to one as exact f32 values: a series of them
        // has the blocks' groups, moves and events.
        let one_to_one: Vec<f32> = blocks
            .iter()
            .map(|b| (b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16) as f32)
            .collect();
        encoded.push(f32_bytes(&one_to_one));
    }
    let numbers: Vec<u64> = (0..count as u64).map(|s| s * 3).collect();
    let survey = |data: &[Vec<u8>], stored: &[Vec<u8>]| {
        let mut source = Steps {
            info: f32_info(n),
            numbers: numbers.clone(),
            data: data.to_vec(),
            stored: stored.to_vec(),
            held: Default::default(),
            most_held: 0,
            released: Vec::new(),
        };
        survey_source(
            &CpuEngine,
            &mut source,
            "series",
            false,
            None,
            Instant::now(),
        )
        .unwrap()
        .series
    };
    let got = survey(&values, &stored);
    let want = survey(&encoded, &[]);
    assert_eq!(got.events, want.events);
    assert_eq!(got.tokens, want.tokens);
    assert_eq!(got.frozen, want.frozen);
    assert!(got.events.len() > 10, "events: {}", got.events.len());
    let by_values = survey(&values, &[]);
    assert_ne!(got.events, by_values.events, "values alone group otherwise");
    for (k, (g, w)) in got.per_step.iter().zip(&want.per_step).enumerate() {
        let strip = |p: &crate::survey::tracker::StepSummary| {
            (
                p.step,
                p.n_unique,
                p.black_holes,
                p.largest,
                p.tokens_in_holes,
                p.moved,
            )
        };
        assert_eq!(strip(g), strip(w), "step {k}");
        // Displacement over the moved (re-encoded) tokens' values, in
        // f32 steps: the values are 0, 1 or 2, non-negative, so a step
        // is the difference of their bits.
        if k == 0 {
            continue;
        }
        let moved: Vec<usize> = (0..n)
            .filter(|&t| stored[k][3 * t..3 * t + 3] != stored[k - 1][3 * t..3 * t + 3])
            .collect();
        let bits =
            |v: &[u8], t: usize| u32::from_le_bytes(v[4 * t..4 * t + 4].try_into().unwrap()) as i64;
        let d: Vec<u64> = moved
            .iter()
            .map(|&t| bits(&values[k], t).abs_diff(bits(&values[k - 1], t)))
            .collect();
        let disp = g.displacement.unwrap();
        assert_eq!(
            disp.max_linf_steps,
            d.iter().copied().max().unwrap_or(0),
            "step {k}"
        );
        let mean = (!d.is_empty()).then(|| d.iter().sum::<u64>() as f64 / d.len() as f64);
        assert_eq!(disp.mean_l1_steps, mean, "step {k}");
    }
}

/// Writes `data` (steps of `rows` × `cols` f32) as a safetensors
/// trajectory `W` and returns its path.
fn write_trajectory(dir: &std::path::Path, data: &[Vec<u8>], rows: usize, cols: usize) -> PathBuf {
    let len: usize = data.iter().map(Vec::len).sum();
    let header = format!(
        "{{\"W\":{{\"dtype\":\"F32\",\"shape\":[{},{rows},{cols}],\"data_offsets\":[0,{len}]}}}}",
        data.len()
    );
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    for d in data {
        file.extend_from_slice(d);
    }
    let path = dir.join("W.safetensors");
    std::fs::write(&path, file).unwrap();
    path
}

#[test]
fn a_trajectory_longer_than_two_batches_reuses_the_step_outputs_of_two() {
    // 300 steps of 40 tokens × 2 f32 (batches of 64: five), a few
    // tokens moving among three vectors each step.
    let (n, cols, count) = (40, 2, 300);
    let mut next = generator(5);
    let mut v = vec![1f32; n * cols];
    let mut data = Vec::new();
    for _ in 0..count {
        for _ in 0..next() % 4 {
            let t = next() % n;
            v[t * cols] = (next() % 3) as f32;
        }
        data.push(f32_bytes(&v));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_trajectory(dir.path(), &data, n, cols);
    let opts = key_w();
    let mut source = open(&SeriesInput::Trajectory(path), &opts).unwrap();
    let mut buffers = BufferUse::default();
    let got = drive(
        &CpuEngine,
        source.as_mut(),
        "trajectory",
        false,
        None,
        Instant::now(),
        BATCH_BYTES,
        &mut buffers,
    )
    .unwrap()
    .series;
    // The moves of the first two batches are made (one part a step: 320-byte
    // steps are one band), those of every later batch written into the
    // parts of the batch two before: 128 parts for 300 steps.
    assert_eq!(buffers.fresh, 2 * MAX_BATCH);

    // The same series one step at a time, every output new.
    let mut differ = CpuStepDiffer::new(Dtype::F32, n, cols);
    let mut tracker = SeriesTracker::new(n);
    for (k, b) in data.iter().enumerate() {
        let m = Matrix::new(Dtype::F32, n, cols, b).unwrap();
        let prev = k
            .checked_sub(1)
            .map(|j| Matrix::new(Dtype::F32, n, cols, &data[j]).unwrap());
        let rows = differ.push(prev.as_ref(), &m).unwrap();
        tracker.push(k as u64, RowIdentity::of(&m), &rows);
    }
    let want = tracker.finish();
    assert_eq!(got, want);
    assert!(got.events.len() > 10, "events: {}", got.events.len());
}

#[test]
fn batches_and_the_overlapped_survey_give_the_series_of_one_step_at_a_time() {
    // 200 steps (four batches of at most 64), 12 tokens × 1 f32, a few
    // tokens moving among three values each step.
    let (n, count) = (12, 200);
    let mut next = generator(99);
    let mut v = vec![1f32; n];
    let mut data = Vec::new();
    for _ in 0..count {
        for _ in 0..next() % 3 {
            v[next() % n] = (next() % 3) as f32;
        }
        data.push(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    }
    let info = SeriesInfo {
        tensor: "W".into(),
        stored_dtype: "F32".into(),
        format: "test",
        dtype: Dtype::F32,
        rows: n,
        cols: 1,
    };
    let numbers: Vec<u64> = (0..count as u64).map(|s| s * 5).collect();
    let mut source = Steps {
        info,
        numbers: numbers.clone(),
        data: data.clone(),
        stored: Vec::new(),
        held: Default::default(),
        most_held: 0,
        released: Vec::new(),
    };
    let got = survey_source(
        &CpuEngine,
        &mut source,
        "trajectory",
        false,
        None,
        Instant::now(),
    )
    .unwrap()
    .series;
    // 200 steps are more than two batches: once a batch is compared the
    // driver gives its steps back (it keeps the last one itself, and the
    // survey its own copy of a step), so the source never holds more than
    // a batch.
    assert_eq!(source.released, vec![64, 128, 192, 200]);
    assert_eq!(source.most_held, MAX_BATCH);
    assert!(source.held.is_empty(), "{:?}", source.held);

    let mut tracker = SeriesTracker::new(n);
    for (k, b) in data.iter().enumerate() {
        let m = Matrix::new(Dtype::F32, n, 1, b).unwrap();
        let prev = k.checked_sub(1).map(|j| data[j].as_slice());
        let rows = brute_force_rows(Dtype::F32, 1, prev, b);
        tracker.push(numbers[k], RowIdentity::of(&m), &rows);
    }
    let want = tracker.finish();
    assert_eq!(got, want);
    assert!(
        got.events.len() > 10,
        "the series has events: {:?}",
        got.events.len()
    );
}

/// The rows of step `cur` against `prev`, by the definitions: a row
/// changed when its bytes differ, its hash is [`row_hash`] of its bytes,
/// its displacement counted element by element ([`Dtype::steps_between`]).
fn brute_force_rows(dtype: Dtype, cols: usize, prev: Option<&[u8]>, cur: &[u8]) -> StepRows {
    let rb = cols * dtype.size();
    let rows = cur.len() / rb;
    let hashes = (0..rows)
        .map(|t| row_hash(&cur[t * rb..(t + 1) * rb]))
        .collect();
    let Some(prev) = prev else {
        return StepRows {
            hashes,
            ..StepRows::default()
        };
    };
    let s = dtype.size();
    let (mut changed, mut linf, mut l1) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..rows {
        let (a, b) = (&prev[t * rb..(t + 1) * rb], &cur[t * rb..(t + 1) * rb]);
        let d: Vec<u64> = (a.chunks_exact(s).zip(b.chunks_exact(s)))
            .map(|(x, y)| dtype.steps_between(dtype.bits(x), dtype.bits(y)))
            .collect();
        changed.push(a != b);
        linf.push(d.iter().copied().max().unwrap_or(0) as u32);
        l1.push(d.iter().sum());
    }
    StepRows {
        hashes,
        changed: Some(changed),
        linf_steps: linf,
        l1_steps: l1,
    }
}

#[test]
fn steps_of_several_bands_give_the_series_of_the_definitions() {
    // 150 steps of 5,000 tokens × 16 f32 (64-byte rows: five bands of
    // 64 KiB, the last short) in a trajectory file: in 8 MB batches (25
    // steps, the survey overlapped), and in batches of one step (a step
    // fills a batch: surveyed before the next is compared). Tokens move
    // among a few vectors, so holes form, merge and split across bands.
    let (n, cols, count) = (5000, 16, 150);
    let mut next = generator(17);
    let mut v: Vec<f32> = (0..n * cols).map(|i| (i % 7) as f32).collect();
    for t in 0..n / 2 {
        v[t * cols..(t + 1) * cols].fill(1.0);
    }
    let mut data = Vec::new();
    for _ in 0..count {
        for _ in 0..next() % 40 {
            let t = next() % n;
            let value = (next() % 4) as f32;
            v[t * cols..(t + 1) * cols].fill(value);
            v[t * cols + next() % cols] += (next() % 2) as f32;
        }
        data.push(f32_bytes(&v));
    }
    let mut tracker = SeriesTracker::new(n);
    for (k, b) in data.iter().enumerate() {
        let m = Matrix::new(Dtype::F32, n, cols, b).unwrap();
        let prev = k.checked_sub(1).map(|j| data[j].as_slice());
        let rows = brute_force_rows(Dtype::F32, cols, prev, b);
        tracker.push(k as u64, RowIdentity::of(&m), &rows);
    }
    let want = tracker.finish();
    assert!(want.events.len() > 20, "events: {}", want.events.len());
    let dir = tempfile::tempdir().unwrap();
    let path = write_trajectory(dir.path(), &data, n, cols);
    let opts = key_w();
    for batch in [BATCH_BYTES, n * cols * 4] {
        let mut source = open(&SeriesInput::Trajectory(path.clone()), &opts).unwrap();
        let got = survey_source_batched(
            &CpuEngine,
            source.as_mut(),
            "trajectory",
            false,
            None,
            Instant::now(),
            batch,
        )
        .unwrap()
        .series;
        assert_eq!(got, want, "batches of {batch} bytes");
    }
}
