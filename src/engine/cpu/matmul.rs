//! Nearest-neighbour candidates by the matmul form ([`DotModel`]): blocks of
//! rows decoded to f32, their dot products taken by a packed matrix product
//! (`matrixmultiply`'s sgemm, with AVX-512, AVX2 and NEON kernels chosen at
//! run time), and each tile of products scanned for the targets that could
//! still be a query's nearest.
//!
//! For a query x and target y the tile gives Ṽ = ‖x‖² + ‖y‖² − 2x̂·ŷ and the
//! bound E: the exact squared distance lies in [Ṽ − E, Ṽ + E]. A query keeps
//! U, the least Ṽ + E seen, and every target with Ṽ − E ≤ U (a little above
//! it, so that the exact f64 distances that decide cannot order differently);
//! that list holds the exact nearest and every tie. A query whose list grows
//! past [`MAX_CANDIDATES`] is given up (`None`): its targets lie within the
//! bound of each other, which happens when ‖x‖‖y‖ is large next to their
//! distances (a dense cluster far from the origin), and the direct form,
//! whose error is relative to the distance itself, settles it.
//!
//! When every vector is a query, each pair is computed once: tile (I, J)
//! with J ≥ I serves the queries of block I against the targets of block J
//! and the other way round. Tiles run in parallel; each merges into the
//! per-block lists under that block's lock.

use std::sync::Mutex;

use rayon::prelude::*;

use crate::approx::{round_up_f32, DotModel};
use crate::dtype::Dtype;
use crate::engine::{Candidates, VectorSet};
use crate::matrix::Matrix;
use crate::progress::Progress;

/// Candidates a query may keep before it is handed to the direct form.
pub const MAX_CANDIDATES: usize = 256;
/// The keep threshold sits this far (relative) above U: far above the f64
/// rounding of the exact distances, far below any gap the bound resolves.
const KEEP_SLACK: f32 = 1.0 / (1 << 20) as f32;
/// Block sizes tried, largest first: the largest whose scratch fits the
/// memory budget is used.
const BLOCK_ROWS: [usize; 10] = [2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 64];
/// The scratch of a small matrix may take this much (fewer, larger tiles:
/// each packed product allocates its own packing buffers).
const MIN_BUDGET: u64 = 2 << 20;
/// Candidates each query has room for from the start.
const INITIAL_ROOM: usize = 4;
/// Elements checked at once for a kept target (one pass the compiler can
/// vectorise; the rare hit is redone one by one).
const LANES: usize = 16;

/// The rows' norms and the per-row terms of the bound, in f32.
struct RowTerms {
    /// ‖x‖², rounded to nearest.
    sq: Vec<f32>,
    /// ‖x‖, rounded up.
    norm: Vec<f32>,
    /// `product`·‖x‖, rounded up.
    scaled: Vec<f32>,
    /// [`DotModel::row_term`], rounded up.
    term: Vec<f32>,
}

impl RowTerms {
    fn new(m: &Matrix, rows: &[usize], model: &DotModel) -> Self {
        // Squares of f32 values are exact in f64; the sums round in f64.
        let mut norms = vec![0f64; rows.len()];
        norms
            .par_chunks_mut(256)
            .zip(rows.par_chunks(256))
            .for_each(|(out, chunk)| {
                if m.dtype == Dtype::F64 {
                    for (o, &r) in out.iter_mut().zip(chunk) {
                        *o = exact_f64_norm(m, r);
                    }
                    return;
                }
                let mut x = Vec::new();
                decode(m, chunk.iter().copied(), &mut x);
                for (o, r) in out.iter_mut().zip(x.chunks_exact(m.cols.max(1))) {
                    *o = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                }
            });
        Self {
            sq: norms.iter().map(|&n| (n * n) as f32).collect(),
            norm: norms.iter().map(|&n| round_up_f32(n)).collect(),
            scaled: norms
                .iter()
                .map(|&n| round_up_f32(model.product * n))
                .collect(),
            term: norms
                .iter()
                .map(|&n| round_up_f32(model.row_term(n)))
                .collect(),
        }
    }
}

