//! The indicator kernels: `shaders/row_dots.wgsl` (each row's dot products
//! with a few vectors, and its sum of squares) and `shaders/weighted_sums.wgsl`
//! (Xᵀw in per-block partials), streamed in row chunks through [`Stream`].
//! Both compute in [`split`](crate::engine::split)'s arithmetic, bit for bit
//! as the CPU does.

use std::borrow::Cow;

use bytemuck::{Pod, Zeroable};

use super::chunks::{ChunkPlan, Gathered, SparePool, Stream};
use super::{bind, buffer, dispatch, filled, pipeline, uniform, GpuContext};
use crate::engine::split::{sum_block_rows, Split};
use crate::engine::GpuOptions;
use crate::error::{Error, Result};
use crate::matrix::Matrix;

const ROW_DOTS_WGSL: &str = include_str!("../../../shaders/row_dots.wgsl");
const WEIGHTED_SUMS_WGSL: &str = include_str!("../../../shaders/weighted_sums.wgsl");

/// Rows per workgroup of `row_dots`; columns per workgroup of `weighted_sums`.
const BLOCK: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DotParams {
    dtype: u32,
    cols: u32,
    stride: u32,
    p: u32,
    rows: u32,
    first: u32,
    centre: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumParams {
    dtype: u32,
    cols: u32,
    stride: u32,
    rows: u32,
    first: u32,
    block_rows: u32,
    total: u32,
    _pad: u32,
}

/// The compiled pipelines and the streaming buffers kept between calls.
pub struct IndicatorKernels {
    dots: wgpu::ComputePipeline,
    sums: wgpu::ComputePipeline,
    spare: SparePool,
}

/// The rows `range` of `m` with each row starting on a 32-bit word, and the
/// words per row: the matrix's own bytes when its rows are whole words.
fn words<'a>(m: &Matrix<'a>, range: std::ops::Range<usize>) -> (Cow<'a, [u8]>, usize) {
    let rb = m.row_bytes();
    if rb.is_multiple_of(4) {
        (
            Cow::Borrowed(&m.bytes[range.start * rb..range.end * rb]),
            rb / 4,
        )
    } else {
        let rows: Vec<usize> = range.collect();
        let g = Gathered::new(m, &rows);
        (Cow::Owned(g.bytes), g.stride)
    }
}

