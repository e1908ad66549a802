//! `tolk-loadtest cluster`: three Tolk nodes as separate processes on this machine, each in its
//! own network namespace with a real Redis and PostgreSQL (`tolk_tests::cluster`), and a profile
//! run through node A only. A's and B's capacities are 40 % of the listeners each, so listeners
//! who join through A are placed on A until it is full, then (307) on B, then on C. The report
//! says, per node, the listeners, loss, latency and CPU; what the cascade adds (each edge's p50
//! and p99 against the origin's); that the origin counts one cascade per edge whatever the edge's
//! listeners; and the origin's CPU per edge subscription, measured apart (`cascade_cpu`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tolk_tests::cluster::{ClusterNode, TestCluster, TestNet};
use tolk_tests::relay::ADMIN;

use crate::engine::{self, Command, Endpoint, Impairment, Voice, Worker};
use crate::profile::Profile;
use crate::results::{NodeReport, RunReport};
use crate::run::{NodeTarget, RelayTarget, RunOptions};
use crate::sysmon::Monitor;
use crate::tally::LatencyHistogram;

/// The nodes' names; listeners join through the first.
pub const NODES: [&str; 3] = ["a", "b", "c"];

/// How to run the cluster profile.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The `tolk` binary the nodes run (None: the one beside this executable's directory, as
    /// for the tests: target/<profile>/tolk).
    pub relay_bin: Option<PathBuf>,
    /// Override the profile's listener count (the ramp then takes at most half the run).
    pub listeners: Option<u32>,
    /// Override the profile's duration.
    pub duration_s: Option<f64>,
    pub workers: usize,
    pub report_dir: Option<PathBuf>,
    pub progress: bool,
    /// Seconds the origin's CPU is measured for at each step of the cascade-cost measurement
    /// (0: not measured).
    pub cost_step_s: f64,
}

/// What one edge's cascade added to its listeners' latency (the edge's figure minus the
/// origin's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeLatency {
    pub edge: String,
    pub listeners: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
}

/// One step of the cascade-cost measurement: the origin's CPU with so many edges subscribed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostStep {
    pub edges: u32,
    /// Listeners on the origin, and on each edge subscribed.
    pub origin_listeners: u32,
    pub edge_listeners: Vec<u32>,
    /// `tolk_cluster_cascades_out` on the origin at this step.
    pub cascades_out: f64,
    /// The origin process's mean CPU over the step (percent of one core).
    pub origin_cpu_percent: f64,
    /// Relay-added latency p50 at each node's listeners over the step (every listener here
    /// reads every stamp), by node name; an edge's is through the origin and its cascade.
    pub latency_p50_ms: Vec<(String, f64)>,
}

/// The cluster run's report: the run's own (with its `nodes`), and the cascade's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub run: RunReport,
    /// Each node's listener capacity (TOLK_CAPACITY_LISTENERS), by name.
    pub capacities: Vec<(String, u32)>,
    /// The run's event's origin node, and the edges that served listeners.
    pub origin: Option<String>,
    pub edges_serving: Vec<String>,
    /// `tolk_cluster_cascades_out` on the origin near the run's end.
    pub cascades_out: Option<f64>,
    /// Whether that equals the edges serving listeners (one cascade per edge).
    pub one_cascade_per_edge: bool,
    pub cascade_latency: Vec<EdgeLatency>,
    /// The origin's CPU with 0, 1 and 2 edges subscribed (a floor-only event of its own, the
    /// origin's listeners unchanged), and the difference each edge made.
    pub cascade_cpu: Vec<CostStep>,
    pub origin_cpu_per_edge_percent: Vec<f64>,
    pub notes: Vec<String>,
}

/// The capacity of each node for `listeners` joining through A: A and B take 40 % each, C the
/// rest and as much again (room to spare), so listeners spread over A, then B, then C.
pub fn capacities(listeners: u32) -> [u32; 3] {
    let share = listeners.saturating_mul(2).div_ceil(5).max(4);
    [share, share, share.max(listeners.saturating_sub(2 * share)) + share / 2]
}

