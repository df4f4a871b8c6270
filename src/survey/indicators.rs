//! Under-trained-token indicators, as Magikarp ("Fishing for Magikarp", Land
//! & Bartolo 2024) defines them, from a reference set of known-unused tokens
//! that the survey finds itself (black holes, frozen components, rows past
//! the vocabulary) or that the user gives.
//!
//! Per token, on the *indicator matrix* (the output head when it is a tensor
//! of its own, else the one matrix surveyed):
//! - `input_norm`: the L2 norm of the token's input-embedding row (or
//!   `row_norm`, the norm of its row of the indicator matrix, when that is
//!   an output head and no input embedding of the same rows is at hand);
//! - `cosine_distance`: 1 − cos(x, m̄), m̄ the mean of the reference rows;
//! - `cosine_distance_pc1_removed`: the same after removing the first
//!   principal component of the mean-centred matrix (found by power
//!   iteration) from every row and from m̄: the *main* indicator, lower
//!   meaning more under-trained;
//! - `l2_to_reference_mean`: ‖x − m̄‖.
//!
//! The heavy passes are two engine kernels ([`Kernels`]); everything else is
//! f64 on the host. Both kernels give the same bits on every engine
//! ([`split`](crate::engine::split)), and every host step here is a fixed
//! sequence of f64 operations, so every engine gives the same indicators,
//! the same ranking and the same candidates.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::engine::split::{add_blocks, flush_input, Split};
use crate::error::Result;
use crate::types::Role;

mod reference;
pub use reference::{parse_reference_tokens, ReferenceTokens};

/// The percentile of the main indicator at or below which a token is a candidate.
pub const THRESHOLD_PERCENTILE: u32 = 2;
/// Power iteration stops after this many steps if it has not converged.
pub const MAX_POWER_ITERATIONS: usize = 100;
/// … or once 1 − (v_k · v_{k−1})² (the squared sine of the step's angle) is below this.
pub const POWER_TOLERANCE: f64 = 1e-10;

/// [`Engine::row_dots`](crate::engine::Engine::row_dots) on one matrix.
pub type RowDots<'a> = &'a dyn Fn(&[Split], Option<&[f32]>) -> Result<Vec<f32>>;

/// The two engine kernels the indicators need (see
/// [`Engine::row_dots`](crate::engine::Engine::row_dots) and
/// [`Engine::weighted_column_sums`](crate::engine::Engine::weighted_column_sums)),
/// each bound to one matrix.
pub struct Kernels<'a> {
    pub rows: usize,
    pub cols: usize,
    pub row_dots: RowDots<'a>,
    pub weighted_column_sums: &'a dyn Fn(&Split) -> Result<Vec<f32>>,
}

/// The matrix the cosine and L2 indicators were computed on.
#[derive(Clone, Debug, Serialize)]
pub struct IndicatorMatrix {
    pub tensor: String,
    pub role: Role,
}

/// Where the reference set came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// Black-hole members, near-component members, rows past the vocabulary.
    Survey,
    /// `--reference-tokens`.
    Given,
}

/// The reference set: tokens taken as known to be unused.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    pub source: ReferenceSource,
    /// The tokens whose rows the reference mean was taken over, ascending.
    pub token_ids: Vec<usize>,
    /// Tokens of the set found or given whose row of the indicator matrix
    /// holds NaN or ±∞, so that no mean can include them: left out of
    /// `token_ids`, ascending.
    pub left_out_non_finite: Vec<usize>,
}

/// One `T` per indicator, each absent where that indicator was not computed
/// (the cosine and L2 ones without a usable reference set).
#[derive(Clone, Debug, Serialize)]
pub struct ByIndicator<T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_norm: Option<T>,
    /// The row's L2 norm in the indicator matrix, in place of `input_norm`
    /// when that matrix is an output head and the input embedding could not
    /// be used (never both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_norm: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_distance: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_distance_pc1_removed: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2_to_reference_mean: Option<T>,
}

impl<T> Default for ByIndicator<T> {
    fn default() -> Self {
        Self {
            input_norm: None,
            row_norm: None,
            cosine_distance: None,
            cosine_distance_pc1_removed: None,
            l2_to_reference_mean: None,
        }
    }
}

