//! All-pairs geometry (`--nearest`, `--near-l2/-rel/-ulp`, the lattice of
//! black holes) against an f64 brute force written here, independent of the
//! library: its own decoding (`common::decode`), its own grouping by bytes,
//! its own step counting from bit patterns (a total-order key, checked against
//! a table of every 16-bit value), its own BFS for components, and distances
//! summed with compensated arithmetic. Every case runs through the exact
//! survey (`analyze`) and then `analyze_pairs` on the CPU engine and on the
//! GPU engine (lavapipe on CI: GPU cases are small), and the two engines'
//! answers must be identical.

use std::collections::BTreeMap;

use crate::common::{assert_close, decode, encode, gpu, Built, Rng};
use singularity_gpu::engine::cpu::CpuEngine;
use singularity_gpu::engine::Engine;
use singularity_gpu::progress::Progress;
use singularity_gpu::survey::near::Near;
use singularity_gpu::{analyze, Analysis, Dtype, GroupOptions};
use singularity_gpu::{analyze_pairs, NearThreshold, PairOptions, PairsAnalysis};

const DTYPES: [Dtype; 4] = [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64];

// ---------------------------------------------------------------------------
// Step counting, from bit patterns alone.

fn bits_of(dtype: Dtype) -> u32 {
    match dtype {
        Dtype::F16 | Dtype::BF16 => 16,
        Dtype::F32 => 32,
        Dtype::F64 => 64,
    }
}

/// A key that orders the dtype's non-NaN values as integers: positive values
/// get the sign bit set, negative ones are bit-inverted (the classic radix
/// sort trick). −0 and +0 get adjacent keys, one apart.
fn order_key(dtype: Dtype, bits: u64) -> i128 {
    let w = bits_of(dtype);
    let sign = 1u64 << (w - 1);
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    if bits & sign == 0 {
        (bits | sign) as i128
    } else {
        (!bits & mask) as i128
    }
}

/// Representable values passed going from `a` to `b`: the key distance,
/// less the one place between −0 and +0 (a single position) when the two
/// have opposite signs.
fn steps(dtype: Dtype, a: u64, b: u64) -> u64 {
    let sign = 1i128 << (bits_of(dtype) - 1);
    let (ka, kb) = (order_key(dtype, a), order_key(dtype, b));
    let d = (ka - kb).unsigned_abs() as u64;
    if (ka >= sign) != (kb >= sign) {
        d - 1
    } else {
        d
    }
}

/// The bits `delta` representable values away from `bits` (through zero
/// without counting −0 separately; +0 when landing on zero).
fn moved(dtype: Dtype, bits: u64, delta: i64) -> u64 {
    let sign = 1u64 << (bits_of(dtype) - 1);
    let signed = |b: u64| -> i128 {
        let mag = (b & (sign - 1)) as i128;
        if b & sign != 0 {
            -mag
        } else {
            mag
        }
    };
    let p = signed(bits) + delta as i128;
    if p >= 0 {
        p as u64
    } else {
        sign | (-p) as u64
    }
}

fn is_nan_bits(dtype: Dtype, bits: u64) -> bool {
    decode(dtype, &bits.to_le_bytes()[..dtype.size()]).is_nan()
}

// ---------------------------------------------------------------------------
// The brute force.

/// Everything the brute force knows about a matrix.
struct Model {
    dtype: Dtype,
    cols: usize,
    values: Vec<Vec<f64>>,
    bits: Vec<Vec<u64>>,
    /// Rows holding only finite values.
    usable: Vec<bool>,
    /// Distinct vectors among the usable rows: their tokens (ascending), in
    /// order of smallest token.
    vectors: Vec<Vec<usize>>,
    /// Groups of ≥ 2 rows with identical bytes (all rows), by size
    /// descending, then smallest id.
    holes: Vec<Vec<usize>>,
}

/// Σ(x − y)², each square's rounding error kept (fma) and the terms summed
/// with Neumaier's compensation: within an ulp or so of the exact distance.
/// Differences below 1e-150 (f64 subnormals) are scaled by 2^600 first, so
/// that their squares do not underflow.
fn distance(x: &[f64], y: &[f64]) -> f64 {
    let max = x.iter().zip(y).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    let scale = if max > 0.0 && max < 1e-150 {
        2f64.powi(600)
    } else {
        1.0
    };
    let (mut s, mut c) = (0f64, 0f64);
    for (a, b) in x.iter().zip(y) {
        let d = (a - b) * scale;
        let sq = d * d;
        for t in [sq, d.mul_add(d, -sq)] {
            let u = s + t;
            c += if s.abs() >= t.abs() {
                (s - u) + t
            } else {
                (t - u) + s
            };
            s = u;
        }
    }
    (s + c).sqrt() / scale
}

/// numpy.median.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// numpy.quantile (linear) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The nearest of some candidates (id, distance): the smallest distance,
/// then the smallest id; with every id whose distance is within 4 ulps of
/// it. The brute force's sums are not correctly rounded, nor are the
/// library's, so among such candidates f64 rounding decides (on f64 rows
/// one step apart, exact arithmetic can tell them apart where neither sum
/// can); the hand-built cases below check exact ties by value.
#[derive(Clone, Debug)]
struct Best {
    id: usize,
    distance: f64,
    within_rounding: Vec<usize>,
}

fn best(candidates: impl Iterator<Item = (usize, f64)>) -> Option<Best> {
    let all: Vec<(usize, f64)> = candidates.collect();
    let &(id, distance) = all
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))?;
    let slack = distance * 4.0 * f64::EPSILON;
    let mut within_rounding: Vec<usize> = all
        .iter()
        .filter(|c| c.1 <= distance + slack)
        .map(|c| c.0)
        .collect();
    within_rounding.sort_unstable();
    within_rounding.dedup();
    Some(Best {
        id,
        distance,
        within_rounding,
    })
}

/// Checks a library answer (id, distance) against the brute force's.
fn check_best(what: &str, id: usize, distance: f64, want: &Best) {
    if want.within_rounding.len() == 1 {
        assert_eq!(
            id, want.id,
            "{what}: nearest (distance {distance} vs brute force {})",
            want.distance
        );
    } else {
        assert!(
            want.within_rounding.contains(&id),
            "{what}: nearest {id} not among {:?} at {}",
            want.within_rounding,
            want.distance
        );
    }
    assert!(
        close(distance, want.distance, 1e-12),
        "{what}: distance to {id}: {distance} vs brute force {}",
        want.distance
    );
}

/// A threshold as the brute force applies it.
#[derive(Clone, Copy, Debug)]
enum Criterion {
    L2(f64),
    Steps(u64),
}

/// One component, as the brute force describes it.
#[derive(Debug)]
struct WantComponent {
    token_ids: Vec<usize>,
    distinct_vectors: usize,
    black_holes: usize,
    diameter_l2: f64,
    diameter_steps: u64,
    centroid_norm: f64,
    nearest_outside: Option<Best>,
    constant_coordinates: usize,
}

struct WantLattice {
    linf: Vec<Vec<u64>>,
    l1: Vec<Vec<u64>>,
    components: Vec<Vec<usize>>,
}

