//! The sans-IO core of a media shard (quinn-proto's `Endpoint` to the shard's driver): its peers
//! ([`PeerTable`]), each event's routing and subscribers, the RTP floors' input lines and the
//! peers' timers. No socket, no thread, no clock: it is driven by [`ShardCore::on_datagram`],
//! [`ShardCore::on_rtp_datagram`], the control plane's commands (join, switch, on air, end, …)
//! and [`ShardCore::on_timeout`], with `now` as an argument, and leaves what the driver must do in its [`Outbox`]: datagrams to send,
//! source packets for the other shards, notes for the control plane.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::Input;
use str0m::ice::StunMessage;
use str0m::net::{Protocol, Receive};
use tracing::{debug, info, info_span, warn};

use crate::ids::{EventId, Language, SessionId};
use crate::media::fanout::Subscribers;
use crate::media::mixer::Mixer;
use crate::media::router::{ChannelIndex, EventRouter, OnAir};
use crate::media::rtp::{self as plain_rtp, SeqExtender};
use crate::media::tap::Tap;
use crate::media::{ChannelPacket, Source, SourcePacket};
use crate::net::addresses;
use crate::net::offer::Offer;
use crate::net::peer::{self, Peer, PeerRole, Stage, Written};
use crate::net::rtp_floor::{RtpFloor, Verdict};
use crate::net::settled::{self, CONSENT_TIMEOUT, SettledInput};
use crate::net::table::PeerTable;
use crate::net::timers::{PeerKey, Timers, Wake};
use crate::net::udp::{self, SendBatch};
use crate::net::{ChannelListeners, EventLayout, Join, NetError, SessionKind, ShardStats};

/// A subscriber: a peer slot and which of its tracks.
type TrackRef = (u32, u8);

/// A fan-out pauses once the send batch holds this many datagrams: the driver sends them and
/// calls [`ShardCore::resume`], so that a packet for 10,000 listeners never sits in memory whole.
pub const FLUSH_AT: usize = udp::BATCH * 4;

/// How a shard's core is set up.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The shard's index and how many shards the node has (mix mode runs on one of them).
    pub index: usize,
    pub shards: usize,
    /// The addresses put in ICE candidates, all on the shard's port (given to str0m as the local
    /// address a datagram reached: `addresses::reached`).
    pub candidates: Vec<SocketAddr>,
    /// A peer not connected (ICE + DTLS) this long after its offer is dropped.
    pub connect_timeout: Duration,
    /// Whether Tolk protects and sends connected peers' packets itself (true in the relay);
    /// false keeps them on str0m's send path (diagnosis, benchmarks).
    pub direct_srtp: bool,
    /// A fan-out pauses when the send batch holds this many datagrams ([`FLUSH_AT`]).
    pub flush_at: usize,
}

/// What the driver must carry out after a call into the core.
#[derive(Default)]
pub struct Outbox {
    /// Datagrams for the shard's socket.
    pub send: SendBatch,
    /// Source packets every other shard must hear too.
    pub forward: Vec<Arc<SourcePacket>>,
    /// Sessions that ended (the driver tells the control plane).
    pub ended: Vec<Ended>,
    /// Sessions whose peer finished ICE and DTLS just now (the control plane stops counting them
    /// as connecting).
    pub connected: Vec<SessionId>,
}

/// A session that ended on this shard.
#[derive(Debug, Clone)]
pub struct Ended {
    pub session: SessionId,
    pub event: EventId,
    pub why: &'static str,
}

/// A session the core accepted.
#[derive(Debug)]
pub struct Joined {
    /// The SDP answer.
    pub answer: String,
    pub kind: SessionKind,
}

/// Counters of the core's work.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets protected and queued by Tolk itself.
    pub direct: u64,
    /// Peers whose `write` queued nothing (not connected, stale packet, no such track).
    pub not_written: u64,
    /// Datagrams from an address no peer has, without a valid check to open it (dropped).
    pub unknown: u64,
    /// Packets dropped because their SRTP index may not be used (late across a rollover).
    pub srtp_refused: u64,
    /// Panics contained while handling a datagram, a command or a timer ([`crate::net::contain`]).
    pub panics: u64,
}

struct EventMedia {
    layout: Arc<EventLayout>,
    router: EventRouter,
    subscribers: Subscribers<TrackRef>,
    /// Listeners per channel (by their chosen channel).
    listeners: Vec<usize>,
    /// Mix mode, on the one shard that mixes this event.
    mixer: Option<Mixer>,
}

impl EventMedia {
    fn new(layout: Arc<EventLayout>, mixer: Option<Mixer>) -> Self {
        let mut router = EventRouter::new(&layout.floor, &layout.languages).mixed(layout.mix.is_some());
        router.set_cascaded(layout.cascaded);
        let channels = router.channel_count();
        Self { layout, router, subscribers: Subscribers::new(channels), listeners: vec![0; channels], mixer }
    }
}

/// The shard that mixes an event (mix mode) and records it: a stable choice from the event id.
pub(crate) fn mixing_shard(event: &EventId, shards: usize) -> usize {
    let hash = event
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % shards.max(1) as u64) as usize
}

/// Source packets still to fan out here, and where the current one paused (the send batch was
/// full): a packet reaches its listeners in stretches of [`FLUSH_AT`] datagrams.
#[derive(Default)]
struct Fanout {
    queue: VecDeque<Arc<SourcePacket>>,
    /// The packet being fanned out (its event names the subscribers), and its copies per channel.
    current: Option<Arc<SourcePacket>>,
    routed: Vec<(ChannelIndex, ChannelPacket)>,
    /// Next copy in `routed`, next subscriber of its channel.
    channel: usize,
    next: usize,
    /// Peers whose engine died on this packet: removed once it is done (removal reorders the
    /// subscriber lists the cursor walks).
    dead: Vec<(PeerKey, &'static str)>,
}

/// The state and rules of one media shard.
pub struct ShardCore {
    config: CoreConfig,
    /// Input-line keys, unique over the node (shared by its shards).
    inputs: Arc<AtomicU64>,
    peers: PeerTable,
    events: HashMap<EventId, EventMedia>,
    rtp_floors: HashMap<EventId, RtpFloor>,
    /// Recorded events (on the shard that records each: the one that mixes it).
    taps: HashMap<EventId, Tap>,
    timers: Timers,
    /// What this turn's inputs produced and must still be routed.
    sources: Vec<Arc<SourcePacket>>,
    fanout: Fanout,
    outbox: Outbox,
    counters: CoreCounters,
    /// Listeners in `Stage::Settled` (kept as they change, so stats never walk the peers).
    settled: usize,
    /// Rejections counted by RTP floors since closed (the metric is a counter).
    closed_rejected: u64,
    /// The peer being handled: the one a contained panic drops ([`ShardCore::recover`]).
    handling: Option<PeerKey>,
    /// Datagrams from this address make the core panic (tests of the containment).
    #[cfg(test)]
    pub(crate) poison: Option<SocketAddr>,
}

impl ShardCore {
    /// An empty core; `inputs` hands out input-line keys (one counter per node).
    pub fn new(config: CoreConfig, inputs: Arc<AtomicU64>) -> Self {
        Self {
            config,
            inputs,
            peers: PeerTable::default(),
            events: HashMap::new(),
            rtp_floors: HashMap::new(),
            taps: HashMap::new(),
            timers: Timers::default(),
            sources: Vec::new(),
            fanout: Fanout::default(),
            outbox: Outbox::default(),
            counters: CoreCounters::default(),
            settled: 0,
            closed_rejected: 0,
            handling: None,
            #[cfg(test)]
            poison: None,
        }
    }

    /// The main ICE candidate's address (the first).
    pub fn candidate(&self) -> SocketAddr {
        self.config.candidates.first().copied().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Every ICE candidate's address.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.config.candidates
    }

    /// What the driver must carry out.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// The core's counters.
    pub fn counters(&self) -> CoreCounters {
        self.counters
    }

    /// The peers (read-only: for stats and tests).
    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    /// Entries in the timer heap (stale ones included).
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// When the core next needs [`ShardCore::on_timeout`]: a peer's deadline or a mixer's tick.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mix = self.events.values().filter_map(|m| m.mixer.as_ref()?.next_tick()).min();
        match (self.timers.next(), mix) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- inputs -----------------------------------------------------------------------------

    /// One datagram from the shard's socket, to its first candidate (a socket bound to it).
    pub fn on_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.on_datagram_to(now, source, None, data);
    }

