//! WHEP listeners on webrtc-rs (the `webrtc` crate), a WebRTC stack independent of the relay's
//! str0m: every load run with these listeners also proves that the two interoperate.
//!
//! Each listener is one peer connection with one receive-only Opus audio transceiver. It offers
//! without trickle: the offer is POSTed once ICE gathering is complete, and carries a single host
//! candidate on 127.0.0.1 (no STUN, no mDNS). Every received RTP packet goes into the listener's
//! [`Tally`] and the shared latency histogram, like the listeners on the other stacks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::tally::{LatencyHistogram, Tally};

/// How long ICE gathering (one local host candidate) may take.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one signalling request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A WHEP listener on webrtc-rs: one recvonly Opus audio transceiver, non-trickle (wait for ICE
/// gathering to complete before POSTing the offer), POST application/sdp to `whep_url`,
/// 201 + Location + answer.
pub struct RsListener {
    pc: Arc<dyn PeerConnection>,
    session_url: String,
    tally: Arc<Mutex<Tally>>,
    connected: Arc<AtomicBool>,
}

impl std::fmt::Debug for RsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsListener")
            .field("session_url", &self.session_url)
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

/// A mutex whose holder panicked still holds plain counts: use them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The peer connection's events: gathering done, connection state, and the track's reader.
struct Handler {
    gathered: tokio::sync::watch::Sender<bool>,
    connected: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    latency: Arc<Mutex<LatencyHistogram>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(state == RTCPeerConnectionState::Connected, Ordering::Relaxed);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let tally = self.tally.clone();
        let latency = self.latency.clone();
        // The reader runs beside the driver; it ends when the track or the connection does.
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let now = Instant::now();
                        let mut tally = lock(&tally);
                        let mut latency = lock(&latency);
                        tally.packet(
                            packet.header.sequence_number,
                            packet.header.timestamp,
                            &packet.payload,
                            now,
                            &mut latency,
                        );
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

/// The local address towards the host of `url` (127.0.0.1 if it names no reachable address).
fn local_ip_for(url: &str) -> std::net::IpAddr {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()));
    host.and_then(|h| h.parse().ok())
        .and_then(|ip| crate::engine::local_ip_towards(ip).ok())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

impl RsListener {
    /// Offer to `whep_url` and start counting what arrives. Sets `tally.posted_at` just before
    /// the POST; any answer but `201` with a `Location` is an error carrying the body.
    pub async fn listen(
        http: &reqwest::Client,
        whep_url: &str,
        latency: Arc<Mutex<LatencyHistogram>>,
    ) -> anyhow::Result<Self> {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let connected = Arc::new(AtomicBool::new(false));
        let (gathered, mut gathered_rx) = tokio::sync::watch::channel(false);
        let handler =
            Arc::new(Handler { gathered, connected: connected.clone(), tally: tally.clone(), latency });

        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )?;
        // NACK, receiver reports and transport-wide CC feedback, as a browser would send.
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            // A concrete address is bound as given: one host candidate, on the local address
            // that routes to the relay (loopback for a relay on this machine).
            .with_udp_addrs(vec![format!("{}:0", local_ip_for(whep_url))])
            .build()
            .await
            .context("building a webrtc-rs peer connection")?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let negotiated = async {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
            let offer = pc.create_offer(None).await?;
            pc.set_local_description(offer).await?;
            tokio::time::timeout(GATHER_TIMEOUT, gathered_rx.wait_for(|done| *done))
                .await
                .context("ICE gathering did not complete")?
                .context("the peer connection went away while gathering")?;
            let offer = pc.local_description().await.context("no local description after gathering")?;

            lock(&tally).posted_at = Some(Instant::now());
            // Following a cluster's redirect to the node with room; the session URL is on
            // the node that answered.
            let posted = crate::engine::post_offer(http, whep_url, None, &offer.sdp);
            let (session_url, body) = tokio::time::timeout(HTTP_TIMEOUT, posted)
                .await
                .map_err(|_| anyhow!("no answer within {HTTP_TIMEOUT:?}"))
                .and_then(|answered| answered)
                .with_context(|| format!("POST {whep_url}"))?;
            pc.set_remote_description(RTCSessionDescription::answer(body)?)
                .await
                .context("webrtc-rs refused the relay's answer")?;
            anyhow::Ok(session_url)
        };
        match negotiated.await {
            Ok(session_url) => Ok(Self { pc, session_url, tally, connected }),
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// A snapshot of this listener's counts.
    pub fn tally(&self) -> Tally {
        lock(&self.tally).clone()
    }

    /// The WHEP session's URL (the answer's `Location`).
    pub fn session_url(&self) -> &str {
        &self.session_url
    }

    /// Whether the peer connection is connected (ICE and DTLS up).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Switch the session to `language` without renegotiating (`204` expected); the first packet
    /// from a new source ends the switch in the tally.
    pub async fn switch(&self, http: &reqwest::Client, language: &str) -> anyhow::Result<()> {
        let url = format!("{}/channel", self.session_url);
        lock(&self.tally).switch_pending = Some((Instant::now(), 0));
        let response = http
            .post(&url)
            .json(&serde_json::json!({ "language": language }))
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::NO_CONTENT {
            let body = response.text().await.unwrap_or_default();
            bail!("POST {url} answered {status}: {body}");
        }
        Ok(())
    }

    /// End the WHEP session (DELETE) and close the peer connection, whatever the DELETE answers.
    pub async fn close(self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deleted = http.delete(&self.session_url).timeout(HTTP_TIMEOUT).send().await;
        let closed = self.pc.close().await;
        let response = deleted.with_context(|| format!("DELETE {}", self.session_url))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("DELETE {} answered {status}: {body}", self.session_url);
        }
        closed.map_err(|e| anyhow!("closing the webrtc-rs peer connection: {e}"))
    }
}
