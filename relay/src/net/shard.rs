//! One media shard's driver: the OS thread that owns a UDP socket, the RTP floor sockets given to
//! it, its command channel and waker, around a sans-IO [`ShardCore`] that holds every rule. One
//! loop: wait (mio) for datagrams, commands or the core's next deadline; feed them to the core;
//! carry out its [`Outbox`](crate::net::core::Outbox) — datagrams in batches, source packets to the
//! other shards, ended sessions to the control plane. Each input runs [`contained`]: a panic drops
//! one peer, not the shard. A turn takes at most [`COMMAND_BUDGET`] commands from the bounded queue,
//! so datagrams keep flowing through a join storm; each turn beats the shard's [`Heartbeat`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{info, info_span, warn};

use crate::ids::{EventId, SessionId};
use crate::net::contain::contained;
use crate::net::core::{CoreConfig, FLUSH_AT, ShardCore};
use crate::net::health::Heartbeat;
use crate::net::udp::{self, RecvBatch};
use crate::net::{
    COMMAND_QUEUE, Command, Fault, MediaConfig, MediaNote, NetError, SessionEntry, ShardHandle, ShardStats,
};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_RTP_FLOOR: usize = 2;
/// Longest wait when nothing is scheduled.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Control commands (joins, switches, ends, …) one loop turn takes; the rest wait for the next
/// turn, after the turn has read the socket. A join costs ~0.1 ms: a turn adds at most ~2 ms.
pub(crate) const COMMAND_BUDGET: usize = 16;

/// What the driver counts (the core counts the rest).
#[derive(Default)]
struct Counters {
    packets_out: u64,
    bytes_out: u64,
    dropped: u64,
    busy: Duration,
    loops: u64,
}

pub(crate) struct Shard {
    index: usize,
    socket: UdpSocket,
    poll: Poll,
    waker: Arc<Waker>,
    tx: crossbeam_channel::Sender<Command>,
    rx: crossbeam_channel::Receiver<Command>,
    others: Vec<ShardHandle>,
    sessions: Arc<DashMap<SessionId, SessionEntry>>,
    notes: Option<tokio::sync::mpsc::UnboundedSender<MediaNote>>,
    /// RTP floor sockets by mio token (minus [`FIRST_RTP_FLOOR`]).
    rtp_floors: Vec<Option<(EventId, UdpSocket)>>,
    core: ShardCore,
    counters: Counters,
    heartbeat: Arc<Heartbeat>,
}

