//! The on-device step differ: `shaders/step_diff.wgsl` compares each row of a
//! step with the same row of the step before, which stays on the device.
//!
//! Everything is made once per series: the steps are cut into row chunks
//! ([`ChunkPlan`], under the binding limit), and each chunk owns a staging
//! buffer and *two* device buffers that take turns holding the current and
//! the previous step (ping-pong; a bind group for each order), so a step's
//! bytes cross to the device once. One step is one submission — per chunk,
//! the copy out of staging, the kernel, and the copy of its per-row results
//! into one read-back buffer — and one wait, after which the staging buffers
//! are mapped again for the next step.
//!
//! The kernel hashes every row of every step (an unchanged row hashes as
//! before, so this is the CPU differ's result); at the first step there is no
//! previous step and only the hashes are reported, as the CPU does.

use std::ops::Range;
use std::sync::mpsc::{channel, Receiver};

use bytemuck::{Pod, Zeroable};

use super::chunks::{write_padded, ChunkPlan};
use super::row_stats::threads_per_row;
use super::{bind, buffer, filled, grid, pipeline, GpuContext};
use crate::dtype::Dtype;
use crate::engine::hash::{self, Lanes};
use crate::engine::{has_displacement, GpuOptions, StepDiffer};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::types::StepRows;

const STEP_DIFF_WGSL: &str = include_str!("../../../shaders/step_diff.wgsl");
/// Words of `out` per row: lane_a, lane_b, changed, linf, l1 low, l1 high.
const OUT_WORDS: usize = 6;
const OUT_BYTES: u64 = OUT_WORDS as u64 * 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    row_bytes: u32,
    units: u32,
    dtype: u32,
    tpr: u32,
    pad: [u32; 3],
}

/// The compiled pipeline, made once with the engine.
#[derive(Clone)]
pub struct StepDiffKernel {
    pipe: wgpu::ComputePipeline,
}

impl StepDiffKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            pipe: pipeline(ctx, "step_diff", STEP_DIFF_WGSL),
        }
    }
}

type MapResult = Receiver<std::result::Result<(), wgpu::BufferAsyncError>>;

/// One row chunk's buffers, kept for the whole series.
struct Chunk {
    rows: Range<usize>,
    /// Host-visible; mapped while the host writes the next step into it.
    staging: wgpu::Buffer,
    /// Set while `staging` is being mapped again after its last copy.
    remap: Option<MapResult>,
    /// The chunk's rows of two consecutive steps, taking turns.
    data: [wgpu::Buffer; 2],
    /// `binds[k]`: this step in `data[k]`, the previous one in `data[1 − k]`.
    binds: [wgpu::BindGroup; 2],
    /// Workgroups of one dispatch.
    groups: u32,
    /// Bytes copied out of staging at the last step.
    copied: u64,
}

/// A series' differ on the device (see the module documentation).
pub struct GpuStepDiffer {
    /// Clones of the engine's (wgpu handles are shared, not copied), so a
    /// differ lives apart from the engine that made it.
    ctx: GpuContext,
    kernel: StepDiffKernel,
    dtype: Dtype,
    rows: usize,
    cols: usize,
    units: u32,
    chunks: Vec<Chunk>,
    /// The per-row results of the chunk being run (each chunk's are copied
    /// to `readback` before the next chunk's kernel overwrites them).
    out: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Which of each chunk's two device buffers the next step goes to.
    turn: usize,
    /// Whether the other one holds the step pushed before.
    have_prev: bool,
    /// Kept alive for the bind groups.
    _params: Vec<wgpu::Buffer>,
}

