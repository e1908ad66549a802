//! Configuration: flags, then `TOLK_*` environment variables, then a TOML file (`--config`), then
//! defaults that serve one machine with SQLite in a data directory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// What can be wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file given with `--config` could not be read.
    #[error("could not read the config file {path}: {source}")]
    Read {
        /// The file's path, as given.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The TOML file is not valid TOML or has a setting Tolk does not know.
    #[error("the config file {path} is not valid: {source}")]
    Parse {
        /// The file's path, as given.
        path: PathBuf,
        /// Where and why parsing failed.
        source: toml::de::Error,
    },
    /// A setting has a value Tolk cannot use; the sentence names it and what it accepts.
    #[error("{0}")]
    Invalid(String),
}

/// Settings as flags and environment variables; every one may also be set in the TOML file
/// under the same name in lower case without the prefix (`listen = "0.0.0.0:8080"`).
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "TOLK_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TOLK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Base URL under which browsers reach Tolk, used in links and Location headers
    /// (e.g. https://bbb.example.org/tolk) [default: http://<listen>].
    #[arg(long, env = "TOLK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Addresses put in ICE candidates, comma-separated (IPv4 and IPv6): those clients reach the
    /// media ports on [default: this machine's addresses, then 127.0.0.1].
    #[arg(long, env = "TOLK_PUBLIC_IP")]
    pub public_ip: Option<String>,
    /// First media UDP port; shard k uses port + k [default: 40000].
    #[arg(long, env = "TOLK_MEDIA_PORT")]
    pub media_port: Option<u16>,
    /// Number of media shards (threads with a UDP socket each) [default: one per core].
    #[arg(long, env = "TOLK_MEDIA_SHARDS")]
    pub media_shards: Option<usize>,
    /// Directory for the SQLite database and the generated admin token [default: ./data].
    #[arg(long, env = "TOLK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL [default: sqlite in the data directory].
    #[arg(long, env = "TOLK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Organiser API token; generated and printed once when unset.
    #[arg(long, env = "TOLK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Listeners this node takes at once, over all events [default: 3000 per media shard].
    #[arg(long, env = "TOLK_CAPACITY_LISTENERS")]
    pub capacity_listeners: Option<u32>,
    /// Channel units this node takes at once (pass-through channel 1, mixed channel 10)
    /// [default: 100 per media shard].
    #[arg(long, env = "TOLK_CAPACITY_CHANNELS")]
    pub capacity_channels: Option<u32>,
    /// Listeners admitted per event: expected_listeners × headroom, rounded up [default: 1.25].
    #[arg(long, env = "TOLK_HEADROOM")]
    pub headroom: Option<f64>,
    /// Open HTTP connections at once; more wait in the kernel's backlog [default: 4096].
    #[arg(long, env = "TOLK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Mix mode: Opus encoder complexity 0–10 [default: 5].
    #[arg(long, env = "TOLK_MIX_COMPLEXITY")]
    pub mix_complexity: Option<i32>,
    /// Mix mode: Opus bitrate in bit/s [default: 32000].
    #[arg(long, env = "TOLK_MIX_BITRATE")]
    pub mix_bitrate: Option<i32>,
    /// BigBlueButton API base for events whose floor is a BBB meeting, e.g.
    /// https://bbb.example.org/bigbluebutton/ [default: none, BBB floors refused].
    #[arg(long, env = "TOLK_BBB_URL")]
    pub bbb_url: Option<String>,
    /// BBB's shared secret (`bbb-conf --secret`).
    #[arg(long, env = "TOLK_BBB_SECRET", hide_env_values = true)]
    pub bbb_secret: Option<String>,
    /// Checksum algorithm for BBB API calls: sha1, sha256, sha384 or sha512 [default: sha256].
    #[arg(long, env = "TOLK_BBB_CHECKSUM")]
    pub bbb_checksum: Option<String>,
    /// The bot's name in BBB meetings [default: Interpretation].
    #[arg(long, env = "TOLK_BBB_BOT_NAME")]
    pub bbb_bot_name: Option<String>,
    /// Who offers the SDP on bbb-webrtc-sfu: server (BBB 3.x) or client (older) [default: server].
    #[arg(long, env = "TOLK_BBB_OFFER")]
    pub bbb_offer: Option<String>,
    /// Where bbb-web tells who a BBB session token belongs to (the plugin's calls)
    /// [default: <TOLK_BBB_URL>connection/checkGraphqlAuthorization].
    #[arg(long, env = "TOLK_BBB_SESSION_CHECK_URL")]
    pub bbb_session_check_url: Option<String>,
    /// Where a BBB meeting's floor is taken: auto (its LiveKit room if it exists, else
    /// bbb-webrtc-sfu; decided per meeting and on every reconnection), livekit or sfu
    /// [default: auto].
    #[arg(long, env = "TOLK_BBB_AUDIO")]
    pub bbb_audio: Option<String>,
    /// LiveKit's signalling URL on the BBB server [default: ws://127.0.0.1:7880 when a LiveKit
    /// key is set].
    #[arg(long, env = "TOLK_LIVEKIT_URL")]
    pub livekit_url: Option<String>,
    /// LiveKit API key of the BBB server (`keys:` in /etc/bigbluebutton/livekit.yaml).
    #[arg(long, env = "TOLK_LIVEKIT_KEY")]
    pub livekit_key: Option<String>,
    /// Its secret.
    #[arg(long, env = "TOLK_LIVEKIT_SECRET", hide_env_values = true)]
    pub livekit_secret: Option<String>,
    /// Address `/metrics` (Prometheus) is served on, apart from the public HTTP address; `off`
    /// serves none [default: 127.0.0.1:9464].
    #[arg(long, env = "TOLK_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Origins that may embed Tolk's pages in a frame (a conference website showing the listener
    /// page), comma-separated, e.g. https://conf.example.org [default: none but Tolk's own].
    #[arg(long, env = "TOLK_FRAME_ANCESTORS", value_delimiter = ',')]
    pub frame_ancestors: Option<Vec<String>>,
    /// Addresses of reverse proxies (BBB's nginx) whose X-Forwarded-For names the real client,
    /// comma-separated [default: 127.0.0.1,::1].
    #[arg(long, env = "TOLK_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<IpAddr>>,
    /// Label listener counts with event ids in `/metrics` (anyone who reads an event id can
    /// listen to it) [default: false: totals per language only].
    #[arg(long, env = "TOLK_METRICS_PER_EVENT")]
    pub metrics_per_event: Option<bool>,
    /// The longest an event may last, in days [default: 7].
    #[arg(long, env = "TOLK_MAX_EVENT_DAYS")]
    pub max_event_days: Option<u32>,
    /// Events an organiser account may have that are not over yet [default: 50]; the admin
    /// token has no limit.
    #[arg(long, env = "TOLK_MAX_EVENTS_PER_ORGANISER")]
    pub max_events_per_organiser: Option<u32>,
    /// A Redis shared by the nodes of a cluster (`redis://10.0.0.5:6379/0`): turns clustering
    /// on (docs/cluster.md) [default: none, a single node].
    #[arg(long, env = "TOLK_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The secret every node of the cluster shares (at least 16 characters): one node's cascade
    /// is authorised at another with it.
    #[arg(long, env = "TOLK_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Where this node is, in the operator's words (`eu-west`, `coop-b`), shown by
    /// `tolk cluster status`.
    #[arg(long, env = "TOLK_REGION")]
    pub region: Option<String>,
    /// This node's id in the cluster and the usage tables [default: a random id kept in the
    /// data directory].
    #[arg(long, env = "TOLK_NODE_ID")]
    pub node_id: Option<String>,
    /// Where people reach the cluster, whichever node answers (a load balancer, or a DNS name of
    /// every node), e.g. https://tolk.coop.example: the links Tolk hands out (listener, booth,
    /// WHIP) use it, so that they work while any node does [default: this node's public_url].
    #[arg(long, env = "TOLK_CLUSTER_URL")]
    pub cluster_url: Option<String>,
    /// Where recordings (one Ogg Opus file per recorded channel) are written
    /// [default: <data_dir>/recordings].
    #[arg(long, env = "TOLK_RECORDING_DIR")]
    pub recording_dir: Option<PathBuf>,
    /// Recordings are deleted this many days after they end; 0 keeps them until an organiser
    /// deletes them [default: 30].
    #[arg(long, env = "TOLK_RECORDING_RETENTION_DAYS")]
    pub recording_retention_days: Option<u32>,
    /// A recording does not start with less free disk space than this, in MB [default: 500].
    #[arg(long, env = "TOLK_RECORDING_MIN_FREE_MB")]
    pub recording_min_free_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    public_ip: Option<String>,
    media_port: Option<u16>,
    media_shards: Option<usize>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    admin_token: Option<String>,
    mix_complexity: Option<i32>,
    mix_bitrate: Option<i32>,
    capacity_listeners: Option<u32>,
    capacity_channels: Option<u32>,
    headroom: Option<f64>,
    max_connections: Option<usize>,
    bbb_url: Option<String>,
    bbb_secret: Option<String>,
    bbb_checksum: Option<String>,
    bbb_bot_name: Option<String>,
    bbb_offer: Option<String>,
    bbb_session_check_url: Option<String>,
    bbb_audio: Option<String>,
    livekit_url: Option<String>,
    livekit_key: Option<String>,
    livekit_secret: Option<String>,
    metrics_listen: Option<String>,
    metrics_per_event: Option<bool>,
    trusted_proxies: Option<Vec<IpAddr>>,
    frame_ancestors: Option<Vec<String>>,
    max_event_days: Option<u32>,
    max_events_per_organiser: Option<u32>,
    redis_url: Option<String>,
    cluster_secret: Option<String>,
    region: Option<String>,
    node_id: Option<String>,
    cluster_url: Option<String>,
    recording_dir: Option<PathBuf>,
    recording_retention_days: Option<u32>,
    recording_min_free_mb: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP address to listen on.
    pub listen: SocketAddr,
    /// The base URL browsers reach Tolk under, without a trailing '/' (in links and Location headers).
    pub public_url: String,
    /// The public URL was not configured but derived from `listen` (and follows the bound port).
    pub public_url_from_listen: bool,
    /// The addresses put in ICE candidates, the first the main one (in links and the cluster's
    /// record): configured, or this machine's (`net::addresses`).
    pub public_ips: Vec<IpAddr>,
    /// The first media UDP port; media shard k uses this port + k.
    pub media_port: u16,
    /// The number of media shards (threads with a UDP socket each), 1 to 256.
    pub media_shards: usize,
    /// The directory of the SQLite database and the generated admin token.
    pub data_dir: PathBuf,
    /// The database URL (None: SQLite in `data_dir`).
    pub database_url: Option<String>,
    /// The organiser API's admin token (None: generated once into `data_dir` and printed).
    pub admin_token: Option<String>,
    /// A media session that has not connected this long after its offer is dropped.
    pub connect_timeout: std::time::Duration,
    /// Mix mode Opus encoder: complexity, 0–10.
    pub mix_complexity: i32,
    /// Mix mode Opus encoder: bitrate in bit/s (6,000 to 510,000).
    pub mix_bitrate: i32,
    /// What this node takes at once (see `capacity.rs`).
    pub capacity: crate::capacity::Capacity,
    /// How far past its expected listeners an event admits listeners (1.25: 25 % more), 1 to 10.
    pub headroom: f64,
    /// The BigBlueButton server for BBB floors, if any.
    pub bbb: Option<crate::bbb::BbbConfig>,
    /// Where `/metrics` is served (None: nowhere). Never on the public address.
    pub metrics_listen: Option<SocketAddr>,
    /// Whether `/metrics` labels listener counts with event ids.
    pub metrics_per_event: bool,
    /// Reverse proxies whose X-Forwarded-For is believed (the client address of a request).
    pub trusted_proxies: Vec<IpAddr>,
    /// Listener joins one client address may make at once: a conference hall behind one NAT
    /// address gets hundreds in.
    pub joins_burst: f64,
    /// Listener joins per second one client address may make after its burst.
    pub joins_per_second: f64,
    /// Origins besides Tolk's own that may embed its pages in a frame.
    pub frame_ancestors: Vec<String>,
    /// Listeners that may be connecting (offer answered, ICE and DTLS not done) on the node.
    pub connecting_per_node: u32,
    /// Listeners that may be connecting from one client address.
    pub connecting_per_client: u32,
    /// What the HTTP edge allows a client: connections, and time to send a request.
    pub edge: EdgeLimits,
    /// How usage facts are batched.
    pub usage: crate::recorder::RecorderSettings,
    /// This node's name in the usage tables and its cluster (None: generated once into
    /// `data_dir/node-id`).
    pub node_id: Option<String>,
    /// Clustering (None: a single node).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Where the links Tolk hands out point (None: `public_url`): a cluster's entry.
    pub cluster_url: Option<String>,
    /// Recording: where files go, how long they are kept, the free space it needs.
    pub recording: crate::recording::RecordingSettings,
    /// The longest an event may last.
    pub max_event_length: chrono::Duration,
    /// Events an organiser account may have that are not over yet.
    pub max_events_per_organiser: u32,
}

