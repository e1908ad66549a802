//! The peer engine: many str0m peers (listeners, and the floor and booth senders) driven from a
//! few threads, sans-IO style — each worker thread owns its peers, their UDP sockets and a
//! deadline heap, and waits in one `mio` poll. No task and no lock per peer: the orchestrator
//! talks to a worker through a channel.
//!
//! Every listener is its own ICE candidate, at an address of its own. Against a relay on this
//! machine, a listener worker gives its listeners addresses 127.64.x.y on one port and one
//! socket (`IP_PKTINFO` says which address a datagram was for): one `recvmmsg` reads 64
//! listeners' packets, and as that socket is read on every loop turn rather than through
//! epoll, the kernel has nobody to wake per packet — work that, with a socket per listener,
//! lands on the relay's core when both run on one machine. Senders, and listeners that must use
//! one given address (Janus's), have a socket each.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

use tolk_relay::media::rtp::RtpHeader;
use tolk_udp::{self as udp, RecvBatch};

use crate::stamp;
use crate::tally::{LatencyHistogram, Tally};

const WAKER: Token = Token(usize::MAX);
/// Datagrams read from one listener's socket per call (it rarely holds more than one).
const READ_AT_ONCE: usize = 4;
/// How long a worker keeps polling after its last datagram before it sleeps: longer than the
/// gap between two listeners' copies of one packet in a fan-out burst.
const SPIN: Duration = Duration::from_micros(200);
/// A worker with a shared port reads it at least this often.
const SHARED_READ_EVERY: Duration = Duration::from_millis(1);
/// The shared port's receive buffer: a whole fan-out burst of thousands of packets between two
/// reads (the kernel caps it at `net.core.rmem_max`).
const SHARED_RECEIVE_BUFFER: usize = 16 << 20;

/// Where a new peer's candidate is.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    /// A socket of its own on this address, any port.
    Own(IpAddr),
    /// This address on its worker's shared port ([`WorkerSender::endpoint`]).
    Shared(SocketAddr),
}

/// Client-side impairment applied to what listeners receive.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Datagrams dropped at random, percent.
    pub loss_percent: f64,
    /// Each datagram delayed by a random 0..jitter.
    pub jitter: Duration,
}

/// A peer being negotiated: its Rtc and socket (None: on its worker's shared port), and the
/// pending offer.
pub struct Offer {
    rtc: Rtc,
    socket: Option<std::net::UdpSocket>,
    local: SocketAddr,
    pending: SdpPendingOffer,
    send_mid: Option<Mid>,
    pub sdp: String,
}

impl Offer {
    /// The address the peer's media comes from (its host candidate).
    pub fn local_ip(&self) -> IpAddr {
        self.local.ip()
    }
}

/// A new peer at `at` (its one host candidate).
fn peer_on(at: Endpoint) -> anyhow::Result<(Rtc, Option<std::net::UdpSocket>, SocketAddr)> {
    let (socket, local) = match at {
        Endpoint::Own(ip) => {
            let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
            socket.set_nonblocking(true)?;
            let local = socket.local_addr()?;
            (Some(socket), local)
        }
        Endpoint::Shared(local) => (None, local),
    };
    let mut rtc =
        Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    Ok((rtc, socket, local))
}

/// The local address this machine (or network namespace) reaches `host` from: where the peers
/// put their host candidate. 127.0.0.1 for a relay on loopback.
pub fn local_ip_towards(host: IpAddr) -> anyhow::Result<IpAddr> {
    let unspecified: IpAddr = if host.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
    probe.connect(SocketAddr::new(host, 9)).with_context(|| format!("no route to {host}"))?;
    Ok(probe.local_addr()?.ip())
}