    /// One datagram from the shard's socket; `destination`, when the socket says it, is the local
    /// address it was sent to: which of the candidates the peer uses.
    pub fn on_datagram_to(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: Option<IpAddr>,
        data: &[u8],
    ) {
        self.counters.packets_in += 1;
        self.counters.bytes_in += data.len() as u64;
        let slot = match self.peers.slot_of_addr(&source) {
            Some(slot) => {
                self.peers.seen(slot, source, now);
                slot
            }
            None => {
                // A new address: only a STUN binding request naming one of our peers, signed
                // with that peer's ICE password, opens it (checked before anything is stored).
                let Some(slot) = StunMessage::parse(data)
                    .ok()
                    .and_then(|m| m.split_username().map(|(local, _)| local.to_owned()))
                    .and_then(|ufrag| self.peers.slot_of_ufrag(&ufrag))
                    .filter(|slot| {
                        self.peers.get(*slot).is_some_and(|p| settled::is_check_for(data, p.ice_password()))
                    })
                else {
                    self.counters.unknown += 1;
                    debug!(%source, "datagram from an unknown address dropped");
                    return;
                };
                self.peers.add_remote(slot, source, now);
                slot
            }
        };
        let Some(peer) = self.peers.get_mut(slot) else { return };
        self.handling = Some(peer.key);
        #[cfg(test)]
        if self.poison == Some(source) {
            panic!("poisoned datagram from {source}");
        }
        match &mut peer.stage {
            Stage::Settled { consent, .. } => {
                let SettledInput { send, moved } = consent.input(now, source, data);
                for (to, datagram) in send {
                    self.outbox.send.push(to, datagram);
                }
                if moved {
                    peer.span.in_scope(
                        || info!(destination = %source, "media follows the listener to a new address"),
                    );
                }
                return;
            }
            Stage::Closed => return,
            Stage::Connecting(engine) | Stage::Engine(engine) | Stage::Direct(engine, _) => {
                let local = addresses::reached(&self.config.candidates, source, destination);
                let Ok(receive) = Receive::new(Protocol::Udp, source, local, data) else {
                    debug!(%source, "datagram that is not STUN, DTLS or (S)RTP dropped");
                    return;
                };
                if let Err(e) = engine.rtc.handle_input(Input::Receive(now, receive)) {
                    peer.span.in_scope(|| debug!(error = %e, "input rejected"));
                }
            }
        }
        self.drain(slot, now);
        self.route_sources(now);
    }

    /// One datagram on the RTP floor port of `event`: plain Opus RTP from the floor's sender.
    pub fn on_rtp_datagram(&mut self, now: Instant, event: &EventId, source: SocketAddr, data: &[u8]) {
        self.counters.packets_in += 1;
        self.counters.bytes_in += data.len() as u64;
        let Some(floor) = self.rtp_floors.get_mut(event) else { return };
        let Ok(packet) = plain_rtp::parse(data) else {
            floor.reject();
            return;
        };
        match floor.admit(now, source, packet.payload_type, packet.ssrc) {
            Verdict::Reject => return,
            Verdict::Take { new_input: false } => {}
            Verdict::Take { new_input: true } => {
                // A new sender, or a new stream of it: a new input line.
                floor.input = self.inputs.fetch_add(1, Ordering::Relaxed);
                floor.extender = SeqExtender::default();
                info!(%event, ssrc = packet.ssrc, %source, pt = packet.payload_type, "RTP floor sender");
            }
        }
        self.sources.push(Arc::new(SourcePacket {
            event: event.clone(),
            source: Source::Floor,
            input: floor.input,
            seq: floor.extender.extend(packet.seq),
            ts: packet.timestamp,
            marker: packet.marker,
            payload: packet.payload.into(),
            received_at: now,
        }));
        self.route_sources(now);
    }

