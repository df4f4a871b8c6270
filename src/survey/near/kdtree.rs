//! A k-d tree over a few coordinates per vector (projections, or positions
//! of the stored values), for the threshold searches' self-join: every pair
//! whose coordinates could be within the threshold is visited once, and the
//! others are skipped a whole box of vectors at a time.
//!
//! The tree is balanced by construction: the vectors are split at the
//! median of the coordinate whose values spread the most inside the box,
//! level after level, until a box holds at most [`LEAF`] vectors (O(n log n)
//! to build). Each box keeps the exact bounds of its vectors' coordinates,
//! so that a query can rule it out with exact comparisons (integers) or
//! with a margin it chooses (floats).

use rayon::prelude::*;

/// Most vectors in a leaf.
pub const LEAF: usize = 8;

/// The value type of a coordinate.
pub trait Coord: Copy + PartialOrd + Send + Sync {
    /// For choosing the split coordinate only (never for a decision).
    fn as_f64(self) -> f64;
}

impl Coord for f32 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Coord for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

/// The tree over `n` vectors of `dims` coordinates each.
pub struct KdTree<T> {
    dims: usize,
    /// Vector indices in tree order: each box holds a contiguous range.
    order: Vec<u32>,
    /// The coordinates in tree order, `dims` per vector.
    coords: Vec<T>,
    /// Levels below the root (the leaves are the boxes of the last level).
    depth: u32,
    /// Per box (heap numbering from 1: box b has children 2b and 2b + 1),
    /// the lower then the upper bounds of its vectors' coordinates.
    bounds: Vec<T>,
}

/// The range of tree positions of box `b` at `level`, for `n` vectors.
fn range(n: usize, level: u32, b: usize) -> (usize, usize) {
    let first = 1usize << level;
    let i = b - first;
    // Boxes of one level split [0, n) as evenly as the halvings do.
    (start(n, level, i), start(n, level, i + 1))
}

