//! A small plotting toolkit over `plotters` for the report figures: the PNG files (size, the
//! font found at run time, a retry without text if text fails), and three kinds of panel — lines
//! over a numeric axis with reference lines and step marks ([`Panel`], [`line_panel`]), bars by
//! category ([`Bars`], [`bar_panel`]) and a histogram ([`histogram_panel`]) — each saying "no
//! data" rather than failing on empty or non-finite data. What the figures show is in `figures`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontFamily, FontStyle, register_font};

use super::format::{NOT_MEASURED, axis_num, short_ms};
use crate::results::Histogram;

/// Size of every plot, pixels.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 600;

/// Fonts tried, in order, for the text of the plots (regular, bold).
const FONT_FILES: [(&str, &str); 2] = [
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
];
/// The family the font is registered under.
const FAMILY: &str = "sans-serif";

pub(super) const TOLK_COLOR: RGBColor = RGBColor(31, 119, 180);
pub(super) const JANUS_COLOR: RGBColor = RGBColor(230, 120, 20);
pub(super) const GREEN_COLOR: RGBColor = RGBColor(44, 160, 44);
pub(super) const RED_COLOR: RGBColor = RGBColor(214, 39, 40);
pub(super) const PURPLE_COLOR: RGBColor = RGBColor(148, 103, 189);
const GREY_COLOR: RGBColor = RGBColor(120, 120, 120);
const FRAME_COLOR: RGBColor = RGBColor(200, 200, 200);

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Whether the plots can have text, and in which font family.
#[derive(Clone, Copy)]
pub(super) struct Ink {
    pub(super) text: bool,
    pub(super) family: &'static str,
}

impl Ink {
    /// Text if a font file could be loaded and registered (done once per process).
    pub(super) fn detect() -> Ink {
        static LOADED: OnceLock<bool> = OnceLock::new();
        let text = *LOADED.get_or_init(load_font);
        Ink { text, family: FAMILY }
    }

    fn plain(self) -> Ink {
        Ink { text: false, ..self }
    }

    fn font(self, size: u32) -> TextStyle<'static> {
        FontDesc::new(FontFamily::Name(self.family), f64::from(size), FontStyle::Normal).into()
    }

    fn bold(self, size: u32) -> TextStyle<'static> {
        FontDesc::new(FontFamily::Name(self.family), f64::from(size), FontStyle::Bold).into()
    }
}

fn load_font() -> bool {
    for (regular, bold) in FONT_FILES {
        let Ok(bytes) = fs::read(regular) else { continue };
        // plotters keeps fonts for the life of the process: leaked once (the OnceLock).
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if register_font(FAMILY, FontStyle::Normal, bytes).is_err() {
            continue;
        }
        if let Ok(bold_bytes) = fs::read(bold) {
            let bold_bytes: &'static [u8] = Box::leak(bold_bytes.into_boxed_slice());
            let _ = register_font(FAMILY, FontStyle::Bold, bold_bytes);
        }
        return true;
    }
    tracing::warn!("no TTF font found: the report plots are drawn without text");
    false
}

/// plotters' errors into anyhow.
trait PlotResult<T> {
    fn plot(self) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> PlotResult<T> for Result<T, E> {
    fn plot(self) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("drawing: {e}"))
    }
}

/// Draws one PNG. If drawing with text fails (a font that can't render), draws it again
/// without text rather than giving no plot.
pub(super) fn write_plot(
    dir: &Path,
    name: &str,
    ink: Ink,
    draw: impl Fn(&Area<'_>, Ink) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let attempt = |ink: Ink| -> anyhow::Result<()> {
        let root = BitMapBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).plot()?;
        draw(&root, ink)?;
        root.present().plot()?;
        Ok(())
    };
    match attempt(ink) {
        Ok(()) => {}
        Err(e) if ink.text => {
            tracing::warn!("{}: {e:#}; drawing it without text", path.display());
            attempt(ink.plain()).map_err(|_| e).with_context(|| format!("writing {}", path.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
    }
    Ok(path)
}

/// The figure's title on top; returns the area below it.
pub(super) fn titled<'a>(area: &Area<'a>, ink: Ink, title: &str) -> anyhow::Result<Area<'a>> {
    if ink.text {
        let below = area.titled(title, ink.bold(22)).plot()?;
        Ok(below.margin(4, 0, 0, 0))
    } else {
        Ok(area.margin(10, 0, 0, 0))
    }
}