/// Start the cluster, run the profile through node A, measure the cascade's cost, report.
pub async fn cluster(profile: &Profile, options: &ClusterOptions) -> anyhow::Result<ClusterReport> {
    if let Some(bin) = &options.relay_bin {
        let bin = bin.canonicalize().with_context(|| format!("no relay binary at {}", bin.display()))?;
        anyhow::ensure!(tolk_tests::cluster::use_tolk_binary(bin), "another relay binary was chosen already");
    }
    let mut profile = profile.overridden(options.listeners, options.duration_s);
    profile.listeners.ramp_s = profile.listeners.ramp_s.min(profile.duration_s / 2.0);
    let listeners = profile.total_listeners();
    let caps = capacities(listeners);
    let trusted: Vec<String> = TestNet::possible_host_ips().iter().map(ToString::to_string).collect();
    let trusted = trusted.join(",");
    let cluster = TestCluster::start(&NODES, |name| {
        let i = NODES.iter().position(|n| *n == name).unwrap_or(0);
        vec![
            ("TOLK_CAPACITY_LISTENERS", caps[i].to_string()),
            // The generator's X-Forwarded-For: each listener a client of its own.
            ("TOLK_TRUSTED_PROXIES", trusted.clone()),
        ]
    })
    .await
    .context("starting the cluster (root, iproute2, redis-server, postgresql)")?;
    let entry = cluster.node(NODES[0])?;
    let run_options = RunOptions {
        relay: RelayTarget::Tolk { rtp_floor: false },
        target: entry.base.clone(),
        admin_token: ADMIN.into(),
        report_dir: options.report_dir.clone(),
        relay_pid: entry.pid(),
        workers: options.workers.max(1),
        progress: options.progress,
        listeners: None,
        duration_s: None,
        stop_when: None,
        nodes: cluster.nodes.iter().map(node_target).collect(),
    };
    let run = crate::run::run(&profile, &run_options).await.context("the run through node A")?;
    let mut report = judge(run);
    report.capacities = NODES.iter().map(|n| (*n).to_owned()).zip(caps).collect();
    if options.cost_step_s > 0.0 {
        match cascade_cpu(&cluster, &profile, caps, options.cost_step_s).await {
            Ok(steps) => {
                report.origin_cpu_per_edge_percent =
                    steps.windows(2).map(|w| w[1].origin_cpu_percent - w[0].origin_cpu_percent).collect();
                report.cascade_cpu = steps;
            }
            Err(e) => report.notes.push(format!("The cascade's CPU was not measured: {e:#}")),
        }
    }
    if let Some(dir) = &options.report_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("cluster.json"), serde_json::to_string_pretty(&report)?)?;
        std::fs::write(dir.join("cluster.md"), markdown(&report))?;
    }
    Ok(report)
}

fn node_target(node: &ClusterNode) -> NodeTarget {
    NodeTarget {
        name: node.name.clone(),
        base: node.base.clone(),
        pid: node.pid(),
        metrics_url: Some(node.metrics_url()),
    }
}

/// The cascade's figures from a run's nodes.
fn judge(run: RunReport) -> ClusterReport {
    let origin = run.nodes.iter().find(|n| n.role.as_deref() == Some("origin"));
    let edges: Vec<&NodeReport> =
        run.nodes.iter().filter(|n| n.listeners > 0 && n.role.as_deref() != Some("origin")).collect();
    let mut notes = Vec::new();
    if origin.is_none() {
        notes.push("No node said it was the event's origin (tolk_cluster_events).".to_owned());
    }
    let cascades_out = origin.and_then(|o| o.cascades_out);
    let cascade_latency = match origin {
        Some(o) => edges
            .iter()
            .map(|e| EdgeLatency {
                edge: e.name.clone(),
                listeners: e.listeners,
                p50_ms: e.latency_ms.p50,
                p99_ms: e.latency_ms.p99,
                added_p50_ms: e.latency_ms.p50 - o.latency_ms.p50,
                added_p99_ms: e.latency_ms.p99 - o.latency_ms.p99,
            })
            .collect(),
        None => Vec::new(),
    };
    ClusterReport {
        origin: origin.map(|o| o.name.clone()),
        edges_serving: edges.iter().map(|e| e.name.clone()).collect(),
        one_cascade_per_edge: cascades_out == Some(edges.len() as f64),
        cascades_out,
        cascade_latency,
        notes,
        run,
        ..ClusterReport::default()
    }
}