impl Model {
    fn new(b: &Built) -> Self {
        let values: Vec<Vec<f64>> = (0..b.rows).map(|r| b.values(r)).collect();
        let bits: Vec<Vec<u64>> = (0..b.rows)
            .map(|r| (0..b.cols).map(|c| b.get_bits(r, c)).collect())
            .collect();
        let usable: Vec<bool> = values
            .iter()
            .map(|v| v.iter().all(|x| x.is_finite()))
            .collect();
        let mut by_bytes: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for r in 0..b.rows {
            by_bytes.entry(b.row(r)).or_default().push(r);
        }
        let mut holes: Vec<Vec<usize>> =
            by_bytes.values().filter(|g| g.len() > 1).cloned().collect();
        holes.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        let mut vectors: Vec<Vec<usize>> =
            by_bytes.into_values().filter(|g| usable[g[0]]).collect();
        vectors.sort_by_key(|g| g[0]);
        Self {
            dtype: b.dtype,
            cols: b.cols,
            values,
            bits,
            usable,
            vectors,
            holes,
        }
    }

    fn rows(&self) -> usize {
        self.values.len()
    }

    fn dist(&self, i: usize, j: usize) -> f64 {
        distance(&self.values[i], &self.values[j])
    }

    fn linf_steps(&self, i: usize, j: usize) -> u64 {
        (0..self.cols)
            .map(|c| steps(self.dtype, self.bits[i][c], self.bits[j][c]))
            .max()
            .unwrap_or(0)
    }

    fn l1_steps(&self, i: usize, j: usize) -> u64 {
        let total: u128 = (0..self.cols)
            .map(|c| steps(self.dtype, self.bits[i][c], self.bits[j][c]) as u128)
            .sum();
        total.min(u64::MAX as u128) as u64
    }

