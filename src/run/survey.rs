//! One matrix end to end: load → engine (hashes, norms) → survey (groups,
//! geometry, all-pairs) → a [`Report`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use super::pairs;
use super::{ms, token_display, tokenizer_too_large};
use crate::engine::{self, DeviceChoice, Engine, GpuOptions};
use crate::error::Result;
use crate::load::{self, LoadOptions};
use crate::matrix::Matrix;
use crate::progress::{Interrupt, Progress};
use crate::report::{self, GroupReport, Report, Timings};
use crate::survey::indicators::{
    self, IndicatorInput, IndicatorMatrix, Indicators, Kernels, Reference, ReferenceSource,
    ReferenceTokens,
};
use crate::survey::{self, DuplicateCounts, GroupOptions, Grouping, SizeSummary};
use crate::types::{Equality, Role, Tied};

/// Everything a survey can be asked to do.
#[derive(Clone, Debug, Default)]
pub struct SurveyOptions {
    pub load: LoadOptions,
    pub device: DeviceChoice,
    pub gpu: GpuOptions,
    pub group: GroupOptions,
    /// All-pairs geometry: `--nearest` and the near-singularity thresholds
    /// (the lattice of black holes is always computed).
    pub pairs: pairs::PairOptions,
    /// Show a progress bar on stderr (only for long inputs on a terminal).
    pub progress: bool,
    /// `--indicators`: under-trained-token indicators.
    pub indicators: Option<IndicatorOptions>,
    /// Set by the caller to stop the survey ([`Error::Interrupted`](crate::Error::Interrupted)).
    pub interrupt: Option<Interrupt>,
}

/// `--indicators` and `--reference-tokens`.
#[derive(Clone, Debug, Default)]
pub struct IndicatorOptions {
    /// The reference set `--reference-tokens` gives (a list of ids converts
    /// with `.into()`), checked against the matrix's rows when it is known;
    /// `None`: the survey's black-hole and component members and rows past
    /// the vocabulary.
    pub reference: Option<ReferenceTokens>,
}

/// The outcome of surveying one matrix, before it is dressed as a [`Report`].
#[derive(Clone, Debug)]
pub struct Analysis {
    pub grouping: Grouping,
    /// Unique and duplicate rows, counted and as fractions.
    pub counts: DuplicateCounts,
    /// Group-size statistics; `None` without groups.
    pub sizes: Option<SizeSummary>,
    pub geometry: survey::Geometry,
    pub norms: Vec<f64>,
    /// The number of black holes when there were more than
    /// [`survey::MAX_PAIRWISE_REPRESENTATIVES`] (no pairwise distances then).
    pub pairwise_skipped: Option<usize>,
    pub timings: Timings,
}

/// Runs the engine and the survey over a matrix already in memory.
pub fn analyze(
    engine: &dyn Engine,
    m: &Matrix,
    group: GroupOptions,
    progress: &Progress,
) -> Result<Analysis> {
    analyze_stored(engine, m, None, group, progress)
}

/// [`analyze`] for a matrix whose rows are identical only when their stored
/// bytes are (`identity`: every row's stored bytes, for a quantized tensor
/// whose dequantized values `m` holds).
pub fn analyze_stored(
    engine: &dyn Engine,
    m: &Matrix,
    identity: Option<&[u8]>,
    group: GroupOptions,
    progress: &Progress,
) -> Result<Analysis> {
    let t = Instant::now();
    let stats = engine.row_stats(m, group.equality, progress)?;
    progress.finish();
    let hash_ms = ms(t);

    let t = Instant::now();
    let mut grouping = survey::group_rows(m, &stats.hashes, &stats.has_nan, group);
    if let Some(stored) = identity.filter(|s| s.len() % m.rows == 0) {
        grouping = survey::group::refine_by_stored(grouping, stored, stored.len() / m.rows);
    }
    let counts = DuplicateCounts::of(m.rows, grouping.n_unique);
    let sizes = SizeSummary::of(&grouping.groups);
    let group_ms = ms(t);

    let t = Instant::now();
    let reps: Vec<usize> = grouping.groups.iter().map(|g| g.representative()).collect();
    let (pairwise, skipped) = if reps.len() > survey::MAX_PAIRWISE_REPRESENTATIVES {
        (None, Some(reps.len()))
    } else {
        (Some(engine.pairwise_l2(m, &reps)?), None)
    };
    let geometry = survey::geometry(
        &stats.norms,
        &stats.column_sums,
        &grouping.groups,
        pairwise.as_deref(),
    );
    let geometry_ms = ms(t);
    Ok(Analysis {
        grouping,
        counts,
        sizes,
        geometry,
        norms: stats.norms,
        pairwise_skipped: skipped,
        timings: Timings {
            load: 0.0,
            hash: hash_ms,
            group: group_ms,
            geometry: geometry_ms,
            total: hash_ms + group_ms + geometry_ms,
            ..Default::default()
        },
    })
}