impl Settings {
    /// Resolve the settings: flags and environment variables first, then the TOML file, then
    /// the defaults; checks what cannot work (an unusable public URL or IP, BBB half configured…).
    pub fn resolve(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let bbb = bbb(args, &file)?;
        let cluster = cluster(args, &file)?;
        let listen = args.listen.or(file.listen).unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
        let configured_url = args.public_url.clone().or(file.public_url);
        let public_url_from_listen = configured_url.is_none();
        let public_url =
            configured_url.unwrap_or_else(|| format!("http://{listen}")).trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public_url '{public_url}' must start with http:// or https://"
            )));
        }
        let media_shards = args
            .media_shards
            .or(file.media_shards)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if media_shards == 0 || media_shards > 256 {
            return Err(ConfigError::Invalid(format!("media_shards must be 1 to 256, not {media_shards}")));
        }
        // An empty value (`TOLK_PUBLIC_IP=`) is no value: the machine's addresses.
        let configured = args.public_ip.clone().or(file.public_ip).filter(|l| !l.trim().is_empty());
        let public_ips = match configured {
            Some(list) => {
                crate::net::addresses::parse(&list).map_err(|e| ConfigError::Invalid(e.to_string()))?
            }
            None => crate::net::addresses::discover(),
        };
        let metrics_listen = metrics_listen(args.metrics_listen.as_ref().or(file.metrics_listen.as_ref()))?;
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("data"));
        let recording = crate::recording::RecordingSettings {
            dir: args
                .recording_dir
                .clone()
                .or(file.recording_dir)
                .unwrap_or_else(|| data_dir.join("recordings")),
            retention_days: match args
                .recording_retention_days
                .or(file.recording_retention_days)
                .unwrap_or(30)
            {
                0 => None,
                days => Some(days.min(36_500)),
            },
            min_free_bytes: args
                .recording_min_free_mb
                .or(file.recording_min_free_mb)
                .unwrap_or(500)
                .saturating_mul(1_000_000),
        };
        Ok(Self {
            recording,
            listen,
            public_url,
            public_url_from_listen,
            public_ips,
            media_port: args.media_port.or(file.media_port).unwrap_or(40_000),
            media_shards,
            data_dir,
            database_url: args.database_url.clone().or(file.database_url),
            admin_token: args.admin_token.clone().or(file.admin_token).filter(|t| !t.is_empty()),
            connect_timeout: std::time::Duration::from_secs(10),
            mix_complexity: args.mix_complexity.or(file.mix_complexity).unwrap_or(5).clamp(0, 10),
            mix_bitrate: args.mix_bitrate.or(file.mix_bitrate).unwrap_or(32_000).clamp(6_000, 510_000),
            capacity: crate::capacity::Capacity {
                listeners: args
                    .capacity_listeners
                    .or(file.capacity_listeners)
                    .unwrap_or(LISTENERS_PER_SHARD * media_shards as u32),
                channels: args
                    .capacity_channels
                    .or(file.capacity_channels)
                    .unwrap_or(100 * media_shards as u32),
            },
            headroom: headroom(args.headroom.or(file.headroom))?,
            bbb,
            metrics_listen,
            metrics_per_event: args.metrics_per_event.or(file.metrics_per_event).unwrap_or(false),
            trusted_proxies: args.trusted_proxies.clone().or(file.trusted_proxies).unwrap_or_else(|| {
                vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)]
            }),
            frame_ancestors: frame_ancestors(args.frame_ancestors.clone().or(file.frame_ancestors))?,
            joins_burst: 200.0,
            joins_per_second: 20.0,
            connecting_per_node: 1000,
            connecting_per_client: 100,
            edge: EdgeLimits {
                max_connections: match args.max_connections.or(file.max_connections).unwrap_or(4096) {
                    n @ 1..=1_000_000 => n,
                    n => {
                        return Err(ConfigError::Invalid(format!(
                            "max_connections must be 1 to 1000000, not {n}"
                        )));
                    }
                },
                ..Default::default()
            },
            usage: crate::recorder::RecorderSettings::default(),
            node_id: match args.node_id.clone().or(file.node_id).filter(|n| !n.trim().is_empty()) {
                Some(id) => Some(
                    crate::ids::NodeId::parse(id.trim())
                        .map_err(|e| ConfigError::Invalid(format!("node_id: {e}")))?
                        .to_string(),
                ),
                None => None,
            },
            cluster,
            cluster_url: match args
                .cluster_url
                .clone()
                .or(file.cluster_url)
                .map(|u| u.trim().trim_end_matches('/').to_owned())
            {
                Some(url) if url.is_empty() => None,
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(url),
                Some(url) => {
                    return Err(ConfigError::Invalid(format!(
                        "cluster_url '{url}' must start with http:// or https://"
                    )));
                }
                None => None,
            },
            max_event_length: chrono::Duration::days(i64::from(
                args.max_event_days.or(file.max_event_days).unwrap_or(7).clamp(1, 3650),
            )),
            max_events_per_organiser: args
                .max_events_per_organiser
                .or(file.max_events_per_organiser)
                .unwrap_or(50),
        })
    }

    /// Where the links Tolk hands out point: the cluster's entry, else this node.
    pub fn links_url(&self) -> &str {
        self.cluster_url.as_deref().unwrap_or(&self.public_url)
    }

    /// The main address put in ICE candidates (the first): where an RTP floor is sent, and the
    /// node's media address in a cluster.
    pub fn public_ip(&self) -> IpAddr {
        self.public_ips.first().copied().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Where media sockets bind: loopback when clients are on this machine, else every interface.
    pub fn media_bind_ip(&self) -> IpAddr {
        crate::net::addresses::bind_ip(&self.public_ips)
    }
}

