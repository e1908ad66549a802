//! The Markdown of recording: the files a recorded run left, and a profile run with recording
//! off then on (`run --compare-recording`): what listeners got and what the relay spent, side by
//! side with the difference.

use std::fmt::Write as _;

use super::format::{NOT_MEASURED, cell, fmt_count, fmt_cpu, fmt_date, fmt_ms, fmt_num, fmt_percent};
use super::markdown::notes;
use crate::results::{RecordedFile, RecordingCompareReport, RunReport};

/// A figure of a run, and one it may not have.
type Figure = fn(&RunReport) -> f64;
type MaybeFigure = fn(&RunReport) -> Option<f64>;

/// The thread that writes every recording file.
pub const WRITER_THREAD: &str = "tolk-recording";

/// A run's recorded files (nothing if the run did not record).
pub(super) fn run_recording(md: &mut String, report: &RunReport) {
    let Some(files) = &report.recording else { return };
    md.push_str("## Recording\n\n");
    if files.is_empty() {
        md.push_str("Recording was on, but the relay listed no files.\n\n");
        return;
    }
    md.push_str("| Language | State | Length | Size |\n|---|---|---:|---:|\n");
    for f in files {
        let _ = writeln!(
            md,
            "| {} | {}{} | {} s | {} KiB |",
            cell(&f.language),
            cell(&f.state),
            f.problem.as_deref().map_or_else(String::new, |p| format!(" ({})", cell(p))),
            fmt_num(f.duration_ms as f64 / 1000.0, 1),
            fmt_num(f.size as f64 / 1024.0, 0),
        );
    }
    let writer = thread_cpu(report, |name| name == WRITER_THREAD);
    let _ = writeln!(
        md,
        "\nThe writer thread (`{WRITER_THREAD}`): {} of a core for {} files.\n",
        writer.map_or_else(|| NOT_MEASURED.to_owned(), fmt_cpu),
        files.len()
    );
}

/// The Markdown of a run with recording off then on.
pub fn markdown_recording_compare(report: &RecordingCompareReport) -> String {
    let (off, on) = (&report.off, &report.on);
    let mut md = String::new();
    let _ = writeln!(md, "# Recording off vs on: {}, {}\n", cell(&on.profile), fmt_date(&off.started_at));
    let _ = writeln!(
        md,
        "One relay ({}), the profile run twice back to back: recording off, then every channel recorded.\n",
        cell(&on.target)
    );
    md.push_str("| Measure | Off | On | On − off |\n|---|---:|---:|---:|\n");
    let joined = |r: &RunReport| {
        format!("{} / {}", fmt_count(r.joins.joined.into()), fmt_count(r.joins.planned.into()))
    };
    let _ = writeln!(md, "| Listeners joined / planned | {} | {} | |", joined(off), joined(on));
    row(&mut md, "Loss", off.loss.percent, on.loss.percent, fmt_percent);
    let latency: [(&str, Figure); 4] = [
        ("Relay-added latency p50", |r| r.latency_ms.p50),
        ("Relay-added latency p95", |r| r.latency_ms.p95),
        ("Relay-added latency p99", |r| r.latency_ms.p99),
        ("Relay-added latency max", |r| r.latency_ms.max),
    ];
    for (name, pick) in latency {
        row(&mut md, name, pick(off), pick(on), fmt_ms);
    }
    row(&mut md, "Jitter p99", off.jitter_ms.p99, on.jitter_ms.p99, fmt_ms);
    row(&mut md, "Handover gap p99", off.handover_gap_ms.p99, on.handover_gap_ms.p99, fmt_ms);
    row(&mut md, "Packets/s received", off.packets_per_s, on.packets_per_s, |x| fmt_num(x, 0));
    let cpu_rows: [(&str, MaybeFigure); 3] = [
        ("Relay CPU (process, mean)", |r| r.relay_usage.as_ref().map(|u| u.cpu_percent)),
        ("Media shards' CPU (`tolk-shard-*`)", |r| thread_cpu(r, |n| n.starts_with("tolk-shard"))),
        ("Recording writer's CPU (`tolk-recording`)", |r| thread_cpu(r, |n| n == WRITER_THREAD)),
    ];
    for (name, pick) in cpu_rows {
        match (pick(off), pick(on)) {
            (Some(a), Some(b)) => row(&mut md, name, a, b, fmt_cpu),
            (a, b) => {
                let show = |x: Option<f64>| x.map_or_else(|| NOT_MEASURED.to_owned(), fmt_cpu);
                let _ = writeln!(md, "| {name} | {} | {} | |", show(a), show(b));
            }
        }
    }
    let files = on.recording.as_deref().unwrap_or_default();
    let _ = writeln!(md, "| Files recorded | – | {} | |", files_summary(files));
    let writer = |r: &RunReport| thread_cpu(r, |n| n == WRITER_THREAD);
    if let (Some(a), Some(b), false) = (writer(off), writer(on), files.is_empty()) {
        let _ = writeln!(
            md,
            "| Writer's CPU per recorded channel (on − off) / files | – | {} % | |",
            fmt_num((b - a) / files.len() as f64, 3)
        );
    }
    md.push_str(
        "\nCPU is the mean over each run, in % of one core; threads under 0.05 % are not listed by \
         the run and count as 0 here. The writer thread runs (and ticks every 100 ms) whether \
         anything is recorded or not.\n\n",
    );
    let all_notes = report
        .notes
        .iter()
        .cloned()
        .chain(off.notes.iter().map(|n| format!("Recording off: {n}")))
        .chain(on.notes.iter().map(|n| format!("Recording on: {n}")));
    notes(&mut md, "Notes", all_notes);
    md.push_str("Each run's own report: [off](recording-off/report.md), [on](recording-on/report.md).\n");
    md
}

/// A row with the difference on − off.
fn row(md: &mut String, name: &str, off: f64, on: f64, show: impl Fn(f64) -> String) {
    let diff = on - off;
    let sign = if diff > 0.0 { "+" } else { "" };
    let _ = writeln!(md, "| {name} | {} | {} | {sign}{} |", show(off), show(on), show(diff));
}

/// The CPU of the relay's threads whose names pass `pick`, summed (None: not measured). The
/// report lists threads from 0.05 % of a core: one not listed counts as 0.
fn thread_cpu(report: &RunReport, pick: impl Fn(&str) -> bool) -> Option<f64> {
    let usage = report.relay_usage.as_ref()?;
    Some(usage.threads.iter().filter(|t| pick(&t.name)).map(|t| t.cpu_percent).sum())
}

/// "7 files, 2.0 MiB, 840 s of audio, all done".
fn files_summary(files: &[RecordedFile]) -> String {
    if files.is_empty() {
        return "none".to_owned();
    }
    let bytes: i64 = files.iter().map(|f| f.size).sum();
    let ms: i64 = files.iter().map(|f| f.duration_ms).sum();
    let done = files.iter().filter(|f| f.state == "done").count();
    format!(
        "{} files, {} MiB, {} s of audio, {} done",
        files.len(),
        fmt_num(bytes as f64 / 1_048_576.0, 1),
        fmt_num(ms as f64 / 1000.0, 0),
        done
    )
}
