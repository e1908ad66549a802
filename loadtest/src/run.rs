//! One load run: create the event through the API, publish the floor and the booths (speech-like
//! Opus, stamped), drive handovers, bring the listeners in as the profile says, switch channels,
//! sample the relay and the listeners every second (with a progress line), and build the report.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tolk_relay::api::{EventView, InterpreterView, Problem};

use crate::engine::{self, AudioCheck, Command, Endpoint, Impairment, Voice, Worker, WorkerSender};
use crate::profile::{Join, Profile};
use crate::results::{Histogram, Joins, Loss, Percentiles, RelayUsage, RunReport, Sample, ThreadCpu};
use crate::sysmon::Monitor;
use crate::tally::{LATENCY_BUCKET_US, LatencyHistogram, Tally};
use crate::webrtc_rs::RsListener;

/// What the listeners connect to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RelayTarget {
    /// Tolk: the event is made through its API; the floor arrives as plain RTP (`rtp_floor`) or
    /// over WHIP.
    Tolk { rtp_floor: bool },
    /// Janus's streaming plugin: listeners watch `mountpoint`; the floor is plain RTP to `rtp_in`;
    /// listeners' candidates are on `listener_ip`.
    Janus { mountpoint: u64, rtp_in: std::net::SocketAddr, listener_ip: std::net::IpAddr },
}

/// How to run a profile.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tolk or Janus.
    pub relay: RelayTarget,
    /// The relay's base URL, e.g. http://127.0.0.1:8080.
    pub target: String,
    pub admin_token: String,
    /// Where to write the report (None: only return it).
    pub report_dir: Option<PathBuf>,
    /// The relay's pid for CPU and memory; None: found from the target's port if local.
    pub relay_pid: Option<u32>,
    /// Listener worker threads.
    pub workers: usize,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Override the profile's listener count (the capacity search).
    pub listeners: Option<u32>,
    /// Override the profile's duration.
    pub duration_s: Option<f64>,
    /// Stop early once three seconds in a row lose more than this percent or have a p99 above
    /// this many ms (the capacity search).
    pub stop_when: Option<(f64, f64)>,
    /// The nodes of a cluster (empty: one relay). Listeners are grouped by the node that serves
    /// them whatever this says; these add names, CPU and the cluster's metrics to the report.
    pub nodes: Vec<NodeTarget>,
}

impl RunOptions {
    /// A run against Tolk at `target` (its floor over WHIP) with one listener worker, no report
    /// directory, no progress line, the profile as it is: what the tests start from.
    pub fn tolk(target: String, admin_token: String) -> Self {
        Self {
            relay: RelayTarget::Tolk { rtp_floor: false },
            target,
            admin_token,
            report_dir: None,
            relay_pid: None,
            workers: 1,
            progress: false,
            listeners: None,
            duration_s: None,
            stop_when: None,
            nodes: Vec::new(),
        }
    }
}

/// A node of a cluster under test.
#[derive(Debug, Clone, Default)]
pub struct NodeTarget {
    pub name: String,
    /// Its base URL, as its session URLs start (`http://10.77.3.11:8080`).
    pub base: String,
    /// Its process, for CPU and memory.
    pub pid: Option<u32>,
    /// Its Prometheus metrics (`http://10.77.3.11:9464/metrics`).
    pub metrics_url: Option<String>,
}

/// One listener in this many decrypts every packet (latency); the others count from the SRTP
/// header (loss, jitter) — see `engine::Peer::light`.
pub const FULL_EVERY: usize = 10;

/// A listener as the orchestrator knows it.
struct Handle {
    worker: usize,
    session: String,
    channel: usize,
}

/// Shared by the join tasks.
#[derive(Default)]
struct Joined {
    handles: HashMap<u64, Handle>,
    errors: HashMap<String, u32>,
    ok: u32,
    failed: u32,
    /// The nodes that served listeners (their base URLs), in the order first seen: a node's
    /// index is its latency group in the workers.
    nodes: Vec<String>,
    /// Each listener's node (an index in `nodes`), whether it is still there or not.
    node_of: HashMap<u64, usize>,
}

