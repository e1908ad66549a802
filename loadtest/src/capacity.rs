//! `tolk-loadtest capacity`: how many listeners one relay core carries. The relay is started here,
//! pinned to one core with `taskset`, the generator pinned to another; listeners join at a steady
//! rate until three seconds in a row lose more than 0.5 % of the packets or have a p99 relay-added
//! latency above 50 ms (or the generator itself runs out of core). The timeline is cut into
//! five-second steps; the largest step within the limits is the figure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::profile::{Burst, Interpreters, Listeners, Profile, Spread};
use crate::results::{CapacityReport, CapacityStep, RunReport};
use crate::run::{RunOptions, run};

pub const MAX_LOSS_PERCENT: f64 = 0.5;
pub const MAX_P99_MS: f64 = 50.0;

#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// The relay binary (`target/release/tolk`).
    pub relay_bin: PathBuf,
    /// Core for the relay, core for the generator.
    pub relay_core: usize,
    pub generator_core: usize,
    /// Listeners at most, per stage, and joins per second.
    pub max_listeners: u32,
    pub step: u32,
    pub joins_per_s: f64,
    pub workers: usize,
    pub report_dir: Option<PathBuf>,
}

/// A relay process of our own, pinned to a core.
pub struct SpawnedRelay {
    child: Child,
    dir: PathBuf,
    pub base: String,
    pub token: String,
}

impl SpawnedRelay {
    pub async fn start(binary: &Path, core: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("tolk-capacity-{}", tolk_relay::ids::random_hex(4)));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let media = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let token = tolk_relay::ids::random_hex(16);
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(binary)
            .arg("serve")
            .env("TOLK_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLK_MEDIA_PORT", media.to_string())
            .env("TOLK_MEDIA_SHARDS", "1")
            .env("TOLK_DATA_DIR", &dir)
            .env("TOLK_ADMIN_TOKEN", &token)
            .env("TOLK_CAPACITY_LISTENERS", "1000000")
            .env("TOLK_CAPACITY_CHANNELS", "100000")
            .env("TOLK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start taskset {}", binary.display()))?;
        let relay = Self { child, dir, base: format!("http://127.0.0.1:{port}"), token };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{}/healthz", relay.base)).send().await.is_ok_and(|r| r.status().is_success())
            {
                return Ok(relay);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the relay {} did not answer /healthz within 10 s", binary.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SpawnedRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pin every thread of this process to `core`.
pub fn pin_self(core: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-cp", &core.to_string(), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("taskset (util-linux) is needed to pin the generator")?;
    if !status.success() {
        bail!("taskset could not pin the generator to core {core}");
    }
    Ok(())
}

/// Seconds each stage holds its listeners after its joins.
pub const HOLD_S: f64 = 10.0;
/// Seconds after a stage's last join before it is measured (handshakes settle).
pub const SETTLE_S: f64 = 3.0;

/// The search's profile: the floor only (what any relay can carry, Janus included), listeners
/// joining in stages of `step` at `joins_per_s`, each stage held for [`HOLD_S`].
pub fn ramp_profile(max: u32, step: u32, joins_per_s: f64) -> Profile {
    let step = step.clamp(1, max.max(1));
    let stages = max.div_ceil(step);
    let within_s = f64::from(step) / joins_per_s;
    let period = within_s + HOLD_S;
    Profile {
        name: format!("capacity: stages of {step} up to {max}"),
        description: "floor only, listeners joining in stages".into(),
        duration_s: period * f64::from(stages),
        floor_language: "en".into(),
        languages: Vec::new(),
        interpreters: Interpreters { per_booth: 1, handover_every_s: 0.0 },
        listeners: Listeners {
            count: 0,
            ramp_s: 0.0,
            spread: Spread::Uniform,
            bursts: (0..stages)
                .map(|k| Burst { at_s: period * f64::from(k), count: step.min(max - k * step), within_s })
                .collect(),
            switches_per_minute: 0.0,
            leaves_per_minute: 0.0,
            warmup_s: 0.0,
            decode_every: 500,
            webrtc_rs_every: 0,
        },
        impairment: Default::default(),
        recording: false,
    }
}

/// Each stage's settled seconds (after its joins, handshakes done) as one step; the largest
/// step within the limits before the first that is not is the figure.
pub fn steps(run: &RunReport, profile: &Profile, relay: &str) -> CapacityReport {
    let mut steps = Vec::new();
    let bursts = &profile.listeners.bursts;
    for (k, burst) in bursts.iter().enumerate() {
        let from = burst.at_s + burst.within_s + SETTLE_S;
        let to = bursts.get(k + 1).map_or(f64::INFINITY, |b| b.at_s);
        let window: Vec<_> = run.timeline.iter().filter(|s| s.t >= from && s.t < to).collect();
        if window.is_empty() {
            continue;
        }
        let n = window.len() as f64;
        let listeners = window.iter().map(|s| s.listeners).min().unwrap_or(0);
        let loss = window.iter().map(|s| s.loss_percent).sum::<f64>() / n;
        let p99 = window.iter().map(|s| s.latency_p99).fold(0.0, f64::max);
        let relay_cpu = window.iter().filter_map(|s| s.relay_cpu_percent).sum::<f64>() / n;
        let generator_cpu = window.iter().map(|s| s.generator_cpu_percent).sum::<f64>() / n;
        steps.push(CapacityStep {
            listeners,
            loss_percent: loss,
            latency_p99: p99,
            relay_cpu_percent: relay_cpu,
            generator_cpu_percent: generator_cpu,
            passed: loss <= MAX_LOSS_PERCENT && p99 <= MAX_P99_MS,
        });
    }
    let first_failure = steps.iter().position(|s| !s.passed);
    let passing = &steps[..first_failure.unwrap_or(steps.len())];
    let listeners_per_core = passing.iter().map(|s| s.listeners).max().unwrap_or(0);
    let saturated = passing.iter().any(|s| s.generator_cpu_percent > 95.0);
    let stopped_because = match first_failure.map(|i| &steps[i]) {
        Some(s) if s.loss_percent > MAX_LOSS_PERCENT => {
            format!("loss {:.2} % > {MAX_LOSS_PERCENT} % at {} listeners", s.loss_percent, s.listeners)
        }
        Some(s) => format!("p99 {:.1} ms > {MAX_P99_MS} ms at {} listeners", s.latency_p99, s.listeners),
        None => format!("every step within the limits up to {listeners_per_core} listeners (the ramp's end)"),
    };
    let mut notes = run.notes.clone();
    if saturated {
        notes.push(
            "The generator used more than 95 % of its core: the figure may be the generator's limit.".into(),
        );
    }
    CapacityReport {
        relay: relay.into(),
        started_at: run.started_at.clone(),
        max_loss_percent: MAX_LOSS_PERCENT,
        max_p99_ms: MAX_P99_MS,
        steps,
        listeners_per_core,
        stopped_because,
        notes,
    }
}

/// Which relay a search or a comparison runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Tolk,
    Janus,
}