/// The norm of an f64 row from its stored values (its f32 decoding would
/// round them).
fn exact_f64_norm(m: &Matrix, r: usize) -> f64 {
    m.row(r)
        .chunks_exact(8)
        .map(|b| {
            let v = m.dtype.decode(b);
            v * v
        })
        .sum::<f64>()
        .sqrt()
}

/// One side of a tile: the terms of its rows.
#[derive(Clone, Copy)]
struct Side<'a> {
    sq: &'a [f32],
    norm: &'a [f32],
    scaled: &'a [f32],
    term: &'a [f32],
}

impl<'a> Side<'a> {
    fn of(t: &'a RowTerms, r: std::ops::Range<usize>) -> Self {
        Side {
            sq: &t.sq[r.clone()],
            norm: &t.norm[r.clone()],
            scaled: &t.scaled[r.clone()],
            term: &t.term[r],
        }
    }

    /// Ṽ and E for row i of this side against row j of `other`, from their dot product.
    #[inline(always)]
    fn value_and_bound(&self, i: usize, other: &Side, j: usize, dot: f32) -> (f32, f32) {
        let v = (self.sq[i] + other.sq[j]) - 2.0 * dot;
        let e = self.scaled[i] * other.norm[j] + (self.term[i] + other.term[j]);
        (v, e)
    }
}

/// What the filter knows of one query so far.
#[derive(Clone, Debug)]
struct Query {
    /// The least upper bound Ṽ + E seen (+∞ at first).
    best: f32,
    /// Targets whose lower bound was within reach when seen, with that bound.
    kept: Vec<(u32, f32)>,
    overflow: bool,
}

impl Query {
    const NEW: Query = Query {
        best: f32::INFINITY,
        kept: Vec::new(),
        overflow: false,
    };

    fn keep_below(&self) -> f32 {
        keep_threshold(self.best)
    }

    /// Takes a tile's least upper bound and the targets it found within reach.
    fn merge(&mut self, best: f32, found: impl ExactSizeIterator<Item = (u32, f32)>) {
        self.best = self.best.min(best);
        if self.overflow {
            return;
        }
        let keep = self.keep_below();
        // Stale entries go before the list grows, so that it holds about
        // what is still in reach, not everything ever seen.
        if self.kept.len() + found.len() > self.kept.capacity() {
            self.kept.retain(|&(_, lo)| lo <= keep);
        }
        self.kept.extend(found.filter(|&(_, lo)| lo <= keep));
        if self.kept.len() > MAX_CANDIDATES {
            self.kept.retain(|&(_, lo)| lo <= keep);
            if self.kept.len() > MAX_CANDIDATES {
                self.overflow = true;
                self.kept = Vec::new();
            }
        }
    }