impl Joined {
    /// The index of the node a session URL is on.
    fn node(&mut self, session_url: &str) -> usize {
        let node = engine::node_of(session_url);
        match self.nodes.iter().position(|n| *n == node) {
            Some(i) => i,
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }
}

/// An interpreter of a booth: its token, and the node its booth session is on (where its
/// booth actions go).
#[derive(Debug, Clone)]
struct Interpreter {
    token: String,
    base: String,
}

pub async fn run(profile: &Profile, options: &RunOptions) -> anyhow::Result<RunReport> {
    tolk_relay::bbb::install_default_crypto();
    let profile = profile.overridden(options.listeners, options.duration_s);
    // Redirects are the listeners' to follow (`engine::post_offer_as`): a cluster's 307 names
    // the node that serves them.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = options.target.trim_end_matches('/').to_owned();
    let started_at = chrono::Utc::now();

    let report = match options.relay {
        RelayTarget::Tolk { rtp_floor } => {
            let event = create_event(&http, &base, &options.admin_token, &profile, rtp_floor).await?;
            let id = event.id.as_str().to_owned();
            let recorded = match profile.recording {
                true => crate::recording::until_recording(&http, &base, &options.admin_token, &id).await,
                false => Ok(()),
            };
            let mut outcome = match recorded {
                Ok(()) => match Run::start(&http, &base, &id, &profile, options, started_at).await {
                    Ok(run) => run.drive(Some(&event)).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if profile.recording
                && let Ok(report) = &mut outcome
            {
                let files = crate::recording::stop_and_list(&http, &base, &options.admin_token, &id).await;
                match files {
                    Ok(files) => report.recording = Some(files),
                    Err(e) => report.notes.push(format!("The recording's files could not be listed: {e:#}")),
                }
            }
            // Leave nothing behind on the relay, whatever happened.
            let _ = http
                .delete(format!("{base}/api/v1/events/{id}"))
                .bearer_auth(&options.admin_token)
                .send()
                .await;
            outcome?
        }
        RelayTarget::Janus { .. } => {
            if !profile.languages.is_empty() {
                bail!("Janus has no interpretation channels: run it with a floor-only profile");
            }
            Run::start(&http, &base, "", &profile, options, started_at).await?.drive(None).await?
        }
    };
    if let Some(dir) = &options.report_dir {
        crate::report::write_run(dir, &report)?;
    }
    Ok(report)
}

pub(crate) async fn create_event(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    profile: &Profile,
    rtp_floor: bool,
) -> anyhow::Result<EventView> {
    let now = chrono::Utc::now();
    let response = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(token)
        .json(&json!({
            "title": format!("Load test: {}", profile.name),
            "floor_language": profile.floor_language,
            "languages": profile.languages,
            "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::seconds(profile.duration_s as i64 + 3600)).to_rfc3339(),
            "expected_listeners": profile.total_listeners().max(1),
            "floor": {"kind": if rtp_floor { "rtp" } else { "whip" }},
            "recording": profile.recording.then(|| json!({"channels": "all"})),
        }))
        .send()
        .await
        .with_context(|| format!("cannot reach the relay at {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 201 {
        bail!(
            "creating the event answered {status}: {}",
            serde_json::from_value::<Problem>(body.clone()).map_or_else(|_| body.to_string(), |p| p.detail)
        );
    }
    serde_json::from_value(body).context("the relay's answer to creating the event")
}

/// What the phases of one run share: where the relay is, what to play, the generator's threads,
/// and the state the background tasks report into.
struct Run<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    /// The event on Tolk ("" for Janus).
    id: &'a str,
    profile: &'a Profile,
    options: &'a RunOptions,
    started_at: chrono::DateTime<chrono::Utc>,
    /// The address the peers put in their candidates.
    local_ip: IpAddr,
    /// The floor's and the booths' WebRTC senders.
    publisher: Worker,
    /// The floor as plain RTP (Janus, or Tolk's RTP floor); sends until the run is dropped.
    rtp_floor: Option<engine::RtpFloor>,
    /// The listeners' threads.
    workers: Vec<Worker>,
    relay_pid: Option<u32>,
    notes: Vec<String>,
    /// Tells the handovers and the switches to end.
    stop: Arc<AtomicBool>,
    joined: Arc<Mutex<Joined>>,
    /// The webrtc-rs listeners, and the latency they measured.
    rs: Arc<Mutex<Vec<RsListener>>>,
    rs_latency: Arc<Mutex<LatencyHistogram>>,
}

/// What the nodes of a cluster said at the end of the sampling: their CPU (mean over the run)
/// and their metrics.
#[derive(Default)]
struct NodesSeen {
    cpu: Vec<Option<(f64, f64)>>,
    metrics: Vec<Option<NodeMetrics>>,
}

/// The cluster's metrics of one node.
#[derive(Debug, Clone, Copy, Default)]
struct NodeMetrics {
    cascades_out: f64,
    origin_events: f64,
    edge_events: f64,
}

/// The tasks that run beside the sampling.
struct Background {
    handovers: Option<JoinHandle<u32>>,
    joiner: JoinHandle<()>,
    switcher: Option<JoinHandle<u32>>,
    churn: Option<JoinHandle<u32>>,
}

/// What the sampling saw.
struct Sampled {
    timeline: Vec<Sample>,
    /// Most listeners receiving at once.
    peak: u32,
    monitor: Monitor,
    nodes: NodesSeen,
}

/// Everything measured, gathered at the end for the report.
struct Measured {
    joins: Joins,
    tallies: Vec<Tallied>,
    latency: LatencyHistogram,
    /// By node: its base URL, its listeners' latency (str0m listeners), what it said.
    nodes: Vec<(String, LatencyHistogram)>,
    node_of: HashMap<u64, usize>,
    nodes_seen: NodesSeen,
    timeline: Vec<Sample>,
    relay: RelaySeen,
    /// When the last join was planned, seconds after the ramp's start.
    ramp_end_s: f64,
    /// When the workers were told to finish (what every listener should have had by then).
    ended: Instant,
}

impl<'a> Run<'a> {
    /// The generator's threads, started; nothing sent yet.
    async fn start(
        http: &'a reqwest::Client,
        base: &'a str,
        id: &'a str,
        profile: &'a Profile,
        options: &'a RunOptions,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Run<'a>> {
        let impairment = Impairment {
            loss_percent: profile.impairment.loss_percent,
            jitter: Duration::from_secs_f64(profile.impairment.jitter_ms / 1000.0),
        };
        let local_ip = peers_ip(base).await?;
        let publisher = Worker::start("load-senders".into(), Impairment::default(), false)?;
        let workers: Vec<Worker> = (0..options.workers.max(1))
            .map(|i| Worker::start(format!("load-listen-{i}"), impairment, true))
            .collect::<anyhow::Result<_>>()?;
        let relay_pid = options.relay_pid.or_else(|| {
            reqwest::Url::parse(base)
                .ok()
                .and_then(|u| u.port_or_known_default())
                .and_then(crate::sysmon::pid_listening_on)
        });
        let mut notes = Vec::new();
        if relay_pid.is_none() {
            notes
                .push("The relay's process was not found (give --relay-pid): no relay CPU or memory.".into());
        } else if relay_pid == Some(std::process::id()) {
            notes.push(
                "The relay runs inside the generator's process: its CPU includes the generator's.".into(),
            );
        }
        Ok(Run {
            http,
            base,
            id,
            profile,
            options,
            started_at,
            local_ip,
            publisher,
            rtp_floor: None,
            workers,
            relay_pid,
            notes,
            stop: Arc::default(),
            joined: Arc::new(Mutex::new(Joined {
                nodes: options.nodes.iter().map(|n| engine::node_of(&n.base)).collect(),
                ..Joined::default()
            })),
            rs: Arc::default(),
            rs_latency: Arc::default(),
        })
    }

    /// The run, phase by phase, for the event (None for Janus).
    async fn drive(mut self, event: Option<&EventView>) -> anyhow::Result<RunReport> {
        let booths = self.start_senders(event).await?;
        let handovers = self.spawn_handovers(booths);
        let plan = self.profile.joins();
        let planned = plan.len() as u32;
        let ramp_end_s = plan.last().map_or(0.0, |j| j.at_s);
        let ramp_start = tokio::time::Instant::now();
        let (joiner, joining) = self.spawn_joiner(plan, ramp_start);
        let switcher = self.spawn_switcher();
        let churn = self.spawn_churn(joining);
        let sampled = self.sample_until_end(ramp_start, planned).await;
        self.stop_background(Background { handovers, joiner, switcher, churn }, ramp_end_s);
        self.collect(sampled, planned, ramp_end_s).await
    }

    /// The floor and the booths: publish them, wait until all send, put each booth's first
    /// interpreter on air. Returns each language's interpreters.
    async fn start_senders(&mut self, event: Option<&EventView>) -> anyhow::Result<Vec<Vec<Interpreter>>> {
        self.start_floor(event).await?;
        let booths = self.start_booths().await?;
        let senders = u32::from(self.rtp_floor.is_none()) + booths.iter().map(Vec::len).sum::<usize>() as u32;
        let publisher = &self.publisher;
        wait_for(Duration::from_secs(15), || {
            publisher.live.lock().map(|l| l.senders >= senders).unwrap_or(false)
        })
        .await
        .context("the floor and booth senders did not connect within 15 s")?;
        for (language, interpreters) in self.profile.languages.iter().zip(&booths) {
            if let Some(first) = interpreters.first() {
                booth_action(self.http, first, "on-air", json!({"language": language})).await?;
            }
        }
        Ok(booths)
    }

    /// The floor: plain RTP from a thread of its own, or a WHIP sender on the publisher.
    async fn start_floor(&mut self, event: Option<&EventView>) -> anyhow::Result<()> {
        let floor = || event.map(|e| &e.floor).context("no event");
        match self.options.relay {
            RelayTarget::Janus { rtp_in, .. } => self.rtp_floor = Some(engine::RtpFloor::start(rtp_in)?),
            RelayTarget::Tolk { rtp_floor: true } => {
                let url = floor()?.rtp_url.as_deref().context("no floor rtp_url")?;
                self.rtp_floor = Some(engine::RtpFloor::start(url.trim_start_matches("rtp://").parse()?)?);
            }
            RelayTarget::Tolk { rtp_floor: false } => {
                let floor_url = floor()?.whip_url.as_str();
                let floor_token = floor()?.token.as_deref().context("no floor token")?;
                let offer = engine::offer(Endpoint::Own(self.local_ip), true, 0)?;
                let (_, answer) = engine::post_offer(self.http, floor_url, Some(floor_token), &offer.sdp)
                    .await
                    .context("floor WHIP")?;
                let ready = offer.accept(&answer, Some(Voice::new(0, 0)?), false)?;
                self.publisher.send(Command::Add { id: 0, peer: Box::new(ready) })?;
            }
        }
        Ok(())
    }

    /// Every booth's interpreters, each publishing over WHIP. Returns them per language.
    async fn start_booths(&self) -> anyhow::Result<Vec<Vec<Interpreter>>> {
        let (http, base) = (self.http, self.base);
        let mut booths: Vec<Vec<Interpreter>> = Vec::new();
        let per_booth = self.profile.interpreters.per_booth.max(1);
        for (li, language) in self.profile.languages.iter().enumerate() {
            let mut tokens = Vec::new();
            for j in 0..per_booth {
                let name = format!("{language} {}", (b'A' + j as u8) as char);
                let link: InterpreterView = http
                    .post(format!("{base}/api/v1/events/{}/interpreters", self.id))
                    .bearer_auth(&self.options.admin_token)
                    // Agreeing to be recorded when the run records: their voices are then in
                    // the files (without it, the files hold silence where they speak).
                    .json(&json!({"name": name, "languages": [language], "recording_consent": self.profile.recording}))
                    .send()
                    .await?
                    .json()
                    .await?;
                let token = link.token.context("no booth token")?;
                let source = 1 + (li as u32 * per_booth + j) as u16;
                let offer = engine::offer(Endpoint::Own(self.local_ip), true, 2)?;
                // In a cluster, the booth session is on the event's origin (the entry node
                // forwards the publish there): its booth actions go there too.
                let (session, answer) =
                    engine::post_offer(http, &format!("{base}/whip/booth"), Some(&token), &offer.sdp)
                        .await
                        .with_context(|| format!("booth WHIP for {language}"))?;
                let ready =
                    offer.accept(&answer, Some(Voice::new(source, u64::from(source) * 37)?), false)?;
                self.publisher.send(Command::Add { id: u64::from(source), peer: Box::new(ready) })?;
                let interpreter = Interpreter { token, base: engine::node_of(&session) };
                if self.profile.recording {
                    // Said again from the booth: a link's consent reaches a recording that is
                    // running already only this way.
                    booth_action(http, &interpreter, "consent", json!({"recording_consent": true})).await?;
                }
                tokens.push(interpreter);
            }
            booths.push(tokens);
        }
        Ok(booths)
    }

    /// Handovers, staggered over the booths, where booths have more than one interpreter. The
    /// task ends with the number made.
    fn spawn_handovers(&self, booths: Vec<Vec<Interpreter>>) -> Option<JoinHandle<u32>> {
        let every_s = self.profile.interpreters.handover_every_s;
        (self.profile.interpreters.per_booth.max(1) > 1 && every_s > 0.0).then(|| {
            let (http, stop) = (self.http.clone(), self.stop.clone());
            tokio::spawn(handovers(http, stop, booths, Duration::from_secs_f64(every_s)))
        })
    }

    /// The listeners: each joins at its planned time, from `ramp_start`.
    fn spawn_joiner(
        &self,
        plan: Vec<Join>,
        ramp_start: tokio::time::Instant,
    ) -> (JoinHandle<()>, Arc<Joiner>) {
        let profile = self.profile;
        let joiner = Joiner {
            http: self.http.clone(),
            base: self.base.to_owned(),
            id: self.id.to_owned(),
            languages: (0..profile.channels()).map(|c| profile.channel_language(c).to_owned()).collect(),
            decode_every: profile.listeners.decode_every.max(1) as usize,
            commands: self.workers.iter().map(|w| w.sender()).collect(),
            relay: self.options.relay,
            rs_every: profile.listeners.webrtc_rs_every as usize,
            local_ip: self.local_ip,
            joined: self.joined.clone(),
            rs: self.rs.clone(),
            rs_latency: self.rs_latency.clone(),
        };
        let joiner = Arc::new(joiner);
        (tokio::spawn(joiner.clone().run(plan, ramp_start)), joiner)
    }

    /// Listeners leaving and replaced (Tolk only), at the profile's `leaves_per_minute`.
    fn spawn_churn(&self, joiner: Arc<Joiner>) -> Option<JoinHandle<u32>> {
        let tolk = matches!(self.options.relay, RelayTarget::Tolk { .. });
        let rate = self.profile.listeners.leaves_per_minute / 60.0;
        (tolk && rate > 0.0).then(|| {
            let (joined, count) = (self.joined.clone(), self.joined.clone());
            let listeners = move || count.lock().map_or(0, |j| j.handles.len());
            let pick = move || {
                let mut j = joined.lock().ok()?;
                let ids: Vec<u64> = j.handles.keys().copied().collect();
                let id = *ids.get(rand::random_range(0..ids.len().max(1)))?;
                let h = j.handles.remove(&id)?;
                Some(crate::churn::Leave { id, session: h.session, worker: h.worker })
            };
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(1_000_000));
            let replace = move |leave: crate::churn::Leave| {
                let (joiner, next) = (joiner.clone(), next.clone());
                async move {
                    let _ = joiner.commands[leave.worker].send(Command::Remove { id: leave.id });
                    let _ = joiner.http.delete(&leave.session).send().await;
                    let channel = rand::random_range(0..joiner.languages.len());
                    let url = format!("{}/whep/{}/{}", joiner.base, joiner.id, joiner.languages[channel]);
                    joiner.join(next.fetch_add(1, Ordering::Relaxed), channel, url).await;
                }
            };
            tokio::spawn(crate::churn::run(self.stop.clone(), rate, listeners, pick, replace))
        })
    }

    /// Channel switches (Tolk only), at the profile's rate per listener. The task ends with the
    /// number made.
    fn spawn_switcher(&self) -> Option<JoinHandle<u32>> {
        let tolk = matches!(self.options.relay, RelayTarget::Tolk { .. });
        let profile = self.profile;
        (tolk && profile.listeners.switches_per_minute > 0.0).then(|| {
            let channels = profile.channels();
            let switcher = Switcher {
                http: self.http.clone(),
                joined: self.joined.clone(),
                stop: self.stop.clone(),
                rate: profile.listeners.switches_per_minute / 60.0,
                channels,
                languages: (0..channels).map(|c| profile.channel_language(c).to_owned()).collect(),
                commands: self.workers.iter().map(|w| w.sender()).collect(),
            };
            tokio::spawn(switcher.run())
        })
    }

    /// Sample the relay and the listeners every second until the run's end (or until the
    /// capacity search's limits are broken), with a progress line if asked.
    async fn sample_until_end(&mut self, ramp_start: tokio::time::Instant, planned: u32) -> Sampled {
        let mut monitor = Monitor::new(self.relay_pid);
        let mut node_monitors: Vec<Option<Monitor>> =
            self.options.nodes.iter().map(|n| n.pid.map(|pid| Monitor::new(Some(pid)))).collect();
        let run_end = ramp_start + Duration::from_secs_f64(self.profile.duration_s);
        let mut timeline: Vec<Sample> = Vec::new();
        let mut last = (0u64, 0u64);
        let mut peak = 0u32;
        let mut tick = tokio::time::interval_at(ramp_start + Duration::from_secs(1), Duration::from_secs(1));
        while tokio::time::Instant::now() < run_end {
            tick.tick().await;
            let (connected, sample) = self.sample(ramp_start, &mut monitor, &mut last);
            for node in node_monitors.iter_mut().flatten() {
                node.sample();
            }
            peak = peak.max(connected);
            if self.options.progress {
                progress(&sample, self.profile.duration_s, planned, &self.joined);
            }
            timeline.push(sample);
            if let Some((max_loss, max_p99)) = self.options.stop_when {
                let over = |s: &Sample| s.loss_percent > max_loss || s.latency_p99 > max_p99;
                let n = timeline.len();
                if n >= 5 && timeline[n - 3..].iter().all(over) {
                    self.notes.push(format!(
                        "Stopped at {connected} listeners: loss above {max_loss} % or p99 above {max_p99} ms for 3 s."
                    ));
                    break;
                }
            }
        }
        if self.options.progress {
            eprintln!();
        }
        // The nodes, while the event and its listeners are still there.
        let mut nodes = NodesSeen::default();
        for (node, monitor) in self.options.nodes.iter().zip(&node_monitors) {
            let cpu = monitor.as_ref().and_then(|m| Some((m.totals()?.0, m.rss_peak)));
            nodes.cpu.push(cpu);
            let metrics = match &node.metrics_url {
                Some(url) => node_metrics(self.http, url).await.ok(),
                None => None,
            };
            nodes.metrics.push(metrics);
        }
        Sampled { timeline, peak, monitor, nodes }
    }

    /// One second's sample: the workers' counts and latency window (emptied), the relay's
    /// reading. `last`: the packets received and expected at the previous sample. Returns the
    /// listeners connected too.
    fn sample(
        &self,
        ramp_start: tokio::time::Instant,
        monitor: &mut Monitor,
        last: &mut (u64, u64),
    ) -> (u32, Sample) {
        let mut window = LatencyHistogram::default();
        let (mut connected, mut packets, mut expected) = (0u32, 0u64, 0u64);
        for w in &self.workers {
            if let Ok(mut live) = w.live.lock() {
                connected += live.connected;
                packets += live.packets;
                expected += live.expected;
                window.merge(&live.window);
                live.window = LatencyHistogram::default();
            }
        }
        let reading = monitor.sample();
        let (dp, de) = (packets.saturating_sub(last.0), expected.saturating_sub(last.1));
        *last = (packets, expected);
        let sample = Sample {
            t: ramp_start.elapsed().as_secs_f64(),
            listeners: connected,
            packets_per_s: dp as f64,
            loss_percent: if de > 0 { de.saturating_sub(dp) as f64 / de as f64 * 100.0 } else { 0.0 },
            latency_p50: window.quantile_ms(0.5),
            latency_p99: window.quantile_ms(0.99),
            relay_cpu_percent: reading.relay_cpu_percent,
            relay_rss_mib: reading.relay_rss_mib,
            generator_cpu_percent: reading.generator_cpu_percent,
        };
        (connected, sample)
    }

    /// Stop the handovers, the joins and the switches; a note if joins were still planned.
    fn stop_background(&mut self, background: Background, ramp_end_s: f64) {
        self.stop.store(true, Ordering::Relaxed);
        let joins_done = background.joiner.is_finished();
        background.joiner.abort();
        if let Some(h) = background.handovers {
            h.abort();
        }
        if let Some(s) = background.switcher {
            s.abort();
        }
        if let Some(c) = background.churn {
            c.abort();
        }
        if !joins_done {
            self.notes.push(format!(
                "The run ended before every planned join was made: the join ramp ({ramp_end_s:.0} s) outlasted the run."
            ));
        }
    }

    /// Collect every packet's latency (the workers' whole-run histograms) and every tally,
    /// finish the generator's threads, hang up the webrtc-rs listeners, and build the report.
    async fn collect(self, sampled: Sampled, planned: u32, ramp_end_s: f64) -> anyhow::Result<RunReport> {
        let Sampled { timeline, peak, monitor, nodes: nodes_seen } = sampled;
        let relay = RelaySeen {
            pid: self.relay_pid,
            totals: monitor.totals(),
            rss_before: monitor.rss_start,
            rss_peak: monitor.rss_peak,
        };
        let mut latency = LatencyHistogram::default();
        let mut by_group: Vec<LatencyHistogram> = Vec::new();
        for w in &self.workers {
            if let Ok(live) = w.live.lock() {
                latency.merge(&live.total);
                if by_group.len() < live.groups.len() {
                    by_group.resize_with(live.groups.len(), LatencyHistogram::default);
                }
                for (total, group) in by_group.iter_mut().zip(&live.groups) {
                    total.merge(group);
                }
            }
        }
        let mut tallies: Vec<Tallied> = Vec::new();
        let ended = Instant::now();
        for w in self.workers {
            tallies.extend(w.finish()?);
        }
        let _ = self.publisher.finish();
        let (joins, node_names, mut node_of) = {
            let j = self.joined.lock().map_err(|_| anyhow::anyhow!("join state poisoned"))?;
            (j.joins(planned, peak), j.nodes.clone(), j.node_of.clone())
        };
        let rs_count = hang_up_webrtc_rs(
            self.http,
            &self.rs,
            &self.rs_latency,
            &mut tallies,
            &mut latency,
            &mut node_of,
            &node_names,
        )
        .await;
        by_group.resize_with(node_names.len(), LatencyHistogram::default);
        let nodes = node_names.into_iter().zip(by_group).collect();
        let measured = Measured {
            joins,
            tallies,
            latency,
            nodes,
            node_of,
            nodes_seen,
            timeline,
            relay,
            ramp_end_s,
            ended,
        };
        let soak = self.profile.is_soak();
        let warm_from = ramp_end_s + self.profile.listeners.warmup_s;
        let mut report = build_report(self.profile, self.options, self.started_at, measured, self.notes);
        if soak {
            let notes = crate::churn::verdict(&report.timeline, warm_from, &report.loss);
            report.notes.extend(notes);
        }
        if rs_count > 0 {
            if let Some(str0m) = report.listener_stacks.first_mut() {
                str0m.1 = str0m.1.saturating_sub(rs_count);
            }
            report.listener_stacks.push(("webrtc-rs".into(), rs_count));
        }
        Ok(report)
    }
}

impl Joined {
    /// What the joins came to, with the failures' reasons most frequent first.
    fn joins(&self, planned: u32, peak: u32) -> Joins {
        let mut errors: Vec<(String, u32)> = self.errors.iter().map(|(k, v)| (k.clone(), *v)).collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.1));
        Joins { planned, joined: self.ok, failed: self.failed, errors, peak }
    }
}

/// The webrtc-rs listeners: their tallies and latency beside the others', then hang up. Returns
/// how many there were.
/// Their tallies go by their node too (`node_of`, indexes in `nodes`).
async fn hang_up_webrtc_rs(
    http: &reqwest::Client,
    rs: &Mutex<Vec<RsListener>>,
    rs_latency: &Mutex<LatencyHistogram>,
    tallies: &mut Vec<Tallied>,
    latency: &mut LatencyHistogram,
    node_of: &mut HashMap<u64, usize>,
    nodes: &[String],
) -> u32 {
    let rs: Vec<RsListener> = rs.lock().map(|mut v| v.drain(..).collect()).unwrap_or_default();
    let rs_count = rs.len() as u32;
    for (i, listener) in rs.into_iter().enumerate() {
        let id = 2_000_000_000 + i as u64;
        let node = engine::node_of(listener.session_url());
        if let Some(n) = nodes.iter().position(|known| *known == node) {
            node_of.insert(id, n);
        }
        tallies.push((id, listener.tally(), AudioCheck::default()));
        let _ = listener.close(http).await;
    }
    if let Ok(h) = rs_latency.lock() {
        latency.merge(&h);
    }
    rs_count
}

/// Hand each booth's turn to its next interpreter, one booth after the other, each booth once a
/// `period`, until `stop`. Returns the handovers made.
async fn handovers(
    http: reqwest::Client,
    stop: Arc<AtomicBool>,
    booths: Vec<Vec<Interpreter>>,
    period: Duration,
) -> u32 {
    let mut on_air = vec![0usize; booths.len()];
    let step = period / booths.len().max(1) as u32;
    let mut count = 0u32;
    let mut next = tokio::time::Instant::now() + step;
    let mut b = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(next).await;
        next += step;
        let tokens = &booths[b];
        let (from, to) = (on_air[b], (on_air[b] + 1) % tokens.len());
        if booth_action(&http, &tokens[to], "handover-request", json!({})).await.is_ok()
            && booth_action(&http, &tokens[from], "handover-accept", json!({})).await.is_ok()
        {
            on_air[b] = to;
            count += 1;
        }
        b = (b + 1) % booths.len();
    }
    count
}

