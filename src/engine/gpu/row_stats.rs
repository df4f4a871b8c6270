//! The per-row pass: `shaders/row_stats.wgsl` (hash lanes, norm, NaN flag),
//! with [`column_sums`](super::column_sums) in the same submissions, streamed
//! chunk by chunk ([`Stream`]).

use bytemuck::{Pod, Zeroable};

use super::chunks::{ChunkPlan, SparePool, Stream};
use super::column_sums::{self, ColumnSums, SumParams};
use super::{bind, buffer, grid, pipeline, GpuContext, MAX_GROUPS};
use crate::engine::hash::{self, Lanes};
use crate::engine::{GpuOptions, RowStats};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::progress::Progress;
use crate::types::Equality;

const ROW_STATS_WGSL: &str = include_str!("../../../shaders/row_stats.wgsl");
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

/// Threads sharing one row: about four units each, a power of two up to 32
/// (one warp or less per row). In two sweeps on an H200 (BENCHMARKS.md), 32
/// and 64 threads per row were the fastest on 4096- and 16384-wide bf16 rows;
/// 128 and 256 (seven or eight barrier steps to reduce) fell behind, by up to
/// 4x on the wider rows.
pub(super) fn threads_per_row(units: u32) -> u32 {
    units.div_ceil(4).next_power_of_two().clamp(1, 32)
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
    sums: ColumnSums,
    spare: SparePool,
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
        SumParams::new(m, rows, self.rows_per_block, self.column_groups)
    }
}

/// Per-slot parameters, results and bind groups of the streamed run.
struct SlotBinds {
    hash_params: wgpu::Buffer,
    sum_params: wgpu::Buffer,
    stats: wgpu::Buffer,
    hash_bind: wgpu::BindGroup,
    sum_bind: wgpu::BindGroup,
}

/// A matrix uploaded whole, for timing the kernels alone.
pub struct Resident {
    layout: Layout,
    chunks: Vec<(usize, wgpu::BindGroup, wgpu::BindGroup, wgpu::Buffer)>,
    hash_params: Vec<HashParams>,
    _keep: Vec<wgpu::Buffer>,
}

impl RowStatsKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            hash: pipeline(ctx, "row_stats", ROW_STATS_WGSL),
            sums: ColumnSums::new(ctx),
            spare: SparePool::default(),
        }
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
            let blocks = rows.div_ceil(layout.rows_per_block as usize) as u32;
            self.sums
                .encode(&mut pass, sum_bind, layout.column_groups, blocks);
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
        let mut stream = Stream::new(ctx, chunk_buf, plan.len(), &self.spare);
        let binds: Vec<SlotBinds> = (0..stream.len())
            .map(|i| {
                let data = stream.data(i);
                let hash_params = buffer(ctx, "hash params", 32, U::UNIFORM | U::COPY_DST);
                let sum_params = buffer(ctx, "sum params", 32, U::UNIFORM | U::COPY_DST);
                let stats = buffer(ctx, "stats", stat_buf, U::STORAGE | U::COPY_SRC);
                let hash_bind = bind(ctx, &self.hash, &[data, &hash_params, &stats, data]);
                let sum_bind = bind(ctx, self.sums.pipe(), &[data, &sum_params, &partial]);
                SlotBinds {
                    hash_params,
                    sum_params,
                    stats,
                    hash_bind,
                    sum_bind,
                }
            })
            .collect();
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
            let slot = &binds[ci % binds.len()];
            // Queue writes land before the next submission: the one `push` makes.
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
            stream.push(ctx, ci, src, |enc, _, _| {
                self.encode_passes(
                    enc,
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
            })?;
            progress.inc(src.len() as u64);
        }
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&partial, 0, &partial_back, 0, partial_bytes);
        ctx.queue.submit([enc.finish()]);
        let stats = ctx.read_back(&stats_back, m.rows as u64 * STAT_BYTES)?;
        let partials = ctx.read_back(&partial_back, partial_bytes)?;
        // The device is idle now, so every staging buffer is mapped again.
        stream.finish(ctx, &self.spare);
        let mut out = decode_stats(&stats, m.rows, layout.units);
        out.column_sums = column_sums::decode(&partials, m.cols);
        Ok(out)
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
            let hb = bind(ctx, &self.hash, &[&data, &hp, &stats, &data]);
            let sb = bind(ctx, self.sums.pipe(), &[&data, &sp, &partial]);
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

/// Unpacks the kernel's per-row words (column sums are left empty).
fn decode_stats(stats: &[u8], rows: usize, units: u32) -> RowStats {
    // Copied out rather than cast: a Vec<u8> need not be 4-byte aligned.
    let words: Vec<[u32; 4]> = bytemuck::pod_collect_to_vec(stats);
    let mut out = RowStats {
        hashes: Vec::with_capacity(rows),
        norms: Vec::with_capacity(rows),
        has_nan: Vec::with_capacity(rows),
        column_sums: Vec::new(),
    };
    for w in &words {
        out.hashes.push(Lanes { a: w[0], b: w[1] }.finish(units));
        out.norms.push(f32::from_bits(w[2]) as f64);
        out.has_nan.push(w[3] & 1 != 0);
    }
    out
}

/// Size in bytes of the uniform buffer, checked against the struct.
const _: () = assert!(std::mem::size_of::<HashParams>() == 32);
