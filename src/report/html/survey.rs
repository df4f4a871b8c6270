//! The sections of one matrix's survey, in the order of the text report:
//! the matrix, the singularities, their geometry, the nearest neighbours,
//! the near-singularity components, the timings.

use maud::{html, Markup};

use super::figures;
use super::svg::{colour, ramp, Axis, Chart};
use super::{card, figure, layered_bars, table, Cell, Column, Ids, Names, MAX_TABLE_ROWS};
use crate::report::fmt::{count, fixed, sci, thousands};
use crate::report::Report;
use crate::types::{Role, Tied};

/// The line under the page's title.
pub(super) fn subtitle(r: &Report) -> Markup {
    html! {
        code { (r.file) } " · " (r.tensor) " · " (r.dtype)
        " · " (thousands(r.shape[0])) " × " (thousands(r.shape[1]))
    }
}

fn mib(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// Every section of one report; `ids` keeps element ids unique on a page
/// with several reports.
pub(crate) fn body(r: &Report, ids: &Ids) -> Markup {
    html! {
        (matrix(r))
        (singularities(r, ids))
        (geometry(r, ids))
        @if r.nearest.is_some() { (nearest(r, ids)) }
        @if r.near.is_some() { (near(r, ids)) }
        (super::indicators::section(r, ids))
        (timings(r))
    }
}

fn matrix(r: &Report) -> Markup {
    let role = match r.role {
        Role::InputEmbedding => "input embedding",
        Role::OutputHead => "output head",
    };
    let tied = r.tied.map(|t| match t {
        Tied::SameTensor => "tied (one tensor)",
        Tied::BitIdentical => "tied (bit-identical copies)",
        Tied::Untied => "untied",
    });
    html! {
        h2 { "Matrix" }
        dl.facts {
            dt { "File" } dd { code { (r.file) } }
            @if let Some(f) = &r.tensor_file { dt { "Read from" } dd { code { (f) } } }
            dt { "Format" } dd { (r.format) }
            dt { "Tensor" } dd { code { (r.tensor) } " (" (role) ")" }
            @if let Some(t) = tied { dt { "Output head" } dd { (t) } }
            dt { "Dtype" } dd {
                (r.dtype)
                @if r.stored_dtype != r.dtype { " (stored as " (r.stored_dtype) ")" }
            }
            dt { "Shape" } dd { (thousands(r.shape[0])) " tokens × " (thousands(r.shape[1])) " dimensions" }
            dt { "Memory" } dd {
                (mib(r.memory_bytes))
                @if r.values_bytes != r.memory_bytes { " stored, " (mib(r.values_bytes)) " as values" }
            }
            @if let Some(t) = &r.tokenizer {
                dt { "Tokenizer" } dd { code { (t.path) } " (" (thousands(t.vocab_size)) " tokens)" }
            }
            @if let Some(p) = r.padding_rows.as_ref().filter(|p| !p.is_empty()) {
                dt { "Padding rows" } dd {
                    (count(p.len(), "row", "rows")) " past the tokenizer's vocabulary (ids "
                    (p[0]) "–" (p[p.len() - 1]) ")"
                }
            }
            dt { "Device" } dd { (r.device.adapter) " (" (r.device.backend) ")" }
            dt { "Equality" } dd { (match r.equality { crate::types::Equality::Bitwise => "bitwise (bit-for-bit identical rows)", crate::types::Equality::Numeric => "numeric (+0.0 = −0.0, as torch.unique)" }) }
        }
    }
}

fn singularities(r: &Report, ids: &Ids) -> Markup {
    let in_holes: usize = r.groups.iter().map(|g| g.size).sum();
    let largest = r.groups.first().map_or(0, |g| g.size);
    let names = Names::of_report(r);
    html! {
        h2 { "Singularities" }
        div.cards {
            (card(thousands(r.shape[0]), "tokens", ""))
            (card(thousands(r.n_unique), "unique vectors", ""))
            (card(thousands(r.n_duplicate), "duplicate tokens", ""))
            (card(thousands(r.groups.len()), "black holes", "hole"))
            (card(thousands(largest), "tokens in the largest", "hole"))
            (card(thousands(in_holes), "tokens in holes", "hole"))
            (card(format!("{:.2}%", 100.0 * r.uniqueness), "uniqueness", ""))
        }
        @if r.groups.is_empty() {
            p { "No two tokens share a vector: every row is distinct." }
        }
        @if let Some(svg) = norm_plot(r) {
            (figure(&ids.id("norms"), svg, "The L2 norm of every row, binned (log scale). Look for a spike: tokens that share a vector share its norm, so a black hole is a tall bar in red, often apart from the cloud in grey; orange marks the near-singularity components."))
        }
        @if let Some(s) = &r.group_sizes {
            (figure(&ids.id("populations"), populations_plot(&s.distribution), "How many black holes have each size (log scale). A few large holes over many pairs is the signature of tokens that kept their initial vector."))
            h3 { "Tokens in black holes" }
            (group_table(r, &names, &ids.id("groups")))
        }
    }
}

fn norm_plot(r: &Report) -> Option<String> {
    let h = figures::norm_histogram(r)?;
    let max = h.all.counts.iter().copied().max().unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Histogram of row norms",
        Axis::linear("L2 norm of the row", h.all.lo, h.all.hi),
        Axis::counts("tokens (log scale)", max),
    );
    let layers = [
        (&h.all, colour::CLOUD, "all tokens"),
        (&h.frozen, colour::FROZEN, "in near-singularity components"),
        (&h.holes, colour::HOLE, "in black holes"),
    ];
    layered_bars(&mut c, &layers, "norm");
    Some(c.finish())
}

