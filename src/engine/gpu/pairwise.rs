//! Pairwise L2 distances between representative rows: `shaders/pairwise_l2.wgsl`
//! over square tiles of rows, each tile pair small enough to bind.

use bytemuck::{Pod, Zeroable};

use super::{pipeline, GpuContext};
use crate::error::{Error, Result};
use crate::load::Matrix;

const PAIRWISE_WGSL: &str = include_str!("../../../shaders/pairwise_l2.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    ti: u32,
    tj: u32,
    dv: u32,
    _pad: u32,
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
        let dv = m.cols.div_ceil(4);
        let row_f32 = dv * 16;
        // Tiles of up to 1024 rows (a 1024×1024 output fits any binding and
        // the grid stays within 64 groups of 16 per dimension).
        let limit = ctx.max_binding() as usize;
        let tile = (limit / row_f32).clamp(1, 1024);
        if limit < row_f32 {
            return Err(Error::Usage(format!(
                "a row of {} columns is too large for this GPU adapter's bindings; use --device cpu",
                m.cols
            )));
        }
        // Representatives decoded to f32 (exact for f16/bf16/f32) and zero-padded.
        let mut reps = vec![0f32; k * dv * 4];
        for (i, &r) in rows.iter().enumerate() {
            for (dst, v) in reps[i * dv * 4..].iter_mut().zip(m.row_f64(r)) {
                *dst = v as f32;
            }
        }
        let tiles: Vec<(usize, usize)> = (0..k)
            .step_by(tile)
            .map(|s| (s, (s + tile).min(k)))
            .collect();
        let upload = |range: (usize, usize)| {
            let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("representatives"),
                size: ((range.1 - range.0) * row_f32) as u64,
                usage: U::STORAGE | U::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(
                &buf,
                0,
                bytemuck::cast_slice(&reps[range.0 * dv * 4..range.1 * dv * 4]),
            );
            buf
        };
        let bufs: Vec<wgpu::Buffer> = tiles.iter().map(|&t| upload(t)).collect();
        let mut dist = vec![vec![0f32; k]; k];
        let out_bytes = (tile * tile * 4) as u64;
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("distances"),
            size: out_bytes,
            usage: U::STORAGE | U::COPY_SRC,
            mapped_at_creation: false,
        });
        let back = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("distances readback"),
            size: out_bytes,
            usage: U::MAP_READ | U::COPY_DST,
            mapped_at_creation: false,
        });
        let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pairwise params"),
            size: 16,
            usage: U::UNIFORM | U::COPY_DST,
            mapped_at_creation: false,
        });
        for (ti, &(i0, i1)) in tiles.iter().enumerate() {
            for (tj, &(j0, j1)) in tiles.iter().enumerate().skip(ti) {
                let p = Params {
                    ti: (i1 - i0) as u32,
                    tj: (j1 - j0) as u32,
                    dv: dv as u32,
                    _pad: 0,
                };
                ctx.queue.write_buffer(&params, 0, bytemuck::bytes_of(&p));
                let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &self.pipe.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: bufs[ti].as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: bufs[tj].as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: out.as_entire_binding(),
                        },
                    ],
                });
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.pipe);
                    pass.set_bind_group(0, &bind, &[]);
                    pass.dispatch_workgroups(p.tj.div_ceil(16), p.ti.div_ceil(16), 1);
                }
                let used = (p.ti * p.tj * 4) as u64;
                enc.copy_buffer_to_buffer(&out, 0, &back, 0, used);
                ctx.queue.submit([enc.finish()]);
                let bytes = ctx.read_back(&back, used)?;
                // Copied out rather than cast: a Vec<u8> need not be 4-byte aligned.
                let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
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
