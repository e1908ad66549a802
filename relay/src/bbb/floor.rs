//! One event's BBB floor for the event's life: wait until the meeting runs, join it as a bot, take
//! its listen-only mix, reconnect with backoff when the websocket or the media drops, leave when
//! the meeting or the event ends. Its state (waiting, joining, live, error with a reason) is
//! watched by the API and the organiser page. Listeners are never touched: while the floor is
//! away they hear silence and stay connected.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use super::api::BbbApi;
use super::livekit::session::{LiveKitSession, SessionNote};
use super::livekit::{AudioBridge, Bridge, LiveKitError, rooms};
use super::peer::{FloorPeer, PeerNote, first_candidate_ip};
use super::sfu::{self, ServerMessage, SfuSocket};
use super::{BbbError, OfferFlow};
use crate::ids::EventId;

/// Where the floor of a BBB event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FloorState {
    /// The meeting is not running (yet, or any more).
    Waiting,
    /// Joining the meeting and connecting its audio.
    Joining,
    /// The meeting's audio is flowing to the listeners.
    Live,
    /// BBB refused or failed; retried with backoff.
    Error,
    /// The event is over: Tolk left.
    Ended,
}

/// The floor's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FloorStatus {
    /// Where the floor is: waiting, joining, live, error or ended.
    pub state: FloorState,
    /// Why, in a sentence (the error's reason, or what it waits for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the floor came to this state (or its detail or connection count last changed).
    pub since: DateTime<Utc>,
    /// Connections made to the meeting's audio so far.
    pub connections: u32,
    /// The bridge the meeting's audio comes through (once decided): `sfu` (bbb-webrtc-sfu's
    /// mix) or `livekit` (the meeting's LiveKit room, mixed by Tolk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
}

impl FloorStatus {
    fn new(state: FloorState, detail: Option<String>, connections: u32, bridge: Option<Bridge>) -> Self {
        Self { state, detail, since: Utc::now(), connections, bridge }
    }
}

/// The running floor of one event; dropping it makes Tolk leave the meeting.
pub struct BbbFloor {
    status: watch::Receiver<FloorStatus>,
    ends_at: watch::Sender<DateTime<Utc>>,
    _stop: watch::Sender<()>,
}

impl BbbFloor {
    /// Start following `meeting` for `event`; its audio goes to `forward_to` (the event's
    /// loopback floor socket).
    pub fn spawn(
        api: Arc<BbbApi>,
        event: EventId,
        meeting: String,
        forward_to: SocketAddr,
        ends_at: DateTime<Utc>,
    ) -> Self {
        let (status_tx, status) = watch::channel(FloorStatus::new(
            FloorState::Waiting,
            Some("asking BBB whether the meeting runs".into()),
            0,
            None,
        ));
        let (ends_tx, ends_rx) = watch::channel(ends_at);
        let (stop, stop_rx) = watch::channel(());
        let span = info_span!("bbb_floor", event = %event, meeting = %meeting);
        let runner = Runner {
            api,
            meeting,
            forward_to,
            forward: None,
            status: status_tx,
            ends_at: ends_rx,
            stop: stop_rx,
            connections: 0,
            bridge: None,
            identity: format!("tolk-floor/{}", crate::ids::random_hex(6)),
        };
        tokio::spawn(runner.run().instrument(span));
        Self { status, ends_at: ends_tx, _stop: stop }
    }

    /// The floor's state now.
    pub fn status(&self) -> FloorStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every state change (tests and the organiser's live view).
    pub fn watch(&self) -> watch::Receiver<FloorStatus> {
        self.status.clone()
    }

    /// The event's end moved.
    pub fn set_ends_at(&self, ends_at: DateTime<Utc>) {
        let _ = self.ends_at.send(ends_at);
    }
}

/// How a connected session ended.
enum Outcome {
    /// Tolk is told to leave (event over, cancelled or the node stopping).
    Leave,
    /// The connection dropped: try again.
    Dropped(String),
}

struct Runner {
    api: Arc<BbbApi>,
    meeting: String,
    forward_to: SocketAddr,
    /// The socket packets are forwarded from: one for the floor's whole life, so that the RTP
    /// floor's lock on its sender (address and port) holds across reconnections.
    forward: Option<Arc<std::net::UdpSocket>>,
    status: watch::Sender<FloorStatus>,
    ends_at: watch::Receiver<DateTime<Utc>>,
    stop: watch::Receiver<()>,
    connections: u32,
    /// The bridge of the current (or last) connection.
    bridge: Option<Bridge>,
    /// The floor's participant identity in LiveKit rooms: one for the floor's life, so a
    /// reconnection replaces the previous session instead of leaving a ghost.
    identity: String,
}

impl Runner {
    fn set(&self, state: FloorState, detail: Option<String>) {
        let connections = self.connections;
        let bridge = self.bridge;
        self.status.send_if_modified(|s| {
            if s.state == state && s.detail == detail && s.connections == connections && s.bridge == bridge {
                return false;
            }
            *s = FloorStatus::new(state, detail, connections, bridge);
            true
        });
    }

