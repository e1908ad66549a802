//! One media shard's driver: the OS thread that owns a UDP socket, the RTP floor sockets given to
//! it, its command channel and waker, around a sans-IO [`ShardCore`] that holds every rule. One
//! loop: wait (mio) for datagrams, commands or the core's next deadline; feed them to the core;
//! carry out its [`Outbox`](crate::net::core::Outbox) — datagrams in batches, source packets to the
//! other shards, ended sessions to the control plane.

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
use crate::net::core::{CoreConfig, FLUSH_AT, ShardCore};
use crate::net::udp::{self, RecvBatch};
use crate::net::{Command, MediaConfig, MediaNote, NetError, SessionEntry, ShardHandle, ShardStats};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_RTP_FLOOR: usize = 2;
/// Longest wait when nothing is scheduled.
const IDLE_WAIT: Duration = Duration::from_millis(500);

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
        let core = ShardCore::new(
            CoreConfig {
                index,
                shards: config.shards.max(1),
                candidate: SocketAddr::new(config.public_ip, local.port()),
                connect_timeout: config.connect_timeout,
                direct_srtp: true,
                flush_at: FLUSH_AT,
            },
            inputs,
        );
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
        })
    }

    pub(crate) fn handle(&self) -> ShardHandle {
        ShardHandle { tx: self.tx.clone(), waker: self.waker.clone() }
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
        info!("media shard listening");
        let mut events = Events::with_capacity(256);
        let mut recv = RecvBatch::default();
        loop {
            let now = Instant::now();
            let wait = self
                .core
                .poll_timeout()
                .map_or(IDLE_WAIT, |t| t.saturating_duration_since(now))
                .min(IDLE_WAIT);
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
            self.core.on_timeout(Instant::now());
            self.carry_out();
            self.flush();
            self.counters.busy += started.elapsed();
            self.counters.loops += 1;
        }
        info!("media shard stopped");
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
            self.core.resume(Instant::now());
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

    /// False when the shard must stop.
    fn handle_commands(&mut self) -> bool {
        while let Ok(command) = self.rx.try_recv() {
            let now = Instant::now();
            match command {
                Command::Join { event, session, join, offer, reply } => {
                    let joined = self.core.join(now, event.clone(), session.clone(), join, &offer);
                    let answer = joined.map(|joined| {
                        let entry =
                            SessionEntry { shard: self.index, event: event.id.clone(), kind: joined.kind };
                        self.sessions.insert(session, entry);
                        joined.answer
                    });
                    let _ = reply.send(answer);
                }
                Command::Switch { session, track, language, reply } => {
                    let _ = reply.send(self.core.switch(&session, track, &language));
                }
                Command::SetOnAir { event, language, on_air } => {
                    self.core.set_on_air(&event, &language, on_air)
                }
                Command::End { session, reply } => {
                    let _ = reply.send(self.core.end_session(&session));
                }
                Command::EndEvent { event } => self.end_event(&event),
                Command::OpenRtpFloor { event, socket, reply } => {
                    let _ = reply.send(self.open_rtp_floor(&event, socket));
                }
                Command::Source(packet) => self.core.deliver(packet, now),
                Command::PrepareEvent(layout) => self.core.prepare_event(&layout),
                Command::Stats { reply } => {
                    let _ = reply.send(self.stats());
                }
                Command::Shutdown => return false,
            }
            // Keep latency low while commands pile up: send what routing produced so far.
            self.carry_out();
            if self.core.outbox().send.len() >= udp::BATCH {
                self.flush();
            }
        }
        true
    }

    fn end_event(&mut self, event: &EventId) {
        self.core.end_event(event);
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
            for (source, data) in recv.iter() {
                self.core.on_datagram(now, source, data);
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
                self.core.on_rtp_datagram(now, &event, source, data);
                self.carry_out();
            }
            if received < udp::BATCH {
                break;
            }
        }
    }
}
