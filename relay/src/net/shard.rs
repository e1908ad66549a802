//! One media shard: an OS thread that owns a UDP socket, the WebRTC peers on it, the RTP floor
//! sockets given to it and its copy of each event's routing. One loop: wait (mio) for datagrams,
//! commands or the next peer deadline; handle them; send everything the turn produced in batches.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::Input;
use str0m::ice::StunMessage;
use str0m::net::{Protocol, Receive};
use tracing::{debug, info, info_span, warn};

use crate::ids::{EventId, Language, SessionId};
use crate::media::fanout::Subscribers;
use crate::media::mixer::Mixer;
use crate::media::router::{ChannelIndex, EventRouter};
use crate::media::rtp::{self as plain_rtp, SeqExtender};
use crate::media::{ChannelPacket, Source, SourcePacket};
use crate::net::peer::{self, Peer, PeerRole, Written};
use crate::net::settled::{CONSENT_TIMEOUT, SettledInput};
use crate::net::timers::{PeerKey, Timers, Wake};
use crate::net::udp::{self, RecvBatch, SendBatch};
use crate::net::{
    ChannelListeners, Command, EventLayout, Join, MediaConfig, MediaNote, NetError, SessionEntry,
    SessionKind, ShardHandle, ShardStats,
};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_RTP_FLOOR: usize = 2;
/// Longest wait when nothing is scheduled.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// A subscriber: a peer slot and which of its tracks.
type TrackRef = (u32, u8);

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
        let router = EventRouter::new(&layout.floor, &layout.languages).mixed(layout.mix.is_some());
        let channels = router.channel_count();
        Self { layout, router, subscribers: Subscribers::new(channels), listeners: vec![0; channels], mixer }
    }
}

/// The shard that mixes an event (mix mode): a stable choice from the event id.
fn mixing_shard(event: &EventId, shards: usize) -> usize {
    let hash = event
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % shards.max(1) as u64) as usize
}

struct RtpFloor {
    event: EventId,
    socket: UdpSocket,
    ssrc: Option<u32>,
    input: u64,
    extender: SeqExtender,
}

#[derive(Default)]
struct Counters {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    dropped: u64,
    direct: u64,
    busy: Duration,
    loops: u64,
}

pub(crate) struct Shard {
    index: usize,
    socket: UdpSocket,
    candidate: SocketAddr,
    poll: Poll,
    waker: Arc<Waker>,
    tx: crossbeam_channel::Sender<Command>,
    rx: crossbeam_channel::Receiver<Command>,
    others: Vec<ShardHandle>,
    sessions: Arc<DashMap<SessionId, SessionEntry>>,
    inputs: Arc<AtomicU64>,
    connect_timeout: Duration,
    notes: Option<tokio::sync::mpsc::UnboundedSender<MediaNote>>,

    peers: Vec<Option<Peer>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    by_session: HashMap<SessionId, u32>,
    by_addr: HashMap<SocketAddr, u32>,
    by_ufrag: HashMap<String, u32>,
    events: HashMap<EventId, EventMedia>,
    rtp_floors: Vec<Option<RtpFloor>>,
    timers: Timers,

    send: SendBatch,
    routed: Vec<(ChannelIndex, ChannelPacket)>,
    sources: Vec<Arc<SourcePacket>>,
    counters: Counters,
}

