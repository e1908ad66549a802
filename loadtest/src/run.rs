//! One load run: create the event through the API, publish the floor and the booths (speech-like
//! Opus, stamped), drive handovers, bring the listeners in as the profile says, switch channels,
//! sample the relay and the listeners every second (with a progress line), and build the report.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::engine::{self, AudioCheck, Command, Endpoint, Impairment, Voice, Worker};
use crate::profile::Profile;
use crate::results::{Histogram, Joins, Loss, Percentiles, RelayUsage, RunReport, Sample, ThreadCpu};
use crate::sysmon::Monitor;
use crate::tally::{LATENCY_BUCKET_US, LatencyHistogram, Tally};

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
}

pub async fn run(profile: &Profile, options: &RunOptions) -> anyhow::Result<RunReport> {
    tolk_relay::bbb::install_default_crypto();
    let mut profile = profile.clone();
    if let Some(n) = options.listeners {
        profile.listeners.count = n;
        profile.listeners.bursts.clear();
    }
    if let Some(d) = options.duration_s {
        profile.duration_s = d;
    }
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build()?;
    let base = options.target.trim_end_matches('/').to_owned();
    let started_at = chrono::Utc::now();

    let report = match options.relay {
        RelayTarget::Tolk { rtp_floor } => {
            let event = create_event(&http, &base, &options.admin_token, &profile, rtp_floor).await?;
            let id = event["id"].as_str().context("no event id")?.to_owned();
            let outcome = drive(&http, &base, &id, &event, &profile, options, started_at).await;
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
            drive(&http, &base, "", &Value::Null, &profile, options, started_at).await?
        }
    };
    if let Some(dir) = &options.report_dir {
        crate::report::write_run(dir, &report)?;
    }
    Ok(report)
}

