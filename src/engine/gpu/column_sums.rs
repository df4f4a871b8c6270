//! Column partial sums for the centroid: `shaders/column_sums.wgsl`, run in
//! the same streamed submissions as [`row_stats`](super::row_stats).

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use super::{pipeline, GpuContext};
use crate::matrix::Matrix;

const COLUMN_SUMS_WGSL: &str = include_str!("../../../shaders/column_sums.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct SumParams {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    dtype: u32,
    rows_per_block: u32,
    groups: u32,
    _pad: [u32; 2],
}

impl SumParams {
    /// Parameters for a chunk of `rows` rows of `m`.
    pub fn new(m: &Matrix, rows: usize, rows_per_block: u32, groups: usize) -> Self {
        Self {
            rows: rows as u32,
            cols: m.cols as u32,
            row_bytes: m.row_bytes() as u32,
            dtype: m.dtype.shader_code(),
            rows_per_block,
            groups: groups as u32,
            _pad: [0; 2],
        }
    }
}

/// The compiled pipeline.
pub struct ColumnSums {
    pipe: wgpu::ComputePipeline,
}

impl ColumnSums {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            pipe: pipeline(ctx, "column_sums", COLUMN_SUMS_WGSL),
        }
    }

    pub fn pipe(&self) -> &wgpu::ComputePipeline {
        &self.pipe
    }

    /// Records the kernel over `groups` column groups and `blocks` row blocks.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass,
        bind: &wgpu::BindGroup,
        groups: usize,
        blocks: u32,
    ) {
        pass.set_pipeline(&self.pipe);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(groups.div_ceil(256) as u32, blocks, 1);
    }
}

/// Adds the per-block partials (`blocks × cols` f32) in f64.
pub fn decode(partials: &[u8], cols: usize) -> Vec<f64> {
    let mut sums = vec![0f64; cols];
    // Σ over blocks, in parallel over runs of columns (one task per run, not
    // one parallel loop per block: thousands of small loops cost more than the sums).
    // Copied out rather than cast: a Vec<u8> need not be 4-byte aligned.
    let partials: Vec<f32> = bytemuck::pod_collect_to_vec(partials);
    const RUN: usize = 1024;
    sums.par_chunks_mut(RUN).enumerate().for_each(|(i, run)| {
        for block in partials.chunks_exact(cols) {
            let part = &block[i * RUN..i * RUN + run.len()];
            run.iter_mut().zip(part).for_each(|(s, &p)| *s += p as f64);
        }
    });
    sums
}

/// Size in bytes of the uniform buffer, checked against the struct.
const _: () = assert!(std::mem::size_of::<SumParams>() == 32);
