//! Writes the reports of `tolk-loadtest`: this file owns how a [`RunReport`], a
//! [`CapacityReport`] and a [`CompareReport`] (the data of `results.rs`) are rendered into a report
//! directory: the JSON (the data as is, to read back), the Markdown (tables for a person, also
//! printed as the summary on stdout) and the PNG plots (drawn with `plotters`, text with a TTF font
//! found at run time; without one the plots are written without text).
//!
//! Nothing here panics on odd data: empty series give a plot saying "no data", a
//! [`Percentiles`] with no values renders as "not measured", non-finite numbers as "n/a".

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontFamily, FontStyle, register_font};
use serde::Serialize;

use crate::results::{CapacityReport, CapacityStep, CompareReport, Histogram, Percentiles, RunReport};

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

const TOLK_COLOR: RGBColor = RGBColor(31, 119, 180);
const JANUS_COLOR: RGBColor = RGBColor(230, 120, 20);
const GREEN_COLOR: RGBColor = RGBColor(44, 160, 44);
const RED_COLOR: RGBColor = RGBColor(214, 39, 40);
const PURPLE_COLOR: RGBColor = RGBColor(148, 103, 189);
const GREY_COLOR: RGBColor = RGBColor(120, 120, 120);
const FRAME_COLOR: RGBColor = RGBColor(200, 200, 200);

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// Writes `report.json`, `report.md`, `latency.png` (relay-added latency per second),
/// `timeline.png` (listeners, packets/s and CPU over time) and `histogram.png` (the latency
/// histogram and the time to first audio) into `dir`, creating it if missing. Returns the files
/// written, in that order.
pub fn write_run(dir: &Path, report: &RunReport) -> anyhow::Result<Vec<PathBuf>> {
    write_run_with(dir, report, Ink::detect())
}

/// Writes `capacity.json`, `capacity.md` and `capacity.png` (loss, p99 latency and CPU against
/// listeners, with the limits) into `dir`, creating it if missing. Returns the files written.
pub fn write_capacity(dir: &Path, report: &CapacityReport) -> anyhow::Result<Vec<PathBuf>> {
    write_capacity_with(dir, report, Ink::detect())
}

/// Writes `compare.json`, `compare.md` and `compare.png` (latency percentiles of Tolk and Janus
/// side by side, and both capacity curves if there are any) into `dir`, creating it if missing.
/// Returns the files written.
pub fn write_compare(dir: &Path, report: &CompareReport) -> anyhow::Result<Vec<PathBuf>> {
    write_compare_with(dir, report, Ink::detect())
}

fn write_run_with(dir: &Path, report: &RunReport, ink: Ink) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = write_json(dir, "report.json", report)?;
    let md = write_text(dir, "report.md", &markdown_run(report))?;
    let latency = write_plot(dir, "latency.png", ink, |area, ink| plot_latency(area, ink, report))?;
    let timeline = write_plot(dir, "timeline.png", ink, |area, ink| plot_timeline(area, ink, report))?;
    let histogram = write_plot(dir, "histogram.png", ink, |area, ink| plot_histogram(area, ink, report))?;
    Ok(vec![json, md, latency, timeline, histogram])
}

fn write_capacity_with(dir: &Path, report: &CapacityReport, ink: Ink) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = write_json(dir, "capacity.json", report)?;
    let md = write_text(dir, "capacity.md", &markdown_capacity(report))?;
    let png = write_plot(dir, "capacity.png", ink, |area, ink| plot_capacity(area, ink, report))?;
    Ok(vec![json, md, png])
}

fn write_compare_with(dir: &Path, report: &CompareReport, ink: Ink) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = write_json(dir, "compare.json", report)?;
    let md = write_text(dir, "compare.md", &markdown_compare(report))?;
    let png = write_plot(dir, "compare.png", ink, |area, ink| plot_compare(area, ink, report))?;
    Ok(vec![json, md, png])
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating the report directory {}", dir.display()))
}

fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> anyhow::Result<PathBuf> {
    let mut text = serde_json::to_string_pretty(value).context("serialising the report")?;
    text.push('\n');
    write_text(dir, name, &text)
}

fn write_text(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------------

/// The Markdown report of one run: title, tables of every measure, notes, links to the plots.
pub fn markdown_run(report: &RunReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Load run: {} against {} ({}), {}\n",
        or_dash(&report.profile),
        or_dash(&report.relay),
        or_dash(&report.target),
        fmt_date(&report.started_at)
    );
    let _ = writeln!(md, "Duration: {}.\n", fmt_duration(report.duration_s));

    // Listeners.
    let j = &report.joins;
    md.push_str("## Listeners\n\n");
    md.push_str("| Planned | Joined | Failed | Peak receiving at once |\n|---:|---:|---:|---:|\n");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} |\n",
        fmt_count(j.planned.into()),
        fmt_count(j.joined.into()),
        fmt_count(j.failed.into()),
        fmt_count(j.peak.into())
    );
    if !j.errors.is_empty() {
        md.push_str("Top reasons for failed joins:\n\n| Reason | Listeners |\n|---|---:|\n");
        const SHOWN: usize = 5;
        for (reason, n) in j.errors.iter().take(SHOWN) {
            let _ = writeln!(md, "| {} | {} |", cell(reason), fmt_count((*n).into()));
        }
        if j.errors.len() > SHOWN {
            let rest: u64 = j.errors.iter().skip(SHOWN).map(|(_, n)| u64::from(*n)).sum();
            let _ = writeln!(
                md,
                "| {} other reasons | {} |",
                fmt_count((j.errors.len() - SHOWN) as u64),
                fmt_count(rest)
            );
        }
        md.push('\n');
    }

    // Percentiles.
    md.push_str("## Latency and delivery\n\n");
    md.push_str(PERCENTILE_HEADER);
    percentile_row(&mut md, "Time to first audio (WHEP POST to first packet)", &report.first_audio_ms);
    percentile_row(
        &mut md,
        "Relay-added latency (send stamp to the listener socket's kernel receive time)",
        &report.latency_ms,
    );
    percentile_row(&mut md, "Jitter (RFC 3550, per listener at the end)", &report.jitter_ms);
    percentile_row(&mut md, "Channel switch (request to first packet)", &report.switch_ms);
    percentile_row(&mut md, "Handover gap (old voice's last to new voice's first)", &report.handover_gap_ms);
    md.push('\n');

    // Loss and throughput.
    let l = &report.loss;
    md.push_str("## Loss and throughput\n\n");
    md.push_str(
        "| Packets expected | Received | Lost | Loss | Packets/s received (full load) |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} |\n",
        fmt_count(l.expected),
        fmt_count(l.received),
        fmt_count(l.lost),
        fmt_percent(l.percent),
        fmt_num(report.packets_per_s, 0)
    );

    // Relay.
    md.push_str("## Relay\n\n");
    match &report.relay_usage {
        None => md.push_str("Relay CPU and memory: not measured (no relay process to watch).\n\n"),
        Some(u) => {
            md.push_str(
                "| Process CPU | CPU per 1,000 listeners | RSS at start | RSS peak | RSS per listener |\n\
                 |---:|---:|---:|---:|---:|\n",
            );
            let per_1000 = cpu_per_1000(report)
                .map(|c| format!("{} of a core", fmt_cpu(c)))
                .unwrap_or_else(|| "n/a".to_string());
            let _ = writeln!(
                md,
                "| {} of a core | {} | {} MiB | {} MiB | {} KiB |\n",
                fmt_cpu(u.cpu_percent),
                per_1000,
                fmt_num(u.rss_mib_start, 1),
                fmt_num(u.rss_mib_peak, 1),
                fmt_num(u.rss_kib_per_listener, 1)
            );
            if !u.threads.is_empty() {
                let mut threads: Vec<_> = u.threads.iter().collect();
                threads.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
                const SHOWN: usize = 12;
                let _ = writeln!(md, "Relay threads (pid {}), busiest first:\n", u.pid);
                md.push_str("| Thread | CPU |\n|---|---:|\n");
                for t in threads.iter().take(SHOWN) {
                    let _ = writeln!(md, "| {} | {} |", cell(or_dash(&t.name)), fmt_cpu(t.cpu_percent));
                }
                if threads.len() > SHOWN {
                    let rest: f64 = threads.iter().skip(SHOWN).map(|t| t.cpu_percent).sum();
                    let _ = writeln!(md, "| {} other threads | {} |", threads.len() - SHOWN, fmt_cpu(rest));
                }
                md.push('\n');
            }
        }
    }

    // Generator.
    md.push_str("## Load generator\n\n");
    md.push_str("| CPU | Listener stacks | Audio checked (as expected / sampled) |\n|---:|---|---:|\n");
    let (ok, sampled) = report.audio_checked;
    let audio = if sampled == 0 {
        "none sampled".to_string()
    } else {
        format!("{} / {}", fmt_count(ok.into()), fmt_count(sampled.into()))
    };
    let _ = writeln!(
        md,
        "| {} of a core | {} | {} |\n",
        fmt_cpu(report.generator_cpu_percent),
        cell(&fmt_stacks(&report.listener_stacks)),
        audio
    );

    notes(&mut md, "Notes", report.notes.iter().map(|n| n.to_string()));

    md.push_str("## Plots\n\n");
    md.push_str("![Relay-added latency per second](latency.png)\n\n");
    md.push_str("![Listeners, packets/s and CPU over time](timeline.png)\n\n");
    md.push_str("![Latency histogram and time to first audio](histogram.png)\n");
    md
}

