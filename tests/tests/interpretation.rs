//! Interpretation end to end over real WebRTC: a floor at 440 Hz, interpreters A (880 Hz) and
//! B (660 Hz) in the `fr` booth, listeners on `fr` and `de`. What each listener hears is checked by
//! frequency through on-air, handover, cough, unmute, relay input, channel switch and revoke.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tolk_relay::api::{BoothState, InterpreterView};
use tolk_tests::audio::{dominant_frequency, level_db};
use tolk_tests::client::{self, Client};
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, booth_url, floor_token};

const FLOOR: f64 = 440.0;
const A: f64 = 880.0;
const B: f64 = 660.0;

/// Half a second of what a track received after `since` (waits for it to arrive).
async fn heard_after(client: &Client, track: usize, since: Instant) -> anyhow::Result<Vec<f32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = client.track(track);
        let samples = stats.samples_since(since);
        if samples.len() >= 24_000 {
            return Ok(samples[..24_000].to_vec());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "track {track} received {} samples after the change",
            samples.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The frequency a track hears from 200 ms after now (the change has settled in the jitter path).
async fn frequency_now(client: &Client, track: usize) -> anyhow::Result<f64> {
    let since = Instant::now() + Duration::from_millis(200);
    Ok(dominant_frequency(&heard_after(client, track, since).await?))
}

async fn assert_hears(client: &Client, track: usize, expected: f64, what: &str) -> anyhow::Result<()> {
    let heard = frequency_now(client, track).await?;
    assert!((heard - expected).abs() <= 5.0, "{what}: heard {heard:.0} Hz, expected {expected:.0} Hz");
    Ok(())
}

async fn booth(
    relay: &TestRelay,
    token: &str,
    action: &str,
    body: Value,
) -> anyhow::Result<reqwest::Response> {
    Ok(relay
        .http
        .post(relay.url(&format!("/api/v1/booth/{action}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?)
}

async fn booth_ok(relay: &TestRelay, token: &str, action: &str, body: Value) -> anyhow::Result<BoothState> {
    let response = booth(relay, token, action, body).await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status == StatusCode::OK, "{action} answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booths_voice_channels_through_handover_cough_switch_and_revoke() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let event = relay.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let ana = relay.booth_link(&id, "Ana", &["fr"]).await?;
    let ben = relay.booth_link(&id, "Ben", &["fr"]).await?;
    let (ana_token, ben_token) = (booth_token(&ana)?.to_owned(), booth_token(&ben)?.to_owned());
    assert!(booth_url(&ana)?.ends_with(&format!("/booth#token={ana_token}")));
    assert!(ana_token.len() >= 32, "128 random bits or more");

    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let whip_booth = relay.url("/whip/booth");
    let a = client::booth(&relay.http, &whip_booth, &ana_token, A).await?;
    let b = client::booth(&relay.http, &whip_booth, &ben_token, B).await?;
    let fr = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    let de = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/de")), 1).await?;
    fr.wait_packets(0, 25, Duration::from_secs(15)).await?;
    de.wait_packets(0, 25, Duration::from_secs(15)).await?;

    // Nobody on air: every channel carries the floor; interpreters hear the floor as input.
    assert_hears(&fr, 0, FLOOR, "fr with nobody on air").await?;
    assert_hears(&a, 0, FLOOR, "Ana's input").await?;
    let (p50, p95, max) = client::percentiles(client::delays(&floor, &fr, 0));
    println!(
        "pass-through latency floor → listener (publisher send to listener receive): p50 {p50:?}, p95 {p95:?}, max {max:?}"
    );
    let (p50, p95, max) = client::percentiles(client::delays(&floor, &a, 0));
    println!("pass-through latency floor → interpreter's ear: p50 {p50:?}, p95 {p95:?}, max {max:?}");
    assert!(p50 < Duration::from_millis(50), "floor to interpreter is direct: p50 {p50:?}");

    // Ana takes the air in fr.
    let state = booth_ok(&relay, &ana_token, "on-air", json!({"language": "fr"})).await?;
    assert_eq!(state.on_air.as_ref().map(|l| l.as_str()), Some("fr"));
    assert_hears(&fr, 0, A, "fr with Ana on air").await?;
    assert_hears(&de, 0, FLOOR, "de is untouched").await?;
    // Ben hears his partner on his partner track.
    assert_hears(&b, 1, A, "Ben's partner track").await?;

    // Handover: Ben asks, Ana accepts. No gap, no double voice.
    booth_ok(&relay, &ben_token, "handover-request", json!({})).await?;
    let seen: BoothState =
        relay.http.get(relay.url("/api/v1/booth/state")).bearer_auth(&ana_token).send().await?.json().await?;
    assert_eq!(seen.handover_request.map(|r| r.from.name), Some("Ben".to_owned()));
    let before = fr.track(0);
    let handover_at = Instant::now();
    booth_ok(&relay, &ana_token, "handover-accept", json!({})).await?;
    assert_hears(&fr, 0, B, "fr after the handover").await?;
    let after = fr.track(0);
    assert_eq!(after.missing(), before.missing(), "no packet lost at the handover");
    let gap = after
        .arrivals
        .windows(2)
        .filter(|w| w[1].0 >= handover_at)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    println!(
        "handover: largest gap between packets at the fr listener {gap:?} (before it: {:?})",
        before.max_gap
    );
    // No gap: every 10 ms of decoded audio around the handover carries a voice.
    let around = heard_after(&fr, 0, handover_at - Duration::from_millis(200)).await?;
    let quietest = around.chunks(480).map(level_db).fold(f64::MAX, f64::min);
    assert!(quietest > -20.0, "no silence at the handover: the quietest 10 ms is at {quietest:.1} dBFS");
    // Double voice would show as both tones at once right after the switch.
    let right_after = heard_after(&fr, 0, handover_at + Duration::from_millis(60)).await?;
    let a_level = tolk_tests::audio::tone_level_db(&right_after, A);
    let b_level = tolk_tests::audio::tone_level_db(&right_after, B);
    assert!(
        b_level > a_level + 20.0,
        "one voice after the handover: Ben {b_level:.1} dB, Ana {a_level:.1} dB"
    );

    // Cough: silence, never the floor; then back.
    booth_ok(&relay, &ben_token, "mute", json!({"muted": true})).await?;
    let muted = heard_after(&fr, 0, Instant::now() + Duration::from_millis(200)).await?;
    assert!(level_db(&muted) < -50.0, "cough gives silence: {:.1} dBFS", level_db(&muted));
    booth_ok(&relay, &ben_token, "mute", json!({"muted": false})).await?;
    assert_hears(&fr, 0, B, "fr after the cough").await?;

    // Relay input: Ana listens to de (the floor there) then fr (Ben) instead of the floor.
    booth_ok(&relay, &ana_token, "input", json!({"source": "fr"})).await?;
    assert_hears(&a, 0, B, "Ana relaying from fr").await?;
    booth_ok(&relay, &ana_token, "input", json!({"source": "floor"})).await?;
    assert_hears(&a, 0, FLOOR, "Ana back on the floor").await?;

    // A listener switches channel without renegotiation.
    let switch_at = Instant::now();
    let response = relay
        .http
        .post(format!("{}/channel", de.session_url))
        .json(&json!({"language": "fr"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_hears(&de, 0, B, "the de listener after switching to fr").await?;
    let samples = heard_after(&de, 0, switch_at).await?;
    let switched_ms = samples
        .chunks(480)
        .position(|c| tolk_tests::audio::tone_level_db(c, B) > -20.0)
        .map(|i| i * 10)
        .context("the switch never reached the listener")?;
    println!("channel switch: the new channel is heard {switched_ms} ms after the POST (10 ms resolution)");

    // Ana cannot go on air in a language that is not hers: 403, nothing changes.
    let response = booth(&relay, &ana_token, "on-air", json!({"language": "de"})).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Revoke Ben while he is on air: 401 at once, fr falls back to the floor within a second.
    let revoke_at = Instant::now();
    let response = relay
        .http
        .delete(relay.url(&format!("/api/v1/events/{id}/interpreters/{}", ben.id)))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(booth(&relay, &ben_token, "off-air", json!({})).await?.status(), StatusCode::UNAUTHORIZED);
    let after_revoke = heard_after(&fr, 0, revoke_at + Duration::from_millis(1000)).await?;
    let heard = dominant_frequency(&after_revoke);
    assert!(
        (heard - FLOOR).abs() <= 5.0,
        "fr falls back to the floor within 1 s of the revoke: {heard:.0} Hz"
    );

    // Switching is limited per session: a person's few switches pass, a script flipping channels
    // gets 429 with Retry-After and a sentence.
    let mut limited = None;
    for i in 0..40 {
        let language = if i % 2 == 0 { "de" } else { "fr" };
        let response = relay
            .http
            .post(format!("{}/channel", de.session_url))
            .json(&json!({"language": language}))
            .send()
            .await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, response));
            break;
        }
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "switch {i}");
    }
    let (taken, response) = limited.context("40 switches at once were all taken")?;
    assert!(taken >= 5, "limited after {taken} switches");
    let retry: u32 =
        response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    assert!(retry >= 1, "Retry-After: {retry}");
    let problem: tolk_relay::api::Problem = response.json().await?;
    assert!(problem.detail.contains("too many channel switches"), "{problem:?}");

    // Usage facts were recorded as it happened (reading the report writes what is buffered).
    let _: serde_json::Value = relay.admin_get(&format!("/api/v1/events/{id}/usage")).await?;
    let event_id = tolk_relay::ids::EventId::parse(&id)?;
    let counts = relay.server.store().usage_counts(&event_id).await?;
    assert!(counts.on_air >= 2, "on-air intervals: {}", counts.on_air);
    assert!(counts.listening >= 3, "listening rows (2 joins and a switch): {}", counts.listening);
    assert_eq!(counts.handovers, 1);

    for c in [fr, de, a, b, floor] {
        let _ = c.stop();
    }
    relay.stop().await;
    Ok(())
}

/// Mix mode: the floor under the interpretation at the configured level, encoded once per
/// channel; a listener with one track hears both tones, the floor 18 dB (± 2) under the voice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_mode_puts_the_floor_under_the_voice_at_the_configured_level() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let now = chrono::Utc::now();
    let event = relay
        .create_event(json!({
            "title": "Mixed", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "floor_under_interpretation_db": -18
        }))
        .await?;
    assert_eq!(event.floor_under_interpretation_db, Some(-18.0));
    let id = event.id.as_str().to_owned();
    let ana = relay.booth_link(&id, "Ana", &["fr"]).await?;
    let token = booth_token(&ana)?.to_owned();
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let a = client::booth(&relay.http, &relay.url("/whip/booth"), &token, A).await?;
    let fr = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    fr.wait_packets(0, 25, Duration::from_secs(15)).await?;
    assert_hears(&fr, 0, FLOOR, "nobody on air: the floor as it is").await?;

    booth_ok(&relay, &token, "on-air", json!({"language": "fr"})).await?;
    let mixed = heard_after(&fr, 0, Instant::now() + Duration::from_millis(500)).await?;
    let voice = tolk_tests::audio::tone_level_db(&mixed, A);
    let under = tolk_tests::audio::tone_level_db(&mixed, FLOOR);
    println!("mix mode: voice {voice:.1} dB, floor {under:.1} dB, difference {:.1} dB", under - voice);
    assert!(voice > -15.0, "the voice is there: {voice:.1} dB");
    assert!(
        (under - voice + 18.0).abs() <= 2.0,
        "the floor is 18 ± 2 dB under the voice: {:.1} dB",
        under - voice
    );

    // Cough in mix mode: the voice goes, the floor bed stays at its level.
    booth_ok(&relay, &token, "mute", json!({"muted": true})).await?;
    let coughing = heard_after(&fr, 0, Instant::now() + Duration::from_millis(300)).await?;
    assert!(tolk_tests::audio::tone_level_db(&coughing, A) < -40.0, "no voice while coughing");

    for c in [fr, a, floor] {
        let _ = c.stop();
    }
    relay.stop().await;
    Ok(())
}

/// An A/B booth: one interpreter working into two languages moves between them; the language left
/// behind falls back to the floor at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_booth_moves_between_its_two_languages() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let response = relay
        .http
        .post(relay.url(&format!("/api/v1/events/{id}/interpreters")))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Ana", "languages": ["fr", "de"]}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    let ana: InterpreterView = response.json().await?;
    let token = booth_token(&ana)?.to_owned();
    // A language the event does not have is refused with a sentence.
    let bad = relay
        .http
        .post(relay.url(&format!("/api/v1/events/{id}/interpreters")))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Bo", "languages": ["it"]}))
        .send()
        .await?;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let a = client::booth(&relay.http, &relay.url("/whip/booth"), &token, A).await?;
    let fr = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    let de = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/de")), 1).await?;
    fr.wait_packets(0, 25, Duration::from_secs(15)).await?;
    de.wait_packets(0, 25, Duration::from_secs(15)).await?;

    booth_ok(&relay, &token, "on-air", json!({"language": "fr"})).await?;
    assert_hears(&fr, 0, A, "A/B booth on fr").await?;
    assert_hears(&de, 0, FLOOR, "de meanwhile").await?;
    let state = booth_ok(&relay, &token, "on-air", json!({"language": "de"})).await?;
    assert_eq!(state.on_air.as_ref().map(|l| l.as_str()), Some("de"));
    assert_hears(&de, 0, A, "A/B booth moved to de").await?;
    assert_hears(&fr, 0, FLOOR, "fr falls back to the floor").await?;
    // Off air: both channels carry the floor; handover-accept with nobody asking is a 409.
    booth_ok(&relay, &token, "off-air", json!({})).await?;
    assert_hears(&de, 0, FLOOR, "off air").await?;
    assert_eq!(booth(&relay, &token, "handover-accept", json!({})).await?.status(), StatusCode::CONFLICT);
    assert_eq!(booth(&relay, &token, "no-such-action", json!({})).await?.status(), StatusCode::BAD_REQUEST);

    for c in [fr, de, a, floor] {
        let _ = c.stop();
    }
    relay.stop().await;
    Ok(())
}