/// The token strings of a report.
struct TokenSection {
    info: report::TokenizerInfo,
    strings: BTreeMap<usize, String>,
    special: Vec<usize>,
    padding_rows: Vec<usize>,
}

impl TokenSection {
    /// The strings of `ids` (every grouped id, and every id the all-pairs
    /// sections name), and the rows past the vocabulary.
    fn of(t: &load::TokenNames, ids: impl Iterator<Item = usize>, rows: usize) -> Self {
        let mut strings = BTreeMap::new();
        let mut special = Vec::new();
        for id in ids {
            if strings.contains_key(&id) {
                continue;
            }
            if let Some(tok) = t.vocab.get(id) {
                strings.insert(id, tok.text.clone());
                if tok.special {
                    special.push(id);
                }
            }
        }
        special.sort_unstable();
        let size = t.vocab.vocab_size();
        Self {
            info: report::TokenizerInfo {
                path: t.path.display().to_string(),
                kind: t.vocab.kind,
                vocab_size: size,
            },
            strings,
            special,
            padding_rows: (size.min(rows)..rows).collect(),
        }
    }
}

/// Surveys the embedding matrix of the input at `path` (see [`load::open`]). Nothing is printed:
/// a notice for the user (such as `--device auto` falling back to the CPU)
/// comes back in [`Report::notices`].
pub fn survey_file(path: &Path, opts: &SurveyOptions) -> Result<Report> {
    let start = Instant::now();
    let loaded = load::open(path, &opts.load)?;
    let load_ms = ms(start);
    let (engine, notice) = engine::select(opts.device, opts.gpu)?;
    let mut report = survey_subject(
        engine.as_ref(),
        &Subject::of(path, &loaded),
        opts,
        load_ms,
        start,
    )?;
    report.notices.splice(0..0, notice);
    Ok(report)
}

/// [`survey_file`] on an engine the caller opened once (opening a GPU
/// device costs a few hundred milliseconds: a caller surveying many files
/// keeps one); `opts.device` and `opts.gpu` are not used.
pub fn survey_file_with(engine: &dyn Engine, path: &Path, opts: &SurveyOptions) -> Result<Report> {
    let start = Instant::now();
    let loaded = load::open(path, &opts.load)?;
    survey_subject(engine, &Subject::of(path, &loaded), opts, ms(start), start)
}

/// Surveys a matrix already in memory (an array a caller holds) with every
/// option of a file's survey but the loading ones (`opts.load`, `device`,
/// `gpu`); `label` stands for the file in the report, `tokens` names the
/// tokens. The matrix is read in place. The indicators use this one matrix
/// (there is no output head beside it).
pub fn survey_matrix(
    engine: &dyn Engine,
    m: &Matrix,
    opts: &SurveyOptions,
    tokens: Option<&load::TokenNames>,
    label: &str,
) -> Result<Report> {
    let info = load::model::TensorInfo {
        name: "array".into(),
        stored_dtype: m.dtype.name().to_string(),
        format: "memory",
        file: label.into(),
    };
    let subject = Subject {
        label: Path::new(label),
        m: *m,
        identity: None,
        info: &info,
        role: Role::InputEmbedding,
        tied: None,
        tokens,
        notices: &[],
        loaded: None,
    };
    survey_subject(engine, &subject, opts, 0.0, Instant::now())
}

/// A matrix to survey and what the report says of it.
struct Subject<'a> {
    /// What the report names as its file.
    label: &'a Path,
    m: Matrix<'a>,
    /// A quantized tensor's stored blocks (rows are the same token vector
    /// when these bytes are).
    identity: Option<&'a [u8]>,
    info: &'a load::model::TensorInfo,
    role: Role,
    tied: Option<Tied>,
    tokens: Option<&'a load::TokenNames>,
    notices: &'a [String],
    /// The model it was loaded from, where the indicators look for the
    /// other matrix (the output head); `None` for an array in memory.
    loaded: Option<&'a load::Loaded>,
}