    fn norm(&self, r: usize) -> f64 {
        self.values[r].iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    fn rep(&self, v: usize) -> usize {
        self.vectors[v][0]
    }

    /// Per token: the smallest id on the nearest other distinct vector, and
    /// the distance (ties: the smallest id).
    fn nearest(&self) -> Vec<Option<Best>> {
        let k = self.vectors.len();
        let per_vector: Vec<Option<Best>> = (0..k)
            .map(|v| {
                best(
                    (0..k)
                        .filter(|&w| w != v)
                        .map(|w| (self.rep(w), self.dist(self.rep(v), self.rep(w)))),
                )
            })
            .collect();
        let mut out = vec![None; self.rows()];
        for (v, tokens) in self.vectors.iter().enumerate() {
            for &t in tokens {
                out[t] = per_vector[v].clone();
            }
        }
        out
    }

    /// Every pair distance between distinct vectors, ascending.
    fn pair_distances(&self) -> Vec<f64> {
        let k = self.vectors.len();
        let mut d: Vec<f64> = (0..k)
            .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
            .map(|(a, b)| self.dist(self.rep(a), self.rep(b)))
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    /// An L2 radius that joins about `pairs` pairs, halfway between two
    /// consecutive pair distances (so that no pair sits near the border).
    fn radius_joining(&self, pairs: usize) -> f64 {
        let d = self.pair_distances();
        for i in pairs.min(d.len().saturating_sub(1))..d.len().saturating_sub(1) {
            if d[i + 1] > d[i] * (1.0 + 1e-6) + 1e-300 {
                return (d[i] + d[i + 1]) / 2.0;
            }
        }
        d.last().map_or(1.0, |x| x * 2.0 + 1.0)
    }

    fn median_norm(&self) -> f64 {
        let norms: Vec<f64> = (0..self.rows()).map(|r| self.norm(r)).collect();
        median(&norms)
    }

    fn joins(&self, c: Criterion, a: usize, b: usize) -> bool {
        match c {
            Criterion::L2(r) => self.dist(a, b) <= r,
            Criterion::Steps(k) => self.linf_steps(a, b) <= k,
        }
    }

    /// Joined pairs and the components (≥ 2 vectors), found by BFS.
    fn near(&self, c: Criterion) -> (usize, Vec<WantComponent>) {
        let k = self.vectors.len();
        let mut adj = vec![Vec::new(); k];
        let mut pairs = 0;
        for a in 0..k {
            for b in a + 1..k {
                if self.joins(c, self.rep(a), self.rep(b)) {
                    adj[a].push(b);
                    adj[b].push(a);
                    pairs += 1;
                }
            }
        }
        let mut seen = vec![false; k];
        let mut comps = Vec::new();
        for start in 0..k {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut members = vec![start];
            let mut i = 0;
            while i < members.len() {
                for &w in &adj[members[i]] {
                    if !seen[w] {
                        seen[w] = true;
                        members.push(w);
                    }
                }
                i += 1;
            }
            if members.len() > 1 {
                members.sort_unstable();
                comps.push(self.describe(&members));
            }
        }
        comps.sort_by(|a, b| {
            b.token_ids
                .len()
                .cmp(&a.token_ids.len())
                .then(a.token_ids[0].cmp(&b.token_ids[0]))
        });
        (pairs, comps)
    }

    fn describe(&self, members: &[usize]) -> WantComponent {
        let mut token_ids: Vec<usize> = members
            .iter()
            .flat_map(|&v| self.vectors[v].iter().copied())
            .collect();
        token_ids.sort_unstable();
        let reps: Vec<usize> = members.iter().map(|&v| self.rep(v)).collect();
        let (mut diameter_l2, mut diameter_steps) = (0f64, 0u64);
        for (i, &a) in reps.iter().enumerate() {
            for &b in &reps[i + 1..] {
                diameter_l2 = diameter_l2.max(self.dist(a, b));
                diameter_steps = diameter_steps.max(self.linf_steps(a, b));
            }
        }
        let mut centroid = vec![0f64; self.cols];
        for &t in &token_ids {
            for (s, x) in centroid.iter_mut().zip(&self.values[t]) {
                *s += x;
            }
        }
        let centroid_norm = centroid
            .iter()
            .map(|s| s / token_ids.len() as f64)
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt();
        let nearest_outside = best(
            (0..self.vectors.len())
                .filter(|v| !members.contains(v))
                .flat_map(|v| {
                    reps.iter()
                        .map(move |&r| (self.rep(v), self.dist(r, self.rep(v))))
                }),
        );
        let constant_coordinates = (0..self.cols)
            .filter(|&c| {
                reps.iter()
                    .all(|&r| self.bits[r][c] == self.bits[reps[0]][c])
            })
            .count();
        WantComponent {
            distinct_vectors: members.len(),
            black_holes: members
                .iter()
                .filter(|&&v| self.vectors[v].len() > 1)
                .count(),
            diameter_l2,
            diameter_steps,
            centroid_norm,
            nearest_outside,
            constant_coordinates,
            token_ids,
        }
    }

    /// Step distances between hole representatives and the components at
    /// L∞ ≤ 1; `None` with fewer than two holes.
    fn lattice(&self) -> Option<WantLattice> {
        let k = self.holes.len();
        if k < 2 {
            return None;
        }
        let reps: Vec<usize> = self.holes.iter().map(|h| h[0]).collect();
        let linf: Vec<Vec<u64>> = reps
            .iter()
            .map(|&a| reps.iter().map(|&b| self.linf_steps(a, b)).collect())
            .collect();
        let l1: Vec<Vec<u64>> = reps
            .iter()
            .map(|&a| reps.iter().map(|&b| self.l1_steps(a, b)).collect())
            .collect();
        let mut seen = vec![false; k];
        let mut components = Vec::new();
        for start in 0..k {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut members = vec![start];
            let mut i = 0;
            while i < members.len() {
                let h = members[i];
                for w in 0..k {
                    if !seen[w] && linf[h][w] <= 1 {
                        seen[w] = true;
                        members.push(w);
                    }
                }
                i += 1;
            }
            members.sort_unstable();
            components.push(members);
        }
        components.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        Some(WantLattice {
            linf,
            l1,
            components,
        })
    }
}

// ---------------------------------------------------------------------------
// Running the library and comparing.

fn close(got: f64, want: f64, rel: f64) -> bool {
    got == want || (got - want).abs() <= rel * want.abs().max(got.abs())
}

/// The exact survey, then the all-pairs geometry, on one engine.
fn run(engine: &dyn Engine, b: &Built, opts: PairOptions) -> (Analysis, PairsAnalysis) {
    let m = b.matrix();
    let a = analyze(engine, &m, GroupOptions::default(), &Progress::hidden()).expect("analyze");
    let p = analyze_pairs(engine, &m, &a.grouping.groups, opts, false).expect("analyze_pairs");
    (a, p)
}

fn check_nearest(what: &str, model: &Model, p: &PairsAnalysis) {
    let got = p
        .nearest
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no nearest"));
    let want = model.nearest();
    assert_eq!(got.ids.len(), model.rows(), "{what}: ids");
    assert_eq!(got.distances.len(), model.rows(), "{what}: distances");
    for (t, w) in want.iter().enumerate() {
        match (got.ids[t], got.distances[t], w) {
            (None, None, None) => {}
            (Some(id), Some(d), Some(w)) => {
                check_best(&format!("{what}: token {t}"), id, d, w);
            }
            (id, d, w) => panic!("{what}: token {t}: got {id:?} {d:?}, want {w:?}"),
        }
    }
    // The quantiles are numpy's over the tokens that have a neighbour.
    let mut dists: Vec<f64> = want.iter().flatten().map(|b| b.distance).collect();
    dists.sort_by(f64::total_cmp);
    if dists.is_empty() {
        assert!(
            got.quantiles.is_empty(),
            "{what}: quantiles without distances"
        );
    } else {
        for q in &got.quantiles {
            let w = quantile(&dists, q.q);
            assert!(
                close(q.distance, w, 1e-12) || (q.distance - w).abs() <= 1e-300,
                "{what}: quantile {} = {} vs {w}",
                q.q,
                q.distance
            );
        }
    }
}

fn check_near(what: &str, model: &Model, th: NearThreshold, near: &Near) {
    let (criterion, want_threshold) = match th {
        NearThreshold::L2(r) => (Criterion::L2(r), r),
        NearThreshold::Rel(f) => {
            let r = f * model.median_norm();
            (Criterion::L2(r), r)
        }
        NearThreshold::Ulp(k) => (Criterion::Steps(k), k as f64),
    };
    // A relative radius comes from the engines' row norms (f32 partial sums
    // on the GPU and in the CPU's AVX2 path): within 1e-6 here; whether it is
    // exactly F × the median norm is pinned by
    // `relative_radius_is_f_times_the_exact_median_norm`.
    let rel = if matches!(th, NearThreshold::Rel(_)) {
        1e-6
    } else {
        1e-12
    };
    assert!(
        close(near.threshold, want_threshold, rel),
        "{what}: threshold {} vs {want_threshold}",
        near.threshold
    );
    let (pairs, comps) = model.near(criterion);
    let summary = |c: &[Vec<usize>]| format!("{c:?}");
    let got_sets: Vec<Vec<usize>> = near
        .components
        .iter()
        .map(|c| c.token_ids.clone())
        .collect();
    let want_sets: Vec<Vec<usize>> = comps.iter().map(|c| c.token_ids.clone()).collect();
    assert_eq!(
        got_sets,
        want_sets,
        "{what}: component token sets\n got {}\nwant {}",
        summary(&got_sets),
        summary(&want_sets)
    );
    assert_eq!(near.pairs, pairs, "{what}: joined pairs");
    let scale = (0..model.rows())
        .filter(|&r| model.usable[r])
        .map(|r| model.norm(r))
        .fold(0f64, f64::max);
    for (i, (g, w)) in near.components.iter().zip(&comps).enumerate() {
        let what = format!("{what}: component {i} {:?}", w.token_ids);
        assert_eq!(g.distinct_vectors, w.distinct_vectors, "{what}: vectors");
        assert_eq!(g.black_holes, w.black_holes, "{what}: black holes");
        let d = g
            .diameter_l2
            .unwrap_or_else(|| panic!("{what}: no diameter"));
        assert!(
            close(d, w.diameter_l2, 1e-12),
            "{what}: diameter {d} vs {}",
            w.diameter_l2
        );
        assert_eq!(g.diameter_steps, Some(w.diameter_steps), "{what}: steps");
        assert!(
            (g.centroid_norm - w.centroid_norm).abs() <= 1e-12 * scale + 1e-300,
            "{what}: centroid norm {} vs {}",
            g.centroid_norm,
            w.centroid_norm
        );
        match (&g.nearest_outside, &w.nearest_outside) {
            (None, None) => {}
            (Some(o), Some(w)) => {
                check_best(&format!("{what}: outside"), o.token_id, o.distance, w);
            }
            (o, w) => panic!("{what}: nearest outside {o:?} vs {w:?}"),
        }
        assert_eq!(
            g.constant_coordinates, w.constant_coordinates,
            "{what}: constant coordinates"
        );
    }
}

fn check_lattice(what: &str, model: &Model, p: &PairsAnalysis) {
    match (&p.lattice, model.lattice()) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            assert_eq!(g.linf_steps, w.linf, "{what}: L∞ steps");
            assert_eq!(g.l1_steps, w.l1, "{what}: L1 steps");
            assert_eq!(g.components, w.components, "{what}: lattice components");
        }
        (g, w) => panic!(
            "{what}: lattice {} vs brute force {}",
            if g.is_some() { "present" } else { "absent" },
            if w.is_some() { "present" } else { "absent" }
        ),
    }
}

/// The engines to run: the CPU always, the GPU when there is an adapter
/// (and under CI=true there must be one).
fn engines(with_gpu: bool) -> Vec<(&'static str, &'static dyn Engine)> {
    static CPU: CpuEngine = CpuEngine;
    let mut e: Vec<(&'static str, &'static dyn Engine)> = vec![("cpu", &CPU)];
    if with_gpu {
        if let Some(g) = gpu() {
            e.push(("gpu", g));
        }
    }
    e
}

