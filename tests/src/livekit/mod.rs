//! A LiveKit server stand-in for the tests, written from LiveKit's protocol definitions: token
//! check, the signalling websocket with its two peer connections, audio forwarding with str0m,
//! hidden participants, the Twirp room service, and the test page for real `livekit-client`s.
//! [`LiveKitStandIn`] runs it in-process on a loopback port.

pub mod client;
mod media;
mod room;
mod signal;
pub mod token;
mod twirp;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
pub use livekit_protocol as proto;
pub use room::{LiveKitStats, TrackStats};
pub use token::{Claims, TokenError, VideoGrants};
pub use web::page_dir;

use room::Hub;
use signal::App;

/// How long the tokens the stand-in mints are valid.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// The stand-in's key pair and whether joining creates rooms.
#[derive(Debug, Clone)]
pub struct LiveKitConfig {
    pub api_key: String,
    pub api_secret: String,
    /// Joining a room that does not exist creates it (livekit-server's default); else 404.
    pub auto_create: bool,
}

impl Default for LiveKitConfig {
    fn default() -> Self {
        Self {
            api_key: "APItolktest".into(),
            api_secret: "tolk-test-secret-0123456789abcdef".into(),
            auto_create: true,
        }
    }
}

/// A running stand-in; stops when dropped.
pub struct LiveKitStandIn {
    addr: SocketAddr,
    config: LiveKitConfig,
    hub: Arc<Hub>,
    server: tokio::task::JoinHandle<()>,
}

impl LiveKitStandIn {
    /// Serve on a free loopback port.
    pub async fn start(config: LiveKitConfig) -> anyhow::Result<Self> {
        // reqwest's TLS wants a process-wide provider (the tests' HTTP clients).
        tolk_relay::bbb::install_default_crypto();
        let hub = Hub::new(config.auto_create);
        let app =
            App { hub: hub.clone(), api_key: config.api_key.clone(), api_secret: config.api_secret.clone() };
        let router = Router::new()
            .route("/rtc", get(signal::rtc))
            .route("/rtc/validate", get(signal::validate))
            .route("/rtc/v1", get(signal::no_v1))
            .route("/rtc/v1/validate", get(signal::no_v1))
            .route("/twirp/livekit.RoomService/{method}", post(twirp::room_service))
            .route("/page/{*path}", get(web::file))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("livekit stand-in stopped: {e}");
            }
        });
        Ok(Self { addr, config, hub, server })
    }

    /// The signalling URL clients are given: `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The same server over HTTP (Twirp, validate).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The test page (`tests/web/livekit/index.html`).
    pub fn page_url(&self) -> String {
        format!("{}/page/index.html", self.http_url())
    }

    pub fn api_key(&self) -> &str {
        &self.config.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.config.api_secret
    }

    /// Sign `claims` with the stand-in's secret.
    pub fn sign(&self, claims: &Claims) -> String {
        token::sign(claims, &self.config.api_secret)
    }

    /// A token for `identity` in `room` with `grants` (their room set to `room`).
    pub fn token(&self, room: &str, identity: &str, grants: VideoGrants) -> String {
        let grants = VideoGrants { room: room.to_owned(), ..grants };
        self.sign(&Claims::new(&self.config.api_key, identity, TOKEN_TTL, grants))
    }

    /// A token to join `room`, publish and subscribe.
    pub fn join_token(&self, room: &str, identity: &str) -> String {
        self.token(room, identity, VideoGrants::join(room))
    }

    /// A hidden, subscribe-only system participant's token, as BigBlueButton's agent has.
    pub fn hidden_token(&self, room: &str, identity: &str) -> String {
        let grants = VideoGrants {
            hidden: true,
            can_subscribe: Some(true),
            can_publish: Some(false),
            ..VideoGrants::join(room)
        };
        let mut claims = Claims::new(&self.config.api_key, identity, TOKEN_TTL, grants);
        claims.metadata = r#"{"bbb_system":true}"#.into();
        self.sign(&claims)
    }

    /// A server token: list, administer and create rooms (administration of no room in particular).
    pub fn admin_token(&self) -> String {
        self.admin_token_for("")
    }

    /// A server token that may also administer `room` (list its participants, set its metadata).
    pub fn admin_token_for(&self, room: &str) -> String {
        let grants = VideoGrants {
            room: room.to_owned(),
            room_list: true,
            room_admin: true,
            room_create: true,
            ..VideoGrants::default()
        };
        self.sign(&Claims::new(&self.config.api_key, "tolk-admin", TOKEN_TTL, grants))
    }

    /// Create a room (or set the metadata of the one there is).
    pub fn create_room(&self, name: &str, metadata: &str) -> proto::Room {
        self.hub.create_room(name, Some(metadata))
    }

    /// Set a room's metadata, telling its participants.
    pub fn set_room_metadata(&self, name: &str, metadata: &str) -> anyhow::Result<proto::Room> {
        self.hub.set_room_metadata(name, metadata).with_context(|| format!("no room {name}"))
    }

    /// Delete a room as the room service does: its participants are told to leave.
    pub fn delete_room(&self, name: &str) -> bool {
        self.hub.delete_room(name)
    }

    pub fn rooms(&self) -> Vec<proto::Room> {
        self.hub.rooms()
    }

    /// Everyone in `room`, hidden participants included; empty if there is no such room.
    pub fn participants(&self, room: &str) -> Vec<proto::ParticipantInfo> {
        self.hub.participants(room).unwrap_or_default()
    }

    pub fn stats(&self) -> LiveKitStats {
        self.hub.stats.borrow().clone()
    }

    /// Wait until `condition` holds for the counters (checked on every change), or fail after
    /// `within`; returns the counters that satisfied it.
    pub async fn wait_until(
        &self,
        mut condition: impl FnMut(&LiveKitStats) -> bool,
        within: Duration,
    ) -> anyhow::Result<LiveKitStats> {
        let mut rx = self.hub.stats.subscribe();
        match tokio::time::timeout(within, rx.wait_for(|s| condition(s))).await {
            Ok(Ok(stats)) => Ok(stats.clone()),
            Ok(Err(_)) => anyhow::bail!("the stand-in stopped"),
            Err(_) => anyhow::bail!("not within {within:?}; the stand-in's counters: {:?}", self.stats()),
        }
    }
}

impl Drop for LiveKitStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}
