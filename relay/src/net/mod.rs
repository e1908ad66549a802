//! Media shards: OS threads, each owning one UDP socket and the WebRTC peers (str0m `Rtc`) on it.
//!
//! [`Media`] is the handle the HTTP side holds: it places sessions on shards and talks to them
//! through a command channel with a reply; it never touches media state. Shards pass source
//! packets to each other so a listener on any shard hears a publisher on any other.

pub mod addresses;
pub mod contain;
pub mod core;
pub mod health;
pub mod key_tap;
pub mod offer;
pub mod peer;
pub mod rtp_floor;
pub mod settled;
mod shard;
pub mod table;
pub mod timers;
pub use tolk_udp as udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::ids::{EventId, InterpreterId, Language, SessionId};
use crate::media::SourcePacket;
use crate::media::router::OnAir;

/// What can go wrong between the HTTP side and the media shards.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the SDP offer could not be used: {0}")]
    BadSdp(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the event has no '{0}' channel")]
    UnknownLanguage(Language),
    #[error("no media session {0}")]
    UnknownSession(SessionId),
    #[error("the media engine is not running")]
    ShardGone,
    /// A shard's command queue is full (a join storm): the client tries again shortly.
    #[error("the media engine is busy; try again in a moment")]
    Busy,
    /// The shard dropped the request without an answer (it hit an internal error, logged).
    #[error("the media engine could not handle the request (an internal error); try again")]
    Dropped,
    #[error("could not open UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("WebRTC engine error: {0}")]
    Rtc(String),
}

/// What a shard needs to know about an event to route its media.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLayout {
    pub id: EventId,
    pub floor: Language,
    pub languages: Vec<Language>,
    /// The sources an RTP floor takes audio from (empty: any).
    pub rtp_allow: crate::allow::SourceAllow,
    /// Mix mode settings; None: pass-through.
    pub mix: Option<crate::media::mixer::MixSettings>,
    /// This node is an edge of the event (a cluster): its channels carry what the event's origin
    /// node sends ([`Media::feed`]), not local sources.
    pub cascaded: bool,
    /// The event relays a peer cluster's event (a `peer` floor): its channels always carry what
    /// comes from there, on every node (cascaded even at this cluster's origin).
    pub relayed: bool,
}

impl EventLayout {
    /// Whether the event has a channel in `language` (the floor or an interpretation language).
    pub fn has_channel(&self, language: &Language) -> bool {
        &self.floor == language || self.languages.contains(language)
    }