/// The Markdown report of a capacity search: the result, every step, notes, a link to the plot.
pub fn markdown_capacity(report: &CapacityReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Capacity: {}, {}\n", or_dash(&report.relay), fmt_date(&report.started_at));
    let _ = writeln!(
        md,
        "**{} listeners per core** within loss ≤ {} and p99 relay-added latency ≤ {}.\n",
        fmt_count(report.listeners_per_core.into()),
        fmt_percent(report.max_loss_percent),
        fmt_ms(report.max_p99_ms)
    );
    let _ = writeln!(md, "Stopped because: {}\n", one_line(or_dash(&report.stopped_because)));
    md.push_str("## Steps\n\n");
    if report.steps.is_empty() {
        md.push_str("No step ran.\n\n");
    } else {
        md.push_str(
            "| Listeners | Loss | p99 latency | Relay CPU | Generator CPU | Within limits |\n\
             |---:|---:|---:|---:|---:|:---:|\n",
        );
        for s in &report.steps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                fmt_count(s.listeners.into()),
                fmt_percent(s.loss_percent),
                fmt_ms(s.latency_p99),
                fmt_cpu(s.relay_cpu_percent),
                fmt_cpu(s.generator_cpu_percent),
                if s.passed { "yes" } else { "**no**" }
            );
        }
        md.push('\n');
    }
    notes(&mut md, "Notes", report.notes.iter().map(|n| n.to_string()));
    md.push_str("## Plot\n\n![Loss, p99 latency and CPU against listeners](capacity.png)\n");
    md
}