async fn create_event(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    profile: &Profile,
    rtp_floor: bool,
) -> anyhow::Result<Value> {
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
        }))
        .send()
        .await
        .with_context(|| format!("cannot reach the relay at {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 201 {
        bail!(
            "creating the event answered {status}: {}",
            body["detail"].as_str().unwrap_or(&body.to_string())
        );
    }
    Ok(body)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    event: &Value,
    profile: &Profile,
    options: &RunOptions,
    started_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RunReport> {
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
        notes.push("The relay's process was not found (give --relay-pid): no relay CPU or memory.".into());
    } else if relay_pid == Some(std::process::id()) {
        notes.push("The relay runs inside the generator's process: its CPU includes the generator's.".into());
    }

    // The floor and the booths.
    let mut rtp_floor_sender = None;
    match options.relay {
        RelayTarget::Janus { rtp_in, .. } => rtp_floor_sender = Some(engine::RtpFloor::start(rtp_in)?),
        RelayTarget::Tolk { rtp_floor: true } => {
            let url = event["floor"]["rtp_url"].as_str().context("no floor rtp_url")?;
            rtp_floor_sender = Some(engine::RtpFloor::start(url.trim_start_matches("rtp://").parse()?)?);
        }
        RelayTarget::Tolk { rtp_floor: false } => {
            let floor_url = event["floor"]["whip_url"].as_str().context("no floor whip_url")?;
            let floor_token = event["floor"]["token"].as_str().context("no floor token")?;
            let offer = engine::offer(Endpoint::Own(local_ip), true, 0)?;
            let (_, answer) = engine::post_offer(http, floor_url, Some(floor_token), &offer.sdp)
                .await
                .context("floor WHIP")?;
            let ready = offer.accept(&answer, Some(Voice::new(0, 0)?), false)?;
            publisher.send(Command::Add { id: 0, peer: Box::new(ready) })?;
        }
    }
    let mut booths: Vec<Vec<String>> = Vec::new(); // per language: the interpreters' tokens
    let per_booth = profile.interpreters.per_booth.max(1);
    for (li, language) in profile.languages.iter().enumerate() {
        let mut tokens = Vec::new();
        for j in 0..per_booth {
            let link: Value = http
                .post(format!("{base}/api/v1/events/{id}/interpreters"))
                .bearer_auth(&options.admin_token)
                .json(&json!({"name": format!("{language} {}", (b'A' + j as u8) as char), "languages": [language]}))
                .send()
                .await?
                .json()
                .await?;
            let token = link["token"].as_str().context("no booth token")?.to_owned();
            let source = 1 + (li as u32 * per_booth + j) as u16;
            let offer = engine::offer(Endpoint::Own(local_ip), true, 2)?;
            let (_, answer) =
                engine::post_offer(http, &format!("{base}/whip/booth"), Some(&token), &offer.sdp)
                    .await
                    .with_context(|| format!("booth WHIP for {language}"))?;
            let ready = offer.accept(&answer, Some(Voice::new(source, u64::from(source) * 37)?), false)?;
            publisher.send(Command::Add { id: u64::from(source), peer: Box::new(ready) })?;
            tokens.push(token);
        }
        booths.push(tokens);
    }
    let senders = u32::from(rtp_floor_sender.is_none()) + booths.iter().map(Vec::len).sum::<usize>() as u32;
    wait_for(Duration::from_secs(15), || {
        publisher.live.lock().map(|l| l.senders >= senders).unwrap_or(false)
    })
    .await
    .context("the floor and booth senders did not connect within 15 s")?;
    for (language, tokens) in profile.languages.iter().zip(&booths) {
        if let Some(first) = tokens.first() {
            booth_action(http, base, first, "on-air", json!({"language": language})).await?;
        }
    }

    // Handovers, staggered over the booths.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handovers = (per_booth > 1 && profile.interpreters.handover_every_s > 0.0).then(|| {
        let (http, base, stop, booths) = (http.clone(), base.to_owned(), stop.clone(), booths.clone());
        let period = Duration::from_secs_f64(profile.interpreters.handover_every_s);
        tokio::spawn(async move {
            let mut on_air = vec![0usize; booths.len()];
            let step = period / booths.len().max(1) as u32;
            let mut count = 0u32;
            let mut next = tokio::time::Instant::now() + step;
            let mut b = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep_until(next).await;
                next += step;
                let tokens = &booths[b];
                let (from, to) = (on_air[b], (on_air[b] + 1) % tokens.len());
                if booth_action(&http, &base, &tokens[to], "handover-request", json!({})).await.is_ok()
                    && booth_action(&http, &base, &tokens[from], "handover-accept", json!({})).await.is_ok()
                {
                    on_air[b] = to;
                    count += 1;
                }
                b = (b + 1) % booths.len();
            }
            count
        })
    });

    // Listeners.
    let joined = Arc::new(Mutex::new(Joined::default()));
    let rs: Arc<Mutex<Vec<crate::webrtc_rs::RsListener>>> = Arc::default();
    let rs_latency: Arc<Mutex<LatencyHistogram>> = Arc::default();
    let plan = profile.joins();
    let planned = plan.len() as u32;
    let ramp_start = tokio::time::Instant::now();
    let joiner = {
        let (http, base, id, joined) = (http.clone(), base.to_owned(), id.to_owned(), joined.clone());
        let languages: Vec<String> =
            (0..profile.channels()).map(|c| profile.channel_language(c).to_owned()).collect();
        let decode_every = profile.listeners.decode_every.max(1) as usize;
        let commands: Vec<_> = workers.iter().map(|w| w.sender()).collect();
        let relay = options.relay;
        let rs_every = profile.listeners.webrtc_rs_every as usize;
        let (rs, rs_latency) = (rs.clone(), rs_latency.clone());
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (n, join) in plan.into_iter().enumerate() {
                tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(join.at_s)).await;
                let (http, url, joined) =
                    (http.clone(), format!("{base}/whep/{id}/{}", languages[join.channel]), joined.clone());
                let worker = n % commands.len();
                let command = commands[worker].clone();
                let janus_base = base.clone();
                if matches!(relay, RelayTarget::Tolk { .. }) && rs_every > 0 && n % rs_every == rs_every / 2 {
                    // A webrtc-rs listener: the interop sample.
                    let (rs, rs_latency) = (rs.clone(), rs_latency.clone());
                    tasks.spawn(async move {
                        let result = crate::webrtc_rs::RsListener::listen(&http, &url, rs_latency).await;
                        if let Ok(mut j) = joined.lock() {
                            match result {
                                Ok(listener) => {
                                    j.ok += 1;
                                    if let Ok(mut rs) = rs.lock() {
                                        rs.push(listener);
                                    }
                                }
                                Err(e) => {
                                    j.failed += 1;
                                    *j.errors.entry(format!("webrtc-rs: {}", short(&e))).or_insert(0) += 1;
                                }
                            }
                        }
                    });
                    continue;
                }
                tasks.spawn(async move {
                    let decode = n % decode_every == 0;
                    let result = async {
                        let posted = Instant::now();
                        let (session, mut ready) = match relay {
                            RelayTarget::Tolk { .. } => {
                                let offer = engine::offer(command.endpoint(local_ip), false, 1)?;
                                let (session, answer) =
                                    engine::post_offer(&http, &url, None, &offer.sdp).await?;
                                (session, offer.accept(&answer, None, decode)?)
                            }
                            RelayTarget::Janus { mountpoint, listener_ip, .. } => {
                                let (watch, offer) =
                                    crate::janus::JanusWatch::watch(&http, &janus_base, mountpoint).await?;
                                let (ready, answer) = engine::answer(listener_ip, &offer, decode)?;
                                watch.start(&answer).await?;
                                (format!("janus session {}", watch.session_id()), ready)
                            }
                        };
                        ready.tally.posted_at = Some(posted);
                        // Every tenth listener (and each decoding one) reads every packet's stamp.
                        ready.light = !decode && n % FULL_EVERY != 0;
                        command.send(Command::Add { id: n as u64 + 1_000, peer: Box::new(ready) })?;
                        anyhow::Ok(session)
                    }
                    .await;
                    if let Ok(mut j) = joined.lock() {
                        match result {
                            Ok(session) => {
                                j.ok += 1;
                                j.handles.insert(
                                    n as u64 + 1_000,
                                    Handle { worker, session, channel: join.channel },
                                );
                            }
                            Err(e) => {
                                j.failed += 1;
                                *j.errors.entry(short(&e)).or_insert(0) += 1;
                            }
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    // Channel switches.
    let tolk = matches!(options.relay, RelayTarget::Tolk { .. });
    let switcher = (tolk && profile.listeners.switches_per_minute > 0.0).then(|| {
        let (http, joined, stop) = (http.clone(), joined.clone(), stop.clone());
        let rate = profile.listeners.switches_per_minute / 60.0;
        let channels = profile.channels();
        let languages: Vec<String> = (0..channels).map(|c| profile.channel_language(c).to_owned()).collect();
        let commands: Vec<_> = workers.iter().map(|w| w.sender()).collect();
        tokio::spawn(async move {
            let mut owed = 0.0;
            let mut done = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let picks: Vec<(u64, String, usize, usize)> = {
                    let Ok(mut j) = joined.lock() else { break };
                    owed += rate * j.handles.len() as f64 * 0.1;
                    let ids: Vec<u64> = j.handles.keys().copied().collect();
                    let mut picks = Vec::new();
                    while owed >= 1.0 && !ids.is_empty() && channels > 1 {
                        owed -= 1.0;
                        let id = ids[rand::random_range(0..ids.len())];
                        if let Some(h) = j.handles.get_mut(&id) {
                            let to = (h.channel + 1 + rand::random_range(0..channels - 1)) % channels;
                            h.channel = to;
                            picks.push((id, h.session.clone(), h.worker, to));
                        }
                    }
                    picks
                };
                for (id, session, worker, to) in picks {
                    // Told before the request: the new channel's first packet may beat the 204.
                    let _ = commands[worker].send(Command::Switching { id, at: Some(Instant::now()) });
                    let ok = http
                        .post(format!("{session}/channel"))
                        .json(&json!({"language": languages[to]}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 204);
                    if ok {
                        done += 1;
                    } else {
                        let _ = commands[worker].send(Command::Switching { id, at: None });
                    }
                }
            }
            done
        })
    });

    // Sample every second until the run's end.
    let mut monitor = Monitor::new(relay_pid);
    let rss_before = monitor.rss_start;
    let run_end = ramp_start + Duration::from_secs_f64(profile.duration_s);
    let ramp_end_s = profile.joins().last().map_or(0.0, |j| j.at_s);
    let mut timeline: Vec<Sample> = Vec::new();
    let mut last_packets = 0u64;
    let mut last_expected = 0u64;
    let mut peak = 0u32;
    let mut tick = tokio::time::interval_at(ramp_start + Duration::from_secs(1), Duration::from_secs(1));
    while tokio::time::Instant::now() < run_end {
        tick.tick().await;
        let mut window = LatencyHistogram::default();
        let (mut connected, mut packets, mut expected) = (0u32, 0u64, 0u64);
        for w in &workers {
            if let Ok(mut live) = w.live.lock() {
                connected += live.connected;
                packets += live.packets;
                expected += live.expected;
                window.merge(&live.window);
                live.window = LatencyHistogram::default();
            }
        }
        peak = peak.max(connected);
        let reading = monitor.sample();
        let (dp, de) = (packets.saturating_sub(last_packets), expected.saturating_sub(last_expected));
        (last_packets, last_expected) = (packets, expected);
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
        if options.progress {
            progress(&sample, profile.duration_s, planned, &joined);
        }
        timeline.push(sample);
        if let Some((max_loss, max_p99)) = options.stop_when {
            let over = |s: &Sample| s.loss_percent > max_loss || s.latency_p99 > max_p99;
            let n = timeline.len();
            if n >= 5 && timeline[n - 3..].iter().all(over) {
                notes.push(format!(
                    "Stopped at {connected} listeners: loss above {max_loss} % or p99 above {max_p99} ms for 3 s."
                ));
                break;
            }
        }
    }
    if options.progress {
        eprintln!();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let joins_done = joiner.is_finished();
    joiner.abort();
    if let Some(h) = handovers {
        h.abort();
    }
    if let Some(s) = switcher {
        s.abort();
    }
    if !joins_done {
        notes.push(format!(
            "The run ended before every planned join was made: the join ramp ({ramp_end_s:.0} s) outlasted the run."
        ));
    }
    let relay_totals = monitor.totals();
    let rss_peak = monitor.rss_peak;

    // Collect: every packet's latency (the workers' whole-run histograms) and every tally.
    let mut latency = LatencyHistogram::default();
    for w in &workers {
        if let Ok(live) = w.live.lock() {
            latency.merge(&live.total);
        }
    }
    let mut tallies: Vec<(u64, Tally, AudioCheck)> = Vec::new();
    let ended = Instant::now();
    for w in workers {
        tallies.extend(w.finish()?);
    }
    let _ = publisher.finish();
    // The webrtc-rs listeners: their tallies beside the others, then hang up.
    let rs: Vec<crate::webrtc_rs::RsListener> =
        rs.lock().map(|mut v| v.drain(..).collect()).unwrap_or_default();
    let rs_count = rs.len() as u32;
    for (i, listener) in rs.into_iter().enumerate() {
        tallies.push((2_000_000_000 + i as u64, listener.tally(), AudioCheck::default()));
        let _ = listener.close(http).await;
    }
    if let Ok(h) = rs_latency.lock() {
        latency.merge(&h);
    }
    let joins = {
        let j = joined.lock().map_err(|_| anyhow::anyhow!("join state poisoned"))?;
        let mut errors: Vec<(String, u32)> = j.errors.iter().map(|(k, v)| (k.clone(), *v)).collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.1));
        Joins { planned, joined: j.ok, failed: j.failed, errors, peak }
    };
    let relay = RelaySeen { pid: relay_pid, totals: relay_totals, rss_before, rss_peak };
    let mut report = build_report(
        profile,
        options,
        started_at,
        joins,
        tallies,
        &latency,
        timeline,
        relay,
        (ramp_end_s, ended),
        notes,
    )?;
    if rs_count > 0 {
        if let Some(str0m) = report.listener_stacks.first_mut() {
            str0m.1 = str0m.1.saturating_sub(rs_count);
        }
        report.listener_stacks.push(("webrtc-rs".into(), rs_count));
    }
    Ok(report)
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

async fn booth_action(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    action: &str,
    body: Value,
) -> anyhow::Result<()> {
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

#[allow(clippy::too_many_arguments)]
fn build_report(
    profile: &Profile,
    options: &RunOptions,
    started_at: chrono::DateTime<chrono::Utc>,
    joins: Joins,
    tallies: Vec<(u64, Tally, AudioCheck)>,
    latency: &LatencyHistogram,
    timeline: Vec<Sample>,
    relay: RelaySeen,
    (ramp_end_s, ended): (f64, Instant),
    notes: Vec<String>,
) -> anyhow::Result<RunReport> {
    let RelaySeen { pid: relay_pid, totals: relay_totals, rss_before, rss_peak } = relay;
    let listeners: Vec<&(u64, Tally, AudioCheck)> =
        tallies.iter().filter(|(id, _, _)| *id >= 1_000).collect();
    let expected: u64 = listeners.iter().map(|(_, t, _)| t.expected_at(ended)).sum();
    let received: u64 = listeners.iter().map(|(_, t, _)| t.packets.min(t.expected_at(ended))).sum();
    let lost = expected.saturating_sub(received);
    let first_audio = percentiles(listeners.iter().filter_map(|(_, t, _)| t.first_audio_ms()).collect());
    let jitter = percentiles(
        listeners.iter().filter(|(_, t, _)| t.packets > 10).map(|(_, t, _)| t.jitter_ms()).collect(),
    );
    let switch = percentiles(listeners.iter().flat_map(|(_, t, _)| t.switch_ms.iter().copied()).collect());
    let gaps =
        percentiles(listeners.iter().flat_map(|(_, t, _)| t.handover_gaps_ms.iter().copied()).collect());
    let latency = latency_summary(latency);
    let sampled: Vec<&AudioCheck> = listeners.iter().map(|(_, _, c)| c).filter(|c| c.sampled).collect();
    let audio_ok = sampled.iter().filter(|c| c.errors == 0 && c.frames > 50 && c.level_db() > -45.0).count();
    let full_load: Vec<&Sample> = timeline.iter().filter(|s| s.t >= ramp_end_s + 1.0).collect();
    let packets_per_s = if full_load.is_empty() {
        timeline.iter().map(|s| s.packets_per_s).sum::<f64>() / timeline.len().max(1) as f64
    } else {
        full_load.iter().map(|s| s.packets_per_s).sum::<f64>() / full_load.len() as f64
    };
    let generator_cpu =
        timeline.iter().map(|s| s.generator_cpu_percent).sum::<f64>() / timeline.len().max(1) as f64;
    let relay_usage = match (relay_pid, relay_totals) {
        (Some(pid), Some((cpu, threads))) => Some(RelayUsage {
            pid,
            cpu_percent: cpu,
            threads: threads.into_iter().map(|(name, cpu_percent)| ThreadCpu { name, cpu_percent }).collect(),
            rss_mib_start: rss_before.unwrap_or(0.0),
            rss_mib_peak: rss_peak,
            rss_kib_per_listener: if joins.peak > 0 {
                (rss_peak - rss_before.unwrap_or(rss_peak)).max(0.0) * 1024.0 / f64::from(joins.peak)
            } else {
                0.0
            },
        }),
        _ => None,
    };
    Ok(RunReport {
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
        loss: Loss {
            expected,
            received,
            lost,
            percent: if expected > 0 { lost as f64 / expected as f64 * 100.0 } else { 0.0 },
        },
        jitter_ms: jitter,
        latency_ms: latency.0,
        latency_histogram: latency.1,
        switch_ms: switch,
        handover_gap_ms: gaps,
        packets_per_s,
        relay_usage,
        generator_cpu_percent: generator_cpu,
        listener_stacks: vec![("str0m".into(), listeners.len() as u32)],
        audio_checked: (audio_ok as u32, sampled.len() as u32),
        timeline,
        notes,
    })
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