fn populations_plot(dist: &[crate::survey::SizeCount]) -> String {
    let labels = dist.iter().map(|s| s.size.to_string()).collect();
    let max = dist.iter().map(|s| s.count).max().unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Black holes by size",
        Axis::categories("tokens in the hole", labels),
        Axis::counts("black holes (log scale)", max),
    );
    for (i, s) in dist.iter().enumerate() {
        let tip = format!(
            "{} of {}",
            count(s.count, "black hole", "black holes"),
            count(s.size, "token", "tokens")
        );
        c.band_bar(i, 0.7, 0.0, s.count as f64, colour::HOLE, &tip);
    }
    c.finish()
}

fn group_table(r: &Report, names: &Names, id: &str) -> Markup {
    let columns = [
        Column {
            title: "hole",
            numeric: true,
        },
        Column {
            title: "size",
            numeric: true,
        },
        Column {
            title: "norm",
            numeric: true,
        },
        Column {
            title: "token id",
            numeric: true,
        },
        Column {
            title: "token",
            numeric: false,
        },
    ];
    let total: usize = r.groups.iter().map(|g| g.size).sum();
    let rows = r
        .groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.token_ids.iter().map(move |&t| (i, g, t)))
        .take(MAX_TABLE_ROWS)
        .map(|(i, g, t)| {
            vec![
                Cell::int(i + 1),
                Cell::int(g.size),
                Cell::float(g.norm, Some(6)),
                Cell::int(t),
                Cell::text(names.string(t)),
            ]
        })
        .collect();
    table(id, &columns, rows, total)
}

fn geometry(r: &Report, ids: &Ids) -> Markup {
    let g = &r.geometry;
    html! {
        h2 { "Geometry" }
        dl.facts {
            @if !r.groups.is_empty() {
                dt { "Black-hole norms" } dd {
                    "min " (fixed(g.black_hole_norms.min, 6)) ", max " (fixed(g.black_hole_norms.max, 6))
                    ", mean " (fixed(g.black_hole_norms.mean, 6))
                }
            }
            @if let Some(p) = &g.pairwise_l2 {
                dt { "Distances between holes" } dd {
                    "min " (p.min.map_or("n/a".into(), sci)) ", median " (p.median.map_or("n/a".into(), sci))
                    ", max " (p.max.map_or("n/a".into(), sci))
                }
            }
            dt { "Cloud norms" } dd { "mean " (fixed(g.cloud_norms.mean, 6)) ", std " (fixed(g.cloud_norms.std, 6)) }
            dt { "Centroid norm" } dd { (fixed(g.centroid_norm, 6)) }
            @if let Some(x) = g.norm_ratio { dt { "Hole norm / cloud norm" } dd { (format!("{x:.4}")) } }
        }
        @if let Some(svg) = lattice_plot(r) {
            (figure(&ids.id("lattice"), svg, "How many steps of the stored dtype (L∞: the most in any one coordinate) separate each pair of black holes. Dark cells one or two steps from the diagonal are a lattice: holes that are rounding neighbours of each other."))
        } @else if let Some(k) = r.lattice_skipped {
            p.note { (thousands(k)) " black holes: too many for the lattice." }
        }
    }
}