impl<'a> Subject<'a> {
    fn of(path: &'a Path, loaded: &'a load::Loaded) -> Self {
        Subject {
            label: path,
            m: loaded.matrix(),
            identity: loaded.identity.as_deref(),
            info: &loaded.info,
            role: loaded.role,
            tied: loaded.tied,
            tokens: loaded.tokens.as_ref(),
            notices: &loaded.notices,
            loaded: Some(loaded),
        }
    }
}

/// Surveys a matrix; `start` is when loading began.
fn survey_subject(
    engine: &dyn Engine,
    src: &Subject,
    opts: &SurveyOptions,
    load_ms: f64,
    start: Instant,
) -> Result<Report> {
    let path = src.label;
    let info = src.info;
    let m = src.m;
    let interrupt = opts.interrupt.as_ref();
    let mut notices: Vec<String> = src.notices.to_vec();
    notices.extend(tokenizer_too_large(src.tokens, m.rows));
    let progress = if opts.progress {
        Progress::for_bytes(m.bytes.len() as u64, "hashing rows")
    } else {
        Progress::hidden()
    }
    .with_interrupt(interrupt);
    let a = analyze_stored(engine, &m, src.identity, opts.group, &progress)?;
    progress.check()?;
    let n = m.rows;
    let groups: Vec<GroupReport> = a
        .grouping
        .groups
        .iter()
        .map(|g| GroupReport {
            size: g.ids.len(),
            token_ids: g.ids.clone(),
            norm: survey::defined(a.norms[g.representative()]),
        })
        .collect();
    let pa = pairs::analyze_pairs_with(
        engine,
        &m,
        &a.grouping.groups,
        opts.pairs,
        opts.progress,
        interrupt,
    )?;
    let holes = a.grouping.groups.len();
    let t = Instant::now();
    let indicators = match &opts.indicators {
        Some(io) => {
            let (ind, notes) = run_indicators(engine, src, &a, &pa, io, opts)?;
            notices.extend(notes);
            Some(ind)
        }
        None => None,
    };
    let indicators_ms = indicators.as_ref().map(|_| ms(t));
    let tokens = src.tokens.map(|t| {
        let grouped = a.grouping.groups.iter().flat_map(|g| g.ids.iter().copied());
        let nearest = pa.nearest.iter().flat_map(|nn| {
            let isolated = nn.most_isolated.iter().chain(&nn.least_isolated);
            let gap = nn.gap.iter().flat_map(|g| g.tokens.iter().copied());
            isolated.flat_map(|x| [x.token_id, x.nearest]).chain(gap)
        });
        let near = pa.near.iter().flat_map(|nr| {
            nr.components.iter().flat_map(|c| {
                let outside = c.nearest_outside.iter().map(|x| x.token_id);
                c.token_ids.iter().copied().chain(outside)
            })
        });
        let candidates = indicators.iter().flat_map(|i| {
            let reference = i.reference.token_ids.iter().take(MAX_REFERENCE_STRINGS);
            let left_out = i.reference.left_out_non_finite.iter();
            let left_out = left_out.take(MAX_REFERENCE_STRINGS);
            i.candidates
                .iter()
                .chain(reference)
                .chain(left_out)
                .copied()
        });
        TokenSection::of(t, grouped.chain(nearest).chain(near).chain(candidates), n)
    });
    let numeric = opts.group.equality == Equality::Numeric;
    Ok(Report {
        schema: report::SCHEMA,
        file: path.display().to_string(),
        format: info.format,
        tensor_file: (info.file != path).then(|| info.file.display().to_string()),
        tensor: info.name.clone(),
        role: src.role,
        tied: src.tied,
        dtype: m.dtype.name().to_string(),
        stored_dtype: info.stored_dtype.clone(),
        shape: [n, m.cols],
        memory_bytes: src.identity.map_or(m.bytes.len(), |s| s.len()) as u64,
        values_bytes: m.bytes.len() as u64,
        device: engine.device(),
        equality: opts.group.equality,
        n_unique: a.counts.n_unique,
        n_duplicate: a.counts.n_duplicate,
        uniqueness: a.counts.uniqueness,
        duplicate_fraction: a.counts.duplicate_fraction,
        dedup_ratio: a.counts.dedup_ratio,
        group_sizes: a.sizes,
        groups,
        pairwise_skipped: a.pairwise_skipped,
        geometry: a.geometry,
        lattice: pa.lattice,
        lattice_skipped: (holes > survey::lattice::MAX_LATTICE_HOLES).then_some(holes),
        nearest: pa.nearest,
        near: pa.near,
        indicators,
        nan_rows: numeric.then(|| a.grouping.nan_rows.clone()),
        notices,
        token_display: token_display(m.rows, src.tokens),
        tokenizer: tokens.as_ref().map(|t| t.info.clone()),
        tokens: tokens.as_ref().map(|t| t.strings.clone()),
        special_tokens: tokens.as_ref().map(|t| t.special.clone()),
        padding_rows: tokens.map(|t| t.padding_rows),
        timings_ms: Timings {
            load: load_ms,
            lattice: pa.lattice_ms,
            nearest: pa.nearest_ms,
            near: pa.near_ms,
            indicators: indicators_ms,
            total: ms(start),
            ..a.timings
        },
        norms: a.norms,
    })
}

