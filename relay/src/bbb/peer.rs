//! The WebRTC peer that receives a BBB meeting's listen-only mix from bbb-webrtc-sfu (mediasoup:
//! ICE-lite, every candidate in the SDP). Tolk is the full ICE agent here, so it is the
//! controlling side. Each received RTP packet is forwarded as plain RTP, under an SSRC of this
//! peer's own, to the event's loopback floor socket in the media shards: a reconnection is a new
//! SSRC, which the shards treat as a new input on the same continuity line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tracing::debug;

use super::BbbError;

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
    rtc: Rtc,
    socket: tokio::net::UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    forward: Arc<std::net::UdpSocket>,
    forward_to: SocketAddr,
    ssrc: u32,
    packets: u64,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl FloorPeer {
    /// A peer on a UDP port of the local address that routes toward `remote` (BBB's media).
    pub(super) async fn new(
        remote: IpAddr,
        forward: Arc<std::net::UdpSocket>,
        forward_to: SocketAddr,
    ) -> Result<Self, BbbError> {
        let io = |what: &str, e: std::io::Error| BbbError::Media(format!("{what}: {e}"));
        let local_ip = route_source(remote).map_err(|e| io("no route to BBB's media address", e))?;
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| io("could not bind a UDP socket for BBB's media", e))?;
        let local = socket.local_addr().map_err(|e| io("UDP socket", e))?;
        let mut rtc =
            Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| BbbError::Media(format!("local candidate {local}: {e}")))?;
        rtc.add_local_candidate(candidate);
        Ok(Self {
            rtc,
            socket,
            local,
            pending: None,
            forward,
            forward_to,
            ssrc: rand::random(),
            packets: 0,
            buf: vec![0; 2000],
            out: Vec::with_capacity(1500),
        })
    }

    /// Answer the server's offer (BBB 3.x).
    pub(super) fn answer(&mut self, offer: &str) -> Result<String, BbbError> {
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| BbbError::Signalling(format!("the server's SDP offer is malformed: {e}")))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| BbbError::Signalling(format!("cannot answer the server's offer: {e}")))?;
        Ok(answer.to_sdp_string())
    }

    /// Our offer: one receive-only audio section (older BBB servers).
    pub(super) fn offer(&mut self) -> Result<String, BbbError> {
        let mut change = self.rtc.sdp_api();
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
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| BbbError::Signalling(format!("cannot use the server's answer: {e}")))
    }

    /// A trickled remote candidate (`candidate:…` or `a=candidate:…`); a bad one is ignored.
    pub(super) fn add_remote_candidate(&mut self, candidate: &str) {
        let line = candidate.trim().trim_start_matches("a=");
        match Candidate::from_sdp_string(line) {
            Ok(c) => self.rtc.add_remote_candidate(c),
            Err(e) => debug!(error = %e, "remote candidate ignored"),
        }
    }

    /// Drive the peer until it has something to report. Cancel-safe: all state is in `self`.
    pub(super) async fn next(&mut self) -> Result<PeerNote, BbbError> {
        loop {
            let deadline = loop {
                match self.rtc.poll_output().map_err(|e| BbbError::Media(e.to_string()))? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::Connected) => return Ok(PeerNote::Connected),
                    Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                        return Ok(PeerNote::Lost);
                    }
                    Output::Event(Event::RtpPacket(packet)) => {
                        self.forward(&packet);
                        if self.packets == 1 {
                            return Ok(PeerNote::FirstAudio);
                        }
                    }
                    Output::Event(_) => {}
                }
            };
            if !self.rtc.is_alive() {
                return Ok(PeerNote::Lost);
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                received = self.socket.recv_from(&mut self.buf) => {
                    let (n, source) = received.map_err(|e| BbbError::Media(format!("UDP receive: {e}")))?;
                    let Some(data) = self.buf.get(..n) else { continue };
                    match Receive::new(Protocol::Udp, source, self.local, data) {
                        Ok(receive) => {
                            if let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), receive)) {
                                debug!(error = %e, %source, "datagram from BBB rejected");
                            }
                        }
                        Err(e) => debug!(error = %e, %source, "datagram that is not STUN, DTLS or RTP"),
                    }
                }
                () = sleep => {
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .map_err(|e| BbbError::Media(e.to_string()))?;
                }
            }
        }
    }

    /// Packets forwarded to the floor so far.
    pub(super) fn packets(&self) -> u64 {
        self.packets
    }

    fn forward(&mut self, packet: &str0m::rtp::RtpPacket) {
        let h = &packet.header;
        self.out.clear();
        self.out.push(0x80);
        self.out.push((u8::from(h.marker) << 7) | (*h.payload_type & 0x7f));
        self.out.extend_from_slice(&h.sequence_number.to_be_bytes());
        self.out.extend_from_slice(&h.timestamp.to_be_bytes());
        self.out.extend_from_slice(&self.ssrc.to_be_bytes());
        self.out.extend_from_slice(&packet.payload);
        match self.forward.send_to(&self.out, self.forward_to) {
            Ok(_) => self.packets += 1,
            Err(e) => debug!(error = %e, "floor packet not forwarded"),
        }
    }
}

/// The local address the system would send from toward `remote` (no packet is sent).
fn route_source(remote: IpAddr) -> std::io::Result<IpAddr> {
    let any: IpAddr =
        if remote.is_ipv4() { [0, 0, 0, 0].into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    probe.connect(SocketAddr::new(remote, 9))?;
    Ok(probe.local_addr()?.ip())
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

    #[test]
    fn loopback_routes_from_loopback() {
        assert!(route_source("127.0.0.1".parse().unwrap()).unwrap().is_loopback());
    }
}