impl Shard {
    /// Bind the shard's socket; the thread starts with [`Shard::run`].
    pub(crate) fn bind(
        index: usize,
        config: &MediaConfig,
        sessions: Arc<DashMap<SessionId, SessionEntry>>,
        inputs: Arc<AtomicU64>,
    ) -> Result<Self, NetError> {
        // Port 0: every shard takes any free port (tests); else shard k takes first_port + k.
        let port = if config.first_port == 0 {
            0
        } else {
            config.first_port.checked_add(index as u16).ok_or_else(|| NetError::Bind {
                addr: SocketAddr::new(config.bind_ip, config.first_port),
                source: io::Error::new(io::ErrorKind::InvalidInput, "media ports run past 65535"),
            })?
        };
        let addr = SocketAddr::new(config.bind_ip, port);
        let bind_err = |source| NetError::Bind { addr, source };
        let std_socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        std_socket.set_nonblocking(true).map_err(bind_err)?;
        // An optimisation only (see the function): without it media still flows.
        if let Err(e) = udp::set_dont_fragment(&std_socket, addr.is_ipv6()) {
            warn!(%addr, error = %e, "cannot set Don't Fragment on the media socket; sending without it");
        }
        let local = std_socket.local_addr().map_err(bind_err)?;
        let mut socket = UdpSocket::from_std(std_socket);
        let poll = Poll::new().map_err(bind_err)?;
        poll.registry().register(&mut socket, SOCKET, Interest::READABLE).map_err(bind_err)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(bind_err)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(Self {
            index,
            socket,
            candidate: SocketAddr::new(config.public_ip, local.port()),
            poll,
            waker,
            tx,
            rx,
            others: Vec::new(),
            sessions,
            inputs,
            connect_timeout: config.connect_timeout,
            notes: None,
            peers: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            by_session: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            events: HashMap::new(),
            rtp_floors: Vec::new(),
            timers: Timers::default(),
            send: SendBatch::default(),
            routed: Vec::new(),
            sources: Vec::new(),
            counters: Counters::default(),
        })
    }

    pub(crate) fn handle(&self) -> ShardHandle {
        ShardHandle { tx: self.tx.clone(), waker: self.waker.clone() }
    }

    pub(crate) fn candidate_addr(&self) -> SocketAddr {
        self.candidate
    }

    pub(crate) fn set_others(&mut self, others: Vec<ShardHandle>) {
        self.others = others;
    }

    pub(crate) fn set_notes(&mut self, notes: Option<tokio::sync::mpsc::UnboundedSender<MediaNote>>) {
        self.notes = notes;
    }

