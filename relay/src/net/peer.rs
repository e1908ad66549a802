//! One WebRTC peer on a shard: building its `Rtc` from an SDP offer (ICE-lite, Opus only, RTP
//! mode) and what it is for (a publisher's input, a listener's tracks).

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::Transmit;
use str0m::{Candidate, Output, Rtc};

use crate::ids::{EventId, SessionId};
use crate::media::Continuity;
use crate::media::router::ChannelIndex;
use crate::net::NetError;
use crate::net::timers::PeerKey;

/// A listener's audio section: which channel it carries and its own RTP line.
#[derive(Debug)]
pub struct Track {
    pub mid: Mid,
    pub pt: Pt,
    pub channel: ChannelIndex,
    pub line: Continuity,
}

#[derive(Debug)]
pub enum PeerRole {
    /// Sends the floor; its packets enter routing with this input key.
    FloorPublisher { input: u64 },
    /// Receives: the chosen channel on the first track, the floor on the second (if offered).
    Listener { tracks: Vec<Track> },
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
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| NetError::BadSdp(e.to_string()))?;
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
    Ok(Accepted {
        rtc,
        answer: answer.to_sdp_string(),
        ufrag,
        audio,
        timeout,
        transmits,
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
        self.audio
            .iter()
            .any(|(_, _, d)| matches!(d, Direction::RecvOnly | Direction::SendRecv))
    }
}
