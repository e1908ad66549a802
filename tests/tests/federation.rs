//! Federation: co-op A's Tolk (one node) runs an event; co-op B's cluster (two nodes, its own
//! store and Redis) relays it with a peering token A's operator issued. B's listeners, on both of
//! B's nodes, hear A's floor byte for byte; A sees one subscriber, B's origin, and counts it by
//! peer in the usage report. A wrong or revoked token is a 401.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tolk_relay::cluster::ClusterConfig;
use tolk_tests::client;
use tolk_tests::redis::TestRedis;
use tolk_tests::relay::{ADMIN, TestRelay, floor_token};

const FLOOR: f64 = 440.0;

fn clustered(redis: &TestRedis, node: &str) -> impl FnOnce(&mut tolk_relay::config::Settings) {
    let mut config = ClusterConfig::new(redis.url(), "the-secret-of-co-op-b".into());
    config.heartbeat = Duration::from_millis(200);
    let node = node.to_owned();
    move |settings| {
        settings.cluster = Some(config);
        settings.node_id = Some(node);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cluster_relays_an_event_to_its_own_listeners_with_a_peering_token() -> anyhow::Result<()> {
    // Co-op A: the event, its floor, and a peering token for co-op B.
    let a = TestRelay::start(1).await?;
    let event = a.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let floor = client::publish(&a.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let token = tolk_relay::ids::Token::generate();
    a.server.store().insert_peer("coop-b", &token).await?;

    // Co-op B: two nodes, its own store and Redis; an event relaying A's.
    let redis = TestRedis::start().await?;
    let b1 = TestRelay::start_with(1, clustered(&redis, "b1")).await?;
    let b2 = TestRelay::start_shared(&b1.data_dir, 1, clustered(&redis, "b2")).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.keys("tolk:node:*").await?.len() < 2 {
        anyhow::ensure!(Instant::now() < deadline, "B's nodes are not listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    let now = chrono::Utc::now();
    let relay = |floor: Value| {
        json!({
            "title": "Relayed from co-op A", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 2, "floor": floor,
        })
    };
    let relayed = b1
        .create_event(relay(json!({"kind": "peer", "url": event.listener_url, "token": token.secret()})))
        .await?;
    assert_eq!(relayed.floor.peer_url.as_deref(), Some(event.listener_url.as_str()));
    let shown = serde_json::to_string(&relayed)?;
    assert!(!shown.contains(token.secret()), "the peering token is never shown");
    let rid = relayed.id.as_str().to_owned();

    // B's listeners, one on each node: both hear A's floor, byte for byte.
    let on_b1 = client::listen(&b1.http, &b1.url(&format!("/whep/{rid}/fr")), 1).await?;
    let on_b2 = client::listen(&b2.http, &b2.url(&format!("/whep/{rid}/en")), 1).await?;
    for listener in [&on_b1, &on_b2] {
        let stats = listener.wait_packets(0, 100, Duration::from_secs(15)).await?;
        let frequency = tolk_tests::audio::dominant_frequency(stats.last_seconds(1.0));
        assert!((frequency - FLOOR).abs() <= 5.0, "B's listener hears {frequency} Hz");
    }
    let matched = client::delays(&floor, &on_b2, 0);
    assert!(matched.len() > 50, "A's payloads reach B's listeners unchanged ({} matched)", matched.len());
    let (p50, p95, _) = client::percentiles(matched);
    println!("A's floor → B's listener (A → B's origin → B's edge): p50 {p50:?}, p95 {p95:?}");

    // A sees one subscriber for B's two nodes and two listeners.
    assert_eq!(a.metric_until("tolk_cluster_cascades_out ", |v| v >= 1.0).await?, 1.0);
    let usage: Value = a
        .http
        .get(a.url(&format!("/api/v1/events/{id}/usage")))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .json()
        .await?;
    let peers = usage["peers"].as_array().cloned().unwrap_or_default();
    assert_eq!(peers.len(), 1, "{usage}");
    assert_eq!(peers[0]["peer"], "coop-b");
    assert_eq!(peers[0]["subscriptions"], 1);

    // A wrong token, and a revoked one, are refused with a sentence.
    let cascade = a.url(&format!("/cluster/v1/events/{id}/cascade"));
    for bad in ["not-a-peering-token-of-a", token.secret()] {
        if bad == token.secret() {
            assert!(a.server.store().revoke_peer("coop-b").await?);
        }
        let response = a
            .http
            .post(&cascade)
            .bearer_auth(bad)
            .header("content-type", "application/sdp")
            .header("tolk-channels", "en,fr")
            .body(client::vanishing_offer()?)
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 401);
        let problem: Value = response.json().await?;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("peering token")), "{problem}");
    }
    // A relayed event with a bad link is refused at creation.
    let refused = b1
        .http
        .post(b1.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&relay(json!({"kind": "peer", "url": "https://a.example/nothing", "token": token.secret()})))
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 400);
    Ok(())
}
