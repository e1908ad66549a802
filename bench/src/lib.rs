//! Fixtures for Tolk's criterion benchmarks.
//!
//! [`Fanout`] is a shard's worth of listener peers, built the way the relay builds them
//! ([`peer::accept`], [`Peer::new`]) and connected (ICE + DTLS) in memory against str0m clients
//! on simulated time, so that no socket takes part in the handshakes. What the benchmarks then
//! measure is the relay's per-listener hot path: [`Peer::write`] (RTP rewrite onto the listener's
//! own line), [`Peer::drain`] (SRTP protect, into a [`SendBatch`]) and, in one variant,
//! [`SendBatch::flush`] (`sendmmsg` to a real UDP socket on 127.0.0.1).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tolk_relay::ids::{EventId, SessionId};
use tolk_relay::media::router::ChannelIndex;
use tolk_relay::media::{ChannelPacket, SourcePacket};
use tolk_relay::net::peer::{self, Peer, PeerRole};
use tolk_relay::net::timers::{PeerKey, Timers};
use tolk_relay::net::udp::{self, SendBatch};

/// Size of the benchmark's Opus payload: a 20 ms mono voice frame at about 32 kbit/s.
pub const PAYLOAD_BYTES: usize = 80;
/// One 20 ms Opus frame in RTP ticks.
pub const FRAME_TICKS: u32 = 960;
/// The shard's `deliver` flushes its send batch once it holds this many datagrams.
pub const FLUSH_AT: usize = udp::BATCH * 4;

/// Handshake steps (deliveries or timeouts) after which a pair is declared stuck.
const MAX_STEPS: usize = 10_000;
/// The longest simulated-time jump while a handshake is idle.
const MAX_IDLE_STEP: Duration = Duration::from_millis(100);

/// An Opus-like payload: a plausible TOC byte (CELT-only fullband 20 ms, mono) and filler.
pub fn opus_payload() -> Arc<[u8]> {
    let mut state: u32 = 0x1234_5678;
    let mut payload = vec![0xfc_u8; PAYLOAD_BYTES];
    for byte in payload.iter_mut().skip(1) {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *byte = (state >> 24) as u8;
    }
    payload.into()
}

/// What [`Fanout::round`] does with the datagrams the peers produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Drop them unsent (a fresh [`SendBatch`] replaces the full one): write + SRTP only.
    Discard,
    /// `sendmmsg` them to the sink, as the shard does.
    Send,
}

/// How a [`Fanout`] was set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Wall time of all the handshakes (peer creation, ICE, DTLS), on `threads` threads.
    pub handshakes: Duration,
    pub threads: usize,
    /// How far simulated time ran ahead of the clock, which we then waited out.
    pub waited: Duration,
}

/// Counters over the life of a [`Fanout`]: all but `sent` should stay 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub sent: u64,
    /// Datagrams the kernel refused at the sender (a full socket buffer). Drops at the sink's
    /// full receive buffer are not seen here: `sendmmsg` succeeds for those.
    pub dropped: u64,
    /// `Peer::write` calls that wrote nothing.
    pub not_written: u64,
    /// Peers whose `drain` reported them dead.
    pub died: u64,
}

/// N connected listener peers on one channel, and what a shard keeps around them.
pub struct Fanout {
    pub peers: Vec<Peer>,
    pub channel: ChannelIndex,
    /// The socket the peers send from (their ICE candidate address).
    pub socket: UdpSocket,
    /// Every listener's address: a bound socket that nobody reads (the kernel drops what does
    /// not fit in its receive buffer).
    pub sink: UdpSocket,
    pub send: SendBatch,
    pub timers: Timers,
    pub sources: Vec<Arc<SourcePacket>>,
    pub setup: Setup,
    pub counters: Counters,
    payload: Arc<[u8]>,
    seq: u64,
    ts: u32,
}