impl<T> ByIndicator<T> {
    /// (name, value) of each indicator present, in the order above.
    pub fn each(&self) -> Vec<(&'static str, &T)> {
        [
            ("input_norm", &self.input_norm),
            ("row_norm", &self.row_norm),
            ("cosine_distance", &self.cosine_distance),
            (
                "cosine_distance_pc1_removed",
                &self.cosine_distance_pc1_removed,
            ),
            ("l2_to_reference_mean", &self.l2_to_reference_mean),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
        .collect()
    }

    /// The value of the indicator called `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.each()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|x| x.1)
    }
}

/// One value per token for each indicator (`None`, JSON null, where it is
/// not defined: a row holding NaN or ±∞).
pub type PerToken = ByIndicator<Vec<Option<f64>>>;

/// numpy's linear percentiles 0, 25, 50, 75, 100 of an indicator's defined values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Quartiles {
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
    /// Tokens with a defined value.
    pub count: usize,
}

/// How many candidates are also in each set the survey found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Overlap {
    /// Members of black holes.
    pub holes: usize,
    /// Members of near-singularity components (0 without a `--near-*` flag).
    pub components: usize,
    /// Members of the reference set.
    pub reference: usize,
}

/// The indicators of one survey.
#[derive(Clone, Debug, Serialize)]
pub struct Indicators {
    pub matrix: IndicatorMatrix,
    pub reference: Reference,
    /// The indicator candidates are ranked by: `cosine_distance_pc1_removed`,
    /// or `input_norm` (`row_norm`) when the reference set is empty.
    pub main: &'static str,
    pub per_token: PerToken,
    /// Each indicator's distribution over the tokens where it is defined.
    pub summary: ByIndicator<Quartiles>,
    pub threshold_percentile: u32,
    /// The main indicator's 2nd percentile (numpy's linear method); `None`
    /// when no token has a defined value.
    pub threshold: Option<f64>,
    /// Tokens whose main indicator is at or below the threshold, most
    /// under-trained (lowest) first, ties by id.
    pub candidates: Vec<usize>,
    /// Power-iteration steps taken for the first principal component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_iterations: Option<usize>,
    /// Whether it converged within [`MAX_POWER_ITERATIONS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pc1_converged: Option<bool>,
    pub overlap: Overlap,
}

/// What [`compute`] needs besides the kernels.
pub struct IndicatorInput<'a> {
    pub matrix: IndicatorMatrix,
    pub reference: Reference,
    /// Each row's sum of squares in the input embedding (the sum-of-squares
    /// column of `row_dots` on it), when that is not the indicator matrix;
    /// `None`: the norms are the indicator matrix's own.
    pub input_sumsq: Option<Vec<f32>>,
    /// Whether the indicator matrix's rows are the input embedding's (it is
    /// the input embedding, or an output head tied to it). Without
    /// `input_sumsq` and without this, its own norms are `row_norm`, never
    /// `input_norm`.
    pub indicator_is_input: bool,
    /// Members of black holes and of near components, for the overlap.
    pub hole_members: &'a BTreeSet<usize>,
    pub component_members: &'a BTreeSet<usize>,
}

/// "1 token", "12 tokens".
fn count_tokens(n: usize) -> String {
    format!("{n} token{}", if n == 1 { "" } else { "s" })
}

/// The first few ids of a list, for a notice: `5, 6, 9 … and 20 more`.
fn id_list(ids: &[usize]) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<String> = ids.iter().take(SHOWN).map(|i| i.to_string()).collect();
    if ids.len() > SHOWN {
        s.push(format!("… and {} more", ids.len() - SHOWN));
    }
    s.join(", ")
}

/// numpy.percentile(values, q) with the default linear method, on sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let q = q / 100.0;
    // numpy's _compute_virtual_index, n·q + (α + q(1 − α − β)) − 1 with
    // α = β = 1, in its order of operations.
    let (alpha, beta) = (1.0, 1.0);
    let index = n as f64 * q + (alpha + q * (1.0 - alpha - beta)) - 1.0;
    let prev = index.floor().clamp(0.0, (n - 1) as f64);
    let next = (prev + 1.0).min((n - 1) as f64);
    let gamma = index - prev;
    let (a, b) = (sorted[prev as usize], sorted[next as usize]);
    // numpy's _lerp.
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