/// Run `profile` against a relay of `kind` started here on `options.relay_core`; `stop_when`
/// for a search. The floor is plain RTP for both relays, so both get the same input.
pub async fn run_against(
    kind: Relay,
    profile: &Profile,
    options: &CapacityOptions,
    report_dir: Option<PathBuf>,
    stop_when: Option<(f64, f64)>,
) -> anyhow::Result<RunReport> {
    tolk_relay::bbb::install_default_crypto();
    pin_self(options.generator_core)?;
    let mut run_options = RunOptions {
        relay: crate::run::RelayTarget::Tolk { rtp_floor: true },
        target: String::new(),
        admin_token: String::new(),
        report_dir,
        relay_pid: None,
        workers: options.workers,
        progress: true,
        listeners: None,
        duration_s: None,
        stop_when,
        nodes: Vec::new(),
    };
    match kind {
        Relay::Tolk => {
            let relay = SpawnedRelay::start(&options.relay_bin, options.relay_core).await?;
            run_options.target = relay.base.clone();
            run_options.admin_token = relay.token.clone();
            run_options.relay_pid = Some(relay.pid());
            run(profile, &run_options).await
        }
        Relay::Janus => {
            let janus = crate::janus::JanusServer::start(crate::janus::JanusOptions {
                cpu: Some(options.relay_core),
                ..Default::default()
            })
            .await?;
            run_options.relay = crate::run::RelayTarget::Janus {
                mountpoint: janus.mountpoint,
                rtp_in: janus.rtp_in,
                listener_ip: janus.listener_ip,
            };
            run_options.target = janus.http_url.clone();
            run_options.relay_pid = Some(janus.pid);
            let report = run(profile, &run_options).await;
            janus.stop();
            report
        }
    }
}

