//! Projections of rows onto a few directions: `shaders/project.wgsl`, the
//! rows streamed in panels through [`Stream`], each panel gathered from the
//! matrix straight into mapped staging memory (no host copy of the rows).

use bytemuck::{Pod, Zeroable};

use super::chunks::{row_stride, ChunkPlan, SparePool, Stream};
use super::{bind, buffer, dispatch, filled, pipeline, uniform, GpuContext};
use crate::engine::{Engine, GpuOptions};
use crate::error::Result;
use crate::matrix::Matrix;

const PROJECT_WGSL: &str = include_str!("../../../shaders/project.wgsl");

/// Rows per workgroup.
const BLOCK: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    dtype: u32,
    cols: u32,
    stride: u32,
    p: u32,
    rows: u32,
    first: u32,
    _pad: [u32; 2],
}

/// The compiled pipeline and the streaming buffers kept between calls.
pub struct ProjectKernel {
    pipe: wgpu::ComputePipeline,
    spare: SparePool,
}

impl ProjectKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            pipe: pipeline(ctx, "project", PROJECT_WGSL),
            spare: SparePool::default(),
        }
    }

    /// [`Engine::project`].
    pub fn run(
        &self,
        ctx: &GpuContext,
        m: &Matrix,
        rows: &[usize],
        directions: &[f32],
        opts: GpuOptions,
    ) -> Result<Vec<f32>> {
        use wgpu::BufferUsages as U;
        let p = directions.len() / m.cols.max(1);
        if rows.is_empty() || p == 0 {
            return Ok(Vec::new());
        }
        let out_bytes = (rows.len() * p * 4) as u64;
        let limit = ctx.max_binding();
        if out_bytes > limit || directions.len() as u64 * 4 > limit {
            // Results beyond one binding: rare enough to leave to the CPU.
            return crate::engine::cpu::CpuEngine.project(m, rows, directions);
        }
        let stride = row_stride(m);
        let row_bytes = stride * 4;
        let plan = ChunkPlan::new(rows.len(), row_bytes, limit, opts.max_chunk_bytes)?;
        let dirs = filled(
            ctx,
            "directions",
            bytemuck::cast_slice(&directions[..p * m.cols]),
            U::STORAGE,
        );
        let out = buffer(ctx, "projections", out_bytes, U::STORAGE | U::COPY_SRC);
        let mut stream = Stream::new(ctx, plan.buffer_bytes(), plan.len(), &self.spare);
        for ci in 0..plan.len() {
            let r = plan.chunk(ci);
            stream.push_rows(ctx, ci, m, &rows[r.clone()], |enc, _, chunk| {
                let params = Params {
                    dtype: m.dtype.shader_code(),
                    cols: m.cols as u32,
                    stride: stride as u32,
                    p: p as u32,
                    rows: r.len() as u32,
                    first: r.start as u32,
                    _pad: [0; 2],
                };
                let params = uniform(ctx, "project params", &params);
                let group = bind(ctx, &self.pipe, &[chunk, &dirs, &params, &out]);
                dispatch(enc, &self.pipe, &group, r.len().div_ceil(BLOCK) as u32);
            })?;
        }
        let back = buffer(
            ctx,
            "projections readback",
            out_bytes,
            U::MAP_READ | U::COPY_DST,
        );
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&out, 0, &back, 0, out_bytes);
        ctx.queue.submit([enc.finish()]);
        let values = bytemuck::pod_collect_to_vec(&ctx.read_back(&back, out_bytes)?);
        stream.finish(ctx, &self.spare);
        Ok(values)
    }
}

/// Size in bytes of the uniform buffer, checked against the struct.
const _: () = assert!(std::mem::size_of::<Params>() == 32);