fn quartiles(values: &[Option<f64>]) -> Option<Quartiles> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Quartiles {
        min: v[0],
        q1: percentile(&v, 25.0),
        median: percentile(&v, 50.0),
        q3: percentile(&v, 75.0),
        max: v[v.len() - 1],
        count: v.len(),
    })
}

/// A fixed pseudo-random unit start vector (splitmix64), the same everywhere.
fn start_vector(d: usize) -> Vec<f64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut v: Vec<f64> = (0..d)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    normalize(&mut v);
    v
}

/// Scales `v` to unit length; returns its length before.
fn normalize(v: &mut [f64]) -> f64 {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Xᵀw over the rows where `w` is nonzero, in f64 (from the engine's partials).
fn xt_w(k: &Kernels, w: &[f64]) -> Result<(Vec<f64>, f64)> {
    let s = Split::new(w);
    let partials = (k.weighted_column_sums)(&s)?;
    let unscale = s.unscale();
    let sums = add_blocks(&partials, k.cols)
        .into_iter()
        .map(|x| x * unscale)
        .collect();
    // Σ of the weights as the kernel used them.
    let total = (0..w.len()).map(|i| s.value(i)).sum();
    Ok((sums, total))
}

/// The first principal component of the mean-centred finite rows, by power
/// iteration on CᵀC (C v = X v − (μ·v)𝟙, Cᵀu = Xᵀu − μ Σu): the unit vector
/// (`None` when the centred matrix is zero), the steps taken and whether it converged.
fn first_pc(k: &Kernels, finite: &[bool], mu: &[f64]) -> Result<(Option<Vec<f64>>, usize, bool)> {
    let mut v = start_vector(k.cols);
    for step in 1..=MAX_POWER_ITERATIONS {
        let sv = Split::new(&v);
        let vh: Vec<f64> = (0..k.cols).map(|c| sv.value(c)).collect();
        let out = (k.row_dots)(std::slice::from_ref(&sv), None)?;
        let mu_v = dot(mu, &vh);
        let u: Vec<f64> = (0..k.rows)
            .map(|r| {
                if finite[r] {
                    out[2 * r] as f64 * sv.unscale() - mu_v
                } else {
                    0.0
                }
            })
            .collect();
        let (z, total) = xt_w(k, &u)?;
        let mut g: Vec<f64> = z.iter().zip(mu).map(|(z, m)| z - m * total).collect();
        if normalize(&mut g) == 0.0 || g.iter().any(|x| !x.is_finite()) {
            return Ok((None, step, true));
        }
        let c = dot(&g, &v);
        v = g;
        if 1.0 - c * c <= POWER_TOLERANCE {
            return Ok((Some(v), step, true));
        }
    }
    Ok((Some(v), MAX_POWER_ITERATIONS, false))
}

/// 1 − cos(a, b) from ‖a − b‖² and the squared norms, as
/// (‖a − b‖² − (‖a‖ − ‖b‖)²) / (2‖a‖‖b‖): for nearly parallel rows this keeps
/// the accuracy of the direct difference, where 1 − a·b/(‖a‖‖b‖) would
/// cancel. cos is taken as 0 (distance 1) when either vector is zero.
fn cosine_distance(diff_sq: f64, sq_a: f64, sq_b: f64) -> f64 {
    let (na, nb) = (sq_a.max(0.0).sqrt(), sq_b.max(0.0).sqrt());
    let den = 2.0 * na * nb;
    if den > 0.0 {
        ((diff_sq.max(0.0) - (na - nb) * (na - nb)) / den).clamp(0.0, 2.0)
    } else {
        1.0
    }
}

/// The indicators, and notices for the user.
pub fn compute(input: IndicatorInput, k: &Kernels) -> Result<(Indicators, Vec<String>)> {
    let mut notices = Vec::new();
    let n = k.rows;
    // Pass 1: each row's sum of squares: which rows are finite.
    let ss: Vec<f32> = (k.row_dots)(&[], None)?;
    let finite: Vec<bool> = ss.iter().map(|s| s.is_finite()).collect();
    let norm_of = |s: f32| s.is_finite().then(|| (s as f64).sqrt());
    let (norm_name, norms): (&'static str, Vec<Option<f64>>) =
        match (&input.input_sumsq, input.indicator_is_input) {
            (Some(other), _) => ("input_norm", other.iter().map(|&s| norm_of(s)).collect()),
            (None, true) => ("input_norm", ss.iter().map(|&s| norm_of(s)).collect()),
            (None, false) => ("row_norm", ss.iter().map(|&s| norm_of(s)).collect()),
        };
    // Only finite rows have a place in a mean: the others are named apart.
    let mut given = input.reference;
    let (reference, left_out): (Vec<usize>, Vec<usize>) = given
        .token_ids
        .iter()
        .copied()
        .filter(|&r| r < n)
        .partition(|&r| finite[r]);
    if !left_out.is_empty() && !reference.is_empty() {
        notices.push(format!(
            "notice: --indicators: {} of the reference set hold NaN or ±∞ in {} and are left out of it: {}",
            count_tokens(left_out.len()),
            input.matrix.tensor,
            id_list(&left_out)
        ));
    }
    let mut per_token = PerToken::default();
    if norm_name == "input_norm" {
        per_token.input_norm = Some(norms);
    } else {
        per_token.row_norm = Some(norms);
    }
    let (mut iterations, mut converged) = (None, None);
    let mut main = "cosine_distance_pc1_removed";
    if reference.is_empty() {
        let why = if !left_out.is_empty() {
            format!(
                "every row of the reference set holds NaN or ±∞ in {} ({}: {})",
                input.matrix.tensor,
                count_tokens(left_out.len()),
                id_list(&left_out)
            )
        } else if given.source == ReferenceSource::Given {
            "--reference-tokens gave no ids".to_string()
        } else {
            "the survey found no black holes, components or rows past the vocabulary".to_string()
        };
        notices.push(format!(
            "notice: --indicators: the reference set is empty ({why}); candidates are ranked by {norm_name} alone"
        ));
        main = norm_name;
    } else {
        // Column mean of the finite rows, and the reference mean.
        let ones: Vec<f64> = finite.iter().map(|&f| if f { 1.0 } else { 0.0 }).collect();
        let (sum, count) = xt_w(k, &ones)?;
        let mu: Vec<f64> = sum.iter().map(|s| s / count.max(1.0)).collect();
        let mut is_ref = vec![0.0; n];
        reference.iter().for_each(|&r| is_ref[r] = 1.0);
        let (rsum, rcount) = xt_w(k, &is_ref)?;
        let mbar: Vec<f64> = rsum.iter().map(|s| s / rcount).collect();
        let (pc, steps, ok) = first_pc(k, &finite, &mu)?;
        iterations = Some(steps);
        converged = Some(ok);
        if !ok {
            notices.push(format!(
                "notice: --indicators: power iteration for the first principal component stopped after {steps} steps without converging"
            ));
        }
        // Final pass: each row against m̄ (as f32) and the component.
        let centre: Vec<f32> = mbar.iter().map(|&x| flush_input(x as f32)).collect();
        let sm = Split::new(&centre.iter().map(|&x| x as f64).collect::<Vec<_>>());
        let mut vectors = vec![sm.clone()];
        let sv = pc.as_ref().map(|v| Split::new(v));
        vectors.extend(sv.clone());
        let out = (k.row_dots)(&vectors, Some(&centre))?;
        let w = vectors.len() + 2;
        // m̄ as the kernels used it: its dot products with itself and v̂.
        let mh: Vec<f64> = (0..k.cols).map(|c| sm.value(c)).collect();
        let mm = dot(&mh, &mh);
        let (mv, vv) = match &sv {
            Some(sv) => {
                let vh: Vec<f64> = (0..k.cols).map(|c| sv.value(c)).collect();
                (dot(&mh, &vh), dot(&vh, &vh))
            }
            None => (0.0, 1.0),
        };
        let mut plain = Vec::with_capacity(n);
        let mut removed = Vec::with_capacity(n);
        let mut l2 = Vec::with_capacity(n);
        for r in 0..n {
            if !finite[r] {
                plain.push(None);
                removed.push(None);
                l2.push(None);
                continue;
            }
            let o = &out[r * w..(r + 1) * w];
            let dv = match &sv {
                Some(sv) => o[1] as f64 * sv.unscale(),
                None => 0.0,
            };
            let s = o[w - 2] as f64;
            let e2 = o[w - 1] as f64;
            plain.push(Some(cosine_distance(e2, s, mm)));
            // x − (x·v̂)v̂/‖v̂‖² against m̄ − (m̄·v̂)v̂/‖v̂‖².
            removed.push(Some(cosine_distance(
                e2 - (dv - mv) * (dv - mv) / vv,
                s - dv * dv / vv,
                mm - mv * mv / vv,
            )));
            l2.push(Some(e2.sqrt()));
        }
        per_token.l2_to_reference_mean = Some(l2);
        if mm == 0.0 {
            notices.push(format!("notice: --indicators: the reference rows average to the zero vector, so no cosine is defined; candidates are ranked by {norm_name}"));
            main = norm_name;
        } else {
            per_token.cosine_distance = Some(plain);
            if mm - mv * mv / vv > 0.0 {
                per_token.cosine_distance_pc1_removed = Some(removed);
            } else {
                notices.push("notice: --indicators: the reference mean lies along the first principal component, so nothing is left of it once that is removed; candidates are ranked by cosine_distance".into());
                main = "cosine_distance";
            }
        }
    }
    let summary = ByIndicator {
        input_norm: per_token.input_norm.as_deref().and_then(quartiles),
        row_norm: per_token.row_norm.as_deref().and_then(quartiles),
        cosine_distance: per_token.cosine_distance.as_deref().and_then(quartiles),
        cosine_distance_pc1_removed: per_token
            .cosine_distance_pc1_removed
            .as_deref()
            .and_then(quartiles),
        l2_to_reference_mean: per_token
            .l2_to_reference_mean
            .as_deref()
            .and_then(quartiles),
    };
    let main_values = per_token.get(main).cloned().unwrap_or_default();
    let mut ranked: Vec<(f64, usize)> = main_values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (v, i)))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let threshold = (!ranked.is_empty()).then(|| {
        let sorted: Vec<f64> = ranked.iter().map(|x| x.0).collect();
        percentile(&sorted, THRESHOLD_PERCENTILE as f64)
    });
    let candidates: Vec<usize> = match threshold {
        Some(t) => ranked
            .iter()
            .take_while(|(v, _)| *v <= t)
            .map(|x| x.1)
            .collect(),
        None => Vec::new(),
    };
    let in_ref: BTreeSet<usize> = reference.iter().copied().collect();
    let overlap = Overlap {
        holes: candidates
            .iter()
            .filter(|c| input.hole_members.contains(c))
            .count(),
        components: candidates
            .iter()
            .filter(|c| input.component_members.contains(c))
            .count(),
        reference: candidates.iter().filter(|c| in_ref.contains(c)).count(),
    };
    given.token_ids = reference;
    given.left_out_non_finite = left_out;
    Ok((
        Indicators {
            matrix: input.matrix,
            reference: given,
            main,
            per_token,
            summary,
            threshold_percentile: THRESHOLD_PERCENTILE,
            threshold,
            candidates,
            power_iterations: iterations,
            pc1_converged: converged,
            overlap,
        },
        notices,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_numpys_linear() {
        // numpy.percentile([1, 2, 3, 4], 2) = 1.06; (…, 50) = 2.5; (…, 100) = 4.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 2.0) - 1.06).abs() < 1e-15);
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 2.0), 7.0);
    }

    #[test]
    fn cosine_distance_of_a_zero_vector_is_one() {
        assert_eq!(cosine_distance(1.0, 0.0, 1.0), 1.0);
        // a = b: 0; a = −b/2 (‖a − b‖ = 3): 2; orthogonal unit vectors: 1.
        assert_eq!(cosine_distance(0.0, 1.0, 1.0), 0.0);
        assert_eq!(cosine_distance(9.0, 1.0, 4.0), 2.0);
        assert_eq!(cosine_distance(2.0, 1.0, 1.0), 1.0);
    }
}
