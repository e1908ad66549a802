//! The WebRTC peer that receives a LiveKit room's audio: LiveKit's subscriber connection (the
//! server offers one audio section per track and renegotiates as tracks come and go; Tolk
//! answers). Each audio section is one track of the floor mix; the mix's frames go out as plain
//! RTP, under an SSRC of this peer's own, to the event's loopback floor socket, exactly as the
//! bbb-webrtc-sfu floor's packets do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};
use str0m::{Event, IceConnectionState, Rtc};
use tracing::debug;

use super::LiveKitError;
use crate::media::floor_mix::{FloorFrame, FloorMix, FloorMixSettings, FloorMixStats, TrackKey};
use crate::media::rtp::RtpHeader;
use crate::rtc_link::{Polled, RtcLink, forward_rtp};

/// The payload type of the floor's Opus packets on the loopback socket.
const OPUS_PT: u8 = 111;

/// What the peer reports to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerNote {
    Connected,
    /// The first audio packet from the room.
    FirstAudio,
    /// ICE or DTLS is gone.
    Lost,
}

pub(crate) struct MixPeer {
    link: RtcLink,
    mix: FloorMix,
    tracks: HashMap<Mid, TrackKey>,
    next_key: u32,
    forward: Arc<std::net::UdpSocket>,
    forward_to: SocketAddr,
    ssrc: u32,
    packets_in: u64,
    frames: Vec<FloorFrame>,
    out: Vec<u8>,
}

impl MixPeer {
    /// A peer on a UDP port of the local address that routes toward `remote` (LiveKit's host).
    pub(crate) async fn new(
        remote: IpAddr,
        forward: Arc<std::net::UdpSocket>,
        forward_to: SocketAddr,
    ) -> Result<Self, LiveKitError> {
        let rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
        let link = RtcLink::bind(remote, rtc).await.map_err(LiveKitError::Media)?;
        // Local or LAN: play each track as soon as its jitter allows.
        let mix = FloorMix::new(FloorMixSettings::default(), 0)
            .map_err(|e| LiveKitError::Media(format!("the floor's Opus encoder: {e}")))?;
        Ok(Self {
            link,
            mix,
            tracks: HashMap::new(),
            next_key: 0,
            forward,
            forward_to,
            ssrc: rand::random(),
            packets_in: 0,
            frames: Vec::new(),
            out: Vec::with_capacity(1500),
        })
    }

    /// Answer the server's (re)offer of the subscriber connection.
    pub(crate) fn answer(&mut self, offer: &str) -> Result<String, LiveKitError> {
        self.link.answer(offer).map_err(|e| LiveKitError::Signalling(format!("LiveKit's offer: {e}")))
    }

    /// The local candidate as a browser's `RTCIceCandidateInit` JSON (LiveKit's trickle format).
    pub(crate) fn candidate_init(&self) -> String {
        serde_json::json!({
            "candidate": self.link.candidate().to_sdp_string().trim_start_matches("a="),
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        })
        .to_string()
    }

    /// A trickled remote candidate (LiveKit's `RTCIceCandidateInit` JSON); a bad one is ignored.
    pub(crate) fn add_remote_candidate(&mut self, init: &str) {
        let line = serde_json::from_str::<serde_json::Value>(init)
            .ok()
            .and_then(|v| v.get("candidate").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_else(|| init.to_owned());
        self.link.add_remote_candidate(&line);
    }

    /// Drive the peer until it has something to report. Cancel-safe: all state is in `self`.
    pub(crate) async fn next(&mut self) -> Result<PeerNote, LiveKitError> {
        loop {
            let deadline = loop {
                match self.link.poll().map_err(LiveKitError::Media)? {
                    Polled::Timeout(t) => break t,
                    Polled::Event(event) => {
                        if let Some(note) = self.on_event(event) {
                            return Ok(note);
                        }
                    }
                }
            };
            if !self.link.rtc.is_alive() {
                return Ok(PeerNote::Lost);
            }
            let until = self.mix.next_tick().map_or(deadline, |tick| tick.min(deadline));
            if let Some(now) = self.link.wait(until).await.map_err(LiveKitError::Media)? {
                self.send_mix(now);
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Option<PeerNote> {
        match event {
            Event::Connected => {
                self.mix.start(Instant::now());
                Some(PeerNote::Connected)
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => Some(PeerNote::Lost),
            Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                self.tracks.insert(added.mid, TrackKey(self.next_key));
                self.next_key += 1;
                None
            }
            Event::MediaChanged(changed) if !changed.direction.is_receiving() => {
                if let Some(key) = self.tracks.remove(&changed.mid) {
                    self.mix.remove(key);
                }
                None
            }
            Event::MediaData(data) => {
                let key = *self.tracks.get(&data.mid)?;
                let seq = **data.seq_range.start();
                let level = data.ext_vals.audio_level.map(|l| l.unsigned_abs().min(127));
                let pushed =
                    self.mix.push(key, seq, data.time.numer() as u32, level, &data.data, Instant::now());
                if let Err(e) = pushed {
                    debug!(error = %e, "a track's decoder could not be made");
                }
                self.packets_in += 1;
                (self.packets_in == 1).then_some(PeerNote::FirstAudio)
            }
            _ => None,
        }
    }

    /// Every frame of the mix due by `now`, as RTP to the floor socket.
    fn send_mix(&mut self, now: Instant) {
        self.frames.clear();
        if let Err(e) = self.mix.tick(now, &mut self.frames) {
            debug!(error = %e, "floor mix frame lost");
        }
        for frame in &self.frames {
            let header = RtpHeader {
                payload_type: OPUS_PT,
                marker: false,
                seq: frame.seq,
                timestamp: frame.ts,
                ssrc: self.ssrc,
                extension: None,
            };
            forward_rtp(&self.forward, self.forward_to, &mut self.out, header, &frame.payload);
        }
    }

    /// Audio packets received so far.
    pub(crate) fn packets_in(&self) -> u64 {
        self.packets_in
    }

    /// The mix's counters.
    pub(crate) fn mix_stats(&self) -> FloorMixStats {
        self.mix.stats()
    }
}
