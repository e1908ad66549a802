//! Fixtures for Tolk's criterion benchmarks.
//!
//! [`Fanout`] is a shard's worth of listeners on the relay's own sans-IO shard core
//! ([`ShardCore`]): each listener is a str0m client whose offer the core accepts as a WHEP join
//! would, and whose ICE and DTLS run through [`ShardCore::on_datagram`] and
//! [`ShardCore::on_timeout`] in memory (no socket takes part in the handshakes). The setup then
//! lets simulated time pass until every listener has settled, as it does in a relay a few
//! seconds after it joined. [`Fanout::round`] runs the hot path for one source packet as one turn
//! of a shard's loop does it — there is no copy of shard code here:
//!
//! 1. [`ShardCore::deliver`] (and [`ShardCore::resume`] after each stretch of
//!    [`FLUSH_AT`] datagrams): routing, then for each listener `Peer::write` (rebase onto the
//!    listener's own RTP line, write the RTP header, protect it with Tolk's SRTP into the send
//!    batch; with [`SendPath::Engine`], str0m builds and protects it instead);
//! 2. [`ShardCore::on_timeout`]: due timers (consent checks; str0m's periodic work on the engine
//!    path);
//! 3. the loop turn's flush (`sendmmsg` to a sink socket on loopback), or, in the
//!    [`Release::Discard`] variant, dropping the batch unsent.
//!
//! Between measured stretches, [`Fanout::keepalive`] lets the clients send their ICE consent
//! checks to the core and hands the answers back.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tolk_relay::ids::{EventId, Language, SessionId};
use tolk_relay::media::{Source, SourcePacket};
use tolk_relay::net::core::{CoreConfig, FLUSH_AT, ShardCore};
use tolk_relay::net::settled::SETTLE_AFTER;
use tolk_relay::net::{EventLayout, Join};

/// `count` distinct encoded 20 ms frames of a tone (48 kHz mono), so decoders do real work.
pub fn tone_frames(frequency: f32, amplitude: f32, count: usize) -> Vec<Arc<[u8]>> {
    const FRAME: usize = 960;
    let Ok(mut encoder) = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio) else {
        return Vec::new();
    };
    (0..count)
        .filter_map(|n| {
            let pcm: Vec<f32> = (0..FRAME)
                .map(|i| {
                    let t = (n * FRAME + i) as f32 / 48_000.0;
                    amplitude * (2.0 * std::f32::consts::PI * frequency * t).sin()
                })
                .collect();
            encoder.encode_vec_float(&pcm, 1500).ok().map(Into::into)
        })
        .collect()
}

/// Size of the benchmark's Opus payload: a 20 ms mono voice frame at about 32 kbit/s.
pub const PAYLOAD_BYTES: usize = 80;
/// One 20 ms Opus frame in RTP ticks.
pub const FRAME_TICKS: u32 = 960;
/// The packet interval of one channel.
pub const FRAME: Duration = Duration::from_millis(20);

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

/// What [`Fanout::round`] does with the datagrams the core produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Drop them unsent, keeping their buffers as a flush does: everything but `sendmmsg`.
    Discard,
    /// `sendmmsg` them to the sink, as the shard does at the end of its loop turn.
    Send,
}

/// The time rounds run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `Instant::now()`, read where the shard reads it (once for the delivery, once for the
    /// timers). Rounds run back to back, far faster than one per 20 ms, so periodic work is
    /// spread over more packets than in a relay.
    Wall,
    /// A clock that advances one frame (20 ms) per round, as a live channel does: per-packet
    /// shares of periodic work are those of a relay.
    Simulated,
}

/// Who builds and protects each listener's packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPath {
    /// Tolk: RTP header, its own SRTP from the DTLS-exported keys, into the batch; listeners
    /// settle (their engines dropped), as in a relay.
    Direct,
    /// str0m: `write_rtp`, then `Input::Timeout(now)` so it sends, then the peer is drained
    /// (the path before keys are known); listeners keep their engines.
    Engine,
}

