//! One WebRTC peer on a shard: building its `Rtc` from an SDP offer (ICE-lite, Opus only, RTP
//! mode) and what it is for (a publisher's input, a listener's tracks). Once its DTLS handshake
//! has exported the SRTP keys, the packets we send it skip str0m: the shard writes the RTP
//! header, protects it with [`crate::media::srtp`] and batches it for the socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::Transmit;
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};

use crate::ids::{EventId, InterpreterId, SessionId};
use crate::media::router::ChannelIndex;
use crate::media::rtp::RtpHeader;
use crate::media::srtp::{IndexError, RolloverCounter, SrtpSender};
use crate::media::{ChannelPacket, Continuity, Mapped, Source, SourcePacket};
use crate::net::NetError;
use crate::net::key_tap::{self, KeyTap};
use crate::net::offer::Offer;
use crate::net::settled::{SETTLE_AFTER, Settled};
use crate::net::timers::{PeerKey, Timers, Wake};
use crate::net::udp::SendBatch;

/// An audio section we send on: which channel it carries and its own RTP line.
#[derive(Debug)]
pub struct Track {
    pub mid: Mid,
    pub pt: Pt,
    pub channel: ChannelIndex,
    pub line: Continuity,
    /// A booth partner track: carries its channel only while an interpreter other than this one
    /// is on air there (the partner's voice), never the floor.
    pub partner_of: Option<InterpreterId>,
    /// The SSRC str0m announced for this section, and the guard of its SRTP packet indices.
    pub ssrc: Option<u32>,
    pub roc: RolloverCounter,
}

/// Where a packet goes on a track: its place on the track's line and its SRTP packet index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub mapped: Mapped,
    pub index: u64,
}

impl Track {
    /// Place one packet of `channel` on this track: `Ok(None)` when the line drops it (stale, a
    /// duplicate), an error when its SRTP index may not be used. The index is the line's extended
    /// sequence number, whoever protects the packet (Tolk, or str0m, which takes the same 64-bit
    /// number), so every packet of the track's SSRC has its own.
    pub fn place(
        &mut self,
        channel: ChannelIndex,
        packet: &ChannelPacket,
        now: Instant,
    ) -> Result<Option<Placed>, IndexError> {
        let Some(mapped) = self.line.map(channel as u64, packet.seq, packet.ts, now) else {
            return Ok(None);
        };
        let index = self.roc.index(mapped.seq)?;
        Ok(Some(Placed { mapped, index }))
    }
}

#[derive(Debug)]
pub enum PeerRole {
    /// Sends a source (the floor, or an interpreter's microphone) whose packets enter routing
    /// with this input key; an interpreter also receives tracks (input, partner).
    Publisher { source: Source, input: u64, tracks: Vec<Track> },
    /// Receives: the chosen channel on the first track, the floor on the second (if offered);
    /// or, an edge node's cascade, every channel (`counted` false: not a listener of a channel).
    Listener { tracks: Vec<Track>, counted: bool },
}

impl PeerRole {
    pub fn tracks(&self) -> &[Track] {
        match self {
            PeerRole::Publisher { tracks, .. } | PeerRole::Listener { tracks, .. } => tracks,
        }
    }
}

/// Where a peer is in its life. Each stage owns exactly what it needs: the engine while str0m
/// still has work, Tolk's SRTP once the DTLS keys are known, only the consent state once a
/// listener has settled.
pub enum Stage {
    /// ICE and DTLS under way: str0m does everything.
    Connecting(Engine),
    /// Connected; str0m protects and sends our packets (Tolk does not have usable keys yet, or
    /// does not know where to send).
    Engine(Engine),
    /// Connected; Tolk writes and protects our packets itself. str0m still runs DTLS, RTCP and
    /// a publisher's input.
    Direct(Engine, SrtpSender),
    /// A listener whose engine is dropped: Tolk sends its packets and answers its consent
    /// checks ([`crate::net::settled`]).
    Settled { consent: Settled, srtp: SrtpSender },
    /// Dead; about to be removed from its shard.
    Closed,
}

