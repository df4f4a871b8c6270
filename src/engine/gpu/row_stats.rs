//! The per-row pass: `shaders/row_stats.wgsl` (hash lanes, norm, NaN flag) and
//! `shaders/column_sums.wgsl` (column partial sums), streamed chunk by chunk.

use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use super::chunks::ChunkPlan;
use super::{pipeline, GpuContext};
use crate::engine::hash::{self, Lanes};
use crate::engine::{Equality, GpuOptions, RowStats};
use crate::error::{Error, Result};
use crate::load::Matrix;
use crate::progress::Progress;

const ROW_STATS_WGSL: &str = include_str!("../../../shaders/row_stats.wgsl");
const COLUMN_SUMS_WGSL: &str = include_str!("../../../shaders/column_sums.wgsl");

/// Largest workgroup count along one dispatch dimension (WebGPU's minimum limit).
const MAX_GROUPS: u32 = 65535;
/// Bytes of `out` per row: lane_a, lane_b, norm bits, flags.
const STAT_BYTES: u64 = 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct HashParams {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    units: u32,
    dtype: u32,
    numeric: u32,
    tpr: u32,
    quads: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumParams {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    dtype: u32,
    rows_per_block: u32,
    groups: u32,
    _pad: [u32; 2],
}

/// Threads sharing one row: about four units each, a power of two up to 32
/// (one warp or less per row). In two sweeps on an H200 (BENCHMARKS.md), 32
/// and 64 threads per row were the fastest on 4096- and 16384-wide bf16 rows;
/// 128 and 256 (seven or eight barrier steps to reduce) fell behind, by up to
/// 4x on the wider rows.
fn threads_per_row(units: u32) -> u32 {
    units.div_ceil(4).next_power_of_two().clamp(1, 32)
}

/// A 2-D grid of `groups` workgroups within the per-dimension limit.
fn grid(groups: u32) -> (u32, u32) {
    let x = groups.clamp(1, MAX_GROUPS);
    (x, groups.div_ceil(x).max(1))
}

/// Which kernels to run (benchmarks time them apart).
#[derive(Clone, Copy, Debug)]
pub struct Passes {
    pub row_stats: bool,
    pub column_sums: bool,
}

impl Passes {
    pub const BOTH: Passes = Passes {
        row_stats: true,
        column_sums: true,
    };
}

/// The compiled pipelines, and the large buffers of the last run kept for the
/// next one (a series of checkpoints reuses them instead of allocating and
/// zero-filling two staging and two chunk buffers per file).
pub struct RowStatsKernels {
    hash: wgpu::ComputePipeline,
    sums: wgpu::ComputePipeline,
    /// (staging, mapped and ready to write; chunk buffer), same size each.
    spare: Mutex<Vec<(wgpu::Buffer, wgpu::Buffer)>>,
}

/// Shapes shared by every chunk of one matrix.
struct Layout {
    plan: ChunkPlan,
    units: u32,
    tpr: u32,
    rows_per_block: u32,
    blocks: u32,
    /// Threads of `column_sums` per row: one per 32-bit word of 2-byte
    /// columns, else one per column.
    column_groups: usize,
}

impl Layout {
    fn new(ctx: &GpuContext, m: &Matrix, opts: GpuOptions) -> Result<Self> {
        let too_big = |what: &str| {
            Error::Usage(format!(
                "the matrix is too large for this GPU adapter ({what}); use --device cpu"
            ))
        };
        let limit = ctx.max_binding();
        let plan = ChunkPlan::new(m.rows, m.row_bytes(), limit, opts.max_chunk_bytes)?;
        if m.cols > (MAX_GROUPS as usize) * 256 {
            return Err(too_big("more than 16,776,960 columns"));
        }
        let units = hash::units(m.row_bytes());
        // Short blocks give column_sums enough workgroups to fill a large GPU:
        // 256-row blocks made only 256 workgroups of 4096-wide bf16 rows per
        // 64 MiB chunk, about a quarter of the threads an H200 runs at once.
        let rows_per_block = (plan.rows_per_chunk.div_ceil(MAX_GROUPS as usize)).max(32) as u32;
        let blocks = plan.rows_per_chunk.div_ceil(rows_per_block as usize) as u32;
        if blocks as u64 * m.cols as u64 * 4 > limit {
            return Err(too_big("column partial sums exceed one binding"));
        }
        if m.rows as u64 * STAT_BYTES > ctx.limits.max_buffer_size {
            return Err(too_big("per-row results exceed one buffer"));
        }
        Ok(Self {
            plan,
            units,
            tpr: opts
                .threads_per_row
                .map(|t| t.next_power_of_two().clamp(1, 256))
                .unwrap_or_else(|| threads_per_row(units)),
            rows_per_block,
            blocks,
            column_groups: match m.dtype.size() {
                2 => m.cols.div_ceil(2),
                _ => m.cols,
            },
        })
    }

    fn hash_params(&self, m: &Matrix, rows: usize, eq: Equality) -> HashParams {
        HashParams {
            rows: rows as u32,
            cols: m.cols as u32,
            row_bytes: m.row_bytes() as u32,
            units: self.units,
            dtype: m.dtype.shader_code(),
            numeric: (eq == Equality::Numeric) as u32,
            tpr: self.tpr,
            // 16-byte loads need rows of whole 16-byte quads (f64 rows take
            // their own loop).
            quads: if m.row_bytes().is_multiple_of(16) && m.dtype != crate::dtype::Dtype::F64 {
                (m.row_bytes() / 16) as u32
            } else {
                0
            },
        }
    }

    fn sum_params(&self, m: &Matrix, rows: usize) -> SumParams {
        SumParams {
            rows: rows as u32,
            cols: m.cols as u32,
            row_bytes: m.row_bytes() as u32,
            dtype: m.dtype.shader_code(),
            rows_per_block: self.rows_per_block,
            groups: self.column_groups as u32,
            _pad: [0; 2],
        }
    }
}

/// Device buffers for one chunk in flight.
struct Slot {
    staging: wgpu::Buffer,
    data: wgpu::Buffer,
    hash_params: wgpu::Buffer,
    sum_params: wgpu::Buffer,
    stats: wgpu::Buffer,
    hash_bind: wgpu::BindGroup,
    sum_bind: wgpu::BindGroup,
    /// Set while the staging buffer is being mapped again after its last use.
    remap: Option<Receiver<Result<(), wgpu::BufferAsyncError>>>,
    /// The submission that last used this slot.
    submitted: Option<wgpu::SubmissionIndex>,
}

/// A matrix uploaded whole, for timing the kernels alone.
pub struct Resident {
    layout: Layout,
    chunks: Vec<(usize, wgpu::BindGroup, wgpu::BindGroup, wgpu::Buffer)>,
    hash_params: Vec<HashParams>,
    _keep: Vec<wgpu::Buffer>,
}

fn buffer(ctx: &GpuContext, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(16),
        usage,
        mapped_at_creation: false,
    })
}