/// Reference ids whose strings a report keeps (the text shows the first few).
const MAX_REFERENCE_STRINGS: usize = 64;

/// What a survey of an output head does without an input embedding of its rows.
const ALONE: &str = "the indicators use the surveyed output head alone: row_norm (its own row norms) replaces input_norm, and a reference set found by the survey is the output head's own";

/// Members of black holes and of near-singularity components.
fn survey_sets(
    grouping: &Grouping,
    near: Option<&survey::near::Near>,
) -> (BTreeSet<usize>, BTreeSet<usize>) {
    let holes = grouping.groups.iter().flat_map(|g| g.ids.iter().copied());
    let components = near
        .iter()
        .flat_map(|nr| nr.components.iter())
        .flat_map(|c| c.token_ids.iter().copied());
    (holes.collect(), components.collect())
}

/// The survey's sets of the input embedding `om` (of `o`) when the surveyed
/// matrix is the output head: an exact grouping as [`analyze_stored`] makes
/// it, and the near-singularity components where asked for, so that a
/// reference set found by the survey is the input embedding's either way.
fn input_embedding_sets(
    engine: &dyn Engine,
    o: &load::Loaded,
    om: &Matrix,
    opts: &SurveyOptions,
) -> Result<(BTreeSet<usize>, BTreeSet<usize>)> {
    let interrupt = opts.interrupt.as_ref();
    let progress = Progress::hidden().with_interrupt(interrupt);
    let stats = engine.row_stats(om, opts.group.equality, &progress)?;
    progress.check()?;
    let mut grouping = survey::group_rows(om, &stats.hashes, &stats.has_nan, opts.group);
    if let Some(stored) = o.identity.as_deref().filter(|s| s.len() % om.rows == 0) {
        grouping = survey::group::refine_by_stored(grouping, stored, stored.len() / om.rows);
    }
    let near = match opts.pairs.near {
        Some(near) => {
            let only_near = pairs::PairOptions {
                nearest: false,
                near: Some(near),
            };
            pairs::analyze_pairs_with(
                engine,
                om,
                &grouping.groups,
                only_near,
                opts.progress,
                interrupt,
            )?
            .near
        }
        None => None,
    };
    Ok(survey_sets(&grouping, near.as_ref()))
}

/// The other matrix of the model: with `head`, the output head, else the
/// input embedding; `None` (with a notice where worth one) when it is the
/// surveyed tensor, is tied to it, or cannot be used.
fn other_matrix(
    path: &Path,
    loaded: &load::Loaded,
    load_opts: &LoadOptions,
    head: bool,
) -> (Option<load::Loaded>, Option<String>) {
    let opts = LoadOptions {
        key: None,
        unembedding: head,
        ..load_opts.clone()
    };
    let what = if head {
        "output head"
    } else {
        "input embedding"
    };
    let fallback = if head {
        "using the surveyed matrix"
    } else {
        ALONE
    };
    match load::model::open_tensor(path, &opts) {
        Err(e) => (
            None,
            Some(format!(
                "notice: --indicators: the {what} could not be read ({e}); {fallback}"
            )),
        ),
        Ok(other) => {
            let same = other.info.name == loaded.info.name && other.info.file == loaded.info.file;
            let tied = matches!(
                (head, other.tied, loaded.tied),
                (true, Some(Tied::SameTensor | Tied::BitIdentical), _)
                    | (false, _, Some(Tied::SameTensor | Tied::BitIdentical))
            );
            if same || tied {
                (None, None)
            } else if other.rows != loaded.rows {
                (
                    None,
                    Some(format!(
                        "notice: --indicators: the {what} {:?} has {} rows, the surveyed matrix {}; {fallback}",
                        other.info.name, other.rows, loaded.rows
                    )),
                )
            } else {
                (Some(other), None)
            }
        }
    }
}