/// What the join tasks share.
struct Joiner {
    http: reqwest::Client,
    base: String,
    id: String,
    /// Per channel: its language in the WHEP URL.
    languages: Vec<String>,
    /// One listener in this many decodes its audio.
    decode_every: usize,
    /// The listener workers, by index.
    commands: Vec<WorkerSender>,
    relay: RelayTarget,
    /// One listener in this many is a webrtc-rs one (0: none).
    rs_every: usize,
    local_ip: IpAddr,
    joined: Arc<Mutex<Joined>>,
    rs: Arc<Mutex<Vec<RsListener>>>,
    rs_latency: Arc<Mutex<LatencyHistogram>>,
}

impl Joiner {
    /// Start each join of the plan at its time after `ramp_start`; wait for all to end.
    async fn run(self: Arc<Self>, plan: Vec<Join>, ramp_start: tokio::time::Instant) {
        let mut tasks = tokio::task::JoinSet::new();
        for (n, join) in plan.into_iter().enumerate() {
            tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(join.at_s)).await;
            let url = format!("{}/whep/{}/{}", self.base, self.id, self.languages[join.channel]);
            let tolk = matches!(self.relay, RelayTarget::Tolk { .. });
            if tolk && self.rs_every > 0 && n % self.rs_every == self.rs_every / 2 {
                // A webrtc-rs listener: the interop sample.
                tasks.spawn(self.clone().join_webrtc_rs(url));
            } else {
                tasks.spawn(self.clone().join(n, join.channel, url));
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A webrtc-rs listener, kept until the end (its tally is read then).
    async fn join_webrtc_rs(self: Arc<Self>, url: String) {
        let result = RsListener::listen(&self.http, &url, self.rs_latency.clone()).await;
        if let Ok(mut j) = self.joined.lock() {
            match result {
                Ok(listener) => {
                    j.ok += 1;
                    j.node(listener.session_url());
                    if let Ok(mut rs) = self.rs.lock() {
                        rs.push(listener);
                    }
                }
                Err(e) => {
                    j.failed += 1;
                    *j.errors.entry(format!("webrtc-rs: {}", short(&e))).or_insert(0) += 1;
                }
            }
        }
    }

    /// Listener `n` on `channel` (at `url` on Tolk), handed to its worker.
    async fn join(self: Arc<Self>, n: usize, channel: usize, url: String) {
        let worker = n % self.commands.len();
        let result = self.connect(n, worker, &url).await;
        if let Ok(mut j) = self.joined.lock() {
            match result {
                Ok(session) => {
                    j.ok += 1;
                    let node = j.node(&session);
                    j.node_of.insert(n as u64 + 1_000, node);
                    j.handles.insert(n as u64 + 1_000, Handle { worker, session, channel });
                }
                Err(e) => {
                    j.failed += 1;
                    *j.errors.entry(short(&e)).or_insert(0) += 1;
                }
            }
        }
    }

    /// Negotiate listener `n` (WHEP on Tolk, the streaming plugin's watch on Janus) and add it
    /// to `worker`. Returns its session URL (on Janus, a description).
    async fn connect(&self, n: usize, worker: usize, url: &str) -> anyhow::Result<String> {
        let decode = n.is_multiple_of(self.decode_every);
        let command = &self.commands[worker];
        let posted = Instant::now();
        let (session, mut ready) = match self.relay {
            RelayTarget::Tolk { .. } => {
                let offer = engine::offer(command.endpoint(self.local_ip), false, 1)?;
                let client = Some(client_address(offer.local_ip(), n));
                let (session, answer) =
                    engine::post_offer_as(&self.http, url, None, &offer.sdp, client).await?;
                let mut ready = offer.accept(&answer, None, decode)?;
                // Its latency goes with the node's that serves it.
                ready.group = self.joined.lock().map_or(0, |mut j| j.node(&session));
                (session, ready)
            }
            RelayTarget::Janus { mountpoint, listener_ip, .. } => {
                let (watch, offer) =
                    crate::janus::JanusWatch::watch(&self.http, &self.base, mountpoint).await?;
                let (ready, answer) = engine::answer(listener_ip, &offer, decode)?;
                watch.start(&answer).await?;
                (format!("janus session {}", watch.session_id()), ready)
            }
        };
        ready.tally.posted_at = Some(posted);
        // Every tenth listener (and each decoding one) reads every packet's stamp.
        ready.light = !decode && !n.is_multiple_of(FULL_EVERY);
        command.send(Command::Add { id: n as u64 + 1_000, peer: Box::new(ready) })?;
        Ok(session)
    }
}

/// A switch to make: (listener, its session URL, its worker, the channel it goes to).
type Pick = (u64, String, usize, usize);

/// What the switching task needs.
struct Switcher {
    http: reqwest::Client,
    joined: Arc<Mutex<Joined>>,
    stop: Arc<AtomicBool>,
    /// Switches per listener per second.
    rate: f64,
    channels: usize,
    languages: Vec<String>,
    commands: Vec<WorkerSender>,
}

impl Switcher {
    /// Every 100 ms, switch the listeners owed a switch by then, until `stop`. Returns the
    /// switches made.
    async fn run(self) -> u32 {
        let mut owed = 0.0;
        let mut done = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(picks) = self.pick(&mut owed) else { break };
            for pick in picks {
                if self.switch(pick).await {
                    done += 1;
                }
            }
        }
        done
    }

    /// The switches owed in the last 100 ms, to random listeners and random other channels;
    /// their channels are updated already. None if the join state is poisoned.
    fn pick(&self, owed: &mut f64) -> Option<Vec<Pick>> {
        let channels = self.channels;
        let mut j = self.joined.lock().ok()?;
        *owed += self.rate * j.handles.len() as f64 * 0.1;
        let ids: Vec<u64> = j.handles.keys().copied().collect();
        let mut picks = Vec::new();
        while *owed >= 1.0 && !ids.is_empty() && channels > 1 {
            *owed -= 1.0;
            let id = ids[rand::random_range(0..ids.len())];
            if let Some(h) = j.handles.get_mut(&id) {
                let to = (h.channel + 1 + rand::random_range(0..channels - 1)) % channels;
                h.channel = to;
                picks.push((id, h.session.clone(), h.worker, to));
            }
        }
        Some(picks)
    }

    /// Ask for one switch; whether the relay made it.
    async fn switch(&self, (id, session, worker, to): Pick) -> bool {
        // Told before the request: the new channel's first packet may beat the 204.
        let _ = self.commands[worker].send(Command::Switching { id, at: Some(Instant::now()) });
        let ok = self
            .http
            .post(format!("{session}/channel"))
            .json(&json!({"language": self.languages[to]}))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 204);
        if !ok {
            let _ = self.commands[worker].send(Command::Switching { id, at: None });
        }
        ok
    }
}