/// Listeners a media shard (a core) is reserved for by default: the fan-out costs about 8 µs per
/// listener-packet (bench/), so a core carries ~2,500 listeners at 50 packets/s; 80 % of that.
const LISTENERS_PER_SHARD: u32 = 3_000;

/// Where `/metrics` is served by default: loopback only, for a Prometheus on the same machine.
pub const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

fn metrics_listen(value: Option<&String>) -> Result<Option<SocketAddr>, ConfigError> {
    match value.map(|v| v.trim()) {
        None | Some("") => Ok(Some(DEFAULT_METRICS_LISTEN)),
        Some("off") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ConfigError::Invalid(format!(
                "metrics_listen must be an address like 127.0.0.1:9464, or off; not '{v}'"
            ))
        }),
    }
}

fn frame_ancestors(origins: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> =
        origins.unwrap_or_default().iter().map(|o| o.trim().trim_end_matches('/').to_owned()).collect();
    for origin in origins.iter().filter(|o| !o.is_empty()) {
        let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
            && !origin.contains([' ', ';', ',', '\'', '"'])
            && origin.split("://").nth(1).is_some_and(|host| !host.is_empty() && !host.contains('/'));
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "frame_ancestors: '{origin}' is not an origin like https://conf.example.org"
            )));
        }
    }
    Ok(origins.into_iter().filter(|o| !o.is_empty()).collect())
}