    fn finish(mut self) -> Option<Vec<u32>> {
        if self.overflow {
            return None;
        }
        let keep = self.keep_below();
        let mut out: Vec<u32> = self
            .kept
            .drain(..)
            .filter(|&(_, lo)| lo <= keep)
            .map(|(t, _)| t)
            .collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

fn keep_threshold(best: f32) -> f32 {
    best + best.abs() * KEEP_SLACK
}

/// Per-thread scratch: two decoded blocks and a tile of products.
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    rows_found: Vec<(u32, u32, f32)>,
    cols_found: Vec<(u32, u32, f32)>,
}

impl Scratch {
    /// Scratch at its full size for blocks of `block` rows of `d` values,
    /// allocated once: buffers that grew tile by tile would leave holes in
    /// the heap that its later blocks could not reuse.
    fn sized(block: usize, d: usize) -> Self {
        Self {
            a: Vec::with_capacity(block * d),
            b: Vec::with_capacity(block * d),
            c: Vec::with_capacity(block * block),
            rows_found: Vec::with_capacity(block * 4),
            cols_found: Vec::with_capacity(block * 4),
        }
    }
}

/// Decodes the given rows of `m` into `out`, row-major, `m.cols` wide.
pub(super) fn decode(m: &Matrix, rows: impl ExactSizeIterator<Item = usize>, out: &mut Vec<f32>) {
    let d = m.cols;
    out.clear();
    out.resize(rows.len() * d, 0.0);
    for (dst, r) in out.chunks_exact_mut(d.max(1)).zip(rows) {
        let bytes = m.row(r);
        match m.dtype {
            Dtype::BF16 => {
                for (o, b) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
                }
            }
            Dtype::F16 => {
                for (o, b) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            Dtype::F32 => {
                for (o, b) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::F64 => {
                for (o, b) in dst.iter_mut().zip(bytes.chunks_exact(8)) {
                    *o = m.dtype.decode(b) as f32;
                }
            }
        }
    }
}

/// `c` (ra × rb, row-major) = a · bᵀ for row-major blocks of `d` columns.
pub(super) fn products(a: &[f32], b: &[f32], d: usize, c: &mut Vec<f32>) {
    let (ra, rb) = (a.len() / d.max(1), b.len() / d.max(1));
    c.clear();
    c.resize(ra * rb, 0.0);
    if ra == 0 || rb == 0 || d == 0 {
        return;
    }
    // SAFETY: a is ra × d (row stride d), b read as its transpose d × rb
    // (row stride 1, column stride d), c is ra × rb (row stride rb); every
    // index stays inside the slices sized above.
    unsafe {
        matrixmultiply::sgemm(
            ra,
            d,
            rb,
            1.0,
            a.as_ptr(),
            d as isize,
            1,
            b.as_ptr(),
            1,
            d as isize,
            0.0,
            c.as_mut_ptr(),
            rb as isize,
            1,
        );
    }
}

/// The rows of a block of queries or targets: set indices.
type Span = std::ops::Range<usize>;

/// The block size: the largest whose scratch (two decoded blocks and a
/// tile, per thread) stays within a sixth of the stored bytes of the
/// matrix (or [`MIN_BUDGET`]); the smallest block when even that is over.
fn block_rows(m: &Matrix, n: usize) -> usize {
    let budget = (m.bytes.len() as u64 / 6).max(MIN_BUDGET);
    let threads = rayon::current_num_threads().max(1) as u64;
    let d = m.cols as u64;
    let b = BLOCK_ROWS
        .iter()
        .copied()
        .find(|&b| threads * (2 * b as u64 * d + (b * b) as u64) * 4 <= budget)
        .unwrap_or(BLOCK_ROWS[BLOCK_ROWS.len() - 1]);
    b.min(n.max(1))
}

/// [`scan_body`], compiled for AVX2 + FMA where the CPU has them (the
/// scan is a few f32 operations per product, worth eight lanes).
#[allow(clippy::too_many_arguments)]
fn scan(
    c: &[f32],
    rows: Side,
    cols: Side,
    rows_best: &[f32],
    cols_best: Option<&mut [f32]>,
    rows_found: &mut Vec<(u32, u32, f32)>,
    cols_found: &mut Vec<(u32, u32, f32)>,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { scan_avx2(c, rows, cols, rows_best, cols_best, rows_found, cols_found) };
    }
    scan_body(c, rows, cols, rows_best, cols_best, rows_found, cols_found)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn scan_avx2(
    c: &[f32],
    rows: Side,
    cols: Side,
    rows_best: &[f32],
    cols_best: Option<&mut [f32]>,
    rows_found: &mut Vec<(u32, u32, f32)>,
    cols_found: &mut Vec<(u32, u32, f32)>,
) -> Vec<f32> {
    scan_body(c, rows, cols, rows_best, cols_best, rows_found, cols_found)
}

/// Scans a tile of products: the least Ṽ + E per row (and per column when
/// `cols_best` is given), then the entries whose Ṽ − E is within reach of
/// the row's (column's) threshold, as (row, column, Ṽ − E).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scan_body(
    c: &[f32],
    rows: Side,
    cols: Side,
    rows_best: &[f32],
    mut cols_best: Option<&mut [f32]>,
    rows_found: &mut Vec<(u32, u32, f32)>,
    cols_found: &mut Vec<(u32, u32, f32)>,
) -> Vec<f32> {
    let nc = cols.sq.len();
    let mut row_min = vec![f32::INFINITY; rows.sq.len()];
    for (i, ci) in c.chunks_exact(nc.max(1)).enumerate() {
        let mut lo = f32::INFINITY;
        match cols_best.as_deref_mut() {
            Some(cb) => {
                for (j, (&dot, b)) in ci.iter().zip(cb.iter_mut()).enumerate() {
                    let (v, e) = rows.value_and_bound(i, &cols, j, dot);
                    let hi = v + e;
                    lo = lo.min(hi);
                    *b = b.min(hi);
                }
            }
            None => {
                for (j, &dot) in ci.iter().enumerate() {
                    let (v, e) = rows.value_and_bound(i, &cols, j, dot);
                    lo = lo.min(v + e);
                }
            }
        }
        row_min[i] = lo;
    }
    let cols_keep: Option<Vec<f32>> =
        cols_best.map(|cb| cb.iter().map(|&b| keep_threshold(b)).collect());
    for (i, ci) in c.chunks_exact(nc.max(1)).enumerate() {
        let keep = keep_threshold(row_min[i].min(rows_best[i]));
        for (j0, chunk) in ci.chunks(LANES).enumerate() {
            let j0 = j0 * LANES;
            let mut hit = false;
            for (k, &dot) in chunk.iter().enumerate() {
                let (v, e) = rows.value_and_bound(i, &cols, j0 + k, dot);
                let lo = v - e;
                hit |= lo <= keep;
                if let Some(ck) = &cols_keep {
                    hit |= lo <= ck[j0 + k];
                }
            }
            if !hit {
                continue;
            }
            for (k, &dot) in chunk.iter().enumerate() {
                let j = j0 + k;
                let (v, e) = rows.value_and_bound(i, &cols, j, dot);
                let lo = v - e;
                if lo <= keep {
                    rows_found.push((i as u32, j as u32, lo));
                }
                if cols_keep.as_ref().is_some_and(|ck| lo <= ck[j]) {
                    cols_found.push((j as u32, i as u32, lo));
                }
            }
        }
    }
    row_min
}

/// The per-block query states, each behind its own lock.
struct Lists {
    block: usize,
    blocks: Vec<Mutex<Vec<Query>>>,
}

impl Lists {
    fn new(n: usize, block: usize) -> Self {
        // Room for a few candidates each, taken now: lists that grew
        // between the tiles' short-lived buffers would fragment the heap.
        let blocks = (0..n.div_ceil(block))
            .map(|b| {
                let q = Query {
                    kept: Vec::with_capacity(INITIAL_ROOM),
                    ..Query::NEW
                };
                Mutex::new(vec![q; block.min(n - b * block)])
            })
            .collect();
        Self { block, blocks }
    }

