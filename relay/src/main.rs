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
        }
    })
}

async fn run(args: ConfigArgs, demo: bool) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let mut server = Server::start(settings).await?;
    let stop_demo = Arc::new(AtomicBool::new(false));
    if demo {
        let event = server.app.ensure_demo().await.context("could not create the demo event")?;
        let port = event
            .floor
            .rtp_url
            .as_deref()
            .and_then(|u| u.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .context("the demo event has no RTP floor port")?;
        let to = std::net::SocketAddr::new(server.app.settings.media_bind_ip(), port);
        let to =
            if to.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], port)) } else { to };
        tolk_relay::demo::spawn_floor(to, stop_demo.clone()).context("could not start the demo floor")?;
        println!(
            "\nTolk demo is running. Open this in a browser and press Play:\n\n  {}\n",
            event.listener_url
        );
    }
    let app = server.app.clone();
    tokio::select! {
        _ = server.wait() => {}
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
        }
    }
    stop_demo.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(app);
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