impl Fanout {
    /// Build `n` listener peers on `channel` and connect each to its own in-memory client.
    /// Handshakes run on up to `threads` threads.
    pub fn connect(n: usize, channel: ChannelIndex, threads: usize) -> anyhow::Result<Self> {
        let sink = UdpSocket::bind("127.0.0.1:0").context("binding the sink socket")?;
        let socket = UdpSocket::bind("127.0.0.1:0").context("binding the relay socket")?;
        socket.set_nonblocking(true)?;
        let server_addr = socket.local_addr()?;
        let client_addr = sink.local_addr()?;
        let event = EventId::parse("bench")?;

        let threads = threads.clamp(1, n.max(1));
        let started = Instant::now();
        let chunks: Vec<anyhow::Result<(Vec<Peer>, Instant)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let range = (n * t / threads)..(n * (t + 1) / threads);
                    let event = &event;
                    scope.spawn(move || {
                        let mut peers = Vec::with_capacity(range.len());
                        let mut latest = Instant::now();
                        for slot in range {
                            let (peer, done) =
                                connect_listener(slot, event, channel, server_addr, client_addr)
                                    .with_context(|| format!("listener {slot}"))?;
                            peers.push(peer);
                            latest = latest.max(done);
                        }
                        Ok((peers, latest))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a handshake thread panicked"))))
                .collect()
        });
        let handshakes = started.elapsed();
        let mut peers = Vec::with_capacity(n);
        let mut latest = Instant::now();
        for chunk in chunks {
            let (chunk, done) = chunk?;
            peers.extend(chunk);
            latest = latest.max(done);
        }

        // The handshakes ran on simulated time, which may be ahead of the clock: wait until it is
        // not, so that the real `now` of the measurement never goes backwards for a peer.
        let waited = latest.saturating_duration_since(Instant::now());
        std::thread::sleep(waited);

        let mut fanout = Self {
            peers,
            channel,
            socket,
            sink,
            send: SendBatch::default(),
            timers: Timers::default(),
            sources: Vec::new(),
            setup: Setup { handshakes, threads, waited },
            counters: Counters::default(),
            payload: opus_payload(),
            seq: 1,
            ts: 0,
        };
        fanout.catch_up()?;
        fanout.check()?;
        Ok(fanout)
    }

    /// Bring every peer's engine to the real clock (as a shard's timer would) and send whatever
    /// that produced.
    fn catch_up(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        for peer in &mut self.peers {
            peer.rtc.handle_input(Input::Timeout(now))?;
            if let Some(why) = peer.drain(&mut self.send, &mut self.timers, &mut self.sources) {
                bail!("listener {} died after connecting: {why}", peer.key.slot);
            }
            if self.send.len() >= FLUSH_AT {
                self.send.flush(&self.socket);
            }
        }
        self.send.flush(&self.socket);
        self.send.take_counts();
        Ok(())
    }

    /// One round must give one datagram per listener, and nothing else.
    fn check(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let packet = self.next_packet(now);
        let mut produced = 0;
        for peer in &mut self.peers {
            if !peer.write(0, self.channel, &packet, now) {
                bail!("listener {} did not write the packet", peer.key.slot);
            }
            let before = (peer.timeout, peer.scheduled, self.timers.len());
            if let Some(why) = peer.drain(&mut self.send, &mut self.timers, &mut self.sources) {
                bail!("listener {} died: {why}", peer.key.slot);
            }
            eprintln!(
                "now={now:?} before={before:?} after: timeout={:?} scheduled={:?} timers={} sent={}",
                peer.timeout,
                peer.scheduled,
                self.timers.len(),
                self.send.len()
            );
            let later = Instant::now();
            peer.rtc.handle_input(Input::Timeout(later))?;
            peer.drain(&mut self.send, &mut self.timers, &mut self.sources);
            eprintln!("after Timeout({later:?}): timeout={:?} sent={}", peer.timeout, self.send.len());
            produced += self.send.len();
            self.send = SendBatch::default();
        }
        if produced != self.peers.len() {
            bail!("one packet to {} listeners gave {produced} datagrams", self.peers.len());
        }
        if !self.sources.is_empty() {
            bail!("listeners produced source packets");
        }
        Ok(())
    }

    /// The next packet on the channel: seq + 1, ts + one frame.
    pub fn next_packet(&mut self, now: Instant) -> ChannelPacket {
        self.seq += 1;
        self.ts = self.ts.wrapping_add(FRAME_TICKS);
        ChannelPacket {
            seq: self.seq,
            ts: self.ts,
            marker: false,
            payload: self.payload.clone(),
            received_at: now,
        }
    }