    /// The event's channels for a sentence: "en, fr, de".
    pub fn channel_list(&self) -> String {
        std::iter::once(&self.floor)
            .chain(&self.languages)
            .map(Language::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a media session is, for the HTTP side's lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    FloorPublisher,
    /// An interpreter's booth session (microphone up, input and partner down).
    Booth(InterpreterId),
    Listener,
    /// An edge node's subscription to every channel of an event this node is the origin of.
    Cascade,
}

/// What a new session does.
#[derive(Debug, Clone)]
pub enum Join {
    Floor {
        input: u64,
    },
    Booth {
        interpreter: InterpreterId,
        input: u64,
        listen_to: Language,
        booth: Language,
    },
    Listen {
        language: Language,
    },
    /// An edge node subscribes to every channel.
    Cascade,
}

/// What shards tell the app as it happens (the app records usage facts and booth presence).
#[derive(Debug, Clone)]
pub enum MediaNote {
    SessionEnded {
        session: SessionId,
        event: EventId,
        kind: Option<SessionKind>,
    },
    /// The session's peer finished ICE and DTLS.
    Connected {
        session: SessionId,
    },
}

/// A live session as the HTTP side sees it. Shards remove the entry when the peer goes away.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    pub shard: usize,
    pub event: EventId,
    pub kind: SessionKind,
}

/// Listeners on one channel of one shard.
#[derive(Debug, Clone)]
pub struct ChannelListeners {
    pub event: EventId,
    pub language: Language,
    pub listeners: usize,
}

/// A snapshot of one shard's counters.
#[derive(Debug, Clone, Default)]
pub struct ShardStats {
    pub index: usize,
    pub peers: usize,
    /// Listeners held without a WebRTC engine ([`settled`]).
    pub settled: usize,
    pub channels: Vec<ChannelListeners>,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_dropped: u64,
    /// Packets protected and sent by Tolk itself ([`key_tap`]).
    pub packets_direct: u64,
    /// Datagrams from addresses no peer has, without a valid STUN check to open one.
    pub unknown_dropped: u64,
    /// Packets not sent because their SRTP index may not be used ([`crate::media::srtp::IndexError`]).
    pub srtp_refused: u64,
    /// Datagrams the RTP floors did not take (another source, payload type, too fast, not RTP).
    pub rtp_floor_rejected: u64,
    /// Panics contained on the shard (each dropped the peer it was handling).
    pub panics: u64,
    pub busy_seconds: f64,
    pub loops: u64,
}

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

/// Requests to a shard.
pub(crate) enum Command {
    Join {
        event: Arc<EventLayout>,
        session: SessionId,
        join: Join,
        offer: offer::Offer,
        reply: Reply<String>,
    },
    Switch {
        session: SessionId,
        track: usize,
        language: Language,
        reply: Reply<()>,
    },
    SetOnAir {
        event: EventId,
        language: Language,
        on_air: Option<OnAir>,
    },
    End {
        session: SessionId,
        reply: Reply<()>,
    },
    EndEvent {
        event: EventId,
    },
    OpenRtpFloor {
        event: Arc<EventLayout>,
        socket: std::net::UdpSocket,
        reply: Reply<()>,
    },
    Source(Arc<SourcePacket>),
    PrepareEvent(Arc<EventLayout>),
    /// Record the event's channels into this tap (None: stop).
    Tap {
        event: Arc<EventLayout>,
        tap: Option<crate::media::tap::Tap>,
    },
    Stats {
        reply: oneshot::Sender<ShardStats>,
    },
    /// Test hooks (never sent from the network): see [`Fault`].
    Fault(Fault),
    Shutdown,
}

/// Faults a test injects into a shard through [`Media::inject_fault`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Fault {
    /// The core panics while handling this session (contained: the session is dropped).
    PanicOn(SessionId),
    /// The shard thread panics outside any containment and dies.
    Die,
}

/// Commands a shard's queue holds; a full queue refuses new requests with [`NetError::Busy`].
pub const COMMAND_QUEUE: usize = 8192;

/// The HTTP side's way into one shard.
#[derive(Clone)]
pub(crate) struct ShardHandle {
    tx: crossbeam_channel::Sender<Command>,
    waker: Arc<mio::Waker>,
}

impl ShardHandle {
    /// Queue a command without waiting: `Busy` when the queue is full.
    fn send(&self, command: Command) -> Result<(), NetError> {
        self.tx.try_send(command).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => NetError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => NetError::ShardGone,
        })?;
        self.waker.wake().map_err(|_| NetError::ShardGone)
    }
}

/// How the shards are set up.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The addresses put in ICE candidates (`addresses`).
    pub public_ips: Vec<IpAddr>,
    /// The address sockets bind to (`addresses::bind_ip`).
    pub bind_ip: IpAddr,
    /// Shard k listens on `first_port + k`.
    pub first_port: u16,
    pub shards: usize,
    /// A peer not connected (ICE + DTLS) this long after its offer is dropped.
    pub connect_timeout: std::time::Duration,
}

/// The running media shards.
pub struct Media {
    shards: Vec<ShardHandle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    heartbeats: Vec<Arc<health::Heartbeat>>,
    next: AtomicUsize,
    inputs: Arc<AtomicU64>,
    sessions: Arc<DashMap<SessionId, SessionEntry>>,
    addrs: Vec<SocketAddr>,
    bind_ip: IpAddr,
}