    async fn run(mut self) {
        let poll = self.api.config().poll;
        let mut failures: u32 = 0;
        let mut was_live = false;
        loop {
            if Utc::now() >= *self.ends_at.borrow() {
                break;
            }
            match self.api.is_meeting_running(&self.meeting).await {
                Ok(false) => {
                    failures = 0;
                    let detail = if was_live {
                        "the meeting ended; waiting for it to start again"
                    } else {
                        "waiting for the meeting to start"
                    };
                    self.set(FloorState::Waiting, Some(detail.into()));
                    if self.pause(poll).await {
                        break;
                    }
                    continue;
                }
                Ok(true) => {}
                Err(e) => {
                    if self.failed(&e, &mut failures).await {
                        break;
                    }
                    continue;
                }
            }
            match self.session().await {
                Ok((Outcome::Leave, _)) => break,
                Ok((Outcome::Dropped(reason), live)) => {
                    was_live |= live;
                    if live {
                        failures = 0;
                    }
                    warn!(%reason, "BBB floor dropped; reconnecting");
                    self.set(FloorState::Joining, Some(format!("reconnecting: {reason}")));
                    if self.pause(backoff(poll, failures)).await {
                        break;
                    }
                    failures += 1;
                }
                Err(e) => {
                    if self.failed(&e, &mut failures).await {
                        break;
                    }
                }
            }
        }
        self.set(FloorState::Ended, Some("Tolk left the meeting".into()));
        info!("left the BBB meeting");
    }

    /// Show the error, wait the backoff; true if Tolk must leave meanwhile.
    async fn failed(&self, e: &BbbError, failures: &mut u32) -> bool {
        warn!(error = %e, "BBB floor");
        self.set(FloorState::Error, Some(e.to_string()));
        // A refused secret does not heal by itself: retry at the slowest pace.
        let wait = if e.is_lasting() { MAX_BACKOFF } else { backoff(self.api.config().poll, *failures) };
        *failures = failures.saturating_add(1);
        self.pause(wait).await
    }

    /// Wait `d`, or less if Tolk must leave (returns true then).
    async fn pause(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        let mut ends = self.ends_at.clone();
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let until_end = until(*ends.borrow());
            if until_end.is_zero() {
                return true;
            }
            tokio::select! {
                _ = stop.changed() => return true,
                () = tokio::time::sleep_until(deadline) => return false,
                () = tokio::time::sleep(until_end) => return true,
                changed = ends.changed() => if changed.is_err() { return true },
            }
        }
    }

    /// Join, connect the audio and forward it until it drops or Tolk leaves; says whether the
    /// audio was live.
    /// The forwarding socket, bound on first use.
    fn forward_socket(&mut self) -> Result<Arc<std::net::UdpSocket>, BbbError> {
        if let Some(socket) = &self.forward {
            return Ok(socket.clone());
        }
        let socket = Arc::new(crate::bbb::peer::forward_socket(self.forward_to)?);
        self.forward = Some(socket.clone());
        Ok(socket)
    }

    /// One connection through the bridge `TOLK_BBB_AUDIO` picks for the meeting now.
    async fn session(&mut self) -> Result<(Outcome, bool), BbbError> {
        match self.choose_bridge().await? {
            (Bridge::Sfu, _) => {
                self.bridge = Some(Bridge::Sfu);
                self.set(FloorState::Joining, Some(format!("joining as \"{}\"", self.api.config().bot_name)));
                self.sfu_session().await
            }
            (Bridge::Livekit, room) => {
                self.bridge = Some(Bridge::Livekit);
                self.set(FloorState::Joining, Some("joining the meeting's LiveKit room".into()));
                self.livekit_session(&room).await
            }
        }
    }

