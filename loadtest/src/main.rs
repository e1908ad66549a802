//! `tolk-loadtest`: replays an event profile against a relay with real WebRTC listeners and
//! reports what arrived (`run`), searches the listeners one relay core carries (`capacity`), and
//! runs the same load against Tolk and Janus side by side (`compare`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tolk_loadtest::capacity::{CapacityOptions, Relay};
use tolk_loadtest::profile::Profile;
use tolk_loadtest::run::{RunOptions, run};

#[derive(Parser)]
#[command(name = "tolk-loadtest", version, about = "Load tests for the Tolk relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a profile against a running relay and write a report.
    Run {
        /// A profile, e.g. loadtest/profiles/smoke.toml.
        #[arg(long)]
        profile: PathBuf,
        /// The relay's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// The relay's admin token (or an organiser's).
        #[arg(long, env = "TOLK_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Report directory (report.json, report.md, PNG plots).
        #[arg(long, default_value = "loadtest-report")]
        report: PathBuf,
        /// The relay's pid, for its CPU and memory (found from the target's port when local).
        #[arg(long)]
        relay_pid: Option<u32>,
        /// Listener threads in the generator.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Override the profile's listener count.
        #[arg(long)]
        listeners: Option<u32>,
        /// Override the profile's duration (seconds).
        #[arg(long)]
        duration: Option<f64>,
        /// Run the profile twice back to back, recording every channel off then on, and compare
        /// the listeners' latency and loss and the relay's CPU (recording.md in the report).
        #[arg(long)]
        compare_recording: bool,
    },
    /// Start three nodes (network namespaces, Redis, PostgreSQL: needs root) and run a profile
    /// through node A; report per node, the cascade's added latency and CPU, and the cascades.
    Cluster {
        #[arg(long, default_value = "loadtest/profiles/cluster.toml")]
        profile: PathBuf,
        /// The relay binary the nodes run (build it with `cargo build --release --bin tolk`).
        #[arg(long, default_value = "target/release/tolk")]
        relay_bin: PathBuf,
        /// Report directory (cluster.md, cluster.json, and the run's report.*).
        #[arg(long, default_value = "loadtest-cluster")]
        report: PathBuf,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Override the profile's listener count.
        #[arg(long)]
        listeners: Option<u32>,
        /// Override the profile's duration (seconds).
        #[arg(long)]
        duration: Option<f64>,
        /// Seconds of each step of the origin's CPU with 0, 1, 2 edges (0: skip).
        #[arg(long, default_value_t = 10.0)]
        cost_step: f64,
    },
    /// Ramp listeners against a relay pinned to one core until loss > 0.5 % or p99 > 50 ms.
    Capacity {
        #[command(flatten)]
        search: SearchArgs,
        #[arg(long, default_value = "loadtest-capacity")]
        report: PathBuf,
        /// Search Janus instead (Debian package janus).
        #[arg(long)]
        janus: bool,
    },
    /// The same floor-only load against Tolk and Janus, each pinned to the same core; one report.
    Compare {
        /// Listeners for the side-by-side run.
        #[arg(long, default_value_t = 1_000)]
        listeners: u32,
        /// Seconds after the last join.
        #[arg(long, default_value_t = 30.0)]
        hold: f64,
        /// Also run a capacity search against each (ratio of listeners per core).
        #[arg(long)]
        capacity: bool,
        #[command(flatten)]
        search: SearchArgs,
        #[arg(long, default_value = "loadtest-compare")]
        report: PathBuf,
    },
}