/// `--indicators`: the reference set (from the input embedding's survey,
/// whichever matrix was surveyed, unless given), the indicator matrix (the
/// output head when it is a tensor of its own), and [`indicators::compute`]
/// on the engine.
fn run_indicators(
    engine: &dyn Engine,
    src: &Subject,
    a: &Analysis,
    pa: &pairs::PairsAnalysis,
    io: &IndicatorOptions,
    opts: &SurveyOptions,
) -> Result<(Indicators, Vec<String>)> {
    let m = &src.m;
    let interrupt = opts.interrupt.as_ref();
    let mut notices = Vec::new();
    // The report's own sets, for the overlap.
    let (hole_members, component_members) = survey_sets(&a.grouping, pa.near.as_ref());
    // The surveyed matrix is the input embedding unless --unembedding.
    let surveyed_head = src.role == Role::OutputHead;
    let tied = matches!(src.tied, Some(Tied::SameTensor | Tied::BitIdentical));
    let (other, notice) = match src.loaded {
        Some(_) if surveyed_head && src.tied.is_none() => (
            None,
            Some(format!(
                "notice: --indicators: the model has no input embedding beside the output head; {ALONE}"
            )),
        ),
        Some(_) if surveyed_head && tied => (None, None),
        Some(loaded) => other_matrix(src.label, loaded, &opts.load, !surveyed_head),
        None => (None, None),
    };
    notices.extend(notice);
    let other_m = other.as_ref().map(|o| o.matrix());
    let reference = match &io.reference {
        Some(given) => Reference {
            source: ReferenceSource::Given,
            token_ids: given.resolve(m.rows)?,
            left_out_non_finite: Vec::new(),
        },
        None => {
            let (holes, components) = match (&other, &other_m) {
                (Some(o), Some(om)) if surveyed_head => input_embedding_sets(engine, o, om, opts)?,
                _ => (hole_members.clone(), component_members.clone()),
            };
            let mut ids: BTreeSet<usize> = holes.union(&components).copied().collect();
            if let Some(t) = src.tokens {
                ids.extend(t.vocab.vocab_size().min(m.rows)..m.rows);
            }
            Reference {
                source: ReferenceSource::Survey,
                token_ids: ids.into_iter().collect(),
                left_out_non_finite: Vec::new(),
            }
        }
    };
    // The indicator matrix, and the input embedding's sums of squares when it is another matrix.
    let (im, info, role, input_sumsq) = match (&other, other_m) {
        (Some(o), Some(om)) if !surveyed_head => (
            om,
            &o.info,
            Role::OutputHead,
            Some(engine.row_dots(m, &[], None)?),
        ),
        (Some(_), Some(om)) => (
            *m,
            src.info,
            src.role,
            Some(engine.row_dots(&om, &[], None)?),
        ),
        _ => (*m, src.info, src.role, None),
    };
    // Each power iteration runs these: an interrupt stops the next one.
    let dots = |v: &[crate::engine::split::Split], c: Option<&[f32]>| {
        interrupt.map_or(Ok(()), |i| i.check())?;
        engine.row_dots(&im, v, c)
    };
    let sums = |w: &crate::engine::split::Split| engine.weighted_column_sums(&im, w);
    let kernels = Kernels {
        rows: im.rows,
        cols: im.cols,
        row_dots: &dots,
        weighted_column_sums: &sums,
    };
    let input = IndicatorInput {
        matrix: IndicatorMatrix {
            tensor: info.name.clone(),
            role,
        },
        reference,
        input_sumsq,
        indicator_is_input: !surveyed_head || tied,
        hole_members: &hole_members,
        component_members: &component_members,
    };
    let (ind, notes) = indicators::compute(input, &kernels)?;
    notices.extend(notes);
    Ok((ind, notices))
}
