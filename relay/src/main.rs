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
    /// Peer clusters (federation): other co-ops whose edges may relay this cluster's events.
    Peer(PeerArgs),
    /// The cluster (TOLK_REDIS_URL): its nodes, their load, and where each event runs.
    Cluster(ClusterArgs),
    /// Move a node's listeners to the other nodes of its cluster, and send it no new ones.
    Drain(DrainArgs),
}

#[derive(clap::Args)]
struct PeerArgs {
    #[command(subcommand)]
    action: PeerAction,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum PeerAction {
    /// Issue a peering token to a peer cluster and print it (shown once): its edges present it to
    /// subscribe to this cluster's events.
    Add { name: String },
    /// List peers.
    List,
    /// Revoke a peer: its token stops working (running subscriptions end when they reconnect).
    Revoke { name: String },
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(subcommand)]
    action: ClusterAction,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Nodes (load, listeners, capacity, heartbeat age), and which node is each event's origin.
    Status,
}

#[derive(clap::Args)]
struct DrainArgs {
    /// The node to drain [default: this node's id, TOLK_NODE_ID or the data directory's].
    node: Option<String>,
    /// Take listeners again.
    #[arg(long)]
    undo: bool,
    #[command(flatten)]
    config: ConfigArgs,
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
            Command::Peer(args) => peer(args).await,
            Command::Cluster(args) => cluster(args).await,
            Command::Drain(args) => drain(args).await,
        }
    })
}

async fn run(mut args: ConfigArgs, demo: bool) -> anyhow::Result<()> {
    let phone_port = if demo && args.listen.is_none() {
        // The demo is for hearing on a phone too: it listens on every interface (its links
        // still say 127.0.0.1 for this machine's browser); TOLK_LISTEN keeps it to one address.
        args.listen = Some(std::net::SocketAddr::from(([0, 0, 0, 0], 8080)));
        args.public_url.get_or_insert_with(|| "http://127.0.0.1:8080".into());
        Some(8080)
    } else {
        None
    };
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
        print_phone_links(&server, phone_port, &event.listener_url);
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

/// The demo's listener link for a phone on the same network: one per address of this machine
/// others reach, with a QR code of the first to scan.
fn print_phone_links(server: &Server, port: Option<u16>, listener_url: &str) {
    let Some(port) = port else { return };
    let base = &server.settings().public_url;
    let path = listener_url.strip_prefix(base.as_str()).unwrap_or(listener_url);
    // IPv4 only: the demo's HTTP listens on 0.0.0.0.
    let v4: Vec<std::net::IpAddr> =
        server.settings().public_ips.iter().copied().filter(|ip| ip.is_ipv4()).collect();
    let links: Vec<String> = tolk_relay::net::addresses::lan_hosts(&v4)
        .into_iter()
        .map(|host| format!("http://{host}:{port}{path}"))
        .collect();
    let Some(first) = links.first() else {
        println!("No network address found for a phone: this machine has only loopback.\n");
        return;
    };
    let (first_port, shards) = (server.settings().media_port, server.settings().media_shards as u16);
    let last_port = first_port.saturating_add(shards.saturating_sub(1));
    println!("On a phone on the same network (it must reach UDP ports {first_port}-{last_port}):\n");
    for link in &links {
        println!("  {link}");
    }
    if let Ok(code) = qrcode::QrCode::new(first.as_bytes()) {
        println!("\n{}", code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
    }
    println!("(The demo listens on every interface; TOLK_LISTEN=127.0.0.1:8080 keeps it to this machine.)\n");
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

async fn peer(args: PeerArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config).await?;
    match args.action {
        PeerAction::Add { name } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
                "a peer's name is 1 to 64 letters, digits, '-', '_' or '.' (e.g. coop-b)"
            );
            anyhow::ensure!(
                store.peers().await?.iter().all(|p| p.name != name),
                "there is a peer named {name} already"
            );
            let token = tolk_relay::ids::Token::generate();
            let peer = store.insert_peer(name, &token).await?;
            println!(
                "Peer {} added. Give its operator this peering token (shown only now); their organisers \
                 relay an event of yours with floor {{\"kind\": \"peer\", \"url\": \"<your listener link>\", \
                 \"token\": \"…\"}}:\n  {}",
                peer.name,
                token.secret()
            );
        }
        PeerAction::List => {
            for p in store.peers().await? {
                println!("{:>4}  {}{}", p.id, p.name, if p.revoked { "  (revoked)" } else { "" });
            }
        }
        PeerAction::Revoke { name } => {
            anyhow::ensure!(store.revoke_peer(&name).await?, "no live peer {name}");
            println!("Peer {name} revoked.");
        }
    }
    Ok(())
}

fn registry(config: &ConfigArgs) -> anyhow::Result<tolk_relay::cluster::registry::Registry> {
    let settings = Settings::resolve(config)?;
    let cluster = settings
        .cluster
        .context("this node is not in a cluster: set TOLK_REDIS_URL and TOLK_CLUSTER_SECRET")?;
    Ok(tolk_relay::cluster::registry::Registry::open(&cluster.redis_url, &cluster.prefix)?)
}

async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let registry = registry(&args.config)?;
    match args.action {
        ClusterAction::Status => {
            let nodes = registry.nodes().await?;
            let now = chrono::Utc::now().timestamp_millis();
            println!(
                "{:<20} {:<10} {:>9} {:>9} {:>5} {:>7}  {:<8} url",
                "node", "region", "listeners", "capacity", "cpu", "beat", "state"
            );
            for n in &nodes {
                println!(
                    "{:<20} {:<10} {:>9} {:>9} {:>4.0}% {:>5}ms  {:<8} {}",
                    n.id.as_str(),
                    if n.region.is_empty() { "-" } else { &n.region },
                    n.listeners,
                    n.capacity,
                    n.cpu * 100.0,
                    now - n.at_ms,
                    if n.draining { "draining" } else { "serving" },
                    n.url
                );
            }
            let listeners: u32 = nodes.iter().map(|n| n.listeners).sum();
            let capacity: u32 = nodes.iter().filter(|n| !n.draining).map(|n| n.capacity).sum();
            println!("{} nodes, {listeners} listeners of {capacity}", nodes.len());
            let origins = registry.origins().await?;
            if !origins.is_empty() {
                println!("\n{:<34} {:<20} edges", "event", "origin");
                for (event, origin) in origins {
                    let edges: Vec<&str> =
                        nodes.iter().filter(|n| n.edges.contains(&event)).map(|n| n.id.as_str()).collect();
                    println!("{:<34} {:<20} {}", event.as_str(), origin.as_str(), edges.join(", "));
                }
            }
        }
    }
    Ok(())
}

async fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let registry = registry(&args.config)?;
    let settings = Settings::resolve(&args.config)?;
    let node = match args.node.or(settings.node_id) {
        Some(node) => node,
        None => std::fs::read_to_string(settings.data_dir.join("node-id"))
            .map(|n| n.trim().to_owned())
            .context("which node? give its id: tolk drain NODE (see tolk cluster status)")?,
    };
    let node = tolk_relay::ids::NodeId::parse(&node)?;
    anyhow::ensure!(
        registry.nodes().await?.iter().any(|n| n.id == node),
        "no live node {node} in the cluster (see tolk cluster status)"
    );
    registry.set_drain(&node, !args.undo).await?;
    if args.undo {
        println!("Node {node} takes listeners again.");
    } else {
        println!(
            "Node {node} is draining: it takes no new listener, and sends its listeners on to the other \
             nodes (about 50 a second) while they have room. `tolk drain {node} --undo` ends it."
        );
    }
    Ok(())
}