/// How a capacity search runs (`capacity`, and `compare --capacity`).
#[derive(clap::Args)]
struct SearchArgs {
    /// The relay binary (build it with `cargo build --release --bin tolk`).
    #[arg(long, default_value = "target/release/tolk")]
    relay_bin: PathBuf,
    #[arg(long, default_value_t = 20_000)]
    max_listeners: u32,
    /// Listeners added per stage (each stage is held 10 s and measured once settled).
    #[arg(long, default_value_t = 1_000)]
    step: u32,
    #[arg(long, default_value_t = 100.0)]
    joins_per_s: f64,
    #[arg(long, default_value_t = 0)]
    relay_core: usize,
    #[arg(long, default_value_t = 1)]
    generator_core: usize,
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

impl SearchArgs {
    fn options(self, report: &std::path::Path) -> CapacityOptions {
        CapacityOptions {
            relay_bin: self.relay_bin,
            relay_core: self.relay_core,
            generator_core: self.generator_core,
            max_listeners: self.max_listeners,
            step: self.step,
            joins_per_s: self.joins_per_s,
            workers: self.workers,
            report_dir: Some(report.to_path_buf()),
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TOLK_LOG").unwrap_or_else(|_| "warn,rtc_dtls=error,rtc=error".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match cli.command {
        Command::Run {
            profile,
            target,
            admin_token,
            report,
            relay_pid,
            workers,
            listeners,
            duration,
            compare_recording,
        } => {
            let profile = Profile::load(&profile)?;
            let options = RunOptions {
                relay: tolk_loadtest::run::RelayTarget::Tolk { rtp_floor: false },
                target,
                admin_token,
                report_dir: Some(report.clone()),
                relay_pid,
                workers,
                progress: true,
                listeners,
                duration_s: duration,
                // Go as far as this machine carries: stop once 3 s in a row lose more than 5 % or
                // have a p99 of 100 ms or more, and say so in the report. Not a soak: it runs its
                // whole duration, and its verdict says what went wrong.
                stop_when: (!profile.is_soak()).then_some((5.0, 99.9)),
                nodes: Vec::new(),
            };
            if compare_recording {
                // Both runs go to their end, whatever a moment of overload does to one of them:
                // the comparison is of two whole runs.
                let options = RunOptions { stop_when: None, ..options };
                let result = runtime
                    .block_on(tolk_loadtest::recording::compare_recording(&profile, &options))
                    .context("the comparison failed")?;
                println!("{}", tolk_loadtest::report::markdown_recording_compare(&result));
                eprintln!("report written to {}", report.display());
                return Ok(());
            }
            let result = runtime.block_on(run(&profile, &options)).context("the run failed")?;
            println!("{}", tolk_loadtest::report::markdown_run(&result));
            eprintln!("report written to {}", report.display());
        }
        Command::Cluster { profile, relay_bin, report, workers, listeners, duration, cost_step } => {
            let profile = Profile::load(&profile)?;
            let options = tolk_loadtest::cluster::ClusterOptions {
                relay_bin: Some(relay_bin),
                listeners,
                duration_s: duration,
                workers,
                report_dir: Some(report.clone()),
                progress: true,
                cost_step_s: cost_step,
            };
            let result = runtime
                .block_on(tolk_loadtest::cluster::cluster(&profile, &options))
                .context("the cluster run failed")?;
            println!("{}", tolk_loadtest::report::markdown_run(&result.run));
            println!("{}", tolk_loadtest::cluster::markdown(&result));
            eprintln!("report written to {}", report.display());
        }
        Command::Capacity { search, report, janus } => {
            let options = search.options(&report);
            let kind = if janus { Relay::Janus } else { Relay::Tolk };
            let result = runtime
                .block_on(tolk_loadtest::capacity::capacity(kind, &options))
                .context("the search failed")?;
            println!("{}", tolk_loadtest::report::markdown_capacity(&result));
            eprintln!("report written to {}", report.display());
        }
        Command::Compare { listeners, hold, capacity, search, report } => {
            let joins_per_s = search.joins_per_s;
            let options = search.options(&report);
            let mut profile = tolk_loadtest::capacity::ramp_profile(listeners, listeners, joins_per_s);
            profile.name = format!("side by side, {listeners} listeners");
            profile.duration_s = f64::from(listeners) / joins_per_s + hold;
            let result = runtime
                .block_on(tolk_loadtest::capacity::compare(&profile, &options, capacity))
                .context("the comparison failed")?;
            println!("{}", tolk_loadtest::report::markdown_compare(&result));
            eprintln!("report written to {}", report.display());
        }
    }
    Ok(())
}
