//! The `tolk` binary: `tolk serve` runs the relay, `tolk demo` runs it with a demo event you can
//! hear in a browser.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tolk_relay::config::{ConfigArgs, Settings};
use tolk_relay::server::Server;

#[derive(Parser)]
#[command(name = "tolk", version, about = "Tolk: simultaneous-interpretation media relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Serve(ConfigArgs),
    /// Run the relay with a demo event whose floor is a built-in voice; prints the listener URL.
    Demo(ConfigArgs),
    /// Organiser accounts: each sees and manages only its own events.
    Organiser(OrganiserArgs),
    /// Events in the store.
    Events(EventsArgs),
}

#[derive(clap::Args)]
struct OrganiserArgs {
    #[command(subcommand)]
    action: OrganiserAction,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum OrganiserAction {
    /// Create an organiser account and print its token (shown once).
    Add { name: String },
    /// List organiser accounts.
    List,
    /// Revoke an organiser account: its token stops working.
    Revoke { id: i64 },
    /// Let an organiser take BBB meetings as floors: a meetingID, or a prefix ending in '*'
    /// (`coop-a-*`). Without an allowance an organiser can take no meeting; the admin token any.
    Allow { id: i64, pattern: String },
    /// Take an allowance back (events already created keep their floor).
    Disallow { id: i64, pattern: String },
}

#[derive(clap::Args)]
struct EventsArgs {
    #[command(subcommand)]
    action: EventsAction,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum EventsAction {
    /// List live events.
    List,
    /// Cancel an event, freeing its capacity. (Cancel through the API of a running relay to also
    /// disconnect its live sessions at once.)
    Cancel { id: String },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn,tower_http=warn")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run(args, false).await,
            Command::Demo(args) => run(args, true).await,
            Command::Organiser(args) => organiser(args).await,
            Command::Events(args) => events(args).await,
        }
    })
}

async fn run(args: ConfigArgs, demo: bool) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let mut server = Server::start(settings).await?;
    let stop_demo = Arc::new(AtomicBool::new(false));
    if demo {
        let event = server.ensure_demo().await.context("could not create the demo event")?;
        let port = event
            .floor
            .rtp_url
            .as_deref()
            .and_then(|u| u.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .context("the demo event has no RTP floor port")?;
        let to = std::net::SocketAddr::new(server.settings().media_bind_ip(), port);
        let to =
            if to.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], port)) } else { to };
        tolk_relay::demo::spawn_floor(to, stop_demo.clone()).context("could not start the demo floor")?;
        println!(
            "\nTolk demo is running. Open this in a browser and press Play:\n\n  {}\n",
            event.listener_url
        );
    }
    let stopped_shard = server.shard_stopped();
    let stopped = tokio::select! {
        _ = server.wait() => None,
        stopped = stopped_shard => Some(stopped),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            None
        }
    };
    if let Some(why) = stopped {
        // A shard thread died despite the containment: exit non-zero so that systemd
        // (Restart=always) starts a whole new process; listeners reconnect by themselves.
        tracing::error!(%why, "exiting so that the service restarts");
        std::process::exit(70);
    }
    stop_demo.store(true, std::sync::atomic::Ordering::Relaxed);
    // Writes every usage fact and closes the open intervals before the process exits.
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn open_store(config: &ConfigArgs) -> anyhow::Result<tolk_relay::store::Store> {
    let settings = Settings::resolve(config)?;
    Ok(match &settings.database_url {
        Some(url) => tolk_relay::store::Store::open(url).await?,
        None => {
            std::fs::create_dir_all(&settings.data_dir)?;
            tolk_relay::store::Store::open_in(&settings.data_dir).await?
        }
    })
}

async fn organiser(args: OrganiserArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config).await?;
    match args.action {
        OrganiserAction::Add { name } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.chars().count() <= 100,
                "the name must be 1 to 100 characters"
            );
            let token = tolk_relay::ids::Token::generate();
            let organiser = store.insert_organiser(name, &token).await?;
            println!(
                "Organiser {} ({}) created. Its token (shown only now):\n  {}",
                organiser.id,
                organiser.name,
                token.secret()
            );
        }
        OrganiserAction::List => {
            for o in store.organisers().await? {
                println!("{:>4}  {}{}", o.id, o.name, if o.revoked { "  (revoked)" } else { "" });
                let meetings = store.meeting_allowances(o.id).await?;
                if !meetings.is_empty() {
                    let meetings: Vec<&str> = meetings.iter().map(|m| m.as_str()).collect();
                    println!("      BBB meetings: {}", meetings.join(", "));
                }
            }
        }
        OrganiserAction::Allow { id, pattern } => {
            let pattern = tolk_relay::ids::MeetingPattern::parse(&pattern)?;
            anyhow::ensure!(store.allow_meetings(id, &pattern).await?, "no live organiser {id}");
            println!("Organiser {id} may take BBB meetings matching '{pattern}' as floors.");
        }
        OrganiserAction::Disallow { id, pattern } => {
            let pattern = tolk_relay::ids::MeetingPattern::parse(&pattern)?;
            anyhow::ensure!(
                store.disallow_meetings(id, &pattern).await?,
                "organiser {id} has no allowance '{pattern}'"
            );
            println!("Organiser {id} may no longer take BBB meetings matching '{pattern}'.");
        }
        OrganiserAction::Revoke { id } => {
            anyhow::ensure!(store.revoke_organiser(id).await?, "no live organiser {id}");
            println!("Organiser {id} revoked.");
        }
    }
    Ok(())
}

async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config).await?;
    match args.action {
        EventsAction::List => {
            for e in store.events().await? {
                let languages = e.languages.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(",");
                println!(
                    "{}  {} – {}  {:>6} listeners  {} → {}  {}",
                    e.id,
                    e.starts_at.format("%Y-%m-%d %H:%M"),
                    e.ends_at.format("%H:%M"),
                    e.expected_listeners,
                    e.floor_language,
                    languages,
                    e.title
                );
            }
        }
        EventsAction::Cancel { id } => {
            let id = tolk_relay::ids::EventId::parse(&id)?;
            anyhow::ensure!(store.cancel_event(&id).await?, "no live event {id}");
            println!("Event {id} cancelled.");
        }
    }
    Ok(())
}