/// The Markdown of a comparison: a table Tolk against Janus with the ratios, the capacity
/// results, notes, a link to the plot.
pub fn markdown_compare(report: &CompareReport) -> String {
    let (t, j) = (&report.tolk, &report.janus);
    let mut md = String::new();
    let profile = if t.profile == j.profile || j.profile.is_empty() {
        or_dash(&t.profile).to_string()
    } else {
        format!("{} / {}", or_dash(&t.profile), j.profile)
    };
    let _ = writeln!(md, "# Tolk vs Janus: {}, {}\n", profile, fmt_date(&t.started_at));
    let _ = writeln!(md, "Tolk at {}, Janus at {}.\n", or_dash(&t.target), or_dash(&j.target));

    md.push_str("| Measure | Tolk | Janus | Ratio |\n|---|---:|---:|---:|\n");
    let mut row = |name: &str, tolk: String, janus: String, ratio: String| {
        let _ = writeln!(md, "| {name} | {tolk} | {janus} | {ratio} |");
    };
    row(
        "Listeners joined / planned",
        format!("{} / {}", fmt_count(t.joins.joined.into()), fmt_count(t.joins.planned.into())),
        format!("{} / {}", fmt_count(j.joins.joined.into()), fmt_count(j.joins.planned.into())),
        String::new(),
    );
    type Pick = fn(&Percentiles) -> f64;
    type Field = fn(&RunReport) -> &Percentiles;
    let pctl_rows: [(&str, Field, Pick, Option<f64>); 8] = [
        ("Time to first audio p50", |r| &r.first_audio_ms, |p| p.p50, None),
        ("Time to first audio p99", |r| &r.first_audio_ms, |p| p.p99, None),
        ("Relay-added latency p50", |r| &r.latency_ms, |p| p.p50, Some(report.latency_p50_ratio)),
        ("Relay-added latency p95", |r| &r.latency_ms, |p| p.p95, None),
        ("Relay-added latency p99", |r| &r.latency_ms, |p| p.p99, Some(report.latency_p99_ratio)),
        ("Relay-added latency max", |r| &r.latency_ms, |p| p.max, None),
        ("Jitter p99", |r| &r.jitter_ms, |p| p.p99, None),
        ("Handover gap p99", |r| &r.handover_gap_ms, |p| p.p99, None),
    ];
    for (name, field, pick, given) in pctl_rows {
        let (pt, pj) = (field(t), field(j));
        let value = |p: &Percentiles| if p.count == 0 { NOT_MEASURED.to_string() } else { fmt_ms(pick(p)) };
        let ratio = match given {
            Some(r) => fmt_ratio(Some(r), "Janus / Tolk"),
            None if pt.count > 0 && pj.count > 0 => fmt_ratio(div(pick(pj), pick(pt)), "Janus / Tolk"),
            None => String::new(),
        };
        row(name, value(pt), value(pj), ratio);
    }
    row("Loss", fmt_percent(t.loss.percent), fmt_percent(j.loss.percent), String::new());
    row(
        "Packets/s received",
        fmt_num(t.packets_per_s, 0),
        fmt_num(j.packets_per_s, 0),
        fmt_ratio(div(j.packets_per_s, t.packets_per_s), "Janus / Tolk"),
    );
    let cpu = |r: &RunReport| {
        r.relay_usage
            .as_ref()
            .map_or(NOT_MEASURED.to_string(), |u| format!("{} of a core", fmt_cpu(u.cpu_percent)))
    };
    row("Relay CPU (process)", cpu(t), cpu(j), String::new());
    let per_1000 = |r: &RunReport| cpu_per_1000(r).map_or(NOT_MEASURED.to_string(), fmt_cpu);
    row(
        "Relay CPU per 1,000 listeners",
        per_1000(t),
        per_1000(j),
        fmt_ratio(report.cpu_per_listener_ratio, "Janus / Tolk"),
    );
    let rss = |r: &RunReport| {
        r.relay_usage
            .as_ref()
            .map_or(NOT_MEASURED.to_string(), |u| format!("{} KiB", fmt_num(u.rss_kib_per_listener, 1)))
    };
    row("Relay RSS per listener", rss(t), rss(j), String::new());
    let per_core = |c: &Option<CapacityReport>| {
        c.as_ref().map_or(NOT_MEASURED.to_string(), |c| fmt_count(c.listeners_per_core.into()))
    };
    row(
        "Listeners per core (capacity search)",
        per_core(&report.tolk_capacity),
        per_core(&report.janus_capacity),
        fmt_ratio(report.listeners_per_core_ratio, "Tolk / Janus"),
    );
    md.push('\n');

    if report.tolk_capacity.is_some() || report.janus_capacity.is_some() {
        md.push_str("## Capacity searches\n\n");
        md.push_str(
            "| Relay | Listeners per core | Limits | Steps | Stopped because |\n|---|---:|---|---:|---|\n",
        );
        for (name, cap) in [("Tolk", &report.tolk_capacity), ("Janus", &report.janus_capacity)] {
            match cap {
                Some(c) => {
                    let _ = writeln!(
                        md,
                        "| {name} | {} | loss ≤ {}, p99 ≤ {} | {} | {} |",
                        fmt_count(c.listeners_per_core.into()),
                        fmt_percent(c.max_loss_percent),
                        fmt_ms(c.max_p99_ms),
                        c.steps.len(),
                        cell(or_dash(&c.stopped_because))
                    );
                }
                None => {
                    let _ = writeln!(md, "| {name} | {NOT_MEASURED} | | | |");
                }
            }
        }
        md.push('\n');
    }

    let all_notes = report
        .notes
        .iter()
        .map(|n| n.to_string())
        .chain(t.notes.iter().map(|n| format!("Tolk run: {n}")))
        .chain(j.notes.iter().map(|n| format!("Janus run: {n}")));
    notes(&mut md, "Notes", all_notes);
    md.push_str("## Plot\n\n![Latency percentiles and capacity curves, Tolk and Janus](compare.png)\n");
    md
}

const NOT_MEASURED: &str = "not measured";
const PERCENTILE_HEADER: &str =
    "| Measure | p50 | p95 | p99 | max | Samples |\n|---|---:|---:|---:|---:|---:|\n";

fn percentile_row(md: &mut String, name: &str, p: &Percentiles) {
    if p.count == 0 {
        let _ = writeln!(md, "| {name} | {NOT_MEASURED} | – | – | – | 0 |");
    } else {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            fmt_ms(p.p50),
            fmt_ms(p.p95),
            fmt_ms(p.p99),
            fmt_ms(p.max),
            fmt_count(p.count)
        );
    }
}

fn notes(md: &mut String, title: &str, notes: impl Iterator<Item = String>) {
    let mut any = false;
    for n in notes {
        if !any {
            let _ = writeln!(md, "## {title}\n");
            any = true;
        }
        let _ = writeln!(md, "- {}", one_line(&n));
    }
    if any {
        md.push('\n');
    }
}

/// Relay CPU per 1,000 listeners (percent of one core), from the run's mean CPU and its peak.
fn cpu_per_1000(r: &RunReport) -> Option<f64> {
    let u = r.relay_usage.as_ref()?;
    div(u.cpu_percent * 1000.0, f64::from(r.joins.peak))
}

fn fmt_stacks(stacks: &[(String, u32)]) -> String {
    if stacks.is_empty() {
        return "–".to_string();
    }
    stacks
        .iter()
        .map(|(name, n)| format!("{}: {}", or_dash(name), fmt_count((*n).into())))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Number formatting
// ---------------------------------------------------------------------------------------------

/// A division that is None where it means nothing (a zero or non-finite divisor or result).
fn div(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (b != 0.0 && r.is_finite()).then_some(r)
}

/// Thousands separators: 1234567 → "1,234,567".
fn fmt_count(n: u64) -> String {
    group_digits(&n.to_string())
}

fn group_digits(digits: &str) -> String {
    let len = digits.len();
    let mut out = String::with_capacity(len + len / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with `decimals` decimals and thousands separators; "n/a" if not finite.
fn fmt_num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let negative = x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0');
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&group_digits(int));
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Milliseconds: 2 decimals below 10, 1 below 100, whole above (with separators).
fn fmt_ms(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let decimals = match x.abs() {
        a if a < 10.0 => 2,
        a if a < 100.0 => 1,
        _ => 0,
    };
    format!("{} ms", fmt_num(x, decimals))
}

/// A share in percent, precise enough for small losses.
fn fmt_percent(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let decimals = match x.abs() {
        0.0 => 0,
        a if a < 0.1 => 3,
        a if a < 10.0 => 2,
        _ => 1,
    };
    format!("{} %", fmt_num(x, decimals))
}

/// CPU in percent of one core.
fn fmt_cpu(x: f64) -> String {
    format!("{} %", fmt_num(x, 1))
}

fn fmt_ratio(r: Option<f64>, what: &str) -> String {
    match r {
        Some(r) if r.is_finite() && r > 0.0 => format!("{}× ({what})", fmt_num(r, 2)),
        _ => String::new(),
    }
}

fn fmt_duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "n/a".to_string();
    }
    if s < 60.0 {
        return format!("{} s", fmt_num(s, 1));
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 { format!("{h} h {m} min {sec} s") } else { format!("{m} min {sec} s") }
}

/// An RFC 3339 time as "YYYY-MM-DD HH:MM:SS UTC"; anything else as it is.
fn fmt_date(s: &str) -> String {
    if s.trim().is_empty() {
        return "date unknown".to_string();
    }
    match chrono::DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => s.to_string(),
    }
}