/// Where box `i` of `level` starts: the halvings of [0, n), each at the
/// midpoint (floor), applied down the path to the box.
fn start(n: usize, level: u32, i: usize) -> usize {
    if i >= 1 << level {
        return n;
    }
    let (mut lo, mut hi) = (0usize, n);
    for l in (0..level).rev() {
        let mid = lo + (hi - lo) / 2;
        if i >> l & 1 == 0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    lo
}

impl<T: Coord> KdTree<T> {
    /// Builds the tree over `coords` (`dims` per vector, vector-major).
    pub fn new(coords: &[T], dims: usize) -> Self {
        let n = coords.len() / dims.max(1);
        let mut depth = 0u32;
        while (n >> depth) > LEAF {
            depth += 1;
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        let boxes = 2usize << depth;
        let mut bounds: Vec<T> = Vec::with_capacity(boxes * 2 * dims);
        if dims == 0 || n == 0 {
            return Self {
                dims,
                order,
                coords: Vec::new(),
                depth: 0,
                bounds,
            };
        }
        // Box 0 is unused (heap numbering from 1); fill it with anything.
        bounds.extend(std::iter::repeat_n(coords[0], 2 * dims));
        for level in 0..=depth {
            // The boxes of this level partition the tree positions.
            let count = 1usize << level;
            let mut slices: Vec<&mut [u32]> = Vec::with_capacity(count);
            let mut rest: &mut [u32] = &mut order;
            for i in 0..count {
                let len = start(n, level, i + 1) - start(n, level, i);
                let (head, tail) = rest.split_at_mut(len);
                slices.push(head);
                rest = tail;
            }
            let level_bounds: Vec<Vec<T>> = slices
                .into_par_iter()
                .map(|s| {
                    let b = box_bounds(coords, dims, s);
                    if level < depth && s.len() > 1 {
                        // Split at the median of the widest coordinate.
                        let k = (0..dims)
                            .max_by(|&x, &y| {
                                let wx = b[dims + x].as_f64() - b[x].as_f64();
                                let wy = b[dims + y].as_f64() - b[y].as_f64();
                                wx.total_cmp(&wy).then(y.cmp(&x))
                            })
                            .unwrap_or(0);
                        let mid = s.len() / 2;
                        let key = |v: &u32| coords[*v as usize * dims + k];
                        s.select_nth_unstable_by(mid, |a, b| {
                            key(a)
                                .partial_cmp(&key(b))
                                .unwrap_or(std::cmp::Ordering::Equal)
                        });
                    }
                    b
                })
                .collect();
            for b in level_bounds {
                bounds.extend(b);
            }
        }
        let tree_coords: Vec<T> = order
            .par_iter()
            .flat_map_iter(|&v| {
                coords[v as usize * dims..(v as usize + 1) * dims]
                    .iter()
                    .copied()
            })
            .collect();
        Self {
            dims,
            order,
            coords: tree_coords,
            depth,
            bounds,
        }
    }

    /// How many vectors the tree holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The vector at tree position `i`.
    pub fn vector(&self, i: usize) -> u32 {
        self.order[i]
    }

    /// The coordinates of the vector at tree position `i`.
    pub fn point(&self, i: usize) -> &[T] {
        &self.coords[i * self.dims..(i + 1) * self.dims]
    }

    /// Calls `visit(j)` for every tree position `j > i` in a box that
    /// `reach(lower, upper)` does not rule out, until `visit` returns false.
    /// `reach` must keep every box that could hold a vector `visit` wants.
    pub fn for_each_after(
        &self,
        i: usize,
        reach: impl Fn(&[T], &[T]) -> bool,
        mut visit: impl FnMut(usize) -> bool,
    ) {
        let n = self.len();
        if n == 0 || self.dims == 0 {
            return;
        }
        let d = self.dims;
        let mut stack: Vec<(usize, u32)> = Vec::with_capacity(2 * self.depth as usize + 2);
        stack.push((1, 0));
        while let Some((b, level)) = stack.pop() {
            let (lo, hi) = range(n, level, b);
            if hi <= i + 1 || lo == hi {
                continue;
            }
            let bb = &self.bounds[b * 2 * d..(b + 1) * 2 * d];
            if !reach(&bb[..d], &bb[d..]) {
                continue;
            }
            if level == self.depth {
                for j in lo.max(i + 1)..hi {
                    if !visit(j) {
                        return;
                    }
                }
            } else {
                // The far child first on the stack, so the near one (later
                // positions come after i) is explored first.
                stack.push((2 * b + 1, level + 1));
                stack.push((2 * b, level + 1));
            }
        }
    }
}

/// The lower and upper bounds of the coordinates of `vectors`.
fn box_bounds<T: Coord>(coords: &[T], dims: usize, vectors: &[u32]) -> Vec<T> {
    let mut b = Vec::with_capacity(2 * dims);
    let first = vectors.first().map_or(0, |&v| v as usize);
    b.extend_from_slice(&coords[first * dims..(first + 1) * dims]);
    b.extend_from_slice(&coords[first * dims..(first + 1) * dims]);
    for &v in vectors.iter().skip(1) {
        let x = &coords[v as usize * dims..(v as usize + 1) * dims];
        for (k, &c) in x.iter().enumerate() {
            if c < b[k] {
                b[k] = c;
            }
            if c > b[dims + k] {
                b[dims + k] = c;
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair within L∞ distance 3 of integer points, against all pairs.
    #[test]
    fn box_queries_find_every_close_pair() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 40) as i64
        };
        for n in [0usize, 1, 2, 7, 8, 9, 100, 1000] {
            let dims = 3;
            let pts: Vec<i64> = (0..n * dims).map(|_| next()).collect();
            let close = |a: usize, b: usize| {
                (0..dims).all(|k| (pts[a * dims + k] - pts[b * dims + k]).abs() <= 3)
            };
            let mut want: Vec<(u32, u32)> = (0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .filter(|&(a, b)| close(a, b))
                .map(|(a, b)| (a as u32, b as u32))
                .collect();
            want.sort_unstable();
            let t = KdTree::new(&pts, dims);
            let mut got = Vec::new();
            for i in 0..t.len() {
                let p = t.point(i).to_vec();
                t.for_each_after(
                    i,
                    |lo, hi| (0..dims).all(|k| lo[k] - 3 <= p[k] && p[k] <= hi[k] + 3),
                    |j| {
                        let (a, b) = (t.vector(i), t.vector(j));
                        if close(a as usize, b as usize) {
                            got.push((a.min(b), a.max(b)));
                        }
                        true
                    },
                );
            }
            got.sort_unstable();
            assert_eq!(got, want, "{n} points");
        }
    }

    #[test]
    fn boxes_of_a_level_cover_every_position_once() {
        for n in [1usize, 5, 8, 9, 17, 1000] {
            for level in 0..6 {
                let mut next = 0;
                for b in (1usize << level)..(2usize << level) {
                    let (lo, hi) = range(n, level, b);
                    assert_eq!(lo, next);
                    next = hi;
                }
                assert_eq!(next, n);
            }
        }
    }
}