/// How a [`Fanout`] was set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Wall time of all the handshakes (peer creation, ICE, DTLS through the core).
    pub handshakes: Duration,
    /// Listeners that settled (their engine dropped) before the rounds began.
    pub settled: usize,
    /// How far simulated setup time ran ahead of the clock, which we then waited out.
    pub waited: Duration,
}

/// Counters over the life of a [`Fanout`]: `rounds`, `datagrams` and `sent` count work; the
/// others should stay 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub rounds: u64,
    /// Datagrams the core produced in rounds (one RTP packet per listener, plus any RTCP).
    pub datagrams: u64,
    pub sent: u64,
    /// Datagrams the kernel refused at the sender (a full socket buffer). Drops at the sink's
    /// full receive buffer are not seen here: `sendmmsg` succeeds for those.
    pub dropped: u64,
    /// Listener writes that queued nothing.
    pub not_written: u64,
    /// Sessions the core ended.
    pub died: u64,
}

/// One listener's client and its address.
struct Client {
    rtc: Rtc,
    addr: SocketAddr,
}

/// N connected listeners of one channel on a [`ShardCore`], their clients, and the sockets.
pub struct Fanout {
    /// The relay's shard core, driven in memory.
    pub core: ShardCore,
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    event: EventId,
    /// The socket the core's datagrams leave from (its ICE candidate address).
    pub socket: UdpSocket,
    /// Every client's address lands here: a socket bound to the wildcard address on the port the
    /// clients' 127.64.x.y addresses share, that nobody reads (the kernel drops what does not fit
    /// in its receive buffer).
    pub sink: UdpSocket,
    pub clock: Clock,
    /// Send every datagram to the sink's one address (127.0.0.1) instead of each listener's own
    /// 127.64.x.y: the kernel's send cost without 10,000 distinct destinations, as the benchmark
    /// measured it before it ran the real shard core.
    pub one_destination: Option<SocketAddr>,
    pub setup: Setup,
    pub counters: Counters,
    /// The simulated clock (also the latest time any engine has seen).
    now: Instant,
    payload: Arc<[u8]>,
    seq: u64,
    ts: u32,
    input: u64,
}

impl Fanout {
    /// Build `n` listeners of `language` (an interpretation channel of a one-language event),
    /// connected through the core, and let them settle.
    pub fn connect(n: usize, clock: Clock, path: SendPath) -> anyhow::Result<Self> {
        let sink = UdpSocket::bind("0.0.0.0:0").context("binding the sink socket")?;
        let socket = UdpSocket::bind("127.0.0.1:0").context("binding the relay socket")?;
        socket.set_nonblocking(true)?;
        let sink_port = sink.local_addr()?.port();
        let event = EventId::parse("bench")?;
        let floor = Language::parse("en")?;
        let language = Language::parse("fr")?;
        let layout = Arc::new(EventLayout {
            id: event.clone(),
            floor,
            languages: vec![language.clone()],
            rtp_allow: Default::default(),
            mix: None,
            cascaded: false,
            relayed: false,
        });
        let core = ShardCore::new(
            CoreConfig {
                index: 0,
                shards: 1,
                candidates: vec![socket.local_addr()?],
                connect_timeout: Duration::from_secs(3600),
                direct_srtp: path == SendPath::Direct,
                flush_at: FLUSH_AT,
            },
            Arc::new(AtomicU64::new(1)),
        );
        let started = Instant::now();
        let mut fanout = Self {
            core,
            clients: Vec::with_capacity(n),
            by_addr: HashMap::with_capacity(n),
            event,
            socket,
            sink,
            clock,
            one_destination: None,
            setup: Setup { handshakes: Duration::ZERO, settled: 0, waited: Duration::ZERO },
            counters: Counters::default(),
            now: started,
            payload: opus_payload(),
            seq: 1,
            ts: 0,
            input: 7,
        };
        for i in 0..n {
            let addr = client_addr(i, sink_port)?;
            fanout.join(&layout, &language, addr).with_context(|| format!("listener {i}"))?;
        }
        fanout.setup.handshakes = started.elapsed();
        // Simulated time passes until the listeners settle, with consent checks on the way.
        let settle_by = fanout.now + SETTLE_AFTER + Duration::from_millis(500);
        while fanout.now < settle_by {
            fanout.now += Duration::from_millis(500);
            fanout.keepalive_at(fanout.now)?;
        }
        fanout.setup.settled = fanout.core.stats().settled;
        if path == SendPath::Direct && fanout.setup.settled != n {
            bail!("{} of {n} listeners settled", fanout.setup.settled);
        }
        // Simulated time may be ahead of the clock: wait until it is not, so that no engine ever
        // sees time go backwards.
        fanout.setup.waited = fanout.now.saturating_duration_since(Instant::now());
        std::thread::sleep(fanout.setup.waited);
        fanout.keepalive()?;
        fanout.check()?;
        fanout.counters = Counters::default();
        Ok(fanout)
    }

