//! The GPU engine: wgpu compute pipelines over the raw row bits.
//!
//! The matrix is streamed in row chunks (`chunks`) through two alternating
//! device buffers: while the GPU hashes one chunk, the host copies the next
//! (in parallel) into staging memory. Per chunk, `row_stats` hashes every
//! row and takes its norm, and sums columns into per-block partials. The
//! pairwise distances between black holes run in `pairwise`; the all-pairs
//! kernels in `nearest` (nearest neighbours and threshold pairs, one tiled
//! kernel) and `project`, their rows gathered on the host and streamed in
//! panels through the same `chunks::Stream`. A series of checkpoints is
//! compared step by step in `step_diff`, the previous step kept on the device.

pub(crate) mod chunks;
pub(crate) mod column_sums;
pub(crate) mod context;
pub(crate) mod indicators;
pub(crate) mod nearest;
pub(crate) mod pairwise;
pub(crate) mod project;
pub(crate) mod row_stats;
pub(crate) mod step_diff;

use std::time::{Duration, Instant};

use super::{DeviceInfo, DeviceKind, Engine, Equality, GpuOptions, RowStats, Top2, VectorSet};
use crate::error::Result;
use crate::matrix::Matrix;
use crate::progress::Progress;
pub use context::GpuContext;

/// The WGSL helpers every kernel starts with.
const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Largest workgroup count along one dispatch dimension (WebGPU's minimum limit).
const MAX_GROUPS: u32 = 65535;

/// Compiles a kernel (prefixed with the common helpers) into a compute pipeline
/// with an automatic bind-group layout.
fn pipeline(ctx: &GpuContext, label: &str, source: &str) -> wgpu::ComputePipeline {
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(format!("{COMMON_WGSL}\n{source}").into()),
        });
    ctx.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        })
}

/// A device buffer of at least 16 bytes (the smallest any binding accepts).
fn buffer(ctx: &GpuContext, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(16),
        usage,
        mapped_at_creation: false,
    })
}

/// A buffer holding `contents` (zero-padded to at least 16 bytes).
fn filled(
    ctx: &GpuContext,
    label: &str,
    contents: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let mut padded;
    let contents = if contents.len() < 16 {
        padded = contents.to_vec();
        padded.resize(16, 0);
        &padded[..]
    } else {
        contents
    };
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage,
        })
}

/// A uniform buffer holding `value`, for one dispatch (a queue write would land
/// before every dispatch of the submission, not just the next one).
fn uniform<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, value: &T) -> wgpu::Buffer {
    filled(
        ctx,
        label,
        bytemuck::bytes_of(value),
        wgpu::BufferUsages::UNIFORM,
    )
}