/// A peer's str0m engine and what Tolk learns from it.
pub struct Engine {
    /// The WebRTC engine.
    pub rtc: Box<Rtc>,
    /// The keys its DTLS exports (empty until the handshake is done, or when not usable).
    keys: KeyTap,
    /// Where str0m sent DTLS while connecting (the nominated pair, where the handshake
    /// completed): our direct packets go there. Pinned once connected: a later nomination moves
    /// str0m's own packets, not media (only a settled listener's proven address does that,
    /// [`crate::net::settled`]).
    destination: Option<SocketAddr>,
}

impl Stage {
    /// The engine, in the stages that still have one.
    pub fn engine_mut(&mut self) -> Option<&mut Engine> {
        match self {
            Stage::Connecting(engine) | Stage::Engine(engine) | Stage::Direct(engine, _) => Some(engine),
            Stage::Settled { .. } | Stage::Closed => None,
        }
    }

    /// Whether ICE and DTLS are done (and the peer not closed).
    pub fn is_connected(&self) -> bool {
        matches!(self, Stage::Engine(_) | Stage::Direct(..) | Stage::Settled { .. })
    }
}

/// One WebRTC peer on a shard.
pub struct Peer {
    /// Its place in the shard's [`PeerTable`](crate::net::table::PeerTable).
    pub key: PeerKey,
    pub session: SessionId,
    pub event: EventId,
    pub stage: Stage,
    /// Our ICE password (for the consent checks a settled listener answers).
    ice_password: String,
    /// Our ICE username fragment (how a STUN check from a new address names this peer).
    pub ufrag: String,
    /// The other side's ICE credentials, from its offer (a settled listener's own checks).
    remote_ice: Option<IceCreds>,
    pub role: PeerRole,
    /// Remote addresses that reached this peer (for the shard's demultiplexing map) and when
    /// each last sent something.
    pub remotes: Vec<(SocketAddr, Instant)>,
    /// The deadline str0m asked for, and the earliest one in the shard's timers.
    pub timeout: Instant,
    pub scheduled: Option<Instant>,
    pub span: tracing::Span,
    /// The negotiated id of the MID header extension, written into direct packets.
    mid_extension: Option<u8>,
}

/// What [`Peer::write`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nothing (not connected yet, no such track, a stale packet).
    Nothing,
    /// Protected by Tolk and queued on the shard's send batch.
    Direct,
    /// Handed to str0m (before its keys are known, or where they cannot be used): drain it.
    Engine,
    /// Dropped: its SRTP index may not be used ([`IndexError`]).
    Refused,
}

/// An accepted offer: the peer's engine, its answer and the audio sections it negotiated.
pub struct Accepted {
    pub rtc: Rtc,
    pub answer: String,
    pub ufrag: String,
    pub ice_password: String,
    /// The offerer's ICE credentials.
    pub remote_ice: Option<IceCreds>,
    /// Audio sections in offer order: mid, Opus payload type, and whether we send on it.
    pub audio: Vec<(Mid, Pt, Direction)>,
    pub timeout: Instant,
    pub transmits: Vec<Transmit>,
    pub keys: KeyTap,
    pub mid_extension: Option<u8>,
}

/// Build a peer from an offer. Nothing is kept on error.
pub fn accept(now: Instant, candidates: &[SocketAddr], offer: &str) -> Result<Accepted, NetError> {
    accept_offer(now, candidates, Offer::parse(offer)?)
}

/// Build a peer from an offer already checked and parsed (off the media thread).
pub fn accept_offer(now: Instant, candidates: &[SocketAddr], offer: Offer) -> Result<Accepted, NetError> {
    let offer = offer.0;
    let remote_ice =
        offer.session.ice_creds().or_else(|| offer.media_lines.iter().find_map(|m| m.ice_creds()));
    let (mut rtc, keys) = key_tap::with_tap(|| {
        let builder = Rtc::builder();
        let builder = match key_tap::certificate() {
            Some(cert) => builder.set_dtls_cert(cert),
            None => builder,
        };
        builder
            .set_crypto_provider(key_tap::provider())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .set_stats_interval(None)
            .build(now)
    });
    for candidate in candidates {
        let local = Candidate::host(*candidate, "udp").map_err(|e| NetError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(local);
    }
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| NetError::BadSdp(e.to_string()))?;
    let mut transmits = Vec::new();
    let timeout = loop {
        match rtc.poll_output() {
            Ok(Output::Timeout(t)) => break t,
            Ok(Output::Event(_)) => {}
            Ok(Output::Transmit(t)) => transmits.push(t),
            Err(e) => return Err(NetError::Rtc(e.to_string())),
        }
    };
    let opus: Vec<Pt> = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|p| p.spec().codec == Codec::Opus)
        .map(|p| p.pt())
        .collect();
    // The answer str0m wrote has an a=mid on every section (it checked the offer for that).
    let audio: Vec<(Mid, Pt, Direction)> = answer
        .media_lines
        .iter()
        .filter_map(|line| {
            let media = rtc.media(line.mid())?;
            if media.kind() != MediaKind::Audio || media.disabled() {
                return None;
            }
            let pt = opus.iter().copied().find(|pt| media.remote_pts().contains(pt))?;
            Some((media.mid(), pt, media.direction()))
        })
        .collect();
    let credentials = rtc.direct_api().local_ice_credentials();
    let answer = answer.to_sdp_string();
    let mid_extension = mid_extension(&answer);
    Ok(Accepted {
        rtc,
        answer,
        ufrag: credentials.ufrag,
        ice_password: credentials.pass,
        remote_ice,
        audio,
        timeout,
        transmits,
        keys,
        mid_extension,
    })
}