/// Runs one case on the engines, checks each against the brute force and
/// the engines against each other; returns the first engine's results (the
/// nearest neighbours and lattice first, then one per threshold).
pub(crate) fn check_case(
    name: &str,
    b: &Built,
    thresholds: &[NearThreshold],
    with_gpu: bool,
) -> Vec<PairsAnalysis> {
    let model = Model::new(b);
    let mut first: Option<Vec<PairsAnalysis>> = None;
    for (engine_name, engine) in engines(with_gpu) {
        let what = format!("{name} [{engine_name}]");
        let (a, p) = run(
            engine,
            b,
            PairOptions {
                nearest: true,
                near: thresholds.first().copied(),
            },
        );
        let groups: Vec<Vec<usize>> = a.grouping.groups.iter().map(|g| g.ids.clone()).collect();
        assert_eq!(groups, model.holes, "{what}: groups");
        check_nearest(&what, &model, &p);
        check_lattice(&what, &model, &p);
        let m = b.matrix();
        let mut results = vec![p];
        for &th in thresholds.iter().skip(1) {
            let opts = PairOptions {
                nearest: false,
                near: Some(th),
            };
            results.push(
                analyze_pairs(engine, &m, &a.grouping.groups, opts, false).expect("analyze_pairs"),
            );
        }
        for (p, &th) in results.iter().zip(thresholds) {
            let near = p
                .near
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: no near result for {th:?}"));
            check_near(&format!("{what} {th:?}"), &model, th, near);
        }
        match &first {
            None => first = Some(results),
            Some(reference) => {
                // Identical answers on both engines (only a relative
                // threshold may differ, by the f32 norms' median).
                let (g, c) = (&results[0], &reference[0]);
                let (gn, cn) = (g.nearest.as_ref().unwrap(), c.nearest.as_ref().unwrap());
                assert_eq!(gn.ids, cn.ids, "{what}: nearest ids differ from the CPU's");
                assert_eq!(
                    gn.distances, cn.distances,
                    "{what}: nearest distances differ from the CPU's"
                );
                assert_eq!(
                    g.lattice, c.lattice,
                    "{what}: lattice differs from the CPU's"
                );
                for ((g, c), th) in results.iter().zip(reference).zip(thresholds) {
                    let (g, c) = (g.near.as_ref().unwrap(), c.near.as_ref().unwrap());
                    assert_eq!(
                        g.components, c.components,
                        "{what}: components for {th:?} differ from the CPU's"
                    );
                    assert_eq!(g.pairs, c.pairs, "{what}: joined pairs for {th:?} differ");
                    if !matches!(th, NearThreshold::Rel(_)) {
                        assert_eq!(g.threshold, c.threshold, "{what}: thresholds differ");
                    }
                }
            }
        }
    }
    first.unwrap()
}

// ---------------------------------------------------------------------------
// Matrices.

fn nan_bits(dtype: Dtype) -> u64 {
    match dtype {
        Dtype::F16 => 0x7e00,
        Dtype::BF16 => 0x7fc0,
        Dtype::F32 => 0x7fc0_0000,
        Dtype::F64 => 0x7ff8_0000_0000_0000,
    }
}

fn inf_bits(dtype: Dtype) -> u64 {
    match dtype {
        Dtype::F16 => 0x7c00,
        Dtype::BF16 => 0x7f80,
        Dtype::F32 => 0x7f80_0000,
        Dtype::F64 => 0x7ff0_0000_0000_0000,
    }
}

fn bits_value(dtype: Dtype, x: f64) -> u64 {
    let e = encode(dtype, x);
    let mut b = [0u8; 8];
    b[..e.len()].copy_from_slice(&e);
    u64::from_le_bytes(b)
}

fn matrix(dtype: Dtype, rows: &[Vec<u64>]) -> Built {
    let cols = rows[0].len();
    let mut b = Built {
        dtype,
        rows: rows.len(),
        cols,
        bytes: vec![0; rows.len() * cols * dtype.size()],
    };
    for (r, row) in rows.iter().enumerate() {
        for (c, &bits) in row.iter().enumerate() {
            b.set_bits(r, c, bits);
        }
    }
    b
}