/// A write-only view of mapped memory handed to another thread.
struct SendWriteOnly<'a>(wgpu::WriteOnly<'a, [u8]>);

// SAFETY: `WriteOnly<[T]>` is a unique handle to a disjoint range of mapped
// memory, like `&mut [T]`; wgpu implements `Send` for sized `T` only, and the
// slice case is sound for the same reason (`u8` is `Send`).
unsafe impl Send for SendWriteOnly<'_> {}

/// Copies `src` into mapped memory from several threads.
fn par_copy(dst: SendWriteOnly<'_>, src: &[u8]) {
    const PIECE: usize = 8 << 20;
    let mut dst = dst;
    if src.len() <= PIECE {
        dst.0.copy_from_slice(src);
        return;
    }
    let mid = src.len() / 2;
    let (a, b) = dst.0.split_at(mid);
    let (a, b) = (SendWriteOnly(a), SendWriteOnly(b));
    rayon::join(|| par_copy(a, &src[..mid]), || par_copy(b, &src[mid..]));
}

impl RowStatsKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            hash: pipeline(ctx, "row_stats", ROW_STATS_WGSL),
            sums: pipeline(ctx, "column_sums", COLUMN_SUMS_WGSL),
            spare: Mutex::new(Vec::new()),
        }
    }

    fn bind(
        &self,
        ctx: &GpuContext,
        pipe: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let layout = pipe.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        })
    }

    fn encode_passes(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layout: &Layout,
        rows: usize,
        hash_bind: &wgpu::BindGroup,
        sum_bind: &wgpu::BindGroup,
        passes: Passes,
    ) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        if passes.row_stats {
            pass.set_pipeline(&self.hash);
            pass.set_bind_group(0, hash_bind, &[]);
            let rows_per_group = (256 / layout.tpr) as usize;
            let (x, y) = grid(rows.div_ceil(rows_per_group) as u32);
            pass.dispatch_workgroups(x, y, 1);
        }
        if passes.column_sums {
            pass.set_pipeline(&self.sums);
            pass.set_bind_group(0, sum_bind, &[]);
            let blocks = rows.div_ceil(layout.rows_per_block as usize) as u32;
            pass.dispatch_workgroups(layout.column_groups.div_ceil(256) as u32, blocks, 1);
        }
    }

    /// Hashes, norms, NaN flags and column sums of the whole matrix, streamed.
    pub fn run(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        eq: Equality,
        opts: GpuOptions,
        progress: &Progress,
    ) -> Result<RowStats> {
        use wgpu::BufferUsages as U;
        let layout = Layout::new(ctx, m, opts)?;
        let plan = layout.plan;
        let chunk_buf = plan.buffer_bytes();
        let stat_buf = plan.rows_per_chunk as u64 * STAT_BYTES;
        let partial_bytes = layout.blocks as u64 * m.cols as u64 * 4;
        let partial = buffer(ctx, "partials", partial_bytes, U::STORAGE | U::COPY_SRC);
        let n_slots = plan.len().min(2);
        let mut spare = self
            .spare
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        spare.retain(|(staging, _)| staging.size() >= chunk_buf);
        let mut slots: Vec<Slot> = (0..n_slots)
            .map(|_| {
                let (staging, data) = spare.pop().unwrap_or_else(|| {
                    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("staging"),
                        size: chunk_buf,
                        usage: U::MAP_WRITE | U::COPY_SRC,
                        mapped_at_creation: true,
                    });
                    (
                        staging,
                        buffer(ctx, "chunk", chunk_buf, U::STORAGE | U::COPY_DST),
                    )
                });
                let hash_params = buffer(ctx, "hash params", 32, U::UNIFORM | U::COPY_DST);
                let sum_params = buffer(ctx, "sum params", 32, U::UNIFORM | U::COPY_DST);
                let stats = buffer(ctx, "stats", stat_buf, U::STORAGE | U::COPY_SRC);
                let hash_bind = self.bind(ctx, &self.hash, &[&data, &hash_params, &stats, &data]);
                let sum_bind = self.bind(ctx, &self.sums, &[&data, &sum_params, &partial]);
                Slot {
                    staging,
                    data,
                    hash_params,
                    sum_params,
                    stats,
                    hash_bind,
                    sum_bind,
                    remap: None,
                    submitted: None,
                }
            })
            .collect();
        drop(spare);
        let stats_back = buffer(
            ctx,
            "stats readback",
            m.rows as u64 * STAT_BYTES,
            U::MAP_READ | U::COPY_DST,
        );
        let partial_back = buffer(
            ctx,
            "partials readback",
            partial_bytes,
            U::MAP_READ | U::COPY_DST,
        );
        ctx.check()?;

        let rb = m.row_bytes();
        for ci in 0..plan.len() {
            let rows = plan.chunk(ci);
            let n_rows = rows.len();
            let src = &m.bytes[rows.start * rb..rows.end * rb];
            let slot = &mut slots[ci % n_slots];
            if let (Some(rx), Some(index)) = (slot.remap.take(), slot.submitted.take()) {
                // Wait only for this slot's previous chunk, so the chunk submitted
                // just before keeps the GPU busy while we copy.
                ctx.device
                    .poll(wgpu::PollType::Wait {
                        submission_index: Some(index),
                        timeout: None,
                    })
                    .map_err(|e| Error::Gpu(e.to_string()))?;
                rx.recv()
                    .map_err(|e| Error::Gpu(e.to_string()))?
                    .map_err(|e| Error::Gpu(e.to_string()))?;
            }
            // The rows, then zeros up to a whole word and one word more (the
            // kernels may read one word past a row that ends mid-word).
            let copy = (src.len() as u64 + 4).div_ceil(4) * 4;
            {
                let mut view = slot
                    .staging
                    .slice(..copy)
                    .get_mapped_range_mut()
                    .map_err(|e| Error::Gpu(e.to_string()))?;
                let (body, mut pad) = view.slice(..).split_at(src.len());
                par_copy(SendWriteOnly(body), src);
                pad.fill(0);
            }
            slot.staging.unmap();
            ctx.queue.write_buffer(
                &slot.hash_params,
                0,
                bytemuck::bytes_of(&layout.hash_params(m, n_rows, eq)),
            );
            ctx.queue.write_buffer(
                &slot.sum_params,
                0,
                bytemuck::bytes_of(&layout.sum_params(m, n_rows)),
            );
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&slot.staging, 0, &slot.data, 0, copy);
            self.encode_passes(
                &mut enc,
                &layout,
                n_rows,
                &slot.hash_bind,
                &slot.sum_bind,
                Passes::BOTH,
            );
            enc.copy_buffer_to_buffer(
                &slot.stats,
                0,
                &stats_back,
                rows.start as u64 * STAT_BYTES,
                n_rows as u64 * STAT_BYTES,
            );
            slot.submitted = Some(ctx.queue.submit([enc.finish()]));
            // Map the staging buffer again once the GPU has copied out of it:
            // for this slot's next chunk, or for the next survey.
            let (tx, rx) = channel();
            slot.staging
                .slice(..)
                .map_async(wgpu::MapMode::Write, move |r| {
                    let _ = tx.send(r);
                });
            slot.remap = Some(rx);
            ctx.check()?;
            progress.inc(src.len() as u64);
        }
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&partial, 0, &partial_back, 0, partial_bytes);
        ctx.queue.submit([enc.finish()]);
        let stats = ctx.read_back(&stats_back, m.rows as u64 * STAT_BYTES)?;
        let partials = ctx.read_back(&partial_back, partial_bytes)?;
        // The device is idle now, so every staging buffer is mapped again.
        let mut keep = Vec::new();
        for slot in slots {
            if let Some(Ok(Ok(()))) = slot.remap.map(|rx| rx.try_recv()) {
                keep.push((slot.staging, slot.data));
            }
        }
        if let Ok(mut spare) = self.spare.lock() {
            *spare = keep;
        }
        Ok(decode_stats(&stats, &partials, m.cols, layout.units))
    }

    /// Uploads every chunk into its own buffer (benchmarks only).
    pub fn upload_all(&self, ctx: &GpuContext, m: &Matrix, opts: GpuOptions) -> Result<Resident> {
        use wgpu::BufferUsages as U;
        let layout = Layout::new(ctx, m, opts)?;
        let plan = layout.plan;
        let rb = m.row_bytes();
        let partial = buffer(
            ctx,
            "partials",
            layout.blocks as u64 * m.cols as u64 * 4,
            U::STORAGE,
        );
        let mut chunks = Vec::new();
        let mut keep = vec![];
        let mut hash_params = vec![];
        for ci in 0..plan.len() {
            let rows = plan.chunk(ci);
            let mut bytes = m.bytes[rows.start * rb..rows.end * rb].to_vec();
            bytes.resize(plan.buffer_bytes() as usize, 0);
            let data = buffer(ctx, "chunk", plan.buffer_bytes(), U::STORAGE | U::COPY_DST);
            ctx.queue.write_buffer(&data, 0, &bytes);
            let hp = buffer(ctx, "hash params", 32, U::UNIFORM | U::COPY_DST);
            let sp = buffer(ctx, "sum params", 32, U::UNIFORM | U::COPY_DST);
            let hparams = layout.hash_params(m, rows.len(), Equality::Bitwise);
            ctx.queue.write_buffer(&hp, 0, bytemuck::bytes_of(&hparams));
            ctx.queue.write_buffer(
                &sp,
                0,
                bytemuck::bytes_of(&layout.sum_params(m, rows.len())),
            );
            let stats = buffer(ctx, "stats", rows.len() as u64 * STAT_BYTES, U::STORAGE);
            let hb = self.bind(ctx, &self.hash, &[&data, &hp, &stats, &data]);
            let sb = self.bind(ctx, &self.sums, &[&data, &sp, &partial]);
            chunks.push((rows.len(), hb, sb, hp.clone()));
            hash_params.push(hparams);
            keep.extend([data, sp, stats]);
            ctx.queue.submit([]);
            ctx.wait()?;
        }
        keep.push(partial);
        Ok(Resident {
            layout,
            chunks,
            hash_params,
            _keep: keep,
        })
    }

    /// Runs the selected kernels over an uploaded matrix (benchmarks only).
    pub fn run_resident(
        &self,
        ctx: &GpuContext,
        r: &Resident,
        eq: Equality,
        passes: Passes,
    ) -> Result<()> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for ((rows, hb, sb, hp), params) in r.chunks.iter().zip(&r.hash_params) {
            let mut p = *params;
            p.numeric = (eq == Equality::Numeric) as u32;
            ctx.queue.write_buffer(hp, 0, bytemuck::bytes_of(&p));
            self.encode_passes(&mut enc, &r.layout, *rows, hb, sb, passes);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.check()
    }
}