fn headroom(value: Option<f64>) -> Result<f64, ConfigError> {
    match value {
        None => Ok(1.25),
        Some(h) if (1.0..=10.0).contains(&h) => Ok(h),
        Some(h) => Err(ConfigError::Invalid(format!("headroom must be between 1.0 and 10, not {h}"))),
    }
}

fn bbb(args: &ConfigArgs, file: &FileConfig) -> Result<Option<crate::bbb::BbbConfig>, ConfigError> {
    let invalid = |e: crate::bbb::BbbError| ConfigError::Invalid(e.to_string());
    let url = args.bbb_url.clone().or_else(|| file.bbb_url.clone()).filter(|u| !u.trim().is_empty());
    let secret = args.bbb_secret.clone().or_else(|| file.bbb_secret.clone()).filter(|s| !s.trim().is_empty());
    let (url, secret) = match (url, secret) {
        (None, None) => return Ok(None),
        (Some(url), Some(secret)) => (url, secret),
        (Some(_), None) => return Err(ConfigError::Invalid("bbb_url is set but bbb_secret is not".into())),
        (None, Some(_)) => return Err(ConfigError::Invalid("bbb_secret is set but bbb_url is not".into())),
    };
    let mut config = crate::bbb::BbbConfig::new(&url, &secret).map_err(invalid)?;
    if let Some(name) = args.bbb_checksum.as_ref().or(file.bbb_checksum.as_ref()) {
        config.checksum = name.parse().map_err(|e: crate::bbb::checksum::UnknownAlgorithm| {
            ConfigError::Invalid(format!("bbb_checksum: {e}"))
        })?;
    }
    if let Some(name) = args.bbb_bot_name.as_ref().or(file.bbb_bot_name.as_ref()) {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ConfigError::Invalid("bbb_bot_name must be 1 to 64 characters".into()));
        }
        config.bot_name = name.to_owned();
    }
    if let Some(offer) = args.bbb_offer.as_ref().or(file.bbb_offer.as_ref()) {
        config.offer = offer.parse().map_err(invalid)?;
    }
    if let Some(check) = args.bbb_session_check_url.as_ref().or(file.bbb_session_check_url.as_ref()) {
        let url = url::Url::parse(check.trim()).map_err(|e| {
            ConfigError::Invalid(format!("bbb_session_check_url '{check}' is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid(format!(
                "bbb_session_check_url '{check}' must be an http(s) URL"
            )));
        }
        config.session_check = Some(url);
    }
    let livekit_invalid = |e: crate::bbb::livekit::LiveKitError| ConfigError::Invalid(e.to_string());
    if let Some(audio) = args.bbb_audio.as_ref().or(file.bbb_audio.as_ref()) {
        config.audio = audio.parse().map_err(livekit_invalid)?;
    }
    let pick = |a: &Option<String>, f: &Option<String>| {
        a.clone().or_else(|| f.clone()).filter(|v| !v.trim().is_empty())
    };
    let key = pick(&args.livekit_key, &file.livekit_key);
    let secret = pick(&args.livekit_secret, &file.livekit_secret);
    let url = pick(&args.livekit_url, &file.livekit_url).unwrap_or_else(|| "ws://127.0.0.1:7880".into());
    config.livekit = match (key, secret) {
        (None, None) => None,
        (Some(key), Some(secret)) => {
            Some(crate::bbb::livekit::LiveKitConfig::new(&url, &key, &secret).map_err(livekit_invalid)?)
        }
        (Some(_), None) => {
            return Err(ConfigError::Invalid("livekit_key is set but livekit_secret is not".into()));
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid("livekit_secret is set but livekit_key is not".into()));
        }
    };
    if config.audio == crate::bbb::livekit::AudioBridge::LiveKit && config.livekit.is_none() {
        return Err(ConfigError::Invalid(
            "TOLK_BBB_AUDIO=livekit needs TOLK_LIVEKIT_KEY and TOLK_LIVEKIT_SECRET".into(),
        ));
    }
    Ok(Some(config))
}

