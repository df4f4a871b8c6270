//! Pairwise L2 distances between representative rows: `shaders/pairwise_l2.wgsl`
//! over square tiles of rows, each tile pair small enough to bind. Every tile
//! pair is recorded before one read-back (or a few, for very many pairs).

use bytemuck::{Pod, Zeroable};

use super::chunks::Gathered;
use super::{bind, buffer, pipeline, uniform, GpuContext};
use crate::error::{Error, Result};
use crate::matrix::Matrix;

const PAIRWISE_WGSL: &str = include_str!("../../../shaders/pairwise_l2.wgsl");

/// Bytes of distances read back at once, at most.
const BATCH_BYTES: u64 = 256 << 20;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    ti: u32,
    tj: u32,
    stride: u32,
    cols: u32,
    dtype: u32,
    _pad: [u32; 3],
}

/// The compiled pipeline.
pub struct PairwiseKernel {
    pipe: wgpu::ComputePipeline,
}

impl PairwiseKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            pipe: pipeline(ctx, "pairwise_l2", PAIRWISE_WGSL),
        }
    }

    /// Distances for every pair i < j of `rows`, in row-major upper-triangle order.
    pub fn run(&self, ctx: &GpuContext, m: &Matrix, rows: &[usize]) -> Result<Vec<f64>> {
        use wgpu::BufferUsages as U;
        let k = rows.len();
        if k < 2 {
            return Ok(Vec::new());
        }
        let reps = Gathered::new(m, rows);
        let row_bytes = reps.row_bytes();
        // Tiles of up to 1024 rows (a 1024×1024 output fits any binding and
        // the grid stays within 64 groups of 16 per dimension).
        let limit = ctx.max_binding() as usize;
        if limit < row_bytes {
            return Err(Error::Usage(format!(
                "a row of {} columns is too large for this GPU adapter's bindings; use --device cpu",
                m.cols
            )));
        }
        let tile = (limit / row_bytes).clamp(1, 1024);
        let tiles: Vec<(usize, usize)> = (0..k)
            .step_by(tile)
            .map(|s| (s, (s + tile).min(k)))
            .collect();
        let bufs: Vec<wgpu::Buffer> = tiles
            .iter()
            .map(|&(s, e)| {
                let buf = buffer(
                    ctx,
                    "representatives",
                    ((e - s) * row_bytes) as u64,
                    U::STORAGE | U::COPY_DST,
                );
                ctx.queue
                    .write_buffer(&buf, 0, &reps.bytes[s * row_bytes..e * row_bytes]);
                buf
            })
            .collect();
        let pairs: Vec<(usize, usize)> = (0..tiles.len())
            .flat_map(|ti| (ti..tiles.len()).map(move |tj| (ti, tj)))
            .collect();
        let used = |&(ti, tj): &(usize, usize)| {
            ((tiles[ti].1 - tiles[ti].0) * (tiles[tj].1 - tiles[tj].0) * 4) as u64
        };
        let out = buffer(
            ctx,
            "distances",
            (tile * tile * 4) as u64,
            U::STORAGE | U::COPY_SRC,
        );
        let back_bytes = pairs.iter().map(used).sum::<u64>().min(BATCH_BYTES);
        let back = buffer(
            ctx,
            "distances readback",
            back_bytes,
            U::MAP_READ | U::COPY_DST,
        );
        let mut dist = vec![vec![0f32; k]; k];
        let mut next = 0;
        while next < pairs.len() {
            // As many tile pairs as the read-back buffer holds, in one submission.
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            let mut batch = Vec::new();
            let mut offset = 0u64;
            while next < pairs.len() && offset + used(&pairs[next]) <= back_bytes {
                let (ti, tj) = pairs[next];
                let ((i0, i1), (j0, j1)) = (tiles[ti], tiles[tj]);
                let p = Params {
                    ti: (i1 - i0) as u32,
                    tj: (j1 - j0) as u32,
                    stride: reps.stride as u32,
                    cols: m.cols as u32,
                    dtype: m.dtype.shader_code(),
                    _pad: [0; 3],
                };
                let params = uniform(ctx, "pairwise params", &p);
                let group = bind(ctx, &self.pipe, &[&bufs[ti], &bufs[tj], &params, &out]);
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.pipe);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(p.tj.div_ceil(16), p.ti.div_ceil(16), 1);
                }
                enc.copy_buffer_to_buffer(&out, 0, &back, offset, used(&pairs[next]));
                batch.push((pairs[next], offset));
                offset += used(&pairs[next]);
                next += 1;
            }
            ctx.queue.submit([enc.finish()]);
            let bytes = ctx.read_back(&back, offset)?;
            // Copied out rather than cast: a Vec<u8> need not be 4-byte aligned.
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            for ((ti, tj), offset) in batch {
                let ((i0, i1), (j0, j1)) = (tiles[ti], tiles[tj]);
                let vals = &vals[offset as usize / 4..];
                for i in i0..i1 {
                    for j in j0..j1 {
                        dist[i][j] = vals[(i - i0) * (j1 - j0) + (j - j0)];
                    }
                }
            }
        }
        let mut flat = Vec::with_capacity(k * (k - 1) / 2);
        for (i, row) in dist.iter().enumerate() {
            flat.extend(row[i + 1..].iter().map(|&d| d as f64));
        }
        Ok(flat)
    }
}

/// Size in bytes of the uniform buffer, checked against the struct.
const _: () = assert!(std::mem::size_of::<Params>() == 32);