/// Short numbers for plot axes: 1500 → "1.5k", 2000000 → "2M", 0.25 → "0.25".
fn axis_num(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    let trimmed = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    let s = if a >= 1e6 {
        format!("{}M", trimmed(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        fmt_num(v, 0)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trimmed(format!("{v:.1}"))
    } else {
        trimmed(format!("{v:.2}"))
    };
    if s == "-0" { "0".to_string() } else { s }
}

fn or_dash(s: &str) -> &str {
    if s.trim().is_empty() { "–" } else { s }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Text made safe for a Markdown table cell.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

// ---------------------------------------------------------------------------------------------
// Plots: fonts and common parts
// ---------------------------------------------------------------------------------------------

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Whether the plots can have text, and in which font family.
#[derive(Clone, Copy)]
struct Ink {
    text: bool,
    family: &'static str,
}

impl Ink {
    /// Text if a font file could be loaded and registered (done once per process).
    fn detect() -> Ink {
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
fn write_plot(
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
fn titled<'a>(area: &Area<'a>, ink: Ink, title: &str) -> anyhow::Result<Area<'a>> {
    if ink.text {
        let below = area.titled(title, ink.bold(22)).plot()?;
        Ok(below.margin(4, 0, 0, 0))
    } else {
        Ok(area.margin(10, 0, 0, 0))
    }
}

/// A framed area saying "no data" (or `message`), with the caption if any.
fn no_data(area: &Area<'_>, ink: Ink, caption: Option<&str>, message: &str) -> anyhow::Result<()> {
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
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    /// Per point: within the limits (a filled dot) or not (a red cross).
    marks: Option<Vec<bool>>,
}

impl Line {
    fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
        let points = points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        Line { label: label.into(), color, points, marks: None }
    }
}

/// A dashed reference line across the panel: a limit (horizontal) or a result (vertical).
struct RefLine {
    label: String,
    color: RGBColor,
    value: f64,
    vertical: bool,
}

/// A panel of lines over a numeric x axis.
struct Panel {
    caption: Option<String>,
    x_desc: String,
    y_desc: String,
    lines: Vec<Line>,
    refs: Vec<RefLine>,
    /// Fixed x range (to line up stacked panels); else from the data.
    x_range: Option<(f64, f64)>,
    legend: bool,
    x_label_area: u32,
    no_data: String,
}

impl Panel {
    fn new(x_desc: &str, y_desc: &str) -> Panel {
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
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
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

/// Draws a panel of lines (with dots where a line has a single point), its reference lines and
/// its legend (with text, where there are two entries or more).
fn line_panel(area: &Area<'_>, ink: Ink, p: &Panel) -> anyhow::Result<()> {
    let points = || p.lines.iter().flat_map(|l| l.points.iter().copied());
    if points().next().is_none() {
        return no_data(area, ink, p.caption.as_deref(), &p.no_data);
    }
    let x_refs = p.refs.iter().filter(|r| r.vertical).map(|r| r.value);
    let y_refs = p.refs.iter().filter(|r| !r.vertical).map(|r| r.value);
    let entries = p.lines.iter().filter(|l| !l.label.is_empty()).count()
        + p.refs.iter().filter(|r| !r.label.is_empty()).count()
        + p.lines.iter().filter(|l| l.marks.is_some()).count().min(1) * 2;
    let legend = ink.text && p.legend && entries >= 2;
    let Some((x0, x1)) = p.x_range.or_else(|| span(points().map(|(x, _)| x).chain(x_refs))) else {
        return no_data(area, ink, p.caption.as_deref(), &p.no_data);
    };
    let headroom = if legend { 1.1 + 0.12 * entries as f64 } else { 1.08 };
    let Some((y0, y1)) = y_span(points().map(|(_, y)| y).chain(y_refs), headroom) else {
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

    for l in &p.lines {
        let anno = chart.draw_series(LineSeries::new(l.points.clone(), l.color.stroke_width(2))).plot()?;
        if legend && !l.label.is_empty() {
            anno.label(l.label.clone()).legend(legend_entry(l.color));
        }
        if l.points.len() == 1 && l.marks.is_none() {
            chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, 4, l.color.filled()))).plot()?;
        }
    }
    // The reference lines over the data, the step marks over both.
    for r in &p.refs {
        let pts =
            if r.vertical { vec![(r.value, y0), (r.value, y1)] } else { vec![(x0, r.value), (x1, r.value)] };
        let anno = chart.draw_series(DashedLineSeries::new(pts, 8, 6, r.color.stroke_width(2))).plot()?;
        if legend && !r.label.is_empty() {
            anno.label(r.label.clone()).legend(dashed_legend_entry(r.color));
        }
    }
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
    if legend {
        draw_legend(&mut chart, ink)?;
    }
    Ok(())
}

/// Bars by category (groups side by side), the value over each bar.
struct Bars {
    caption: Option<String>,
    y_desc: String,
    categories: Vec<String>,
    /// (name, color, value per category; None where not measured).
    groups: Vec<(String, RGBColor, Vec<Option<f64>>)>,
    no_data: String,
}

fn bar_panel(area: &Area<'_>, ink: Ink, b: &Bars) -> anyhow::Result<()> {
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

    let groups = b.groups.len().max(1) as f64;
    let width = 0.76 / groups;
    for (g, (name, color, vals)) in b.groups.iter().enumerate() {
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
            anno.label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
        }
        if ink.text {
            let size = if groups > 1.0 { 12 } else { 14 };
            let texts = vals.iter().enumerate().take(n).filter_map(|(i, v)| {
                v.filter(|v| v.is_finite()).map(|v| {
                    let style = ink.font(size).pos(Pos::new(HPos::Center, VPos::Bottom));
                    Text::new(short_ms(v), (left(i) + width / 2.0, v + (y1 - y0) * 0.01), style)
                })
            });
            chart.draw_series(texts).plot()?;
        }
    }
    if legend {
        draw_legend(&mut chart, ink)?;
    }
    Ok(())
}

/// Milliseconds for a label on a bar: like `fmt_ms` without the unit.
fn short_ms(v: f64) -> String {
    fmt_ms(v).trim_end_matches(" ms").to_string()
}

fn percentile_values(p: &Percentiles) -> Vec<Option<f64>> {
    if p.count == 0 { vec![None; 4] } else { vec![Some(p.p50), Some(p.p95), Some(p.p99), Some(p.max)] }
}

fn percentile_names() -> Vec<String> {
    ["p50", "p95", "p99", "max"].iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Plots of a run
// ---------------------------------------------------------------------------------------------

fn run_title(what: &str, r: &RunReport) -> String {
    match (r.profile.trim(), r.relay.trim()) {
        ("", "") => what.to_string(),
        (profile, relay) => format!("{what} — {} against {}", or_dash(profile), or_dash(relay)),
    }
}

/// latency.png: relay-added latency p50 and p99 per second, and the whole run's p99.
fn plot_latency(root: &Area<'_>, ink: Ink, r: &RunReport) -> anyhow::Result<()> {
    let area = titled(root, ink, &run_title("Relay-added latency per second", r))?;
    let measured = || r.timeline.iter().filter(|s| s.latency_p50 > 0.0 || s.latency_p99 > 0.0);
    let mut p = Panel::new("time since the start, s", "latency, ms");
    p.lines.push(Line::new(
        "p50 in the second",
        TOLK_COLOR,
        measured().map(|s| (s.t, s.latency_p50)).collect(),
    ));
    p.lines.push(Line::new(
        "p99 in the second",
        RED_COLOR,
        measured().map(|s| (s.t, s.latency_p99)).collect(),
    ));
    if r.latency_ms.count > 0 && measured().next().is_some() {
        p.refs.push(RefLine {
            label: format!("p99 of the run: {}", fmt_ms(r.latency_ms.p99)),
            color: PURPLE_COLOR,
            value: r.latency_ms.p99,
            vertical: false,
        });
    }
    line_panel(&area, ink, &p)
}

/// timeline.png: listeners, packets/s, relay and generator CPU over time, stacked.
fn plot_timeline(root: &Area<'_>, ink: Ink, r: &RunReport) -> anyhow::Result<()> {
    let area = titled(root, ink, &run_title("Timeline", r))?;
    let tl = &r.timeline;
    let Some(x_range) = span(tl.iter().map(|s| s.t)) else {
        return no_data(&area, ink, None, "no data");
    };
    let x_range = Some((x_range.0.min(0.0), x_range.1));
    let rows = area.split_evenly((3, 1));
    let (Some(a1), Some(a2), Some(a3)) = (rows.first(), rows.get(1), rows.get(2)) else {
        return Ok(());
    };

    let mut p1 = Panel::new("", "listeners");
    p1.lines.push(Line::new(
        "listeners",
        TOLK_COLOR,
        tl.iter().map(|s| (s.t, f64::from(s.listeners))).collect(),
    ));
    p1.x_range = x_range;
    p1.x_label_area = 26;
    line_panel(a1, ink, &p1)?;

    let mut p2 = Panel::new("", "packets/s received");
    p2.lines.push(Line::new("packets/s", GREEN_COLOR, tl.iter().map(|s| (s.t, s.packets_per_s)).collect()));
    p2.x_range = x_range;
    p2.x_label_area = 26;
    line_panel(a2, ink, &p2)?;

    let mut p3 = Panel::new("time since the start, s", "CPU, % of a core");
    let relay: Vec<_> = tl.iter().filter_map(|s| s.relay_cpu_percent.map(|c| (s.t, c))).collect();
    let relay_label = if relay.is_empty() { format!("relay ({NOT_MEASURED})") } else { "relay".to_string() };
    p3.lines.push(Line::new(relay_label, RED_COLOR, relay));
    p3.lines.push(Line::new(
        "generator",
        PURPLE_COLOR,
        tl.iter().map(|s| (s.t, s.generator_cpu_percent)).collect(),
    ));
    p3.x_range = x_range;
    line_panel(a3, ink, &p3)
}

/// histogram.png: the relay-added latency histogram (left) and the time to first audio (right).
fn plot_histogram(root: &Area<'_>, ink: Ink, r: &RunReport) -> anyhow::Result<()> {
    let area = titled(root, ink, &run_title("Latency distribution and time to first audio", r))?;
    let (left, right) = area.split_horizontally(640);
    let caption = if r.latency_ms.count > 0 {
        format!("Relay-added latency: p50 {}, p99 {}", fmt_ms(r.latency_ms.p50), fmt_ms(r.latency_ms.p99))
    } else {
        "Relay-added latency".to_string()
    };
    histogram_panel(&left, ink, &caption, &r.latency_histogram)?;
    let bars = Bars {
        caption: Some("Time to first audio".to_string()),
        y_desc: "ms".to_string(),
        categories: percentile_names(),
        groups: vec![("first audio".to_string(), GREEN_COLOR, percentile_values(&r.first_audio_ms))],
        no_data: NOT_MEASURED.to_string(),
    };
    bar_panel(&right, ink, &bars)
}

/// Bars of equal width, one per bin, the bin edges under the boundaries between them.
fn histogram_panel(area: &Area<'_>, ink: Ink, caption: &str, h: &Histogram) -> anyhow::Result<()> {
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
    style_mesh(&mut mesh, ink, "relay-added latency, ms (bin edges)", "packets");
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

// ---------------------------------------------------------------------------------------------
// Plots of a capacity search and of a comparison
// ---------------------------------------------------------------------------------------------

fn sorted_steps(steps: &[CapacityStep]) -> Vec<&CapacityStep> {
    let mut s: Vec<_> = steps.iter().collect();
    s.sort_by_key(|s| s.listeners);
    s
}

fn step_points(steps: &[&CapacityStep], y: fn(&CapacityStep) -> f64) -> Vec<(f64, f64)> {
    steps.iter().map(|s| (f64::from(s.listeners), y(s))).collect()
}

fn listeners_range(caps: &[&CapacityReport]) -> Option<(f64, f64)> {
    let max = caps.iter().flat_map(|c| c.steps.iter().map(|s| f64::from(s.listeners))).fold(0.0, f64::max);
    (max > 0.0).then_some((0.0, max * 1.05))
}

/// capacity.png: loss, p99 and CPU against listeners, the limits and the result as lines.
fn plot_capacity(root: &Area<'_>, ink: Ink, c: &CapacityReport) -> anyhow::Result<()> {
    let title = format!(
        "Capacity search — {}: {} listeners per core",
        or_dash(&c.relay),
        fmt_count(c.listeners_per_core.into())
    );
    let area = titled(root, ink, &title)?;
    let steps = sorted_steps(&c.steps);
    if steps.is_empty() {
        return no_data(&area, ink, None, "no data: no step ran");
    }
    let x_range = listeners_range(&[c]);
    let marks: Vec<bool> = steps.iter().map(|s| s.passed).collect();
    let result_line = |with_label: bool| RefLine {
        label: if with_label {
            format!("{} listeners per core", fmt_count(c.listeners_per_core.into()))
        } else {
            String::new()
        },
        color: GREEN_COLOR,
        value: f64::from(c.listeners_per_core),
        vertical: true,
    };
    let rows = area.split_evenly((3, 1));
    let (Some(a1), Some(a2), Some(a3)) = (rows.first(), rows.get(1), rows.get(2)) else {
        return Ok(());
    };

    let mut p1 = Panel::new("", "loss, %");
    let mut loss = Line::new("loss", TOLK_COLOR, step_points(&steps, |s| s.loss_percent));
    loss.marks = Some(marks.clone());
    p1.lines.push(loss);
    p1.refs.push(RefLine {
        label: format!("limit {}", fmt_percent(c.max_loss_percent)),
        color: RED_COLOR,
        value: c.max_loss_percent,
        vertical: false,
    });
    if c.listeners_per_core > 0 {
        p1.refs.push(result_line(true));
    }
    p1.x_range = x_range;
    p1.x_label_area = 26;
    line_panel(a1, ink, &p1)?;

    let mut p2 = Panel::new("", "p99 latency, ms");
    let mut p99 = Line::new("p99", TOLK_COLOR, step_points(&steps, |s| s.latency_p99));
    p99.marks = Some(marks);
    p2.lines.push(p99);
    p2.refs.push(RefLine {
        label: format!("limit {}", fmt_ms(c.max_p99_ms)),
        color: RED_COLOR,
        value: c.max_p99_ms,
        vertical: false,
    });
    if c.listeners_per_core > 0 {
        p2.refs.push(result_line(false));
    }
    p2.legend = false;
    p2.x_range = x_range;
    p2.x_label_area = 26;
    line_panel(a2, ink, &p2)?;

    let mut p3 = Panel::new("listeners", "CPU, % of a core");
    p3.lines.push(Line::new("relay", RED_COLOR, step_points(&steps, |s| s.relay_cpu_percent)));
    p3.lines.push(Line::new("generator", PURPLE_COLOR, step_points(&steps, |s| s.generator_cpu_percent)));
    if c.listeners_per_core > 0 {
        p3.refs.push(result_line(false));
    }
    p3.x_range = x_range;
    line_panel(a3, ink, &p3)
}

/// compare.png: latency percentiles side by side; the capacity curves of both on the right.
fn plot_compare(root: &Area<'_>, ink: Ink, c: &CompareReport) -> anyhow::Result<()> {
    let title = format!("Tolk vs Janus — {}", or_dash(&c.tolk.profile));
    let area = titled(root, ink, &title)?;
    let caps: Vec<(&str, RGBColor, &CapacityReport)> =
        [("Tolk", TOLK_COLOR, c.tolk_capacity.as_ref()), ("Janus", JANUS_COLOR, c.janus_capacity.as_ref())]
            .into_iter()
            .filter_map(|(n, col, cap)| cap.map(|cap| (n, col, cap)))
            .collect();
    let bars = Bars {
        caption: Some("Relay-added latency".to_string()),
        y_desc: "ms".to_string(),
        categories: percentile_names(),
        groups: vec![
            ("Tolk".to_string(), TOLK_COLOR, percentile_values(&c.tolk.latency_ms)),
            ("Janus".to_string(), JANUS_COLOR, percentile_values(&c.janus.latency_ms)),
        ],
        no_data: format!("relay-added latency {NOT_MEASURED}"),
    };
    if caps.is_empty() {
        return bar_panel(&area, ink, &bars);
    }
    let (left, right) = area.split_horizontally(470);
    bar_panel(&left, ink, &bars)?;

    let x_range = listeners_range(&caps.iter().map(|(_, _, c)| *c).collect::<Vec<_>>());
    let rows = right.split_evenly((3, 1));
    let (Some(a1), Some(a2), Some(a3)) = (rows.first(), rows.get(1), rows.get(2)) else {
        return Ok(());
    };
    let curves = |y: fn(&CapacityStep) -> f64| -> Vec<Line> {
        caps.iter()
            .map(|(name, color, cap)| Line::new(*name, *color, step_points(&sorted_steps(&cap.steps), y)))
            .collect()
    };
    let limits = caps.first().map(|(_, _, cap)| (cap.max_loss_percent, cap.max_p99_ms));

    let mut p1 = Panel::new("", "loss, %");
    p1.caption = Some("Capacity searches".to_string());
    p1.lines = curves(|s| s.loss_percent);
    if let Some((loss, _)) = limits {
        p1.refs.push(RefLine { label: "limit".to_string(), color: RED_COLOR, value: loss, vertical: false });
    }
    // Each relay's result as a vertical line in its colour, labelled in the top panel only.
    let per_core = |with_label: bool| -> Vec<RefLine> {
        caps.iter()
            .filter(|(_, _, cap)| cap.listeners_per_core > 0)
            .map(|(name, color, cap)| RefLine {
                label: if with_label {
                    format!("{name}: {} per core", fmt_count(cap.listeners_per_core.into()))
                } else {
                    String::new()
                },
                color: *color,
                value: f64::from(cap.listeners_per_core),
                vertical: true,
            })
            .collect()
    };
    p1.refs.extend(per_core(true));
    p1.x_range = x_range;
    p1.x_label_area = 26;
    line_panel(a1, ink, &p1)?;

    let mut p2 = Panel::new("", "p99, ms");
    p2.lines = curves(|s| s.latency_p99);
    if let Some((_, p99)) = limits {
        p2.refs.push(RefLine { label: "limit".to_string(), color: RED_COLOR, value: p99, vertical: false });
    }
    p2.refs.extend(per_core(false));
    p2.legend = false;
    p2.x_range = x_range;
    p2.x_label_area = 26;
    line_panel(a2, ink, &p2)?;

    let mut p3 = Panel::new("listeners", "relay CPU, %");
    p3.lines = curves(|s| s.relay_cpu_percent);
    p3.refs.extend(per_core(false));
    p3.legend = false;
    p3.x_range = x_range;
    line_panel(a3, ink, &p3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Joins, Loss, RelayUsage, Sample, ThreadCpu};

    fn pctl(count: u64, p50: f64, p95: f64, p99: f64, max: f64) -> Percentiles {
        Percentiles { count, p50, p95, p99, max }
    }

    /// A 5-minute run: 2,000 listeners ramp up over a minute, stay, and leave over the last 20 s.
    fn run_report(relay: &str, slower: f64) -> RunReport {
        let duration = 300.0;
        let timeline: Vec<Sample> = (0..300)
            .map(|i| {
                let t = f64::from(i);
                let listeners = if t < 60.0 {
                    (t / 60.0 * 1985.0) as u32
                } else if t > 280.0 {
                    ((300.0 - t) / 20.0 * 1985.0) as u32
                } else {
                    1985
                };
                let wobble = ((t * 0.37).sin() + 1.0) * 0.5;
                let load = f64::from(listeners) / 1985.0;
                Sample {
                    t,
                    listeners,
                    packets_per_s: f64::from(listeners) * 50.0 * (1.0 - 0.0002 * wobble),
                    loss_percent: 0.01 * wobble,
                    latency_p50: (0.3 + 0.15 * load + 0.05 * wobble) * slower,
                    latency_p99: (1.2 + 2.6 * load + 0.8 * wobble) * slower,
                    relay_cpu_percent: Some((4.0 + 78.0 * load + 3.0 * wobble) * slower),
                    relay_rss_mib: Some(14.0 + 33.0 * load),
                    generator_cpu_percent: 20.0 + 125.0 * load + 5.0 * wobble,
                }
            })
            .collect();
        RunReport {
            relay: relay.to_string(),
            target: "http://127.0.0.1:8080".to_string(),
            profile: "conference-2000".to_string(),
            started_at: "2025-03-14T09:30:00Z".to_string(),
            duration_s: duration,
            joins: Joins {
                planned: 2000,
                joined: 1990,
                failed: 10,
                errors: vec![
                    ("ICE did not connect within 10 s".to_string(), 7),
                    ("WHEP POST: 503 Service Unavailable | retry".to_string(), 3),
                ],
                peak: 1985,
            },
            first_audio_ms: pctl(1990, 182.4 * slower, 310.7 * slower, 452.1 * slower, 1203.9 * slower),
            loss: Loss { expected: 25_870_000, received: 25_866_897, lost: 3_103, percent: 0.012 },
            jitter_ms: pctl(1990, 0.31, 0.78, 1.42, 6.3),
            latency_ms: pctl(25_866_897, 0.42 * slower, 1.37 * slower, 3.86 * slower, 41.2 * slower),
            latency_histogram: Histogram {
                bounds: vec![0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0],
                counts: vec![5_120_000, 9_840_000, 7_310_000, 2_950_000, 540_000, 91_000, 14_800, 1_097, 0],
            },
            switch_ms: Percentiles::default(),
            handover_gap_ms: pctl(3970, 21.5, 48.0, 63.2, 118.0),
            packets_per_s: 99_236.4,
            relay_usage: Some(RelayUsage {
                pid: 41_213,
                cpu_percent: 71.8 * slower,
                threads: vec![
                    ThreadCpu { name: "tolk-http".to_string(), cpu_percent: 1.2 },
                    ThreadCpu { name: "tolk-shard-0".to_string(), cpu_percent: 35.9 },
                    ThreadCpu { name: "tolk-shard-1".to_string(), cpu_percent: 34.1 },
                    ThreadCpu { name: "tokio-runtime-w".to_string(), cpu_percent: 0.6 },
                ],
                rss_mib_start: 14.2,
                rss_mib_peak: 47.3,
                rss_kib_per_listener: 17.1,
            }),
            generator_cpu_percent: 150.2,
            listener_stacks: vec![("str0m".to_string(), 1900), ("webrtc-rs".to_string(), 100)],
            audio_checked: (19, 20),
            timeline,
            notes: vec![
                "Channel switches were not part of this profile: not measured.".to_string(),
                "10 listeners failed to join; their packets are not counted as lost.".to_string(),
            ],
        }
    }

    fn capacity_report(relay: &str, scale: f64) -> CapacityReport {
        let steps = (1..=6)
            .map(|i| {
                let listeners = i * 500;
                let load = f64::from(listeners) / 2000.0 * scale;
                CapacityStep {
                    listeners,
                    loss_percent: if load > 1.0 { 0.02 + (load - 1.0) * 2.5 } else { 0.004 * load },
                    latency_p99: 1.5 + 3.0 * load + if load > 1.0 { (load - 1.0) * 60.0 } else { 0.0 },
                    relay_cpu_percent: (92.0 * load).min(100.0),
                    generator_cpu_percent: 40.0 * f64::from(i),
                    passed: load <= 1.0,
                }
            })
            .collect::<Vec<_>>();
        let per_core = steps.iter().filter(|s| s.passed).map(|s| s.listeners).max().unwrap_or(0);
        CapacityReport {
            relay: relay.to_string(),
            started_at: "2025-03-14T10:05:00+01:00".to_string(),
            max_loss_percent: 0.5,
            max_p99_ms: 20.0,
            steps,
            listeners_per_core: per_core,
            stopped_because: "loss 1.27 % over the 0.5 % limit at 2,500 listeners".to_string(),
            notes: vec!["The relay was pinned to one core (taskset -c 1).".to_string()],
        }
    }

    fn compare_report() -> CompareReport {
        let tolk = run_report("tolk", 1.0);
        let janus = run_report("janus", 2.4);
        CompareReport {
            latency_p50_ratio: janus.latency_ms.p50 / tolk.latency_ms.p50,
            latency_p99_ratio: janus.latency_ms.p99 / tolk.latency_ms.p99,
            cpu_per_listener_ratio: Some(2.4),
            listeners_per_core_ratio: Some(4.0),
            tolk,
            janus,
            tolk_capacity: Some(capacity_report("tolk", 1.0)),
            janus_capacity: Some(capacity_report("janus", 4.0)),
            notes: vec!["Both relays ran on the same machine, one after the other.".to_string()],
        }
    }

    /// A fresh directory for one test: `$TOLK_REPORT_TEST_DIR/<name>` (kept) if set, else under
    /// the system's temp dir (removed by the caller).
    fn test_dir(name: &str) -> (PathBuf, bool) {
        if let Some(base) = std::env::var_os("TOLK_REPORT_TEST_DIR") {
            let dir = PathBuf::from(base).join(name);
            let _ = fs::remove_dir_all(&dir);
            return (dir, true);
        }
        let dir = std::env::temp_dir().join(format!("tolk-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        (dir, false)
    }

    fn assert_png_1000x600(path: &Path) {
        let bytes = fs::read(path).unwrap();
        assert!(bytes.len() > 24, "{} is too short", path.display());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1000, 600), "{}", path.display());
    }

    fn assert_written(files: &[PathBuf], names: &[&str]) {
        let got: Vec<_> =
            files.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(got, names);
        for f in files {
            assert!(f.is_file(), "{} missing", f.display());
            if f.extension().is_some_and(|e| e == "png") {
                assert_png_1000x600(f);
            }
        }
    }

    #[test]
    fn report_run_writes_json_markdown_and_plots() {
        let report = run_report("tolk", 1.0);
        let (dir, keep) = test_dir("run");
        let files = write_run(&dir.join("nested"), &report).unwrap();
        assert_written(&files, &["report.json", "report.md", "latency.png", "timeline.png", "histogram.png"]);

        let back: RunReport = serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!(back, report);

        let md = fs::read_to_string(&files[1]).unwrap();
        assert_eq!(md, markdown_run(&report));
        assert!(md.starts_with(
            "# Load run: conference-2000 against tolk (http://127.0.0.1:8080), 2025-03-14 09:30:00 UTC"
        ));
        for figure in [
            "| 3.86 ms |",    // p99 relay-added latency
            "| 41.2 ms |",    // its max
            "| 1,204 ms |",   // first-audio max
            "| 25,866,897 |", // samples / received
            "| 0.012 % |",    // loss
            "| 99,236 |",     // packets/s
            "| 2,000 | 1,990 | 10 | 1,985 |",
            "ICE did not connect within 10 s | 7 |",
            "503 Service Unavailable \\| retry",
            "| Channel switch (request to first packet) | not measured |",
            "| tolk-shard-0 | 35.9 % |",
            "17.1 KiB",
            "str0m: 1,900, webrtc-rs: 100",
            "| 19 / 20 |",
            "- Channel switches were not part of this profile: not measured.",
            "(latency.png)",
            "(timeline.png)",
            "(histogram.png)",
        ] {
            assert!(md.contains(figure), "{figure:?} missing from:\n{md}");
        }
        // Threads busiest first.
        let shard0 = md.find("tolk-shard-0").unwrap();
        assert!(shard0 < md.find("tolk-shard-1").unwrap() && shard0 < md.find("tolk-http").unwrap());
        if !keep {
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn report_capacity_writes_json_markdown_and_plot() {
        let report = capacity_report("tolk", 1.0);
        let (dir, keep) = test_dir("capacity");
        let files = write_capacity(&dir, &report).unwrap();
        assert_written(&files, &["capacity.json", "capacity.md", "capacity.png"]);
        let back: CapacityReport = serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!(back, report);
        let md = fs::read_to_string(&files[1]).unwrap();
        assert!(md.contains("**2,000 listeners per core**"), "{md}");
        assert!(md.contains("loss ≤ 0.50 % and p99 relay-added latency ≤ 20.0 ms"), "{md}");
        assert!(md.contains("| 2,500 |") && md.contains("| **no** |"), "{md}");
        assert!(md.contains("2025-03-14 09:05:00 UTC"), "{md}");
        if !keep {
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn report_compare_writes_json_markdown_and_plot() {
        let report = compare_report();
        let (dir, keep) = test_dir("compare");
        let files = write_compare(&dir, &report).unwrap();
        assert_written(&files, &["compare.json", "compare.md", "compare.png"]);
        let back: CompareReport = serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!(back, report);
        let md = fs::read_to_string(&files[1]).unwrap();
        assert!(
            md.contains("| Relay-added latency p99 | 3.86 ms | 9.26 ms | 2.40× (Janus / Tolk) |"),
            "{md}"
        );
        assert!(
            md.contains("| Listeners per core (capacity search) | 2,000 | 500 | 4.00× (Tolk / Janus) |"),
            "{md}"
        );
        assert!(md.contains("- Tolk run: Channel switches"), "{md}");

        // Without capacity searches, and with nothing measured on the Janus side.
        let mut bare = compare_report();
        bare.tolk_capacity = None;
        bare.janus_capacity = None;
        bare.listeners_per_core_ratio = None;
        bare.janus = RunReport::default();
        let files = write_compare(&dir.join("bare"), &bare).unwrap();
        assert_written(&files, &["compare.json", "compare.md", "compare.png"]);
        let md = fs::read_to_string(&files[1]).unwrap();
        assert!(md.contains("| Relay-added latency p99 | 3.86 ms | not measured |"), "{md}");
        if !keep {
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn report_empty_data_gives_plots_saying_no_data_and_not_measured() {
        let (dir, keep) = test_dir("empty");
        let files = write_run(&dir.join("run"), &RunReport::default()).unwrap();
        assert_written(&files, &["report.json", "report.md", "latency.png", "timeline.png", "histogram.png"]);
        let md = fs::read_to_string(&files[1]).unwrap();
        assert_eq!(md.matches("| not measured |").count(), 5, "{md}");
        assert!(md.contains("not measured (no relay process to watch)"));
        let files = write_capacity(&dir.join("capacity"), &CapacityReport::default()).unwrap();
        assert_written(&files, &["capacity.json", "capacity.md", "capacity.png"]);
        let files = write_compare(&dir.join("compare"), &CompareReport::default()).unwrap();
        assert_written(&files, &["compare.json", "compare.md", "compare.png"]);

        // Odd numbers do not panic either.
        let mut odd = run_report("tolk", 1.0);
        odd.timeline.truncate(1);
        odd.timeline[0].latency_p99 = f64::NAN;
        odd.latency_histogram = Histogram { bounds: vec![1.0], counts: vec![0, 5, 7] };
        odd.latency_ms.p99 = f64::INFINITY;
        odd.packets_per_s = f64::NAN;
        let files = write_run(&dir.join("odd"), &odd).unwrap();
        assert_written(&files, &["report.json", "report.md", "latency.png", "timeline.png", "histogram.png"]);
        if !keep {
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn report_plots_without_a_font() {
        // A family nobody registered: any text drawn would fail, so this shows that none is.
        let ink = Ink { text: false, family: "tolk-no-such-font" };
        let (dir, keep) = test_dir("no-font");
        let files = write_run_with(&dir, &run_report("tolk", 1.0), ink).unwrap();
        assert_written(&files, &["report.json", "report.md", "latency.png", "timeline.png", "histogram.png"]);
        let files = write_capacity_with(&dir, &capacity_report("tolk", 1.0), ink).unwrap();
        assert_written(&files, &["capacity.json", "capacity.md", "capacity.png"]);
        let files = write_compare_with(&dir, &compare_report(), ink).unwrap();
        assert_written(&files, &["compare.json", "compare.md", "compare.png"]);
        let files = write_run_with(&dir.join("empty"), &RunReport::default(), ink).unwrap();
        assert_written(&files, &["report.json", "report.md", "latency.png", "timeline.png", "histogram.png"]);
        if !keep {
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn report_number_formats() {
        assert_eq!(fmt_ms(0.4249), "0.42 ms");
        assert_eq!(fmt_ms(9.999), "10.00 ms");
        assert_eq!(fmt_ms(45.66), "45.7 ms");
        assert_eq!(fmt_ms(1203.9), "1,204 ms");
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(25_866_897), "25,866,897");
        assert_eq!(fmt_num(-1234.5, 1), "-1,234.5");
        assert_eq!(fmt_num(-0.01, 1), "0.0");
        assert_eq!(fmt_num(f64::NAN, 1), "n/a");
        assert_eq!(fmt_percent(0.0), "0 %");
        assert_eq!(fmt_percent(0.012), "0.012 %");
        assert_eq!(fmt_percent(2.5), "2.50 %");
        assert_eq!(fmt_duration(300.0), "5 min 0 s");
        assert_eq!(fmt_duration(12.34), "12.3 s");
        assert_eq!(axis_num(1500.0), "1,500");
        assert_eq!(axis_num(100_000.0), "100k");
        assert_eq!(axis_num(2_000_000.0), "2M");
        assert_eq!(axis_num(0.25), "0.25");
        assert_eq!(axis_num(-0.0), "0");
        assert_eq!(fmt_date("not a date"), "not a date");
    }
}