/// A framed area saying "no data" (or `message`), with the caption if any.
pub(super) fn no_data(area: &Area<'_>, ink: Ink, caption: Option<&str>, message: &str) -> anyhow::Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    area.draw(&Rectangle::new([(10, 10), (w - 10, h - 10)], FRAME_COLOR.stroke_width(1))).plot()?;
    if ink.text {
        if let Some(c) = caption {
            let style = ink.font(18).pos(Pos::new(HPos::Center, VPos::Top));
            area.draw(&Text::new(c.to_string(), (w / 2, 22), style)).plot()?;
        }
        let style = ink.font(22).color(&GREY_COLOR).pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new(message.to_string(), (w / 2, h / 2), style)).plot()?;
    }
    Ok(())
}

/// One series of a line panel.
pub(super) struct Line {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) points: Vec<(f64, f64)>,
    /// Per point: within the limits (a filled dot) or not (a red cross).
    pub(super) marks: Option<Vec<bool>>,
}

impl Line {
    pub(super) fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
        let points = points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        Line { label: label.into(), color, points, marks: None }
    }
}

/// A dashed reference line across the panel: a limit (horizontal) or a result (vertical).
pub(super) struct RefLine {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) value: f64,
    pub(super) vertical: bool,
}

/// A panel of lines over a numeric x axis.
pub(super) struct Panel {
    pub(super) caption: Option<String>,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    pub(super) lines: Vec<Line>,
    pub(super) refs: Vec<RefLine>,
    /// Fixed x range (to line up stacked panels); else from the data.
    pub(super) x_range: Option<(f64, f64)>,
    pub(super) legend: bool,
    pub(super) x_label_area: u32,
    pub(super) no_data: String,
}

impl Panel {
    pub(super) fn new(x_desc: &str, y_desc: &str) -> Panel {
        Panel {
            caption: None,
            x_desc: x_desc.to_string(),
            y_desc: y_desc.to_string(),
            lines: Vec::new(),
            refs: Vec::new(),
            x_range: None,
            legend: true,
            x_label_area: 45,
            no_data: "no data".to_string(),
        }
    }
}

/// min..max of finite values, padded so that the range is never empty.
pub(super) fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    if hi - lo < 1e-9 {
        let pad = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 1.0 };
        return Some((lo - pad, hi + pad));
    }
    Some((lo, hi))
}

/// The y range from 0 (or below, for negative data) to above the highest value, with room on top
/// for a legend.
fn y_span(values: impl Iterator<Item = f64>, headroom: f64) -> Option<(f64, f64)> {
    let (lo, hi) = span(values)?;
    let lo = lo.min(0.0);
    let hi = if hi <= 0.0 { 1.0 } else { hi * headroom };
    Some((lo, if hi - lo < 1e-9 { lo + 1.0 } else { hi }))
}

fn style_mesh<'a, 'b, X, Y>(
    mesh: &mut plotters::chart::MeshStyle<'a, 'b, X, Y, BitMapBackend<'a>>,
    ink: Ink,
    x_desc: &str,
    y_desc: &str,
) where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    mesh.max_light_lines(4)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .axis_style(GREY_COLOR.stroke_width(1));
    if ink.text {
        mesh.label_style(ink.font(13)).axis_desc_style(ink.font(14));
        if !x_desc.is_empty() {
            mesh.x_desc(x_desc);
        }
        if !y_desc.is_empty() {
            mesh.y_desc(y_desc);
        }
    }
}

