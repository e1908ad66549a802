//! An edge node's subscription to an event's origin: one WebRTC link (ICE, DTLS, SRTP: safe
//! across the internet) with one receive-only audio section per channel of the event, offered by
//! the edge (a full ICE agent) to the origin's `POST /cluster/v1/events/{event}/cascade`. Each
//! packet that arrives is handed to this node's shards as [`Source::Cascade`] of its channel, its
//! payload as the origin sent it. The link follows the origin: when the origin's lease moves (a
//! failover) or the link is lost, it subscribes again, to whichever node holds the event then,
//! or makes this node the origin when nobody does. The listeners on the edge stay connected
//! throughout: their channels' lines continue across the change.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Event, IceConnectionState, Rtc};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span};

use crate::cluster::node::NodeInfo;
use crate::cluster::{Cluster, Origin};
use crate::media::{Source, SourcePacket};
use crate::net::{EventLayout, Media};
use crate::rtc_link::{Polled, RtcLink};

/// The header naming the channels a cascade offer's sections are for, in order (`en,fr,de`).
pub const CHANNELS_HEADER: &str = "tolk-channels";

/// How often a running cascade checks that its origin still holds the event.
const LEASE_CHECK: Duration = Duration::from_millis(500);

/// The longest wait between two tries to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A running cascade of one event.
pub(crate) struct EdgeLink {
    layout: Arc<EventLayout>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EdgeLink {
    /// Subscribe to the event's origin (found through `cluster`) and keep subscribed until
    /// [`EdgeLink::stop`].
    pub(crate) fn start(cluster: Weak<Cluster>, layout: Arc<EventLayout>, media: Arc<Media>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let span = info_span!("cascade", event = %layout.id);
        let task = tokio::spawn(follow(cluster, layout.clone(), media, stopped).instrument(span));
        Self { layout, stop, task }
    }

    pub(crate) fn layout(&self) -> &Arc<EventLayout> {
        &self.layout
    }

    pub(crate) fn running(&self) -> bool {
        !self.task.is_finished()
    }

    /// End the subscription (the origin is told, so that it frees the session at once).
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
    }
}

/// How one subscription ended.
enum Ended {
    /// Asked to stop.
    Stopped,
    /// Lost (the origin went away, moved, or refused): subscribe again.
    Lost(String),
}

