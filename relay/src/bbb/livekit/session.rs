//! One connection of a floor to a meeting's LiveKit room: join as the hidden floor participant
//! (a token minted now), answer the subscriber connection's offers, exchange candidates, and
//! report until the room, the signalling or the media drops. Reconnecting is the floor runner's
//! work: each connection mints a fresh token, so none outlives its expiry.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalError, SignalEvent, SignalEvents, SignalOptions};
use tracing::{debug, info};

use super::peer::{MixPeer, PeerNote};
use super::{LiveKitConfig, LiveKitError, token, transport};
use crate::media::floor_mix::FloorMixStats;

/// The protocol version Tolk speaks (livekit-client 2.x's; livekit-server 1.9 speaks it).
const PROTOCOL: u32 = 16;

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionNote {
    /// ICE and DTLS are up.
    Connected,
    /// The room's audio reaches the floor.
    FirstAudio,
    /// The connection is gone; the sentence says why.
    Dropped(String),
}

pub(crate) struct LiveKitSession {
    signal: SignalClient,
    events: SignalEvents,
    peer: MixPeer,
    answered: bool,
    /// The audio tracks Tolk asked for (never cameras or screens: only sound is the floor).
    subscribed: std::collections::HashSet<String>,
}

impl LiveKitSession {
    /// Join `room` as `identity`; the mix goes to `forward_to` from `forward`.
    pub(crate) async fn connect(
        config: &LiveKitConfig,
        room: &str,
        identity: &str,
        forward: Arc<std::net::UdpSocket>,
        forward_to: SocketAddr,
    ) -> Result<Self, LiveKitError> {
        transport::install();
        let jwt = token::floor_token(config, room, identity)?;
        let mut options = SignalOptions::default();
        // Audio only: Tolk subscribes to each audio track itself (a camera would cost bandwidth
        // and a video section the floor has no use for).
        options.auto_subscribe = false;
        options.region_failover = false;
        options.protocol_version = PROTOCOL;
        options.sdk_options.sdk = "tolk".into();
        options.sdk_options.sdk_version = Some(env!("CARGO_PKG_VERSION").into());
        let url = config.ws_url();
        let (signal, join, events) =
            SignalClient::connect(&url, &jwt, options, None).await.map_err(|e| refusal(e, room))?;
        info!(
            room = %join.room.as_ref().map(|r| r.name.as_str()).unwrap_or(room),
            participants = join.other_participants.len(),
            "joined the meeting's LiveKit room"
        );
        let remote = livekit_host(config).await.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let peer = MixPeer::new(remote, forward, forward_to).await?;
        let mut session = Self { signal, events, peer, answered: false, subscribed: Default::default() };
        session.subscribe_audio(&join.other_participants).await;
        Ok(session)
    }

    /// Subscribe to the audio tracks (microphones, screen-share audio) of `participants` not yet
    /// subscribed to.
    async fn subscribe_audio(&mut self, participants: &[proto::ParticipantInfo]) {
        let fresh: Vec<String> = participants
            .iter()
            .filter(|p| p.state != proto::participant_info::State::Disconnected as i32)
            .flat_map(|p| p.tracks.iter())
            .filter(|t| t.r#type == proto::TrackType::Audio as i32 && !self.subscribed.contains(&t.sid))
            .map(|t| t.sid.clone())
            .collect();
        if fresh.is_empty() {
            return;
        }
        debug!(tracks = ?fresh, "subscribing to audio tracks");
        self.subscribed.extend(fresh.iter().cloned());
        let request = proto::UpdateSubscription { track_sids: fresh, subscribe: true, ..Default::default() };
        self.signal.send(proto::signal_request::Message::Subscription(request)).await;
    }

    /// Drive the connection until something to report. Cancel-safe: all state is in `self`.
    pub(crate) async fn next(&mut self) -> Result<SessionNote, LiveKitError> {
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    None => return Ok(SessionNote::Dropped("LiveKit's signalling ended".into())),
                    Some(SignalEvent::Close(reason)) => {
                        return Ok(SessionNote::Dropped(format!("LiveKit's signalling closed: {reason}")));
                    }
                    Some(SignalEvent::Message(message)) => {
                        if let Some(note) = self.on_message(*message).await? {
                            return Ok(note);
                        }
                    }
                },
                note = self.peer.next() => match note? {
                    PeerNote::Connected => return Ok(SessionNote::Connected),
                    PeerNote::FirstAudio => return Ok(SessionNote::FirstAudio),
                    PeerNote::Lost => return Ok(SessionNote::Dropped("the media connection to LiveKit was lost".into())),
                },
            }
        }
    }

    async fn on_message(
        &mut self,
        message: proto::signal_response::Message,
    ) -> Result<Option<SessionNote>, LiveKitError> {
        use proto::signal_response::Message as M;
        match message {
            M::Offer(offer) => {
                let sdp = self.peer.answer(&offer.sdp)?;
                let answer = proto::SessionDescription {
                    r#type: "answer".into(),
                    sdp,
                    id: offer.id,
                    ..Default::default()
                };
                self.signal.send(proto::signal_request::Message::Answer(answer)).await;
                if !self.answered {
                    self.answered = true;
                    let trickle = proto::TrickleRequest {
                        candidate_init: self.peer.candidate_init(),
                        target: proto::SignalTarget::Subscriber as i32,
                        ..Default::default()
                    };
                    self.signal.send(proto::signal_request::Message::Trickle(trickle)).await;
                }
            }
            M::Trickle(trickle) if trickle.target == proto::SignalTarget::Subscriber as i32 => {
                self.peer.add_remote_candidate(&trickle.candidate_init);
            }
            M::Leave(leave) => {
                let reason = proto::DisconnectReason::try_from(leave.reason)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_else(|_| leave.reason.to_string());
                return Ok(Some(SessionNote::Dropped(format!("LiveKit asked Tolk to leave ({reason})"))));
            }
            M::RoomUpdate(update) => debug!(?update.room, "room update"),
            M::Update(update) => self.subscribe_audio(&update.participants).await,
            M::TrackUnpublished(gone) => {
                self.subscribed.remove(&gone.track_sid);
            }
            M::SpeakersChanged(_) | M::RefreshToken(_) => {}
            other => debug!(message = ?std::mem::discriminant(&other), "LiveKit message not used"),
        }
        Ok(None)
    }

    /// Leave the room.
    pub(crate) async fn close(self) {
        self.signal.close().await;
    }

    /// Audio packets received so far.
    pub(crate) fn packets_in(&self) -> u64 {
        self.peer.packets_in()
    }

    /// The mix's counters.
    pub(crate) fn mix_stats(&self) -> FloorMixStats {
        self.peer.mix_stats()
    }
}

/// A failed join, in words: refusals (401/403/404) with LiveKit's own sentence.
fn refusal(e: SignalError, room: &str) -> LiveKitError {
    match e {
        SignalError::Client(status, body) => LiveKitError::Refused(format!(
            "HTTP {status} for room {room}: {}",
            body.trim().chars().take(200).collect::<String>()
        )),
        SignalError::Handshake { status } if status.is_client_error() => {
            LiveKitError::Refused(format!("HTTP {status} for room {room}"))
        }
        other => LiveKitError::Signalling(other.to_string()),
    }
}

/// LiveKit's host address (where its media is when its candidates name no other).
async fn livekit_host(config: &LiveKitConfig) -> Option<IpAddr> {
    let host = config.url.host_str()?;
    let port = config.url.port_or_known_default().unwrap_or(7880);
    tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await.ok()?.next().map(|a| a.ip())
}
