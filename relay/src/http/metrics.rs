//! `/healthz` and `/metrics` (Prometheus text exposition format). Metrics are served on their own
//! address (`metrics_listen`), and carry no event id unless the operator asks for per-event
//! labels (`metrics_per_event`): an event id is all it takes to listen.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::http::ApiError;
use crate::net::ShardStats;

/// `200 ok` while every media shard turns and the database answers; else `503` with a sentence
/// naming what is wrong (problem+json).
#[utoipa::path(get, path = "/healthz", tag = "meta", responses(
    (status = 200, description = "ok", body = String, content_type = "text/plain"),
    (status = 503, description = "A media shard stopped or is stuck, or the database does not answer.")))]
pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let problems = app.health().await;
    if problems.is_empty() {
        return "ok\n".into_response();
    }
    let detail = format!("Tolk is not healthy: {}.", problems.join("; "));
    ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, detail).into_response()
}

/// Writes metric families: a header, then its samples.
struct Exposition(String);

impl Exposition {
    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, f64)>,
    ) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }
}

type Field = fn(&ShardStats) -> f64;

const SHARD_COUNTERS: [(&str, &str, Field); 12] = [
    ("tolk_packets_in_total", "Datagrams received by the media shards.", |s| s.packets_in as f64),
    ("tolk_bytes_in_total", "Bytes received by the media shards.", |s| s.bytes_in as f64),
    ("tolk_packets_out_total", "Datagrams sent by the media shards.", |s| s.packets_out as f64),
    ("tolk_bytes_out_total", "Bytes sent by the media shards.", |s| s.bytes_out as f64),
    ("tolk_packets_dropped_total", "Outgoing datagrams dropped (socket buffer full or send error).", |s| {
        s.packets_dropped as f64
    }),
    ("tolk_shard_busy_seconds_total", "Time each shard loop spent working rather than waiting.", |s| {
        s.busy_seconds
    }),
    ("tolk_shard_loops_total", "Turns of each shard loop.", |s| s.loops as f64),
    (
        "tolk_shard_panics_total",
        "Panics contained on each shard (each dropped the peer it was handling).",
        |s| s.panics as f64,
    ),
    (
        "tolk_unknown_datagrams_total",
        "Datagrams from unknown addresses without a valid ICE check (dropped).",
        |s| s.unknown_dropped as f64,
    ),
    (
        "tolk_rtp_floor_rejected_total",
        "RTP floor datagrams not taken: another source while locked, another payload type, too fast, or not RTP.",
        |s| s.rtp_floor_rejected as f64,
    ),
    ("tolk_packets_direct_total", "RTP packets sent with Tolk's own SRTP (not through str0m).", |s| {
        s.packets_direct as f64
    }),
    (
        "tolk_srtp_refused_total",
        "Packets to listeners dropped because their SRTP index may not be used (late across a sequence-number wrap).",
        |s| s.srtp_refused as f64,
    ),
];

/// Recording: files open, bytes and pages written, packets lost to a full queue, failures, and
/// the free space where recordings go.
fn recording_families(app: &App, out: &mut Exposition) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = app.recordings.counters();
    let families = [
        ("tolk_recording_files_open", "gauge", "Recording files being written.", &c.open_files),
        ("tolk_recording_bytes_total", "counter", "Bytes written to recording files.", &c.bytes),
        (
            "tolk_recording_dropped_packets_total",
            "counter",
            "Channel packets the recorder's full queue refused (the file has a gap of silence there).",
            &*c.dropped,
        ),
        (
            "tolk_recording_late_packets_total",
            "counter",
            "Channel packets not written: later than the silence already written, or not Opus.",
            &c.late,
        ),
        (
            "tolk_recording_failures_total",
            "counter",
            "Recordings stopped by a problem (a full disk, a failed write).",
            &c.failures,
        ),
    ];
    for (name, kind, help, value) in families {
        out.family(name, kind, help, [(String::new(), value.load(Relaxed) as f64)]);
    }
    if let Some(free) = app.recordings.free_bytes() {
        out.family(
            "tolk_recording_disk_free_bytes",
            "gauge",
            "Free space where recordings go.",
            [(String::new(), free as f64)],
        );
    }
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let shards = app.media_stats().await;
    let per_event = app.settings.metrics_per_event;
    let mut per_channel: BTreeMap<String, usize> = BTreeMap::new();
    for c in shards.iter().flat_map(|s| &s.channels) {
        let labels = if per_event {
            format!("{{event=\"{}\",language=\"{}\"}}", c.event, c.language)
        } else {
            format!("{{language=\"{}\"}}", c.language)
        };
        *per_channel.entry(labels).or_default() += c.listeners;
    }
    let mut out = Exposition(String::with_capacity(4096));
    out.family(
        "tolk_listeners",
        "gauge",
        if per_event { "Listeners per channel." } else { "Listeners per language, over every event." },
        per_channel.into_iter().map(|(labels, n)| (labels, n as f64)),
    );
    out.family(
        "tolk_sessions",
        "gauge",
        "Live media sessions (publishers and listeners).",
        [(String::new(), app.media_sessions() as f64)],
    );
    out.family(
        "tolk_cluster_cascades_out",
        "gauge",
        "Edges (of this cluster, or of peer clusters) subscribed to events this node is the origin of: one per event per edge.",
        [(String::new(), app.cascade_sessions() as f64)],
    );
    if let Some(cluster) = &app.cluster {
        let (origins, edges) = cluster.serving();
        out.family(
            "tolk_cluster_events",
            "gauge",
            "Events this node serves, as their origin or as an edge (its cascade from the origin).",
            [("{role=\"origin\"}".to_owned(), origins as f64), ("{role=\"edge\"}".to_owned(), edges as f64)],
        );
        out.family(
            "tolk_cluster_nodes",
            "gauge",
            "Live nodes of the cluster at the last heartbeat.",
            [(String::new(), cluster.nodes().len() as f64)],
        );
    }
    out.family(
        "tolk_listeners_connecting",
        "gauge",
        "Listeners whose offer was answered and whose peer has not connected yet.",
        [(String::new(), f64::from(app.connecting.total()))],
    );
    out.family(
        "tolk_shard_peers",
        "gauge",
        "WebRTC peers per media shard.",
        shards.iter().map(|s| (format!("{{shard=\"{}\"}}", s.index), s.peers as f64)),
    );
    out.family(
        "tolk_shard_settled_listeners",
        "gauge",
        "Listeners past their handshake, held without a WebRTC engine (consent answered by Tolk).",
        shards.iter().map(|s| (format!("{{shard=\"{}\"}}", s.index), s.settled as f64)),
    );
    recording_families(&app, &mut out);
    for (name, help, field) in SHARD_COUNTERS {
        out.family(
            name,
            "counter",
            help,
            shards.iter().map(|s| (format!("{{shard=\"{}\"}}", s.index), field(s))),
        );
    }
    let mut response = out.0.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
