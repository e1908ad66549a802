//! An event whose floor is a BigBlueButton meeting, against the BBB stand-in (`tolk_tests::bbb`)
//! over the network: both offer flows end to end (a listener hears the meeting's tone through
//! Tolk), a wrong secret, a meeting that is not running yet, a dropped websocket, a meeting that
//! ends and an event that ends; which meetings an organiser may take.

use std::time::Duration;

use serde_json::{Value, json};
use tolk_relay::api::{EventView, FloorKind, FloorState, Live, Problem};
use tolk_relay::bbb::BbbConfig;
use tolk_relay::ids::MeetingPattern;
use tolk_tests::audio::dominant_frequency;
use tolk_tests::bbb::{BbbStandIn, OfferFlow, StandInConfig};
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay};

const TONE: f64 = 520.0;

/// A relay whose BBB server is `bbb` (with `secret`), polling fast.
async fn relay_for(
    bbb: &BbbStandIn,
    secret: &str,
    offer: tolk_relay::bbb::OfferFlow,
) -> anyhow::Result<TestRelay> {
    let mut config = BbbConfig::new(&bbb.api_url(), secret)?;
    config.offer = offer;
    config.poll = Duration::from_millis(200);
    config.keepalive = Duration::from_secs(1);
    TestRelay::start_with(1, move |s| s.bbb = Some(config)).await
}

/// The listener's floor track carries the meeting's tone again: `packets` more after `since`.
async fn hears_tone(listener: &client::Client, since: u64, packets: u64) -> anyhow::Result<()> {
    let stats = listener.wait_packets(0, since + packets, Duration::from_secs(20)).await?;
    let frequency = dominant_frequency(stats.last_seconds(1.0));
    anyhow::ensure!((frequency - TONE).abs() <= 5.0, "the listener hears {frequency} Hz, not {TONE} Hz");
    Ok(())
}