/// The search against one relay.
pub async fn capacity(kind: Relay, options: &CapacityOptions) -> anyhow::Result<CapacityReport> {
    let profile = ramp_profile(options.max_listeners, options.step, options.joins_per_s);
    let dir = options.report_dir.as_ref().map(|d| d.join("run"));
    // The run stops once far beyond the limits (the steps judge against the limits themselves).
    let report =
        run_against(kind, &profile, options, dir, Some((10.0 * MAX_LOSS_PERCENT, 10.0 * MAX_P99_MS))).await?;
    let capacity = steps(&report, &profile, if kind == Relay::Tolk { "tolk" } else { "janus" });
    if let Some(dir) = &options.report_dir {
        crate::report::write_capacity(dir, &capacity)?;
    }
    Ok(capacity)
}

/// `compare`: the same floor-only profile against Tolk and then Janus (each on the same core),
/// and optionally a capacity search of each; one report with both and the ratios.
pub async fn compare(
    profile: &Profile,
    options: &CapacityOptions,
    searches: bool,
) -> anyhow::Result<crate::results::CompareReport> {
    let dir = |name: &str| options.report_dir.as_ref().map(|d| d.join(name));
    let tolk = run_against(Relay::Tolk, profile, options, dir("tolk"), None).await?;
    let janus = run_against(Relay::Janus, profile, options, dir("janus"), None).await?;
    let (tolk_capacity, janus_capacity) = if searches {
        (
            Some(capacity(Relay::Tolk, &sub(options, "tolk-capacity")).await?),
            Some(capacity(Relay::Janus, &sub(options, "janus-capacity")).await?),
        )
    } else {
        (None, None)
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let cpu_per_listener =
        |r: &RunReport| r.relay_usage.as_ref().map(|u| u.cpu_percent / f64::from(r.joins.peak.max(1)));
    let mut notes = Vec::new();
    notes.push(format!(
        "Both relays ran on core {} with the same floor (plain Opus RTP, stamped) and the same listeners (str0m, core {}).",
        options.relay_core, options.generator_core
    ));
    notes.push(
        "Tolk's listeners share one port per generator worker on 127.64.x.y; Janus's each have a socket on the \
         machine's non-loopback address, as Janus does not use loopback candidates. On one machine a socket per \
         listener costs the relay's core about 8 % more for loopback delivery (wake-ups), a small share of \
         Janus's cost per listener."
            .to_owned(),
    );
    let report = crate::results::CompareReport {
        listeners_per_core_ratio: match (&tolk_capacity, &janus_capacity) {
            (Some(t), Some(j)) if j.listeners_per_core > 0 => {
                Some(f64::from(t.listeners_per_core) / f64::from(j.listeners_per_core))
            }
            _ => None,
        },
        latency_p50_ratio: ratio(janus.latency_ms.p50, tolk.latency_ms.p50),
        latency_p99_ratio: ratio(janus.latency_ms.p99, tolk.latency_ms.p99),
        cpu_per_listener_ratio: match (cpu_per_listener(&janus), cpu_per_listener(&tolk)) {
            (Some(j), Some(t)) if t > 0.0 => Some(j / t),
            _ => None,
        },
        tolk,
        janus,
        tolk_capacity,
        janus_capacity,
        notes,
    };
    if let Some(dir) = &options.report_dir {
        crate::report::write_compare(dir, &report)?;
    }
    Ok(report)
}

fn sub(options: &CapacityOptions, name: &str) -> CapacityOptions {
    CapacityOptions { report_dir: options.report_dir.as_ref().map(|d| d.join(name)), ..options.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Sample;

    #[test]
    fn the_largest_passing_step_before_the_first_failure() {
        // Stages of 500 at 100 joins/s: 5 s of joins, then 10 s held; the third stage loses.
        let profile = ramp_profile(2_000, 500, 100.0);
        assert_eq!(profile.listeners.bursts.len(), 4);
        assert_eq!(profile.total_listeners(), 2_000);
        let mut run = RunReport::default();
        for t in 0..60 {
            let stage = (t / 15) as u32;
            run.timeline.push(Sample {
                t: f64::from(t),
                listeners: 500 * (stage + 1),
                loss_percent: if stage >= 2 { 2.0 } else { 0.0 },
                // Joins cost: high p99 while joining, which the settled window leaves out.
                latency_p99: if t % 15 < 5 { 80.0 } else { 3.0 },
                ..Default::default()
            });
        }
        let report = steps(&run, &profile, "tolk");
        assert_eq!(report.steps.len(), 4);
        assert_eq!(report.listeners_per_core, 1_000);
        assert!(report.stopped_because.contains("loss"), "{}", report.stopped_because);
    }
}
