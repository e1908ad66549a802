//! The reports written for fixed data (a 5-minute run of 2,000 listeners, capacity searches, a
//! comparison), for empty data and odd numbers, and without a font: every file is there, the
//! JSON reads back, the Markdown says what it should, the PNGs are 1000×600.
//! `TOLK_REPORT_TEST_DIR` keeps them for a look.

use std::fs;
use std::path::{Path, PathBuf};

use super::plot::Ink;
use super::*;
use crate::results::{CapacityStep, Histogram, Joins, Loss, Percentiles, RelayUsage, Sample, ThreadCpu};

fn pctl(count: u64, p50: f64, p95: f64, p99: f64, max: f64) -> Percentiles {
    Percentiles { count, p50, p95, p99, max }
}

/// A 5-minute run: 2,000 listeners ramp up over a minute, stay, and leave over the last 20 s.
fn run_report(relay: &str, slower: f64) -> RunReport {
    let duration = 300.0;
    let timeline = timeline(slower);
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
        loss: Loss {
            expected: 25_870_000,
            received: 25_866_897,
            lost: 3_103,
            percent: 0.012,
            ..Loss::default()
        },
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
        nodes: Vec::new(),
        recording: None,
    }
}

/// Its timeline: one sample a second, the latency and the relay's CPU `slower` times Tolk's.
fn timeline(slower: f64) -> Vec<Sample> {
    (0..300)
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
        .collect()
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
    let got: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
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
    assert!(md.contains("| Relay-added latency p99 | 3.86 ms | 9.26 ms | 2.40× (Janus / Tolk) |"), "{md}");
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
