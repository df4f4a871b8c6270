//! The indicator kernels on the CPU: [`split`](crate::engine::split)'s
//! arithmetic, in the order the WGSL kernels use, so both give the same bits.

use rayon::prelude::*;

use crate::engine::split::{add_product, decode, flush_input, split, sum_block_rows, Split};
use crate::matrix::Matrix;

/// [`Engine::row_dots`](crate::engine::Engine::row_dots).
pub fn row_dots(m: &Matrix, vectors: &[Split], centre: Option<&[f32]>) -> Vec<f32> {
    let p = vectors.len();
    let d = m.cols;
    let w = p + 1 + centre.is_some() as usize;
    let mut out = vec![0f32; m.rows * w];
    out.par_chunks_mut(w).enumerate().for_each(|(r, o)| {
        let row = m.row(r);
        let mut acc = [0f32; 5];
        for c in 0..d {
            let v = decode(m.dtype, row, c);
            let x = split(v);
            for (k, u) in vectors.iter().enumerate() {
                acc[k] = add_product(acc[k], x, (u.hi[c], u.lo[c]));
            }
            acc[p] = add_product(acc[p], x, x);
            if let Some(centre) = centre {
                let e = split(flush_input(v - centre[c]));
                acc[p + 1] = add_product(acc[p + 1], e, e);
            }
        }
        o.copy_from_slice(&acc[..w]);
    });
    out
}

/// [`Engine::weighted_column_sums`](crate::engine::Engine::weighted_column_sums).
pub fn weighted_column_sums(m: &Matrix, w: &Split) -> Vec<f32> {
    let d = m.cols;
    let b = sum_block_rows(m.rows, d);
    let blocks = m.rows.div_ceil(b);
    let mut out = vec![0f32; blocks * d];
    out.par_chunks_mut(d).enumerate().for_each(|(bi, acc)| {
        for r in bi * b..((bi + 1) * b).min(m.rows) {
            let wr = (w.hi[r], w.lo[r]);
            if wr == (0.0, 0.0) {
                continue;
            }
            let row = m.row(r);
            for (c, a) in acc.iter_mut().enumerate() {
                *a = add_product(*a, wr, split(decode(m.dtype, row, c)));
            }
        }
    });
    out
}