/// Subscribe, and again whenever the subscription is lost, until stopped or this node becomes
/// the event's origin.
async fn follow(
    cluster: Weak<Cluster>,
    layout: Arc<EventLayout>,
    media: Arc<Media>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(c) = cluster.upgrade() else { return };
        let why = match c.listener_origin(&layout.id).await {
            Ok(Origin::Here) => {
                info!("this node took the event's origin: the cascade ends, local sources feed it");
                return;
            }
            Ok(Origin::There(origin)) => {
                drop(c);
                match subscribe(&cluster, &layout, &media, &origin, &mut stop).await {
                    Ok(Ended::Stopped) => return,
                    Ok(Ended::Lost(why)) => {
                        backoff = Duration::from_millis(100);
                        why
                    }
                    Err(why) => why,
                }
            }
            Err(e) => e.to_string(),
        };
        info!(why, retry_in_ms = backoff.as_millis() as u64, "cascade down; subscribing again");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription to `origin`, until it is lost or stopped. Errors are sentences.
async fn subscribe(
    cluster: &Weak<Cluster>,
    layout: &Arc<EventLayout>,
    media: &Media,
    origin: &NodeInfo,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, String> {
    let rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    let mut link = RtcLink::bind(origin.media_ip, rtc).await?;
    let channels = layout.languages.len() + 1;
    let (offer, pending, mids) = offer(&mut link, channels)?;
    let (http, secret, registry) = {
        let c = cluster.upgrade().ok_or("the node is stopping")?;
        (c.http().clone(), c.secret().to_owned(), c.registry().clone())
    };
    let url = format!("{}/cluster/v1/events/{}/cascade", origin.url, layout.id);
    let response = http
        .post(&url)
        .header(CONTENT_TYPE, "application/sdp")
        .header(AUTHORIZATION, format!("Bearer {secret}"))
        .header(CHANNELS_HEADER, channel_list(layout))
        .body(offer)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let session = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    match status {
        StatusCode::CREATED => {}
        StatusCode::TEMPORARY_REDIRECT => return Ok(Ended::Lost(format!("{} is not the origin", origin.id))),
        _ => return Err(format!("{} refused the cascade ({status}): {}", origin.id, detail(&body))),
    }
    let answer = SdpAnswer::from_sdp_string(&body).map_err(|e| format!("the origin's answer: {e}"))?;
    link.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| format!("the origin's answer: {e}"))?;
    info!(origin = %origin.id, channels, "subscribed to the origin");
    let input = media.new_input();
    let mut checks = tokio::time::interval(LEASE_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut packets = 0u64;
    let ended = loop {
        let deadline = loop {
            match link.poll()? {
                Polled::Timeout(t) => break t,
                Polled::Event(Event::Connected) => info!(origin = %origin.id, "cascade connected"),
                Polled::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                    break Instant::now();
                }
                Polled::Event(Event::RtpPacket(packet)) => {
                    let Some(mid) = link.rtc.direct_api().stream_rx(&packet.header.ssrc).map(|s| s.mid())
                    else {
                        continue;
                    };
                    let Some(channel) = mids.iter().position(|m| *m == mid) else { continue };
                    packets += 1;
                    media.feed(Arc::new(SourcePacket {
                        event: layout.id.clone(),
                        source: Source::Cascade(channel),
                        input,
                        seq: *packet.seq_no,
                        ts: packet.header.timestamp,
                        marker: packet.header.marker,
                        payload: packet.payload.clone(),
                        received_at: Instant::now(),
                    }));
                }
                Polled::Event(_) => {}
            }
        };
        if !link.rtc.is_alive() {
            break Ended::Lost(format!("the link to {} is gone", origin.id));
        }
        tokio::select! {
            waited = link.wait(deadline) => { waited?; }
            _ = stop.changed() => break Ended::Stopped,
            _ = checks.tick() => match registry.origin(&layout.id).await {
                Ok(Some(holder)) if holder == origin.id => {}
                Ok(Some(holder)) => break Ended::Lost(format!("{holder} took the event from {}", origin.id)),
                Ok(None) => break Ended::Lost(format!("{} no longer holds the event", origin.id)),
                Err(e) => debug!(error = %e, "lease not checked; the cascade goes on"),
            },
        }
    };
    info!(origin = %origin.id, packets, "cascade ended");
    if let Some(session) = session {
        // Not waited for: a dead origin must not hold up the next subscription.
        tokio::spawn(async move {
            let gone = http.delete(&session).header(AUTHORIZATION, format!("Bearer {secret}")).send().await;
            if let Err(e) = gone {
                debug!(error = %e, "the origin was not told the cascade ended");
            }
        });
    }
    Ok(ended)
}

/// The edge's offer: one receive-only audio section per channel.
fn offer(link: &mut RtcLink, channels: usize) -> Result<(String, SdpPendingOffer, Vec<Mid>), String> {
    let mut change = link.rtc.sdp_api();
    let mids: Vec<Mid> = (0..channels)
        .map(|_| change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None))
        .collect();
    let (offer, pending) = change.apply().ok_or("str0m made no offer")?;
    Ok((offer.to_sdp_string(), pending, mids))
}

/// The event's channels in their order, for [`CHANNELS_HEADER`].
pub fn channel_list(layout: &EventLayout) -> String {
    layout.channel_list().replace(' ', "")
}

/// The sentence of a problem+json body, or the body itself.
fn detail(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_body_gives_its_sentence() {
        assert_eq!(detail(r#"{"status":409,"detail":"the layout changed"}"#), "the layout changed");
        assert_eq!(detail("plain"), "plain");
    }
}
