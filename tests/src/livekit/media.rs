//! A participant's media in the stand-in: its two peer connections (the publisher one, where the
//! client offers and the stand-in answers, and the subscriber one, where the stand-in offers the
//! tracks it forwards), each a str0m `Rtc` in RTP mode, both on one loopback UDP socket. Audio
//! packets from a published track go to the hub, which hands them to every subscriber's task;
//! a subscriber writes them on its own section with the publisher's RFC 6464 audio level.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::room::Hub;
use crate::client::opus_pt;

/// One RTP packet of a published track, as it goes to subscribers.
#[derive(Debug, Clone)]
pub struct Packet {
    pub payload: Arc<[u8]>,
    /// The publisher's extended sequence number.
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    /// RFC 6464 level (-dBov), when the publisher sent one.
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
}

/// What a participant's media task is told.
#[derive(Debug)]
pub enum MediaCommand {
    /// The client's offer for the publisher connection.
    PublisherOffer {
        sdp: String,
        id: u32,
    },
    /// The client's answer to the stand-in's subscriber offer.
    SubscriberAnswer {
        sdp: String,
    },
    /// A trickled candidate (`target` as `SignalTarget`).
    Candidate {
        target: i32,
        candidate: String,
    },
    /// A track the client announced with `add_track`: `cid` is its client-side id.
    Expect {
        cid: String,
        track: String,
    },
    /// Send `track` of `participant` to this client.
    Subscribe {
        participant: String,
        track: String,
    },
    Unsubscribe {
        track: String,
    },
    Rtp {
        track: String,
        packet: Arc<Packet>,
    },
    Close,
}

/// Who a media task works for.
pub(crate) struct MediaContext {
    pub hub: Arc<Hub>,
    pub room: String,
    pub sid: String,
}

/// A track sent to this subscriber.
struct Outgoing {
    mid: Option<Mid>,
    participant: String,
    /// (first publisher sequence number, first own one).
    seq_base: Option<(u64, u64)>,
}

fn new_rtc() -> Rtc {
    Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now())
}

/// The first `a=mid:` of an SDP (for trickled candidates' `sdpMid`).
fn first_mid(sdp: &str) -> String {
    sdp.lines().find_map(|l| l.strip_prefix("a=mid:")).unwrap_or("0").trim().to_owned()
}

/// A candidate as livekit-client trickles it: `RTCIceCandidateInit` JSON.
fn candidate_init(candidate: &Candidate, sdp: &str) -> String {
    serde_json::json!({
        "candidate": candidate.to_sdp_string().trim_start_matches("a="),
        "sdpMid": first_mid(sdp),
        "sdpMLineIndex": 0,
    })
    .to_string()
}

/// The candidate of a trickled `RTCIceCandidateInit` (`None` for end-of-candidates or mDNS ones).
fn parse_candidate(init: &str) -> Option<Candidate> {
    let value: serde_json::Value = serde_json::from_str(init).ok()?;
    let line = value.get("candidate")?.as_str()?;
    if line.is_empty() {
        return None;
    }
    Candidate::from_sdp_string(line.trim_start_matches("a=")).ok()
}

struct Task {
    ctx: MediaContext,
    socket: UdpSocket,
    local: SocketAddr,
    candidate: Candidate,
    publisher: Rtc,
    subscriber: Rtc,
    /// Publisher sections → track sid.
    incoming: HashMap<Mid, String>,
    /// Tracks announced but not yet bound to a section: (cid, track sid).
    expected: Vec<(String, String)>,
    outgoing: HashMap<String, Outgoing>,
    /// Sections of tracks no longer sent, to stop at the next offer.
    stopping: Vec<Mid>,
    pending: Option<SdpPendingOffer>,
    /// A change is waiting for the next subscriber offer.
    dirty: bool,
    offers: u32,
}

