//! Fixtures for Tolk's criterion benchmarks.
//!
//! [`Fanout`] is a shard's worth of listener peers, built the way the relay builds them
//! ([`peer::accept`], [`Peer::new`]) and connected (ICE + DTLS) in memory to str0m clients, so
//! that no socket takes part in the handshakes. [`Fanout::round`] then runs the relay's hot path
//! for one channel packet as one turn of a shard's loop does it:
//!
//! 1. `deliver`: for each listener [`Peer::write`] (rebase onto the listener's own RTP line,
//!    queue in str0m, then `Input::Timeout(now)`, without which str0m 0.25 does not release a
//!    written packet) and [`Peer::drain`] (str0m builds the RTP packet and SRTP-protects it into
//!    the [`SendBatch`]; the peer's next deadline goes into the shard's [`Timers`]);
//! 2. `fire_timers`: peers whose deadline is due get `Input::Timeout(now)` and are drained (str0m's
//!    own periodic work: RTCP, ICE; with the relay as it is, not the media packets);
//! 3. the loop turn's [`SendBatch::flush`] (`sendmmsg` to a UDP socket on 127.0.0.1), or, in the
//!    [`Release::Discard`] variant, dropping the batch unsent.
//!
//! The clients stay in memory: between measured stretches, [`Fanout::keepalive`] lets them send
//! their ICE consent checks to the relay peers (an ICE-lite peer drops a pair that has had no
//! binding request for 15 s) and hands the answers back.

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
use tolk_relay::net::peer::{self, Peer, PeerRole, Written};
use tolk_relay::net::timers::{PeerKey, Timers, Wake};
use tolk_relay::net::udp::{self, SendBatch};

/// Size of the benchmark's Opus payload: a 20 ms mono voice frame at about 32 kbit/s.
pub const PAYLOAD_BYTES: usize = 80;
/// One 20 ms Opus frame in RTP ticks.
pub const FRAME_TICKS: u32 = 960;
/// The packet interval of one channel.
pub const FRAME: Duration = Duration::from_millis(20);
/// The shard's `deliver` flushes its send batch once it holds this many datagrams.
pub const FLUSH_AT: usize = udp::BATCH * 4;

/// Steps (deliveries or timeouts) after which a handshake or an exchange is declared stuck.
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
    /// Drop them unsent (a fresh [`SendBatch`] replaces the full one): everything but `sendmmsg`.
    Discard,
    /// `sendmmsg` them to the sink, as the shard does at the end of its loop turn.
    Send,
}

/// The time rounds run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `Instant::now()`, read where the shard reads it (once for `deliver`, once for the timers).
    /// Rounds run back to back, far faster than one per 20 ms, so str0m's periodic work (RTCP
    /// reports, timer entries) is spread over more packets than in a relay.
    Wall,
    /// A clock that advances one frame (20 ms) per round, as a live channel does: per-packet
    /// shares of periodic work are those of a relay.
    Simulated,
}

/// Who builds and protects each listener's packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPath {
    /// Tolk: RTP header, its own SRTP from the DTLS-exported keys, into the batch (what the
    /// shard does once a peer's keys are known).
    Direct,
    /// str0m: `write_rtp`, then `Input::Timeout(now)` so it sends, then `drain` (the path
    /// before keys are known, and the only one before Tolk had its own SRTP).
    Engine,
}

/// How a [`Fanout`] was set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Wall time of all the handshakes (peer creation, ICE, DTLS), on `threads` threads.
    pub handshakes: Duration,
    pub threads: usize,
    /// How far simulated handshake time ran ahead of the clock, which we then waited out.
    pub waited: Duration,
}

/// Counters over the life of a [`Fanout`]: `rounds`, `datagrams` and `sent` count work; the
/// others should stay 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub rounds: u64,
    /// Datagrams the peers produced in rounds (one RTP packet per listener, plus any RTCP).
    pub datagrams: u64,
    pub sent: u64,
    /// Datagrams the kernel refused at the sender (a full socket buffer). Drops at the sink's
    /// full receive buffer are not seen here: `sendmmsg` succeeds for those.
    pub dropped: u64,
    /// `Peer::write` calls that wrote nothing.
    pub not_written: u64,
    /// Peers whose `drain` reported them dead, and `Input::Timeout`s str0m refused.
    pub died: u64,
    pub timeout_errors: u64,
}