    /// The bridge for the meeting, and its LiveKit room's name (BBB's internal meeting id).
    async fn choose_bridge(&self) -> Result<(Bridge, String), BbbError> {
        let config = self.api.config();
        let livekit = match (config.audio, &config.livekit) {
            (AudioBridge::Sfu, _) | (AudioBridge::Auto, None) => return Ok((Bridge::Sfu, String::new())),
            (AudioBridge::LiveKit, None) => return Err(LiveKitError::NotConfigured.into()),
            (_, Some(livekit)) => livekit,
        };
        let room = match self.api.meeting_info(&self.meeting).await? {
            Some(info) if !info.internal_id.is_empty() => info.internal_id,
            _ => {
                return Err(BbbError::Xml {
                    call: "getMeetingInfo".into(),
                    detail: "no internalMeetingID".into(),
                });
            }
        };
        if config.audio == AudioBridge::LiveKit {
            return Ok((Bridge::Livekit, room));
        }
        match rooms::find_room(livekit, &room).await {
            // A room for the cameras or screens only (BBB 3.0: `cameraBridge=livekit` with the
            // audio on FreeSWITCH) says so in its metadata.
            Ok(Some(found)) if !found.audio_on_livekit() => {
                info!(room = %found.name, metadata = %found.metadata, "the meeting's LiveKit room carries no audio");
                Ok((Bridge::Sfu, room))
            }
            Ok(Some(found)) => {
                info!(room = %found.name, metadata = %found.metadata, "the meeting's audio runs on LiveKit");
                Ok((Bridge::Livekit, room))
            }
            Ok(None) => Ok((Bridge::Sfu, room)),
            // Refused credentials are the operator's to fix: say so rather than guess.
            Err(e) if e.is_lasting() => Err(e.into()),
            Err(e) => {
                warn!(error = %e, "cannot ask LiveKit about the meeting; taking bbb-webrtc-sfu's mix");
                Ok((Bridge::Sfu, room))
            }
        }
    }

    /// Join the meeting's LiveKit room and mix it into the floor until it drops or Tolk leaves.
    async fn livekit_session(&mut self, room: &str) -> Result<(Outcome, bool), BbbError> {
        let livekit = self.api.config().livekit.clone().ok_or(LiveKitError::NotConfigured)?;
        let forward = self.forward_socket()?;
        let mut session =
            LiveKitSession::connect(&livekit, room, &self.identity, forward, self.forward_to).await?;
        self.connections += 1;
        self.set(FloorState::Joining, Some("in the meeting's LiveKit room; waiting for its audio".into()));
        let mut stop = self.stop.clone();
        let mut ends = self.ends_at.clone();
        let outcome = loop {
            let until_end = until(*ends.borrow());
            tokio::select! {
                _ = stop.changed() => break Ok(Outcome::Leave),
                changed = ends.changed() => if changed.is_err() { break Ok(Outcome::Leave) },
                () = tokio::time::sleep(until_end) => break Ok(Outcome::Leave),
                note = session.next() => match note {
                    Ok(SessionNote::Connected) => {
                        info!("connected to LiveKit's media: the floor is the meeting's mix");
                        self.set(FloorState::Live, None);
                    }
                    Ok(SessionNote::FirstAudio) => {
                        info!("the meeting's microphones are on the floor");
                        self.set(FloorState::Live, None);
                    }
                    Ok(SessionNote::Dropped(reason)) => break Ok(Outcome::Dropped(reason)),
                    Err(e) => break Err(BbbError::from(e)),
                },
            }
        };
        let live = session.packets_in() > 0;
        info!(packets = session.packets_in(), mix = ?session.mix_stats(), "LiveKit session closed");
        session.close().await;
        outcome.map(|o| (o, live))
    }

    /// One connection to bbb-webrtc-sfu's listen-only mix.
    async fn sfu_session(&mut self) -> Result<(Outcome, bool), BbbError> {
        let config = self.api.config().clone();
        let bot = self.api.join_bot(&self.meeting).await?;
        match self.api.stuns(&bot).await {
            Ok(servers) => {
                info!(?servers, "ICE servers from BBB (mediasoup is ICE-lite: host candidates suffice)")
            }
            Err(e) => warn!(error = %e, "could not read BBB's ICE servers; going on without"),
        }
        let url = self.api.sfu_url(&bot)?;
        let mut socket = SfuSocket::connect(&url, &bot).await?;
        socket.send(&sfu::ping()).await?;
        let bbb_host = media_host(&config.url).await;
        let mut peer;
        match config.offer {
            OfferFlow::Server => {
                socket.send(&sfu::start(None)).await?;
                let offer = started(&mut socket).await?;
                let remote = first_candidate_ip(&offer).or(bbb_host).ok_or_else(no_address)?;
                peer = FloorPeer::new(remote, self.forward_socket()?, self.forward_to).await?;
                let answer = peer.answer(&offer)?;
                socket.send(&sfu::subscriber_answer(&answer)).await?;
            }
            OfferFlow::Client => {
                let forward = self.forward_socket()?;
                peer = FloorPeer::new(bbb_host.ok_or_else(no_address)?, forward, self.forward_to).await?;
                let offer = peer.offer()?;
                socket.send(&sfu::start(Some(&offer))).await?;
                let answer = started(&mut socket).await?;
                peer.accept_answer(&answer)?;
            }
        }
        self.connections += 1;
        let outcome = self.forward(&mut socket, &mut peer).await;
        let live = peer.packets() > 0;
        socket.close().await;
        info!(packets = peer.packets(), "BBB audio session closed");
        outcome.map(|o| (o, live))
    }

