//! The Markdown reports, for a person (and printed as the summary on stdout): a run's tables of
//! every measure, a capacity search's steps, and a comparison of Tolk and Janus with the ratios;
//! each with its notes and links to its plots. A measure not taken reads "not measured".

use std::fmt::Write as _;

use super::format::{
    NOT_MEASURED, cell, div, fmt_count, fmt_cpu, fmt_date, fmt_duration, fmt_ms, fmt_num, fmt_percent,
    fmt_ratio, one_line, or_dash,
};
use crate::results::{CapacityReport, CompareReport, Joins, Percentiles, RelayUsage, RunReport};

const PERCENTILE_HEADER: &str =
    "| Measure | p50 | p95 | p99 | max | Samples |\n|---|---:|---:|---:|---:|---:|\n";

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
    run_listeners(&mut md, &report.joins);
    run_nodes(&mut md, report);
    run_latency(&mut md, report);
    run_loss(&mut md, report);
    run_relay(&mut md, report);
    run_generator(&mut md, report);
    super::recording::run_recording(&mut md, report);
    notes(&mut md, "Notes", report.notes.iter().map(|n| n.to_string()));
    md.push_str("## Plots\n\n");
    md.push_str("![Relay-added latency per second](latency.png)\n\n");
    md.push_str("![Listeners, packets/s and CPU over time](timeline.png)\n\n");
    md.push_str("![Latency histogram and time to first audio](histogram.png)\n");
    md
}

/// A cluster run's listeners by node (nothing for one relay).
fn run_nodes(md: &mut String, report: &RunReport) {
    if report.nodes.is_empty() {
        return;
    }
    md.push_str(
        "## By node

",
    );
    md.push_str(
        "| Node | Role | Listeners | Loss | Latency p50 | p99 | CPU | RSS peak | Cascades out |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for n in &report.nodes {
        let _ = writeln!(
            md,
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&n.name),
            cell(&n.url),
            n.role.as_deref().unwrap_or("-"),
            fmt_count(n.listeners.into()),
            fmt_percent(n.loss.percent),
            fmt_ms(n.latency_ms.p50),
            fmt_ms(n.latency_ms.p99),
            n.cpu_percent.map_or_else(|| NOT_MEASURED.to_owned(), fmt_cpu),
            n.rss_mib_peak.map_or_else(|| NOT_MEASURED.to_owned(), |r| format!("{} MiB", fmt_num(r, 1))),
            n.cascades_out.map_or_else(|| "-".to_owned(), |c| fmt_num(c, 0)),
        );
    }
    md.push_str(
        "\nLatency by node is the str0m listeners' (kernel receive times); the webrtc-rs listeners \
         count in the listeners and the loss.\n\n",
    );
}

/// A run's listeners: planned, joined, failed, peak, and why joins failed.
fn run_listeners(md: &mut String, j: &Joins) {
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
}

/// A run's percentiles: first audio, latency, jitter, switches, handover gaps.
fn run_latency(md: &mut String, report: &RunReport) {
    md.push_str("## Latency and delivery\n\n");
    md.push_str(PERCENTILE_HEADER);
    percentile_row(md, "Time to first audio (WHEP POST to first packet)", &report.first_audio_ms);
    percentile_row(
        md,
        "Relay-added latency (send stamp to the listener socket's kernel receive time)",
        &report.latency_ms,
    );
    percentile_row(md, "Jitter (RFC 3550, per listener at the end)", &report.jitter_ms);
    percentile_row(md, "Channel switch (request to first packet)", &report.switch_ms);
    percentile_row(md, "Handover gap (old voice's last to new voice's first)", &report.handover_gap_ms);
    md.push('\n');
}

/// A run's packets: expected, received, lost, and the rate at full load.
fn run_loss(md: &mut String, report: &RunReport) {
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
    if l.lost > 0 && l.listeners_losing > 0 {
        let s = &l.shown_by;
        let _ = writeln!(
            md,
            "{} listeners lost packets: {} missing sequence numbers, {} frames skipped in time \
             (timestamps), {} frames of silence after the last packet.\n",
            fmt_count(u64::from(l.listeners_losing)),
            fmt_count(s.sequence),
            fmt_count(s.timestamp),
            fmt_count(s.silence_at_end)
        );
    }
}

/// The relay's CPU and memory over a run, and its threads.
fn run_relay(md: &mut String, report: &RunReport) {
    md.push_str("## Relay\n\n");
    let Some(u) = &report.relay_usage else {
        md.push_str("Relay CPU and memory: not measured (no relay process to watch).\n\n");
        return;
    };
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
    relay_threads(md, u);
}

/// The relay's busiest threads (the rest summed up).
fn relay_threads(md: &mut String, u: &RelayUsage) {
    if u.threads.is_empty() {
        return;
    }
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

/// The load generator over a run: its CPU, its listeners' stacks, the audio checked.
fn run_generator(md: &mut String, report: &RunReport) {
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
    compare_row(
        &mut md,
        "Listeners joined / planned",
        format!("{} / {}", fmt_count(t.joins.joined.into()), fmt_count(t.joins.planned.into())),
        format!("{} / {}", fmt_count(j.joins.joined.into()), fmt_count(j.joins.planned.into())),
        String::new(),
    );
    compare_percentiles(&mut md, report);
    compare_usage(&mut md, report);
    md.push('\n');
    compare_capacities(&mut md, report);

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

/// One row of the comparison's table.
fn compare_row(md: &mut String, name: &str, tolk: String, janus: String, ratio: String) {
    let _ = writeln!(md, "| {name} | {tolk} | {janus} | {ratio} |");
}

/// The comparison's percentile rows: first audio, latency, jitter, handover gaps, with the
/// ratio where both were measured (the report's own for latency p50 and p99).
fn compare_percentiles(md: &mut String, report: &CompareReport) {
    let (t, j) = (&report.tolk, &report.janus);
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
        compare_row(md, name, value(pt), value(pj), ratio);
    }
}

/// The comparison's rows of loss, throughput, the relays' CPU and memory, and capacity.
fn compare_usage(md: &mut String, report: &CompareReport) {
    let (t, j) = (&report.tolk, &report.janus);
    compare_row(md, "Loss", fmt_percent(t.loss.percent), fmt_percent(j.loss.percent), String::new());
    compare_row(
        md,
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
    compare_row(md, "Relay CPU (process)", cpu(t), cpu(j), String::new());
    let per_1000 = |r: &RunReport| cpu_per_1000(r).map_or(NOT_MEASURED.to_string(), fmt_cpu);
    compare_row(
        md,
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
    compare_row(md, "Relay RSS per listener", rss(t), rss(j), String::new());
    let per_core = |c: &Option<CapacityReport>| {
        c.as_ref().map_or(NOT_MEASURED.to_string(), |c| fmt_count(c.listeners_per_core.into()))
    };
    compare_row(
        md,
        "Listeners per core (capacity search)",
        per_core(&report.tolk_capacity),
        per_core(&report.janus_capacity),
        fmt_ratio(report.listeners_per_core_ratio, "Tolk / Janus"),
    );
}

/// The comparison's capacity searches, if either ran.
fn compare_capacities(md: &mut String, report: &CompareReport) {
    if report.tolk_capacity.is_none() && report.janus_capacity.is_none() {
        return;
    }
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

/// A row of [`PERCENTILE_HEADER`]'s table.
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

/// A section of notes, one a line; nothing if there are none.
pub(super) fn notes(md: &mut String, title: &str, notes: impl Iterator<Item = String>) {
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

/// The listeners' WebRTC stacks: "str0m: 1,900, webrtc-rs: 100".
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
