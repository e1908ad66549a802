//! An edge node's subscription to an event's origin: one WebRTC link (ICE, DTLS, SRTP: safe
//! across the internet) with one receive-only audio section per channel of the event, offered by
//! the edge (a full ICE agent) to the origin's `POST /cluster/v1/events/{event}/cascade`. Each
//! packet that arrives is handed to this node's shards as [`Source::Cascade`] of its channel, its
//! payload as the origin sent it. The link follows the origin: when the origin's lease moves (a
//! failover) or the link is lost, it subscribes again, to whichever node holds the event then,
//! or makes this node the origin when nobody does. The listeners on the edge stay connected
//! throughout: their channels' lines continue across the change.
//!
//! The same link subscribes to an event of a peer cluster (federation: a `peer` floor), with the
//! peering token that cluster issued; there the link watches its session at the peer's origin
//! instead of a lease.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Event, IceConnectionState, Rtc};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span};

use std::net::IpAddr;

use crate::cluster::registry::Registry;
use crate::cluster::{Cluster, Origin};
use crate::ids::{EventId, NodeId};
use crate::media::{Source, SourcePacket};
use crate::net::{EventLayout, Media};
use crate::rtc_link::{Polled, RtcLink};

/// The header naming the channels a cascade offer's sections are for, in order (`en,fr,de`).
pub const CHANNELS_HEADER: &str = "tolk-channels";

/// How often a running cascade checks that its origin still holds the event.
const LEASE_CHECK: Duration = Duration::from_millis(500);

/// The longest wait between two tries to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where a cascade subscribes.
pub(crate) enum Upstream {
    /// The event's origin node in this cluster, wherever the lease says it is.
    Cluster(Weak<Cluster>),
    /// An event of a peer cluster (a `peer` floor), with the peering token it issued.
    Peer {
        /// The peer cluster's URL.
        url: String,
        /// The event's id there.
        event: EventId,
        /// The peering token.
        token: String,
        /// Follows no redirect by itself.
        http: reqwest::Client,
    },
}