    /// One listener joins through the core and connects (ICE, DTLS) in memory on simulated time.
    fn join(
        &mut self,
        layout: &Arc<EventLayout>,
        language: &Language,
        addr: SocketAddr,
    ) -> anyhow::Result<()> {
        let mut rtc =
            Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().context("the client made no offer")?;
        let session = SessionId::generate();
        let joined = self.core.join(
            self.now,
            layout.clone(),
            session.clone(),
            Join::Listen { language: language.clone() },
            &offer.to_sdp_string(),
        )?;
        rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(&joined.answer)?)?;
        let index = self.clients.len();
        self.clients.push(Client { rtc, addr });
        self.by_addr.insert(addr, index);
        let mut up = false;
        for _ in 0..MAX_STEPS {
            let client_next = self.exchange(index, &mut up)?;
            let peers = self.core.peers();
            if up
                && peers
                    .slot_of_session(&session)
                    .and_then(|slot| peers.get(slot))
                    .is_some_and(|p| p.stage.is_connected())
            {
                return Ok(());
            }
            let core_next = self.core.poll_timeout().unwrap_or(client_next);
            self.now = client_next.min(core_next).clamp(self.now, self.now + MAX_IDLE_STEP);
            self.clients[index].rtc.handle_input(Input::Timeout(self.now))?;
            self.core.on_timeout(self.now);
        }
        bail!("no connection after {MAX_STEPS} steps (client connected: {up})")
    }

    /// Hand datagrams between client `index` (and any client the core answers) and the core
    /// until both are quiet; returns the client's next deadline.
    fn exchange(&mut self, index: usize, up: &mut bool) -> anyhow::Result<Instant> {
        for _ in 0..MAX_STEPS {
            let (next, transmits) = poll(&mut self.clients[index].rtc, up)?;
            let from = self.clients[index].addr;
            for contents in &transmits {
                self.core.on_datagram(self.now, from, contents);
            }
            let delivered = self.deliver_outbox()?;
            if transmits.is_empty() && delivered == 0 {
                return Ok(next);
            }
        }
        bail!("no end to the exchange after {MAX_STEPS} steps")
    }

    /// Hand what the core queued to the clients it is addressed to; returns how many datagrams.
    fn deliver_outbox(&mut self) -> anyhow::Result<usize> {
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = self.core.outbox().send.drain().collect();
        self.counters.died += self.core.outbox().ended.drain(..).count() as u64;
        let local = self.socket.local_addr()?;
        for (to, contents) in &datagrams {
            let Some(&i) = self.by_addr.get(to) else { continue };
            let receive = Receive::new(Protocol::Udp, local, *to, contents)?;
            self.clients[i].rtc.handle_input(Input::Receive(self.now, receive))?;
        }
        Ok(datagrams.len())
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
        let before = (self.counters, self.core.counters().not_written);
        let produced = self.round(Release::Discard);
        if produced < self.clients.len() {
            bail!("one packet to {} listeners gave {produced} datagrams", self.clients.len());
        }
        if self.core.counters().not_written != before.1 || self.counters.died != before.0.died {
            bail!("a check round went wrong: {:?}", self.counters);
        }
        Ok(())
    }

    /// The next floor packet of the event (nobody on air: every channel carries it).
    fn next_packet(&mut self, now: Instant) -> SourcePacket {
        self.seq += 1;
        self.ts = self.ts.wrapping_add(FRAME_TICKS);
        SourcePacket {
            event: self.event.clone(),
            source: Source::Floor,
            input: self.input,
            seq: self.seq,
            ts: self.ts,
            marker: false,
            payload: self.payload.clone(),
            received_at: now,
        }
    }

    /// Deliver one source packet to every listener, then fire due timers and release the batch,
    /// as one turn of a shard's loop does. Returns how many datagrams were produced.
    pub fn round(&mut self, release: Release) -> usize {
        if self.clock == Clock::Simulated {
            self.now += FRAME;
        }
        let now = self.tick();
        let packet = self.next_packet(now);
        let mut produced = 0;
        let not_written = self.core.counters().not_written;
        self.core.deliver(Arc::new(packet), now);
        while self.core.fanout_paused() {
            produced += self.release(release);
            self.core.resume(now);
        }
        let now = self.tick();
        self.core.on_timeout(now);
        produced += self.release(release);
        self.counters.died += self.core.outbox().ended.drain(..).count() as u64;
        self.counters.not_written += self.core.counters().not_written - not_written;
        self.counters.rounds += 1;
        self.counters.datagrams += produced as u64;
        produced
    }

    /// Send or drop the core's send batch; returns how many datagrams it held.
    fn release(&mut self, release: Release) -> usize {
        let send = &mut self.core.outbox().send;
        let len = send.len();
        match release {
            Release::Discard => send.discard(),
            Release::Send => {
                if let Some(to) = self.one_destination {
                    send.retarget(to);
                }
                send.flush(&self.socket);
                let (sent, _, dropped) = send.take_counts();
                self.counters.sent += sent;
                self.counters.dropped += dropped;
            }
        }
        len
    }

    /// Let every client run its timers (ICE consent checks) and exchange what that produces with
    /// the core, in memory. Not part of the hot path: call it between measured stretches, at
    /// least every few (real or simulated) seconds.
    pub fn keepalive(&mut self) -> anyhow::Result<()> {
        let now = self.tick();
        self.keepalive_at(now)
    }

    fn keepalive_at(&mut self, now: Instant) -> anyhow::Result<()> {
        self.core.on_timeout(now);
        self.deliver_outbox()?;
        for index in 0..self.clients.len() {
            self.clients[index].rtc.handle_input(Input::Timeout(now))?;
            self.exchange(index, &mut false)?;
        }
        Ok(())
    }

    /// How many listeners there are.
    pub fn listeners(&self) -> usize {
        self.clients.len()
    }

    /// Entries in the core's timer heap, stale ones included.
    pub fn timer_entries(&self) -> usize {
        self.core.timer_entries()
    }
}

/// Listener `i`'s address: 127.64.x.y on the sink's port (loopback reaches every 127/8 address,
/// and the sink is bound to the wildcard address).
fn client_addr(i: usize, port: u16) -> anyhow::Result<SocketAddr> {
    let i = u32::try_from(i)?;
    if i >= 250 * 250 {
        bail!("at most {} listeners", 250 * 250);
    }
    let ip = Ipv4Addr::new(127, 64, (i / 250) as u8, (i % 250 + 1) as u8);
    Ok(SocketAddr::new(IpAddr::V4(ip), port))
}

/// Poll an engine until it asks for a deadline: its deadline and the datagrams it sends;
/// `Connected` sets `up`.
fn poll(rtc: &mut Rtc, up: &mut bool) -> anyhow::Result<(Instant, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok((t, out)),
            Output::Transmit(t) => out.push(t.contents.to_vec()),
            Output::Event(Event::Connected) => *up = true,
            Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                bail!("ICE disconnected")
            }
            Output::Event(_) => {}
        }
    }
}
