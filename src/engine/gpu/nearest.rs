//! Nearest neighbours and threshold pairs over a vector set:
//! `shaders/nearest.wgsl`, one tiled kernel in two modes.
//!
//! No host copy of the set is made: each panel's rows are gathered from the
//! matrix straight into mapped staging memory as the panel is uploaded, so
//! host memory beyond the mapped matrix is a few panels and O(n) indices.
//! Queries go in panels that fit one binding (usually one panel), each
//! uploaded through the same staging memory a target panel at a time; for
//! each, the targets stream through [`Stream`] in panels of at most 64 MiB
//! (or the test hook `max_chunk_bytes`), and each target panel is swept in
//! dispatches of bounded work, all recorded in the panel's one submission.
//! Mode 0 keeps each query's [`Top2`] in a device buffer that
//! every dispatch merges into (a workgroup owns its queries, so no races);
//! mode 1 appends pairs through an atomic counter, and runs again with room
//! for all of them if the first guess was short.

use bytemuck::{Pod, Zeroable};

use super::chunks::{row_stride, ChunkPlan, SparePool, Stream};
use super::{bind, buffer, dispatch_split, filled, pipeline, uniform, GpuContext};
use crate::engine::{Engine, GpuOptions, Top2, VectorSet};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::progress::Progress;

const NEAREST_WGSL: &str = include_str!("../../../shaders/nearest.wgsl");

/// Queries per workgroup, and targets per step of its loop.
const BLOCK: usize = 64;
/// Query × target × column products per dispatch, about: a few milliseconds
/// on a large GPU, so that no dispatch runs long.
const WORK_PER_DISPATCH: u64 = 1 << 34;
/// Workgroups that keep a large GPU busy (an H200 has 132 multiprocessors):
/// with fewer query blocks than this, the targets are split among copies of
/// the grid, each keeping its own Top2 (merged on the host).
const BUSY_GROUPS: usize = 2048;
/// Pairs room of the first try, per query (at least 64 Ki pairs).
const PAIRS_PER_QUERY: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    dtype: u32,
    cols: u32,
    stride: u32,
    mode: u32,
    q_count: u32,
    q_first: u32,
    t_begin: u32,
    t_end: u32,
    t_first: u32,
    cap: u32,
    inf: f32,
    q_total: u32,
}

/// What one sweep collects.
enum Mode<'a> {
    Nearest,
    Within { thresholds: &'a [f32], cap: usize },
}

/// The compiled pipeline and the streaming buffers kept between calls.
pub struct NearestKernel {
    pipe: wgpu::ComputePipeline,
    spare: SparePool,
}

/// Device buffers holding a sweep's results.
struct Outputs {
    /// Copies of the grid along z, each over its share of the targets.
    splits: usize,
    tops: wgpu::Buffer,
    pairs: wgpu::Buffer,
    count: wgpu::Buffer,
}