/// The id the SDP gives the MID header extension (RFC 9143), if it has one.
fn mid_extension(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?;
        (uri.trim() == "urn:ietf:params:rtp-hdrext:sdes:mid").then(|| id.parse().ok()).flatten()
    })
}

impl Accepted {
    /// Audio sections we send on (the offer said recvonly or sendrecv).
    pub fn sending(&self) -> impl Iterator<Item = (Mid, Pt)> + '_ {
        self.audio
            .iter()
            .filter(|(_, _, d)| matches!(d, Direction::SendOnly | Direction::SendRecv))
            .map(|(m, p, _)| (*m, *p))
    }

    /// Whether some audio section receives from the peer (the offer said sendonly or sendrecv).
    pub fn receives(&self) -> bool {
        self.audio.iter().any(|(_, _, d)| matches!(d, Direction::RecvOnly | Direction::SendRecv))
    }
}

impl Accepted {
    /// A listener's tracks: the chosen channel on the first audio section it receives, the floor
    /// on the second (if the offer has one).
    pub fn listener_tracks(&self, chosen: ChannelIndex) -> Result<Vec<Track>, NetError> {
        let tracks = self.tracks([(chosen, None), (0, None)]);
        if tracks.is_empty() {
            return Err(NetError::Unsupported(
                "the offer has no Opus audio section to receive (WHEP needs a=recvonly audio with Opus)"
                    .into(),
            ));
        }
        Ok(tracks)
    }

    /// An interpreter's tracks: what they listen to (`input`: the floor or a relay channel) on the
    /// first audio section they receive, their booth partner's voice on `booth` on the second.
    pub fn booth_tracks(&self, input: ChannelIndex, booth: ChannelIndex, me: InterpreterId) -> Vec<Track> {
        self.tracks([(input, None), (booth, Some(me))])
    }

    /// An edge node's cascade subscription: channel k of the event on the k-th audio section it
    /// receives, every channel of the event.
    pub fn cascade_tracks(&self, channels: usize) -> Result<Vec<Track>, NetError> {
        let tracks = self.tracks((0..channels).map(|c| (c, None)));
        if tracks.len() < channels {
            return Err(NetError::Unsupported(format!(
                "a cascade takes every channel of the event: {channels} audio sections that receive Opus, not {}",
                tracks.len()
            )));
        }
        Ok(tracks)
    }

    fn tracks(&self, plan: impl IntoIterator<Item = (ChannelIndex, Option<InterpreterId>)>) -> Vec<Track> {
        let mut rng = rand::rng();
        self.sending()
            .zip(plan)
            .map(|((mid, pt), (channel, partner_of))| Track {
                mid,
                pt,
                channel,
                line: Continuity::new(Mapped { seq: rng.random_range(0..1 << 14), ts: rng.random() }),
                partner_of,
                ssrc: None,
                roc: RolloverCounter::default(),
            })
            .collect()
    }
}

impl Peer {
    /// Where this peer's media goes once Tolk sends it: the address that is never expired.
    pub fn destination(&self) -> Option<SocketAddr> {
        match &self.stage {
            Stage::Settled { consent, .. } => Some(consent.destination()),
            Stage::Engine(engine) | Stage::Direct(engine, _) | Stage::Connecting(engine) => {
                engine.destination
            }
            Stage::Closed => None,
        }
    }