/// A random matrix with planted structure: black holes of 2, 3 and 5 rows,
/// near-duplicates one to two steps from a row in a few coordinates (one of
/// them a whole hole one step from another hole), a ±0 pair, and, when
/// `nonfinite`, a NaN row and a hole of two rows holding +∞.
fn planted(dtype: Dtype, rows: usize, cols: usize, seed: u64, nonfinite: bool) -> Built {
    let mut b = Built::random(dtype, rows, cols, seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut next = rows / 2;
    let mut take = || {
        next += 1;
        next - 1
    };
    for size in [2, 3, 5] {
        let src = rng.below(rows / 2);
        for _ in 1..size {
            b.copy_row(src, take());
        }
    }
    // Near-duplicates: 1 or 2 steps in 1 to 3 coordinates.
    for _ in 0..6 {
        let (src, dst) = (rng.below(rows / 2), take());
        b.copy_row(src, dst);
        for _ in 0..1 + rng.below(3) {
            let c = rng.below(cols);
            let delta = [-2, -1, 1, 2][rng.below(4)];
            let bits = b.get_bits(dst, c);
            b.set_bits(dst, c, moved(dtype, bits, delta));
        }
    }
    // A hole of 3 and a hole of 2 one step from it (the lattice joins them);
    // a third row one step the other way from the first hole (a near pair).
    let src = rng.below(rows / 2);
    let h1 = take();
    b.copy_row(src, h1);
    b.copy_row(src, take());
    let h2 = take();
    b.copy_row(src, h2);
    let bits = b.get_bits(h2, 0);
    b.set_bits(h2, 0, moved(dtype, bits, 1));
    b.copy_row(h2, take());
    let lone = take();
    b.copy_row(src, lone);
    let bits = b.get_bits(lone, cols - 1);
    b.set_bits(lone, cols - 1, moved(dtype, bits, -1));
    // ±0: two rows equal but for the sign of a zero.
    let (z1, z2) = (take(), take());
    b.copy_row(3, z1);
    b.set_bits(z1, 0, 0);
    b.copy_row(z1, z2);
    let neg_zero = 1u64 << (bits_of(dtype) - 1);
    b.set_bits(z2, 0, neg_zero);
    if nonfinite {
        let (n, i1, i2) = (take(), take(), take());
        b.set_bits(n, cols / 2, nan_bits(dtype));
        b.set_bits(i1, 0, inf_bits(dtype));
        b.copy_row(i1, i2);
    }
    assert!(next <= rows, "the planted rows fit");
    b
}

// ---------------------------------------------------------------------------
// The tests.

/// The brute force's own step counting agrees with ranks in a sorted table
/// of every finite value of the 16-bit dtypes (±∞ at the ends, ±0 one
/// value), and with f32/f64 `next_up` walks; the library's `steps_between`
/// agrees with it too.
#[test]
fn step_counting_matches_a_table_of_every_16_bit_value() {
    for dtype in [Dtype::F16, Dtype::BF16] {
        let mut values: Vec<(f64, u64)> = (0..=u16::MAX as u64)
            .filter(|&b| !is_nan_bits(dtype, b))
            .map(|b| (decode(dtype, &(b as u16).to_le_bytes()), b))
            .collect();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Rank = number of distinct values (−0 == +0) below.
        let mut rank = vec![0i64; 1 << 16];
        let mut r = -1i64;
        let mut last = f64::NAN;
        for &(v, b) in &values {
            if v != last {
                r += 1;
                last = v;
            }
            rank[b as usize] = r;
        }
        let mut rng = Rng::new(7);
        let pick = |rng: &mut Rng| values[rng.below(values.len())].1;
        let mut pairs: Vec<(u64, u64)> = (0..20_000)
            .map(|_| (pick(&mut rng), pick(&mut rng)))
            .collect();
        // Neighbours: consecutive entries of the table (across 0, binades, ∞).
        pairs.extend(values.windows(2).map(|w| (w[0].1, w[1].1)));
        for (a, b) in pairs {
            let want = (rank[a as usize] - rank[b as usize]).unsigned_abs();
            assert_eq!(steps(dtype, a, b), want, "{dtype} {a:#06x} {b:#06x}");
            assert_eq!(
                dtype.steps_between(a, b),
                want,
                "library: {dtype} {a:#06x} {b:#06x}"
            );
        }
    }
    // f32 and f64: walk with next_up from below zero, through subnormals,
    // across a power of two, and to infinity.
    for start in [
        -3.0f32 * f32::from_bits(1),
        2.0 - 4.0 * f32::EPSILON,
        f32::MAX,
    ] {
        let mut x = start;
        for n in 0..8u64 {
            let (a, b) = (start.to_bits() as u64, x.to_bits() as u64);
            // next_up passes −0 and +0 as one value (−0 → smallest positive).
            assert_eq!(steps(Dtype::F32, a, b), n, "f32 {start:e} → {x:e}");
            assert_eq!(
                Dtype::F32.steps_between(a, b),
                n,
                "library f32 {start:e} → {x:e}"
            );
            if x.is_infinite() {
                break;
            }
            x = x.next_up();
        }
    }
    for start in [-2.0f64 * f64::from_bits(1), 1.0 - 2.0 * f64::EPSILON] {
        let mut x = start;
        for n in 0..8u64 {
            assert_eq!(steps(Dtype::F64, start.to_bits(), x.to_bits()), n);
            assert_eq!(Dtype::F64.steps_between(start.to_bits(), x.to_bits()), n);
            x = x.next_up();
        }
    }
    // −0 and +0: the same position.
    assert_eq!(steps(Dtype::F32, 0x8000_0000, 0), 0);
}

#[test]
fn random_matrices_of_every_dtype_match_brute_force() {
    for (k, dtype) in DTYPES.into_iter().enumerate() {
        let seed = 100 + k as u64;
        // CPU: 300 × 24 with a NaN row and an infinite hole.
        let b = planted(dtype, 300, 24, seed, true);
        let model = Model::new(&b);
        let r = model.radius_joining(60);
        check_case(
            &format!("planted {dtype} 300×24"),
            &b,
            &[
                NearThreshold::Ulp(2),
                NearThreshold::L2(r),
                NearThreshold::Ulp(0),
            ],
            false,
        );
        // Finite rows (a relative radius is F × the median of all norms).
        let b = planted(dtype, 200, 20, seed + 50, false);
        let model = Model::new(&b);
        let f = model.radius_joining(40) / model.median_norm();
        check_case(
            &format!("planted finite {dtype} 200×20"),
            &b,
            &[NearThreshold::Rel(f), NearThreshold::Ulp(1)],
            false,
        );
        // Both engines, small.
        let b = planted(dtype, 96, 12, seed + 7, true);
        let model = Model::new(&b);
        let r = model.radius_joining(20);
        check_case(
            &format!("planted {dtype} 96×12"),
            &b,
            &[NearThreshold::L2(r), NearThreshold::Ulp(2)],
            true,
        );
        let b = planted(dtype, 64, 10, seed + 9, false);
        let model = Model::new(&b);
        let f = model.radius_joining(15) / model.median_norm();
        check_case(
            &format!("planted finite {dtype} 64×10"),
            &b,
            &[NearThreshold::Rel(f), NearThreshold::Ulp(1)],
            true,
        );
    }
}

/// Vectors one step apart in one coordinate, with an exact tie.
#[test]
fn vectors_one_step_apart_and_ties() {
    for dtype in DTYPES {
        let v = |x: f64| bits_value(dtype, x);
        let base = vec![v(1.0), v(1.0), v(0.5), v(-3.0)];
        let with = |c: usize, delta: i64| {
            let mut r = base.clone();
            r[c] = moved(dtype, r[c], delta);
            r
        };
        let far = vec![v(4.0), v(4.0), v(4.0), v(4.0)];
        let far_with = |c: usize| {
            let mut r = far.clone();
            r[c] = moved(dtype, r[c], 1);
            r
        };
        let rows = vec![
            base.clone(), // 0
            with(0, 1),   // 1: one step up at 1.0
            with(1, 1),   // 2: the same in another coordinate
            with(2, -1),  // 3: one step down at 0.5 (a quarter of the step at 1.0)
            with(3, 1),   // 4: −3 one step towards zero (a step of 2 × that at 1.0)
            far.clone(),  // 5
            far_with(3),  // 6: tied with 7 as 5's nearest (same step size)
            far_with(0),  // 7
            base.clone(), // 8: a duplicate of 0
        ];
        let b = matrix(dtype, &rows);
        let u = v(1.0);
        let step_at_one = decode(dtype, &moved(dtype, u, 1).to_le_bytes()[..dtype.size()]) - 1.0;
        let res = check_case(
            &format!("one step {dtype}"),
            &b,
            &[
                NearThreshold::Ulp(1),
                NearThreshold::Ulp(0),
                NearThreshold::L2(step_at_one),
            ],
            true,
        );
        // By hand: 5's nearest is the smaller id of the tie, at one step of 4.0.
        let nn = res[0].nearest.as_ref().unwrap();
        assert_eq!(nn.ids[5], Some(6), "{dtype}: tie goes to the smaller id");
        assert_eq!(nn.distances[5], Some(4.0 * step_at_one), "{dtype}");
        // 0's nearest is 3 (a quarter step of 1.0 away), and 8 shares it.
        assert_eq!(nn.ids[0], Some(3), "{dtype}");
        assert_eq!(nn.ids[8], Some(3), "{dtype}");
        assert_eq!(nn.distances[0], Some(step_at_one / 4.0), "{dtype}");
        // Ulp(1): {0, 8, 1, 2, 3, 4} and {5, 6, 7}.
        let near = res[0].near.as_ref().unwrap();
        assert_eq!(near.components.len(), 2, "{dtype}");
        assert_eq!(near.components[0].token_ids, vec![0, 1, 2, 3, 4, 8]);
        // Every pair differs by at most one step in every coordinate.
        assert_eq!(near.components[0].diameter_steps, Some(1), "{dtype}");
        assert_eq!(near.components[1].token_ids, vec![5, 6, 7]);
        // Ulp(0) joins nothing distinct; L2 of exactly one step at 1.0
        // includes the pairs at exactly that distance (0–1, 0–2).
        assert!(
            res[1].near.as_ref().unwrap().components.is_empty(),
            "{dtype}"
        );
        let l2 = res[2].near.as_ref().unwrap();
        assert_eq!(l2.components[0].token_ids, vec![0, 1, 2, 3, 8], "{dtype}");
    }
}

/// +0 and −0 are distinct vectors at distance 0 and position 0 steps apart.
#[test]
fn signed_zeros_are_distinct_vectors_at_distance_zero() {
    for dtype in DTYPES {
        let v = |x: f64| bits_value(dtype, x);
        let neg = 1u64 << (bits_of(dtype) - 1);
        let rows = vec![
            vec![0, v(1.0), v(2.0)],       // 0
            vec![neg, v(1.0), v(2.0)],     // 1: −0
            vec![1, v(1.0), v(2.0)],       // 2: smallest positive subnormal
            vec![neg | 1, v(1.0), v(2.0)], // 3: smallest negative subnormal
            vec![0, v(1.0), v(2.0)],       // 4: a duplicate of 0
            vec![v(1.0), v(-1.0), v(0.25)],
        ];
        let b = matrix(dtype, &rows);
        let res = check_case(
            &format!("signed zeros {dtype}"),
            &b,
            &[
                NearThreshold::Ulp(0),
                NearThreshold::Ulp(1),
                NearThreshold::L2(0.0),
            ],
            true,
        );
        let nn = res[0].nearest.as_ref().unwrap();
        assert_eq!(nn.ids[0], Some(1), "{dtype}: +0's nearest is −0");
        assert_eq!(nn.distances[0], Some(0.0), "{dtype}");
        assert_eq!(nn.ids[1], Some(0), "{dtype}: −0's nearest is +0");
        assert_eq!(nn.ids[4], Some(1), "{dtype}");
        let ulp0 = res[0].near.as_ref().unwrap();
        assert_eq!(ulp0.components.len(), 1, "{dtype}");
        let c = &ulp0.components[0];
        assert_eq!(c.token_ids, vec![0, 1, 4], "{dtype}");
        assert_eq!((c.distinct_vectors, c.black_holes), (2, 1), "{dtype}");
        assert_eq!(c.constant_coordinates, 2, "{dtype}");
        assert_eq!(c.diameter_steps, Some(0), "{dtype}");
        let ulp1 = res[1].near.as_ref().unwrap();
        assert_eq!(ulp1.components[0].token_ids, vec![0, 1, 2, 3, 4], "{dtype}");
        assert_eq!(ulp1.components[0].diameter_steps, Some(2), "{dtype}");
    }
}

/// Around powers of two a step doubles: 2 − s and 2 + 2s are one step
/// either side of 2.
#[test]
fn steps_change_size_at_powers_of_two() {
    for dtype in DTYPES {
        let v = |x: f64| bits_value(dtype, x);
        let at = |x: f64, d: i64| moved(dtype, v(x), d);
        let rows = vec![
            vec![at(2.0, -1), v(1.0), v(-0.5)],     // 0
            vec![v(2.0), v(1.0), v(-0.5)],          // 1
            vec![at(2.0, 1), v(1.0), v(-0.5)],      // 2: equidistant from 1 and 3
            vec![at(2.0, 2), v(1.0), v(-0.5)],      // 3
            vec![v(2.0), at(1.0, -2), at(-0.5, 2)], // 4: smaller steps, below 1 and 0.5
            vec![v(-2.0), at(1.0, -2), v(-0.5)],
        ];
        let b = matrix(dtype, &rows);
        let below = decode(dtype, &at(2.0, -1).to_le_bytes()[..dtype.size()]);
        let res = check_case(
            &format!("power of two {dtype}"),
            &b,
            &[
                NearThreshold::Ulp(1),
                NearThreshold::Ulp(2),
                NearThreshold::L2(2.0 - below),
            ],
            true,
        );
        let nn = res[0].nearest.as_ref().unwrap();
        assert_eq!(nn.ids[2], Some(1), "{dtype}: the tie 1/3 goes to 1");
        assert_eq!(nn.ids[1], Some(0), "{dtype}: the smaller step below 2");
        let ulp1 = res[0].near.as_ref().unwrap();
        assert_eq!(ulp1.components[0].token_ids, vec![0, 1, 2, 3], "{dtype}");
        assert_eq!(ulp1.components[0].diameter_steps, Some(3), "{dtype}");
    }
}

/// Rows of subnormal values (steps are all the smallest step there), and
/// the boundary with the smallest normal.
#[test]
fn subnormals() {
    for dtype in DTYPES {
        let mut rng = Rng::new(31);
        let neg = 1u64 << (bits_of(dtype) - 1);
        let mut rows: Vec<Vec<u64>> = (0..40)
            .map(|_| {
                (0..6)
                    .map(|_| {
                        let m = rng.below(12) as u64;
                        if rng.below(2) == 0 {
                            m
                        } else {
                            neg | m
                        }
                    })
                    .collect()
            })
            .collect();
        // The largest subnormal and the smallest normal, one step apart.
        let min_normal = match dtype {
            Dtype::F16 => 0x0400,
            Dtype::BF16 => 0x0080,
            Dtype::F32 => 0x0080_0000,
            Dtype::F64 => 0x0010_0000_0000_0000,
        };
        rows.push(vec![min_normal - 1, 0, 0, 0, 0, 0]);
        rows.push(vec![min_normal, 0, 0, 0, 0, 0]);
        rows.push(vec![min_normal + 1, 0, 0, 0, 0, 0]);
        let b = matrix(dtype, &rows);
        let model = Model::new(&b);
        let r = model.radius_joining(30);
        let res = check_case(
            &format!("subnormals {dtype}"),
            &b,
            &[
                NearThreshold::Ulp(1),
                NearThreshold::Ulp(3),
                NearThreshold::L2(r),
            ],
            true,
        );
        let ulp1 = res[0].near.as_ref().unwrap();
        assert!(
            ulp1.components
                .iter()
                .any(|c| c.token_ids == vec![40, 41, 42]),
            "{dtype}: the subnormal/normal boundary is one step"
        );
    }
}

/// Norms around 8 with differences around 1e-6: the f32 kernels cannot
/// separate these neighbours, so the exact refinement decides.
#[test]
fn norms_near_eight_with_micro_differences() {
    for dtype in [Dtype::F32, Dtype::F64] {
        for (rows, cols, gpu) in [(160, 64, false), (48, 64, true)] {
            let mut rng = Rng::new(rows as u64);
            let base: Vec<f64> = (0..cols)
                .map(|_| if rng.unit() < 0.0 { -1.0 } else { 1.0 })
                .collect();
            let data: Vec<Vec<u64>> = (0..rows)
                .map(|_| {
                    base.iter()
                        .map(|x| bits_value(dtype, x + 1e-6 * rng.unit()))
                        .collect()
                })
                .collect();
            let mut b = matrix(dtype, &data);
            b.copy_row(0, rows - 1);
            let model = Model::new(&b);
            let nn_max = model
                .nearest()
                .iter()
                .flatten()
                .map(|b| b.distance)
                .fold(0f64, f64::max);
            assert!(nn_max < 2e-5, "neighbours within ~1e-6 per coordinate");
            let r = model.radius_joining(rows / 2);
            let f = model.radius_joining(rows) / model.median_norm();
            check_case(
                &format!("norm 8 {dtype} {rows}×{cols}"),
                &b,
                &[
                    NearThreshold::L2(r),
                    NearThreshold::Rel(f),
                    NearThreshold::Ulp(12),
                ],
                gpu,
            );
        }
    }
}

/// Norms above 1e18 (f32 squares could overflow): the exact host path.
#[test]
fn huge_norms_take_the_exact_host_path() {
    for dtype in [Dtype::F32, Dtype::F64] {
        let mut b = planted(dtype, 60, 8, 5, false);
        let data: Vec<Vec<u64>> = (0..b.rows)
            .map(|r| {
                b.values(r)
                    .iter()
                    .map(|x| bits_value(dtype, x * 1e20))
                    .collect()
            })
            .collect();
        b = matrix(dtype, &data);
        let model = Model::new(&b);
        let r = model.radius_joining(10);
        check_case(
            &format!("huge {dtype}"),
            &b,
            &[NearThreshold::L2(r), NearThreshold::Ulp(1)],
            true,
        );
    }
}

/// One distinct vector (all rows equal), one row, two rows.
#[test]
fn degenerate_matrices() {
    for dtype in DTYPES {
        let v = |x: f64| bits_value(dtype, x);
        let row = vec![v(0.5), v(-1.0), v(3.0)];
        let other = vec![v(0.5), v(-1.0), v(2.0)];
        let all_equal = matrix(dtype, &vec![row.clone(); 5]);
        let single = matrix(dtype, std::slice::from_ref(&row));
        let two = matrix(dtype, &[row.clone(), other.clone()]);
        let two_equal = matrix(dtype, &[row.clone(), row.clone()]);
        let ths = [NearThreshold::L2(10.0), NearThreshold::Ulp(1_000_000)];
        for (name, b) in [
            ("all equal", &all_equal),
            ("single", &single),
            ("two equal", &two_equal),
        ] {
            let res = check_case(&format!("{name} {dtype}"), b, &ths, true);
            let nn = res[0].nearest.as_ref().unwrap();
            assert!(
                nn.ids.iter().all(|i| i.is_none()),
                "{name} {dtype}: {:?}",
                nn.ids
            );
            assert!(nn.distances.iter().all(|i| i.is_none()), "{name} {dtype}");
            assert!(res[0].lattice.is_none(), "{name} {dtype}: one hole at most");
            for p in &res {
                let near = p.near.as_ref().unwrap();
                assert_eq!(
                    (near.pairs, near.components.len()),
                    (0, 0),
                    "{name} {dtype}"
                );
            }
        }
        let res = check_case(&format!("two {dtype}"), &two, &ths, true);
        let nn = res[0].nearest.as_ref().unwrap();
        assert_eq!(nn.ids, vec![Some(1), Some(0)], "two {dtype}");
        assert_eq!(nn.distances, vec![Some(1.0), Some(1.0)], "two {dtype}");
        let near = res[0].near.as_ref().unwrap();
        assert_eq!(near.components[0].token_ids, vec![0, 1]);
        assert_eq!(near.components[0].nearest_outside, None);
        assert_eq!(near.components[0].constant_coordinates, 2);
    }
}

/// Holes at ±f64::MAX: L1 steps saturate; +∞ is one step past f64::MAX.
#[test]
fn lattice_saturates_and_counts_infinity() {
    let max = f64::MAX.to_bits();
    let neg = 1u64 << 63;
    let inf = f64::INFINITY.to_bits();
    let rows = vec![
        vec![max, max],
        vec![neg | max, neg | max],
        vec![max, max],
        vec![inf, 0],
        vec![neg | max, neg | max],
        vec![inf, 0],
        vec![max, neg], // one step from [inf, 0] (−0 and +0 one position)
        vec![max, neg],
        vec![1.0f64.to_bits(), 0],
    ];
    let b = matrix(Dtype::F64, &rows);
    let model = Model::new(&b);
    assert_eq!(model.holes.len(), 4);
    for (name, engine) in engines(true) {
        let (_, p) = run(engine, &b, PairOptions::default());
        check_lattice(name, &model, &p);
        let l = p.lattice.unwrap();
        // Holes in order: [0,2] (MAX,MAX), [1,4] (−MAX,−MAX), [3,5] (∞,0), [6,7] (MAX,−0).
        assert_eq!(l.l1_steps[0][1], u64::MAX, "{name}: saturated");
        assert_eq!(l.linf_steps[0][1], 2 * max, "{name}");
        assert_eq!(l.linf_steps[2][3], 1, "{name}: ∞ one past MAX");
        assert_eq!(l.components, vec![vec![2, 3], vec![0], vec![1]], "{name}");
    }
}

/// Above 4,096 black holes the pairwise distances are skipped; at 4,096
/// they are computed. Hole i sits at (i, 0.5), so the distances are |i − j|.
#[test]
fn pairwise_distances_skip_above_4096_black_holes() {
    let holes = |k: usize| -> Built {
        let bytes: Vec<u8> = (0..k)
            .flat_map(|i| [i as f32, 0.5, i as f32, 0.5])
            .flat_map(f32::to_le_bytes)
            .collect();
        Built {
            dtype: Dtype::F32,
            rows: 2 * k,
            cols: 2,
            bytes,
        }
    };
    let b = holes(4097);
    let a = analyze(
        &CpuEngine,
        &b.matrix(),
        GroupOptions::default(),
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!(a.grouping.groups.len(), 4097);
    assert_eq!(a.pairwise_skipped, Some(4097));
    assert_eq!(a.geometry.pairwise_l2, None);

    let n = 4096usize;
    let b = holes(n);
    let a = analyze(
        &CpuEngine,
        &b.matrix(),
        GroupOptions::default(),
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!(a.grouping.groups.len(), n);
    assert_eq!(a.pairwise_skipped, None);
    let s = a.geometry.pairwise_l2.expect("computed at 4,096 holes");
    assert_eq!(s.min, Some(1.0));
    assert_eq!(s.max, Some((n - 1) as f64));
    // Σ_{i<j} (j − i) over n points = n(n² − 1)/6, over n(n − 1)/2 pairs.
    let mean = (n as f64 + 1.0) / 3.0;
    assert_close(s.mean.unwrap(), mean, 1e-9, "mean pairwise distance");
    // The lower middle of the sorted distances: distance d occurs n − d times.
    let pairs = n * (n - 1) / 2;
    let middle = (pairs - 1) / 2;
    let mut seen = 0;
    let mut median = 0;
    for d in 1..n {
        seen += n - d;
        if seen > middle {
            median = d;
            break;
        }
    }
    assert_eq!(s.median, Some(median as f64));
}

/// `Rel(F)` is F × the median row norm. Rows of ±x (x = 1 + 2^-12, f32) in
/// 64 columns all have the norm 8x exactly, and two rows differing in one
/// sign are exactly 2x apart: `Rel(0.25)` must join them (2x ≤ 0.25 · 8x)
/// and `Rel(0.25 · (1 − 2^-40))` must not. Both hold only if the radius is
/// computed from the exact median norm, not from rounded norms.
#[test]
fn relative_radius_is_f_times_the_exact_median_norm() {
    let x = 1.0 + 2f64.powi(-12);
    let rows: Vec<Vec<u64>> = (0..6u64)
        .map(|r| {
            (0..64u64)
                .map(|c| {
                    // Rows 0 and 1 differ in column 0 only; the others in many.
                    let negative = if r < 2 {
                        c == 0 && r == 1
                    } else {
                        (c * 7 + r * 13) % 5 < 2
                    };
                    bits_value(Dtype::F32, if negative { -x } else { x })
                })
                .collect()
        })
        .collect();
    let b = matrix(Dtype::F32, &rows);
    let model = Model::new(&b);
    assert_eq!(model.median_norm(), 8.0 * x);
    assert_eq!(model.dist(0, 1), 2.0 * x);
    let mut failures = Vec::new();
    for (name, engine) in engines(true) {
        let m = b.matrix();
        let a = analyze(engine, &m, GroupOptions::default(), &Progress::hidden()).unwrap();
        for (f, joined) in [(0.25, true), (0.25 * (1.0 - 2f64.powi(-40)), false)] {
            let p = analyze_pairs(
                engine,
                &m,
                &a.grouping.groups,
                PairOptions {
                    nearest: false,
                    near: Some(NearThreshold::Rel(f)),
                },
                false,
            )
            .unwrap();
            let near = p.near.unwrap();
            let want: Vec<Vec<usize>> = if joined { vec![vec![0, 1]] } else { vec![] };
            let got: Vec<Vec<usize>> = near
                .components
                .iter()
                .map(|c| c.token_ids.clone())
                .collect();
            if got != want {
                failures.push(format!(
                    "{name}: Rel({f}) joined {got:?}, want {want:?}: radius {} \
                     (F × exact median = {}; row norms used: {:?}, exact {})",
                    near.threshold,
                    f * 8.0 * x,
                    &a.norms[..2],
                    8.0 * x
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Flat and clustered clouds with pairs at and just past the threshold.

/// A standard normal value (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u = (rng.unit() + 1.0) / 2.0;
    let v = (rng.unit() + 1.0) / 2.0;
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The radius the planted pairs are built around: 2^-7, so that multiples
/// of it (and of its half) below 1 are exact in bf16 and f32.
const PLANTED_R: f64 = 1.0 / 128.0;
/// The step threshold the planted pairs are built around.
const PLANTED_K: u64 = 3;

/// `n` rows of `cols` values, each row scaled to norm 1. Flat: every
/// coordinate Gaussian with its own scale in [1, 3] (no direction spreads
/// much more than another). Clustered: twelve centres of norm about 1, each
/// row one of them plus isotropic noise of norm 0.004 to 0.064 (tighter
/// clusters than the planted radius, and looser ones).
fn cloud(dtype: Dtype, n: usize, cols: usize, clustered: bool, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let scales: Vec<f64> = (0..cols).map(|_| 2.0 + rng.unit()).collect();
    let centres: Vec<Vec<f64>> = (0..12)
        .map(|_| {
            (0..cols)
                .map(|_| normal(&mut rng) / (cols as f64).sqrt())
                .collect()
        })
        .collect();
    (0..n)
        .map(|r| {
            let x: Vec<f64> = if clustered {
                let k = r % centres.len();
                let tau = 0.004 * 2f64.powi((k % 5) as i32);
                centres[k]
                    .iter()
                    .map(|c| c + normal(&mut rng) * tau / (cols as f64).sqrt())
                    .collect()
            } else {
                scales.iter().map(|s| normal(&mut rng) * s).collect()
            };
            let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            x.iter()
                .map(|v| decode(dtype, &encode(dtype, v / norm)))
                .collect()
        })
        .collect()
}

/// The cloud with planted pairs on anchor rows (their coordinates 0–5 first
/// set to multiples of r/2, coordinate 6 to zero), each partner replacing a
/// row of the cloud:
/// - at L2 distance exactly r (one coordinate moved by r; or four by r/2);
/// - at r·(1 + 2^-27): moved by r, plus 2^-20 in the zero coordinate (a
///   near-tie just outside; alone with its anchor, and beside a partner at
///   exactly r, to which it is 2^-20 away);
/// - exactly K steps away in one coordinate (and fewer in others), and K + 1.
fn with_planted_pairs(dtype: Dtype, rows: Vec<Vec<f64>>, seed: u64) -> Built {
    let r = PLANTED_R;
    let n = rows.len();
    let mut bits: Vec<Vec<u64>> = rows
        .iter()
        .map(|x| x.iter().map(|&v| bits_value(dtype, v)).collect())
        .collect();
    let mut rng = Rng::new(seed);
    // Rows spread over the matrix, one in each run of 16, never the same twice.
    let mut free = (0..n / 16)
        .map(|s| s * 16 + rng.below(16))
        .collect::<Vec<_>>()
        .into_iter();
    let at = |v: &Vec<u64>, c: usize| decode(dtype, &v[c].to_le_bytes()[..dtype.size()]);
    while free.len() >= 3 {
        let a = free.next().unwrap();
        for c in 0..6 {
            let snapped = (at(&bits[a], c) / (r / 2.0)).round() * (r / 2.0);
            bits[a][c] = bits_value(dtype, snapped.clamp(-0.5, 0.5));
        }
        bits[a][6] = bits_value(dtype, 0.0);
        let anchor = bits[a].clone();
        let value = |v: &Vec<u64>, c: usize| at(v, c);
        let shifted = |cs: &[usize], by: f64, tiny: bool| {
            let mut v = anchor.clone();
            for &c in cs {
                v[c] = bits_value(dtype, value(&anchor, c) + by);
            }
            if tiny {
                v[6] = bits_value(dtype, 2f64.powi(-20));
            }
            v
        };
        let partners = match rng.below(4) {
            // At exactly r, and the near-tie beside it.
            0 => vec![shifted(&[0], r, false), shifted(&[0], r, true)],
            // The near-tie alone.
            1 => vec![shifted(&[1], -r, true)],
            // Exactly r through four coordinates.
            2 => vec![shifted(&[2, 3, 4, 5], r / 2.0, false)],
            // K steps in one coordinate (K − 1 in another), and K + 1.
            _ => {
                let mut k = anchor.clone();
                k[7] = moved(dtype, k[7], PLANTED_K as i64);
                k[8] = moved(dtype, k[8], 1 - PLANTED_K as i64);
                let mut k1 = anchor.clone();
                k1[9] = moved(dtype, k1[9], PLANTED_K as i64 + 1);
                vec![k, k1]
            }
        };
        for p in partners {
            bits[free.next().unwrap()] = p;
        }
    }
    matrix(dtype, &bits)
}

/// The threshold searches on flat and clustered clouds (the shapes where a
/// few principal directions separate little), with pairs exactly at the
/// threshold and near-ties just past it: the same pairs and components as
/// the f64 brute force, on both engines.
#[test]
fn flat_and_clustered_clouds_with_near_ties() {
    for dtype in [Dtype::BF16, Dtype::F32] {
        for (shape, clustered) in [("flat", false), ("clustered", true)] {
            let rows = cloud(dtype, 720, 40, clustered, 0xf1a7 + clustered as u64);
            let b = with_planted_pairs(dtype, rows, 0x7e5);
            let model = Model::new(&b);
            // The planted pairs are there: some at exactly r, some just past.
            let exact = (0..b.rows)
                .flat_map(|x| (x + 1..b.rows).map(move |y| (x, y)))
                .filter(|&(x, y)| model.dist(x, y) == PLANTED_R)
                .count();
            let past = (0..b.rows)
                .flat_map(|x| (x + 1..b.rows).map(move |y| (x, y)))
                .map(|(x, y)| model.dist(x, y) / PLANTED_R - 1.0)
                .filter(|&e| e > 0.0 && e < 1e-6)
                .count();
            assert!(
                exact >= 8 && past >= 4,
                "{shape} {dtype}: {exact} at r, {past} just past"
            );
            check_case(
                &format!("{shape} cloud {dtype}"),
                &b,
                &[
                    NearThreshold::L2(PLANTED_R),
                    NearThreshold::Ulp(PLANTED_K),
                    NearThreshold::Rel(PLANTED_R),
                    NearThreshold::L2(4.0 * PLANTED_R),
                ],
                true,
            );
        }
    }
}