/// The origin's CPU per edge subscription: a floor-only event of its own, published on A (its
/// origin) with `origin_listeners` there; then a few listeners straight at B (B subscribes: one
/// edge), then ten times as many at C (two edges). Each step is measured for `step_s` once its
/// listeners are connected. The edges' listener counts differ on purpose: an edge costs the
/// origin one subscription whatever it serves.
async fn cascade_cpu(
    cluster: &TestCluster,
    profile: &Profile,
    caps: [u32; 3],
    step_s: f64,
) -> anyhow::Result<Vec<CostStep>> {
    let (a, b, c) = (cluster.node(NODES[0])?, cluster.node(NODES[1])?, cluster.node(NODES[2])?);
    let pid = a.pid().context("node A is not running")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    // Within each node's room (a listener beyond it would be sent elsewhere).
    let on_a = (caps[0] / 2).clamp(1, 100);
    let (on_b, on_c) = ((on_a / 10).clamp(1, caps[1]), on_a.min(caps[2] / 2).max(1));
    let mut cost_profile = profile.clone();
    cost_profile.name = format!("{} (cascade cost)", profile.name);
    cost_profile.languages.clear();
    cost_profile.listeners.count = on_a + on_b + on_c;
    cost_profile.listeners.bursts.clear();
    let event = crate::run::create_event(&http, &a.base, ADMIN, &cost_profile, false).await?;
    let id = event.id.as_str().to_owned();
    let measured = async {
        let local_ip = engine::local_ip_towards(IpAddr::V4(a.ip))?;
        let publisher = Worker::start("cost-floor".into(), Impairment::default(), false)?;
        let offer = engine::offer(Endpoint::Own(local_ip), true, 0)?;
        let token = event.floor.token.as_deref().context("no floor token")?;
        let (_, answer) = engine::post_offer(&http, &event.floor.whip_url, Some(token), &offer.sdp).await?;
        publisher.send(Command::Add {
            id: 0,
            peer: Box::new(offer.accept(&answer, Some(Voice::new(0, 0)?), false)?),
        })?;
        let listening = Worker::start("cost-listen".into(), Impairment::default(), true)?;
        let url = |node: &ClusterNode| format!("{}/whep/{id}/{}", node.base, profile.floor_language);
        // The run's event is gone, and its listeners and cascades with it.
        until_no_listeners(cluster).await?;
        until_cascades(cluster, 0.0).await.context("the run's cascades did not end")?;
        let mut joined = 0u32;
        let mut steps = Vec::new();
        for (edges, (group, node), count) in [(0u32, (0, a), on_a), (1, (1, b), on_b), (2, (2, c), on_c)] {
            for _ in 0..count {
                let offer = engine::offer(Endpoint::Own(local_ip), false, 1)?;
                let (session, answer) = engine::post_offer(&http, &url(node), None, &offer.sdp).await?;
                anyhow::ensure!(
                    engine::node_of(&session) == node.base,
                    "a listener sent to {} was served on {session}",
                    node.name
                );
                joined += 1;
                let mut ready = offer.accept(&answer, None, false)?;
                ready.group = group;
                listening.send(Command::Add { id: u64::from(joined), peer: Box::new(ready) })?;
            }
            until(Duration::from_secs(15), || listening.live.lock().is_ok_and(|l| l.connected >= joined))
                .await
                .with_context(|| format!("{joined} listeners did not connect"))?;
            until_cascades(cluster, f64::from(edges)).await?;
            // The joins' handshakes are over; what is left is the steady forwarding.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = latency_by_group(&listening);
            let monitor = Monitor::new(Some(pid));
            tokio::time::sleep(Duration::from_secs_f64(step_s)).await;
            let cpu = monitor.totals().map(|t| t.0).context("no CPU reading of node A")?;
            let after = latency_by_group(&listening);
            let latency_p50_ms = [a, b, c]
                .iter()
                .zip(after.iter().zip(before.iter().chain(std::iter::repeat(&LatencyHistogram::default()))))
                .take(group + 1)
                .map(|(node, (after, before))| {
                    let counts = after.counts.iter().zip(&before.counts).map(|(x, y)| x.saturating_sub(*y));
                    (node.name.clone(), LatencyHistogram { counts: counts.collect() }.quantile_ms(0.5))
                })
                .collect();
            let cascades_out = cascades_out(cluster).await?;
            steps.push(CostStep {
                edges,
                origin_listeners: on_a,
                edge_listeners: [on_b, on_c].into_iter().take(edges as usize).collect(),
                cascades_out,
                origin_cpu_percent: cpu,
                latency_p50_ms,
            });
        }
        let _ = listening.finish();
        let _ = publisher.finish();
        anyhow::Ok(steps)
    }
    .await;
    let _ = http.delete(format!("{}/api/v1/events/{id}", a.base)).bearer_auth(ADMIN).send().await;
    measured
}

/// A worker's whole-run latency histograms by group, as they are now.
fn latency_by_group(worker: &Worker) -> Vec<LatencyHistogram> {
    worker.live.lock().map(|l| l.groups.clone()).unwrap_or_default()
}

/// `tolk_cluster_cascades_out` on node A.
async fn cascades_out(cluster: &TestCluster) -> anyhow::Result<f64> {
    Ok(cluster.metric(NODES[0], "tolk_cluster_cascades_out ").await?.unwrap_or(0.0))
}