    /// Our ICE password: the key of every STUN check meant for this peer.
    pub fn ice_password(&self) -> &str {
        &self.ice_password
    }

    /// A peer in the `Connecting` stage, from an accepted offer.
    pub fn new(
        key: PeerKey,
        session: SessionId,
        event: EventId,
        accepted: Accepted,
        role: PeerRole,
        span: tracing::Span,
    ) -> Self {
        let engine = Engine { rtc: Box::new(accepted.rtc), keys: accepted.keys, destination: None };
        Self {
            key,
            session,
            event,
            stage: Stage::Connecting(engine),
            ice_password: accepted.ice_password,
            ufrag: accepted.ufrag,
            remote_ice: accepted.remote_ice,
            role,
            remotes: Vec::new(),
            timeout: accepted.timeout,
            scheduled: Some(accepted.timeout),
            span,
            mid_extension: accepted.mid_extension,
        }
    }

    /// Keep our packets on str0m's send path for good (a diagnosis and benchmark setting): the
    /// keys the handshake exports are ignored.
    pub fn keep_engine_send_path(&mut self) {
        if let Some(engine) = self.stage.engine_mut() {
            engine.keys = KeyTap::default();
        }
    }

    /// `Engine` → `Direct` once the DTLS keys are known and str0m has shown where it sends.
    fn promote(&mut self) {
        let Stage::Engine(engine) = &mut self.stage else { return };
        let Some(keys) = engine.keys.get() else { return };
        if engine.destination.is_none() {
            return;
        }
        let sender = match keys.sender() {
            Ok(sender) => sender,
            Err(e) => {
                self.span.in_scope(|| tracing::warn!(error = %e, "SRTP keys unusable; str0m sends"));
                engine.keys = KeyTap::default();
                return;
            }
        };
        let profile = keys.profile;
        self.span.in_scope(|| tracing::debug!(?profile, "sending with Tolk's SRTP"));
        if let Stage::Engine(engine) = std::mem::replace(&mut self.stage, Stage::Closed) {
            self.stage = Stage::Direct(engine, sender);
        }
    }

