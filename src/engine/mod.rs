//! The heavy kernels behind one trait, with two implementations: [`cpu`]
//! (rayon; the reference and the fallback) and [`gpu`] (wgpu + WGSL).

pub mod cpu;
pub mod gpu;
pub mod hash;
pub mod split;

use crate::types::{DeviceInfo, DeviceKind, Equality, ReadAt, StepMoves, StepRows};

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::progress::Progress;
use split::Split;

/// Per-row results of one pass over the matrix, plus the column sums.
#[derive(Clone, Debug, Default)]
pub struct RowStats {
    /// 64-bit row hashes (see [`hash`]); under [`Equality::Numeric`], of the
    /// row with −0.0 written as +0.0.
    pub hashes: Vec<u64>,
    /// L2 norm of each row.
    pub norms: Vec<f64>,
    /// Whether each row holds a NaN.
    pub has_nan: Vec<bool>,
    /// Sum of each column over all rows (for the centroid).
    pub column_sums: Vec<f64>,
}

/// The all-pairs kernels work on a set of *distinct vectors*: one row of the
/// matrix stands for each (the survey's groups collapse to their
/// representative), and every row in the set holds only finite values.
#[derive(Clone, Copy, Debug)]
pub struct VectorSet<'a> {
    /// Row ids in the matrix, one per vector.
    pub rows: &'a [usize],
    /// A label per vector: a query is never paired with a target of its own
    /// label (its own vector for nearest neighbours; its own component when
    /// looking for the nearest vector outside a component).
    pub labels: &'a [u32],
}

/// The two smallest approximate squared distances from one query to the
/// targets of other labels (see [`Engine::nearest_approx`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Top2 {
    /// Smallest approximate squared L2 distance; +∞ when no target qualifies.
    pub best: f32,
    /// Index into the set of the target at `best` (any one of them on a tie);
    /// `u32::MAX` when none.
    pub best_index: u32,
    /// Smallest approximate squared distance over the qualifying targets
    /// other than `best_index`; +∞ when there is none.
    pub second: f32,
}

impl Top2 {
    /// Nothing seen yet.
    pub const EMPTY: Top2 = Top2 {
        best: f32::INFINITY,
        best_index: u32::MAX,
        second: f32::INFINITY,
    };

    /// Takes one more target into account. A NaN distance is ignored.
    #[inline]
    pub fn push(&mut self, d: f32, index: u32) {
        if d < self.best || (self.best_index == u32::MAX && !d.is_nan()) {
            self.second = self.best;
            self.best = d;
            self.best_index = index;
        } else if d < self.second {
            self.second = d;
        }
    }

    /// Combines two partial results over disjoint targets.
    pub fn merge(mut self, other: Top2) -> Top2 {
        if other.best_index != u32::MAX {
            self.push(other.best, other.best_index);
            if other.second < self.second {
                self.second = other.second;
            }
        }
        self
    }
}

/// What a nearest-neighbour filter kept for each query (see
/// [`Engine::nearest_candidates`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candidates {
    /// Per query, in query order: the targets (indices into the set, of
    /// another label) that could be its nearest by exact distance, ascending;
    /// `None` where more than the filter keeps were in reach (the query
    /// needs the direct form).
    pub lists: Vec<Option<Vec<u32>>>,
}

/// Whether the kernels count displacement for `dtype` (not for F64, whose
/// step counts do not fit their integers).
pub(crate) fn has_displacement(dtype: Dtype) -> bool {
    dtype != Dtype::F64
}

/// One step handed to [`StepDiffer::push_moves`]: its rows, and where its
/// bytes lie in a file when they do, for an engine that reads them there
/// with positioned reads rather than fault in the pages of a map.
#[derive(Clone, Copy)]
pub struct StepData<'a> {
    pub matrix: Matrix<'a>,
    /// The file and the offset of the step's first byte in it: the same
    /// bytes as `matrix.bytes`.
    pub file: Option<(&'a dyn ReadAt, u64)>,
}