/// Who listener `n` says it is (X-Forwarded-For): its own address on loopback (each listener
/// has one there); elsewhere all listeners share the generator's address, so each says it is a
/// client of its own in 198.18.0.0/15 (benchmarking addresses). A relay believes this only from
/// a proxy it trusts (a cluster under test trusts the generator): thousands of joins are then not
/// the one client's burst.
fn client_address(local: IpAddr, n: usize) -> IpAddr {
    if local.is_loopback() {
        return local;
    }
    let [_, a, b, c] = (n as u32 + 1).to_be_bytes();
    IpAddr::V4(std::net::Ipv4Addr::new(198, 18 + (a & 1), b, c))
}

/// The cluster's figures in a node's metrics.
async fn node_metrics(http: &reqwest::Client, url: &str) -> anyhow::Result<NodeMetrics> {
    let text = http.get(url).timeout(Duration::from_secs(5)).send().await?.error_for_status()?.text().await?;
    let value = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    Ok(NodeMetrics {
        cascades_out: value("tolk_cluster_cascades_out "),
        origin_events: value("tolk_cluster_events{role=\"origin\"}"),
        edge_events: value("tolk_cluster_events{role=\"edge\"}"),
    })
}

/// The address the generator's peers put in their candidates: the local one that routes to the
/// relay (127.0.0.1 on one machine; the namespace's own address when the generator runs in one).
async fn peers_ip(base: &str) -> anyhow::Result<std::net::IpAddr> {
    let url = reqwest::Url::parse(base).with_context(|| format!("{base} is not a URL"))?;
    let host = url.host_str().context("the target has no host")?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .with_context(|| format!("{host} does not resolve"))?;
    engine::local_ip_towards(addr.ip())
}