/// Make an offer with a host candidate at `at`: `send` one sendonly audio section first (a
/// publisher), `receive` recvonly ones.
pub fn offer(at: Endpoint, send: bool, receive: usize) -> anyhow::Result<Offer> {
    let (mut rtc, socket, local) = peer_on(at)?;
    let mut change = rtc.sdp_api();
    let send_mid = send.then(|| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
    for _ in 0..receive {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    let (sdp, pending) = change.apply().context("str0m made no offer")?;
    Ok(Offer { rtc, socket, local, pending, send_mid, sdp: sdp.to_sdp_string() })
}

/// What a sender sends: speech-like Opus, stamped with its source number.
pub struct Voice {
    pub source: u16,
    voice: tolk_relay::demo::Voice,
    encoder: opus::Encoder,
}

impl Voice {
    pub fn new(source: u16, seed: u64) -> anyhow::Result<Self> {
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(24_000))?;
        let mut voice = tolk_relay::demo::Voice::default();
        // Different voices start at different points of the loop.
        for _ in 0..(seed % 200) {
            voice.frame();
        }
        Ok(Self { source, voice, encoder })
    }

    fn next_packet(&mut self) -> anyhow::Result<Vec<u8>> {
        let frame = self.voice.frame();
        let packet = self.encoder.encode_vec_float(&frame, 400)?;
        Ok(stamp::stamp(&packet, self.source, stamp::now_us()))
    }
}

/// A peer handed to a worker after its answer was accepted.
pub struct Ready {
    rtc: Rtc,
    socket: Option<std::net::UdpSocket>,
    local: SocketAddr,
    sender: Option<(Mid, Voice)>,
    /// Decode and check the audio of this listener.
    pub decode: bool,
    /// Count media from the SRTP header only (see `Peer::light`).
    pub light: bool,
    /// Whose latency histogram its packets go to (the node serving it, in a cluster run):
    /// [`Live::groups`].
    pub group: usize,
    pub tally: Tally,
}

/// Answer a server's offer (Janus offers): a receive-only listener on `ip`.
pub fn answer(ip: IpAddr, offer: &str, decode: bool) -> anyhow::Result<(Ready, String)> {
    let (mut rtc, socket, local) = peer_on(Endpoint::Own(ip))?;
    let offer = str0m::change::SdpOffer::from_sdp_string(offer).context("the offer is not SDP")?;
    let answer = rtc.sdp_api().accept_offer(offer).context("cannot answer the offer")?;
    let ready =
        Ready { rtc, socket, local, sender: None, decode, light: false, group: 0, tally: Tally::default() };
    Ok((ready, answer.to_sdp_string()))
}

/// A plain RTP floor (what an `ffmpeg … -f rtp` floor or a mixing desk sends): stamped speech
/// every 20 ms from a thread of its own.
pub struct RtpFloor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RtpFloor {
    pub fn start(to: SocketAddr) -> anyhow::Result<Self> {
        let mut voice = Voice::new(0, 0)?;
        let socket = std::net::UdpSocket::bind(SocketAddr::new(local_ip_towards(to.ip())?, 0))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("load-rtp-floor".into()).spawn(move || {
            let ssrc: u32 = rand::random();
            let start = Instant::now();
            let mut n: u32 = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(payload) = voice.next_packet() {
                    let _ = socket.send_to(&plain_rtp(n, ssrc, &payload), to);
                }
                n += 1;
                std::thread::sleep(
                    (start + Duration::from_millis(20) * n).saturating_duration_since(Instant::now()),
                );
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

/// Plain RTP packet `n` of a 20 ms Opus stream (payload type 111).
pub fn plain_rtp(n: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        payload_type: 111,
        marker: false,
        seq: n as u16,
        timestamp: n.wrapping_mul(960),
        ssrc,
        extension: None,
    };
    let mut packet = Vec::with_capacity(12 + payload.len());
    header.write(&mut packet);
    packet.extend_from_slice(payload);
    packet
}

impl Drop for RtpFloor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Offer {
    /// Accept the server's answer; `voice` for a sender.
    pub fn accept(mut self, answer: &str, voice: Option<Voice>, decode: bool) -> anyhow::Result<Ready> {
        let answer = SdpAnswer::from_sdp_string(answer).context("the answer is not SDP")?;
        self.rtc.sdp_api().accept_answer(self.pending, answer)?;
        let sender = match (self.send_mid, voice) {
            (Some(mid), Some(v)) => Some((mid, v)),
            _ => None,
        };
        Ok(Ready {
            rtc: self.rtc,
            socket: self.socket,
            local: self.local,
            sender,
            decode,
            light: false,
            group: 0,
            tally: Tally::default(),
        })
    }
}

/// Orders to a worker.
pub enum Command {
    Add {
        id: u64,
        peer: Box<Ready>,
    },
    /// A switch is being asked for this listener (None: the request failed, forget it).
    Switching {
        id: u64,
        at: Option<Instant>,
    },
    Remove {
        id: u64,
    },
    /// Stop and hand back every peer's tally.
    Finish {
        reply: Sender<Vec<(u64, Tally, AudioCheck)>>,
    },
}

/// What a sampled listener's decoded audio showed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AudioCheck {
    pub sampled: bool,
    pub frames: u64,
    pub sum_squares: f64,
    pub samples: u64,
    pub errors: u64,
}

impl AudioCheck {
    /// RMS level of everything decoded, dBFS.
    pub fn level_db(&self) -> f64 {
        if self.samples == 0 {
            return -120.0;
        }
        10.0 * (self.sum_squares / self.samples as f64).max(1e-12).log10()
    }
}

/// Live counters a worker publishes for the progress line and the timeline.
#[derive(Debug, Default, Clone)]
pub struct Live {
    /// Listeners connected.
    pub connected: u32,
    /// Senders (floor, booths) connected.
    pub senders: u32,
    pub packets: u64,
    pub expected: u64,
    /// Latency of the packets since the orchestrator last took it.
    pub window: LatencyHistogram,
    pub total: LatencyHistogram,
    /// The whole run's latency by group ([`Ready::group`]; one group but in cluster runs).
    pub groups: Vec<LatencyHistogram>,
}

struct Peer {
    rtc: Rtc,
    /// Its own socket, or None: on the worker's shared port.
    socket: Option<UdpSocket>,
    local: SocketAddr,
    sender: Option<Sending>,
    decoder: Option<opus::Decoder>,
    /// A light listener: once connected, its SRTP media packets are counted from their clear
    /// header (sequence number, timestamp: loss, jitter) and not decrypted; STUN, DTLS and RTCP
    /// still go to str0m, which keeps ICE alive. The generator then costs far less per packet
    /// than the relay, which still encrypts for every listener. Full listeners (a sample)
    /// decrypt, read the stamps (latency) and decode.
    light: bool,
    /// Its latency histogram in [`Loop::windows`].
    group: usize,
    check: AudioCheck,
    tally: Tally,
    connected: bool,
    deadline: Instant,
}

struct Sending {
    mid: Mid,
    voice: Voice,
    next: Option<Instant>,
    seq: u64,
    ts: u32,
}

/// Latency groups a worker keeps apart at most (nodes of a cluster run); more share the last.
pub const MAX_GROUPS: usize = 16;

/// A worker's shared port and the next listener address on it.
#[derive(Debug)]
struct SharedAddresses {
    port: u16,
    next: AtomicU32,
}

impl SharedAddresses {
    /// 127.64.0.1, 127.64.0.2, … : all of 127/8 is this machine's, on the loopback device.
    fn next(&self) -> SocketAddr {
        let k = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let [_, a, b, c] = k.to_be_bytes();
        SocketAddr::from((Ipv4Addr::new(127, 64u8.saturating_add(a), b, c), self.port))
    }
}

/// A worker's shared port: one socket on the wildcard address for many listener addresses.
fn shared_port() -> anyhow::Result<(std::net::UdpSocket, u16)> {
    let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    socket.set_nonblocking(true)?;
    udp::enable_destination_address(&socket)?;
    udp::enable_receive_times(&socket)?;
    udp::set_receive_buffer(&socket, SHARED_RECEIVE_BUFFER)?;
    let port = socket.local_addr()?.port();
    Ok((socket, port))
}

/// A worker thread's handle.
pub struct Worker {
    pub commands: Sender<Command>,
    waker: Arc<Waker>,
    shared: Option<Arc<SharedAddresses>>,
    pub live: Arc<Mutex<Live>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// A worker thread; `shared`: with a shared port for its listeners' addresses.
    pub fn start(name: String, impairment: Impairment, shared: bool) -> anyhow::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (shared_socket, addresses) = if shared {
            let (socket, port) = shared_port()?;
            (Some(socket), Some(Arc::new(SharedAddresses { port, next: AtomicU32::new(0) })))
        } else {
            (None, None)
        };
        let shared_port = addresses.as_ref().map_or(0, |a| a.port);
        let (commands, inbox) = crossbeam_channel::unbounded();
        let live = Arc::new(Mutex::new(Live::default()));
        let shared = live.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut w = Loop {
                poll,
                inbox,
                live: shared,
                peers: HashMap::new(),
                senders: Vec::new(),
                heap: BinaryHeap::new(),
                impairment,
                delayed: BinaryHeap::new(),
                recv: Some(Box::default()),
                shared: shared_socket,
                shared_port,
                by_local: HashMap::new(),
                packets_since_publish: 0,
                windows: vec![LatencyHistogram::default()],
                arrived_us: None,
            };
            w.run();
        })?;
        Ok(Self { commands, waker, shared: addresses, live, thread: Some(thread) })
    }

    pub fn send(&self, command: Command) -> anyhow::Result<()> {
        self.sender().send(command)
    }

    /// A handle that sends commands from other tasks.
    pub fn sender(&self) -> WorkerSender {
        WorkerSender {
            commands: self.commands.clone(),
            waker: self.waker.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Stop; every peer's tally.
    pub fn finish(mut self) -> anyhow::Result<Vec<(u64, Tally, AudioCheck)>> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Finish { reply })?;
        let tallies = answer.recv_timeout(Duration::from_secs(30)).context("worker did not finish")?;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(tallies)
    }
}