    /// Write one channel packet on one of our tracks, rebased onto that track's own line.
    pub fn write(
        &mut self,
        track: usize,
        channel: ChannelIndex,
        packet: &ChannelPacket,
        now: Instant,
        send: &mut SendBatch,
    ) -> Written {
        if !self.stage.is_connected() {
            return Written::Nothing;
        }
        self.promote();
        let (PeerRole::Listener { tracks, .. } | PeerRole::Publisher { tracks, .. }) = &mut self.role;
        let Some(track) = tracks.get_mut(track) else { return Written::Nothing };
        let placed = match track.place(channel, packet, now) {
            Ok(Some(placed)) => placed,
            Ok(None) => return Written::Nothing,
            Err(e) => {
                self.span.in_scope(|| tracing::debug!(error = %e, "packet dropped"));
                return Written::Refused;
            }
        };
        let engine = match &mut self.stage {
            Stage::Settled { srtp, consent } => {
                let Some(ssrc) = track.ssrc else { return Written::Nothing };
                let destination = consent.destination();
                let direct = DirectWrite { srtp, destination, ssrc, mid_extension: self.mid_extension };
                direct.write(track, &placed, packet, send, &self.span);
                return Written::Direct;
            }
            Stage::Direct(engine, srtp) => {
                if track.ssrc.is_none() {
                    track.ssrc = engine.rtc.direct_api().stream_tx_by_mid(track.mid, None).map(|s| *s.ssrc());
                }
                if let (Some(ssrc), Some(destination)) = (track.ssrc, engine.destination) {
                    let direct = DirectWrite { srtp, destination, ssrc, mid_extension: self.mid_extension };
                    direct.write(track, &placed, packet, send, &self.span);
                    return Written::Direct;
                }
                engine
            }
            Stage::Engine(engine) => engine,
            Stage::Connecting(_) | Stage::Closed => return Written::Nothing,
        };
        let rtc = &mut engine.rtc;
        let mut direct = rtc.direct_api();
        let Some(stream) = direct.stream_tx_by_mid(track.mid, None) else { return Written::Nothing };
        stream.write_rtp(
            RtpWrite::new(
                track.pt,
                placed.index.into(),
                placed.mapped.ts,
                packet.received_at,
                packet.payload.clone(),
            )
            .marker(packet.marker),
        );
        // str0m queues the packet and asks for a timeout before it sends; give it now, so the
        // packet leaves in this turn rather than at the next timer.
        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
            self.span.in_scope(|| tracing::debug!(error = %e, "timeout after write rejected"));
        }
        Written::Engine
    }

    /// Drain the engine until it asks for its next deadline: transmits go to `send`, a publisher's
    /// RTP to `sources`, the deadline to `timers` (when earlier than the one scheduled). Returns
    /// why the peer died, if it did.
    pub fn drain(
        &mut self,
        now: Instant,
        send: &mut SendBatch,
        timers: &mut Timers,
        sources: &mut Vec<Arc<SourcePacket>>,
    ) -> Option<&'static str> {
        let listener = matches!(self.role, PeerRole::Listener { .. });
        let mut connected = false;
        let connecting = matches!(self.stage, Stage::Connecting(_));
        let engine = self.stage.engine_mut()?;
        let rtc = &mut engine.rtc;
        let died = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    if self.scheduled.is_none_or(|s| t < s) {
                        self.scheduled = Some(t);
                        timers.schedule(t, self.key, Wake::Engine);
                    }
                    break None;
                }
                Ok(Output::Transmit(t)) => {
                    // DTLS (first byte 20–63) and SRTCP go over the nominated pair; STUN
                    // answers go wherever a check came from.
                    if connecting && t.contents.first().is_some_and(|b| *b >= 20) {
                        engine.destination = Some(t.destination);
                    }
                    send.push(t.destination, t.contents.into());
                }
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected))) => {
                    break Some("ICE disconnected");
                }
                Ok(Output::Event(Event::RtpPacket(packet))) => {
                    if let PeerRole::Publisher { source, input, .. } = self.role {
                        sources.push(Arc::new(SourcePacket {
                            event: self.event.clone(),
                            source,
                            input,
                            seq: *packet.seq_no,
                            ts: packet.header.timestamp,
                            marker: packet.header.marker,
                            payload: packet.payload,
                            received_at: packet.timestamp,
                        }));
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    self.span.in_scope(|| tracing::warn!(error = %e, "WebRTC engine error"));
                    break Some("WebRTC engine error");
                }
            }
        };
        let alive = rtc.is_alive();
        if connected && let Stage::Connecting(_) = self.stage {
            if let Stage::Connecting(engine) = std::mem::replace(&mut self.stage, Stage::Closed) {
                self.stage = Stage::Engine(engine);
            }
            self.span.in_scope(|| tracing::info!("connected"));
            if listener {
                timers.schedule(now + SETTLE_AFTER, self.key, Wake::Settle);
            }
        }
        if died.is_some() {
            return died;
        }
        if alive { None } else { Some("closed") }
    }

    /// Drop a listener's engine once Tolk sends its packets and knows where to: true when it
    /// settled. Publishers and booths keep theirs (they receive media), as does a listener whose
    /// keys are not known (it stays on str0m's send path).
    pub fn settle(&mut self, now: Instant) -> bool {
        self.promote();
        let PeerRole::Listener { tracks, .. } = &mut self.role else { return false };
        let Stage::Direct(engine, _) = &mut self.stage else { return false };
        for track in tracks.iter_mut() {
            if track.ssrc.is_none() {
                track.ssrc = engine.rtc.direct_api().stream_tx_by_mid(track.mid, None).map(|s| *s.ssrc());
            }
        }
        if tracks.iter().any(|t| t.ssrc.is_none()) {
            return false;
        }
        let Stage::Direct(engine, srtp) = std::mem::replace(&mut self.stage, Stage::Closed) else {
            return false;
        };
        let (Some(destination), Some(remote)) = (engine.destination, self.remote_ice.clone()) else {
            self.stage = Stage::Direct(engine, srtp);
            return false;
        };
        let consent = Settled::new(self.ufrag.clone(), self.ice_password.clone(), remote, destination, now);
        self.stage = Stage::Settled { consent, srtp };
        self.span.in_scope(|| tracing::debug!("settled: engine dropped, consent answered by Tolk"));
        true
    }
}