fn lattice_plot(r: &Report) -> Option<String> {
    let h = figures::heatmap(r)?;
    let k = h.labels.len();
    let max = h.steps.iter().flatten().copied().max().unwrap_or(0);
    let scale = (1.0 + max as f64).ln().max(f64::MIN_POSITIVE);
    let what = if h.components {
        "components of holes"
    } else {
        "black holes"
    };
    let mut c = Chart::new(
        "Lattice of black holes",
        Axis::categories(
            format!("{what} (smallest token id, size)"),
            h.labels.clone(),
        ),
        Axis::categories("", h.labels.clone()),
    )
    .with_height((120.0 + 14.0 * k as f64).clamp(280.0, 720.0));
    for (i, row) in h.steps.iter().enumerate() {
        for (j, &s) in row.iter().enumerate() {
            let t = (1.0 + s as f64).ln() / scale;
            let tip = format!("{} ↔ {}: {} steps (L∞)", h.labels[i], h.labels[j], s);
            c.cell(j, i, &ramp(t), &tip);
        }
    }
    c.legend(format!("dark: {max} steps"), &ramp(1.0));
    c.legend("light: 0", &ramp(0.0));
    Some(c.finish())
}

fn nearest(r: &Report, ids: &Ids) -> Markup {
    let Some(n) = &r.nearest else { return html! {} };
    let names = Names::of_report(r);
    html! {
        h2 { "Nearest neighbours" }
        p {
            "Each token's nearest distinct vector, by exact L2 distance ("
            (thousands(n.with_neighbour)) " tokens have one)."
        }
        dl.facts {
            @for q in &n.quantiles {
                dt { "quantile " (q.q) } dd { (sci(q.distance)) }
            }
            @if let Some(g) = &n.gap {
                dt { "Gap" } dd {
                    "no token between " (sci(g.lo)) " and " (sci(g.hi)) "; "
                    (count(g.tokens.len(), "token", "tokens")) " below it on "
                    (count(g.distinct_vectors, "distinct vector", "distinct vectors"))
                    " (" (count(g.black_holes, "black hole", "black holes")) ")"
                }
            } @else {
                dt { "Gap" } dd { "none: no void splits off a small low population" }
            }
        }
        @if let Some(svg) = nearest_plot(r) {
            (figure(&ids.id("nearest"), svg, "Distances to the nearest distinct vector, on log axes (a quarter decade per bar). A void between two populations is the gap: the tokens left of it are the frozen structure, packed a few steps apart, far closer than the trained cloud on the right."))
        }
        h3 { "Most isolated tokens" }
        (neighbours(&ids.id("most-isolated"), &n.most_isolated, &names))
        h3 { "Least isolated tokens" }
        (neighbours(&ids.id("least-isolated"), &n.least_isolated, &names))
        @if let Some(g) = &n.gap {
            h3 { "Tokens below the gap" }
            (table(&ids.id("gap"), &[
                Column { title: "token id", numeric: true },
                Column { title: "token", numeric: false },
                Column { title: "nearest", numeric: true },
                Column { title: "distance", numeric: true },
            ], g.tokens.iter().take(MAX_TABLE_ROWS).map(|&t| vec![
                Cell::int(t),
                Cell::text(names.string(t)),
                n.ids.get(t).copied().flatten().map_or(Cell::blank(), Cell::int),
                Cell::float(n.distances.get(t).copied().flatten(), None),
            ]).collect(), g.tokens.len()))
        }
    }
}

/// A table of tokens and their nearest distinct vectors.
fn neighbours(id: &str, list: &[crate::survey::nearest::Neighbour], names: &Names) -> Markup {
    table(
        id,
        &[
            Column {
                title: "token id",
                numeric: true,
            },
            Column {
                title: "token",
                numeric: false,
            },
            Column {
                title: "nearest",
                numeric: true,
            },
            Column {
                title: "its token",
                numeric: false,
            },
            Column {
                title: "distance",
                numeric: true,
            },
        ],
        list.iter()
            .map(|x| {
                vec![
                    Cell::int(x.token_id),
                    Cell::text(names.string(x.token_id)),
                    Cell::int(x.nearest),
                    Cell::text(names.string(x.nearest)),
                    Cell::float(Some(x.distance), None),
                ]
            })
            .collect(),
        list.len(),
    )
}

fn nearest_plot(r: &Report) -> Option<String> {
    let n = r.nearest.as_ref()?;
    let bins: Vec<_> = n.histogram.iter().filter(|b| b.hi > 0.0).collect();
    let lo = bins.first()?.lo;
    let hi = bins.last()?.hi;
    let max = bins.iter().map(|b| b.count).max().unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Histogram of nearest-neighbour distances",
        Axis::log(
            "L2 distance to the nearest distinct vector (log scale)",
            lo,
            hi,
        ),
        Axis::counts("tokens (log scale)", max),
    );
    if let Some(g) = &n.gap {
        c.shade(
            g.lo,
            g.hi,
            &format!("gap: {} below", count(g.tokens.len(), "token", "tokens")),
        );
    }
    for b in &bins {
        if b.count > 0 {
            let tip = format!("{} at [{}, {})", thousands(b.count), sci(b.lo), sci(b.hi));
            c.bar(b.lo, b.hi, b.count as f64, colour::LINE, &tip);
        }
    }
    Some(c.finish())
}