impl IndicatorKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            dots: pipeline(ctx, "row_dots", ROW_DOTS_WGSL),
            sums: pipeline(ctx, "weighted_sums", WEIGHTED_SUMS_WGSL),
            spare: SparePool::default(),
        }
    }

    fn plan(ctx: &GpuContext, m: &Matrix, opts: GpuOptions) -> Result<ChunkPlan> {
        let stride_bytes = m.row_bytes().div_ceil(4) * 4;
        ChunkPlan::new(
            m.rows,
            stride_bytes,
            ctx.max_binding(),
            opts.max_chunk_bytes,
        )
    }

    /// Reads `bytes` bytes of `src` back to the host as f32.
    fn read(ctx: &GpuContext, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<f32>> {
        use wgpu::BufferUsages as U;
        let back = buffer(ctx, "indicators readback", bytes, U::MAP_READ | U::COPY_DST);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &back, 0, bytes);
        ctx.queue.submit([enc.finish()]);
        Ok(bytemuck::pod_collect_to_vec(&ctx.read_back(&back, bytes)?))
    }

    /// [`Engine::row_dots`](crate::engine::Engine::row_dots).
    pub fn row_dots(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        vectors: &[Split],
        centre: Option<&[f32]>,
        opts: GpuOptions,
    ) -> Result<Vec<f32>> {
        use wgpu::BufferUsages as U;
        let p = vectors.len();
        if p > 3
            || vectors.iter().any(|v| v.hi.len() != m.cols)
            || centre.is_some_and(|c| c.len() != m.cols)
        {
            return Err(Error::Gpu(
                "row_dots takes up to 3 vectors and a centre of the row width".into(),
            ));
        }
        let w = p + 1 + centre.is_some() as usize;
        let out_bytes = (m.rows * w * 4) as u64;
        let limit = ctx.max_binding();
        if out_bytes > limit || ((2 * p + 1) * m.cols * 4) as u64 > limit {
            // Results beyond one binding: the CPU computes the same bits.
            return Ok(crate::engine::cpu::indicators::row_dots(m, vectors, centre));
        }
        // High halves, low halves, then the centre.
        let halves: Vec<f32> = vectors
            .iter()
            .flat_map(|v| v.hi.iter())
            .chain(vectors.iter().flat_map(|v| v.lo.iter()))
            .chain(centre.into_iter().flatten())
            .copied()
            .collect();
        let vecs = filled(ctx, "vectors", bytemuck::cast_slice(&halves), U::STORAGE);
        let out = buffer(ctx, "row dots", out_bytes, U::STORAGE | U::COPY_SRC);
        let plan = Self::plan(ctx, m, opts)?;
        let mut stream = Stream::new(ctx, plan.buffer_bytes(), plan.len(), &self.spare);
        for ci in 0..plan.len() {
            let r = plan.chunk(ci);
            let (src, stride) = words(m, r.clone());
            stream.push(ctx, ci, &src, |enc, _, chunk| {
                let params = DotParams {
                    dtype: m.dtype.shader_code(),
                    cols: m.cols as u32,
                    stride: stride as u32,
                    p: p as u32,
                    rows: r.len() as u32,
                    first: r.start as u32,
                    centre: centre.is_some() as u32,
                    _pad: 0,
                };
                let params = uniform(ctx, "row_dots params", &params);
                let group = bind(ctx, &self.dots, &[chunk, &vecs, &params, &out]);
                dispatch(enc, &self.dots, &group, r.len().div_ceil(BLOCK) as u32);
            })?;
        }
        let values = Self::read(ctx, &out, out_bytes)?;
        stream.finish(ctx, &self.spare);
        Ok(values)
    }

    /// [`Engine::weighted_column_sums`](crate::engine::Engine::weighted_column_sums).
    pub fn weighted_column_sums(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        w: &Split,
        opts: GpuOptions,
    ) -> Result<Vec<f32>> {
        use wgpu::BufferUsages as U;
        if w.hi.len() != m.rows {
            return Err(Error::Gpu("one weight per row expected".into()));
        }
        let b = sum_block_rows(m.rows, m.cols);
        let blocks = m.rows.div_ceil(b);
        let out_bytes = (blocks * m.cols * 4) as u64;
        let limit = ctx.max_binding();
        if out_bytes > limit || (2 * m.rows * 4) as u64 > limit {
            return Ok(crate::engine::cpu::indicators::weighted_column_sums(m, w));
        }
        let halves: Vec<f32> = w.hi.iter().chain(&w.lo).copied().collect();
        let weights = filled(ctx, "weights", bytemuck::cast_slice(&halves), U::STORAGE);
        // Zero-initialised by wgpu.
        let partial = buffer(ctx, "weighted sums", out_bytes, U::STORAGE | U::COPY_SRC);
        let plan = Self::plan(ctx, m, opts)?;
        let mut stream = Stream::new(ctx, plan.buffer_bytes(), plan.len(), &self.spare);
        let groups = m.cols.div_ceil(BLOCK);
        for ci in 0..plan.len() {
            let r = plan.chunk(ci);
            let (src, stride) = words(m, r.clone());
            // Blocks this chunk touches.
            let touched = (r.end - 1) / b - r.start / b + 1;
            stream.push(ctx, ci, &src, |enc, _, chunk| {
                let params = SumParams {
                    dtype: m.dtype.shader_code(),
                    cols: m.cols as u32,
                    stride: stride as u32,
                    rows: r.len() as u32,
                    first: r.start as u32,
                    block_rows: b as u32,
                    total: m.rows as u32,
                    _pad: 0,
                };
                let params = uniform(ctx, "weighted_sums params", &params);
                let group = bind(ctx, &self.sums, &[chunk, &weights, &params, &partial]);
                dispatch(enc, &self.sums, &group, (touched * groups) as u32);
            })?;
        }
        let values = Self::read(ctx, &partial, out_bytes)?;
        stream.finish(ctx, &self.spare);
        Ok(values)
    }
}

/// Sizes in bytes of the uniform buffers, checked against the structs.
const _: () = assert!(std::mem::size_of::<DotParams>() == 32);
const _: () = assert!(std::mem::size_of::<SumParams>() == 32);