impl<'a> StepData<'a> {
    /// A step in memory.
    pub fn in_memory(matrix: Matrix<'a>) -> Self {
        Self { matrix, file: None }
    }
}

/// What moved at each step of a batch, in bands of rows: `parts[b][k]` is
/// band `b` of the `k`-th step, and a step's moves are those of its bands
/// in order (one band for an engine that does not split steps). Given
/// back batch after batch, its buffers are filled again.
#[derive(Debug, Default)]
pub struct BatchMoves {
    pub parts: Vec<Vec<StepMoves>>,
    /// Steps in the batch (`parts[b]` may hold more, kept from a longer
    /// batch before).
    pub steps: usize,
    /// Set by the caller: the moved rows' bytes are not wanted (it reads
    /// the step where the engine keeps it, [`StepDiffer::last_step`]); an
    /// engine that keeps it may leave [`StepMoves::bytes`] empty.
    pub skip_rows: bool,
}

impl BatchMoves {
    /// Makes room for `bands` bands of `steps` steps, keeping the buffers
    /// there are (not emptied: every part is filled anew by its writer).
    pub fn shape(&mut self, bands: usize, steps: usize) {
        self.parts.resize_with(bands, Vec::new);
        for b in &mut self.parts {
            if b.len() < steps {
                b.resize_with(steps, StepMoves::default);
            }
        }
        self.steps = steps;
    }

    /// The parts of the `k`-th step, in order of their rows.
    pub fn step(&self, k: usize) -> impl Iterator<Item = &StepMoves> + '_ {
        self.parts.iter().map(move |b| &b[k])
    }
}

/// Compares each step of a series with the one before, keeping what it
/// needs between calls (the GPU keeps the previous step on the device, so
/// each step's bytes cross to it once). Made by [`Engine::step_differ`] for
/// one shape and dtype; every step pushed must have that shape and dtype.
pub trait StepDiffer {
    /// Takes the next step. `prev` is the step pushed before (`None` at the
    /// first), for engines that keep no copy of it; an engine that keeps its
    /// own may ignore it.
    fn push(&mut self, prev: Option<&Matrix>, cur: &Matrix) -> Result<StepRows>;

    /// Whether the differ keeps the previous step itself (the GPU keeps it
    /// on the device): then `prev` only says that there was one, and its
    /// bytes are not read.
    fn keeps_previous(&self) -> bool {
        false
    }

    /// Takes several consecutive steps at once (`prev`, then `steps[0]`,
    /// `steps[1]`, …): the same rows as pushing them one by one, which is
    /// what this default does. An engine overrides it where a batch runs
    /// faster (the CPU compares the steps of a batch in parallel).
    fn push_many(&mut self, prev: Option<&Matrix>, steps: &[Matrix]) -> Result<Vec<StepRows>> {
        let mut out = Vec::with_capacity(steps.len());
        let mut before = prev;
        for m in steps {
            out.push(self.push(before, m)?);
            before = Some(m);
        }
        Ok(out)
    }

    /// [`push_many`](Self::push_many) into `out`, whose step outputs (those
    /// of an earlier batch, given back) an engine may fill in place rather
    /// than allocate anew: `out` holds one [`StepRows`] per step after. The
    /// default replaces them.
    fn push_many_into(
        &mut self,
        prev: Option<&Matrix>,
        steps: &[Matrix],
        out: &mut Vec<StepRows>,
    ) -> Result<()> {
        *out = self.push_many(prev, steps)?;
        Ok(())
    }

    /// The bytes of the last step pushed, where the differ keeps them on
    /// the host (the CPU, after [`push_moves`](Self::push_moves)); `None`
    /// otherwise.
    fn last_step(&self) -> Option<&[u8]> {
        None
    }

