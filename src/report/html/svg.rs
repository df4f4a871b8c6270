//! A small SVG chart writer: two axes (linear, log or categories), ticks,
//! labels with units, and marks (bars, lines, points, bands, cells). Plots
//! are drawn from binned data, so a page stays small whatever the
//! vocabulary. Every drawn datum is an element of class `mark`, which the
//! browser test counts.

use std::fmt::Write;

/// Width and height of a chart, in CSS pixels (it scales with the page).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 48.0;

/// The colours of the page (Tableau 10, readable on white).
pub mod colour {
    pub const CLOUD: &str = "#9aa5b1";
    pub const HOLE: &str = "#d62728";
    pub const FROZEN: &str = "#ff7f0e";
    pub const LINE: &str = "#1f77b4";
    pub const SECOND: &str = "#2ca02c";
    pub const THIRD: &str = "#9467bd";
    pub const BAND: &str = "#fde3c8";
}

/// How an axis maps values to positions.
#[derive(Clone, Debug, PartialEq)]
pub enum Scale {
    Linear {
        lo: f64,
        hi: f64,
    },
    /// Base 10, `lo` and `hi` powers of ten.
    Log {
        lo: f64,
        hi: f64,
    },
    /// One band per label, in order.
    Categories(Vec<String>),
}

/// An axis: its scale and its label (with units).
#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
}

/// A "nice" step for about `n` ticks over `span` (1, 2 or 5 × 10^k).
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

impl Axis {
    /// A linear axis over `[lo, hi]`, widened to whole ticks (and to a unit
    /// span around a single value).
    pub fn linear(label: impl Into<String>, lo: f64, hi: f64) -> Axis {
        let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() && lo <= hi {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        if hi - lo < f64::EPSILON * hi.abs().max(1.0) {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
            lo -= pad;
            hi += pad;
        }
        let step = nice_step(hi - lo, 5.0);
        Axis {
            label: label.into(),
            scale: Scale::Linear {
                lo: (lo / step).floor() * step,
                hi: (hi / step).ceil() * step,
            },
        }
    }

    /// A log axis over `[lo, hi]` (both > 0), widened to whole decades.
    pub fn log(label: impl Into<String>, lo: f64, hi: f64) -> Axis {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        let (lo, hi) = match (ok(lo), ok(hi)) {
            (true, true) if lo <= hi => (lo, hi),
            _ => (1.0, 10.0),
        };
        let a = lo.log10().floor();
        let mut b = hi.log10().ceil();
        if b <= a {
            b = a + 1.0;
        }
        Axis {
            label: label.into(),
            scale: Scale::Log {
                lo: 10f64.powf(a),
                hi: 10f64.powf(b),
            },
        }
    }

    /// A log axis for counts: from ½ (so a bar of one shows) to the decade
    /// past `max`.
    pub fn counts(label: impl Into<String>, max: f64) -> Axis {
        let hi = match Axis::log("", 1.0, max.max(10.0)).scale {
            Scale::Log { hi, .. } => hi,
            _ => 10.0,
        };
        Axis {
            label: label.into(),
            scale: Scale::Log { lo: 0.5, hi },
        }
    }

    /// One band per label.
    pub fn categories(label: impl Into<String>, labels: Vec<String>) -> Axis {
        Axis {
            label: label.into(),
            scale: Scale::Categories(labels),
        }
    }

    /// Where `v` falls, as a fraction of the axis (may lie outside [0, 1]);
    /// for categories `v` is the band index and this is its centre.
    pub fn frac(&self, v: f64) -> f64 {
        match &self.scale {
            Scale::Linear { lo, hi } => (v - lo) / (hi - lo),
            Scale::Log { lo, hi } => {
                if v <= 0.0 {
                    return -0.05;
                }
                (v.log10() - lo.log10()) / (hi.log10() - lo.log10())
            }
            Scale::Categories(labels) => (v + 0.5) / labels.len().max(1) as f64,
        }
    }

    /// The width of one band, as a fraction (categories), else 0.
    pub fn band(&self) -> f64 {
        match &self.scale {
            Scale::Categories(labels) => 1.0 / labels.len().max(1) as f64,
            _ => 0.0,
        }
    }

    /// The axis' lowest value (where bars start).
    pub fn base(&self) -> f64 {
        match &self.scale {
            Scale::Linear { lo, hi } if *lo < 0.0 && *hi > 0.0 => 0.0,
            Scale::Linear { lo, .. } => *lo,
            Scale::Log { lo, .. } => *lo,
            Scale::Categories(_) => 0.0,
        }
    }

    /// Tick positions and labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match &self.scale {
            Scale::Linear { lo, hi } => {
                let step = nice_step(hi - lo, 5.0);
                let n = ((hi - lo) / step).round() as i64;
                (0..=n.min(20))
                    .map(|i| {
                        let v = lo + i as f64 * step;
                        (v, number(v, step))
                    })
                    .collect()
            }
            Scale::Log { lo, hi } => {
                let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
                let every = ((b - a) as f64 / 8.0).ceil().max(1.0) as i32;
                (a..=b)
                    .filter(|k| (k - a) % every == 0)
                    .map(|k| (10f64.powi(k), power_of_ten(k)))
                    .collect()
            }
            Scale::Categories(labels) => {
                let every = labels.len().div_ceil(24).max(1);
                labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % every == 0)
                    .map(|(i, l)| (i as f64, l.clone()))
                    .collect()
            }
        }
    }
}