fn near(r: &Report, ids: &Ids) -> Markup {
    let Some(nr) = &r.near else { return html! {} };
    let names = Names::of_report(r);
    let threshold = if nr.metric == "ulp" {
        format!("at most {} steps in every coordinate", nr.threshold)
    } else {
        format!("L2 distance at most {}", sci(nr.threshold))
    };
    let total: usize = nr.components.iter().map(|c| c.token_ids.len()).sum();
    html! {
        h2 { "Near-singularity components" }
        p {
            "Distinct vectors joined at " (threshold) ": "
            (count(nr.pairs, "pair", "pairs")) ", "
            (count(nr.components.len(), "component", "components")) " of "
            (count(total, "token", "tokens")) "."
        }
        @if !nr.components.is_empty() {
            (figure(&ids.id("components"), components_plot(nr), "The components, largest first: their tokens, their distinct vectors, and their diameter in steps (log scale). A large component of few vectors a few steps wide is a frozen structure: dead tokens that barely moved from one initial point."))
            h3 { "Tokens in components" }
            (table(&ids.id("component-tokens"), &[
                Column { title: "component", numeric: true },
                Column { title: "tokens", numeric: true },
                Column { title: "vectors", numeric: true },
                Column { title: "diameter (steps)", numeric: true },
                Column { title: "token id", numeric: true },
                Column { title: "token", numeric: false },
            ], nr.components.iter().enumerate()
                .flat_map(|(i, c)| c.token_ids.iter().map(move |&t| (i, c, t)))
                .take(MAX_TABLE_ROWS)
                .map(|(i, c, t)| vec![
                    Cell::int(i + 1),
                    Cell::int(c.token_ids.len()),
                    Cell::int(c.distinct_vectors),
                    c.diameter_steps.map_or(Cell::blank(), |d| Cell::int(d as usize)),
                    Cell::int(t),
                    Cell::text(names.string(t)),
                ]).collect(), total))
        }
    }
}

/// Components shown one by one in the plot.
const PLOTTED_COMPONENTS: usize = 40;

fn components_plot(nr: &crate::survey::near::Near) -> String {
    let shown = &nr.components[..nr.components.len().min(PLOTTED_COMPONENTS)];
    let labels = (1..=shown.len()).map(|i| i.to_string()).collect();
    let max = shown
        .iter()
        .map(|c| {
            c.token_ids
                .len()
                .max(c.diameter_steps.unwrap_or(0) as usize)
        })
        .max()
        .unwrap_or(1) as f64;
    let mut c = Chart::new(
        "Near-singularity components",
        Axis::categories("component (largest first)", labels),
        Axis::counts("count (log scale)", max),
    );
    c.legend("tokens", colour::FROZEN);
    c.legend("distinct vectors", colour::LINE);
    c.legend("diameter (steps)", colour::THIRD);
    for (i, comp) in shown.iter().enumerate() {
        let n = comp.token_ids.len();
        c.band_bar(
            i,
            0.26,
            -0.28,
            n as f64,
            colour::FROZEN,
            &format!("component {}: {}", i + 1, count(n, "token", "tokens")),
        );
        c.band_bar(
            i,
            0.26,
            0.0,
            comp.distinct_vectors as f64,
            colour::LINE,
            &format!(
                "component {}: {}",
                i + 1,
                count(comp.distinct_vectors, "distinct vector", "distinct vectors")
            ),
        );
        if let Some(d) = comp.diameter_steps {
            c.band_bar(
                i,
                0.26,
                0.28,
                d as f64,
                colour::THIRD,
                &format!("component {}: diameter {d} steps", i + 1),
            );
        }
    }
    c.finish()
}

fn timings(r: &Report) -> Markup {
    let t = &r.timings_ms;
    html! {
        h2 { "Timings" }
        p.note {
            "load " (format!("{:.1}", t.load)) " ms · hash " (format!("{:.1}", t.hash))
            " ms · group " (format!("{:.1}", t.group)) " ms · geometry " (format!("{:.1}", t.geometry))
            " ms · lattice " (format!("{:.1}", t.lattice)) " ms"
            @if r.nearest.is_some() { " · nearest " (format!("{:.1}", t.nearest)) " ms" }
            @if r.near.is_some() { " · near " (format!("{:.1}", t.near)) " ms" }
            @if let Some(i) = t.indicators { " · indicators " (format!("{i:.1}")) " ms" }
            " · total " (format!("{:.1}", t.total)) " ms"
        }
    }
}
