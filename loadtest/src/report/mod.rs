//! Writes the reports of `tolk-loadtest`: how a [`RunReport`], a [`CapacityReport`] and a
//! [`CompareReport`] (the data of `results.rs`) become a report directory. This module owns the
//! entry points and the files written; the parts are
//!
//! - `json`: the JSON (the data as is, to read back);
//! - `markdown`: the Markdown (tables for a person, also printed as the summary on stdout);
//! - `format`: the numbers and text in both the Markdown and the plots;
//! - `plot`: a small plotting toolkit over `plotters` (PNG files, text with a TTF font found at
//!   run time, without one the plots are written without text; line, bar and histogram panels);
//! - `figures`: the five figures drawn with it.
//!
//! Nothing here panics on odd data: empty series give a plot saying "no data", a
//! [`Percentiles`](crate::results::Percentiles) with no values renders as "not measured",
//! non-finite numbers as "n/a".

mod figures;
mod format;
mod json;
mod markdown;
mod plot;
mod recording;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use self::markdown::{markdown_capacity, markdown_compare, markdown_run};
use self::plot::{Ink, write_plot};
pub use self::recording::{WRITER_THREAD, markdown_recording_compare};
use crate::results::{CapacityReport, CompareReport, RecordingCompareReport, RunReport};

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

/// Writes `recording.json` and `recording.md` (a profile with recording off then on) into
/// `dir`, creating it if missing; each run's own report is in `recording-off/` and
/// `recording-on/`. Returns the files written.
pub fn write_recording_compare(dir: &Path, report: &RecordingCompareReport) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = json::write_json(dir, "recording.json", report)?;
    let md = write_text(dir, "recording.md", &markdown_recording_compare(report))?;
    Ok(vec![json, md])
}

fn write_run_with(dir: &Path, report: &RunReport, ink: Ink) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = json::write_json(dir, "report.json", report)?;
    let md = write_text(dir, "report.md", &markdown_run(report))?;
    let latency = write_plot(dir, "latency.png", ink, |area, ink| figures::plot_latency(area, ink, report))?;
    let timeline =
        write_plot(dir, "timeline.png", ink, |area, ink| figures::plot_timeline(area, ink, report))?;
    let histogram =
        write_plot(dir, "histogram.png", ink, |area, ink| figures::plot_histogram(area, ink, report))?;
    Ok(vec![json, md, latency, timeline, histogram])
}

fn write_capacity_with(dir: &Path, report: &CapacityReport, ink: Ink) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = json::write_json(dir, "capacity.json", report)?;
    let md = write_text(dir, "capacity.md", &markdown_capacity(report))?;
    let png = write_plot(dir, "capacity.png", ink, |area, ink| figures::plot_capacity(area, ink, report))?;
    Ok(vec![json, md, png])
}

fn write_compare_with(dir: &Path, report: &CompareReport, ink: Ink) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let json = json::write_json(dir, "compare.json", report)?;
    let md = write_text(dir, "compare.md", &markdown_compare(report))?;
    let png = write_plot(dir, "compare.png", ink, |area, ink| figures::plot_compare(area, ink, report))?;
    Ok(vec![json, md, png])
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating the report directory {}", dir.display()))
}

fn write_text(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