/// One packet protected by Tolk's SRTP and queued for the socket.
struct DirectWrite<'a> {
    srtp: &'a SrtpSender,
    destination: SocketAddr,
    ssrc: u32,
    mid_extension: Option<u8>,
}

impl DirectWrite<'_> {
    fn write(
        self,
        track: &Track,
        placed: &Placed,
        packet: &ChannelPacket,
        send: &mut SendBatch,
        span: &tracing::Span,
    ) {
        let seq = placed.index as u16;
        let mid_bytes = track.mid.as_bytes();
        let header = RtpHeader {
            payload_type: *track.pt,
            marker: packet.marker,
            seq,
            timestamp: placed.mapped.ts,
            ssrc: self.ssrc,
            extension: self.mid_extension.map(|id| (id, mid_bytes)),
        };
        let mut datagram = send.buffer();
        let header_len = header.write(&mut datagram);
        datagram.extend_from_slice(&packet.payload);
        match self.srtp.protect(&mut datagram, header_len, self.ssrc, placed.index) {
            Ok(()) => send.push(self.destination, datagram),
            Err(e) => span.in_scope(|| tracing::debug!(error = %e, "SRTP protect failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(start: u64) -> Track {
        Track {
            mid: Mid::from("0"),
            pt: Pt::from(111),
            channel: 0,
            line: Continuity::new(Mapped { seq: start, ts: 0 }),
            partner_of: None,
            ssrc: Some(1),
            roc: RolloverCounter::default(),
        }
    }

    fn packet(seq: u64) -> ChannelPacket {
        ChannelPacket {
            seq,
            ts: (seq as u32).wrapping_mul(960),
            marker: false,
            payload: Arc::from(&b"opus"[..]),
            received_at: Instant::now(),
        }
    }

    /// The regression: a packet reordered around 65535 → 0 on the outgoing line took index
    /// ROC · 2¹⁶ + 65535 from the truncated sequence number (one rollover too many), the index the
    /// line reaches again 65,536 packets later: a repeated AES-GCM nonce for that SSRC.
    #[test]
    fn a_packet_late_across_the_wrap_never_repeats_an_srtp_index() {
        let mut track = track(65_533);
        let now = Instant::now();
        let mut used = std::collections::HashSet::new();
        let mut send = |track: &mut Track, seq: u64| {
            let placed = track.place(0, &packet(seq), now);
            if let Ok(Some(placed)) = placed {
                assert!(used.insert(placed.index), "index {:#x} used twice", placed.index);
                assert_eq!(placed.index, placed.mapped.seq, "the index is the extended sequence number");
            }
            placed
        };
        // Out: 65_533, 65_534, 65_536 (= ROC 1, seq 0), then 65_535 late, across the wrap.
        for seq in [1, 2, 4] {
            assert!(matches!(send(&mut track, seq), Ok(Some(_))));
        }
        assert_eq!(send(&mut track, 3), Err(IndexError::BackAcrossWrap { index: 65_535, roc: 1 }));
        // On to the next wrap and past it.
        for seq in 5..70_000 {
            assert!(matches!(send(&mut track, seq), Ok(Some(_))));
        }
    }

    mod properties {
        use std::collections::HashSet;
        use std::time::Duration;

        use proptest::prelude::*;

        use super::*;
        use crate::ids::Language;
        use crate::media::router::{EventRouter, OnAir};
        use crate::media::rtp::SeqExtender;

        /// What happens next in an event with a floor and two interpreters.
        #[derive(Debug, Clone)]
        enum Step {
            /// Source 0 (the floor), 1 or 2 (the interpreters) sends a packet `delta` away from
            /// its newest (ahead with a gap; 0 a duplicate; behind: late).
            Send {
                source: usize,
                delta: i32,
            },
            /// Who is on air in the interpretation channel (0: nobody), muted or not.
            OnAir {
                who: usize,
                muted: bool,
            },
            /// A publisher reconnects: a new input line, a new numbering.
            Reconnect {
                source: usize,
                seq: u16,
            },
            /// The listener switches its track to channel 0 (the floor) or 1.
            Switch {
                channel: ChannelIndex,
            },
            Wait {
                ms: u64,
            },
        }

        fn steps() -> impl Strategy<Value = Vec<Step>> {
            let delta = prop_oneof![10 => Just(1i32), 2 => 2i32..30, 4 => -70i32..=0];
            let step = prop_oneof![
                30 => (0usize..3, delta).prop_map(|(source, delta)| Step::Send { source, delta }),
                2 => (0usize..3, any::<bool>()).prop_map(|(who, muted)| Step::OnAir { who, muted }),
                1 => (0usize..3, any::<u16>()).prop_map(|(source, seq)| Step::Reconnect { source, seq }),
                2 => (0usize..2).prop_map(|channel| Step::Switch { channel }),
                3 => (0u64..500).prop_map(|ms| Step::Wait { ms }),
            ];
            proptest::collection::vec(step, 1..800)
        }

        struct Sender {
            input: u64,
            newest: u16,
            extender: SeqExtender,
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The whole path of a listener's packets: 16-bit source numbers (extended), the
            /// channel lines, the listener's track line, the track's SRTP index. However the
            /// sources reorder, repeat, skip, wrap and change, and the listener switches: every
            /// index the track's SSRC protects with is unique, is the line's extended sequence
            /// number (its low 16 bits in the header), its rollover count never steps back, and
            /// the only packets refused are late ones across a wrap of the track's line.
            #[test]
            fn every_srtp_index_of_a_track_is_used_once(
                (roc, lead) in (1u64..4, 0u64..150),
                starts in proptest::collection::vec(any::<u16>(), 3),
                steps in steps(),
            ) {
                let lang = |s: &str| Language::parse(s).map_err(|e| TestCaseError::fail(e.to_string()));
                let mut router = EventRouter::new(&lang("en")?, &[lang("fr")?]);
                let mut track = track((roc << 16) - lead);
                let mut senders: Vec<Sender> = starts
                    .iter()
                    .enumerate()
                    .map(|(i, seq)| Sender { input: i as u64, newest: *seq, extender: SeqExtender::default() })
                    .collect();
                let mut inputs = senders.len() as u64;
                let mut listening: ChannelIndex = 1;
                let mut now = Instant::now();
                let mut routed = Vec::new();
                let mut used = HashSet::new();
                let mut highest_roc = 0;
                for step in steps {
                    match step {
                        Step::Send { source, delta } => {
                            let sender = &mut senders[source];
                            let seq = sender.newest.wrapping_add_signed(delta as i16);
                            if delta > 0 {
                                sender.newest = seq;
                            }
                            let packet = SourcePacket {
                                event: crate::ids::EventId::parse("e").map_err(|e| TestCaseError::fail(e.to_string()))?,
                                source: if source == 0 { Source::Floor } else { Source::Booth(InterpreterId(source as i64)) },
                                input: sender.input,
                                seq: sender.extender.extend(seq),
                                ts: u32::from(seq).wrapping_mul(960).wrapping_sub(1 << 20),
                                marker: false,
                                payload: Arc::from(&b"opus"[..]),
                                received_at: now,
                            };
                            routed.clear();
                            router.route(&packet, now, &mut routed);
                            for (channel, packet) in routed.iter().filter(|(c, _)| *c == listening) {
                                match track.place(*channel, packet, now) {
                                    Ok(None) => {}
                                    Ok(Some(placed)) => {
                                        prop_assert_eq!(placed.index, placed.mapped.seq);
                                        prop_assert!(used.insert(placed.index), "index {:#x} twice", placed.index);
                                        prop_assert!(placed.index >> 16 >= highest_roc, "the rollover count stepped back");
                                        highest_roc = placed.index >> 16;
                                    }
                                    Err(IndexError::BackAcrossWrap { index, roc }) => {
                                        prop_assert!(index >> 16 < u64::from(roc));
                                        prop_assert!(!used.contains(&index), "a refused index had not been used");
                                    }
                                    Err(e) => prop_assert!(false, "refused for another reason: {}", e),
                                }
                            }
                        }
                        Step::OnAir { who, muted } => {
                            let on_air = (who > 0).then_some(OnAir { interpreter: InterpreterId(who as i64), muted });
                            router.set_on_air(1, on_air);
                        }
                        Step::Reconnect { source, seq } => {
                            senders[source] = Sender { input: inputs, newest: seq, extender: SeqExtender::default() };
                            inputs += 1;
                        }
                        Step::Switch { channel } => listening = channel,
                        Step::Wait { ms } => now += Duration::from_millis(ms),
                    }
                    now += Duration::from_millis(1);
                }
            }
        }
    }
}