/// Run a participant's media until it is closed (its channel dropped or `Close`).
pub(crate) async fn run(
    ctx: MediaContext,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let candidate = Candidate::host(local, "udp").context("host candidate")?;
    let mut publisher = new_rtc();
    let mut subscriber = new_rtc();
    publisher.add_local_candidate(candidate.clone());
    subscriber.add_local_candidate(candidate.clone());
    let mut task = Task {
        ctx,
        socket,
        local,
        candidate,
        publisher,
        subscriber,
        incoming: HashMap::new(),
        expected: Vec::new(),
        outgoing: HashMap::new(),
        stopping: Vec::new(),
        pending: None,
        dirty: true,
        offers: 0,
    };
    task.offer();
    let mut buf = vec![0u8; 2000];
    loop {
        let deadline = task.drain();
        tokio::select! {
            received = task.socket.recv_from(&mut buf) => {
                let Ok((n, source)) = received else { continue };
                task.receive(source, &buf[..n]);
            }
            command = commands.recv() => match command {
                None | Some(MediaCommand::Close) => break,
                Some(command) => task.handle(command),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                task.input(true, Input::Timeout(now));
                task.input(false, Input::Timeout(now));
            }
        }
    }
    task.publisher.disconnect();
    task.subscriber.disconnect();
    Ok(())
}

impl Task {
    fn rtc(&mut self, publisher: bool) -> &mut Rtc {
        if publisher { &mut self.publisher } else { &mut self.subscriber }
    }