/// Sends commands to a worker and wakes it.
#[derive(Clone)]
pub struct WorkerSender {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    shared: Option<Arc<SharedAddresses>>,
}

impl WorkerSender {
    /// Where a new peer of this worker puts its candidate, to be reached from a relay at `ip`
    /// (the local address that routes to it): an address of its own on the shared port when
    /// that is on loopback, else a socket of its own.
    pub fn endpoint(&self, ip: IpAddr) -> Endpoint {
        match &self.shared {
            Some(shared) if ip.is_loopback() && ip.is_ipv4() => Endpoint::Shared(shared.next()),
            _ => Endpoint::Own(ip),
        }
    }

    pub fn send(&self, command: Command) -> anyhow::Result<()> {
        self.commands.send(command).map_err(|_| anyhow::anyhow!("worker stopped"))?;
        self.waker.wake()?;
        Ok(())
    }
}

/// A datagram held back by the jitter impairment.
struct Delayed {
    at: Instant,
    peer: u64,
    source: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at) // a min-heap on time
    }
}

struct Loop {
    poll: Poll,
    inbox: Receiver<Command>,
    live: Arc<Mutex<Live>>,
    peers: HashMap<u64, Peer>,
    /// The peers that publish (floor and booths): a handful among thousands of listeners, so
    /// the loop looks only at them for send deadlines.
    senders: Vec<u64>,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    impairment: Impairment,
    delayed: BinaryHeap<Delayed>,
    /// Out of `self` only while [`Loop::read`] or [`Loop::read_shared`] runs.
    recv: Option<Box<RecvBatch>>,
    /// The shared port (listener workers), read on every turn, and its peers by address.
    shared: Option<std::net::UdpSocket>,
    shared_port: u16,
    by_local: HashMap<SocketAddr, u64>,
    packets_since_publish: u64,
    /// Latency since the last publish, by group (one but in cluster runs).
    windows: Vec<LatencyHistogram>,
    /// The kernel's receive time (µs since the Unix epoch) of the datagram being handled.
    arrived_us: Option<u64>,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut published = Instant::now();
        let mut spin_until = published;
        loop {
            let now = Instant::now();
            let mut next = now + Duration::from_millis(50);
            if let Some(Reverse((t, _))) = self.heap.peek() {
                next = next.min(*t);
            }
            if let Some(d) = self.delayed.peek() {
                next = next.min(d.at);
            }
            for p in self.senders.iter().filter_map(|id| self.peers.get(id)) {
                if let Some(s) = &p.sender
                    && let Some(due) = s.next
                {
                    next = next.min(due);
                }
            }
            // Within a fan-out burst, keep polling instead of sleeping: a sleeping thread must be
            // woken for each packet, and on one machine that wake-up (an IPI) is charged to the
            // relay's core, a cost the relay would never pay for listeners on other machines.
            if self.shared.is_some() {
                next = next.min(now + SHARED_READ_EVERY);
            }
            let wait = if now < spin_until { Duration::ZERO } else { next.saturating_duration_since(now) };
            if self.poll.poll(&mut events, Some(wait)).is_err() {
                continue;
            }
            let mut datagrams = false;
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                datagrams = true;
                self.read(event.token().0 as u64);
            }
            if self.read_shared() {
                datagrams = true;
            }
            if datagrams {
                spin_until = Instant::now() + SPIN;
            }
            if !self.commands() {
                return;
            }
            let now = Instant::now();
            self.release_delayed(now);
            self.timeouts(now);
            self.send_due(now);
            if now.duration_since(published) >= Duration::from_millis(200) {
                self.publish();
                published = now;
            }
        }
    }

    /// Apply commands; false when told to finish.
    fn commands(&mut self) -> bool {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Add { id, peer } => self.add(id, *peer),
                Command::Switching { id, at } => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.tally.switch_pending = at.map(|at| (at, 0));
                    }
                }
                Command::Remove { id } => {
                    self.senders.retain(|s| *s != id);
                    if let Some(p) = self.peers.remove(&id) {
                        match p.socket {
                            Some(mut socket) => {
                                let _ = self.poll.registry().deregister(&mut socket);
                            }
                            None => {
                                self.by_local.remove(&p.local);
                            }
                        }
                    }
                }
                Command::Finish { reply } => {
                    let all = self.peers.drain().map(|(id, p)| (id, p.tally, p.check)).collect::<Vec<_>>();
                    let _ = reply.send(all);
                    return false;
                }
            }
        }
        true
    }

    fn add(&mut self, id: u64, peer: Ready) {
        let Ready { rtc, socket, local, sender, decode, light, group, tally } = peer;
        let group = group.min(MAX_GROUPS - 1);
        if self.windows.len() <= group {
            self.windows.resize_with(group + 1, LatencyHistogram::default);
        }
        let socket = match socket {
            Some(socket) => {
                // Full listeners measure latency to the kernel's receive time (the shared port
                // has them for all).
                if !light && udp::enable_receive_times(&socket).is_err() {
                    tracing::debug!("no kernel receive times: latency is measured when the loop reads");
                }
                let mut socket = UdpSocket::from_std(socket);
                if self.poll.registry().register(&mut socket, Token(id as usize), Interest::READABLE).is_err()
                {
                    return;
                }
                Some(socket)
            }
            None if self.shared.is_some() => {
                self.by_local.insert(local, id);
                None
            }
            None => return, // a shared address handed to a worker without a shared port
        };
        let decoder = if decode { opus::Decoder::new(48_000, opus::Channels::Mono).ok() } else { None };
        let check = AudioCheck { sampled: decoder.is_some(), ..Default::default() };
        let sender = sender.map(|(mid, voice)| Sending {
            mid,
            voice,
            next: None,
            seq: u64::from(rand::random::<u16>() & 0x3fff),
            ts: rand::random(),
        });
        let now = Instant::now();
        if sender.is_some() {
            self.senders.push(id);
        }
        self.peers.insert(
            id,
            Peer {
                rtc,
                socket,
                local,
                sender,
                decoder,
                light,
                group,
                check,
                tally,
                connected: false,
                deadline: now,
            },
        );
        self.heap.push(Reverse((now, id)));
    }

    fn read(&mut self, id: u64) {
        // The receive buffers are taken out of `self` while `input` borrows `self` mutably: no
        // copy of each datagram. One `recvmmsg` usually drains a listener's socket (it holds one
        // packet at a time), saving the read that would only say "empty".
        let Some(mut batch) = self.recv.take() else { return };
        while let Some(peer) = self.peers.get(&id) {
            let Some(socket) = &peer.socket else { break };
            let Ok(received) = udp::recv_up_to(socket, &mut batch, READ_AT_ONCE) else {
                break; // a transient error: wait for the next readiness
            };
            for (source, data, meta) in batch.iter_ancillary() {
                self.receive(id, source, data, meta.received_at);
            }
            if received < READ_AT_ONCE {
                break;
            }
        }
        self.recv = Some(batch);
    }

    /// Drain the shared port, each datagram to the peer at its destination address; true if
    /// anything came.
    fn read_shared(&mut self) -> bool {
        let Some(mut batch) = self.recv.take() else { return false };
        let mut any = false;
        while let Some(shared) = &self.shared {
            let Ok(received) = udp::recv_batch(shared, &mut batch) else { break };
            any |= received > 0;
            let port = self.shared_port;
            for (source, data, meta) in batch.iter_ancillary() {
                let Some(to @ IpAddr::V4(_)) = meta.destination else { continue };
                if let Some(&id) = self.by_local.get(&SocketAddr::from((to, port))) {
                    self.receive(id, source, data, meta.received_at);
                }
            }
            if received < udp::BATCH {
                break;
            }
        }
        self.recv = Some(batch);
        any
    }

    /// A datagram for peer `id`, through the client-side impairment.
    fn receive(&mut self, id: u64, source: SocketAddr, data: &[u8], arrived: Option<Duration>) {
        let imp = self.impairment;
        if imp.loss_percent > 0.0 && rand::random::<f64>() * 100.0 < imp.loss_percent {
            return;
        }
        if !imp.jitter.is_zero() {
            let delay = imp.jitter.mul_f64(rand::random::<f64>());
            self.delayed.push(Delayed { at: Instant::now() + delay, peer: id, source, data: data.to_vec() });
            return;
        }
        self.input(id, source, data, arrived);
    }

    fn release_delayed(&mut self, now: Instant) {
        while self.delayed.peek().is_some_and(|d| d.at <= now) {
            if let Some(d) = self.delayed.pop() {
                self.input(d.peer, d.source, &d.data, None);
            }
        }
    }

    /// One datagram for peer `id`; `arrived`: the kernel's receive time, if the socket has them.
    fn input(&mut self, id: u64, source: SocketAddr, data: &[u8], arrived: Option<Duration>) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let arrived_us = arrived.map(|d| d.as_micros() as u64);
        if peer.light
            && peer.connected
            && let Some((seq, ts)) = srtp_media_header(data)
        {
            let at = arrived_us.unwrap_or_else(stamp::now_us);
            let window = &mut self.windows[peer.group];
            peer.tally.packet_arrived(seq, ts, &[], Instant::now(), at, window);
            return;
        }
        if let Ok(receive) = Receive::new(Protocol::Udp, source, peer.local, data) {
            let _ = peer.rtc.handle_input(Input::Receive(Instant::now(), receive));
        }
        // The media this datagram held comes out of str0m in the drain just below.
        self.arrived_us = arrived_us;
        self.drain(id);
        self.arrived_us = None;
    }

    fn timeouts(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.heap.peek().copied() {
            if t > now {
                break;
            }
            self.heap.pop();
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            if peer.deadline != t {
                continue; // superseded
            }
            let _ = peer.rtc.handle_input(Input::Timeout(now));
            self.drain(id);
        }
    }

    fn send_due(&mut self, now: Instant) {
        let ids: Vec<u64> = self
            .senders
            .iter()
            .copied()
            .filter(|id| {
                self.peers.get(id).is_some_and(|p| {
                    p.connected && p.sender.as_ref().is_some_and(|s| s.next.is_none_or(|d| d <= now))
                })
            })
            .collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            let Some(s) = peer.sender.as_mut() else { continue };
            let due = *s.next.get_or_insert(now);
            let Ok(payload) = s.voice.next_packet() else { continue };
            let pt = opus_pt(&peer.rtc, s.mid);
            if let Some(pt) = pt
                && let Some(stream) = peer.rtc.direct_api().stream_tx_by_mid(s.mid, None)
            {
                stream.write_rtp(RtpWrite::new(pt, s.seq.into(), s.ts, now, payload));
            }
            s.seq += 1;
            s.ts = s.ts.wrapping_add(960);
            // Keep the 20 ms grid; after a stall, do not burst to catch up.
            let mut next = due + Duration::from_millis(20);
            if next + Duration::from_millis(100) < now {
                next = now + Duration::from_millis(20);
            }
            s.next = Some(next);
            let _ = peer.rtc.handle_input(Input::Timeout(now));
            self.drain(id);
        }
    }

    fn drain(&mut self, id: u64) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        loop {
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    if t != peer.deadline {
                        peer.deadline = t;
                        self.heap.push(Reverse((t, id)));
                    }
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = match (&peer.socket, &self.shared, peer.local.ip()) {
                        (Some(socket), _, _) => socket.send_to(&t.contents, t.destination),
                        (None, Some(shared), IpAddr::V4(from)) => {
                            udp::send_from(shared, &t.contents, from, t.destination)
                        }
                        _ => continue,
                    };
                }
                Ok(Output::Event(Event::Connected)) => peer.connected = true,
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    let now = Instant::now();
                    peer.tally.packet_arrived(
                        p.header.sequence_number,
                        p.header.timestamp,
                        &p.payload,
                        now,
                        self.arrived_us.unwrap_or_else(stamp::now_us),
                        &mut self.windows[peer.group],
                    );
                    self.packets_since_publish += 1;
                    if let Some(decoder) = peer.decoder.as_mut() {
                        let mut pcm = [0f32; 960 * 3];
                        match decoder.decode_float(&p.payload, &mut pcm, false) {
                            Ok(n) => {
                                peer.check.frames += 1;
                                peer.check.samples += n as u64;
                                peer.check.sum_squares +=
                                    pcm[..n].iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>();
                            }
                            Err(_) => peer.check.errors += 1,
                        }
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(_) => {
                    // A broken peer: drop it from the heap; its tally stays.
                    peer.deadline = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let connected = self.peers.values().filter(|p| p.connected && p.sender.is_none()).count() as u32;
        let (packets, expected) = self
            .peers
            .values()
            .filter(|p| p.sender.is_none())
            .fold((0, 0), |(a, b), p| (a + p.tally.packets, b + p.tally.expected_at(now)));
        if let Ok(mut live) = self.live.lock() {
            live.connected = connected;
            live.senders = self.peers.values().filter(|p| p.connected && p.sender.is_some()).count() as u32;
            live.packets = packets;
            live.expected = expected;
            if live.groups.len() < self.windows.len() {
                live.groups.resize_with(self.windows.len(), LatencyHistogram::default);
            }
            for (group, window) in self.windows.iter().enumerate() {
                live.window.merge(window);
                live.total.merge(window);
                live.groups[group].merge(window);
            }
        }
        for window in &mut self.windows {
            *window = LatencyHistogram::default();
        }
        self.packets_since_publish = 0;
    }
}