/// N connected listener peers on one channel, their clients, and what a shard keeps around them.
pub struct Fanout {
    pub peers: Vec<Peer>,
    /// The client of each peer (same index); only used by [`Fanout::keepalive`].
    pub clients: Vec<Rtc>,
    pub channel: ChannelIndex,
    /// The socket the peers send from (their ICE candidate address).
    pub socket: UdpSocket,
    /// Every client's address: a bound socket that nobody reads (the kernel drops what does not
    /// fit in its receive buffer).
    pub sink: UdpSocket,
    pub send: SendBatch,
    pub timers: Timers,
    pub sources: Vec<Arc<SourcePacket>>,
    pub clock: Clock,
    pub setup: Setup,
    pub counters: Counters,
    /// The simulated clock (also the latest time any engine has seen).
    now: Instant,
    payload: Arc<[u8]>,
    seq: u64,
    ts: u32,
    exchange: Exchange,
}

impl Fanout {
    /// Build `n` listener peers on `channel` and connect each to its own in-memory client.
    /// Handshakes run on up to `threads` threads.
    pub fn connect(
        n: usize,
        channel: ChannelIndex,
        threads: usize,
        clock: Clock,
        path: SendPath,
    ) -> anyhow::Result<Self> {
        let sink = UdpSocket::bind("127.0.0.1:0").context("binding the sink socket")?;
        let socket = UdpSocket::bind("127.0.0.1:0").context("binding the relay socket")?;
        socket.set_nonblocking(true)?;
        let server_addr = socket.local_addr()?;
        let client_addr = sink.local_addr()?;
        let event = EventId::parse("bench")?;

        let threads = threads.clamp(1, n.max(1));
        let started = Instant::now();
        type Chunk = (Vec<Peer>, Vec<Rtc>, Instant);
        let chunks: Vec<anyhow::Result<Chunk>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let range = (n * t / threads)..(n * (t + 1) / threads);
                    let event = &event;
                    scope.spawn(move || {
                        let mut peers = Vec::with_capacity(range.len());
                        let mut clients = Vec::with_capacity(range.len());
                        let mut latest = Instant::now();
                        let mut exchange = Exchange::default();
                        for slot in range {
                            let (peer, client, done) = connect_listener(
                                slot,
                                event,
                                channel,
                                server_addr,
                                client_addr,
                                &mut exchange,
                            )
                            .with_context(|| format!("listener {slot}"))?;
                            peers.push(peer);
                            clients.push(client);
                            latest = latest.max(done);
                        }
                        Ok((peers, clients, latest))
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
        let mut clients = Vec::with_capacity(n);
        let mut latest = Instant::now();
        for chunk in chunks {
            let (mut p, c, done) = chunk?;
            for peer in &mut p {
                match path {
                    // What `Peer::drain` records from the engine's DTLS transmits (the in-memory
                    // handshake bypasses it).
                    SendPath::Direct => peer.destination = Some(client_addr),
                    // Without the tapped keys the peer stays on str0m's send path.
                    SendPath::Engine => peer.keys = Default::default(),
                }
            }
            peers.extend(p);
            clients.extend(c);
            latest = latest.max(done);
        }

        // The handshakes ran on simulated time, which may be ahead of the clock: wait until it is
        // not, so that no engine ever sees time go backwards.
        let waited = latest.saturating_duration_since(Instant::now());
        std::thread::sleep(waited);

        let mut fanout = Self {
            peers,
            clients,
            channel,
            socket,
            sink,
            send: SendBatch::default(),
            timers: Timers::default(),
            sources: Vec::new(),
            clock,
            setup: Setup { handshakes, threads, waited },
            counters: Counters::default(),
            now: Instant::now(),
            payload: opus_payload(),
            seq: 1,
            ts: 0,
            exchange: Exchange::default(),
        };
        // Consent first: early peers' last binding request may be older than 15 s by now. Then
        // whatever timers are due, and a checked round.
        fanout.keepalive()?;
        let now = fanout.tick();
        fanout.fire_timers(now);
        fanout.release(Release::Send);
        fanout.check()?;
        fanout.counters = Counters::default();
        Ok(fanout)
    }

    /// The time of the next step: the wall clock, or the simulated clock unchanged.
    fn tick(&mut self) -> Instant {
        if self.clock == Clock::Wall {
            self.now = Instant::now();
        }
        self.now
    }

    /// One round must give at least one datagram per listener, with nobody refused or dead.
    fn check(&mut self) -> anyhow::Result<()> {
        let before = self.counters;
        let produced = self.round(Release::Discard);
        let c = self.counters;
        if produced < self.peers.len() {
            bail!("one packet to {} listeners gave {produced} datagrams", self.peers.len());
        }
        if c.not_written != before.not_written || c.died != before.died || !self.sources.is_empty() {
            bail!("a check round went wrong: {c:?}");
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

    /// Deliver one channel packet to every listener, then fire due timers and release the batch,
    /// as one turn of a shard's loop does. Returns how many datagrams were produced.
    pub fn round(&mut self, release: Release) -> usize {
        if self.clock == Clock::Simulated {
            self.now += FRAME;
        }
        let now = self.tick();
        let packet = self.next_packet(now);
        let mut produced = 0;
        // Shard::deliver
        for peer in &mut self.peers {
            // A listener's track is never a booth partner track (which the shard skips unless a
            // partner is on air); the lookup is part of the shard's per-listener work.
            if peer.role.tracks().first().and_then(|t| t.partner_of).is_some() {
                self.counters.not_written += 1;
                continue;
            }
            match peer.write(0, self.channel, &packet, now, &mut self.send) {
                Written::Nothing => {
                    self.counters.not_written += 1;
                    continue;
                }
                Written::Direct => {}
                Written::Engine => {
                    if peer.drain(&mut self.send, &mut self.timers, &mut self.sources).is_some() {
                        self.counters.died += 1;
                    }
                }
            }
            if self.send.len() >= FLUSH_AT {
                produced += self.send.len();
                release_batch(release, &mut self.send, &self.socket, &mut self.counters);
            }
        }
        // Shard::fire_timers, then the loop turn's flush.
        let now = self.tick();
        self.fire_timers(now);
        produced += self.send.len();
        self.release(release);
        self.counters.rounds += 1;
        self.counters.datagrams += produced as u64;
        produced
    }

    /// `Shard::fire_timers`: time out every due peer and drain it.
    fn fire_timers(&mut self, now: Instant) {
        while let Some((at, key, wake)) = self.timers.pop_due(now) {
            let Some(peer) = self.peers.get_mut(key.slot as usize) else { continue };
            if peer.key != key {
                continue;
            }
            match wake {
                Wake::ConnectDeadline | Wake::Settle | Wake::Consent => {}
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
                    if rtc.handle_input(Input::Timeout(now)).is_err() {
                        self.counters.timeout_errors += 1;
                    }
                    if peer.drain(&mut self.send, &mut self.timers, &mut self.sources).is_some() {
                        self.counters.died += 1;
                    }
                }
            }
        }
    }

    fn release(&mut self, release: Release) {
        release_batch(release, &mut self.send, &self.socket, &mut self.counters);
    }

    /// Let every client run its timers (ICE consent checks) and exchange what that produces with
    /// its relay peer, in memory. Not part of the hot path: call it between measured stretches,
    /// at least every few (real or simulated) seconds.
    pub fn keepalive(&mut self) -> anyhow::Result<()> {
        let now = self.tick();
        for (client, peer) in self.clients.iter_mut().zip(&mut self.peers) {
            client.handle_input(Input::Timeout(now))?;
            self.exchange.run(client, peer, now, &mut self.timers)?;
        }
        Ok(())
    }

    /// Entries in the timer heap, stale ones included.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
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

/// Reusable buffers for moving datagrams between a client and its relay peer.
#[derive(Default)]
struct Exchange {
    to_client: Vec<Transmit>,
    to_server: Vec<Transmit>,
}

impl Exchange {
    /// Hand transmits back and forth until both sides are quiet. The relay side is polled as
    /// `Peer::drain` would (its deadline goes to `timers`), but its output goes to the client.
    fn run(
        &mut self,
        client: &mut Rtc,
        peer: &mut Peer,
        now: Instant,
        timers: &mut Timers,
    ) -> anyhow::Result<()> {
        for _ in 0..MAX_STEPS {
            poll(client, &mut self.to_server, &mut false)?;
            let rtc = peer.rtc.as_deref_mut().context("a settled peer has no engine")?;
            let next = poll(rtc, &mut self.to_client, &mut false)?;
            peer.timeout = next;
            if peer.scheduled.is_none_or(|s| next < s) {
                peer.scheduled = Some(next);
                timers.schedule(next, peer.key, Wake::Engine);
            }
            if self.to_client.is_empty() && self.to_server.is_empty() {
                return Ok(());
            }
            self.deliver(client, peer, now)?;
        }
        bail!("listener {}: no end to the exchange after {MAX_STEPS} steps", peer.key.slot)
    }

    fn deliver(&mut self, client: &mut Rtc, peer: &mut Peer, now: Instant) -> anyhow::Result<()> {
        for t in self.to_server.drain(..) {
            let receive = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)?;
            peer.rtc
                .as_mut()
                .context("a settled peer has no engine")?
                .handle_input(Input::Receive(now, receive))?;
        }
        for t in self.to_client.drain(..) {
            let receive = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)?;
            client.handle_input(Input::Receive(now, receive))?;
        }
        Ok(())
    }
}

/// One listener: a client offer (one recvonly Opus section), the relay's `accept` and `Peer`,
/// then ICE and DTLS in memory. Returns the connected peer, its client and the simulated time
/// the handshake ended at.
fn connect_listener(
    slot: usize,
    event: &EventId,
    channel: ChannelIndex,
    server_addr: SocketAddr,
    client_addr: SocketAddr,
    exchange: &mut Exchange,
) -> anyhow::Result<(Peer, Rtc, Instant)> {
    let mut now = Instant::now();
    let mut client = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(now);
    client.add_local_candidate(Candidate::host(client_addr, "udp")?);
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().context("the client made no offer")?;

    let mut accepted = peer::accept(now, server_addr, &offer.to_sdp_string())?;
    let answer = str0m::change::SdpAnswer::from_sdp_string(&accepted.answer)?;
    client.sdp_api().accept_answer(pending, answer)?;
    exchange.to_client = std::mem::take(&mut accepted.transmits);
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

    // ICE and DTLS: hand every transmit straight to the other side; when both are idle, jump
    // simulated time to the next deadline.
    let (mut client_up, mut server_up) = (false, false);
    for _ in 0..MAX_STEPS {
        let client_next = poll(&mut client, &mut exchange.to_server, &mut client_up)?;
        let rtc = peer.rtc.as_deref_mut().context("a new peer has its engine")?;
        let server_next = poll(rtc, &mut exchange.to_client, &mut server_up)?;
        if exchange.to_client.is_empty() && exchange.to_server.is_empty() {
            if client_up && server_up {
                // What `Peer::drain` would have recorded, and no timer pending (as after a
                // shard's timer fired): the next drain schedules the peer's deadline.
                peer.connected = true;
                peer.timeout = server_next;
                peer.scheduled = None;
                return Ok((peer, client, now));
            }
            now = client_next.min(server_next).clamp(now, now + MAX_IDLE_STEP);
            client.handle_input(Input::Timeout(now))?;
            rtc.handle_input(Input::Timeout(now))?;
            continue;
        }
        exchange.deliver(&mut client, &mut peer, now)?;
    }
    bail!("no connection after {MAX_STEPS} steps (client connected: {client_up}, relay: {server_up})")
}

/// Poll an engine until it asks for a deadline: transmits to `out`, `Connected` to `up`.
fn poll(rtc: &mut Rtc, out: &mut Vec<Transmit>, up: &mut bool) -> anyhow::Result<Instant> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => out.push(t),
            Output::Event(Event::Connected) => *up = true,
            Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                bail!("ICE disconnected")
            }
            Output::Event(_) => {}
        }
    }
}