impl GpuStepDiffer {
    /// Plans the chunks and allocates every buffer of the series.
    pub fn new(
        ctx: &GpuContext,
        kernel: &StepDiffKernel,
        dtype: Dtype,
        rows: usize,
        cols: usize,
        opts: GpuOptions,
    ) -> Result<Self> {
        use wgpu::BufferUsages as U;
        let too_big = |what: &str| {
            Error::Usage(format!(
                "steps of {rows}×{cols} {dtype} are too large for this GPU adapter ({what}); use --device cpu"
            ))
        };
        let row_bytes = cols
            .checked_mul(dtype.size())
            .ok_or_else(|| too_big("a row's byte count overflows"))?;
        let limit = ctx.max_binding();
        let mut plan = ChunkPlan::new(rows, row_bytes, limit, opts.max_chunk_bytes)?;
        // The per-row results of one chunk must fit one binding too.
        plan.rows_per_chunk = plan.rows_per_chunk.min((limit / OUT_BYTES) as usize).max(1);
        let readback_bytes = (rows as u64)
            .checked_mul(OUT_BYTES)
            .filter(|&b| b <= ctx.limits.max_buffer_size)
            .ok_or_else(|| too_big("per-row results exceed one buffer"))?;
        let units = hash::units(row_bytes);
        // A CPU adapter (lavapipe) runs a workgroup's threads as loops, and
        // pays dearly for each barrier of the reduction: 3,699×64 bf16 steps
        // took about 4 ms with 8 threads per row and 1 ms with one.
        let tpr = opts
            .threads_per_row
            .map(|t| t.next_power_of_two().clamp(1, 256))
            .unwrap_or_else(|| match ctx.info.device_type {
                wgpu::DeviceType::Cpu => 1,
                _ => threads_per_row(units),
            });
        let rows_per_group = (256 / tpr) as usize;
        let chunk_bytes = plan.buffer_bytes();
        let out = buffer(
            ctx,
            "step results",
            plan.rows_per_chunk as u64 * OUT_BYTES,
            U::STORAGE | U::COPY_SRC,
        );
        let readback = buffer(
            ctx,
            "step results readback",
            readback_bytes,
            U::MAP_READ | U::COPY_DST,
        );
        let mut params = Vec::with_capacity(plan.len());
        let mut chunks = Vec::with_capacity(plan.len());
        for ci in 0..plan.len() {
            let range = plan.chunk(ci);
            let p = Params {
                rows: range.len() as u32,
                row_bytes: row_bytes as u32,
                units,
                dtype: dtype.shader_code(),
                tpr,
                pad: [0; 3],
            };
            let uniform = filled(ctx, "step params", bytemuck::bytes_of(&p), U::UNIFORM);
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step staging"),
                size: chunk_bytes.max(16),
                usage: U::MAP_WRITE | U::COPY_SRC,
                mapped_at_creation: true,
            });
            let data = [
                buffer(ctx, "step a", chunk_bytes, U::STORAGE | U::COPY_DST),
                buffer(ctx, "step b", chunk_bytes, U::STORAGE | U::COPY_DST),
            ];
            let binds = [
                bind(ctx, &kernel.pipe, &[&data[0], &data[1], &uniform, &out]),
                bind(ctx, &kernel.pipe, &[&data[1], &data[0], &uniform, &out]),
            ];
            chunks.push(Chunk {
                groups: range.len().div_ceil(rows_per_group) as u32,
                rows: range,
                staging,
                remap: None,
                data,
                binds,
                copied: 0,
            });
            params.push(uniform);
        }
        ctx.check()?;
        Ok(Self {
            ctx: ctx.clone(),
            kernel: kernel.clone(),
            dtype,
            rows,
            cols,
            units,
            chunks,
            out,
            readback,
            turn: 0,
            have_prev: false,
            _params: params,
        })
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

    /// Writes `cur` into the staging buffers, waiting for any still being
    /// mapped again after the last step.
    fn stage(&mut self, cur: &Matrix) -> Result<()> {
        let rb = cur.row_bytes();
        for c in &mut self.chunks {
            if let Some(rx) = c.remap.take() {
                wait_mapped(&self.ctx, rx)?;
            }
            c.copied = write_padded(&c.staging, &cur.bytes[c.rows.start * rb..c.rows.end * rb])?;
            c.staging.unmap();
        }
        Ok(())
    }

    /// Records and submits the step (copies, kernels, result copies), asks
    /// for the staging buffers back and for the results, and waits for them.
    fn run(&mut self) -> Result<Vec<u32>> {
        let ctx = &self.ctx;
        let k = self.turn;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for c in &self.chunks {
            enc.copy_buffer_to_buffer(&c.staging, 0, &c.data[k], 0, c.copied);
            {
                let (x, y) = grid(c.groups);
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&self.kernel.pipe);
                pass.set_bind_group(0, &c.binds[k], &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
            enc.copy_buffer_to_buffer(
                &self.out,
                0,
                &self.readback,
                c.rows.start as u64 * OUT_BYTES,
                c.rows.len() as u64 * OUT_BYTES,
            );
        }
        let index = ctx.queue.submit([enc.finish()]);
        for c in &mut self.chunks {
            let (tx, rx) = channel();
            c.staging
                .slice(..)
                .map_async(wgpu::MapMode::Write, move |r| {
                    let _ = tx.send(r);
                });
            c.remap = Some(rx);
        }
        let len = self.rows as u64 * OUT_BYTES;
        let slice = self.readback.slice(..len);
        let (tx, rx) = channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::Gpu(e.to_string()))?;
        ctx.check()?;
        rx.recv()
            .map_err(|e| Error::Gpu(e.to_string()))?
            .map_err(|e| Error::Gpu(e.to_string()))?;
        // Copied out rather than cast: mapped memory need not be 4-byte aligned.
        let words: Vec<u32> = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view)
        };
        self.readback.unmap();
        Ok(words)
    }
}

/// Waits until a staging buffer is mapped again.
fn wait_mapped(ctx: &GpuContext, rx: MapResult) -> Result<()> {
    let done = match rx.try_recv() {
        Ok(r) => r,
        Err(_) => {
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(e.to_string()))?;
            rx.recv().map_err(|e| Error::Gpu(e.to_string()))?
        }
    };
    done.map_err(|e| Error::Gpu(e.to_string()))
}

impl StepDiffer for GpuStepDiffer {
    fn keeps_previous(&self) -> bool {
        true
    }

    fn push(&mut self, prev: Option<&Matrix>, cur: &Matrix) -> Result<StepRows> {
        self.check(cur)?;
        if let Some(p) = prev {
            self.check(p)?;
        }
        // As the CPU differ: a step is compared only when the caller has a
        // previous one and this differ has seen it.
        let compare = prev.is_some() && self.have_prev;
        // Until this step has landed, the device holds no usable previous one.
        self.have_prev = false;
        self.stage(cur)?;
        let words = self.run()?;
        self.turn ^= 1;
        self.have_prev = true;

        let n = self.rows;
        let mut hashes = Vec::with_capacity(n);
        for w in words.chunks_exact(OUT_WORDS) {
            hashes.push(Lanes { a: w[0], b: w[1] }.finish(self.units));
        }
        if !compare {
            return Ok(StepRows {
                hashes,
                ..StepRows::default()
            });
        }
        let changed = words.chunks_exact(OUT_WORDS).map(|w| w[2] != 0).collect();
        let (linf_steps, l1_steps) = if has_displacement(self.dtype) {
            words
                .chunks_exact(OUT_WORDS)
                .map(|w| (w[3], w[4] as u64 | (w[5] as u64) << 32))
                .unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(StepRows {
            hashes,
            changed: Some(changed),
            linf_steps,
            l1_steps,
        })
    }
}

/// Size in bytes of the uniform buffer, checked against the struct.
const _: () = assert!(std::mem::size_of::<Params>() == 32);