/// `10^k` as a tick label: plain from 0.001 to 1000, then `10k`, `100k`,
/// `1M`, … `100G`, else `1e-5` and `1e12`.
fn power_of_ten(k: i32) -> String {
    match k {
        -3..=-1 => format!("{}", 10f64.powi(k)),
        0..=3 => format!("{}", 10u64.pow(k as u32)),
        4..=11 => {
            let (unit, base) = [("k", 3), ("M", 6), ("G", 9)][(k as usize - 3) / 3];
            format!("{}{unit}", 10u64.pow((k - base) as u32))
        }
        _ => format!("1e{k}"),
    }
}

/// A tick value with as many decimals as its step needs.
fn number(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if step >= 1.0 && v.abs() < 1e7 {
        return format!("{}", v.round() as i64);
    }
    if v.abs() >= 1e7 || (v != 0.0 && v.abs() < 1e-4) {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    format!("{v:.decimals$}")
}

/// Text for SVG and HTML: `&`, `<`, `>` and `"` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A chart being drawn: axes and marks, written out by [`Chart::finish`].
pub struct Chart {
    x: Axis,
    y: Axis,
    title: String,
    /// Elements under the marks (bands).
    under: String,
    marks: String,
    /// Elements over the marks (annotations).
    over: String,
    legend: Vec<(String, String)>,
    height: f64,
}

/// One decimal is plenty for a position in pixels.
fn p(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

impl Chart {
    /// A chart titled `title` (its accessible name) over two axes.
    pub fn new(title: impl Into<String>, x: Axis, y: Axis) -> Chart {
        Chart {
            x,
            y,
            title: title.into(),
            under: String::new(),
            marks: String::new(),
            over: String::new(),
            legend: Vec::new(),
            height: HEIGHT,
        }
    }

    /// A taller chart (a heatmap with many rows).
    pub fn with_height(mut self, h: f64) -> Chart {
        self.height = h;
        self
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + self.x.frac(x).clamp(-0.02, 1.02) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let h = self.height - TOP - BOTTOM;
        TOP + (1.0 - self.y.frac(y).clamp(-0.02, 1.02)) * h
    }

    /// Adds a legend entry.
    pub fn legend(&mut self, label: impl Into<String>, colour: &str) {
        self.legend.push((label.into(), colour.to_string()));
    }

    /// A bar over `[x0, x1]` from the y axis' base to `y`, with a tooltip.
    pub fn bar(&mut self, x0: f64, x1: f64, y: f64, colour: &str, tip: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let (top, base) = (self.py(y), self.py(self.y.base()));
        let w = (b - a).abs().max(1.0);
        let _ = write!(
            self.marks,
            r#"<rect class="mark" x="{}" y="{}" width="{}" height="{}" fill="{colour}"><title>{}</title></rect>"#,
            p(a.min(b)),
            p(top.min(base)),
            p(w),
            p((base - top).abs().max(0.5)),
            esc(tip)
        );
    }

    /// A bar in band `i` of a category x axis, `share` of the band wide,
    /// `offset` (in bands) from its centre.
    pub fn band_bar(&mut self, i: usize, share: f64, offset: f64, y: f64, colour: &str, tip: &str) {
        let band = self.x.band() * (WIDTH - LEFT - RIGHT);
        let c = self.px(i as f64) + offset * band;
        let w = (band * share).clamp(1.0, 56.0);
        let (top, base) = (self.py(y), self.py(self.y.base()));
        let _ = write!(
            self.marks,
            r#"<rect class="mark" x="{}" y="{}" width="{}" height="{}" fill="{colour}"><title>{}</title></rect>"#,
            p(c - w / 2.0),
            p(top.min(base)),
            p(w),
            p((base - top).abs().max(0.5)),
            esc(tip)
        );
    }

    /// A line through the points (NaN breaks it).
    pub fn line(&mut self, points: &[(f64, f64)], colour: &str, tip: &str) {
        let mut d = String::new();
        let mut pen_up = true;
        for &(x, y) in points {
            if !x.is_finite() || !y.is_finite() {
                pen_up = true;
                continue;
            }
            let _ = write!(
                d,
                "{}{} {}",
                if pen_up { "M" } else { "L" },
                p(self.px(x)),
                p(self.py(y))
            );
            pen_up = false;
        }
        if d.is_empty() {
            return;
        }
        let _ = write!(
            self.marks,
            r#"<path class="mark" d="{d}" fill="none" stroke="{colour}" stroke-width="1.6"><title>{}</title></path>"#,
            esc(tip)
        );
    }

    /// A point with a tooltip.
    pub fn point(&mut self, x: f64, y: f64, r: f64, colour: &str, tip: &str) {
        let _ = write!(
            self.marks,
            r#"<circle class="mark" cx="{}" cy="{}" r="{}" fill="{colour}" fill-opacity="0.8"><title>{}</title></circle>"#,
            p(self.px(x)),
            p(self.py(y)),
            p(r),
            esc(tip)
        );
    }

    /// A shaded vertical band over `[x0, x1]` under the marks, labelled at the top.
    pub fn shade(&mut self, x0: f64, x1: f64, label: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let _ = write!(
            self.under,
            r#"<rect class="band" x="{}" y="{TOP}" width="{}" height="{}" fill="{}"/>"#,
            p(a.min(b)),
            p((b - a).abs().max(2.0)),
            p(self.height - TOP - BOTTOM),
            colour::BAND
        );
        let _ = write!(
            self.over,
            r#"<text x="{}" y="{}" class="note" text-anchor="middle">{}</text>"#,
            p(((a + b) / 2.0).clamp(LEFT + 60.0, WIDTH - RIGHT - 60.0)),
            p(TOP - 8.0),
            esc(label)
        );
    }

    /// A vertical tick mark at `x` (an event), from the top of the plot.
    pub fn event(&mut self, x: f64, colour: &str, tip: &str) {
        let x = self.px(x);
        let _ = write!(
            self.marks,
            r#"<line class="mark" x1="{}" x2="{}" y1="{TOP}" y2="{}" stroke="{colour}" stroke-width="1.2" stroke-dasharray="3 2"><title>{}</title></line>"#,
            p(x),
            p(x),
            p(self.height - BOTTOM),
            esc(tip)
        );
    }

    /// A small square at `x`, the `k`-th from the top of the plot (events
    /// of one step, stacked).
    pub fn stacked(&mut self, x: f64, k: usize, colour: &str, tip: &str) {
        let x = self.px(x);
        let _ = write!(
            self.marks,
            r#"<rect class="mark" x="{}" y="{}" width="7" height="7" fill="{colour}"><title>{}</title></rect>"#,
            p(x - 3.5),
            p(TOP + 1.0 + 8.0 * k as f64),
            esc(tip)
        );
    }

    /// A cell of a heatmap: band `i` of x, band `j` of y.
    pub fn cell(&mut self, i: usize, j: usize, fill: &str, tip: &str) {
        let bw = self.x.band() * (WIDTH - LEFT - RIGHT);
        let bh = self.y.band() * (self.height - TOP - BOTTOM);
        let x = self.px(i as f64) - bw / 2.0;
        let y = TOP + j as f64 * bh;
        let _ = write!(
            self.marks,
            r#"<rect class="mark" x="{}" y="{}" width="{}" height="{}" fill="{fill}"><title>{}</title></rect>"#,
            p(x),
            p(y),
            p(bw.max(0.5)),
            p(bh.max(0.5)),
            esc(tip)
        );
    }

    /// The SVG element.
    pub fn finish(self) -> String {
        let (w, h) = (WIDTH, self.height);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg viewBox="0 0 {w} {h}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
            esc(&self.title)
        );
        s.push_str(&self.under);
        // Axes.
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, h - BOTTOM);
        let _ = write!(
            s,
            r##"<path class="axis" d="M{x0} {y0}V{y1}H{x1}" fill="none" stroke="#333"/>"##
        );
        let categories_y = matches!(self.y.scale, Scale::Categories(_));
        for (v, label) in self.x.ticks() {
            let x = p(self.px(v));
            let _ = write!(
                s,
                r##"<line x1="{x}" x2="{x}" y1="{y1}" y2="{}" stroke="#333"/><text x="{x}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
                y1 + 4.0,
                y1 + 16.0,
                esc(&label)
            );
        }
        for (v, label) in self.y.ticks() {
            let y = if categories_y {
                let bh = self.y.band() * (h - TOP - BOTTOM);
                TOP + (v + 0.5) * bh
            } else {
                self.py(v)
            };
            let y = p(y);
            let grid = if categories_y {
                String::new()
            } else {
                format!(r##"<line x1="{x0}" x2="{x1}" y1="{y}" y2="{y}" stroke="#e5e5e5"/>"##)
            };
            let _ = write!(
                s,
                r##"{grid}<text x="{}" y="{y}" class="tick" text-anchor="end" dy="0.32em">{}</text>"##,
                x0 - 6.0,
                esc(&label)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="label" text-anchor="middle">{}</text>"#,
            p((x0 + x1) / 2.0),
            h - 10.0,
            esc(&self.x.label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(16 {}) rotate(-90)" class="label" text-anchor="middle">{}</text>"#,
            p((y0 + y1) / 2.0),
            esc(&self.y.label)
        );
        s.push_str(&self.marks);
        s.push_str(&self.over);
        // Legend, top right.
        let mut x = x1;
        for (label, colour) in self.legend.iter().rev() {
            let width = 18.0 + 6.5 * label.chars().count() as f64;
            x -= width + 10.0;
            let _ = write!(
                s,
                r#"<rect x="{}" y="6" width="10" height="10" fill="{colour}"/><text x="{}" y="15" class="tick">{}</text>"#,
                p(x),
                p(x + 14.0),
                esc(label)
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// A colour on a light-to-dark blue ramp for `t` in [0, 1].
pub fn ramp(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(239.0, 8.0),
        lerp(243.0, 48.0),
        lerp(255.0, 107.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_widens_to_decades() {
        let a = Axis::log("d", 0.003, 42.0);
        assert_eq!(
            a.scale,
            Scale::Log {
                lo: 0.001,
                hi: 100.0
            }
        );
        assert!((a.frac(0.1) - 0.4).abs() < 1e-12);
        let ticks: Vec<String> = a.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(ticks, ["0.001", "0.01", "0.1", "1", "10", "100"]);
    }

    #[test]
    fn linear_axis_ticks_are_round() {
        let a = Axis::linear("n", 0.13, 0.91);
        assert_eq!(a.scale, Scale::Linear { lo: 0.0, hi: 1.0 });
        let ticks: Vec<String> = a.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(ticks, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        // A single value still gets a span.
        let a = Axis::linear("n", 3.0, 3.0);
        assert!(matches!(a.scale, Scale::Linear { lo, hi } if lo < 3.0 && hi > 3.0));
    }

    #[test]
    fn marks_are_counted_and_text_is_escaped() {
        let mut c = Chart::new("t<1>", Axis::linear("x", 0.0, 10.0), Axis::counts("n", 5.0));
        c.bar(1.0, 2.0, 5.0, colour::CLOUD, "a & b");
        c.line(
            &[(0.0, 1.0), (f64::NAN, 2.0), (3.0, 4.0), (4.0, 5.0)],
            colour::LINE,
            "l",
        );
        let svg = c.finish();
        assert_eq!(svg.matches(r#"class="mark""#).count(), 2);
        assert!(svg.contains("a &amp; b") && svg.contains("t&lt;1&gt;"));
        // The NaN lifts the pen: two subpaths.
        let d = svg.split(r#"<path class="mark" d=""#).nth(1).unwrap();
        assert_eq!(d.split('"').next().unwrap().matches('M').count(), 2);
    }

    #[test]
    fn powers_of_ten_read_as_people_write_them() {
        let labels: Vec<String> = [-4, -3, 0, 3, 4, 5, 6, 9, 11, 12]
            .into_iter()
            .map(power_of_ten)
            .collect();
        assert_eq!(
            labels,
            ["1e-4", "0.001", "1", "1000", "10k", "100k", "1M", "1G", "100G", "1e12"]
        );
    }

    #[test]
    fn ramp_runs_light_to_dark() {
        assert_eq!(ramp(0.0), "#eff3ff");
        assert_eq!(ramp(1.0), "#08306b");
        assert_eq!(ramp(f64::NAN), "#eff3ff");
    }
}