async fn floor_flows(flow: OfferFlow, relay_flow: tolk_relay::bbb::OfferFlow) -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig { offer: flow, ..Default::default() }).await?;
    bbb.create_meeting("plenary-1", TONE);
    let relay = relay_for(&bbb, bbb.secret(), relay_flow).await?;
    let event = relay.bbb_event("plenary-1", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str();
    assert_eq!(event.floor.kind, FloorKind::Bbb);
    assert_eq!(event.floor.meeting_id.as_deref(), Some("plenary-1"));

    relay.floor_until(id, Duration::from_secs(20), |s| s.state == FloorState::Live).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?;
    hears_tone(&listener, 0, 100).await?;

    // The bot joined as BBB's API asks of a listen-only bot.
    let stats = bbb.stats();
    let join = stats.joins.first().ok_or_else(|| anyhow::anyhow!("no join"))?;
    for (key, value) in [
        ("fullName", "Interpretation"),
        ("meetingID", "plenary-1"),
        ("role", "VIEWER"),
        ("redirect", "false"),
        ("bot", "true"),
        ("excludeFromDashboard", "true"),
    ] {
        assert_eq!(join.get(key).map(String::as_str), Some(value), "join parameter {key}");
    }
    assert!(stats.calls.iter().any(|c| c == "stuns"), "ICE servers not asked for: {:?}", stats.calls);
    assert!(stats.pings >= 1, "no keep-alive ping");
    assert_eq!(stats.checksum_failures, 0);

    // The API and the organiser's live view show the floor live.
    let view: EventView = relay.admin_get(&format!("/api/v1/events/{id}")).await?;
    assert_eq!(view.floor.state.as_ref().map(|s| s.state), Some(FloorState::Live), "{view:?}");
    let live: Live = relay.admin_get(&format!("/api/v1/events/{id}/live")).await?;
    assert_eq!(live.floor.connected, Some(true), "{live:?}");
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_offer_flow_brings_the_meeting_to_listeners() -> anyhow::Result<()> {
    floor_flows(OfferFlow::Server, tolk_relay::bbb::OfferFlow::Server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_offer_flow_brings_the_meeting_to_listeners() -> anyhow::Result<()> {
    floor_flows(OfferFlow::Client, tolk_relay::bbb::OfferFlow::Client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_clear_floor_error_without_a_crash_loop() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-2", TONE);
    let relay = relay_for(&bbb, "not-the-secret", tolk_relay::bbb::OfferFlow::Server).await?;
    let event = relay.bbb_event("plenary-2", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str();
    let status = relay.floor_until(id, Duration::from_secs(10), |s| s.state == FloorState::Error).await?;
    let detail = status.detail.unwrap_or_default();
    assert!(detail.contains("checksum") && detail.contains("TOLK_BBB_SECRET"), "unclear error: {detail}");

    // Over the next 2 s (ten poll periods) Tolk does not hammer BBB: a refused secret waits the
    // longest backoff. The relay keeps serving, and listeners can join the (silent) floor.
    let failures = bbb.stats().checksum_failures;
    let window = tokio::time::sleep(Duration::from_secs(2));
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    window.await;
    let after = bbb.stats().checksum_failures;
    assert!(after <= failures + 1, "{} checksum failures in 2 s: a retry loop", after - failures);
    assert_eq!(bbb.stats().joins.len(), 0);
    let health = relay.http.get(relay.url("/healthz")).send().await?;
    assert!(health.status().is_success());
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_meeting_then_joins() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    let relay = relay_for(&bbb, bbb.secret(), tolk_relay::bbb::OfferFlow::Server).await?;
    let event = relay.bbb_event("later", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str();
    relay
        .floor_until(id, Duration::from_secs(10), |s| {
            s.state == FloorState::Waiting && s.detail.as_deref() == Some("waiting for the meeting to start")
        })
        .await?;
    // It asks again and again, and joins nothing meanwhile.
    bbb.wait_until(
        |s| s.calls.iter().filter(|c| *c == "isMeetingRunning").count() >= 3,
        Duration::from_secs(10),
    )
    .await?;
    assert!(bbb.stats().joins.is_empty());
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?;

    bbb.create_meeting("later", TONE);
    relay.floor_until(id, Duration::from_secs(20), |s| s.state == FloorState::Live).await?;
    hears_tone(&listener, 0, 100).await?;
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_reconnects_and_listeners_stay() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-3", TONE);
    let relay = relay_for(&bbb, bbb.secret(), tolk_relay::bbb::OfferFlow::Server).await?;
    let event = relay.bbb_event("plenary-3", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str();
    relay.floor_until(id, Duration::from_secs(20), |s| s.state == FloorState::Live).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?;
    hears_tone(&listener, 0, 50).await?;

    bbb.drop_connections("plenary-3");
    relay.floor_until(id, Duration::from_secs(10), |s| s.state != FloorState::Live).await?;
    let before = listener.track(0).packets;
    let status = relay
        .floor_until(id, Duration::from_secs(20), |s| s.state == FloorState::Live && s.connections >= 2)
        .await?;
    assert_eq!(status.connections, 2);
    // The same listener session hears the floor again, on the same track.
    hears_tone(&listener, before, 100).await?;
    let stats = listener.track(0);
    assert!(stats.max_gap < Duration::from_secs(15), "gap {:?}", stats.max_gap);
    assert_eq!(bbb.stats().joins.len(), 2, "one join per connection");
    assert!(relay.metric("tolk_sessions").await? >= 1.0, "the listener's session is counted");
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolk_leaves_when_the_meeting_or_the_event_ends() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-4", TONE);
    let relay = relay_for(&bbb, bbb.secret(), tolk_relay::bbb::OfferFlow::Server).await?;
    let event = relay.bbb_event("plenary-4", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str();
    relay.floor_until(id, Duration::from_secs(20), |s| s.state == FloorState::Live).await?;

    // The meeting ends: Tolk leaves it and waits for it to start again.
    bbb.end_meeting("plenary-4");
    let status = relay.floor_until(id, Duration::from_secs(10), |s| s.state == FloorState::Waiting).await?;
    assert!(status.detail.unwrap_or_default().contains("ended"));
    let stats =
        bbb.wait_until(|s| s.websockets_open == 0 && s.media_flowing == 0, Duration::from_secs(5)).await?;
    assert_eq!(stats.joins.len(), 1);

    // A second event whose end comes while it is live: Tolk leaves at the end.
    bbb.create_meeting("short", TONE);
    let short = relay.bbb_event("short", chrono::Duration::seconds(6)).await?;
    let short = short.id.as_str();
    relay.floor_until(short, Duration::from_secs(5), |s| s.state == FloorState::Live).await?;
    relay.floor_until(short, Duration::from_secs(10), |s| s.state == FloorState::Ended).await?;
    bbb.wait_until(|s| s.websockets_open == 0, Duration::from_secs(5)).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bbb_floors_need_a_bbb_server_and_a_meeting_id() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let now = chrono::Utc::now();
    let body = |floor: Value| {
        json!({
            "title": "x", "floor_language": "en", "languages": [],
            "starts_at": now.to_rfc3339(), "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 5, "floor": floor,
        })
    };
    for (floor, says) in [
        (json!({"kind": "bbb", "meeting_id": "m"}), "TOLK_BBB_URL"),
        (json!({"kind": "bbb"}), "meeting_id"),
        (json!({"kind": "bbb", "meeting_id": ""}), "meeting_id"),
    ] {
        let response = relay
            .http
            .post(relay.url("/api/v1/events"))
            .bearer_auth(ADMIN)
            .json(&body(floor.clone()))
            .send()
            .await?;
        assert!(response.status().is_client_error(), "{floor} accepted");
        let text = response.text().await?;
        assert!(text.contains(says), "{floor}: {text}");
    }
    let events: Vec<EventView> = relay.admin_get("/api/v1/events").await?;
    assert_eq!(events.len(), 0, "{events:?}");
    relay.stop().await;
    Ok(())
}

/// A BBB server is shared by many organisers and Tolk's bot joins with the server's secret: an
/// organiser takes only the meetings the operator allowed it; the admin any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organiser_takes_only_the_meetings_it_is_allowed() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    let relay = relay_for(&bbb, bbb.secret(), tolk_relay::bbb::OfferFlow::Server).await?;
    let store = relay.server.store();
    let token = tolk_relay::ids::Token::generate();
    let alpha = store.insert_organiser("Alpha co-op", &token).await?;
    let now = chrono::Utc::now();
    let create = |meeting: &str| {
        let body = json!({
            "title": "Plenary", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now + chrono::Duration::days(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::days(1) + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "floor": {"kind": "bbb", "meeting_id": meeting},
        });
        relay.http.post(relay.url("/api/v1/events")).bearer_auth(token.secret()).json(&body).send()
    };
    let count = || async {
        let events: Vec<EventView> = relay.admin_get("/api/v1/events").await?;
        anyhow::Ok(events.len())
    };

    // No allowance: 403 with a sentence, nothing stored.
    let refused = create("other-coop-board").await?;
    assert_eq!(refused.status().as_u16(), 403);
    let problem: Problem = refused.json().await?;
    assert!(problem.detail.contains("may not take BBB meeting 'other-coop-board'"), "{problem:?}");
    assert_eq!(count().await?, 0);

    // An exact id and a prefix.
    let exact = MeetingPattern::parse("alpha-plenary")?;
    let prefix = MeetingPattern::parse("alpha-ws-*")?;
    assert!(store.allow_meetings(alpha.id, &exact).await?);
    assert!(store.allow_meetings(alpha.id, &prefix).await?);
    assert!(store.allow_meetings(alpha.id, &prefix).await?, "allowing twice changes nothing");
    assert_eq!(store.meeting_allowances(alpha.id).await?, vec![exact.clone(), prefix.clone()]);
    assert_eq!(create("alpha-plenary").await?.status().as_u16(), 201);
    assert_eq!(create("alpha-ws-3").await?.status().as_u16(), 201);
    for other in ["alpha-plenary-2", "alpha-w", "other-coop-board"] {
        assert_eq!(create(other).await?.status().as_u16(), 403, "{other}");
    }
    // A malformed meeting id is still a 400 (the request is checked before the allowance).
    assert_eq!(create("a\nb").await?.status().as_u16(), 400);
    assert_eq!(count().await?, 2);

    // Taken back: refused again. The admin takes any meeting.
    assert!(store.disallow_meetings(alpha.id, &prefix).await?);
    assert_eq!(create("alpha-ws-4").await?.status().as_u16(), 403);
    let admin = relay.bbb_event("other-coop-board", chrono::Duration::hours(1)).await?;
    assert_eq!(admin.floor.meeting_id.as_deref(), Some("other-coop-board"));
    relay.stop().await;
    Ok(())
}