/// Bind a media socket at `addr` (non-blocking, Don't Fragment where it can). The unspecified
/// address binds a socket that says each datagram's destination, so one socket serves every
/// candidate; `[::]` is dual-stack, and falls back to `0.0.0.0` on a machine without IPv6.
fn bind_media_socket(addr: SocketAddr) -> Result<(std::net::UdpSocket, SocketAddr), NetError> {
    let bind_err = |source| NetError::Bind { addr, source };
    let socket = match addr {
        SocketAddr::V6(_) => {
            let dual =
                socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).and_then(|s| {
                    s.set_only_v6(false)?;
                    s.bind(&addr.into())?;
                    Ok(s)
                });
            match dual {
                Ok(s) => std::net::UdpSocket::from(s),
                Err(e) => {
                    let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
                    warn!(%addr, error = %e, "no IPv6 media socket; IPv4 candidates only");
                    return bind_media_socket(v4);
                }
            }
        }
        SocketAddr::V4(_) => std::net::UdpSocket::bind(addr).map_err(bind_err)?,
    };
    socket.set_nonblocking(true).map_err(bind_err)?;
    // An optimisation only (see the function): without it media still flows.
    if let Err(e) = udp::set_dont_fragment(&socket, addr.is_ipv6()) {
        warn!(%addr, error = %e, "cannot set Don't Fragment on the media socket; sending without it");
    }
    if addr.ip().is_unspecified() {
        let told = if addr.is_ipv6() {
            udp::enable_destination_address_v6(&socket)
        } else {
            udp::enable_destination_address(&socket)
        };
        told.map_err(bind_err)?;
    }
    Ok((socket, addr))
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
        let (std_socket, addr) = bind_media_socket(SocketAddr::new(config.bind_ip, port))?;
        let bind_err = |source| NetError::Bind { addr, source };
        let local = std_socket.local_addr().map_err(bind_err)?;
        // A socket bound to IPv4 only serves the IPv4 candidates.
        let candidates: Vec<SocketAddr> = config
            .public_ips
            .iter()
            .filter(|ip| addr.is_ipv6() || ip.is_ipv4())
            .map(|ip| SocketAddr::new(*ip, local.port()))
            .collect();
        if candidates.is_empty() {
            return Err(bind_err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "IPv6 is off on this machine and every media address is IPv6",
            )));
        }
        let mut socket = UdpSocket::from_std(std_socket);
        let poll = Poll::new().map_err(bind_err)?;
        poll.registry().register(&mut socket, SOCKET, Interest::READABLE).map_err(bind_err)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(bind_err)?);
        let (tx, rx) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let mut core = ShardCore::new(
            CoreConfig {
                index,
                shards: config.shards.max(1),
                candidates,
                connect_timeout: config.connect_timeout,
                direct_srtp: true,
                flush_at: FLUSH_AT,
            },
            inputs,
        );
        core.outbox().send.set_ipv6_socket(addr.is_ipv6());
        Ok(Self {
            index,
            socket,
            poll,
            waker,
            tx,
            rx,
            others: Vec::new(),
            sessions,
            notes: None,
            rtp_floors: Vec::new(),
            core,
            counters: Counters::default(),
            heartbeat: Arc::default(),
        })
    }

    pub(crate) fn handle(&self) -> ShardHandle {
        ShardHandle { tx: self.tx.clone(), waker: self.waker.clone() }
    }

    pub(crate) fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    pub(crate) fn candidate_addr(&self) -> SocketAddr {
        self.core.candidate()
    }

    pub(crate) fn set_others(&mut self, others: Vec<ShardHandle>) {
        self.others = others;
    }

    pub(crate) fn set_notes(&mut self, notes: Option<tokio::sync::mpsc::UnboundedSender<MediaNote>>) {
        self.notes = notes;
    }

    /// The shard's loop; returns on `Shutdown` or when every handle is gone.
    pub(crate) fn run(mut self) {
        let span = info_span!("shard", index = self.index, addr = %self.core.candidate());
        let _enter = span.enter();
        info!(candidates = ?self.core.candidates(), "media shard listening");
        let mut events = Events::with_capacity(256);
        let mut recv = RecvBatch::default();
        loop {
            let now = Instant::now();
            self.heartbeat.beat(now);
            if let Err(e) = self.poll.poll(&mut events, Some(self.next_wait(now))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!(error = %e, "poll failed");
                }
                continue;
            }
            if !self.turn(&events, &mut recv) {
                break;
            }
        }
        info!("media shard stopped");
    }

    /// How long the loop may wait: until the core's next deadline, at most [`IDLE_WAIT`], and not
    /// at all while commands are left over from the last turn's budget.
    fn next_wait(&self, now: Instant) -> Duration {
        if !self.rx.is_empty() {
            return Duration::ZERO;
        }
        self.core.poll_timeout().map_or(IDLE_WAIT, |t| t.saturating_duration_since(now)).min(IDLE_WAIT)
    }

    /// One loop turn after a wait: commands (within the budget), datagrams, timers; false when
    /// the shard must stop.
    fn turn(&mut self, events: &Events, recv: &mut RecvBatch) -> bool {
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
        if !self.handle_commands(COMMAND_BUDGET) {
            return false;
        }
        if socket_ready {
            self.read_socket(recv);
        }
        for floor in rtp_ready {
            self.read_rtp_floor(floor, recv);
        }
        contained(&mut self.core, None, |core| core.on_timeout(Instant::now()));
        self.carry_out();
        self.flush();
        self.counters.busy += started.elapsed();
        self.counters.loops += 1;
        true
    }

    /// Send the datagrams the core queued.
    fn flush(&mut self) {
        let send = &mut self.core.outbox().send;
        send.flush(&self.socket);
        let (packets, bytes, dropped) = send.take_counts();
        self.counters.packets_out += packets;
        self.counters.bytes_out += bytes;
        self.counters.dropped += dropped;
    }

    /// What the core left: a paused fan-out (send its batch, let it go on until done), source
    /// packets for the other shards, ended sessions for the control plane; and a flush when the
    /// batch is large.
    fn carry_out(&mut self) {
        while self.core.fanout_paused() {
            self.flush();
            contained(&mut self.core, None, |core| core.resume(Instant::now()));
        }
        let outbox = self.core.outbox();
        for packet in outbox.forward.drain(..) {
            for other in &self.others {
                let _ = other.send(Command::Source(packet.clone()));
            }
        }
        for ended in outbox.ended.drain(..) {
            let kind = self.sessions.remove(&ended.session).map(|(_, e)| e.kind);
            if let Some(notes) = &self.notes {
                let _ =
                    notes.send(MediaNote::SessionEnded { session: ended.session, event: ended.event, kind });
            }
        }
        for session in outbox.connected.drain(..) {
            if let Some(notes) = &self.notes {
                let _ = notes.send(MediaNote::Connected { session });
            }
        }
        if outbox.send.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Take at most `budget` control commands (source packets from other shards do not count);
    /// false when the shard must stop.
    #[allow(clippy::panic, reason = "Fault::Die is a fault a test injects on purpose")]
    fn handle_commands(&mut self, budget: usize) -> bool {
        let mut spent = 0;
        while spent < budget {
            let Ok(command) = self.rx.try_recv() else { break };
            if !matches!(command, Command::Source(_)) {
                spent += 1;
            }
            match command {
                Command::Shutdown => return false,
                Command::Fault(Fault::Die) => panic!("fault injected: the shard thread dies"),
                command => self.handle_command(command),
            }
            // Keep latency low while commands pile up: send what routing produced so far.
            self.carry_out();
            if self.core.outbox().send.len() >= udp::BATCH {
                self.flush();
            }
        }
        true
    }

    /// One command, contained: a panic drops the session it names (or the peer being handled);
    /// its reply is dropped, which the caller sees as [`NetError::Dropped`].
    fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Join { event, session, join, offer, reply } => {
                let culprit = session.clone();
                let joined = contained(&mut self.core, Some(&culprit), |core| {
                    core.join_offer(now, event.clone(), session.clone(), join, offer)
                });
                let answer = joined.map(|joined| {
                    joined.map(|joined| {
                        let entry =
                            SessionEntry { shard: self.index, event: event.id.clone(), kind: joined.kind };
                        self.sessions.insert(session, entry);
                        joined.answer
                    })
                });
                let _ = reply.send(answer.unwrap_or(Err(NetError::Dropped)));
            }
            Command::Switch { session, track, language, reply } => {
                let done =
                    contained(&mut self.core, Some(&session), |core| core.switch(&session, track, &language));
                let _ = reply.send(done.unwrap_or(Err(NetError::Dropped)));
            }
            Command::SetOnAir { event, language, on_air } => {
                contained(&mut self.core, None, |core| core.set_on_air(&event, &language, on_air));
            }
            Command::End { session, reply } => {
                let done = contained(&mut self.core, Some(&session), |core| core.end_session(&session));
                let _ = reply.send(done.unwrap_or(Ok(())));
            }
            Command::EndEvent { event } => self.end_event(&event),
            Command::OpenRtpFloor { event, socket, reply } => {
                let _ = reply.send(self.open_rtp_floor(&event, socket));
            }
            Command::Source(packet) => {
                contained(&mut self.core, None, |core| core.deliver(packet, now));
            }
            Command::Tap { event, tap } => {
                contained(&mut self.core, None, |core| core.tap(&event, tap));
            }
            Command::PrepareEvent(layout) => {
                contained(&mut self.core, None, |core| core.prepare_event(&layout));
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Fault(Fault::PanicOn(session)) => {
                contained(&mut self.core, Some(&session), |core| core.panic_on(&session));
            }
            Command::Fault(Fault::Die) | Command::Shutdown => {} // handled by the loop
        }
    }

    fn end_event(&mut self, event: &EventId) {
        contained(&mut self.core, None, |core| core.end_event(event));
        for entry in &mut self.rtp_floors {
            if entry.as_ref().is_some_and(|(e, _)| e == event)
                && let Some((_, mut socket)) = entry.take()
            {
                let _ = self.poll.registry().deregister(&mut socket);
            }
        }
    }

    fn open_rtp_floor(
        &mut self,
        layout: &Arc<crate::net::EventLayout>,
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
        self.core.open_rtp_floor(layout);
        info!(event = %layout.id, %addr, "RTP floor open");
        self.rtp_floors[index] = Some((layout.id.clone(), socket));
        Ok(())
    }

    fn stats(&mut self) -> ShardStats {
        ShardStats {
            packets_out: self.counters.packets_out,
            bytes_out: self.counters.bytes_out,
            packets_dropped: self.counters.dropped,
            busy_seconds: self.counters.busy.as_secs_f64(),
            loops: self.counters.loops,
            ..self.core.stats()
        }
    }

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
            for (source, data, told) in recv.iter_ancillary() {
                contained(&mut self.core, None, |core| {
                    core.on_datagram_to(now, source, told.destination, data)
                });
                self.carry_out();
            }
            if received < udp::BATCH {
                break;
            }
        }
    }

    fn read_rtp_floor(&mut self, index: usize, recv: &mut RecvBatch) {
        loop {
            let Some((event, socket)) = self.rtp_floors.get(index).and_then(Option::as_ref) else {
                return;
            };
            let received = match udp::recv_batch(socket, recv) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "RTP floor receive failed");
                    break;
                }
            };
            let event = event.clone();
            let now = Instant::now();
            for (source, data) in recv.iter() {
                contained(&mut self.core, None, |core| core.on_rtp_datagram(now, &event, source, data));
                self.carry_out();
            }
            if received < udp::BATCH {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The driver without its thread: one turn at a time, on a real socket.

    use std::net::{IpAddr, Ipv4Addr};

    use tokio::sync::oneshot;

    use super::*;

    fn shard() -> Shard {
        let config = MediaConfig {
            public_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            first_port: 0,
            shards: 1,
            connect_timeout: Duration::from_secs(2),
        };
        Shard::bind(0, &config, Arc::default(), Arc::new(AtomicU64::new(1))).unwrap()
    }

    fn stats_requests(shard: &Shard, n: usize) -> Vec<oneshot::Receiver<ShardStats>> {
        let handle = shard.handle();
        (0..n)
            .map(|_| {
                let (reply, answer) = oneshot::channel();
                handle.send(Command::Stats { reply }).unwrap();
                answer
            })
            .collect()
    }

    #[test]
    fn a_turn_takes_a_budget_of_commands_and_still_reads_the_socket() {
        let mut shard = shard();
        let mut answers = stats_requests(&shard, COMMAND_BUDGET * 2 + 5);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"not for any peer", shard.core.candidate()).unwrap();
        let (mut events, mut recv) = (Events::with_capacity(8), RecvBatch::default());
        shard.poll.poll(&mut events, Some(Duration::from_secs(2))).unwrap();
        assert!(shard.turn(&events, &mut recv));
        let answered = answers.iter_mut().map(|a| a.try_recv().is_ok()).filter(|ok| *ok).count();
        assert_eq!(answered, COMMAND_BUDGET, "one turn answers one budget of commands");
        assert_eq!(shard.core.counters().packets_in, 1, "the datagram was read in the same turn");
        assert_eq!(shard.next_wait(Instant::now()), Duration::ZERO, "the next turn does not wait");
        let quiet = Events::with_capacity(8);
        assert!(shard.turn(&quiet, &mut recv));
        assert!(shard.turn(&quiet, &mut recv));
        let answered = answers.iter_mut().map(|a| a.try_recv().is_ok()).filter(|ok| *ok).count();
        assert_eq!(answered, COMMAND_BUDGET + 5, "the rest in the following turns");
        assert!(shard.next_wait(Instant::now()) > Duration::ZERO, "an empty queue: the loop waits");
    }

    #[test]
    fn a_full_queue_refuses_with_busy() {
        let shard = shard();
        let _answers = stats_requests(&shard, COMMAND_QUEUE);
        let (reply, _answer) = oneshot::channel();
        assert!(matches!(shard.handle().send(Command::Stats { reply }), Err(NetError::Busy)));
    }
}
