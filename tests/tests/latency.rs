//! Latency figures, measured over real WebRTC on loopback: a gated floor tone (100 ms on, 100 ms
//! off) and the time from each onset leaving the publisher to its first audible frame at the
//! receiver (20 ms granularity of arrival; the Opus lookahead is not in it). Pass-through
//! (listener and interpreter's ear) and mix mode. Printed for the record; asserted only loosely,
//! as a functional check (speed is measured in bench/ and loadtest/).

use std::time::{Duration, Instant};

use serde_json::json;
use tolk_relay::api::EventView;
use tolk_tests::audio::OpusTone;
use tolk_tests::client::{self, onset_delays, percentiles};
use tolk_tests::relay::{TestRelay, booth_token, floor_token};

const GATE: u64 = 5;

async fn event(relay: &TestRelay, mix_db: Option<f32>) -> anyhow::Result<EventView> {
    let now = chrono::Utc::now();
    relay
        .create_event(json!({
            "title": "Latency", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "floor_under_interpretation_db": mix_db
        }))
        .await
}

async fn interpreter(relay: &TestRelay, id: &str) -> anyhow::Result<String> {
    let ana = relay.booth_link(id, "Ana", &["fr"]).await?;
    Ok(booth_token(&ana)?.to_owned())
}

fn report(what: &str, delays: Vec<Duration>) -> Duration {
    let n = delays.len();
    let (p50, p95, max) = percentiles(delays);
    println!("{what}: p50 {p50:.1?}, p95 {p95:.1?}, max {max:.1?} ({n} onsets)");
    assert!(n >= 5, "{what}: only {n} onsets heard");
    p50
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_to_ear_latency_in_pass_through_and_mix_mode() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;

    // Pass-through.
    let plain = event(&relay, None).await?;
    let id = plain.id.as_str().to_owned();
    let token = interpreter(&relay, &id).await?;
    let tone = OpusTone::new(440.0, 0.5)?.gated(GATE);
    let floor =
        client::publish_tone(&relay.http, plain.floor.whip_url.as_str(), floor_token(&plain)?, tone).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    let booth = client::booth(&relay.http, &relay.url("/whip/booth"), &token, 880.0).await?;
    listener.wait_packets(0, 150, Duration::from_secs(20)).await?;
    booth.wait_packets(0, 150, Duration::from_secs(20)).await?;
    let pass = report("pass-through floor → listener", onset_delays(&floor, &listener, 0, GATE));
    report("pass-through floor → interpreter's ear", onset_delays(&floor, &booth, 0, GATE));
    assert!(pass < Duration::from_millis(60), "pass-through adds no buffering: p50 {pass:?}");
    for c in [listener, booth, floor] {
        let _ = c.stop();
    }

    // Mix mode: Ana on air but coughing, so the channel carries the floor bed (-12 dB) alone.
    let mixed = event(&relay, Some(-12.0)).await?;
    let id = mixed.id.as_str().to_owned();
    let token = interpreter(&relay, &id).await?;
    let tone = OpusTone::new(440.0, 0.5)?.gated(GATE);
    let floor =
        client::publish_tone(&relay.http, mixed.floor.whip_url.as_str(), floor_token(&mixed)?, tone).await?;
    let booth = client::booth(&relay.http, &relay.url("/whip/booth"), &token, 880.0).await?;
    for (action, body) in [("on-air", json!({"language": "fr"})), ("mute", json!({"muted": true}))] {
        let response = relay
            .http
            .post(relay.url(&format!("/api/v1/booth/{action}")))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "{action}: {}", response.status());
    }
    let started = Instant::now();
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    listener.wait_packets(0, 150, Duration::from_secs(20)).await?;
    let _ = started;
    report("mix mode floor → listener", onset_delays(&floor, &listener, 0, GATE));
    for c in [listener, booth, floor] {
        let _ = c.stop();
    }
    relay.stop().await;
    Ok(())
}