fn legend_entry(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
}

fn dashed_legend_entry(
    color: RGBColor,
) -> impl Fn((i32, i32)) -> DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 22, y)], 6, 4, color.stroke_width(3))
}

fn draw_legend<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    ink: Ink,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(10)
        .background_style(WHITE.mix(0.9))
        .border_style(FRAME_COLOR)
        .label_font(ink.font(13))
        .draw()
        .plot()
}

/// A chart over two numeric axes, as the line panels draw on.
type Chart<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

impl Panel {
    /// Entries the legend would have: the labelled lines and reference lines, and the two kinds
    /// of step mark if any line has marks.
    fn legend_entries(&self) -> usize {
        self.lines.iter().filter(|l| !l.label.is_empty()).count()
            + self.refs.iter().filter(|r| !r.label.is_empty()).count()
            + self.lines.iter().filter(|l| l.marks.is_some()).count().min(1) * 2
    }

    /// The x and y ranges, the y one with room for a legend of `entries` if `legend`; None if
    /// there is nothing to draw.
    fn ranges(&self, legend: bool, entries: usize) -> Option<((f64, f64), (f64, f64))> {
        let points = || self.lines.iter().flat_map(|l| l.points.iter().copied());
        points().next()?;
        let x_refs = self.refs.iter().filter(|r| r.vertical).map(|r| r.value);
        let y_refs = self.refs.iter().filter(|r| !r.vertical).map(|r| r.value);
        let x = self.x_range.or_else(|| span(points().map(|(x, _)| x).chain(x_refs)))?;
        let headroom = if legend { 1.1 + 0.12 * entries as f64 } else { 1.08 };
        let y = y_span(points().map(|(_, y)| y).chain(y_refs), headroom)?;
        Some((x, y))
    }
}

/// Draws a panel of lines (with dots where a line has a single point), its reference lines and
/// its legend (with text, where there are two entries or more).
pub(super) fn line_panel(area: &Area<'_>, ink: Ink, p: &Panel) -> anyhow::Result<()> {
    let entries = p.legend_entries();
    let legend = ink.text && p.legend && entries >= 2;
    let Some(((x0, x1), (y0, y1))) = p.ranges(legend, entries) else {
        return no_data(area, ink, p.caption.as_deref(), &p.no_data);
    };

    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(24);
    if ink.text {
        if let Some(c) = &p.caption {
            builder.caption(c, ink.font(17));
        }
        builder.x_label_area_size(p.x_label_area).y_label_area_size(72);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).plot()?;
    let fmt = |v: &f64| axis_num(*v);
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh, ink, &p.x_desc, &p.y_desc);
    mesh.x_labels(10).y_labels(6).x_label_formatter(&fmt).y_label_formatter(&fmt).draw().plot()?;

    draw_lines(&mut chart, p, legend)?;
    // The reference lines over the data, the step marks over both.
    draw_ref_lines(&mut chart, p, legend, (x0, x1), (y0, y1))?;
    draw_marks(&mut chart, p, legend)?;
    if legend {
        draw_legend(&mut chart, ink)?;
    }
    Ok(())
}

/// The lines of a panel, a dot for a line of one point (unless it has marks).
fn draw_lines(chart: &mut Chart<'_>, p: &Panel, legend: bool) -> anyhow::Result<()> {
    for l in &p.lines {
        let anno = chart.draw_series(LineSeries::new(l.points.clone(), l.color.stroke_width(2))).plot()?;
        if legend && !l.label.is_empty() {
            anno.label(l.label.clone()).legend(legend_entry(l.color));
        }
        if l.points.len() == 1 && l.marks.is_none() {
            chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, 4, l.color.filled()))).plot()?;
        }
    }
    Ok(())
}