/// Sequence number and timestamp of an SRTP media packet (RFC 3550 header, in the clear), or
/// None for anything else (STUN, DTLS, RTCP: RFC 7983 demultiplexing, RFC 5761 payload types).
fn srtp_media_header(data: &[u8]) -> Option<(u16, u32)> {
    let first = *data.first()?;
    let pt = data.get(1)? & 0x7f;
    if !(128..=191).contains(&first) || (64..=95).contains(&pt) || data.len() < 12 {
        return None;
    }
    Some((u16::from_be_bytes([data[2], data[3]]), u32::from_be_bytes([data[4], data[5], data[6], data[7]])))
}

/// The Opus payload type negotiated on `mid`.
fn opus_pt(rtc: &Rtc, mid: Mid) -> Option<str0m::media::Pt> {
    let media = rtc.media(mid)?;
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Codec::Opus && media.remote_pts().contains(&p.pt()))
        .map(|p| p.pt())
}

/// POST an SDP offer (WHIP/WHEP); (session URL, answer).
pub async fn post_offer(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    offer: &str,
) -> anyhow::Result<(String, String)> {
    post_offer_as(http, url, token, offer, None).await
}

/// [`post_offer`] on behalf of a client at `client` (X-Forwarded-For, which a relay on this
/// machine believes from loopback): each generated listener is a client of its own, as
/// listeners on a real network are, rather than thousands of joins from one address.
pub async fn post_offer_as(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    offer: &str,
    client: Option<IpAddr>,
) -> anyhow::Result<(String, String)> {
    let mut url = reqwest::Url::parse(url)?;
    for _ in 0..=MAX_REDIRECTS {
        let mut request =
            http.post(url.clone()).header("content-type", "application/sdp").body(offer.to_owned());
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client.to_string());
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        // A client that follows redirects itself ends up elsewhere than it was sent.
        let answered_by = response.url().clone();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await?;
        if matches!(status.as_u16(), 307 | 308) {
            // A cluster node without room: the same offer, to the node it names.
            let location = location.context("a redirect without a Location")?;
            url = answered_by.join(&location)?;
            continue;
        }
        if status.as_u16() != 201 {
            let reason: String = body.chars().take(200).collect();
            bail!("HTTP {}: {reason}", status.as_u16());
        }
        let location = location.context("201 without a Location")?;
        let session = answered_by.join(&location)?.to_string();
        return Ok((session, body));
    }
    bail!("more than {MAX_REDIRECTS} redirects from {url}")
}

/// Redirects a WHEP or WHIP POST follows at most (a cluster sends a listener on once).
pub const MAX_REDIRECTS: usize = 3;

/// The node a session URL is on: its scheme, host and port (`http://10.77.3.11:8080`).
pub fn node_of(session_url: &str) -> String {
    reqwest::Url::parse(session_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| session_url.to_owned())
}