    /// Time has come to `now`: mixers give their frames, due peer timers fire, and what they
    /// produced is routed (which can set new, already due timers: loop until none is).
    pub fn on_timeout(&mut self, now: Instant) {
        self.run_mixers(now);
        loop {
            self.fire_timers(now);
            if self.sources.is_empty() {
                break;
            }
            self.route_sources(now);
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    /// Make the event's routing ready (and its mixer, on the one shard that mixes it). A changed
    /// event (PATCH) takes its new layout while nobody is connected to it.
    ///
    /// An edge that becomes the event's origin (or the reverse) changes mode in place: its
    /// listeners stay, and every channel's line continues.
    pub fn prepare_event(&mut self, layout: &Arc<EventLayout>) {
        let flips = self.events.get(&layout.id).is_some_and(|media| {
            media.layout.cascaded != layout.cascaded
                && (EventLayout { cascaded: layout.cascaded, ..(*media.layout).clone() }) == **layout
        });
        if flips {
            info!(event = %layout.id, cascaded = layout.cascaded, "the event's feed changes");
            let mixer = self.mixer_for(layout);
            if let Some(media) = self.events.get_mut(&layout.id) {
                media.router.set_cascaded(layout.cascaded);
                media.layout = layout.clone();
                media.mixer = mixer;
            }
            return;
        }
        if self.events.get(&layout.id).is_some_and(|m| &m.layout != layout && m.subscribers.is_empty()) {
            self.events.remove(&layout.id);
        }
        self.event_media(layout);
    }

    /// Who is on air in a channel (takes effect at the next packet).
    pub fn set_on_air(&mut self, event: &EventId, language: &Language, on_air: Option<OnAir>) {
        if let Some(media) = self.events.get_mut(event)
            && let Some(channel) = media.router.channel(language)
        {
            media.router.set_on_air(channel, on_air);
        }
    }

    /// Start (`Some`) or stop recording an event's channels from this shard: every packet routed
    /// to a recorded channel is offered to the tap as it is fanned out.
    pub fn tap(&mut self, layout: &Arc<EventLayout>, tap: Option<Tap>) {
        match tap {
            Some(tap) => {
                self.event_media(layout);
                self.taps.insert(layout.id.clone(), tap);
            }
            None => {
                self.taps.remove(&layout.id);
            }
        }
    }

    /// The RTP floor of an event starts taking datagrams (the driver owns its socket).
    pub fn open_rtp_floor(&mut self, layout: &Arc<EventLayout>) {
        self.event_media(layout);
        self.rtp_floors.insert(layout.id.clone(), RtpFloor::allowing(layout.rtp_allow.clone()));
    }

    /// Accept an offer: a publisher (floor or booth) or a listener joins. Nothing is kept on error.
    pub fn join(
        &mut self,
        now: Instant,
        layout: Arc<EventLayout>,
        session: SessionId,
        join: Join,
        offer: &str,
    ) -> Result<Joined, NetError> {
        self.join_offer(now, layout, session, join, Offer::parse(offer)?)
    }

    /// [`ShardCore::join`] with an offer the HTTP task already checked and parsed.
    pub fn join_offer(
        &mut self,
        now: Instant,
        layout: Arc<EventLayout>,
        session: SessionId,
        join: Join,
        offer: Offer,
    ) -> Result<Joined, NetError> {
        let mut accepted = peer::accept_offer(now, &self.config.candidates, offer)?;
        let span = info_span!(parent: None, "session", session = %session, event = %layout.id);
        let media = self.event_media(&layout);
        let (role, kind) = role_of(&join, &accepted, &media.router)?;
        for t in accepted.transmits.drain(..) {
            self.outbox.send.push(t.destination, t.contents.into());
        }
        let timeout = accepted.timeout;
        let answer = std::mem::take(&mut accepted.answer);
        // What the event's lists learn of this peer, known before it is placed: nothing after
        // the placement can fail.
        let tracks: Vec<ChannelIndex> = role.tracks().iter().map(|t| t.channel).collect();
        let counted = match (&role, kind) {
            (PeerRole::Listener { counted: true, .. }, SessionKind::Listener) => tracks.first().copied(),
            _ => None,
        };
        let direct_srtp = self.config.direct_srtp;
        let event = layout.id.clone();
        let key = self.peers.insert_with(|key| {
            let mut peer = Peer::new(key, session, event, accepted, role, span);
            if !direct_srtp {
                peer.keep_engine_send_path();
            }
            peer.span.in_scope(|| info!(?kind, "session created"));
            peer
        });
        let media = self.event_media(&layout);
        for (i, channel) in tracks.into_iter().enumerate() {
            if kind == SessionKind::Cascade {
                // An edge's copy feeds a whole node: it leaves before any listener's.
                media.subscribers.add_first(channel, (key.slot, i as u8));
            } else {
                media.subscribers.add(channel, (key.slot, i as u8));
            }
        }
        if let Some(channel) = counted {
            media.listeners[channel] += 1;
        }
        self.timers.schedule(timeout, key, Wake::Engine);
        self.timers.schedule(now + self.config.connect_timeout, key, Wake::ConnectDeadline);
        Ok(Joined { answer, kind })
    }

    /// Move one track of a session to another channel of its event: the track's own line
    /// continues, so the listener hears the new channel from the next packet, without
    /// renegotiation.
    pub fn switch(&mut self, session: &SessionId, track: usize, language: &Language) -> Result<(), NetError> {
        let unknown = || NetError::UnknownSession(session.clone());
        let slot = self.peers.slot_of_session(session).ok_or_else(unknown)?;
        let peer = self.peers.get_mut(slot).ok_or_else(unknown)?;
        let media = self.events.get_mut(&peer.event).ok_or_else(unknown)?;
        let to = media.router.channel(language).ok_or_else(|| NetError::UnknownLanguage(language.clone()))?;
        let listener = matches!(peer.role, PeerRole::Listener { counted: true, .. });
        let (PeerRole::Listener { tracks, .. } | PeerRole::Publisher { tracks, .. }) = &mut peer.role;
        let Some(t) = tracks.get_mut(track) else {
            return Err(NetError::Unsupported(format!("this session has no audio track {}", track + 1)));
        };
        let from = std::mem::replace(&mut t.channel, to);
        media.subscribers.remove(from, (slot, track as u8));
        media.subscribers.add(to, (slot, track as u8));
        if listener && track == 0 {
            media.listeners[from] = media.listeners[from].saturating_sub(1);
            media.listeners[to] += 1;
        }
        Ok(())
    }

    /// End a session; `UnknownSession` when it is not (or no longer) here.
    pub fn end_session(&mut self, session: &SessionId) -> Result<(), NetError> {
        let slot =
            self.peers.slot_of_session(session).ok_or_else(|| NetError::UnknownSession(session.clone()))?;
        self.remove_peer(slot, "ended by request");
        Ok(())
    }

    /// Drop every session of an event, its RTP floor line and its routing.
    pub fn end_event(&mut self, event: &EventId) {
        let slots: Vec<u32> = self.peers.iter().filter(|p| &p.event == event).map(|p| p.key.slot).collect();
        for slot in slots {
            self.remove_peer(slot, "event ended");
        }
        if let Some(floor) = self.rtp_floors.remove(event) {
            self.closed_rejected += floor.rejected;
        }
        self.taps.remove(event);
        self.events.remove(event);
    }

    /// Listeners per channel and peer counts; the driver adds its own counters.
    pub fn stats(&self) -> ShardStats {
        let mut channels = Vec::new();
        for media in self.events.values() {
            for (index, listeners) in media.listeners.iter().enumerate() {
                if let Some(language) = media.router.language(index) {
                    channels.push(ChannelListeners {
                        event: media.layout.id.clone(),
                        language: language.clone(),
                        listeners: *listeners,
                    });
                }
            }
        }
        ShardStats {
            index: self.config.index,
            peers: self.peers.len(),
            settled: self.settled,
            channels,
            packets_in: self.counters.packets_in,
            bytes_in: self.counters.bytes_in,
            packets_direct: self.counters.direct,
            unknown_dropped: self.counters.unknown,
            srtp_refused: self.counters.srtp_refused,
            panics: self.counters.panics,
            rtp_floor_rejected: self.rtp_floors.values().map(|f| f.rejected).sum::<u64>()
                + self.closed_rejected,
            ..ShardStats::default()
        }
    }

    /// After a contained panic: count it, drop the peer that was being handled (or `session`'s
    /// peer) and the fan-out in progress, so the core's lists stay consistent. Returns the dropped
    /// session.
    pub fn recover(&mut self, session: Option<&SessionId>) -> Option<SessionId> {
        self.counters.panics += 1;
        self.fanout.current = None;
        self.fanout.routed.clear();
        self.fanout.dead.clear();
        self.sources.clear();
        let by_session = session.and_then(|s| self.peers.slot_of_session(s));
        let handling = self.handling.take().and_then(|k| self.peers.by_key(k).map(|_| k.slot));
        let slot = by_session.or(handling)?;
        let dropped = self.peers.get(slot).map(|p| p.session.clone());
        self.remove_peer(slot, "internal error (a contained panic)");
        dropped
    }

    /// Forget which peer was handled (the driver calls it before each input).
    pub fn clear_handling(&mut self) {
        self.handling = None;
    }

    /// A test hook: panic while handling `session`'s peer, as a bug in the core would.
    #[doc(hidden)]
    #[allow(clippy::panic, reason = "a fault a test injects on purpose")]
    pub fn panic_on(&mut self, session: &SessionId) {
        if let Some(peer) = self.peers.slot_of_session(session).and_then(|s| self.peers.get(s)) {
            self.handling = Some(peer.key);
        }
        panic!("fault injected while handling session {session}");
    }

    // ---- inside -----------------------------------------------------------------------------

    fn event_media(&mut self, layout: &Arc<EventLayout>) -> &mut EventMedia {
        let mixer = if self.events.contains_key(&layout.id) { None } else { self.mixer_for(layout) };
        self.events.entry(layout.id.clone()).or_insert_with(|| EventMedia::new(layout.clone(), mixer))
    }

    /// The event's mixer, on the one shard that mixes it (mix mode, and not an edge: an edge's
    /// channels come mixed from the origin).
    fn mixer_for(&self, layout: &EventLayout) -> Option<Mixer> {
        let (index, shards) = (self.config.index, self.config.shards);
        let mixes = !layout.cascaded && mixing_shard(&layout.id, shards) == index;
        let mixer = layout.mix.filter(|_| mixes).and_then(|settings| {
            let base = self.inputs.fetch_add(256, Ordering::Relaxed);
            Mixer::new(layout.id.clone(), settings, base)
                .inspect_err(|e| warn!(shard = index, error = %e, "mix mode unavailable"))
                .ok()
        });
        if mixer.is_some() {
            info!(event = %layout.id, "mixing this event on this shard");
        }
        mixer
    }

    /// Frames the mixers owe at `now` become source packets.
    fn run_mixers(&mut self, now: Instant) {
        for media in self.events.values_mut() {
            let Some(mixer) = media.mixer.as_mut() else { continue };
            if mixer.next_tick().is_none_or(|t| t > now) {
                continue;
            }
            let mut out = Vec::new();
            let router = &media.router;
            if let Err(e) = mixer.tick(now, router.channel_count(), |c| router.on_air(c), &mut out) {
                warn!(event = %media.layout.id, error = %e, "mixing failed");
            }
            self.sources.extend(out.into_iter().map(Arc::new));
        }
    }

    fn remove_peer(&mut self, slot: u32, why: &'static str) {
        let Some(peer) = self.peers.remove(slot) else { return };
        if matches!(peer.stage, Stage::Settled { .. }) {
            self.settled -= 1;
        }
        peer.span.in_scope(|| info!(why, "session ended"));
        if let Some(media) = self.events.get_mut(&peer.event) {
            for (i, track) in peer.role.tracks().iter().enumerate() {
                media.subscribers.remove(track.channel, (slot, i as u8));
            }
            if let PeerRole::Listener { tracks, counted: true } = &peer.role
                && let Some(first) = tracks.first()
            {
                media.listeners[first.channel] = media.listeners[first.channel].saturating_sub(1);
            }
        }
        self.outbox.ended.push(Ended { session: peer.session, event: peer.event, why });
    }

    /// Drain a peer's engine after a mutation; removes the peer when it has died.
    fn drain(&mut self, slot: u32, now: Instant) {
        let Some(peer) = self.peers.get_mut(slot) else { return };
        let was_connecting = matches!(peer.stage, Stage::Connecting(_));
        if let Some(why) = peer.drain(now, &mut self.outbox.send, &mut self.timers, &mut self.sources) {
            self.remove_peer(slot, why);
        } else if was_connecting && peer.stage.is_connected() {
            self.outbox.connected.push(peer.session.clone());
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((at, key, wake)) = self.timers.pop_due(now) {
            let Some(peer) = self.peers.by_key(key) else { continue }; // the slot was reused
            match wake {
                Wake::ConnectDeadline => {
                    if matches!(peer.stage, Stage::Connecting(_)) {
                        self.remove_peer(key.slot, "did not connect in time");
                    }
                }
                Wake::Engine => self.wake_engine(now, at, key),
                Wake::Settle => {
                    if peer.settle(now) {
                        self.settled += 1;
                        self.timers.schedule(now + CONSENT_TIMEOUT, key, Wake::Consent);
                    }
                }
                Wake::Consent => match &peer.stage {
                    Stage::Settled { consent, .. } if consent.lapsed(now) => {
                        self.remove_peer(key.slot, "ICE consent lapsed");
                    }
                    Stage::Settled { consent, .. } => {
                        let at = consent.last_consent + CONSENT_TIMEOUT + Duration::from_millis(1);
                        self.timers.schedule(at, key, Wake::Consent);
                        self.peers.expire_remotes(key.slot, now);
                    }
                    _ => {}
                },
            }
        }
    }

    /// A peer's engine deadline (scheduled at `at`) is due.
    fn wake_engine(&mut self, now: Instant, at: Instant, key: PeerKey) {
        let Some(peer) = self.peers.by_key(key) else { return };
        if peer.scheduled != Some(at) {
            return; // superseded by an earlier deadline
        }
        peer.scheduled = None;
        if peer.timeout > now {
            peer.scheduled = Some(peer.timeout);
            self.timers.schedule(peer.timeout, key, Wake::Engine);
            return;
        }
        self.handling = Some(key);
        let Some(engine) = peer.stage.engine_mut() else { return };
        if let Err(e) = engine.rtc.handle_input(Input::Timeout(now)) {
            peer.span.in_scope(|| debug!(error = %e, "timeout input rejected"));
        }
        self.drain(key.slot, now);
    }

    /// Route what publishers, RTP floors and mixers produced: locally, and to every other shard.
    fn route_sources(&mut self, now: Instant) {
        self.queue_sources();
        self.fan_out(now);
    }

    fn queue_sources(&mut self) {
        for packet in self.sources.drain(..) {
            if self.config.shards > 1 {
                self.outbox.forward.push(packet.clone());
            }
            self.fanout.queue.push_back(packet);
        }
    }

    /// Fan one source packet out to this shard's listeners of every channel it is heard on (a
    /// packet another shard forwarded, or one a benchmark makes). Pauses like every fan-out
    /// when the send batch is full: see [`ShardCore::fanout_paused`].
    pub fn deliver(&mut self, packet: Arc<SourcePacket>, now: Instant) {
        self.fanout.queue.push_back(packet);
        self.fan_out(now);
    }

    /// Whether a fan-out paused on a full send batch: the driver sends the batch, then calls
    /// [`ShardCore::resume`] (until this is false) before it feeds the core anything else.
    pub fn fanout_paused(&self) -> bool {
        self.fanout.current.is_some() || !self.fanout.queue.is_empty()
    }

    /// Go on with a paused fan-out.
    pub fn resume(&mut self, now: Instant) {
        self.fan_out(now);
    }

    /// Fan out queued packets until none is left or the send batch is full.
    fn fan_out(&mut self, now: Instant) {
        while self.outbox.send.len() < self.config.flush_at {
            if self.fanout.current.is_none() {
                let Some(packet) = self.fanout.queue.pop_front() else {
                    if self.sources.is_empty() {
                        return;
                    }
                    self.queue_sources(); // what a booth's engine gave while it was written to
                    continue;
                };
                self.start_fanout(packet, now);
                continue;
            }
            if self.write_subscribers(now) {
                self.fanout.current = None;
                for (key, why) in std::mem::take(&mut self.fanout.dead) {
                    if self.peers.by_key(key).is_some() {
                        self.remove_peer(key.slot, why);
                    }
                }
            }
        }
    }

    /// Mix and route one packet; its copies wait in `fanout.routed`.
    fn start_fanout(&mut self, packet: Arc<SourcePacket>, now: Instant) {
        let Some(media) = self.events.get_mut(&packet.event) else { return };
        if let Some(mixer) = media.mixer.as_mut()
            && let Err(e) = mixer.push(&packet, now)
        {
            warn!(event = %packet.event, error = %e, "mixer input failed");
        }
        let fanout = &mut self.fanout;
        fanout.routed.clear();
        media.router.route(&packet, now, &mut fanout.routed);
        if let Some(tap) = self.taps.get(&packet.event) {
            for (channel, out) in &fanout.routed {
                tap.offer(*channel, out, media.router.on_air(*channel).map(|o| o.interpreter));
            }
        }
        fanout.current = Some(packet);
        fanout.channel = 0;
        fanout.next = 0;
    }

    /// Write the current packet's copies to their subscribers from the cursor on; false when it
    /// paused on a full send batch.
    fn write_subscribers(&mut self, now: Instant) -> bool {
        let fanout = &mut self.fanout;
        let Some(media) = fanout.current.as_ref().and_then(|p| self.events.get_mut(&p.event)) else {
            return true;
        };
        while let Some((channel, out)) = fanout.routed.get(fanout.channel) {
            let subscribers = media.subscribers.of(*channel);
            while let Some(&(slot, track)) = subscribers.get(fanout.next) {
                if self.outbox.send.len() >= self.config.flush_at {
                    return false;
                }
                fanout.next += 1;
                let Some(peer) = self.peers.get_mut(slot) else { continue };
                self.handling = Some(peer.key);
                if let Some(me) = peer.role.tracks().get(usize::from(track)).and_then(|t| t.partner_of)
                    && media.router.on_air(*channel).is_none_or(|o| o.interpreter == me)
                {
                    continue; // a partner track carries only a partner's voice
                }
                match peer.write(usize::from(track), *channel, out, now, &mut self.outbox.send) {
                    Written::Direct => self.counters.direct += 1,
                    Written::Nothing => self.counters.not_written += 1,
                    Written::Refused => self.counters.srtp_refused += 1,
                    Written::Engine => {
                        if let Some(why) =
                            peer.drain(now, &mut self.outbox.send, &mut self.timers, &mut self.sources)
                        {
                            fanout.dead.push((peer.key, why));
                        }
                    }
                }
            }
            fanout.channel += 1;
            fanout.next = 0;
        }
        true
    }
}

/// What a joining peer is, from how it joins and what its offer negotiated.
fn role_of(
    join: &Join,
    accepted: &peer::Accepted,
    router: &EventRouter,
) -> Result<(PeerRole, SessionKind), NetError> {
    let channel = |language: &Language| {
        router.channel(language).ok_or_else(|| NetError::UnknownLanguage(language.clone()))
    };
    let publisher = || {
        if accepted.receives() {
            Ok(())
        } else {
            Err(NetError::Unsupported(
                "the offer has no Opus audio section that sends (WHIP needs a=sendonly or a=sendrecv audio with Opus)"
                    .into(),
            ))
        }
    };
    Ok(match join {
        Join::Floor { input } => {
            publisher()?;
            (
                PeerRole::Publisher { source: Source::Floor, input: *input, tracks: Vec::new() },
                SessionKind::FloorPublisher,
            )
        }
        Join::Booth { interpreter, input, listen_to, booth } => {
            publisher()?;
            let tracks = accepted.booth_tracks(channel(listen_to)?, channel(booth)?, *interpreter);
            (
                PeerRole::Publisher { source: Source::Booth(*interpreter), input: *input, tracks },
                SessionKind::Booth(*interpreter),
            )
        }
        Join::Listen { language } => {
            let tracks = accepted.listener_tracks(channel(language)?)?;
            (PeerRole::Listener { tracks, counted: true }, SessionKind::Listener)
        }
        Join::Cascade => {
            let tracks = accepted.cascade_tracks(router.channel_count())?;
            (PeerRole::Listener { tracks, counted: false }, SessionKind::Cascade)
        }
    })
}

#[cfg(test)]
mod tests {
    //! The core driven in memory: str0m clients on simulated time, no socket.

    use std::net::{IpAddr, Ipv4Addr};

    use str0m::media::{Direction, MediaKind};
    use str0m::{Candidate, Event, Output, Rtc};

    use super::*;
    use crate::net::settled::SETTLE_AFTER;

    const RELAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 4000);

    fn client_addr(i: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 5000)
    }

    fn layout() -> Arc<EventLayout> {
        Arc::new(EventLayout {
            id: EventId::parse("core-test").unwrap(),
            floor: Language::parse("en").unwrap(),
            languages: vec![Language::parse("fr").unwrap()],
            rtp_allow: Default::default(),
            mix: None,
            cascaded: false,
            relayed: false,
        })
    }

    fn core() -> ShardCore {
        ShardCore::new(
            CoreConfig {
                index: 0,
                shards: 2,
                candidates: vec![RELAY],
                connect_timeout: Duration::from_secs(10),
                direct_srtp: true,
                flush_at: FLUSH_AT,
            },
            Arc::new(AtomicU64::new(1)),
        )
    }

    /// A str0m client (a browser's part) and what it received. `addr` is its own address,
    /// `seen_as` where its datagrams come from as the relay sees them (behind a NAT that may
    /// rebind).
    struct Client {
        rtc: Rtc,
        addr: SocketAddr,
        seen_as: SocketAddr,
        connected: bool,
        media: usize,
    }

    impl Client {
        fn new(
            now: Instant,
            addr: SocketAddr,
            direction: Direction,
        ) -> (Self, String, str0m::change::SdpPendingOffer) {
            let mut rtc =
                Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            let mut change = rtc.sdp_api();
            change.add_media(MediaKind::Audio, direction, None, None, None);
            let (offer, pending) = change.apply().unwrap();
            (Self { rtc, addr, seen_as: addr, connected: false, media: 0 }, offer.to_sdp_string(), pending)
        }

        /// Poll: the client's datagrams and its next deadline.
        fn poll(&mut self) -> (Vec<Vec<u8>>, Instant) {
            let mut out = Vec::new();
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => return (out, t),
                    Output::Transmit(t) => out.push(t.contents.to_vec()),
                    Output::Event(Event::Connected) => self.connected = true,
                    Output::Event(Event::RtpPacket(_)) => self.media += 1,
                    Output::Event(_) => {}
                }
            }
        }
    }

    /// Everything the core queued goes to the client it is addressed to (others are dropped).
    fn deliver(core: &mut ShardCore, now: Instant, client: &mut Client) -> usize {
        let datagrams: Vec<_> = core.outbox().send.drain().collect();
        let mut n = 0;
        for (_, data) in datagrams.into_iter().filter(|(to, _)| *to == client.seen_as) {
            let receive = Receive::new(Protocol::Udp, RELAY, client.addr, &data).unwrap();
            client.rtc.handle_input(Input::Receive(now, receive)).unwrap();
            n += 1;
        }
        n
    }

    /// Run client and core on simulated time until `until` or `done`.
    fn run(
        core: &mut ShardCore,
        client: &mut Client,
        now: &mut Instant,
        until: Instant,
        done: impl Fn(&ShardCore, &Client) -> bool,
    ) {
        while *now < until && !done(core, client) {
            for _ in 0..100 {
                let (out, _) = client.poll();
                for data in &out {
                    core.on_datagram(*now, client.seen_as, data);
                }
                if deliver(core, *now, client) == 0 && out.is_empty() {
                    break;
                }
            }
            let (_, client_next) = client.poll();
            let next = core.poll_timeout().map_or(client_next, |t| t.min(client_next));
            *now = next.clamp(*now + Duration::from_millis(1), *now + Duration::from_millis(50));
            client.rtc.handle_input(Input::Timeout(*now)).unwrap();
            core.on_timeout(*now);
        }
    }

    fn join_listener(core: &mut ShardCore, now: Instant, addr: SocketAddr) -> (Client, SessionId) {
        let (mut client, offer, pending) = Client::new(now, addr, Direction::RecvOnly);
        let session = SessionId::generate();
        let joined = core
            .join(
                now,
                layout(),
                session.clone(),
                Join::Listen { language: Language::parse("fr").unwrap() },
                &offer,
            )
            .unwrap();
        assert_eq!(joined.kind, SessionKind::Listener);
        let answer = str0m::change::SdpAnswer::from_sdp_string(&joined.answer).unwrap();
        client.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        (client, session)
    }

    fn floor_packet(seq: u64, now: Instant) -> SourcePacket {
        SourcePacket {
            event: layout().id.clone(),
            source: Source::Floor,
            input: 99,
            seq,
            ts: seq as u32 * 960,
            marker: false,
            payload: vec![0xfc, 1, 2, 3].into(),
            received_at: now,
        }
    }

    fn stage_of(core: &ShardCore, session: &SessionId) -> Option<&'static str> {
        let peers = core.peers();
        let peer = peers.get(peers.slot_of_session(session)?)?;
        Some(match peer.stage {
            Stage::Connecting(_) => "connecting",
            Stage::Engine(_) => "engine",
            Stage::Direct(..) => "direct",
            Stage::Settled { .. } => "settled",
            Stage::Closed => "closed",
        })
    }

    #[test]
    fn a_listener_joins_connects_hears_the_floor_and_settles() {
        let mut core = core();
        let mut now = Instant::now();
        let (mut client, session) = join_listener(&mut core, now, client_addr(1));
        assert_eq!(stage_of(&core, &session), Some("connecting"));
        assert_eq!(core.stats().channels.iter().map(|c| c.listeners).sum::<usize>(), 1);
        let until = now + Duration::from_secs(5);
        run(&mut core, &mut client, &mut now, until, |_, c| c.connected);
        assert!(client.connected, "the client connected through the core");
        let connected = std::mem::take(&mut core.outbox().connected);
        assert_eq!(connected, vec![session.clone()], "the control plane hears it connected, once");
        // A floor packet reaches the listener (its channel carries the floor: nobody on air),
        // protected by Tolk's SRTP once the keys are known, and is forwarded to the other shard.
        for seq in 1..=5 {
            core.deliver(Arc::new(floor_packet(seq, now)), now);
            deliver(&mut core, now, &mut client);
            client.poll();
        }
        assert!(client.media >= 4, "the listener heard {} packets", client.media);
        assert!(core.counters().direct > 0, "Tolk's SRTP sent them");
        assert_eq!(stage_of(&core, &session), Some("direct"));
        let settle_by = now + SETTLE_AFTER + Duration::from_secs(1);
        run(&mut core, &mut client, &mut now, settle_by, |_, _| false);
        assert_eq!(stage_of(&core, &session), Some("settled"));
        assert_eq!(core.stats().settled, 1);
        let heard = client.media;
        core.deliver(Arc::new(floor_packet(6, now)), now);
        deliver(&mut core, now, &mut client);
        client.poll();
        assert_eq!(client.media, heard + 1, "a settled listener still hears the floor");
        // Its consent checks keep it: 20 s more of simulated time.
        let later = now + Duration::from_secs(20);
        run(&mut core, &mut client, &mut now, later, |_, _| false);
        assert_eq!(stage_of(&core, &session), Some("settled"));
        assert!(core.outbox().ended.is_empty());
    }

    #[test]
    fn a_tapped_event_hands_each_recorded_channel_its_packets_with_who_is_on_air() {
        let mut core = core();
        let now = Instant::now();
        let (tx, rx) = crossbeam_channel::bounded(16);
        let dropped = Arc::new(AtomicU64::new(0));
        core.tap(&layout(), Some(Tap::new(layout().id.clone(), vec![false, true], tx, dropped)));
        core.deliver(Arc::new(floor_packet(1, now)), now);
        let first: Vec<_> = rx.try_iter().collect();
        assert_eq!(first.len(), 1, "fr only: the floor channel is not recorded");
        assert_eq!((first[0].channel, first[0].on_air), (1, None));
        assert_eq!(&first[0].payload[..], &[0xfc, 1, 2, 3], "the payload as listeners get it");
        let ana = crate::ids::InterpreterId(7);
        core.set_on_air(
            &layout().id,
            &Language::parse("fr").unwrap(),
            Some(OnAir { interpreter: ana, muted: true }),
        );
        core.deliver(Arc::new(floor_packet(2, now)), now);
        assert!(rx.try_iter().next().is_none(), "fr carries Ana (muted), not the floor");
        let mic = SourcePacket { source: Source::Booth(ana), input: 5, ..floor_packet(1, now) };
        core.deliver(Arc::new(mic), now);
        let coughed: Vec<_> = rx.try_iter().collect();
        assert_eq!(coughed.len(), 1);
        assert_eq!(coughed[0].on_air, Some(ana));
        assert_eq!(coughed[0].payload, crate::media::silence::opus_silence(), "a cough is silence");
        core.tap(&layout(), None);
        core.deliver(Arc::new(floor_packet(3, now)), now);
        assert!(rx.try_iter().next().is_none(), "untapped");
    }

    #[test]
    fn a_settled_listener_whose_consent_lapses_is_removed_and_noted() {
        let mut core = core();
        let mut now = Instant::now();
        let (mut client, session) = join_listener(&mut core, now, client_addr(2));
        let until = now + SETTLE_AFTER + Duration::from_secs(2);
        run(&mut core, &mut client, &mut now, until, |_, _| false);
        assert_eq!(stage_of(&core, &session), Some("settled"));
        // The client goes away: nothing more reaches the core.
        let mut t = now;
        while t < now + CONSENT_TIMEOUT + Duration::from_secs(2) {
            t += Duration::from_millis(500);
            core.on_timeout(t);
        }
        assert_eq!(stage_of(&core, &session), None);
        let ended: Vec<_> = core.outbox().ended.drain(..).collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].session, session);
        assert_eq!(ended[0].why, "ICE consent lapsed");
        assert_eq!(core.stats().peers, 0);
        assert_eq!(core.stats().channels.iter().map(|c| c.listeners).sum::<usize>(), 0);
    }

    #[test]
    fn a_peer_that_never_connects_is_dropped_at_its_deadline() {
        let mut core = core();
        let now = Instant::now();
        let (_client, session) = join_listener(&mut core, now, client_addr(3));
        core.on_timeout(now + Duration::from_secs(9));
        assert_eq!(stage_of(&core, &session), Some("connecting"));
        let mut t = now + Duration::from_secs(9);
        while t <= now + Duration::from_secs(11) {
            t += Duration::from_millis(100);
            core.on_timeout(t);
        }
        assert_eq!(stage_of(&core, &session), None);
        assert_eq!(
            core.outbox().ended.drain(..).map(|e| e.why).collect::<Vec<_>>(),
            ["did not connect in time"]
        );
    }

    #[test]
    fn datagrams_from_unknown_addresses_change_nothing() {
        let mut core = core();
        let now = Instant::now();
        let (_client, session) = join_listener(&mut core, now, client_addr(4));
        core.outbox().send.drain().for_each(drop);
        let stranger = client_addr(200);
        for junk in [
            &b""[..],
            &[0u8, 1, 0, 0][..],
            &[0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9][..],
            &[22, 0xfe, 0xfd][..],
        ] {
            core.on_datagram(now, stranger, junk);
        }
        assert!(core.outbox().send.is_empty(), "nothing is answered to a stranger");
        assert_eq!(core.peers().slot_of_addr(&stranger), None, "no address is mapped");
        assert_eq!(stage_of(&core, &session), Some("connecting"));
        assert_eq!(core.counters().packets_in, 4);
    }

    #[test]
    fn ending_a_session_frees_its_slot_and_a_new_peer_gets_a_new_generation() {
        let mut core = core();
        let now = Instant::now();
        let (_a, first) = join_listener(&mut core, now, client_addr(5));
        let slot = core.peers().slot_of_session(&first).unwrap();
        let key = core.peers().get(slot).unwrap().key;
        core.end_session(&first).unwrap();
        assert!(matches!(core.end_session(&first), Err(NetError::UnknownSession(_))));
        let (_b, second) = join_listener(&mut core, now, client_addr(6));
        let reused = core.peers().slot_of_session(&second).unwrap();
        assert_eq!(reused, slot, "the slot is reused");
        assert_ne!(
            core.peers.by_key(key).map(|p| p.session.clone()),
            Some(second.clone()),
            "the old key names nobody"
        );
        assert_eq!(core.peers.by_key(key).map(|_| ()), None);
        // Timers of the first peer fire harmlessly on the second.
        core.on_timeout(now + Duration::from_secs(1));
        assert_eq!(stage_of(&core, &second), Some("connecting"));
    }

    #[test]
    fn switching_moves_the_listener_count_and_bad_switches_are_refused() {
        let mut core = core();
        let now = Instant::now();
        let (_client, session) = join_listener(&mut core, now, client_addr(7));
        let count = |core: &ShardCore, l: &str| {
            core.stats()
                .channels
                .iter()
                .filter(|c| c.language.as_str() == l)
                .map(|c| c.listeners)
                .sum::<usize>()
        };
        assert_eq!((count(&core, "en"), count(&core, "fr")), (0, 1));
        core.switch(&session, 0, &Language::parse("en").unwrap()).unwrap();
        assert_eq!((count(&core, "en"), count(&core, "fr")), (1, 0));
        assert!(matches!(
            core.switch(&session, 0, &Language::parse("de").unwrap()),
            Err(NetError::UnknownLanguage(_))
        ));
        assert!(matches!(
            core.switch(&session, 5, &Language::parse("fr").unwrap()),
            Err(NetError::Unsupported(_))
        ));
        assert_eq!((count(&core, "en"), count(&core, "fr")), (1, 0));
    }

    #[test]
    fn a_whep_offer_that_sends_is_not_a_publisher_and_nothing_is_kept() {
        let mut core = core();
        let now = Instant::now();
        let (_client, offer, _) = Client::new(now, client_addr(8), Direction::RecvOnly);
        let refused = core
            .join(now, layout(), SessionId::generate(), Join::Floor { input: 1 }, &offer)
            .map(|j| j.answer);
        assert!(matches!(refused, Err(NetError::Unsupported(_))), "{refused:?}");
        assert!(
            core.join(
                now,
                layout(),
                SessionId::generate(),
                Join::Listen { language: Language::parse("xx").unwrap() },
                &offer
            )
            .is_err()
        );
        assert!(matches!(
            core.join(now, layout(), SessionId::generate(), Join::Floor { input: 1 }, "v=0 junk"),
            Err(NetError::BadSdp(_))
        ));
        assert_eq!(core.stats().peers, 0);
        assert!(core.outbox().send.is_empty());
    }

    #[test]
    fn an_rtp_floor_takes_plain_rtp_into_routing_and_forwards_it() {
        let mut core = core();
        let now = Instant::now();
        let layout = layout();
        core.open_rtp_floor(&layout);
        let mut packet = vec![0x80, 111, 0, 7, 0, 0, 0, 9, 0, 0, 0, 42];
        packet.extend_from_slice(&[0xfc, 1, 2, 3]);
        core.on_rtp_datagram(now, &layout.id, client_addr(9), &packet);
        core.on_rtp_datagram(now, &layout.id, client_addr(9), b"not rtp");
        let forwarded: Vec<_> = core.outbox().forward.drain(..).collect();
        assert_eq!(forwarded.len(), 1, "the other shard hears the floor");
        assert_eq!(forwarded[0].source, Source::Floor);
        assert_eq!(&forwarded[0].payload[..], &[0xfc, 1, 2, 3]);
        core.end_event(&layout.id);
        core.on_rtp_datagram(now, &layout.id, client_addr(9), &packet);
        assert!(core.outbox().forward.is_empty(), "an ended event's floor is closed");
    }

    #[test]
    fn a_fanout_pauses_on_a_full_batch_and_resumes_where_it_stopped() {
        let mut core = core();
        core.config.flush_at = 2;
        let mut now = Instant::now();
        let mut clients = Vec::new();
        for i in 0..5 {
            let (mut client, _) = join_listener(&mut core, now, client_addr(40 + i));
            let until = now + Duration::from_secs(5);
            run(&mut core, &mut client, &mut now, until, |_, c| c.connected);
            assert!(client.connected);
            clients.push(client);
        }
        core.outbox().send.drain().for_each(drop);
        for seq in 1..=4 {
            core.deliver(Arc::new(floor_packet(seq, now)), now);
            let mut stretches = 0;
            let mut heard: Vec<SocketAddr> = Vec::new();
            loop {
                let batch: Vec<_> = core.outbox().send.drain().collect();
                assert!(batch.len() <= 4, "a stretch of {} datagrams", batch.len());
                for (to, data) in batch {
                    let client = clients.iter_mut().find(|c| c.addr == to).unwrap();
                    let receive = Receive::new(Protocol::Udp, RELAY, to, &data).unwrap();
                    client.rtc.handle_input(Input::Receive(now, receive)).unwrap();
                    heard.push(to);
                }
                stretches += 1;
                if !core.fanout_paused() {
                    break;
                }
                core.resume(now);
            }
            for client in &mut clients {
                client.poll();
                assert_eq!(client.media, seq as usize, "each listener heard each packet once");
            }
            assert!(stretches >= 3, "five listeners in stretches of two: {stretches}");
            heard.sort();
            heard.dedup();
            assert_eq!(heard.len(), 5, "every listener got the packet once it was done");
        }
    }

    /// The relay's view of a settled listener's peer: its ICE credentials, where its media goes.
    fn settled_peer(core: &ShardCore, session: &SessionId) -> (String, String, Option<SocketAddr>) {
        let peer = core.peers().get(core.peers().slot_of_session(session).unwrap()).unwrap();
        (format!("{}:client", peer.ufrag), peer.ice_password().to_owned(), peer.destination())
    }

    /// Floor packets for `span` of simulated time, client and core running between them; how
    /// many were played and what the core sent, per destination, that is not STUN.
    fn play(
        core: &mut ShardCore,
        client: &mut Client,
        now: &mut Instant,
        span: Duration,
        seq: &mut u64,
        mut extra: impl FnMut(&mut ShardCore, Instant),
    ) -> (usize, HashMap<SocketAddr, usize>) {
        let mut media = HashMap::new();
        let until = *now + span;
        let mut played = 0;
        while *now < until {
            *seq += 1;
            played += 1;
            core.deliver(Arc::new(floor_packet(*seq, *now)), *now);
            extra(core, *now);
            for (to, data) in core.outbox().send.drain().collect::<Vec<_>>() {
                if data.first().is_some_and(|b| *b >= 128) {
                    *media.entry(to).or_default() += 1;
                }
                if to == client.seen_as {
                    let receive = Receive::new(Protocol::Udp, RELAY, client.addr, &data).unwrap();
                    client.rtc.handle_input(Input::Receive(*now, receive)).unwrap();
                }
            }
            let next = *now + Duration::from_millis(20);
            run(core, client, now, next, |_, _| false);
        }
        (played, media)
    }

    #[test]
    fn a_listener_behind_a_nat_that_rebinds_keeps_hearing_at_its_new_address() {
        let mut core = core();
        let mut now = Instant::now();
        let (mut client, session) = join_listener(&mut core, now, client_addr(60));
        let until = now + SETTLE_AFTER + Duration::from_secs(2);
        run(&mut core, &mut client, &mut now, until, |_, _| false);
        assert_eq!(stage_of(&core, &session), Some("settled"));
        let mut seq = 0;
        let (played, before) =
            play(&mut core, &mut client, &mut now, Duration::from_secs(1), &mut seq, |_, _| ());
        assert_eq!(before.get(&client_addr(60)).copied(), Some(played), "media to the first address");
        // The NAT gives the client a new port: its next nominated check comes from there, the
        // relay checks that address back and moves the media.
        let rebound = SocketAddr::new(client_addr(60).ip(), 6000);
        client.seen_as = rebound;
        let heard = client.media;
        let (played, after) =
            play(&mut core, &mut client, &mut now, Duration::from_secs(30), &mut seq, |_, _| ());
        assert_eq!(settled_peer(&core, &session).2, Some(rebound));
        let moved = after.get(&rebound).copied().unwrap_or(0);
        // Until its next nominated check (str0m checks its pair every few seconds) the media
        // goes to the old port; after that, all of it to the new one.
        assert!(moved * 10 >= played * 8, "{moved} of {played} packets to the new address: {after:?}");
        assert_eq!(client.media - heard, moved, "the client hears what goes to the new address");
        assert_eq!(stage_of(&core, &session), Some("settled"), "consent holds at the new address");
        assert!(core.outbox().ended.is_empty());
        // The old address expired: it no longer reaches the peer.
        assert_eq!(core.peers().slot_of_addr(&client_addr(60)), None);
    }

    #[test]
    fn a_forged_nomination_sends_no_media_and_keeps_no_consent() {
        let mut core = core();
        let mut now = Instant::now();
        let (mut client, session) = join_listener(&mut core, now, client_addr(61));
        let until = now + Duration::from_secs(5);
        run(&mut core, &mut client, &mut now, until, |_, c| c.connected);
        let (username, password, destination) = settled_peer(&core, &session);
        assert_eq!(destination, Some(client_addr(61)));
        // The listener (who knows the relay's ICE password) forges checks with the source
        // address of a victim, nominating it with the highest priority, from the first seconds.
        let victim = client_addr(99);
        let forged = move |core: &mut ShardCore, now: Instant| {
            core.on_datagram(now, victim, &settled::controlling_check(&username, &password, u32::MAX, true));
        };
        let mut seq = 0;
        let (played, sent) =
            play(&mut core, &mut client, &mut now, Duration::from_secs(10), &mut seq, forged.clone());
        assert_eq!(stage_of(&core, &session), Some("settled"));
        assert_eq!(sent.get(&victim), None, "no media to the victim: {sent:?}");
        assert_eq!(sent.get(&client_addr(61)).copied(), Some(played), "all of it to the listener");
        // The listener vanishes; forged checks keep coming. Consent was the listener's, so the
        // session ends when it lapses instead of holding a slot forever.
        let mut sent = HashMap::<SocketAddr, usize>::new();
        let until = now + Duration::from_secs(20);
        while now < until {
            now += Duration::from_millis(20);
            seq += 1;
            core.deliver(Arc::new(floor_packet(seq, now)), now);
            forged(&mut core, now);
            core.on_timeout(now);
            for (to, data) in core.outbox().send.drain() {
                if data.first().is_some_and(|b| *b >= 128) {
                    *sent.entry(to).or_default() += 1;
                }
            }
        }
        assert_eq!(sent.get(&victim), None, "still no media to the victim: {sent:?}");
        assert_eq!(stage_of(&core, &session), None);
        let ended: Vec<_> = core.outbox().ended.drain(..).collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].why, "ICE consent lapsed");
    }

    #[test]
    fn a_new_address_needs_a_signed_check_and_a_peer_keeps_at_most_four() {
        use crate::net::table::MAX_REMOTES;
        let mut core = core();
        let now = Instant::now();
        let (_client, session) = join_listener(&mut core, now, client_addr(50));
        let slot = core.peers().slot_of_session(&session).unwrap();
        let peer = core.peers().get(slot).unwrap();
        let (username, password) = (format!("{}:client", peer.ufrag), peer.ice_password().to_owned());
        // Our ufrag with a wrong password, from many addresses: nothing is mapped or answered.
        core.outbox().send.drain().for_each(drop);
        for i in 0..20 {
            let forged = settled::binding_request(&username, "not-the-password", false);
            core.on_datagram(now, client_addr(100 + i), &forged);
        }
        assert!(core.peers().get(slot).unwrap().remotes.is_empty());
        assert_eq!(core.peers().slot_of_addr(&client_addr(100)), None);
        assert!(core.outbox().send.is_empty(), "a forged check is not answered");
        assert_eq!(core.counters().unknown, 20);
        // Signed checks from six addresses: the peer keeps the last four.
        for i in 0..6 {
            core.on_datagram(
                now,
                client_addr(130 + i),
                &settled::binding_request(&username, &password, false),
            );
        }
        assert_eq!(core.peers().get(slot).unwrap().remotes.len(), MAX_REMOTES);
        for i in 0..6 {
            let mapped = core.peers().slot_of_addr(&client_addr(130 + i));
            assert_eq!(mapped, (i >= 2).then_some(slot), "address {i}");
        }
        assert_eq!(stage_of(&core, &session), Some("connecting"));
    }

    #[test]
    fn a_panic_on_a_datagram_drops_that_peer_only_and_is_counted() {
        use crate::net::contain::contained;
        let mut core = core();
        let mut now = Instant::now();
        let (mut a, session_a) = join_listener(&mut core, now, client_addr(70));
        let (mut b, session_b) = join_listener(&mut core, now, client_addr(71));
        for client in [&mut a, &mut b] {
            let until = now + Duration::from_secs(5);
            run(&mut core, client, &mut now, until, |_, c| c.connected);
            assert!(client.connected);
        }
        core.outbox().send.drain().for_each(drop);
        core.poison = Some(a.addr);
        let (out, _) = a.poll();
        let datagram = out.into_iter().next().unwrap_or_else(|| vec![0, 1, 0, 0]);
        let handled = contained(&mut core, None, |core| core.on_datagram(now, a.addr, &datagram));
        assert!(handled.is_none(), "the poisoned datagram panicked");
        assert_eq!(core.counters().panics, 1);
        assert_eq!(stage_of(&core, &session_a), None, "the peer being handled is dropped");
        let ended: Vec<_> = core.outbox().ended.drain(..).map(|e| e.session).collect();
        assert_eq!(ended, vec![session_a]);
        assert!(stage_of(&core, &session_b).is_some(), "the other peer stays");
        assert_eq!(core.stats().panics, 1);
        core.deliver(Arc::new(floor_packet(1, now)), now);
        assert_eq!(deliver(&mut core, now, &mut b), 1, "the other listener still hears the floor");
    }

    #[test]
    fn the_rtp_floor_takes_one_sender_and_counts_the_rest() {
        let mut core = core();
        let t = Instant::now();
        core.open_rtp_floor(&layout());
        let event = layout().id.clone();
        let rtp = |seq: u16, ssrc: u32, pt: u8| {
            let mut p = vec![0x80, pt, (seq >> 8) as u8, seq as u8, 0, 0, 0, 0];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&[0xfc, 1, 2, 3]);
            p
        };
        let (floor, intruder) = (client_addr(60), client_addr(61));
        for seq in 0..10u16 {
            let at = t + Duration::from_millis(20 * u64::from(seq));
            core.on_rtp_datagram(at, &event, floor, &rtp(seq, 7, 111));
            core.on_rtp_datagram(at, &event, intruder, &rtp(seq, 8, 111));
            core.on_rtp_datagram(at, &event, floor, &rtp(seq, 7, 0));
            core.on_rtp_datagram(at, &event, floor, b"junk");
        }
        let forwarded: Vec<_> = core.outbox().forward.drain(..).collect();
        assert_eq!(forwarded.len(), 10, "only the locked sender's Opus packets are routed");
        assert!(forwarded.iter().all(|p| p.input == forwarded[0].input), "one input line");
        assert_eq!(core.stats().rtp_floor_rejected, 30);
    }

    /// Writes the fuzz targets' seed inputs (`fuzz/corpus/`, `fuzz/data/`) from real traffic:
    /// str0m's offers, a client's datagrams through a whole handshake (STUN, DTLS, SRTCP),
    /// Opus RTP from libopus. Run by hand:
    /// `cargo test -p tolk-relay --lib write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_fuzz_seeds() {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let write = |dir: &str, name: &str, data: &[u8]| {
            let dir = fuzz.join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), data).unwrap();
        };
        // The fuzz crate's record format: [op][len u16 BE][payload].
        let record = |op: u8, payload: &[u8]| {
            let mut out = vec![op];
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            out.extend_from_slice(payload);
            out
        };
        let ms = |d: Duration| (d.as_millis().min(u128::from(u16::MAX)) as u16).to_be_bytes();

        // Offers, as str0m makes them (the fuzz targets join peers with these).
        let now = Instant::now();
        for (direction, name) in [
            (Direction::RecvOnly, "offer-recvonly.sdp"),
            (Direction::SendOnly, "offer-sendonly.sdp"),
            (Direction::SendRecv, "offer-sendrecv.sdp"),
        ] {
            let (_, offer, _) = Client::new(now, client_addr(1), direction);
            write("data", name, offer.as_bytes());
            write("corpus/sdp_offer", &format!("str0m-{name}"), offer.as_bytes());
        }

        // A listener's handshake through the core: every datagram the client sent, with the time
        // between them. Replayed by the fuzz target from the peer's address after a signed,
        // nominating check (the core's ICE credentials are new on each run).
        let mut core = core();
        let mut now = Instant::now();
        let (mut client, offer, pending) = Client::new(now, client_addr(1), Direction::RecvOnly);
        let theirs = offer.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).unwrap().trim().to_owned();
        let session = SessionId::generate();
        let joined = core
            .join(
                now,
                layout(),
                session.clone(),
                Join::Listen { language: Language::parse("fr").unwrap() },
                &offer,
            )
            .unwrap();
        let answer = str0m::change::SdpAnswer::from_sdp_string(&joined.answer).unwrap();
        client.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let start = now;
        let mut sent: Vec<(Duration, Vec<u8>)> = Vec::new();
        let mut floor_seq = 0;
        while now < start + SETTLE_AFTER + Duration::from_secs(2) {
            let (out, client_next) = client.poll();
            for data in out {
                core.on_datagram(now, client.addr, &data);
                sent.push((now - start, data));
            }
            deliver(&mut core, now, &mut client);
            if client.connected && floor_seq < 20 {
                floor_seq += 1;
                core.deliver(Arc::new(floor_packet(floor_seq, now)), now);
                deliver(&mut core, now, &mut client);
            }
            let next = core.poll_timeout().map_or(client_next, |t| t.min(client_next));
            now = next.clamp(now + Duration::from_millis(1), now + Duration::from_millis(50));
            client.rtc.handle_input(Input::Timeout(now)).unwrap();
            core.on_timeout(now);
        }
        assert!(client.connected && client.media > 0, "the capture saw a whole handshake");
        let mut check = vec![1u8];
        check.extend_from_slice(theirs.as_bytes());
        let mut seed = vec![0u8]; // setup: the listener alone
        seed.extend(record(1, &check));
        let mut at = Duration::ZERO;
        for (when, data) in &sent {
            if *when > at {
                seed.extend(record(2, &ms(*when - at)));
                at = *when;
            }
            seed.extend(record(0, data));
        }
        write("corpus/shard_datagram", "listener-handshake", &seed);
        for (i, (_, data)) in sent.iter().enumerate() {
            let kind = match data.first() {
                Some(0..=3) => "stun",
                Some(20..=63) => "dtls",
                Some(128..=191) => "srtp",
                _ => "other",
            };
            let mut one = vec![3u8];
            one.extend(record(1, &check));
            one.extend(record(0, data));
            one.extend(record(3, &[]));
            if i < 12 || kind == "srtp" && i % 8 == 0 {
                write("corpus/shard_datagram", &format!("{kind}-{i:03}"), &one);
            }
        }
        // Floor packets to a joined listener, junk and forged checks from strangers, timeouts.
        let mut seed = vec![1u8];
        seed.extend(record(1, &check));
        for junk in [
            &b""[..],
            &[0u8, 1, 0, 0][..],
            &[0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9][..],
            &[22, 0xfe, 0xfd][..],
        ] {
            seed.extend(record(8 << 3, junk));
        }
        let forged = settled::binding_request("nobody:client", "not-the-password", true);
        seed.extend(record(9 << 3, &forged));
        for seq in 0..5u8 {
            seed.extend(record(4, &[0xfc, 0xff, 0xfe, seq]));
            seed.extend(record(2, &ms(Duration::from_millis(20))));
        }
        seed.extend(record(5 | (1 << 3), &[]));
        seed.extend(record(6 | (2 << 3), &[]));
        seed.extend(record(3, &[]));
        seed.extend(record(7, &[]));
        write("corpus/shard_datagram", "junk-and-floor", &seed);

        // RTP floor: a tone encoded by libopus as a floor sender's RTP, an interpreter's voice,
        // a handover, an intruder and junk.
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        encoder.set_inband_fec(true).unwrap();
        let mut frames = Vec::new();
        for n in 0..25usize {
            let pcm: Vec<f32> = (0..960)
                .map(|i| (((n * 960 + i) as f32) * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.3)
                .collect();
            frames.push(encoder.encode_vec_float(&pcm, 1500).unwrap());
        }
        let rtp = |seq: u16, ssrc: u32, payload: &[u8]| {
            let mut p = vec![0x80, 111];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(payload);
            p
        };
        let mut seed = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let seq = i as u16;
            seed.extend(record(0, &rtp(seq, 7, frame)));
            seed.extend(record(2, &rtp(seq, 9, frame)));
            if i == 12 {
                seed.extend(record(3 | (2 << 2), &[])); // handover to interpreter 2
                seed.extend(record(2 | (1 << 2), &rtp(seq, 10, frame)));
            }
            if i == 18 {
                seed.extend(record(3 | (5 << 2), &[])); // interpreter 2, muted
            }
            seed.extend(record(1, &ms(Duration::from_millis(20))));
        }
        write("corpus/rtp_floor", "tone-mix-handover", &seed);
        let mut seed = Vec::new();
        for (i, frame) in frames.iter().take(8).enumerate() {
            if i != 3 {
                seed.extend(record(0, &rtp(i as u16, 7, frame))); // one lost: FEC
            }
            seed.extend(record(1 << 2, &rtp(i as u16, 8, frame))); // an intruder (address 1)
            seed.extend(record(0, b"junk"));
            seed.extend(record(1, &ms(Duration::from_millis(20))));
        }
        seed.extend(record(1, &ms(Duration::from_millis(500)))); // underrun, concealment
        write("corpus/rtp_floor", "tone-loss-intruder", &seed);
        let mut one = vec![0x80, 111, 0, 7, 0, 0, 0, 9, 0, 0, 0, 42];
        one.extend_from_slice(&[0xfc, 1, 2, 3]);
        let mut seed = record(0, &one);
        seed.extend(record(1, &ms(Duration::from_millis(100))));
        write("corpus/rtp_floor", "unit-test-packet", &seed);
    }
}