/// A running cascade of one event.
pub(crate) struct EdgeLink {
    layout: Arc<EventLayout>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EdgeLink {
    /// Subscribe to the event's `upstream` and keep subscribed until [`EdgeLink::stop`]. The
    /// shards take what arrives as the channels of `layout` (cascaded).
    pub(crate) fn start(upstream: Upstream, layout: Arc<EventLayout>, media: Arc<Media>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let span = match &upstream {
            Upstream::Cluster(_) => info_span!("cascade", event = %layout.id),
            Upstream::Peer { url, event, .. } => {
                info_span!("peer", event = %layout.id, peer = %url, peer_event = %event)
            }
        };
        let task = tokio::spawn(follow(upstream, layout.clone(), media, stopped).instrument(span));
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

/// One subscription's target.
struct Target {
    /// The cascade URL (`…/cluster/v1/events/{event}/cascade`).
    url: String,
    /// Where its media is likely to be (the local address that routes there is offered).
    media_ip: IpAddr,
    /// Who it is, for the log.
    name: String,
    token: String,
    http: reqwest::Client,
    /// In this cluster: the lease to watch (the registry, the event, the origin's id).
    lease: Option<(Registry, NodeId)>,
}

/// Subscribe, and again whenever the subscription is lost, until stopped (or, in a cluster,
/// until this node becomes the event's origin).
async fn follow(
    upstream: Upstream,
    layout: Arc<EventLayout>,
    media: Arc<Media>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let target = match target(&upstream, &layout).await {
            Ok(Some(target)) => Ok(target),
            Ok(None) => {
                info!("this node took the event's origin: the cascade ends, local sources feed it");
                return;
            }
            Err(e) => Err(e),
        };
        let why = match target {
            Ok(target) => match subscribe(&target, &layout, &media, &mut stop).await {
                Ok(Ended::Stopped) => return,
                Ok(Ended::Lost(why)) => {
                    backoff = Duration::from_millis(100);
                    why
                }
                Err(why) => why,
            },
            Err(why) => why,
        };
        info!(why, retry_in_ms = backoff.as_millis() as u64, "cascade down; subscribing again");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Where to subscribe now; None: this node is the event's origin (in a cluster).
async fn target(upstream: &Upstream, layout: &EventLayout) -> Result<Option<Target>, String> {
    match upstream {
        Upstream::Cluster(cluster) => {
            let c = cluster.upgrade().ok_or("the node is stopping")?;
            match c.listener_origin(&layout.id).await.map_err(|e| e.to_string())? {
                Origin::Here => Ok(None),
                Origin::There(origin) => Ok(Some(Target {
                    url: format!("{}/cluster/v1/events/{}/cascade", origin.url, layout.id),
                    media_ip: origin.media_ip,
                    name: origin.id.to_string(),
                    token: c.secret().to_owned(),
                    http: c.http().clone(),
                    lease: Some((c.registry().clone(), origin.id)),
                })),
            }
        }
        Upstream::Peer { url, event, token, http } => {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
                .ok_or_else(|| format!("'{url}' is not a URL"))?;
            let media_ip = tokio::net::lookup_host(&host)
                .await
                .map_err(|e| format!("{host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} has no address"))?
                .ip();
            Ok(Some(Target {
                url: format!("{url}/cluster/v1/events/{event}/cascade"),
                media_ip,
                name: url.clone(),
                token: token.clone(),
                http: http.clone(),
                lease: None,
            }))
        }
    }
}

/// How many redirects a subscription follows (the origin moved in the peer's cluster).
const MAX_REDIRECTS: usize = 3;

/// One subscription to `target`, until it is lost or stopped. Errors are sentences.
async fn subscribe(
    target: &Target,
    layout: &Arc<EventLayout>,
    media: &Media,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, String> {
    let rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    let mut link = RtcLink::bind(target.media_ip, rtc).await?;
    let channels = layout.languages.len() + 1;
    let (offer, pending, mids) = offer(&mut link, channels)?;
    let mut url = target.url.clone();
    let mut hops = 0;
    let (session, body) = loop {
        let response = target
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/sdp")
            .header(AUTHORIZATION, format!("Bearer {}", target.token))
            .header(CHANNELS_HEADER, channel_list(layout))
            .body(offer.clone())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        match (status, location) {
            (StatusCode::CREATED, location) => break (location, body),
            (StatusCode::TEMPORARY_REDIRECT, Some(next)) if hops < MAX_REDIRECTS => {
                hops += 1;
                url = next;
            }
            _ => return Err(format!("{} refused the cascade ({status}): {}", target.name, detail(&body))),
        }
    };
    let answer = SdpAnswer::from_sdp_string(&body).map_err(|e| format!("the origin's answer: {e}"))?;
    link.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| format!("the origin's answer: {e}"))?;
    info!(origin = %target.name, channels, "subscribed to the origin");
    let input = media.new_input();
    let mut checks = tokio::time::interval(LEASE_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut packets = 0u64;
    let ended = loop {
        let deadline = loop {
            match link.poll()? {
                Polled::Timeout(t) => break t,
                Polled::Event(Event::Connected) => info!(origin = %target.name, "cascade connected"),
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
            break Ended::Lost(format!("the link to {} is gone", target.name));
        }
        tokio::select! {
            waited = link.wait(deadline) => { waited?; }
            _ = stop.changed() => break Ended::Stopped,
            _ = checks.tick() => if let Some(lost) = still_there(target, &layout.id, session.as_deref()).await {
                break Ended::Lost(lost);
            },
        }
    };
    info!(origin = %target.name, packets, "cascade ended");
    if let Some(session) = session {
        // Not waited for: a dead origin must not hold up the next subscription.
        let (http, token) = (target.http.clone(), target.token.clone());
        tokio::spawn(async move {
            let gone = http.delete(&session).header(AUTHORIZATION, format!("Bearer {token}")).send().await;
            if let Err(e) = gone {
                debug!(error = %e, "the origin was not told the cascade ended");
            }
        });
    }
    Ok(ended)
}

/// Whether the subscription still stands: in this cluster, the lease still names its origin; at
/// a peer, the origin still holds the session. Some(why) when it does not.
async fn still_there(target: &Target, event: &EventId, session: Option<&str>) -> Option<String> {
    if let Some((registry, origin)) = &target.lease {
        return match registry.origin(event).await {
            Ok(Some(holder)) if &holder == origin => None,
            Ok(Some(holder)) => Some(format!("{holder} took the event from {origin}")),
            Ok(None) => Some(format!("{origin} no longer holds the event")),
            Err(e) => {
                debug!(error = %e, "lease not checked; the cascade goes on");
                None
            }
        };
    }
    let session = session?;
    let probe = target
        .http
        .get(session)
        .header(AUTHORIZATION, format!("Bearer {}", target.token))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    match probe {
        Ok(r) if r.status() == StatusCode::NOT_FOUND => {
            Some(format!("{} dropped the subscription", target.name))
        }
        Ok(_) => None,
        Err(e) => Some(format!("{} does not answer: {e}", target.name)),
    }
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