    /// The current thresholds of the queries of a block.
    fn best(&self, b: usize) -> Vec<f32> {
        let g = self.blocks[b].lock().unwrap_or_else(|e| e.into_inner());
        g.iter().map(|q| q.best).collect()
    }

    /// Merges a tile's findings (local query index, set index, Ṽ − E) for block `b`.
    fn merge(&self, b: usize, mins: &[f32], found: &mut [(u32, u32, f32)], target_base: usize) {
        found.sort_unstable_by_key(|f| f.0);
        let mut g = self.blocks[b].lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = &found[..];
        for (i, (q, &min)) in g.iter_mut().zip(mins).enumerate() {
            let k = rest.partition_point(|f| f.0 as usize == i);
            let mine = rest[..k]
                .iter()
                .map(|&(_, t, lo)| ((target_base + t as usize) as u32, lo));
            q.merge(min, mine);
            rest = &rest[k..];
        }
    }

    fn finish(self) -> Vec<Option<Vec<u32>>> {
        self.blocks
            .into_iter()
            .flat_map(|b| b.into_inner().unwrap_or_else(|e| e.into_inner()))
            .map(Query::finish)
            .collect()
    }
}

/// Candidates for every query: see the module's description.
pub fn nearest_candidates(
    m: &Matrix,
    set: VectorSet,
    queries: &[u32],
    progress: &Progress,
) -> Candidates {
    let n = set.rows.len();
    let model = DotModel::new(m.dtype, m.cols);
    let terms = RowTerms::new(m, set.rows, &model);
    let every = queries.len() == n && queries.iter().enumerate().all(|(i, &q)| q as usize == i);
    let identity = set.labels.iter().enumerate().all(|(i, &l)| l as usize == i);
    let block = block_rows(m, n.max(queries.len()));
    let lists = Lists::new(queries.len(), block);
    let q_blocks = queries.len().div_ceil(block);
    let t_blocks = n.div_ceil(block);
    let tiles: Vec<(usize, usize)> = (0..q_blocks)
        .flat_map(|i| {
            let first = if every { i } else { 0 };
            (first..t_blocks).map(move |j| (i, j))
        })
        .collect();
    let span = |b: usize, len: usize| -> Span { b * block..((b + 1) * block).min(len) };
    let row_bytes = m.row_bytes() as u64;
    // Query terms, in query order (the set's own when every vector is one).
    let q_terms = if every {
        None
    } else {
        let rows: Vec<usize> = queries.iter().map(|&q| set.rows[q as usize]).collect();
        Some(RowTerms::new(m, &rows, &model))
    };
    let qt = q_terms.as_ref().unwrap_or(&terms);
    // Scratch taken from a pool and put back, so that at most one per
    // thread is ever allocated (rayon's per-job init would make one per
    // split, and the allocator keeps their pages).
    let threads = rayon::current_num_threads().clamp(1, tiles.len().max(1));
    let pool: Mutex<Vec<Scratch>> = Mutex::new(
        (0..threads)
            .map(|_| Scratch::sized(block, m.cols))
            .collect(),
    );
    tiles.par_iter().for_each(|&(bi, bj)| {
        if progress.interrupted() {
            return;
        }
        let mut scratch = pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Scratch::sized(block, m.cols));
        let s = &mut scratch;
        {
            let qs = span(bi, queries.len());
            let ts = span(bj, n);
            decode(
                m,
                qs.clone().map(|k| set.rows[queries[k] as usize]),
                &mut s.a,
            );
            decode(m, ts.clone().map(|t| set.rows[t]), &mut s.b);
            products(&s.a, &s.b, m.cols, &mut s.c);
            // A query never meets a target of its own label.
            let nc = ts.len();
            for (i, ci) in s.c.chunks_exact_mut(nc.max(1)).enumerate() {
                let q = queries[qs.start + i] as usize;
                if identity {
                    if ts.contains(&q) {
                        ci[q - ts.start] = f32::NEG_INFINITY;
                    }
                } else {
                    let lq = set.labels[q];
                    for (x, &lt) in ci.iter_mut().zip(&set.labels[ts.clone()]) {
                        if lt == lq {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                }
            }
            let symmetric = every && bi != bj;
            let rows_best = lists.best(bi);
            let mut cols_best = symmetric.then(|| lists.best(bj));
            s.rows_found.clear();
            s.cols_found.clear();
            let mins = scan(
                &s.c,
                Side::of(qt, qs.clone()),
                Side::of(&terms, ts.clone()),
                &rows_best,
                cols_best.as_deref_mut(),
                &mut s.rows_found,
                &mut s.cols_found,
            );
            lists.merge(bi, &mins, &mut s.rows_found, ts.start);
            let mut pairs = (qs.len() * ts.len()) as u64;
            if let Some(cb) = cols_best {
                lists.merge(bj, &cb, &mut s.cols_found, qs.start);
                pairs *= 2;
            }
            progress.inc(pairs * row_bytes);
        }
        pool.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
    });
    debug_assert_eq!(lists.block, block);
    Candidates {
        lists: lists.finish(),
    }
}