/// The dashed reference lines of a panel across its `x` or `y` range.
fn draw_ref_lines(
    chart: &mut Chart<'_>,
    p: &Panel,
    legend: bool,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> anyhow::Result<()> {
    for r in &p.refs {
        let pts =
            if r.vertical { vec![(r.value, y0), (r.value, y1)] } else { vec![(x0, r.value), (x1, r.value)] };
        let anno = chart.draw_series(DashedLineSeries::new(pts, 8, 6, r.color.stroke_width(2))).plot()?;
        if legend && !r.label.is_empty() {
            anno.label(r.label.clone()).legend(dashed_legend_entry(r.color));
        }
    }
    Ok(())
}

/// The step marks of the lines that have them: a dot within the limits, a red cross over.
fn draw_marks(chart: &mut Chart<'_>, p: &Panel, legend: bool) -> anyhow::Result<()> {
    let mut any_marks = false;
    for l in &p.lines {
        let Some(marks) = &l.marks else { continue };
        any_marks = true;
        let paired = || l.points.iter().zip(marks.iter());
        chart
            .draw_series(paired().filter(|(_, ok)| **ok).map(|(&pt, _)| Circle::new(pt, 5, l.color.filled())))
            .plot()?;
        chart
            .draw_series(
                paired().filter(|(_, ok)| !**ok).map(|(&pt, _)| Cross::new(pt, 6, RED_COLOR.stroke_width(3))),
            )
            .plot()?;
    }
    if legend && any_marks {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .plot()?
            .label("step within the limits")
            .legend(|(x, y)| Circle::new((x + 11, y), 5, GREY_COLOR.filled()));
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .plot()?
            .label("step over a limit")
            .legend(|(x, y)| Cross::new((x + 11, y), 6, RED_COLOR.stroke_width(3)));
    }
    Ok(())
}

/// Bars by category (groups side by side), the value over each bar.
pub(super) struct Bars {
    pub(super) caption: Option<String>,
    pub(super) y_desc: String,
    pub(super) categories: Vec<String>,
    /// (name, color, value per category; None where not measured).
    pub(super) groups: Vec<(String, RGBColor, Vec<Option<f64>>)>,
    pub(super) no_data: String,
}

/// Draws bars by category, groups side by side, the value over each bar and a legend (with
/// text, where there are two groups or more).
pub(super) fn bar_panel(area: &Area<'_>, ink: Ink, b: &Bars) -> anyhow::Result<()> {
    let values =
        || b.groups.iter().flat_map(|(_, _, v)| v.iter().flatten().copied()).filter(|v| v.is_finite());
    let n = b.categories.len();
    if n == 0 || values().next().is_none() {
        return no_data(area, ink, b.caption.as_deref(), &b.no_data);
    }
    let legend = ink.text && b.groups.len() >= 2;
    let Some((y0, y1)) = y_span(values(), if legend { 1.35 } else { 1.15 }) else {
        return no_data(area, ink, b.caption.as_deref(), &b.no_data);
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(16);
    if ink.text {
        if let Some(c) = &b.caption {
            builder.caption(c, ink.font(17));
        }
        builder.x_label_area_size(36).y_label_area_size(72);
    }
    let mut chart = builder.build_cartesian_2d(-0.5..(n as f64 - 0.5), y0..y1).plot()?;
    let x_fmt = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            b.categories.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let y_fmt = |v: &f64| axis_num(*v);
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh, ink, "", &b.y_desc);
    mesh.disable_x_mesh()
        .x_labels(n)
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()
        .plot()?;

    for g in 0..b.groups.len() {
        draw_bar_group(&mut chart, ink, b, g, legend, y1 - y0)?;
    }
    if legend {
        draw_legend(&mut chart, ink)?;
    }
    Ok(())
}

/// Group `g`'s bars, in its slot of each category, with their values over them (`height`: the
/// y range, for the gap) and its legend entry.
fn draw_bar_group(
    chart: &mut Chart<'_>,
    ink: Ink,
    b: &Bars,
    g: usize,
    legend: bool,
    height: f64,
) -> anyhow::Result<()> {
    let (name, color, vals) = &b.groups[g];
    let n = b.categories.len();
    let groups = b.groups.len().max(1) as f64;
    let width = 0.76 / groups;
    let left = |i: usize| i as f64 - 0.38 + g as f64 * width;
    let bars = vals.iter().enumerate().take(n).filter_map(|(i, v)| {
        v.filter(|v| v.is_finite())
            .map(|v| Rectangle::new([(left(i) + 0.01, 0.0), (left(i) + width - 0.01, v)], color.filled()))
    });
    let anno = chart.draw_series(bars).plot()?;
    if legend {
        let measured = vals.iter().any(|v| v.is_some());
        let label = if measured { name.clone() } else { format!("{name} ({NOT_MEASURED})") };
        let color = *color;
        anno.label(label).legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
    }
    if ink.text {
        let size = if groups > 1.0 { 12 } else { 14 };
        let texts = vals.iter().enumerate().take(n).filter_map(|(i, v)| {
            v.filter(|v| v.is_finite()).map(|v| {
                let style = ink.font(size).pos(Pos::new(HPos::Center, VPos::Bottom));
                Text::new(short_ms(v), (left(i) + width / 2.0, v + height * 0.01), style)
            })
        });
        chart.draw_series(texts).plot()?;
    }
    Ok(())
}

/// A histogram: bars of equal width, one per bin, the bin edges under the boundaries between
/// them, each bar's share of the total over it (where there are few enough bins), and the
/// axes described as given (x, y).
pub(super) fn histogram_panel(
    area: &Area<'_>,
    ink: Ink,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    h: &Histogram,
) -> anyhow::Result<()> {
    let n = h.counts.len();
    let total: u64 = h.counts.iter().sum();
    if n == 0 || total == 0 {
        return no_data(area, ink, Some(caption), "no data");
    }
    let max = h.counts.iter().copied().max().unwrap_or(0) as f64;
    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(20);
    if ink.text {
        builder.caption(caption, ink.font(17)).x_label_area_size(45).y_label_area_size(72);
    }
    let mut chart = builder.build_cartesian_2d(0.0..n as f64, 0.0..(max * 1.12).max(1.0)).plot()?;
    // Label every edge if they fit, else every k-th.
    let step = n.div_ceil(16).max(1);
    let edge = |v: &f64| {
        let k = v.round();
        if (v - k).abs() > 1e-6 || k < 0.0 || !(k as usize).is_multiple_of(step) {
            return String::new();
        }
        match k as usize {
            0 => "0".to_string(),
            k if k <= h.bounds.len() => h.bounds.get(k - 1).map(|b| axis_num(*b)).unwrap_or_default(),
            _ => "∞".to_string(),
        }
    };
    let y_fmt = |v: &f64| axis_num(*v);
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh, ink, x_desc, y_desc);
    mesh.disable_x_mesh().x_labels(n + 1).y_labels(6).x_label_formatter(&edge).y_label_formatter(&y_fmt);
    mesh.draw().plot()?;
    let bars = h.counts.iter().enumerate().map(|(i, &c)| {
        Rectangle::new([(i as f64 + 0.04, 0.0), (i as f64 + 0.96, c as f64)], TOLK_COLOR.mix(0.85).filled())
    });
    chart.draw_series(bars).plot()?;
    if ink.text {
        let texts = h.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, &c)| {
            let share = c as f64 * 100.0 / total as f64;
            let label = match share {
                s if s >= 1.0 => format!("{s:.0}%"),
                s if s >= 0.1 => format!("{s:.1}%"),
                _ => "<0.1%".to_string(),
            };
            let style = ink.font(12).pos(Pos::new(HPos::Center, VPos::Bottom));
            Text::new(label, (i as f64 + 0.5, c as f64 + max * 0.01), style)
        });
        if n <= 24 {
            chart.draw_series(texts).plot()?;
        }
    }
    Ok(())
}