    /// Takes several consecutive steps (`prev`, then `steps[0]`, …) as
    /// what moved at each ([`BatchMoves`], every row at the first step):
    /// the rows of [`push_many`](Self::push_many), the moved ones only.
    /// This default runs `push_many` on the steps' bytes; the CPU engine
    /// reads each step's bands itself (from the file, when it is in one)
    /// and writes only what moved.
    fn push_moves(
        &mut self,
        prev: Option<&StepData>,
        steps: &[StepData],
        out: &mut BatchMoves,
    ) -> Result<()> {
        let mats: Vec<Matrix> = steps.iter().map(|s| s.matrix).collect();
        let rows = self.push_many(prev.map(|p| &p.matrix), &mats)?;
        out.shape(1, steps.len());
        for ((part, r), m) in out.parts[0].iter_mut().zip(&rows).zip(&mats) {
            part.fill_from_rows(r, m.bytes, m.row_bytes());
        }
        Ok(())
    }
}

/// The heavy computations of a survey.
pub trait Engine {
    /// What runs the kernels.
    fn device(&self) -> DeviceInfo;

    /// Hashes, norms, NaN flags and column sums, in one pass over the matrix.
    fn row_stats(&self, m: &Matrix, eq: Equality, progress: &Progress) -> Result<RowStats>;

    /// L2 distances between the given rows, for every pair `i < j` in the order
    /// (0,1), (0,2), …, (0,k−1), (1,2), …
    fn pairwise_l2(&self, m: &Matrix, rows: &[usize]) -> Result<Vec<f64>>;

    /// For each query (an index into `set`), [`Top2`] over the targets of
    /// `set` with another label. Distances are *approximate*, as in
    /// [`approx`](crate::approx): the survey certifies or refines them exactly in f64.
    fn nearest_approx(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        progress: &Progress,
    ) -> Result<Vec<Top2>>;

    /// For each query, every target of `set` with another label that could
    /// be its nearest by exact distance (so the exact answer, ties broken by
    /// the smallest index, is among them) or `None` for the query when too
    /// many could. `Ok(None)` from an engine without such a filter: the
    /// survey then takes [`Engine::nearest_approx`].
    fn nearest_candidates(
        &self,
        _m: &Matrix,
        _set: VectorSet,
        _queries: &[u32],
        _progress: &Progress,
    ) -> Result<Option<Candidates>> {
        Ok(None)
    }

    /// Every pair `(queries[i], t)` with `t` a target of `set` of another
    /// label whose approximate squared distance ([`approx`](crate::approx)) is at most
    /// `thresholds[i]`. Extra pairs are allowed (the survey checks every pair
    /// exactly); missing ones are not. Any order.
    fn pairs_within(
        &self,
        m: &Matrix,
        set: VectorSet,
        queries: &[u32],
        thresholds: &[f32],
        progress: &Progress,
    ) -> Result<Vec<(u32, u32)>>;

    /// Projections of the given rows onto `directions` (`p` rows of `m.cols`
    /// f32 values, row-major): `rows.len() × p` values, row-major, computed
    /// as in [`approx`](crate::approx).
    fn project(&self, m: &Matrix, rows: &[usize], directions: &[f32]) -> Result<Vec<f32>>;

    /// For every row x of `m`: its dot products with up to three `vectors`
    /// (each of `m.cols` values; to be multiplied by each one's
    /// [`Split::unscale`]), its sum of squares, and with a `centre` c (f32,
    /// each value zero or of magnitude at least 2^-40) Σ_c (x_c − c_c)² from
    /// the direct differences (rounded to f32): `rows × w` values, row-major,
    /// `w = p + 1 + (centre given)`. Computed in [`split`]'s arithmetic:
    /// every engine gives the same bits.
    fn row_dots(&self, m: &Matrix, vectors: &[Split], centre: Option<&[f32]>) -> Result<Vec<f32>>;

    /// Xᵀw for one weight per row of `m`, as per-block partial sums: block
    /// `b` (rows `b·B ..`, `B =` [`split::sum_block_rows`]) gives `m.cols`
    /// values, `blocks × cols` in all, to be added in f64 in block order
    /// ([`split::add_blocks`]) and multiplied by `weights.unscale()`. Rows of
    /// weight zero are skipped. Computed in [`split`]'s arithmetic: every
    /// engine gives the same bits.
    fn weighted_column_sums(&self, m: &Matrix, weights: &Split) -> Result<Vec<f32>>;