/// A bind group for group 0 of `pipe`: `buffers[i]` whole at binding `i`.
fn bind(
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

/// A 2-D grid of `groups` workgroups within the per-dimension limit.
fn grid(groups: u32) -> (u32, u32) {
    let x = groups.clamp(1, MAX_GROUPS);
    (x, groups.div_ceil(x).max(1))
}

/// Records one dispatch of `pipe` over `groups` workgroups (a 2-D grid when
/// needed; the kernel finds its workgroup as `wg.y · num_workgroups.x + wg.x`)
/// in a pass of its own, so that the next dispatch sees its writes.
fn dispatch(
    enc: &mut wgpu::CommandEncoder,
    pipe: &wgpu::ComputePipeline,
    bind: &wgpu::BindGroup,
    groups: u32,
) {
    dispatch_split(enc, pipe, bind, groups, 1);
}

/// [`dispatch`] with `splits` copies of the grid along z (the kernel splits
/// its work by `wg.z`), for kernels whose own grid is too small to fill a GPU.
fn dispatch_split(
    enc: &mut wgpu::CommandEncoder,
    pipe: &wgpu::ComputePipeline,
    bind: &wgpu::BindGroup,
    groups: u32,
    splits: u32,
) {
    let (x, y) = grid(groups);
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    pass.set_pipeline(pipe);
    pass.set_bind_group(0, bind, &[]);
    pass.dispatch_workgroups(x, y, splits.clamp(1, MAX_GROUPS));
}

/// The wgpu engine.
pub struct GpuEngine {
    ctx: GpuContext,
    row_stats: row_stats::RowStatsKernels,
    pairwise: pairwise::PairwiseKernel,
    nearest: nearest::NearestKernel,
    project: project::ProjectKernel,
    indicators: indicators::IndicatorKernels,
    step_diff: step_diff::StepDiffKernel,
    opts: GpuOptions,
}

impl GpuEngine {
    /// Opens an adapter (software ones only when `allow_software`) and compiles the kernels.
    pub fn new(allow_software: bool, opts: GpuOptions) -> Result<Self> {
        let ctx = GpuContext::new(allow_software)?;
        let row_stats = row_stats::RowStatsKernels::new(&ctx);
        let pairwise = pairwise::PairwiseKernel::new(&ctx);
        let nearest = nearest::NearestKernel::new(&ctx);
        let project = project::ProjectKernel::new(&ctx);
        let indicators = indicators::IndicatorKernels::new(&ctx);
        let step_diff = step_diff::StepDiffKernel::new(&ctx);
        ctx.check()?;
        Ok(Self {
            ctx,
            row_stats,
            pairwise,
            nearest,
            project,
            indicators,
            step_diff,
            opts,
        })
    }

    /// The adapter's limits as granted to the device.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// Benchmark support: uploads the whole matrix once, then times `reps`
    /// runs of the selected kernels alone (no transfers): the mean per run.
    pub fn time_kernels(
        &self,
        m: &Matrix,
        eq: Equality,
        reps: usize,
        passes: row_stats::Passes,
    ) -> Result<Duration> {
        let resident = self.row_stats.upload_all(&self.ctx, m, self.opts)?;
        // Warm up for at least 200 ms so that the GPU's clocks have ramped up.
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_millis(200) {
            self.row_stats
                .run_resident(&self.ctx, &resident, eq, passes)?;
            self.ctx.wait()?;
        }
        let start = Instant::now();
        for _ in 0..reps {
            self.row_stats
                .run_resident(&self.ctx, &resident, eq, passes)?;
        }
        self.ctx.wait()?;
        Ok(start.elapsed() / reps.max(1) as u32)
    }
}

impl Engine for GpuEngine {
    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Gpu,
            adapter: self.ctx.info.name.clone(),
            backend: format!("{:?}", self.ctx.info.backend),
        }
    }

    fn row_stats(&self, m: &Matrix, eq: Equality, progress: &Progress) -> Result<RowStats> {
        self.row_stats.run(&self.ctx, m, eq, self.opts, progress)
    }

    fn pairwise_l2(&self, m: &Matrix, rows: &[usize]) -> Result<Vec<f64>> {
        self.pairwise.run(&self.ctx, m, rows)
    }

    fn nearest_approx(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        progress: &Progress,
    ) -> Result<Vec<Top2>> {
        self.nearest
            .nearest(&self.ctx, m, set, queries, self.opts, progress)
    }

    fn pairs_within(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        thresholds: &[f32],
        progress: &Progress,
    ) -> Result<Vec<(u32, u32)>> {
        self.nearest
            .pairs_within(&self.ctx, m, set, queries, thresholds, self.opts, progress)
    }

    fn project(&self, m: &Matrix, rows: &[usize], directions: &[f32]) -> Result<Vec<f32>> {
        self.project.run(&self.ctx, m, rows, directions, self.opts)
    }

    fn row_dots(
        &self,
        m: &Matrix,
        vectors: &[crate::engine::split::Split],
        centre: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        self.indicators
            .row_dots(&self.ctx, m, vectors, centre, self.opts)
    }

    fn weighted_column_sums(
        &self,
        m: &Matrix,
        weights: &crate::engine::split::Split,
    ) -> Result<Vec<f32>> {
        self.indicators
            .weighted_column_sums(&self.ctx, m, weights, self.opts)
    }

    fn step_differ(
        &self,
        dtype: crate::dtype::Dtype,
        rows: usize,
        cols: usize,
    ) -> Result<Box<dyn crate::engine::StepDiffer + Send>> {
        if rows == 0 || cols == 0 {
            // No step of this shape can be pushed (a matrix has rows and
            // columns); the CPU differ gives the same error for each.
            return Ok(Box::new(crate::engine::cpu::steps::CpuStepDiffer::new(
                dtype, rows, cols,
            )));
        }
        Ok(Box::new(step_diff::GpuStepDiffer::new(
            &self.ctx,
            &self.step_diff,
            dtype,
            rows,
            cols,
            self.opts,
        )?))
    }
}
