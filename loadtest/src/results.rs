//! What a load run measured, as plain data: the one shape that the run fills in and that the
//! report (`report.rs`: JSON, Markdown, PNG plots) renders. Times are in milliseconds, CPU in
//! percent of one core, memory in MiB unless a name says otherwise.

use serde::{Deserialize, Serialize};

/// p50/p95/p99/max of a set of values, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// A histogram: `counts[i]` values fell in `[bounds[i-1], bounds[i])` (the first from 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
}

/// Listeners: planned, connected, failed (with the reasons, counted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Joins {
    pub planned: u32,
    pub joined: u32,
    pub failed: u32,
    /// (reason, how many), most frequent first.
    pub errors: Vec<(String, u32)>,
    /// Most listeners receiving at once.
    pub peak: u32,
}

/// Packets the listeners should have had and what arrived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// lost / expected, in percent.
    pub percent: f64,
    /// Where the lost packets showed: missing sequence numbers, whole 20 ms frames of timestamp
    /// skipped without a sequence gap, time after a listener's last packet.
    #[serde(default)]
    pub shown_by: LossShownBy,
    /// Listeners that lost any.
    #[serde(default)]
    pub listeners_losing: u32,
}

/// [`Loss::shown_by`]: packets, summed over the listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossShownBy {
    pub sequence: u64,
    pub timestamp: u64,
    pub silence_at_end: u64,
}

/// One relay thread's CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub name: String,
    /// Mean CPU over the measured part of the run, percent of one core.
    pub cpu_percent: f64,
}

/// The relay process as /proc saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayUsage {
    pub pid: u32,
    /// Mean CPU of the whole process, percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Busiest threads first (media shards show as `tolk-shard-N`).
    pub threads: Vec<ThreadCpu>,
    pub rss_mib_start: f64,
    pub rss_mib_peak: f64,
    /// (peak RSS - RSS before listeners) / peak listeners, KiB.
    pub rss_kib_per_listener: f64,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    pub listeners: u32,
    /// Packets received by all listeners in this second.
    pub packets_per_s: f64,
    pub loss_percent: f64,
    pub latency_p50: f64,
    pub latency_p99: f64,
    /// Relay process CPU in this second (percent of one core); None without a relay pid.
    pub relay_cpu_percent: Option<f64>,
    pub relay_rss_mib: Option<f64>,
    /// The generator's own CPU in this second (percent of one core).
    pub generator_cpu_percent: f64,
}

/// A whole run of one profile against one relay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// "tolk" or "janus".
    pub relay: String,
    pub target: String,
    pub profile: String,
    pub started_at: String,
    pub duration_s: f64,
    pub joins: Joins,
    /// WHEP POST (or Janus watch) to the first audio packet.
    pub first_audio_ms: Percentiles,
    pub loss: Loss,
    /// RFC 3550 interarrival jitter per listener at the end, ms.
    pub jitter_ms: Percentiles,
    /// Send (timestamp in the packet) to arrival, every packet: what the relay adds.
    pub latency_ms: Percentiles,
    pub latency_histogram: Histogram,
    /// Switch request to the first packet of the new channel.
    pub switch_ms: Percentiles,
    /// Last packet of the old voice to the first of the new one, at each listener of a handover.
    pub handover_gap_ms: Percentiles,
    /// Packets per second received by all listeners (mean over the full-load part).
    pub packets_per_s: f64,
    pub relay_usage: Option<RelayUsage>,
    /// The generator's own CPU (mean, percent of one core) and its listeners' stacks.
    pub generator_cpu_percent: f64,
    pub listener_stacks: Vec<(String, u32)>,
    /// Sampled listeners that decoded the audio and found it as expected / all sampled.
    pub audio_checked: (u32, u32),
    pub timeline: Vec<Sample>,
    /// Sentences: where a run stopped short, what was not measured and why.
    pub notes: Vec<String>,
    /// By node, when listeners were served by more than one (a cluster); empty for one relay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeReport>,
    /// The files the relay wrote, when the profile recorded every channel (`recording = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Vec<RecordedFile>>,
}

/// One file the relay recorded in a run, as its API listed it at the end (recording switched off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedFile {
    pub language: String,
    /// `done`, `interrupted` or `failed` (`recording` if it had not ended).
    pub state: String,
    pub duration_ms: i64,
    pub size: i64,
    /// Why it ended early, if it did.
    pub problem: Option<String>,
}

/// What the listeners of one node of a cluster received, and the node's own figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its name (or its address when it was not named).
    pub name: String,
    /// Its base URL, as its session URLs start.
    pub url: String,
    /// Listeners it served over the run (a churned listener's successor counts again).
    pub listeners: u32,
    pub loss: Loss,
    /// Relay-added latency at its str0m listeners (floor or booth send → listener receive:
    /// on an edge, through the origin and the cascade).
    pub latency_ms: Percentiles,
    /// Mean CPU of its process over the run (percent of one core) and its peak RSS (MiB).
    pub cpu_percent: Option<f64>,
    pub rss_mib_peak: Option<f64>,
    /// "origin" or "edge" for the run's event, from its metrics (`tolk_cluster_events`).
    pub role: Option<String>,
    /// `tolk_cluster_cascades_out`: edges subscribed to events it is the origin of.
    pub cascades_out: Option<f64>,
}

/// One step of the capacity search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    pub listeners: u32,
    pub loss_percent: f64,
    pub latency_p99: f64,
    pub relay_cpu_percent: f64,
    pub generator_cpu_percent: f64,
    pub passed: bool,
}

/// `tolk-loadtest capacity`: listeners one relay core carries within the limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub relay: String,
    pub started_at: String,
    /// The limits a step must stay within.
    pub max_loss_percent: f64,
    pub max_p99_ms: f64,
    pub steps: Vec<CapacityStep>,
    /// The largest passing step (the relay on one core).
    pub listeners_per_core: u32,
    /// Why the search stopped (a limit crossed, the generator saturated, the step limit).
    pub stopped_because: String,
    pub notes: Vec<String>,
}

/// `tolk-loadtest compare`: the same profile against Tolk and Janus in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub tolk: RunReport,
    pub janus: RunReport,
    pub tolk_capacity: Option<CapacityReport>,
    pub janus_capacity: Option<CapacityReport>,
    /// Tolk's listeners per core / Janus's (from the capacity searches), if both ran.
    pub listeners_per_core_ratio: Option<f64>,
    /// Janus's relay-added p50 and p99 latency / Tolk's.
    pub latency_p50_ratio: f64,
    pub latency_p99_ratio: f64,
    /// Relay CPU per 1,000 listeners, Janus / Tolk, from the runs.
    pub cpu_per_listener_ratio: Option<f64>,
    pub notes: Vec<String>,
}

/// `tolk-loadtest run --compare-recording`: one profile run twice back to back against the same
/// relay, recording every channel off then on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingCompareReport {
    pub off: RunReport,
    pub on: RunReport,
    pub notes: Vec<String>,
}