    /// A differ for a series of steps of `rows × cols` elements of `dtype`,
    /// made once for the whole series (pipelines and buffers included).
    /// It owns what it needs (the GPU's handles are shared, not borrowed),
    /// so it may outlive the borrow of the engine (a recorder keeps one).
    fn step_differ(
        &self,
        dtype: Dtype,
        rows: usize,
        cols: usize,
    ) -> Result<Box<dyn StepDiffer + Send>>;
}

/// `--device`: which engine to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU adapter if there is one, else the CPU with a notice.
    #[default]
    Auto,
    /// Any GPU adapter, software rasterizers such as lavapipe included; an error if none.
    Gpu,
    /// The CPU path.
    Cpu,
}

/// Options for the GPU engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuOptions {
    /// Upper bound on the bytes of one streamed chunk (a test hook; the
    /// adapter's own limit applies in any case).
    pub max_chunk_bytes: Option<u64>,
    /// Threads sharing one row in the hash kernel (a benchmark knob; by
    /// default about four 32-bit units per thread, at most 256).
    pub threads_per_row: Option<u32>,
}

/// Picks the engine for `choice`. The notice (for `auto` falling back to the
/// CPU) is returned rather than printed, so the caller decides where it goes.
pub fn select(choice: DeviceChoice, gpu: GpuOptions) -> Result<(Box<dyn Engine>, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((Box::new(cpu::CpuEngine::new()), None)),
        DeviceChoice::Gpu => Ok((Box::new(gpu::GpuEngine::new(true, gpu)?), None)),
        DeviceChoice::Auto => match gpu::GpuEngine::new(false, gpu) {
            Ok(engine) => Ok((Box::new(engine), None)),
            Err(Error::NoAdapter(why)) => Ok((
                Box::new(cpu::CpuEngine::new()),
                Some(format!("notice: {why}; using the CPU path")),
            )),
            Err(e) => Err(e),
        },
    }
}

/// The engine for `choice`, made once per process and choice and shared by
/// every later call (a GPU device costs hundreds of milliseconds to open,
/// and some drivers fail after many). The notice (for `auto` falling back to
/// the CPU) comes with every call.
pub fn shared(choice: DeviceChoice) -> Result<(SharedEngine, Option<String>)> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<u8, (SharedEngine, Option<String>)>>;
    static ENGINES: OnceLock<Cache> = OnceLock::new();
    let key = match choice {
        DeviceChoice::Auto => 0,
        DeviceChoice::Gpu => 1,
        DeviceChoice::Cpu => 2,
    };
    let mut cache = ENGINES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = cache.get(&key) {
        return Ok(found.clone());
    }
    let made: (SharedEngine, Option<String>) = match choice {
        DeviceChoice::Cpu => (std::sync::Arc::new(cpu::CpuEngine::new()), None),
        DeviceChoice::Gpu => (
            std::sync::Arc::new(gpu::GpuEngine::new(true, GpuOptions::default())?),
            None,
        ),
        DeviceChoice::Auto => match gpu::GpuEngine::new(false, GpuOptions::default()) {
            Ok(engine) => (std::sync::Arc::new(engine), None),
            Err(Error::NoAdapter(why)) => (
                std::sync::Arc::new(cpu::CpuEngine::new()),
                Some(format!("notice: {why}; using the CPU path")),
            ),
            Err(e) => return Err(e),
        },
    };
    cache.insert(key, made.clone());
    Ok(made)
}

/// An engine shared between threads ([`shared`]).
pub type SharedEngine = std::sync::Arc<dyn Engine + Send + Sync>;

/// Every GPU adapter that runs compute shaders (software ones included),
/// best first; the CPU path is always there besides.
pub fn adapters() -> Vec<DeviceInfo> {
    gpu::context::GpuContext::adapters()
}