    /// The connected session: websocket messages, keep-alive, media; until something ends it.
    async fn forward(&mut self, socket: &mut SfuSocket, peer: &mut FloorPeer) -> Result<Outcome, BbbError> {
        let keepalive = self.api.config().keepalive;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut heard = tokio::time::Instant::now();
        let mut stop = self.stop.clone();
        let mut ends = self.ends_at.clone();
        loop {
            let until_end = until(*ends.borrow());
            tokio::select! {
                _ = stop.changed() => return Ok(Outcome::Leave),
                changed = ends.changed() => if changed.is_err() { return Ok(Outcome::Leave) },
                () = tokio::time::sleep(until_end) => return Ok(Outcome::Leave),
                _ = ping.tick() => {
                    if heard.elapsed() > keepalive * 3 {
                        return Ok(Outcome::Dropped(format!("bbb-webrtc-sfu silent for {} s", heard.elapsed().as_secs())));
                    }
                    socket.send(&sfu::ping()).await?;
                }
                message = socket.next() => {
                    heard = tokio::time::Instant::now();
                    match message? {
                        None => return Ok(Outcome::Dropped("bbb-webrtc-sfu closed the websocket".into())),
                        Some(ServerMessage::Flowing) => info!("bbb-webrtc-sfu: media flowing"),
                        Some(ServerMessage::Failed { reason }) | Some(ServerMessage::Rejected { reason }) => {
                            return Err(BbbError::Signalling(reason));
                        }
                        Some(ServerMessage::Candidate { candidate }) => peer.add_remote_candidate(&candidate),
                        Some(ServerMessage::Pong) | Some(ServerMessage::Started { .. }) => {}
                        Some(ServerMessage::Other(text)) => tracing::debug!(%text, "bbb-webrtc-sfu message ignored"),
                    }
                }
                note = peer.next() => match note? {
                    PeerNote::Connected => info!("connected to BBB's media"),
                    PeerNote::FirstAudio => {
                        info!("the meeting's audio is on the floor");
                        self.set(FloorState::Live, None);
                    }
                    PeerNote::Lost => return Ok(Outcome::Dropped("the media connection to BBB was lost".into())),
                },
            }
        }
    }
}

/// Wait for `startResponse` (answering pings meanwhile is not needed: the server does not ping).
async fn started(socket: &mut SfuSocket) -> Result<String, BbbError> {
    let wait = async {
        loop {
            match socket.next().await? {
                None => return Err(BbbError::Signalling("the websocket closed before startResponse".into())),
                Some(ServerMessage::Started { sdp }) => return Ok(sdp),
                Some(ServerMessage::Rejected { reason }) | Some(ServerMessage::Failed { reason }) => {
                    return Err(BbbError::Signalling(format!("listen-only audio refused: {reason}")));
                }
                Some(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .map_err(|_| BbbError::Signalling("no startResponse within 15 s".into()))?
}

fn no_address() -> BbbError {
    BbbError::Media("no address for BBB's media: neither a candidate in the SDP nor the BBB host".into())
}

/// The BBB host's first address (where its media is when the SDP names no other).
async fn media_host(url: &url::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let port = url.port_or_known_default().unwrap_or(443);
    tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await.ok()?.next().map(|a| a.ip())
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// `poll × 2^failures`, at most a minute.
fn backoff(poll: Duration, failures: u32) -> Duration {
    poll.saturating_mul(1u32 << failures.min(16)).min(MAX_BACKOFF)
}

fn until(t: DateTime<Utc>) -> Duration {
    (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let poll = Duration::from_secs(5);
        assert_eq!(backoff(poll, 0), Duration::from_secs(5));
        assert_eq!(backoff(poll, 2), Duration::from_secs(20));
        assert_eq!(backoff(poll, 10), MAX_BACKOFF);
        assert_eq!(backoff(poll, u32::MAX), MAX_BACKOFF);
    }
}