impl Media {
    /// Bind every shard's socket and start its thread.
    /// `notes` receives what happens to sessions (for usage facts and booth presence).
    pub fn start(
        config: &MediaConfig,
        notes: Option<tokio::sync::mpsc::UnboundedSender<MediaNote>>,
    ) -> Result<Self, NetError> {
        let sessions = Arc::new(DashMap::new());
        let inputs = Arc::new(AtomicU64::new(1));
        let count = config.shards.max(1);
        let mut prepared = Vec::with_capacity(count);
        for index in 0..count {
            prepared.push(shard::Shard::bind(index, config, sessions.clone(), inputs.clone())?);
        }
        let handles: Vec<ShardHandle> = prepared.iter().map(|s| s.handle()).collect();
        let heartbeats = prepared.iter().map(|s| s.heartbeat()).collect();
        let addrs = prepared.iter().map(|s| s.candidate_addr()).collect();
        let mut threads = Vec::with_capacity(count);
        for (index, mut shard) in prepared.into_iter().enumerate() {
            let others = handles.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, h)| h.clone());
            shard.set_others(others.collect());
            shard.set_notes(notes.clone());
            let thread = std::thread::Builder::new()
                .name(format!("tolk-shard-{index}"))
                .spawn(move || shard.run())
                .map_err(|e| NetError::Rtc(format!("could not start shard thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Self {
            shards: handles,
            threads,
            heartbeats,
            next: AtomicUsize::new(0),
            inputs,
            sessions,
            addrs,
            bind_ip: config.bind_ip,
        })
    }