/// Unpacks the kernels' per-row words and adds the column partials in f64.
fn decode_stats(stats: &[u8], partials: &[u8], cols: usize, units: u32) -> RowStats {
    // Copied out rather than cast: a Vec<u8> need not be 4-byte aligned.
    let words: Vec<[u32; 4]> = bytemuck::pod_collect_to_vec(stats);
    let mut out = RowStats {
        hashes: Vec::with_capacity(words.len()),
        norms: Vec::with_capacity(words.len()),
        has_nan: Vec::with_capacity(words.len()),
        column_sums: vec![0f64; cols],
    };
    for w in &words {
        out.hashes.push(Lanes { a: w[0], b: w[1] }.finish(units));
        out.norms.push(f32::from_bits(w[2]) as f64);
        out.has_nan.push(w[3] & 1 != 0);
    }
    // Σ over blocks, in parallel over runs of columns (one task per run, not
    // one parallel loop per block: thousands of small loops cost more than the sums).
    let partials: Vec<f32> = bytemuck::pod_collect_to_vec(partials);
    const RUN: usize = 1024;
    out.column_sums
        .par_chunks_mut(RUN)
        .enumerate()
        .for_each(|(i, sums)| {
            for block in partials.chunks_exact(cols) {
                let part = &block[i * RUN..i * RUN + sums.len()];
                sums.iter_mut().zip(part).for_each(|(s, &p)| *s += p as f64);
            }
        });
    out
}

/// Size in bytes of the uniform buffers, checked against the structs.
const _: () =
    assert!(std::mem::size_of::<HashParams>() == 32 && std::mem::size_of::<SumParams>() == 32);