impl NearestKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            pipe: pipeline(ctx, "nearest", NEAREST_WGSL),
            spare: SparePool::default(),
        }
    }

    /// [`Engine::nearest_approx`].
    pub fn nearest(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        opts: GpuOptions,
        progress: &Progress,
    ) -> Result<Vec<Top2>> {
        use wgpu::BufferUsages as U;
        if queries.is_empty() || set.rows.is_empty() {
            return Ok(vec![Top2::EMPTY; queries.len()]);
        }
        let out = self.sweep(ctx, m, set, queries, Mode::Nearest, opts, progress)?;
        let bytes = out.splits as u64 * queries.len() as u64 * 16;
        let back = buffer(ctx, "tops readback", bytes, U::MAP_READ | U::COPY_DST);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&out.tops, 0, &back, 0, bytes);
        ctx.queue.submit([enc.finish()]);
        let words: Vec<[u32; 4]> = bytemuck::pod_collect_to_vec(&ctx.read_back(&back, bytes)?);
        let top = |w: &[u32; 4]| Top2 {
            best: f32::from_bits(w[0]),
            best_index: w[1],
            second: f32::from_bits(w[2]),
        };
        // Each split saw its own targets: merge them.
        let mut tops: Vec<Top2> = words[..queries.len()].iter().map(top).collect();
        for split in words.chunks_exact(queries.len()).skip(1) {
            for (t, w) in tops.iter_mut().zip(split) {
                *t = t.merge(top(w));
            }
        }
        Ok(tops)
    }

    /// [`Engine::pairs_within`].
    #[allow(clippy::too_many_arguments)]
    pub fn pairs_within(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        thresholds: &[f32],
        opts: GpuOptions,
        progress: &Progress,
    ) -> Result<Vec<(u32, u32)>> {
        use wgpu::BufferUsages as U;
        if queries.is_empty() || set.rows.is_empty() {
            return Ok(Vec::new());
        }
        let max_pairs = (ctx.max_binding() / 8) as usize;
        let mut cap = (queries.len() * PAIRS_PER_QUERY).clamp(1 << 16, max_pairs);
        loop {
            let mode = Mode::Within { thresholds, cap };
            let out = self.sweep(ctx, m, set, queries, mode, opts, progress)?;
            let back = buffer(ctx, "count readback", 16, U::MAP_READ | U::COPY_DST);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&out.count, 0, &back, 0, 4);
            ctx.queue.submit([enc.finish()]);
            let count: Vec<u32> = bytemuck::pod_collect_to_vec(&ctx.read_back(&back, 4)?);
            let found = count[0] as usize;
            if found > cap {
                // Short of room: again with room for all of them, or on the
                // CPU when even that does not fit one binding (the counter
                // saturates near 2^32, so it cannot be trusted beyond that).
                if found <= max_pairs && found < u32::MAX as usize / 2 {
                    cap = found;
                    continue;
                }
                return crate::engine::cpu::CpuEngine.pairs_within(
                    m,
                    set,
                    queries,
                    thresholds,
                    &Progress::hidden(),
                );
            }
            let bytes = found as u64 * 8;
            let back = buffer(ctx, "pairs readback", bytes, U::MAP_READ | U::COPY_DST);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&out.pairs, 0, &back, 0, bytes);
            ctx.queue.submit([enc.finish()]);
            let pairs: Vec<[u32; 2]> = bytemuck::pod_collect_to_vec(&ctx.read_back(&back, bytes)?);
            return Ok(pairs.into_iter().map(|[q, t]| (q, t)).collect());
        }
    }

    /// Runs the kernel over every query against every target and leaves the
    /// results on the device.
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        mode: Mode,
        opts: GpuOptions,
        progress: &Progress,
    ) -> Result<Outputs> {
        use wgpu::BufferUsages as U;
        let q_rows: Vec<usize> = queries.iter().map(|&q| set.rows[q as usize]).collect();
        let stride = row_stride(m);
        let row_bytes = stride * 4;
        let limit = ctx.max_binding();
        let t_plan = ChunkPlan::new(set.rows.len(), row_bytes, limit, opts.max_chunk_bytes)?;
        // Query panels as large as one binding takes (uploaded a target
        // panel at a time); under the test hook, three target panels, so that
        // a query panel takes several uploads and there are several panels.
        let q_plan = ChunkPlan::new(
            queries.len(),
            row_bytes,
            limit,
            Some(opts.max_chunk_bytes.map_or(limit, |b| b.saturating_mul(3))),
        )?;
        let too_big = (set.rows.len() as u64 * 4).max(queries.len() as u64 * 16) > limit;
        if too_big || set.rows.len() >= u32::MAX as usize {
            return Err(Error::Usage(format!(
                "{} vectors are too many for this GPU adapter's bindings; use --device cpu",
                set.rows.len()
            )));
        }
        let (mode_code, cap) = match mode {
            Mode::Nearest => (0, 0),
            Mode::Within { cap, .. } => (1, cap),
        };
        let labels = filled(ctx, "labels", bytemuck::cast_slice(set.labels), U::STORAGE);
        let info: Vec<[u32; 2]> = queries
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let thr = match mode {
                    Mode::Nearest => 0,
                    Mode::Within { thresholds, .. } => thresholds[i].to_bits(),
                };
                [q, thr]
            })
            .collect();
        let info = filled(ctx, "query info", bytemuck::cast_slice(&info), U::STORAGE);
        // Targets per dispatch: a whole number of blocks, within the work
        // bound; under the test hook, two blocks split three ways (one split
        // then has none), to exercise the merging.
        let (t_per_dispatch, splits) = match opts.max_chunk_bytes {
            Some(_) => (2 * BLOCK, 3),
            None => {
                let per_target = q_plan.rows_per_chunk as u64 * m.cols.max(1) as u64;
                let t = ((WORK_PER_DISPATCH / per_target) as usize / BLOCK).max(1) * BLOCK;
                let q_groups = q_plan.rows_per_chunk.div_ceil(BLOCK);
                let blocks = t.min(t_plan.rows_per_chunk).div_ceil(BLOCK);
                (t, BUSY_GROUPS.div_ceil(q_groups).clamp(1, blocks))
            }
        };
        let out = if mode_code == 0 {
            let empty = [
                Top2::EMPTY.best.to_bits(),
                Top2::EMPTY.best_index,
                Top2::EMPTY.second.to_bits(),
                0,
            ];
            let tops = vec![empty; splits * queries.len()];
            Outputs {
                splits,
                tops: filled(
                    ctx,
                    "tops",
                    bytemuck::cast_slice(&tops),
                    U::STORAGE | U::COPY_SRC,
                ),
                pairs: buffer(ctx, "no pairs", 16, U::STORAGE),
                count: buffer(ctx, "no count", 16, U::STORAGE),
            }
        } else {
            Outputs {
                splits,
                tops: buffer(ctx, "no tops", 16, U::STORAGE),
                pairs: buffer(ctx, "pairs", cap as u64 * 8, U::STORAGE | U::COPY_SRC),
                count: filled(ctx, "pair count", &[0; 16], U::STORAGE | U::COPY_SRC),
            }
        };
        let q_buf = buffer(
            ctx,
            "query panel",
            q_plan.buffer_bytes(),
            U::STORAGE | U::COPY_DST,
        );
        let mut stream = Stream::new(
            ctx,
            t_plan.buffer_bytes(),
            q_plan.len() * t_plan.len(),
            &self.spare,
        );
        let mut ci = 0;
        for qp in 0..q_plan.len() {
            let qr = q_plan.chunk(qp);
            // The query panel, a target panel's worth of rows at a time (the
            // staging buffers hold one target panel).
            for start in (qr.start..qr.end).step_by(t_plan.rows_per_chunk) {
                let end = (start + t_plan.rows_per_chunk).min(qr.end);
                let offset = ((start - qr.start) * row_bytes) as u64;
                stream.upload_rows(ctx, ci, m, &q_rows[start..end], &q_buf, offset)?;
                ci += 1;
            }
            let q_groups = qr.len().div_ceil(BLOCK) as u32;
            for tp in 0..t_plan.len() {
                let tr = t_plan.chunk(tp);
                stream.push_rows(ctx, ci, m, &set.rows[tr.clone()], |enc, _, data| {
                    for t0 in (0..tr.len()).step_by(t_per_dispatch) {
                        let p = Params {
                            dtype: m.dtype.shader_code(),
                            cols: m.cols as u32,
                            stride: stride as u32,
                            mode: mode_code,
                            q_count: qr.len() as u32,
                            q_first: qr.start as u32,
                            t_begin: t0 as u32,
                            t_end: (t0 + t_per_dispatch).min(tr.len()) as u32,
                            t_first: tr.start as u32,
                            cap: cap as u32,
                            inf: f32::INFINITY,
                            q_total: queries.len() as u32,
                        };
                        let params = uniform(ctx, "nearest params", &p);
                        let group = bind(
                            ctx,
                            &self.pipe,
                            &[
                                &q_buf, data, &labels, &info, &params, &out.tops, &out.pairs,
                                &out.count,
                            ],
                        );
                        dispatch_split(enc, &self.pipe, &group, q_groups, splits as u32);
                    }
                })?;
                ci += 1;
                progress.inc((qr.len() * tr.len() * m.row_bytes()) as u64);
                if progress.interrupted() {
                    // What is queued runs to its end; the caller goes on.
                    return Err(crate::error::Error::Interrupted);
                }
            }
        }
        // Idle, so that the staging buffers are mapped again for the next
        // call; a chunk pair can hold the whole sweep, so the wait itself
        // gives way to an interrupt.
        ctx.wait_or_interrupt(progress)?;
        stream.finish(ctx, &self.spare);
        Ok(out)
    }
}

/// Size in bytes of the uniform buffer, checked against the struct.
const _: () = assert!(std::mem::size_of::<Params>() == 48);
