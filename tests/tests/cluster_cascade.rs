//! Nodes of a cluster in this process, on one real Redis and one store: the floor and booths
//! publish to node A (the event's origin), listeners join at nodes B and C (edges), each of which
//! subscribes to A once over one WebRTC link carrying every channel. What the edges' listeners
//! hear is checked by frequency and by payload (byte for byte what A's own listeners get), through
//! a handover on A (no packet lost, no silence, on both edges) and a channel switch on B; the
//! cascade's added latency is measured against a listener on A in the same run. A full edge sends
//! a listener on with a 307.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tolk_relay::cluster::ClusterConfig;
use tolk_tests::audio::dominant_frequency;
use tolk_tests::client::{self, Client};
use tolk_tests::redis::TestRedis;
use tolk_tests::relay::{TestRelay, booth_token, floor_token};

const FLOOR: f64 = 440.0;
const ANA: f64 = 880.0;
const BEN: f64 = 660.0;
const SECRET: &str = "cluster-secret-for-tests";

fn clustered(redis: &TestRedis, node: &str) -> impl FnOnce(&mut tolk_relay::config::Settings) {
    let mut config = ClusterConfig::new(redis.url(), SECRET.into());
    config.heartbeat = Duration::from_millis(200);
    let node = node.to_owned();
    move |settings| {
        settings.cluster = Some(config);
        settings.node_id = Some(node);
    }
}

