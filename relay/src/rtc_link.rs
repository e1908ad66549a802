//! The WebRTC link Tolk receives on as a client: both BBB floors (bbb-webrtc-sfu's listen-only
//! mix, a LiveKit room's microphones) and an edge node's cascade from an event's origin. One str0m
//! peer on one UDP socket bound toward the remote media server, answering its offers or taking
//! its answers, taking its candidates, and turning the socket and the clock into str0m input.
//! What the caller does with the media is its own.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tracing::debug;

use crate::media::rtp::RtpHeader;

/// What a poll of the peer gave.
pub(crate) enum Polled {
    /// Nothing more to do before this instant.
    Timeout(Instant),
    /// Something happened (connected, media, a change of state).
    Event(Event),
}

/// A str0m peer and its socket.
pub(crate) struct RtcLink {
    pub(crate) rtc: Rtc,
    socket: tokio::net::UdpSocket,
    local: SocketAddr,
    candidate: Candidate,
    buf: Vec<u8>,
}

impl RtcLink {
    /// `rtc` on a UDP port of the local address that routes toward `remote`, with that address
    /// as its host candidate. Errors are sentences.
    pub(crate) async fn bind(remote: IpAddr, mut rtc: Rtc) -> Result<Self, String> {
        let local_ip = route_source(remote).map_err(|e| format!("no route to {remote}: {e}"))?;
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| format!("could not bind a UDP socket for the media: {e}"))?;
        let local = socket.local_addr().map_err(|e| format!("UDP socket: {e}"))?;
        let candidate = Candidate::host(local, "udp").map_err(|e| format!("local candidate {local}: {e}"))?;
        rtc.add_local_candidate(candidate.clone());
        Ok(Self { rtc, socket, local, candidate, buf: vec![0; 2000] })
    }

    /// The host candidate this link offers.
    pub(crate) fn candidate(&self) -> &Candidate {
        &self.candidate
    }

    /// Answer the server's offer; errors name what is wrong with it.
    pub(crate) fn answer(&mut self, offer: &str) -> Result<String, String> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| format!("the SDP offer is malformed: {e}"))?;
        let answer =
            self.rtc.sdp_api().accept_offer(offer).map_err(|e| format!("cannot answer the offer: {e}"))?;
        Ok(answer.to_sdp_string())
    }

    /// A remote candidate line (`candidate:…` or `a=candidate:…`); a bad one is ignored.
    pub(crate) fn add_remote_candidate(&mut self, line: &str) {
        let line = line.trim().trim_start_matches("a=");
        if line.is_empty() {
            return; // end of candidates
        }
        match Candidate::from_sdp_string(line) {
            Ok(c) => self.rtc.add_remote_candidate(c),
            Err(e) => debug!(error = %e, "remote candidate ignored"),
        }
    }

    /// The peer's next output, sending what it transmits on the way.
    pub(crate) fn poll(&mut self) -> Result<Polled, String> {
        loop {
            match self.rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(t) => return Ok(Polled::Timeout(t)),
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => return Ok(Polled::Event(e)),
            }
        }
    }

    /// Wait for a datagram (handed to the peer) or `until`; returns the instant if it was the
    /// timeout (the peer has been told). Cancel-safe.
    pub(crate) async fn wait(&mut self, until: Instant) -> Result<Option<Instant>, String> {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(until));
        tokio::select! {
            received = self.socket.recv_from(&mut self.buf) => {
                let (n, source) = received.map_err(|e| format!("UDP receive: {e}"))?;
                let Some(data) = self.buf.get(..n) else { return Ok(None) };
                match Receive::new(Protocol::Udp, source, self.local, data) {
                    Ok(receive) => {
                        if let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), receive)) {
                            debug!(error = %e, %source, "datagram rejected");
                        }
                    }
                    Err(e) => debug!(error = %e, %source, "datagram that is not STUN, DTLS or RTP"),
                }
                Ok(None)
            }
            () = sleep => {
                let now = Instant::now();
                self.rtc.handle_input(Input::Timeout(now)).map_err(|e| e.to_string())?;
                Ok(Some(now))
            }
        }
    }
}

/// Send one plain RTP packet to the event's floor socket; says whether it left.
pub(crate) fn forward_rtp(
    forward: &std::net::UdpSocket,
    forward_to: SocketAddr,
    out: &mut Vec<u8>,
    header: RtpHeader<'_>,
    payload: &[u8],
) -> bool {
    out.clear();
    header.write(out);
    out.extend_from_slice(payload);
    match forward.send_to(out, forward_to) {
        Ok(_) => true,
        Err(e) => {
            debug!(error = %e, "floor packet not forwarded");
            false
        }
    }
}

/// The local address the system would send from toward `remote` (no packet is sent).
pub(crate) fn route_source(remote: IpAddr) -> std::io::Result<IpAddr> {
    let any: IpAddr =
        if remote.is_ipv4() { [0, 0, 0, 0].into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    probe.connect(SocketAddr::new(remote, 9))?;
    Ok(probe.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_from_loopback() {
        assert!(route_source("127.0.0.1".parse().unwrap()).unwrap().is_loopback());
    }
}