/// Wait until every node's record in Redis says it serves no listener, and a heartbeat more
/// (500 ms; every node has then read the others' records and places by them).
async fn until_no_listeners(cluster: &TestCluster) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut serving = Vec::new();
        for name in NODES {
            let record = cluster.redis.get(&format!("tolk:node:{name}")).await?;
            let listeners = record
                .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok())
                .and_then(|v| v["listeners"].as_u64());
            if listeners != Some(0) {
                serving.push(format!("{name}: {listeners:?}"));
            }
        }
        if serving.is_empty() {
            tokio::time::sleep(Duration::from_millis(600)).await;
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the run's listeners are still served: {}",
            serving.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until node A counts `n` cascades out.
async fn until_cascades(cluster: &TestCluster, n: f64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = cascades_out(cluster).await?;
        if now == n {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "node A counts {now} cascades out, not {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `ready` holds, checking every 20 ms.
async fn until(within: Duration, ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !ready() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The cluster report in Markdown (the run's own report.md has the rest).
pub fn markdown(report: &ClusterReport) -> String {
    use std::fmt::Write as _;
    let mut md = String::from("# Cluster run\n\n");
    let caps: Vec<String> = report.capacities.iter().map(|(n, c)| format!("{n} {c}")).collect();
    let _ = writeln!(
        md,
        "Three nodes, listeners joining through a; capacities {}. Profile {}, {} listeners planned, {:.0} s.\n",
        caps.join(", "),
        report.run.profile,
        report.run.joins.planned,
        report.run.duration_s
    );
    md.push_str("| Node | Role | Listeners | Loss | p50 | p99 | CPU | Cascades out |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for n in &report.run.nodes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} % | {:.2} ms | {:.2} ms | {} | {} |",
            n.name,
            n.role.as_deref().unwrap_or("-"),
            n.listeners,
            n.loss.percent,
            n.latency_ms.p50,
            n.latency_ms.p99,
            n.cpu_percent.map_or_else(|| "-".to_owned(), |c| format!("{c:.1} %")),
            n.cascades_out.map_or_else(|| "-".to_owned(), |c| format!("{c:.0}")),
        );
    }
    let _ = writeln!(
        md,
        "\nAll listeners: {} joined, {} failed, loss {:.3} %, p50 {:.2} ms, p99 {:.2} ms.\n",
        report.run.joins.joined,
        report.run.joins.failed,
        report.run.loss.percent,
        report.run.latency_ms.p50,
        report.run.latency_ms.p99
    );
    md.push_str("## What the cascade adds\n\n| Edge | Listeners | p50 | p99 | Added p50 | Added p99 |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|\n");
    for e in &report.cascade_latency {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} ms | {:.2} ms | {:+.2} ms | {:+.2} ms |",
            e.edge, e.listeners, e.p50_ms, e.p99_ms, e.added_p50_ms, e.added_p99_ms
        );
    }
    let _ = writeln!(
        md,
        "\nCascades out of the origin ({}): {} for {} edge(s) serving listeners: {}.\n",
        report.origin.as_deref().unwrap_or("not found"),
        report.cascades_out.map_or_else(|| "not read".to_owned(), |c| format!("{c:.0}")),
        report.edges_serving.len(),
        if report.one_cascade_per_edge { "one per edge" } else { "NOT one per edge" }
    );
    if !report.cascade_cpu.is_empty() {
        md.push_str("## The origin's CPU per edge\n\n");
        md.push_str(
            "| Edges | Origin listeners | Edge listeners | Cascades out | Origin CPU | p50 by node |\n",
        );
        md.push_str("|---:|---:|---|---:|---:|---|\n");
        for s in &report.cascade_cpu {
            let p50: Vec<String> = s.latency_p50_ms.iter().map(|(n, p)| format!("{n} {p:.2} ms")).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {:?} | {:.0} | {:.2} % | {} |",
                s.edges,
                s.origin_listeners,
                s.edge_listeners,
                s.cascades_out,
                s.origin_cpu_percent,
                p50.join(", ")
            );
        }
        let per_edge: Vec<String> =
            report.origin_cpu_per_edge_percent.iter().map(|d| format!("{d:+.2} %")).collect();
        let _ =
            writeln!(md, "\nEach edge added, in turn: {} of a core on the origin.\n", per_edge.join(", "));
    }
    for note in report.run.notes.iter().chain(&report.notes) {
        let _ = writeln!(md, "- {note}");
    }
    md
}