    /// The shard's loop; returns on `Shutdown` or when every handle is gone.
    pub(crate) fn run(mut self) {
        let span = info_span!("shard", index = self.index, addr = %self.candidate);
        let _enter = span.enter();
        info!("media shard listening");
        let mut events = Events::with_capacity(256);
        let mut recv = RecvBatch::default();
        loop {
            let now = Instant::now();
            let next = match (self.timers.next(), self.next_mix()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wait = next.map_or(IDLE_WAIT, |t| t.saturating_duration_since(now)).min(IDLE_WAIT);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!(error = %e, "poll failed");
                }
                continue;
            }
            let started = Instant::now();
            let mut socket_ready = false;
            let mut rtp_ready = Vec::new();
            for event in events.iter() {
                match event.token() {
                    SOCKET => socket_ready = true,
                    WAKER => {}
                    Token(t) => rtp_ready.push(t - FIRST_RTP_FLOOR),
                }
            }
            if !self.handle_commands() {
                break;
            }
            if socket_ready {
                self.read_socket(&mut recv);
            }
            for floor in rtp_ready {
                self.read_rtp_floor(floor, &mut recv);
            }
            // Timers can surface publishers' packets, whose fan-out sets new (due) timers.
            self.run_mixers(Instant::now());
            loop {
                let now = Instant::now();
                self.fire_timers(now);
                if self.sources.is_empty() {
                    break;
                }
                self.route_sources(now);
            }
            self.flush();
            self.counters.busy += started.elapsed();
            self.counters.loops += 1;
        }
        info!("media shard stopped");
    }

    fn flush(&mut self) {
        self.send.flush(&self.socket);
        let (packets, bytes, dropped) = self.send.take_counts();
        self.counters.packets_out += packets;
        self.counters.bytes_out += bytes;
        self.counters.dropped += dropped;
    }

    // ---- commands -------------------------------------------------------------------------

    /// False when the shard must stop.
    fn handle_commands(&mut self) -> bool {
        while let Ok(command) = self.rx.try_recv() {
            match command {
                Command::Join { event, session, join, offer, reply } => {
                    let _ = reply.send(self.add_peer(event, session, join, &offer));
                }
                Command::Switch { session, track, language, reply } => {
                    let _ = reply.send(self.switch(&session, track, &language));
                }
                Command::SetOnAir { event, language, on_air } => {
                    if let Some(media) = self.events.get_mut(&event)
                        && let Some(channel) = media.router.channel(&language)
                    {
                        media.router.set_on_air(channel, on_air);
                    }
                }
                Command::End { session, reply } => {
                    let result = match self.by_session.get(&session).copied() {
                        Some(slot) => {
                            self.remove_peer(slot, "ended by request");
                            Ok(())
                        }
                        None => Err(NetError::UnknownSession(session)),
                    };
                    let _ = reply.send(result);
                }
                Command::EndEvent { event } => self.end_event(&event),
                Command::OpenRtpFloor { event, socket, reply } => {
                    let _ = reply.send(self.open_rtp_floor(event, socket));
                }
                Command::Source(packet) => self.deliver(&packet, Instant::now()),
                Command::PrepareEvent(layout) => {
                    // A changed event (PATCH) takes its new layout while nobody is connected to it.
                    if self
                        .events
                        .get(&layout.id)
                        .is_some_and(|m| m.layout != layout && m.subscribers.is_empty())
                    {
                        self.events.remove(&layout.id);
                    }
                    self.event_media(&layout);
                }
                Command::Stats { reply } => {
                    let _ = reply.send(self.stats());
                }
                Command::Shutdown => return false,
            }
            // Keep latency low while commands pile up: send what routing produced so far.
            if self.send.len() >= udp::BATCH {
                self.flush();
            }
        }
        true
    }

    fn event_media(&mut self, layout: &Arc<EventLayout>) -> &mut EventMedia {
        let mixes = layout.mix.is_some() && mixing_shard(&layout.id, self.others.len() + 1) == self.index;
        let (index, inputs) = (self.index, &self.inputs);
        self.events.entry(layout.id.clone()).or_insert_with(|| {
            let mixer = layout.mix.filter(|_| mixes).and_then(|settings| {
                let base = inputs.fetch_add(256, Ordering::Relaxed);
                Mixer::new(layout.id.clone(), settings, base)
                    .inspect_err(|e| warn!(shard = index, error = %e, "mix mode unavailable"))
                    .ok()
            });
            if mixer.is_some() {
                info!(event = %layout.id, "mixing this event on this shard");
            }
            EventMedia::new(layout.clone(), mixer)
        })
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

    fn next_mix(&self) -> Option<Instant> {
        self.events.values().filter_map(|m| m.mixer.as_ref()?.next_tick()).min()
    }

    fn add_peer(
        &mut self,
        layout: Arc<EventLayout>,
        session: SessionId,
        join: Join,
        offer: &str,
    ) -> Result<String, NetError> {
        let now = Instant::now();
        let mut accepted = peer::accept(now, self.candidate, offer)?;
        let span = info_span!(parent: None, "session", session = %session, event = %layout.id);
        let media = self.event_media(&layout);
        let channel = |language: &Language| {
            media.router.channel(language).ok_or_else(|| NetError::UnknownLanguage(language.clone()))
        };
        let (role, kind) = match &join {
            Join::Floor { input } | Join::Booth { input, .. } => {
                if !accepted.receives() {
                    return Err(NetError::Unsupported(
                        "the offer has no Opus audio section that sends (WHIP needs a=sendonly or a=sendrecv audio with Opus)".into(),
                    ));
                }
                match &join {
                    Join::Booth { interpreter, listen_to, booth, .. } => {
                        let tracks =
                            accepted.booth_tracks(channel(listen_to)?, channel(booth)?, *interpreter);
                        let source = Source::Booth(*interpreter);
                        (
                            PeerRole::Publisher { source, input: *input, tracks },
                            SessionKind::Booth(*interpreter),
                        )
                    }
                    _ => (
                        PeerRole::Publisher { source: Source::Floor, input: *input, tracks: Vec::new() },
                        SessionKind::FloorPublisher,
                    ),
                }
            }
            Join::Listen { language } => {
                let tracks = accepted.listener_tracks(channel(language)?)?;
                (PeerRole::Listener { tracks }, SessionKind::Listener)
            }
        };

        let slot = self.free.pop().unwrap_or_else(|| {
            self.peers.push(None);
            self.generations.push(0);
            (self.peers.len() - 1) as u32
        });
        let key = PeerKey { slot, generation: self.generations[slot as usize] };
        for t in accepted.transmits.drain(..) {
            self.send.push(t.destination, t.contents.into());
        }
        let media = self.event_media(&layout);
        for (i, track) in role.tracks().iter().enumerate() {
            media.subscribers.add(track.channel, (slot, i as u8));
        }
        if let (PeerRole::Listener { tracks }, SessionKind::Listener) = (&role, kind)
            && let Some(first) = tracks.first()
        {
            media.listeners[first.channel] += 1;
        }
        span.in_scope(|| info!(?kind, "session created"));
        self.by_session.insert(session.clone(), slot);
        self.by_ufrag.insert(accepted.ufrag.clone(), slot);
        self.sessions
            .insert(session.clone(), SessionEntry { shard: self.index, event: layout.id.clone(), kind });
        let timeout = accepted.timeout;
        let answer = std::mem::take(&mut accepted.answer);
        self.peers[slot as usize] = Some(Peer::new(key, session, layout.id.clone(), accepted, role, span));
        self.timers.schedule(timeout, key, Wake::Engine);
        self.timers.schedule(now + self.connect_timeout, key, Wake::ConnectDeadline);
        Ok(answer)
    }

    /// Move one track of a session to another channel of its event: the track's own line
    /// continues, so the listener hears the new channel from the next packet, without
    /// renegotiation.
    fn switch(&mut self, session: &SessionId, track: usize, language: &Language) -> Result<(), NetError> {
        let slot = *self.by_session.get(session).ok_or_else(|| NetError::UnknownSession(session.clone()))?;
        let Some(peer) = self.peers.get_mut(slot as usize).and_then(Option::as_mut) else {
            return Err(NetError::UnknownSession(session.clone()));
        };
        let media =
            self.events.get_mut(&peer.event).ok_or_else(|| NetError::UnknownSession(session.clone()))?;
        let to = media.router.channel(language).ok_or_else(|| NetError::UnknownLanguage(language.clone()))?;
        let listener = matches!(peer.role, PeerRole::Listener { .. });
        let (PeerRole::Listener { tracks } | PeerRole::Publisher { tracks, .. }) = &mut peer.role;
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

    fn remove_peer(&mut self, slot: u32, why: &str) {
        let Some(peer) = self.peers.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        peer.span.in_scope(|| info!(why, "session ended"));
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.by_session.remove(&peer.session);
        self.by_ufrag.remove(&peer.ufrag);
        for addr in &peer.remotes {
            if self.by_addr.get(addr) == Some(&slot) {
                self.by_addr.remove(addr);
            }
        }
        if let Some(media) = self.events.get_mut(&peer.event) {
            for (i, track) in peer.role.tracks().iter().enumerate() {
                media.subscribers.remove(track.channel, (slot, i as u8));
            }
            if let PeerRole::Listener { tracks } = &peer.role
                && let Some(first) = tracks.first()
            {
                media.listeners[first.channel] = media.listeners[first.channel].saturating_sub(1);
            }
        }
        let kind = self.sessions.remove(&peer.session).map(|(_, e)| e.kind);
        if let Some(notes) = &self.notes {
            let _ = notes.send(MediaNote::SessionEnded {
                session: peer.session.clone(),
                event: peer.event.clone(),
                kind,
            });
        }
    }

    fn end_event(&mut self, event: &EventId) {
        let slots: Vec<u32> =
            self.peers.iter().flatten().filter(|p| &p.event == event).map(|p| p.key.slot).collect();
        for slot in slots {
            self.remove_peer(slot, "event ended");
        }
        for entry in &mut self.rtp_floors {
            if entry.as_ref().is_some_and(|f| &f.event == event)
                && let Some(mut floor) = entry.take()
            {
                let _ = self.poll.registry().deregister(&mut floor.socket);
            }
        }
        self.events.remove(event);
    }

    fn open_rtp_floor(
        &mut self,
        layout: Arc<EventLayout>,
        socket: std::net::UdpSocket,
    ) -> Result<(), NetError> {
        let addr = socket.local_addr().map_err(|e| NetError::Rtc(e.to_string()))?;
        let mut socket = UdpSocket::from_std(socket);
        let index = self.rtp_floors.iter().position(Option::is_none).unwrap_or_else(|| {
            self.rtp_floors.push(None);
            self.rtp_floors.len() - 1
        });
        self.poll
            .registry()
            .register(&mut socket, Token(FIRST_RTP_FLOOR + index), Interest::READABLE)
            .map_err(|source| NetError::Bind { addr, source })?;
        self.event_media(&layout);
        info!(event = %layout.id, %addr, "RTP floor open");
        self.rtp_floors[index] = Some(RtpFloor {
            event: layout.id.clone(),
            socket,
            ssrc: None,
            input: 0,
            extender: SeqExtender::default(),
        });
        Ok(())
    }

    fn stats(&self) -> ShardStats {
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
            index: self.index,
            peers: self.by_session.len(),
            settled: self.peers.iter().flatten().filter(|p| p.settled.is_some()).count(),
            channels,
            packets_in: self.counters.packets_in,
            bytes_in: self.counters.bytes_in,
            packets_out: self.counters.packets_out,
            bytes_out: self.counters.bytes_out,
            packets_dropped: self.counters.dropped,
            packets_direct: self.counters.direct,
            busy_seconds: self.counters.busy.as_secs_f64(),
            loops: self.counters.loops,
        }
    }

    // ---- network input --------------------------------------------------------------------

    fn read_socket(&mut self, recv: &mut RecvBatch) {
        loop {
            let received = match udp::recv_batch(&self.socket, recv) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "receive failed");
                    break;
                }
            };
            let now = Instant::now();
            for (source, data) in recv.iter() {
                self.counters.packets_in += 1;
                self.counters.bytes_in += data.len() as u64;
                self.handle_datagram(now, source, data);
            }
            self.route_sources(now);
            if received < udp::BATCH {
                break;
            }
        }
    }

    fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let slot = match self.by_addr.get(&source) {
            Some(slot) => *slot,
            None => {
                // A new address: only a STUN binding request naming one of our peers opens it.
                let Some(slot) = StunMessage::parse(data)
                    .ok()
                    .and_then(|m| m.split_username().map(|(local, _)| local.to_owned()))
                    .and_then(|ufrag| self.by_ufrag.get(&ufrag).copied())
                else {
                    debug!(%source, "datagram from an unknown address dropped");
                    return;
                };
                self.by_addr.insert(source, slot);
                if let Some(peer) = self.peers[slot as usize].as_mut() {
                    peer.remotes.push(source);
                }
                slot
            }
        };
        let Some(peer) = self.peers.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(settled) = peer.settled.as_mut() {
            if let SettledInput::Answer(answer) = settled.input(now, source, data) {
                self.send.push(source, answer);
            }
            return;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.candidate, data) else {
            debug!(%source, "datagram that is not STUN, DTLS or (S)RTP dropped");
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else { return };
        if let Err(e) = rtc.handle_input(Input::Receive(now, receive)) {
            peer.span.in_scope(|| debug!(error = %e, "input rejected"));
        }
        self.drain(slot);
    }

    fn read_rtp_floor(&mut self, index: usize, recv: &mut RecvBatch) {
        loop {
            let Some(floor) = self.rtp_floors.get_mut(index).and_then(Option::as_mut) else {
                return;
            };
            let received = match udp::recv_batch(&floor.socket, recv) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "RTP floor receive failed");
                    break;
                }
            };
            let now = Instant::now();
            for (source, data) in recv.iter() {
                self.counters.packets_in += 1;
                self.counters.bytes_in += data.len() as u64;
                let packet = match plain_rtp::parse(data) {
                    Ok(p) => p,
                    Err(e) => {
                        debug!(%source, error = %e, "RTP floor datagram dropped");
                        continue;
                    }
                };
                if floor.ssrc != Some(packet.ssrc) {
                    // A new sender (or a restarted one): a new input line.
                    floor.ssrc = Some(packet.ssrc);
                    floor.input = self.inputs.fetch_add(1, Ordering::Relaxed);
                    floor.extender = SeqExtender::default();
                    info!(event = %floor.event, ssrc = packet.ssrc, %source, "RTP floor sender");
                }
                self.sources.push(Arc::new(SourcePacket {
                    event: floor.event.clone(),
                    source: Source::Floor,
                    input: floor.input,
                    seq: floor.extender.extend(packet.seq),
                    ts: packet.timestamp,
                    marker: packet.marker,
                    payload: packet.payload.into(),
                    received_at: now,
                }));
            }
            self.route_sources(now);
            if received < udp::BATCH {
                break;
            }
        }
    }

    // ---- peers ----------------------------------------------------------------------------

    /// Drain a peer's output after a mutation; removes it when it has died.
    fn drain(&mut self, slot: u32) {
        let Some(peer) = self.peers.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(why) = peer.drain(&mut self.send, &mut self.timers, &mut self.sources) {
            self.remove_peer(slot, why);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((at, key, wake)) = self.timers.pop_due(now) {
            let Some(peer) = self.peers.get_mut(key.slot as usize).and_then(Option::as_mut) else { continue };
            if peer.key != key {
                continue; // the slot was reused
            }
            match wake {
                Wake::ConnectDeadline => {
                    if !peer.connected {
                        self.remove_peer(key.slot, "did not connect in time");
                    }
                }
                Wake::Engine => {
                    if peer.scheduled != Some(at) {
                        continue; // superseded by an earlier deadline
                    }
                    peer.scheduled = None;
                    if peer.timeout > now {
                        peer.scheduled = Some(peer.timeout);
                        self.timers.schedule(peer.timeout, key, Wake::Engine);
                        continue;
                    }
                    let Some(rtc) = peer.rtc.as_mut() else { continue };
                    if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                        peer.span.in_scope(|| debug!(error = %e, "timeout input rejected"));
                    }
                    self.drain(key.slot);
                }
                Wake::Settle => {
                    if peer.settle(now) {
                        self.timers.schedule(now + CONSENT_TIMEOUT, key, Wake::Consent);
                    }
                }
                Wake::Consent => match &peer.settled {
                    Some(settled) if settled.lapsed(now) => self.remove_peer(key.slot, "ICE consent lapsed"),
                    Some(settled) => {
                        let at = settled.last_consent + CONSENT_TIMEOUT + Duration::from_millis(1);
                        self.timers.schedule(at, key, Wake::Consent);
                    }
                    None => {}
                },
            }
        }
    }

    // ---- media ----------------------------------------------------------------------------

    /// Route what publishers and RTP floors produced: locally, and to every other shard.
    fn route_sources(&mut self, now: Instant) {
        let sources = std::mem::take(&mut self.sources);
        for packet in &sources {
            for other in &self.others {
                let _ = other.send(Command::Source(packet.clone()));
            }
            self.deliver(packet, now);
        }
        self.sources = sources;
        self.sources.clear();
    }

    /// Fan one source packet out to this shard's listeners of every channel it is heard on.
    fn deliver(&mut self, packet: &SourcePacket, now: Instant) {
        let Some(media) = self.events.get_mut(&packet.event) else {
            return;
        };
        if let Some(mixer) = media.mixer.as_mut()
            && let Err(e) = mixer.push(packet, now)
        {
            warn!(event = %packet.event, error = %e, "mixer input failed");
        }
        let mut dead = Vec::new();
        self.routed.clear();
        media.router.route(packet, now, &mut self.routed);
        for (channel, out) in &self.routed {
            for &(slot, track) in media.subscribers.of(*channel) {
                let Some(peer) = self.peers.get_mut(slot as usize).and_then(Option::as_mut) else {
                    continue;
                };
                if let Some(me) = peer.role.tracks().get(usize::from(track)).and_then(|t| t.partner_of)
                    && media.router.on_air(*channel).is_none_or(|o| o.interpreter == me)
                {
                    continue; // a partner track carries only a partner's voice
                }
                match peer.write(usize::from(track), *channel, out, now, &mut self.send) {
                    Written::Engine => {}
                    Written::Direct => {
                        self.counters.direct += 1;
                        continue;
                    }
                    Written::Nothing => continue,
                }
                if let Some(why) = peer.drain(&mut self.send, &mut self.timers, &mut self.sources) {
                    dead.push((slot, why));
                }
            }
        }
        for (slot, why) in dead {
            self.remove_peer(slot, why);
        }
        if self.send.len() >= udp::BATCH * 4 {
            self.flush();
        }
    }
}
