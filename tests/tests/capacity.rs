//! Capacity: reservations fit at every instant of their window or get a 409 that says where and
//! by how much; two requests racing for the last capacity cannot both win; a change is checked
//! again; at run time a listener beyond the event's headroom gets a 503 while those in keep
//! hearing; media endpoints open an hour before an event and close an hour after.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tolk_relay::api::{CapacityView, EventView};
use tolk_relay::capacity::Capacity;
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, floor_token, problem_detail};

const DAY: &str = "2031-03-10";

fn body(from: &str, to: &str, listeners: u32, languages: &[&str]) -> Value {
    json!({
        "title": format!("{from}–{to}"), "floor_language": "en", "languages": languages,
        "starts_at": format!("{DAY}T{from}:00Z"), "ends_at": format!("{DAY}T{to}:00Z"),
        "expected_listeners": listeners,
    })
}

async fn post(relay: &TestRelay, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
    let response = relay.http.post(relay.url("/api/v1/events")).bearer_auth(ADMIN).json(body).send().await?;
    Ok((response.status(), response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_fit_at_every_instant_or_get_a_clear_409() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| s.capacity = Capacity { listeners: 1000, channels: 20 }).await?;

    let (status, first) = post(&relay, &body("09:00", "12:00", 600, &["fr"])).await?;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first: EventView = serde_json::from_value(first)?;
    // Touching windows do not overlap ([09:00, 12:00) then [12:00, 14:00)).
    assert_eq!(post(&relay, &body("12:00", "14:00", 1000, &["fr"])).await?.0, StatusCode::CREATED);
    // Exact fit, then one too many.
    assert_eq!(post(&relay, &body("10:00", "11:00", 400, &["fr"])).await?.0, StatusCode::CREATED);
    let (status, problem) = post(&relay, &body("08:00", "10:30", 1, &["fr"])).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    let detail = problem_detail(&problem)?;
    assert!(detail.contains(&format!("{DAY}T10:00:00+00:00")), "names the short window: {detail}");
    assert!(
        detail.contains("short by 1") && detail.contains("largest expected_listeners that fits is 0"),
        "{detail}"
    );
    // Before the crowded hour, 400 still fit: the 409 says so.
    let (status, problem) = post(&relay, &body("08:00", "09:30", 401, &["fr"])).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem_detail(&problem)?.contains("fits is 400"), "{problem}");
    // Channel units: a mixed channel counts 10.
    let mut mixed = body("15:00", "16:00", 10, &["fr", "de"]);
    mixed["floor_under_interpretation_db"] = json!(-18);
    let (status, problem) = post(&relay, &mixed).await?;
    assert_eq!(status, StatusCode::CONFLICT, "1 + 2 × 10 units > 20: {problem}");
    assert!(problem_detail(&problem)?.contains("channel"), "{problem}");

    // Free capacity over time.
    let free: CapacityView =
        relay.admin_get(&format!("/api/v1/capacity?from={DAY}T08:00:00Z&to={DAY}T15:00:00Z")).await?;
    let shape: Vec<(String, i64)> =
        free.segments.iter().map(|s| (s.from.format("%H:%M").to_string(), s.free_listeners)).collect();
    assert_eq!(
        shape,
        vec![
            ("08:00".into(), 1000),
            ("09:00".into(), 400),
            ("10:00".into(), 0),
            ("11:00".into(), 400),
            ("12:00".into(), 0),
            ("14:00".into(), 1000)
        ]
    );

    // A change that no longer fits is refused and changes nothing; cancelling frees capacity.
    let id = first.id.as_str().to_owned();
    let patch = |b: Value| {
        relay.http.patch(relay.url(&format!("/api/v1/events/{id}"))).bearer_auth(ADMIN).json(&b).send()
    };
    let response = patch(json!({"expected_listeners": 601})).await?;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let read: EventView = relay.admin_get(&format!("/api/v1/events/{id}")).await?;
    assert_eq!(read.expected_listeners, 600, "the refused change changed nothing");
    let response = patch(json!({"title": "Plenary", "ends_at": format!("{DAY}T11:00:00Z")})).await?;
    assert_eq!(response.status(), StatusCode::OK);
    // The shortened event left 11:00–12:00 free.
    assert_eq!(post(&relay, &body("11:00", "12:00", 1000, &["fr"])).await?.0, StatusCode::CREATED);
    assert_eq!(post(&relay, &body("09:00", "10:00", 1000, &["fr"])).await?.0, StatusCode::CONFLICT);
    let response =
        relay.http.delete(relay.url(&format!("/api/v1/events/{id}"))).bearer_auth(ADMIN).send().await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        post(&relay, &body("09:00", "10:00", 1000, &["fr"])).await?.0,
        StatusCode::CREATED,
        "cancelling freed it"
    );
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_for_the_last_capacity_cannot_both_win() -> anyhow::Result<()> {
    let relay =
        TestRelay::start_with(1, |s| s.capacity = Capacity { listeners: 1000, channels: 100 }).await?;
    assert_eq!(post(&relay, &body("09:00", "12:00", 400, &[])).await?.0, StatusCode::CREATED);
    // Ten requests of 150 at once for the 600 left: exactly four fit.
    let mut racing = Vec::new();
    for _ in 0..10 {
        let (http, url) = (relay.http.clone(), relay.url("/api/v1/events"));
        let b = body("10:00", "11:00", 150, &[]);
        racing.push(tokio::spawn(async move {
            http.post(url).bearer_auth(ADMIN).json(&b).send().await.map(|r| r.status())
        }));
    }
    let mut created = 0;
    for r in racing {
        match r.await?? {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => anyhow::bail!("unexpected {other}"),
        }
    }
    assert_eq!(created, 4);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_event_turns_new_listeners_away_and_keeps_those_in() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| s.headroom = 1.25).await?;
    let now = chrono::Utc::now();
    let event = relay
        .create_event(json!({
            "title": "Small", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::minutes(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 2, "floor": {"kind": "rtp"}
        }))
        .await?;
    let id = event.id.as_str().to_owned();
    let floor = relay.tone_floor(&event, 440.0).await?;
    let url = relay.url(&format!("/whep/{id}/fr"));
    // ceil(2 × 1.25) = 3 listeners are admitted.
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(client::listen(&relay.http, &url, 1).await?);
    }
    for l in &listeners {
        l.wait_packets(0, 10, Duration::from_secs(15)).await?;
    }
    let refused = client::listen(&relay.http, &url, 1).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("503") && refused.contains("full"), "the fourth is turned away: {refused}");
    let raw = relay.http.post(&url).header("content-type", "application/sdp").body("v=0\r\n").send().await?;
    assert_eq!(raw.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after = |raw: &reqwest::Response| -> u32 {
        raw.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)
    };
    // A minute, stretched at random by up to a quarter so a refused hall does not come back at once.
    let mut waits = vec![retry_after(&raw)];
    for _ in 0..7 {
        let again =
            relay.http.post(&url).header("content-type", "application/sdp").body("v=0\r\n").send().await?;
        waits.push(retry_after(&again));
    }
    assert!(waits.iter().all(|w| (60..=75).contains(w)), "Retry-After {waits:?}");
    assert!(waits.iter().any(|w| *w != waits[0]), "Retry-After varies: {waits:?}");
    // Those in keep hearing.
    let before: Vec<u64> = listeners.iter().map(|l| l.track(0).packets).collect();
    for (l, n) in listeners.iter().zip(&before) {
        l.wait_packets(0, n + 25, Duration::from_secs(10)).await?;
    }
    // One leaves: one more gets in.
    let leaving = listeners.remove(0);
    assert_eq!(relay.http.delete(&leaving.session_url).send().await?.status(), StatusCode::OK);
    let _ = leaving.stop();
    let mut admitted = None;
    for _ in 0..50 {
        // The release is recorded when the shard reports the session gone.
        match client::listen(&relay.http, &url, 1).await {
            Ok(l) => {
                admitted = Some(l);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(admitted.is_some(), "a place freed up");
    for l in listeners.into_iter().chain(admitted) {
        let _ = l.stop();
    }
    floor.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_endpoints_open_an_hour_before_and_close_an_hour_after() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let now = chrono::Utc::now();
    let later = relay
        .create_event(json!({
            "title": "Tomorrow", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now + chrono::Duration::hours(3)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(5)).to_rfc3339(),
            "expected_listeners": 20
        }))
        .await?;
    let id = later.id.as_str();
    let response = relay
        .http
        .post(relay.url(&format!("/whep/{id}/fr")))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let problem: Value = response.json().await?;
    assert!(problem_detail(&problem)?.contains("open from"), "{problem}");
    let response = relay
        .http
        .post(later.floor.whip_url.as_str())
        .bearer_auth(floor_token(&later)?)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    relay.stop().await;
    Ok(())
}

/// Two relay nodes sharing one store (one SQLite file, or one PostgreSQL database with
/// `TOLK_TEST_DATABASE_URL`): requests racing on both nodes for the last capacity cannot both win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_a_store_cannot_both_take_the_last_capacity() -> anyhow::Result<()> {
    let small =
        |s: &mut tolk_relay::config::Settings| s.capacity = Capacity { listeners: 1000, channels: 100 };
    let one = TestRelay::start_with(1, small).await?;
    let two = TestRelay::start_shared(&one.data_dir, 1, small).await?;
    let mut racing = Vec::new();
    for i in 0..12 {
        let node = if i % 2 == 0 { &one } else { &two };
        let (http, url) = (node.http.clone(), node.url("/api/v1/events"));
        let b = body("10:00", "11:00", 250, &[]);
        racing.push(tokio::spawn(async move {
            http.post(url).bearer_auth(ADMIN).json(&b).send().await.map(|r| r.status())
        }));
    }
    let mut created = 0;
    for r in racing {
        match r.await?? {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => anyhow::bail!("unexpected {other}"),
        }
    }
    assert_eq!(created, 4, "1000 listeners hold four events of 250, whichever node took them");
    two.stop().await;
    one.stop().await;
    Ok(())
}