    fn input(&mut self, publisher: bool, input: Input<'_>) {
        if let Err(e) = self.rtc(publisher).handle_input(input) {
            tracing::debug!(
                "livekit stand-in: {} connection: {e}",
                if publisher { "publisher" } else { "subscriber" }
            );
        }
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, data) else { return };
        let input = Input::Receive(Instant::now(), receive);
        if self.publisher.accepts(&input) {
            self.input(true, input);
        } else if self.subscriber.accepts(&input) {
            self.input(false, input);
        }
    }

    fn send(&self, message: Resp) {
        self.ctx.hub.send_to(&self.ctx.room, &self.ctx.sid, message);
    }

    /// Send what both connections have to send, handle their events; the next deadline.
    fn drain(&mut self) -> Instant {
        let mut deadline = Instant::now() + std::time::Duration::from_millis(100);
        for publisher in [true, false] {
            loop {
                match self.rtc(publisher).poll_output() {
                    Ok(Output::Timeout(t)) => {
                        deadline = deadline.min(t);
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(event)) => self.event(publisher, event),
                    Err(e) => {
                        tracing::debug!("livekit stand-in: poll: {e}");
                        break;
                    }
                }
            }
        }
        deadline
    }

    fn event(&mut self, publisher: bool, event: Event) {
        match event {
            Event::MediaAdded(added) if publisher && added.kind == MediaKind::Audio => {
                let cid =
                    self.publisher.media(added.mid).map(|m| m.track_id().to_owned()).unwrap_or_default();
                let at = self.expected.iter().position(|(c, _)| *c == cid).or(if self.expected.is_empty() {
                    None
                } else {
                    Some(0)
                });
                if let Some(at) = at {
                    let (_, track) = self.expected.remove(at);
                    self.ctx.hub.set_mid(&self.ctx.room, &self.ctx.sid, &track, &added.mid.to_string());
                    self.incoming.insert(added.mid, track);
                }
            }
            Event::RtpPacket(p) if publisher => {
                let mid = self.publisher.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid());
                let Some(track) = mid.and_then(|m| self.incoming.get(&m)) else { return };
                let packet = Packet {
                    payload: p.payload.clone(),
                    seq: *p.seq_no,
                    timestamp: p.header.timestamp,
                    marker: p.header.marker,
                    audio_level: p.header.ext_vals.audio_level,
                    voice_activity: p.header.ext_vals.voice_activity,
                };
                self.ctx.hub.forward(track, packet);
            }
            _ => {}
        }
    }

    fn handle(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::PublisherOffer { sdp, id } => match self.answer(&sdp) {
                Ok(answer) => {
                    let trickle = candidate_init(&self.candidate, &answer);
                    self.send(Resp::Answer(proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp: answer,
                        id,
                        ..Default::default()
                    }));
                    self.send(Resp::Trickle(proto::TrickleRequest {
                        candidate_init: trickle,
                        target: proto::SignalTarget::Publisher as i32,
                        r#final: false,
                    }));
                }
                Err(e) => tracing::warn!("livekit stand-in: publisher offer refused: {e:#}"),
            },
            MediaCommand::SubscriberAnswer { sdp } => {
                let Some(pending) = self.pending.take() else { return };
                match SdpAnswer::from_sdp_string(&sdp) {
                    Ok(answer) => {
                        if let Err(e) = self.subscriber.sdp_api().accept_answer(pending, answer) {
                            tracing::warn!("livekit stand-in: subscriber answer refused: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("livekit stand-in: unreadable subscriber answer: {e}"),
                }
                self.offer();
            }
            MediaCommand::Candidate { target, candidate } => {
                if let Some(c) = parse_candidate(&candidate) {
                    let publisher = target == proto::SignalTarget::Publisher as i32;
                    self.rtc(publisher).add_remote_candidate(c);
                }
            }
            MediaCommand::Expect { cid, track } => self.expected.push((cid, track)),
            MediaCommand::Subscribe { participant, track } => {
                if let std::collections::hash_map::Entry::Vacant(e) = self.outgoing.entry(track) {
                    e.insert(Outgoing { mid: None, participant, seq_base: None });
                    self.dirty = true;
                    self.offer();
                }
            }
            MediaCommand::Unsubscribe { track } => {
                if let Some(out) = self.outgoing.remove(&track) {
                    if let Some(mid) = out.mid {
                        self.stopping.push(mid);
                    }
                    self.dirty = true;
                    self.offer();
                }
            }
            MediaCommand::Rtp { track, packet } => self.write(&track, &packet),
            MediaCommand::Close => {}
        }
    }

    fn answer(&mut self, sdp: &str) -> anyhow::Result<String> {
        let offer = SdpOffer::from_sdp_string(sdp)?;
        let answer = self.publisher.sdp_api().accept_offer(offer)?;
        Ok(answer.to_sdp_string())
    }

    /// Offer the subscriber connection's changes, unless an offer is still unanswered.
    fn offer(&mut self) {
        if self.pending.is_some() || !self.dirty {
            return;
        }
        self.dirty = false;
        let first = self.offers == 0;
        let mut api = self.subscriber.sdp_api();
        if first {
            api.add_channel("_reliable".into());
        }
        for mid in self.stopping.drain(..) {
            api.stop_media(mid);
        }
        for (track, out) in self.outgoing.iter_mut().filter(|(_, o)| o.mid.is_none()) {
            let stream = format!("{}|{track}", out.participant);
            out.mid = Some(api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                Some(stream),
                Some(track.clone()),
                None,
            ));
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else { return };
        self.pending = Some(pending);
        self.offers += 1;
        let sdp = offer.to_sdp_string();
        let mid_to_track_id =
            self.outgoing.iter().filter_map(|(track, o)| Some((o.mid?.to_string(), track.clone()))).collect();
        let trickle = candidate_init(&self.candidate, &sdp);
        self.send(Resp::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp,
            id: self.offers,
            mid_to_track_id,
        }));
        self.send(Resp::Trickle(proto::TrickleRequest {
            candidate_init: trickle,
            target: proto::SignalTarget::Subscriber as i32,
            r#final: false,
        }));
        self.ctx.hub.count(|s| s.subscriber_offers += 1);
    }

    fn write(&mut self, track: &str, packet: &Packet) {
        let Some(out) = self.outgoing.get_mut(track) else { return };
        let Some(mid) = out.mid else { return };
        let Some(pt) = opus_pt(&self.subscriber, mid) else { return };
        let (first_in, first_out) =
            *out.seq_base.get_or_insert((packet.seq, 1 + u64::from(rand::random::<u16>() & 0x3fff)));
        let Some(delta) = packet.seq.checked_sub(first_in) else { return };
        let now = Instant::now();
        let ext = ExtensionValues {
            audio_level: packet.audio_level,
            voice_activity: packet.voice_activity,
            ..Default::default()
        };
        let mut direct = self.subscriber.direct_api();
        let Some(stream) = direct.stream_tx_by_mid(mid, None) else { return };
        stream.write_rtp(
            RtpWrite::new(pt, (first_out + delta).into(), packet.timestamp, now, packet.payload.clone())
                .marker(packet.marker)
                .ext_vals(ext),
        );
        self.input(false, Input::Timeout(now));
        self.ctx.hub.forwarded(track);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickled_candidates_are_read_and_written_as_livekit_client_does() {
        let init = r#"{"candidate":"candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
        let c = parse_candidate(init).unwrap();
        assert_eq!(c.addr(), "127.0.0.1:50000".parse().unwrap());
        assert!(parse_candidate(r#"{"candidate":""}"#).is_none());
        assert!(parse_candidate("garbage").is_none());
        let written = candidate_init(&c, "v=0\r\na=mid:abc\r\n");
        let back: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(back["sdpMid"], "abc");
        assert!(back["candidate"].as_str().unwrap().starts_with("candidate:"));
    }
}