/// Wait until Redis lists `n` nodes, and one more heartbeat, so that every node has read the
/// others' records.
async fn until_listed(redis: &TestRedis, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.keys("tolk:node:*").await?.len() < n {
        anyhow::ensure!(Instant::now() < deadline, "Redis lists {:?}", redis.keys("tolk:node:*").await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    Ok(())
}

async fn frequency_after(client: &Client, track: usize, since: Instant) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = client.track(track).samples_since(since).to_vec();
        if samples.len() >= 24_000 {
            return Ok(dominant_frequency(&samples[..24_000]));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "track {track}: {} samples since the change",
            samples.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn assert_hears(client: &Client, expected: f64, what: &str) -> anyhow::Result<()> {
    let heard = frequency_after(client, 0, Instant::now() + Duration::from_millis(200)).await?;
    assert!((heard - expected).abs() <= 5.0, "{what}: heard {heard:.0} Hz, expected {expected:.0} Hz");
    Ok(())
}

async fn booth_action(relay: &TestRelay, token: &str, action: &str, body: Value) -> anyhow::Result<()> {
    let response = relay
        .http
        .post(relay.url(&format!("/api/v1/booth/{action}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{action}: {status} {}", response.text().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_serves_the_origins_channels_byte_for_byte_through_a_handover_and_a_switch()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let a = TestRelay::start_with(1, clustered(&redis, "node-a")).await?;
    let b = TestRelay::start_shared(&a.data_dir, 1, clustered(&redis, "node-b")).await?;
    let c = TestRelay::start_shared(&a.data_dir, 1, clustered(&redis, "node-c")).await?;
    until_listed(&redis, 3).await?;

    let event = a.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let ana = a.booth_link(&id, "Ana", &["fr"]).await?;
    let ben = a.booth_link(&id, "Ben", &["fr"]).await?;
    let (ana_token, ben_token) = (booth_token(&ana)?.to_owned(), booth_token(&ben)?.to_owned());
    // The floor publishes at A: A takes the event's origin.
    let floor = client::publish(&a.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    assert_eq!(redis.keys(&format!("tolk:origin:{id}")).await?.len(), 1, "the origin lease is taken");
    let _ana = client::booth(&a.http, &a.url("/whip/booth"), &ana_token, ANA).await?;
    // Ben's booth page came from node B: his publish is forwarded to the origin with his token.
    let ben = client::booth(&b.http, &b.url("/whip/booth"), &ben_token, BEN).await?;
    assert!(ben.session_url.starts_with(&a.base), "Ben's session is on the origin: {}", ben.session_url);

    // Listeners on the edge (B) and, to compare, on the origin (A).
    let at_origin = client::listen(&a.http, &a.url(&format!("/whep/{id}/fr")), 1).await?;
    let mut on_edge = Vec::new();
    for language in ["fr", "fr", "de"] {
        on_edge.push(client::listen(&b.http, &b.url(&format!("/whep/{id}/{language}")), 1).await?);
    }
    // And one on a second edge (C).
    let on_c = client::listen(&c.http, &c.url(&format!("/whep/{id}/fr")), 1).await?;
    for listener in on_edge.iter().chain([&at_origin, &on_c]) {
        listener.wait_packets(0, 50, Duration::from_secs(15)).await?;
    }
    assert_hears(&on_edge[0], FLOOR, "fr on the edge, nobody on air").await?;

    // One subscription per edge: B's three listeners and C's one.
    let metric = |text: &str, name: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let origin_metrics = a.metrics_text().await?;
    assert_eq!(metric(&origin_metrics, "tolk_cluster_cascades_out "), Some(2.0), "one cascade per edge");
    assert_eq!(metric(&origin_metrics, "tolk_cluster_events{role=\"origin\"}"), Some(1.0));
    let edge_metrics = b.metrics_text().await?;
    assert_eq!(metric(&edge_metrics, "tolk_cluster_events{role=\"edge\"}"), Some(1.0));
    assert_eq!(metric(&edge_metrics, "tolk_cluster_nodes "), Some(3.0));

    // Ana on air at the origin: heard on the edge, and the edge's listener page says so.
    booth_action(&a, &ana_token, "on-air", json!({"language": "fr"})).await?;
    assert_hears(&on_edge[0], ANA, "fr on the edge with Ana on air").await?;
    assert_hears(&on_edge[2], FLOOR, "de on the edge is untouched").await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let channels: Value =
            b.http.get(b.url(&format!("/api/v1/events/{id}/channels"))).send().await?.json().await?;
        let fr =
            channels["channels"].as_array().and_then(|c| c.iter().find(|c| c["language"] == "fr")).cloned();
        if fr.as_ref().is_some_and(|fr| fr["interpreter"] == "Ana") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the edge does not know who is on air: {channels}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Handover at the origin (Ben asks through node B, which forwards it): no packet lost on
    // the edge, no gap beyond the usual jitter.
    booth_action(&b, &ben_token, "handover-request", json!({})).await?;
    let state: Value =
        b.http.get(b.url("/api/v1/booth/state")).bearer_auth(&ana_token).send().await?.json().await?;
    assert_eq!(
        state["handover_request"]["from"]["name"], "Ben",
        "the origin's booth state, through B: {state}"
    );
    let before = [on_edge[1].track(0), on_c.track(0)];
    let handover_at = Instant::now();
    booth_action(&a, &ana_token, "handover-accept", json!({})).await?;
    for (edge, listener, before) in [("B", &on_edge[1], &before[0]), ("C", &on_c, &before[1])] {
        assert_hears(listener, BEN, &format!("fr on edge {edge} after the handover")).await?;
        let after = listener.track(0);
        assert_eq!(after.missing(), before.missing(), "no packet lost at the handover on edge {edge}");
        let gap = after.arrivals.windows(2).filter(|w| w[1].0 >= handover_at).map(|w| w[1].0 - w[0].0).max();
        println!("handover seen on edge {edge}: largest gap between packets {gap:?}");
        // No gap: every 10 ms of decoded audio around the handover carries a voice.
        let around = listener.track(0).samples_since(handover_at - Duration::from_millis(200)).to_vec();
        let quietest = around.chunks(480).take(40).map(tolk_tests::audio::level_db).fold(f64::MAX, f64::min);
        assert!(
            quietest > -20.0,
            "edge {edge}: the quietest 10 ms around the handover is at {quietest:.1} dBFS"
        );
    }

    // A listener switches channel on the edge, without renegotiating.
    let switch = b
        .http
        .post(format!("{}/channel", on_edge[2].session_url))
        .json(&json!({"language": "fr"}))
        .send()
        .await?;
    assert_eq!(switch.status().as_u16(), 204);
    assert_hears(&on_edge[2], BEN, "the de listener switched to fr on the edge").await?;

    // Byte for byte: the edge's payloads are the origin's; the cascade's added latency.
    let origin_delays = client::delays(&floor, &at_origin, 0);
    let edge_delays = client::delays(&floor, &on_edge[0], 0);
    println!("matched payloads: {} at the origin, {} on the edge", origin_delays.len(), edge_delays.len());
    let (o50, o95, _) = client::percentiles(origin_delays);
    let (e50, e95, _) = client::percentiles(edge_delays.clone());
    assert!(edge_delays.len() > 50, "the edge forwards the origin's payloads unchanged");
    println!(
        "floor → listener: at the origin p50 {o50:?} p95 {o95:?}; on the edge p50 {e50:?} p95 {e95:?}; \
         the cascade adds {:?} at p50",
        e50.saturating_sub(o50)
    );

    // The event is cancelled on the origin: the edge's listeners end too.
    let cancelled = a
        .http
        .delete(a.url(&format!("/api/v1/events/{id}")))
        .bearer_auth(tolk_tests::relay::ADMIN)
        .send()
        .await?;
    assert_eq!(cancelled.status().as_u16(), 204);
    b.metric_until("tolk_sessions ", |v| v == 0.0).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_sends_listeners_on_and_an_edge_without_listeners_unsubscribes() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let a = TestRelay::start_with(1, clustered(&redis, "node-a")).await?;
    let capacity_two = clustered(&redis, "node-b");
    let b = TestRelay::start_shared(&a.data_dir, 1, move |s| {
        capacity_two(s);
        s.capacity.listeners = 2;
        s.cluster_url = Some("https://tolk.coop.example".into());
    })
    .await?;
    until_listed(&redis, 2).await?;
    let event = a.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let _floor = client::publish(&a.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    // B hands out links to the cluster's entry, not to itself.
    let seen_at_b: Value = b
        .http
        .get(b.url(&format!("/api/v1/events/{id}")))
        .bearer_auth(tolk_tests::relay::ADMIN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(seen_at_b["listener_url"], format!("https://tolk.coop.example/e/{id}"), "{seen_at_b}");

    // Two listeners fill B (an edge); B's next heartbeat says so; the third is sent to A.
    let mut at_b = Vec::new();
    for _ in 0..2 {
        at_b.push(client::listen(&b.http, &b.url(&format!("/whep/{id}/fr")), 1).await?);
    }
    b.metric_until("tolk_cluster_events{role=\"edge\"}", |v| v == 1.0).await?;
    tokio::time::sleep(Duration::from_millis(450)).await; // B's record counts them
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let offer = client::vanishing_offer()?;
    let sent_on = no_redirect
        .post(b.url(&format!("/whep/{id}/fr")))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await?;
    assert_eq!(sent_on.status().as_u16(), 307, "a full node sends the listener on");
    let location = sent_on.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
    assert_eq!(location, a.url(&format!("/whep/{id}/fr")), "to the node with room");
    // A WHEP client follows it and listens at A.
    let third = client::listen(&b.http, &b.url(&format!("/whep/{id}/fr")), 1).await?;
    assert!(third.session_url.starts_with(&a.base), "served by A: {}", third.session_url);
    third.wait_packets(0, 25, Duration::from_secs(10)).await?;
    for listener in &at_b {
        listener.wait_packets(0, 25, Duration::from_secs(10)).await?;
    }
    assert_eq!(a.metric_until("tolk_cluster_cascades_out ", |v| v == 1.0).await?, 1.0);

    // B's listeners leave: B drops its subscription, and A its cascade session.
    for listener in at_b {
        let url = listener.session_url.clone();
        listener.stop()?;
        b.http.delete(&url).send().await?;
    }
    b.metric_until("tolk_cluster_events{role=\"edge\"}", |v| v == 0.0).await?;
    a.metric_until("tolk_cluster_cascades_out ", |v| v == 0.0).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_needs_the_cluster_secret() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let a = TestRelay::start_with(1, clustered(&redis, "node-a")).await?;
    let event = a.event_now(&["fr"], "whip").await?;
    let url = a.url(&format!("/cluster/v1/events/{}/cascade", event.id.as_str()));
    let offer = client::vanishing_offer()?;
    for token in [None, Some("not-the-cluster-secret")] {
        let mut request =
            a.http.post(&url).header("content-type", "application/sdp").header("tolk-channels", "en,fr");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.body(offer.clone()).send().await?;
        assert_eq!(response.status().as_u16(), 401, "{token:?}");
        let problem: Value = response.json().await?;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("cluster")), "{problem}");
    }
    // The right secret with other channels than the event's: refused, naming the event's.
    let response = a
        .http
        .post(&url)
        .bearer_auth(SECRET)
        .header("content-type", "application/sdp")
        .header("tolk-channels", "en,de")
        .body(offer)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 409);
    assert!(response.text().await?.contains("en,fr"));
    // A single node (no Redis) takes no cluster secret: only peering tokens (federation).
    let single = TestRelay::start(1).await?;
    let event = single.event_now(&["fr"], "whip").await?;
    let response = single
        .http
        .post(single.url(&format!("/cluster/v1/events/{}/cascade", event.id.as_str())))
        .bearer_auth(SECRET)
        .header("content-type", "application/sdp")
        .body(client::vanishing_offer()?)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);
    Ok(())
}

/// A BBB-floor event in a cluster: the node it was made on (its BBB server's) takes the origin at
/// once and is the only one in the meeting; an edge's listener hears the meeting through it. The
/// origin stops: the other node takes the event and pulls the meeting itself, and the edge's
/// listener, on the same session, hears it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bbb_floor_is_pulled_by_the_origin_only_and_by_the_next_one_after_it() -> anyhow::Result<()> {
    use tolk_tests::bbb::{BbbStandIn, StandInConfig};
    const MEETING: f64 = 520.0;
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-1", MEETING);
    let redis = TestRedis::start().await?;
    let mut config = tolk_relay::bbb::BbbConfig::new(&bbb.api_url(), bbb.secret())?;
    config.poll = Duration::from_millis(200);
    let (cluster_a, config_a) = (clustered(&redis, "node-a"), config.clone());
    let a = TestRelay::start_with(1, move |s| {
        cluster_a(s);
        s.bbb = Some(config_a);
    })
    .await?;
    let cluster_b = clustered(&redis, "node-b");
    let b = TestRelay::start_shared(&a.data_dir, 1, move |s| {
        cluster_b(s);
        s.bbb = Some(config);
    })
    .await?;
    until_listed(&redis, 2).await?;

    let event = a.bbb_event("plenary-1", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str().to_owned();
    let origin = redis.get(&format!("tolk:origin:{id}")).await?;
    assert_eq!(origin.as_deref(), Some("node-a"), "the BBB host's node takes the origin at once");
    a.floor_until(&id, Duration::from_secs(20), |s| s.state == tolk_relay::api::FloorState::Live).await?;
    let listener = client::listen(&b.http, &b.url(&format!("/whep/{id}/en")), 1).await?;
    let heard = listener.wait_packets(0, 100, Duration::from_secs(20)).await?;
    let frequency = dominant_frequency(heard.last_seconds(1.0));
    assert!((frequency - MEETING).abs() <= 5.0, "the edge's listener hears {frequency} Hz");
    assert_eq!(bbb.stats().joins.len(), 1, "one node in the meeting: the origin");

    // The origin stops: B takes the event and joins the meeting itself.
    let session = listener.session_url.clone();
    a.stop().await;
    let stopped = Instant::now();
    bbb.wait_until(|s| s.joins.len() == 2, Duration::from_secs(10)).await?;
    let before = listener.track(0).packets;
    let heard = listener.wait_packets(0, before + 100, Duration::from_secs(20)).await?;
    let frequency = dominant_frequency(heard.last_seconds(1.0));
    assert!((frequency - MEETING).abs() <= 5.0, "after the failover the listener hears {frequency} Hz");
    println!("BBB floor back through node B {:?} after node A stopped", stopped.elapsed());
    assert_eq!(listener.session_url, session);
    assert_eq!(redis.get(&format!("tolk:origin:{id}")).await?.as_deref(), Some("node-b"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_records_and_any_node_serves_its_files() -> anyhow::Result<()> {
    use tolk_relay::api::{RecordingStatusView, RecordingsView};
    let redis = TestRedis::start().await?;
    let a = TestRelay::start_with(1, clustered(&redis, "node-a")).await?;
    let b = TestRelay::start_shared(&a.data_dir, 1, clustered(&redis, "node-b")).await?;
    until_listed(&redis, 2).await?;
    let event = a.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let floor = client::publish(&a.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    // Switched on at the edge: the origin records (the edge only stores the switch).
    let on = b
        .http
        .post(b.url(&format!("/api/v1/events/{id}/recording")))
        .bearer_auth(tolk_tests::relay::ADMIN)
        .json(&json!({"on": true}))
        .send()
        .await?;
    assert!(on.status().is_success(), "switch: {}", on.status());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.admin_get::<RecordingStatusView>(&format!("/api/v1/events/{id}/recording")).await?.recording {
        anyhow::ensure!(Instant::now() < deadline, "the origin does not record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!b.admin_get::<RecordingStatusView>(&format!("/api/v1/events/{id}/recording")).await?.recording);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let off = a
        .http
        .post(a.url(&format!("/api/v1/events/{id}/recording")))
        .bearer_auth(tolk_tests::relay::ADMIN)
        .json(&json!({"on": false}))
        .send()
        .await?;
    assert!(off.status().is_success());

    let listed: RecordingsView = b.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
    assert_eq!(listed.recordings.len(), 2);
    let url = &listed.recordings[0].url;
    let at_origin =
        a.http.get(a.url(url)).bearer_auth(tolk_tests::relay::ADMIN).send().await?.bytes().await?;
    let through_edge = b.http.get(b.url(url)).bearer_auth(tolk_tests::relay::ADMIN).send().await?;
    assert_eq!(through_edge.status(), 200);
    assert_eq!(through_edge.headers()["content-type"], "audio/ogg; codecs=opus");
    assert_eq!(through_edge.bytes().await?, at_origin, "the same file through the edge");
    let range = b
        .http
        .get(b.url(url))
        .bearer_auth(tolk_tests::relay::ADMIN)
        .header("range", "bytes=0-99")
        .send()
        .await?;
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await?, at_origin.slice(0..100));
    // A download cookie from the edge opens the file at the edge (and so at the origin).
    let access = b
        .http
        .post(b.url(&format!("/api/v1/events/{id}/recordings/access")))
        .bearer_auth(tolk_tests::relay::ADMIN)
        .send()
        .await?;
    let cookie = access.headers()["set-cookie"].to_str()?.split(';').next().unwrap_or_default().to_owned();
    let by_cookie = b.http.get(b.url(url)).header("cookie", &cookie).send().await?;
    assert_eq!(by_cookie.status(), 200);
    assert_eq!(by_cookie.bytes().await?, at_origin);
    println!("a {}-byte file recorded at the origin, served byte for byte through the edge", at_origin.len());
    floor.stop()?;
    Ok(())
}
