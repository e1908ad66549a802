//! The WebRTC peer that receives a BBB meeting's listen-only mix from bbb-webrtc-sfu (mediasoup:
//! ICE-lite, every candidate in the SDP). Tolk is the full ICE agent here, so it is the
//! controlling side. Each received RTP packet is forwarded as plain RTP, under an SSRC of this
//! peer's own, to the event's loopback floor socket in the media shards: a reconnection is a new
//! SSRC, which the shards treat as a new input on the same continuity line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::{Event, IceConnectionState, Rtc};

use super::BbbError;
use crate::media::rtp::RtpHeader;
use crate::rtc_link::{Polled, RtcLink, forward_rtp};

/// What the peer reports to the floor runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerNote {
    Connected,
    /// The first RTP packet from the meeting (sent on to the floor).
    FirstAudio,
    /// ICE or DTLS is gone.
    Lost,
}

/// The non-blocking socket a floor forwards the meeting's packets from, to `forward_to`.
pub(super) fn forward_socket(forward_to: SocketAddr) -> Result<std::net::UdpSocket, BbbError> {
    let io = |what: &str, e: std::io::Error| BbbError::Media(format!("{what}: {e}"));
    let forward = std::net::UdpSocket::bind(SocketAddr::new(forward_to.ip(), 0))
        .map_err(|e| io("could not bind the floor forwarding socket", e))?;
    forward.set_nonblocking(true).map_err(|e| io("floor forwarding socket", e))?;
    Ok(forward)
}

pub(super) struct FloorPeer {
    link: RtcLink,
    pending: Option<SdpPendingOffer>,
    forward: Arc<std::net::UdpSocket>,
    forward_to: SocketAddr,
    ssrc: u32,
    packets: u64,
    out: Vec<u8>,
}

impl FloorPeer {
    /// A peer on a UDP port of the local address that routes toward `remote` (BBB's media).
    pub(super) async fn new(
        remote: IpAddr,
        forward: Arc<std::net::UdpSocket>,
        forward_to: SocketAddr,
    ) -> Result<Self, BbbError> {
        let rtc =
            Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
        let link = RtcLink::bind(remote, rtc).await.map_err(BbbError::Media)?;
        Ok(Self {
            link,
            pending: None,
            forward,
            forward_to,
            ssrc: rand::random(),
            packets: 0,
            out: Vec::with_capacity(1500),
        })
    }

    /// Answer the server's offer (BBB 3.x).
    pub(super) fn answer(&mut self, offer: &str) -> Result<String, BbbError> {
        self.link.answer(offer).map_err(|e| BbbError::Signalling(format!("the server's offer: {e}")))
    }

    /// Our offer: one receive-only audio section (older BBB servers).
    pub(super) fn offer(&mut self) -> Result<String, BbbError> {
        let mut change = self.link.rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().ok_or_else(|| BbbError::Media("str0m made no offer".into()))?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// The server's answer to our offer.
    pub(super) fn accept_answer(&mut self, answer: &str) -> Result<(), BbbError> {
        let pending =
            self.pending.take().ok_or_else(|| BbbError::Signalling("an answer without our offer".into()))?;
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| BbbError::Signalling(format!("the server's SDP answer is malformed: {e}")))?;
        self.link
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| BbbError::Signalling(format!("cannot use the server's answer: {e}")))
    }

    /// A trickled remote candidate (`candidate:…` or `a=candidate:…`); a bad one is ignored.
    pub(super) fn add_remote_candidate(&mut self, candidate: &str) {
        self.link.add_remote_candidate(candidate);
    }

    /// Drive the peer until it has something to report. Cancel-safe: all state is in `self`.
    pub(super) async fn next(&mut self) -> Result<PeerNote, BbbError> {
        loop {
            let deadline = loop {
                match self.link.poll().map_err(BbbError::Media)? {
                    Polled::Timeout(t) => break t,
                    Polled::Event(Event::Connected) => return Ok(PeerNote::Connected),
                    Polled::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                        return Ok(PeerNote::Lost);
                    }
                    Polled::Event(Event::RtpPacket(packet)) => {
                        self.forward(&packet);
                        if self.packets == 1 {
                            return Ok(PeerNote::FirstAudio);
                        }
                    }
                    Polled::Event(_) => {}
                }
            };
            if !self.link.rtc.is_alive() {
                return Ok(PeerNote::Lost);
            }
            self.link.wait(deadline).await.map_err(BbbError::Media)?;
        }
    }

    /// Packets forwarded to the floor so far.
    pub(super) fn packets(&self) -> u64 {
        self.packets
    }

    fn forward(&mut self, packet: &str0m::rtp::RtpPacket) {
        let h = &packet.header;
        let header = RtpHeader {
            payload_type: *h.payload_type,
            marker: h.marker,
            seq: h.sequence_number,
            timestamp: h.timestamp,
            ssrc: self.ssrc,
            extension: None,
        };
        if forward_rtp(&self.forward, self.forward_to, &mut self.out, header, &packet.payload) {
            self.packets += 1;
        }
    }
}

/// The address of the first UDP candidate in an SDP (where BBB's media is).
pub(crate) fn first_candidate_ip(sdp: &str) -> Option<IpAddr> {
    sdp.lines().filter_map(|l| l.trim().strip_prefix("a=candidate:")).find_map(|c| {
        let fields: Vec<&str> = c.split_whitespace().collect();
        match fields.as_slice() {
            [_, _, proto, _, ip, ..] if proto.eq_ignore_ascii_case("udp") => ip.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_address_from_sdp() {
        let sdp = "v=0\r\na=candidate:1 1 tcp 1 10.0.0.1 9 typ host\r\na=candidate:udpcandidate 1 udp 1076302079 198.51.100.7 24577 typ host\r\n";
        assert_eq!(first_candidate_ip(sdp), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(first_candidate_ip("v=0\r\n"), None);
    }
}