/// Wait until `ready` holds, checking every 20 ms.
async fn wait_for(within: Duration, ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !ready() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A booth action of `interpreter`, at the node its booth session is on.
async fn booth_action(
    http: &reqwest::Client,
    interpreter: &Interpreter,
    action: &str,
    body: Value,
) -> anyhow::Result<()> {
    let Interpreter { token, base } = interpreter;
    let response =
        http.post(format!("{base}/api/v1/booth/{action}")).bearer_auth(token).json(&body).send().await?;
    if !response.status().is_success() {
        bail!("booth {action} answered {}: {}", response.status(), response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// An error's first line, shortened: join failures are counted by reason.
fn short(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.lines().next().unwrap_or("").chars().take(120).collect()
}

fn progress(sample: &Sample, duration: f64, planned: u32, joined: &Mutex<Joined>) {
    let width = 30;
    let done = ((sample.t / duration).clamp(0.0, 1.0) * width as f64) as usize;
    let (ok, failed) = joined.lock().map(|j| (j.ok, j.failed)).unwrap_or((0, 0));
    let relay = sample.relay_cpu_percent.map_or(String::new(), |c| format!(" relay {c:.0}%"));
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    if !terminal && !(sample.t.round() as u64).is_multiple_of(5) {
        return;
    }
    eprint!(
        "{}[{}{}] {:>4.0}/{:.0} s  listeners {}/{} (failed {})  {:.0} pkt/s  loss {:.2}%  p99 {:.2} ms{}   ",
        if terminal { "\r" } else { "\n" },
        "#".repeat(done),
        ".".repeat(width - done),
        sample.t,
        duration,
        sample.listeners,
        planned,
        failed,
        sample.packets_per_s,
        sample.loss_percent,
        sample.latency_p99,
        relay,
    );
    let _ = ok; // shown as listeners connected
}

/// p50/p95/p99/max of values.
pub fn percentiles(mut values: Vec<f64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
    Percentiles { count: values.len() as u64, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1.0) }
}

/// What /proc said of the relay over the run.
struct RelaySeen {
    pid: Option<u32>,
    totals: Option<(f64, Vec<(String, f64)>)>,
    rss_before: Option<f64>,
    rss_peak: f64,
}

impl RelaySeen {
    /// The relay's CPU and memory, if it was watched; `peak`: most listeners at once.
    fn usage(self, peak: u32) -> Option<RelayUsage> {
        let RelaySeen { pid, totals, rss_before, rss_peak } = self;
        let (pid, (cpu, threads)) = (pid?, totals?);
        Some(RelayUsage {
            pid,
            cpu_percent: cpu,
            threads: threads.into_iter().map(|(name, cpu_percent)| ThreadCpu { name, cpu_percent }).collect(),
            rss_mib_start: rss_before.unwrap_or(0.0),
            rss_mib_peak: rss_peak,
            rss_kib_per_listener: if peak > 0 {
                (rss_peak - rss_before.unwrap_or(rss_peak)).max(0.0) * 1024.0 / f64::from(peak)
            } else {
                0.0
            },
        })
    }
}

/// A listener's tally as the workers hand it back: (id, tally, audio check).
type Tallied = (u64, Tally, AudioCheck);

fn build_report(
    profile: &Profile,
    options: &RunOptions,
    started_at: chrono::DateTime<chrono::Utc>,
    measured: Measured,
    notes: Vec<String>,
) -> RunReport {
    let Measured { joins, tallies, latency, nodes, node_of, nodes_seen, timeline, relay, ramp_end_s, ended } =
        measured;
    // The senders have ids below 1,000.
    let listeners: Vec<&Tallied> = tallies.iter().filter(|(id, _, _)| *id >= 1_000).collect();
    let first_audio = percentiles(listeners.iter().filter_map(|(_, t, _)| t.first_audio_ms()).collect());
    let jitter = percentiles(
        listeners.iter().filter(|(_, t, _)| t.packets > 10).map(|(_, t, _)| t.jitter_ms()).collect(),
    );
    let switch = percentiles(listeners.iter().flat_map(|(_, t, _)| t.switch_ms.iter().copied()).collect());
    let gaps =
        percentiles(listeners.iter().flat_map(|(_, t, _)| t.handover_gaps_ms.iter().copied()).collect());
    let latency = latency_summary(&latency);
    let generator_cpu =
        timeline.iter().map(|s| s.generator_cpu_percent).sum::<f64>() / timeline.len().max(1) as f64;
    let relay_usage = relay.usage(joins.peak);
    let nodes = node_reports(options, &listeners, nodes, &node_of, &nodes_seen, ended);
    RunReport {
        relay: match options.relay {
            RelayTarget::Tolk { .. } => "tolk".into(),
            RelayTarget::Janus { .. } => "janus".into(),
        },
        target: options.target.clone(),
        profile: profile.name.clone(),
        started_at: started_at.to_rfc3339(),
        duration_s: timeline.last().map_or(0.0, |s| s.t),
        joins,
        first_audio_ms: first_audio,
        loss: loss(&listeners, ended),
        jitter_ms: jitter,
        latency_ms: latency.0,
        latency_histogram: latency.1,
        switch_ms: switch,
        handover_gap_ms: gaps,
        packets_per_s: packets_per_s_at_full_load(&timeline, ramp_end_s),
        relay_usage,
        generator_cpu_percent: generator_cpu,
        listener_stacks: vec![("str0m".into(), listeners.len() as u32)],
        audio_checked: audio_checked(&listeners),
        timeline,
        notes,
        nodes,
        recording: None,
    }
}

/// The report by node: only when listeners were served by more than one node, or the run was
/// told the nodes of a cluster (`options.nodes`, in that order, then any other that served).
fn node_reports(
    options: &RunOptions,
    listeners: &[&Tallied],
    nodes: Vec<(String, LatencyHistogram)>,
    node_of: &HashMap<u64, usize>,
    seen: &NodesSeen,
    ended: Instant,
) -> Vec<crate::results::NodeReport> {
    let served = |i: usize| -> Vec<&Tallied> {
        listeners.iter().copied().filter(|(id, _, _)| node_of.get(id) == Some(&i)).collect()
    };
    let serving = (0..nodes.len()).filter(|i| !served(*i).is_empty()).count();
    if options.nodes.is_empty() && serving <= 1 {
        return Vec::new();
    }
    nodes
        .into_iter()
        .enumerate()
        .map(|(i, (url, latency))| {
            let theirs = served(i);
            let target = options.nodes.get(i);
            let metrics = seen.metrics.get(i).copied().flatten();
            let cpu = seen.cpu.get(i).copied().flatten();
            crate::results::NodeReport {
                name: target.map_or_else(|| url.trim_start_matches("http://").to_owned(), |t| t.name.clone()),
                url,
                listeners: theirs.len() as u32,
                loss: loss(&theirs, ended),
                latency_ms: latency_summary(&latency).0,
                cpu_percent: cpu.map(|c| c.0),
                rss_mib_peak: cpu.map(|c| c.1),
                role: metrics.and_then(|m| {
                    if m.origin_events > 0.0 {
                        Some("origin".to_owned())
                    } else if m.edge_events > 0.0 {
                        Some("edge".to_owned())
                    } else {
                        None
                    }
                }),
                cascades_out: metrics.map(|m| m.cascades_out),
            }
        })
        .collect()
}

/// Packets the listeners should have had by `ended`, and had.
fn loss(listeners: &[&Tallied], ended: Instant) -> Loss {
    let mut loss = Loss::default();
    for (_, t, _) in listeners {
        let due = t.expected_at(ended);
        loss.expected += due;
        loss.received += t.packets.min(due);
        loss.listeners_losing += u32::from(t.packets < due);
        loss.shown_by.sequence += t.seq_gaps;
        loss.shown_by.timestamp += t.skipped_frames;
        loss.shown_by.silence_at_end += t.silent_at(ended);
    }
    loss.lost = loss.expected.saturating_sub(loss.received);
    loss.percent = if loss.expected > 0 { loss.lost as f64 / loss.expected as f64 * 100.0 } else { 0.0 };
    loss
}

/// (listeners whose audio was as expected, listeners sampled).
fn audio_checked(listeners: &[&Tallied]) -> (u32, u32) {
    let sampled: Vec<&AudioCheck> = listeners.iter().map(|(_, _, c)| c).filter(|c| c.sampled).collect();
    let ok = sampled.iter().filter(|c| c.errors == 0 && c.frames > 50 && c.level_db() > -45.0).count();
    (ok as u32, sampled.len() as u32)
}

/// Packets per second received once everyone has joined (the whole run's mean if it never got
/// there).
fn packets_per_s_at_full_load(timeline: &[Sample], ramp_end_s: f64) -> f64 {
    let full_load: Vec<&Sample> = timeline.iter().filter(|s| s.t >= ramp_end_s + 1.0).collect();
    if full_load.is_empty() {
        timeline.iter().map(|s| s.packets_per_s).sum::<f64>() / timeline.len().max(1) as f64
    } else {
        full_load.iter().map(|s| s.packets_per_s).sum::<f64>() / full_load.len() as f64
    }
}

/// Percentiles and a ms histogram of a latency histogram.
pub fn latency_summary(h: &LatencyHistogram) -> (Percentiles, Histogram) {
    let total = h.total();
    if total == 0 {
        return (Percentiles::default(), Histogram::default());
    }
    let last = h.counts.iter().rposition(|c| *c > 0).unwrap_or(0);
    let max = ((last as u64 + 1) * LATENCY_BUCKET_US) as f64 / 1000.0;
    let percentiles = Percentiles {
        count: total,
        p50: h.quantile_ms(0.5),
        p95: h.quantile_ms(0.95),
        p99: h.quantile_ms(0.99),
        max,
    };
    let bounds = (0..=last).map(|i| ((i as u64 + 1) * LATENCY_BUCKET_US) as f64 / 1000.0).collect();
    let counts = h.counts[..=last].to_vec();
    (percentiles, Histogram { bounds, counts })
}