    /// The ICE candidate address of each shard.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn sessions(&self) -> &DashMap<SessionId, SessionEntry> {
        &self.sessions
    }

    /// What is wrong with the shards (empty: all turning). Reads join handles and heartbeats only.
    pub fn health(&self) -> Vec<health::ShardProblem> {
        let now = std::time::Instant::now();
        let mut problems = Vec::new();
        for (index, (thread, beat)) in self.threads.iter().zip(&self.heartbeats).enumerate() {
            if thread.is_finished() {
                problems.push(health::ShardProblem::Stopped(index));
            } else if beat.age(now) > health::STUCK_AFTER {
                problems.push(health::ShardProblem::Stuck { index, age: beat.age(now) });
            }
        }
        problems
    }

    /// A test hook: inject a fault into a shard (never reachable from the network).
    #[doc(hidden)]
    pub fn inject_fault(&self, shard: usize, fault: Fault) -> Result<(), NetError> {
        self.shards.get(shard).ok_or(NetError::ShardGone)?.send(Command::Fault(fault))
    }

    /// The shard a session is on.
    pub fn shard_of(&self, session: &SessionId) -> Option<usize> {
        self.sessions.get(session).map(|e| e.shard)
    }

    fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len()
    }

    async fn ask<T>(&self, shard: usize, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.shards.get(shard).ok_or(NetError::ShardGone)?.send(make(reply))?;
        answer.await.map_err(|_| NetError::Dropped)?
    }

    async fn join(
        &self,
        event: Arc<EventLayout>,
        join: Join,
        offer: String,
    ) -> Result<(SessionId, String), NetError> {
        // Checked and parsed here, in the HTTP task: a join storm costs the media threads only
        // the peers they build.
        let offer = offer::Offer::parse(&offer)?;
        let session = SessionId::generate();
        let shard = self.pick();
        let sid = session.clone();
        let answer =
            self.ask(shard, |reply| Command::Join { event, session: sid, join, offer, reply }).await?;
        Ok((session, answer))
    }

    /// End the sessions of `event` matching `which`, except `keep` (best effort: they may be gone).
    async fn end_where(
        &self,
        event: &EventId,
        keep: Option<&SessionId>,
        which: impl Fn(SessionKind) -> bool,
    ) {
        let matching: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|e| &e.event == event && which(e.kind) && Some(e.key()) != keep)
            .map(|e| e.key().clone())
            .collect();
        for session in matching {
            let _ = self.end(&session).await;
        }
    }

    /// Publish the floor of `event` from a WHIP offer. A floor publisher already there is
    /// replaced; listeners hear one continuous stream across the change.
    pub async fn publish_floor(
        &self,
        event: Arc<EventLayout>,
        offer: String,
    ) -> Result<(SessionId, String), NetError> {
        let input = self.inputs.fetch_add(1, Ordering::Relaxed);
        let (session, answer) = self.join(event.clone(), Join::Floor { input }, offer).await?;
        self.end_where(&event.id, Some(&session), |k| k == SessionKind::FloorPublisher).await;
        Ok((session, answer))
    }

    /// An interpreter's booth session: their microphone in, `listen_to` (the floor or a relay
    /// language) and their partner's voice on `booth` out. Replaces their previous session.
    pub async fn publish_booth(
        &self,
        event: Arc<EventLayout>,
        interpreter: InterpreterId,
        listen_to: Language,
        booth: Language,
        offer: String,
    ) -> Result<(SessionId, String), NetError> {
        let input = self.inputs.fetch_add(1, Ordering::Relaxed);
        let join = Join::Booth { interpreter, input, listen_to, booth };
        let (session, answer) = self.join(event.clone(), join, offer).await?;
        self.end_where(&event.id, Some(&session), |k| k == SessionKind::Booth(interpreter)).await;
        Ok((session, answer))
    }

    /// A listener on `language` of `event`, from a WHEP offer.
    pub async fn listen(
        &self,
        event: Arc<EventLayout>,
        language: Language,
        offer: String,
    ) -> Result<(SessionId, String), NetError> {
        self.join(event, Join::Listen { language }, offer).await
    }

    /// An edge node subscribes to every channel of `event` (this node is its origin): one track
    /// per channel, in the event's channel order, from an offer with that many sections.
    pub async fn cascade(
        &self,
        event: Arc<EventLayout>,
        offer: String,
    ) -> Result<(SessionId, String), NetError> {
        let offer = offer::Offer::parse_with(&offer, offer::MAX_CASCADE_SECTIONS)?;
        let session = SessionId::generate();
        let shard = self.pick();
        let sid = session.clone();
        let answer = self
            .ask(shard, |reply| Command::Join { event, session: sid, join: Join::Cascade, offer, reply })
            .await?;
        Ok((session, answer))
    }

    /// Up to `n` listener sessions (any event), to move off a draining node.
    pub fn listener_sessions(&self, n: usize) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|e| e.kind == SessionKind::Listener)
            .take(n)
            .map(|e| e.key().clone())
            .collect()
    }

    /// A new input line (a source that starts, or starts again, from outside the shards).
    pub fn new_input(&self) -> u64 {
        self.inputs.fetch_add(1, Ordering::Relaxed)
    }

    /// A packet from outside the shards (an edge's cascade from the origin) to every shard's
    /// listeners of the channel it is for. Dropped, and false, when a shard's queue is full.
    pub fn feed(&self, packet: Arc<SourcePacket>) -> bool {
        let mut all = true;
        for shard in &self.shards {
            all &= shard.send(Command::Source(packet.clone())).is_ok();
        }
        all
    }

    /// Move a session's track (0: a listener's channel, an interpreter's input) to `language`.
    pub async fn switch(
        &self,
        session: &SessionId,
        track: usize,
        language: Language,
    ) -> Result<(), NetError> {
        let shard = self
            .sessions
            .get(session)
            .map(|e| e.shard)
            .ok_or_else(|| NetError::UnknownSession(session.clone()))?;
        self.ask(shard, |reply| Command::Switch { session: session.clone(), track, language, reply }).await
    }

    /// Make every shard ready for an event's media (routing state, and its mixer on the one shard
    /// that mixes it).
    pub fn prepare_event(&self, layout: Arc<EventLayout>) {
        for shard in &self.shards {
            let _ = shard.send(Command::PrepareEvent(layout.clone()));
        }
    }

    /// Record an event's channels through `tap` (None: stop), on the one shard that routes its
    /// mixes (every shard routes every packet of the event the same way; one records it).
    pub fn tap(&self, event: Arc<EventLayout>, tap: Option<crate::media::tap::Tap>) -> Result<(), NetError> {
        let shard = core::mixing_shard(&event.id, self.shards.len());
        self.shards.get(shard).ok_or(NetError::ShardGone)?.send(Command::Tap { event, tap })
    }

    /// Who is on air in a channel, on every shard (takes effect at each shard's next packet).
    pub fn set_on_air(&self, event: &EventId, language: &Language, on_air: Option<OnAir>) {
        for shard in &self.shards {
            let _ =
                shard.send(Command::SetOnAir { event: event.clone(), language: language.clone(), on_air });
        }
    }

    /// End every session of an interpreter (a revoked booth link).
    pub async fn end_interpreter(&self, event: &EventId, interpreter: InterpreterId) {
        self.end_where(event, None, |k| k == SessionKind::Booth(interpreter)).await;
    }

    /// End a session; `UnknownSession` if it is not (or no longer) there.
    pub async fn end(&self, session: &SessionId) -> Result<(), NetError> {
        let shard = self
            .sessions
            .get(session)
            .map(|e| e.shard)
            .ok_or_else(|| NetError::UnknownSession(session.clone()))?;
        self.ask(shard, |reply| Command::End { session: session.clone(), reply }).await
    }

    /// Open the RTP floor port of `event` (0: any free port) and return its local address.
    pub async fn open_rtp_floor(&self, event: Arc<EventLayout>, port: u16) -> Result<SocketAddr, NetError> {
        self.open_floor_socket(event, SocketAddr::new(self.bind_ip, port)).await
    }

    /// A floor socket on loopback only, for a floor Tolk itself receives (a BBB meeting).
    pub async fn open_loopback_floor(&self, event: Arc<EventLayout>) -> Result<SocketAddr, NetError> {
        self.open_floor_socket(event, SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0))).await
    }

    async fn open_floor_socket(
        &self,
        event: Arc<EventLayout>,
        addr: SocketAddr,
    ) -> Result<SocketAddr, NetError> {
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
        socket.set_nonblocking(true).map_err(|source| NetError::Bind { addr, source })?;
        let local = socket.local_addr().map_err(|source| NetError::Bind { addr, source })?;
        let shard = self.pick();
        self.ask(shard, |reply| Command::OpenRtpFloor { event, socket, reply }).await?;
        Ok(local)
    }

    /// Drop every session and the RTP floor of an event.
    pub fn end_event(&self, event: &EventId) {
        for shard in &self.shards {
            let _ = shard.send(Command::EndEvent { event: event.clone() });
        }
    }

    /// Listeners per language of an event, over all shards.
    pub async fn listeners(&self, event: &EventId) -> std::collections::HashMap<Language, usize> {
        let mut counts = std::collections::HashMap::new();
        for shard in self.stats().await {
            for c in shard.channels.into_iter().filter(|c| &c.event == event) {
                *counts.entry(c.language).or_insert(0) += c.listeners;
            }
        }
        counts
    }

    /// Counters of every shard.
    pub async fn stats(&self) -> Vec<ShardStats> {
        let mut all = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            let (reply, answer) = oneshot::channel();
            if shard.send(Command::Stats { reply }).is_ok()
                && let Ok(stats) = answer.await
            {
                all.push(stats);
            }
        }
        all
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        for shard in &self.shards {
            // Waits for room in a full queue: the shard is draining it.
            let _ = shard.tx.send(Command::Shutdown);
            let _ = shard.waker.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
