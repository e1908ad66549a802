//! One WebRTC peer on a shard: building its `Rtc` from an SDP offer (ICE-lite, Opus only, RTP
//! mode) and what it is for (a publisher's input, a listener's tracks).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::Transmit;
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::ids::{EventId, InterpreterId, SessionId};
use crate::media::router::ChannelIndex;
use crate::media::{ChannelPacket, Continuity, Mapped, Source, SourcePacket};
use crate::net::NetError;
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
}

#[derive(Debug)]
pub enum PeerRole {
    /// Sends a source (the floor, or an interpreter's microphone) whose packets enter routing
    /// with this input key; an interpreter also receives tracks (input, partner).
    Publisher { source: Source, input: u64, tracks: Vec<Track> },
    /// Receives: the chosen channel on the first track, the floor on the second (if offered).
    Listener { tracks: Vec<Track> },
}

impl PeerRole {
    pub fn tracks(&self) -> &[Track] {
        match self {
            PeerRole::Publisher { tracks, .. } | PeerRole::Listener { tracks } => tracks,
        }
    }
}

pub struct Peer {
    pub key: PeerKey,
    pub session: SessionId,
    pub event: EventId,
    pub rtc: Rtc,
    pub ufrag: String,
    pub role: PeerRole,
    pub connected: bool,
    /// Remote addresses that reached this peer (for the shard's demultiplexing map).
    pub remotes: Vec<SocketAddr>,
    /// The deadline str0m asked for, and the earliest one in the shard's timers.
    pub timeout: Instant,
    pub scheduled: Option<Instant>,
    pub span: tracing::Span,
}

/// An accepted offer: the peer's engine, its answer and the audio sections it negotiated.
pub struct Accepted {
    pub rtc: Rtc,
    pub answer: String,
    pub ufrag: String,
    /// Audio sections in offer order: mid, Opus payload type, and whether we send on it.
    pub audio: Vec<(Mid, Pt, Direction)>,
    pub timeout: Instant,
    pub transmits: Vec<Transmit>,
}

/// Build a peer from an offer. Nothing is kept on error.
pub fn accept(now: Instant, candidate: SocketAddr, offer: &str) -> Result<Accepted, NetError> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| NetError::BadSdp(e.to_string()))?;
    let mut rtc = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .set_stats_interval(None)
        .build(now);
    let local = Candidate::host(candidate, "udp").map_err(|e| NetError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(local);
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
    let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
    Ok(Accepted { rtc, answer: answer.to_sdp_string(), ufrag, audio, timeout, transmits })
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

    fn tracks(&self, plan: [(ChannelIndex, Option<InterpreterId>); 2]) -> Vec<Track> {
        let mut rng = rand::rng();
        self.sending()
            .zip(plan)
            .map(|((mid, pt), (channel, partner_of))| Track {
                mid,
                pt,
                channel,
                line: Continuity::new(Mapped { seq: rng.random_range(0..1 << 14), ts: rng.random() }),
                partner_of,
            })
            .collect()
    }
}

impl Peer {
    pub fn new(
        key: PeerKey,
        session: SessionId,
        event: EventId,
        accepted: Accepted,
        role: PeerRole,
        span: tracing::Span,
    ) -> Self {
        Self {
            key,
            session,
            event,
            rtc: accepted.rtc,
            ufrag: accepted.ufrag,
            role,
            connected: false,
            remotes: Vec::new(),
            timeout: accepted.timeout,
            scheduled: Some(accepted.timeout),
            span,
        }
    }

    /// Write one channel packet on one of our tracks, rebased onto that track's own line. False
    /// when nothing was written (not connected yet, no such track, a stale packet).
    pub fn write(
        &mut self,
        track: usize,
        channel: ChannelIndex,
        packet: &ChannelPacket,
        now: Instant,
    ) -> bool {
        if !self.connected {
            return false;
        }
        let (PeerRole::Listener { tracks } | PeerRole::Publisher { tracks, .. }) = &mut self.role;
        let Some(track) = tracks.get_mut(track) else { return false };
        let Some(m) = track.line.map(channel as u64, packet.seq, packet.ts, now) else { return false };
        let (mid, pt) = (track.mid, track.pt);
        let mut direct = self.rtc.direct_api();
        let Some(stream) = direct.stream_tx_by_mid(mid, None) else { return false };
        stream.write_rtp(
            RtpWrite::new(pt, m.seq.into(), m.ts, packet.received_at, packet.payload.clone())
                .marker(packet.marker),
        );
        // str0m queues the packet and asks for a timeout before it sends; give it now, so the
        // packet leaves in this turn rather than at the next timer.
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.span.in_scope(|| tracing::debug!(error = %e, "timeout after write rejected"));
        }
        true
    }

    /// Drain the engine until it asks for its next deadline: transmits go to `send`, a publisher's
    /// RTP to `sources`, the deadline to `timers` (when earlier than the one scheduled). Returns
    /// why the peer died, if it did.
    pub fn drain(
        &mut self,
        send: &mut SendBatch,
        timers: &mut Timers,
        sources: &mut Vec<Arc<SourcePacket>>,
    ) -> Option<&'static str> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    if self.scheduled.is_none_or(|s| t < s) {
                        self.scheduled = Some(t);
                        timers.schedule(t, self.key, Wake::Engine);
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => send.push(t.destination, t.contents.into()),
                Ok(Output::Event(Event::Connected)) => {
                    self.connected = true;
                    self.span.in_scope(|| tracing::info!("connected"));
                }
                Ok(Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected))) => {
                    return Some("ICE disconnected");
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
                    return Some("WebRTC engine error");
                }
            }
        }
        if self.rtc.is_alive() { None } else { Some("closed") }
    }
}