    /// Deliver one channel packet to every listener as the shard's `deliver` does: write and
    /// drain each peer, release the batch whenever it holds [`FLUSH_AT`] datagrams, and once at
    /// the end. Returns how many datagrams were produced.
    pub fn round(&mut self, release: Release) -> usize {
        let now = Instant::now();
        let packet = self.next_packet(now);
        let mut produced = 0;
        for peer in &mut self.peers {
            if !peer.write(0, self.channel, &packet, now) {
                self.counters.not_written += 1;
                continue;
            }
            if peer.drain(&mut self.send, &mut self.timers, &mut self.sources).is_some() {
                self.counters.died += 1;
            }
            if self.send.len() >= FLUSH_AT {
                produced += self.send.len();
                release_batch(release, &mut self.send, &self.socket, &mut self.counters);
            }
        }
        produced += self.send.len();
        release_batch(release, &mut self.send, &self.socket, &mut self.counters);
        produced
    }
}

fn release_batch(release: Release, send: &mut SendBatch, socket: &UdpSocket, counters: &mut Counters) {
    match release {
        Release::Discard => *send = SendBatch::default(),
        Release::Send => {
            send.flush(socket);
            let (sent, _, dropped) = send.take_counts();
            counters.sent += sent;
            counters.dropped += dropped;
        }
    }
}

/// One listener: a client offer (one recvonly Opus section), the relay's `accept` and `Peer`,
/// then ICE and DTLS in memory. Returns the connected peer and the simulated time it ended at.
fn connect_listener(
    slot: usize,
    event: &EventId,
    channel: ChannelIndex,
    server_addr: SocketAddr,
    client_addr: SocketAddr,
) -> anyhow::Result<(Peer, Instant)> {
    let now = Instant::now();
    let mut client = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(now);
    client.add_local_candidate(Candidate::host(client_addr, "udp")?);
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().context("the client made no offer")?;

    let mut accepted = peer::accept(now, server_addr, &offer.to_sdp_string())?;
    let answer = str0m::change::SdpAnswer::from_sdp_string(&accepted.answer)?;
    client.sdp_api().accept_answer(pending, answer)?;
    let initial = std::mem::take(&mut accepted.transmits);
    let tracks = accepted.listener_tracks(channel)?;
    let key = PeerKey { slot: u32::try_from(slot)?, generation: 0 };
    let mut peer = Peer::new(
        key,
        SessionId::generate(),
        event.clone(),
        accepted,
        PeerRole::Listener { tracks },
        tracing::Span::none(),
    );
    let done = handshake(&mut client, &mut peer, now, initial)?;
    Ok((peer, done))
}

/// Run ICE and DTLS between `client` and the server peer, handing every transmit straight to the
/// other side, and jumping simulated time to the next deadline when both are idle.
fn handshake(
    client: &mut Rtc,
    peer: &mut Peer,
    mut now: Instant,
    initial: Vec<Transmit>,
) -> anyhow::Result<Instant> {
    let mut to_client = initial;
    let mut to_server = Vec::new();
    let (mut client_up, mut server_up) = (false, false);
    for _ in 0..MAX_STEPS {
        let client_next = poll(client, &mut to_server, &mut client_up)?;
        let server_next = poll(&mut peer.rtc, &mut to_client, &mut server_up)?;
        if to_client.is_empty() && to_server.is_empty() {
            if client_up && server_up {
                // What `Peer::drain` would have recorded, and no timer pending (as after a
                // shard's timer fired): the next drain schedules the peer's deadline.
                peer.connected = true;
                peer.timeout = server_next;
                peer.scheduled = None;
                return Ok(now);
            }
            now = client_next.min(server_next).clamp(now, now + MAX_IDLE_STEP);
            client.handle_input(Input::Timeout(now))?;
            peer.rtc.handle_input(Input::Timeout(now))?;
            continue;
        }
        for t in to_server.drain(..) {
            let receive = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)?;
            peer.rtc.handle_input(Input::Receive(now, receive))?;
        }
        for t in to_client.drain(..) {
            let receive = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)?;
            client.handle_input(Input::Receive(now, receive))?;
        }
    }
    bail!("no connection after {MAX_STEPS} steps (client connected: {client_up}, server: {server_up})")
}

/// Poll an engine until it asks for a deadline: transmits to `out`, `Connected` to `up`.
fn poll(rtc: &mut Rtc, out: &mut Vec<Transmit>, up: &mut bool) -> anyhow::Result<Instant> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => out.push(t),
            Output::Event(Event::Connected) => *up = true,
            Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                bail!("ICE disconnected during the handshake")
            }
            Output::Event(_) => {}
        }
    }
}