fn cluster(
    args: &ConfigArgs,
    file: &FileConfig,
) -> Result<Option<crate::cluster::ClusterConfig>, ConfigError> {
    let pick = |a: &Option<String>, f: &Option<String>| {
        a.clone().or_else(|| f.clone()).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    };
    let Some(url) = pick(&args.redis_url, &file.redis_url) else {
        if pick(&args.cluster_secret, &file.cluster_secret).is_some() {
            return Err(ConfigError::Invalid("cluster_secret is set but redis_url is not".into()));
        }
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
        return Err(ConfigError::Invalid(format!(
            "redis_url '{url}' must start with redis://, rediss:// or unix://"
        )));
    }
    let secret = pick(&args.cluster_secret, &file.cluster_secret).unwrap_or_default();
    if secret.chars().count() < 16 {
        return Err(ConfigError::Invalid(
            "redis_url is set: cluster_secret must be set too, at least 16 characters, the same on every node"
                .into(),
        ));
    }
    let mut config = crate::cluster::ClusterConfig::new(url, secret);
    config.region = pick(&args.region, &file.region).unwrap_or_default();
    Ok(Some(config))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
}

/// What the HTTP edge (`http::edge`) allows a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Open connections at once.
    pub max_connections: usize,
    /// Time to send a request's headers (also how long an idle keep-alive connection stays).
    pub header_timeout: std::time::Duration,
    /// Time to send a request's body once its headers are in.
    pub body_timeout: std::time::Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_one_machine() -> Result<(), ConfigError> {
        let s = Settings::resolve(&ConfigArgs::default())?;
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.media_port, 40_000);
        assert!(s.media_shards >= 1);
        assert_eq!(s.data_dir, PathBuf::from("data"));
        assert_eq!(s.metrics_listen, Some(DEFAULT_METRICS_LISTEN));
        assert!(s.metrics_listen.is_some_and(|a| a.ip().is_loopback()), "metrics stay on this machine");
        assert!(!s.metrics_per_event);
        Ok(())
    }

    #[test]
    fn metrics_listen_takes_an_address_or_off() -> Result<(), ConfigError> {
        let with =
            |v: &str| Settings::resolve(&ConfigArgs { metrics_listen: Some(v.into()), ..Default::default() });
        assert_eq!(with("off")?.metrics_listen, None);
        assert_eq!(
            with("0.0.0.0:9100")?.metrics_listen,
            Some("0.0.0.0:9100".parse().unwrap_or(DEFAULT_METRICS_LISTEN))
        );
        let err = with("everywhere").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("metrics_listen"), "{err}");
        Ok(())
    }

    #[test]
    fn media_addresses_are_configured_as_a_list_or_found_on_the_machine() -> Result<(), ConfigError> {
        let with =
            |v: &str| Settings::resolve(&ConfigArgs { public_ip: Some(v.into()), ..Default::default() });
        let s = with("203.0.113.7, 2001:db8::7")?;
        assert_eq!(s.public_ips, ["203.0.113.7".parse::<IpAddr>().unwrap(), "2001:db8::7".parse().unwrap()]);
        assert_eq!(s.public_ip(), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(s.media_bind_ip(), IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
        assert_eq!(with("127.0.0.1")?.media_bind_ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        // Empty is unset: this machine's addresses, loopback last.
        let found = with(" ")?;
        assert_eq!(found.public_ips.last(), Some(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let err = with("203.0.113.7,0.0.0.0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("0.0.0.0") && err.contains("clients reach"), "{err}");
        Ok(())
    }

    #[test]
    fn flags_win_over_the_file_and_bad_files_are_named() -> Result<(), ConfigError> {
        let dir = std::env::temp_dir().join(format!("tolk-config-{}", crate::ids::random_hex(4)));
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let path = dir.join("tolk.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmedia_port = 41000\npublic_url = \"https://x.org/tolk/\"\n",
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let args = ConfigArgs { config: Some(path.clone()), media_port: Some(42_000), ..Default::default() };
        let s = Settings::resolve(&args)?;
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.media_port, 42_000);
        assert_eq!(s.public_url, "https://x.org/tolk");
        std::fs::write(&path, "lisen = 1\n").map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let err = Settings::resolve(&ConfigArgs { config: Some(path), ..Default::default() });
        assert!(matches!(err, Err(ConfigError::Parse { .. })));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn bbb_settings_are_checked() -> Result<(), ConfigError> {
        let args = |url: Option<&str>, secret: Option<&str>| ConfigArgs {
            bbb_url: url.map(Into::into),
            bbb_secret: secret.map(Into::into),
            ..Default::default()
        };
        assert!(Settings::resolve(&args(None, None))?.bbb.is_none());
        let s = Settings::resolve(&ConfigArgs {
            bbb_checksum: Some("sha512".into()),
            bbb_offer: Some("client".into()),
            ..args(Some("https://bbb.example.org/bigbluebutton"), Some("s3cret"))
        })?;
        let bbb = s.bbb.ok_or_else(|| ConfigError::Invalid("no bbb".into()))?;
        assert_eq!(bbb.url.as_str(), "https://bbb.example.org/bigbluebutton/");
        assert_eq!(bbb.checksum, crate::bbb::Algorithm::Sha512);
        assert_eq!(bbb.offer, crate::bbb::OfferFlow::Client);
        assert_eq!(bbb.bot_name, "Interpretation");
        assert_eq!(bbb.audio, crate::bbb::livekit::AudioBridge::Auto);
        assert!(bbb.livekit.is_none(), "no LiveKit without its key");
        let s = Settings::resolve(&ConfigArgs {
            bbb_audio: Some("livekit".into()),
            livekit_key: Some("APIkey".into()),
            livekit_secret: Some("secret".into()),
            ..args(Some("https://bbb.example.org/bigbluebutton"), Some("s3cret"))
        })?;
        let bbb = s.bbb.ok_or_else(|| ConfigError::Invalid("no bbb".into()))?;
        assert_eq!(bbb.audio, crate::bbb::livekit::AudioBridge::LiveKit);
        let livekit = bbb.livekit.ok_or_else(|| ConfigError::Invalid("no livekit".into()))?;
        assert_eq!((livekit.url.as_str(), livekit.api_key.as_str()), ("ws://127.0.0.1:7880/", "APIkey"));
        for bad in [
            args(Some("https://bbb.example.org/bigbluebutton/"), None),
            args(None, Some("s")),
            args(Some("ftp://x/"), Some("s")),
            ConfigArgs { bbb_checksum: Some("md5".into()), ..args(Some("https://b/"), Some("s")) },
            ConfigArgs { bbb_offer: Some("both".into()), ..args(Some("https://b/"), Some("s")) },
            ConfigArgs { bbb_audio: Some("jitsi".into()), ..args(Some("https://b/"), Some("s")) },
            ConfigArgs { bbb_audio: Some("livekit".into()), ..args(Some("https://b/"), Some("s")) },
            ConfigArgs { livekit_key: Some("k".into()), ..args(Some("https://b/"), Some("s")) },
            ConfigArgs {
                livekit_key: Some("k".into()),
                livekit_secret: Some("s".into()),
                livekit_url: Some("ftp://x".into()),
                ..args(Some("https://b/"), Some("s"))
            },
        ] {
            let e = Settings::resolve(&bad).err().ok_or_else(|| ConfigError::Invalid("accepted".into()))?;
            assert!(!e.to_string().is_empty());
        }
        Ok(())
    }
}
