//! Creating events safely: a retry with the same `Idempotency-Key` gets the first answer (also
//! after a restart) and creates nothing; the same key with another request is refused; an RTP
//! floor's port is stored with the event and kept across restarts; an event has a maximum length
//! and an organiser a maximum of events that are not over yet.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tolk_relay::ids::{EventId, Token};
use tolk_tests::relay::{ADMIN, TestRelay, problem_detail};

fn event_body(title: &str, days: i64) -> Value {
    let now = chrono::Utc::now();
    json!({"title": title, "floor_language": "en", "languages": ["fr"],
        "starts_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(1) + chrono::Duration::days(days)).to_rfc3339(),
        "expected_listeners": 10, "floor": {"kind": "rtp"}})
}

/// POST an event with `token` and an optional key; status and body.
async fn create(
    relay: &TestRelay,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = relay.http.post(relay.url("/api/v1/events")).bearer_auth(token).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await?;
    Ok((response.status(), response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_key_creates_nothing_new() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let body = event_body("Plenary", 1);
    let (status, first) = create(&relay, ADMIN, Some("key-1"), &body).await?;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = create(&relay, ADMIN, Some("key-1"), &body).await?;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first, "the same answer, floor token included");
    let listed: Vec<Value> = relay.admin_get("/api/v1/events").await?;
    assert_eq!(listed.len(), 1, "one event, not two");
    // The port was stored in the transaction that stored the event.
    let id = EventId::parse(first["id"].as_str().unwrap_or_default())?;
    let stored = relay.server.store().event(&id).await?;
    let port = stored.and_then(|e| e.rtp_port).map(|p| format!("rtp://127.0.0.1:{p}"));
    assert_eq!(port.as_deref(), first["floor"]["rtp_url"].as_str());

    let (status, problem) = create(&relay, ADMIN, Some("key-1"), &event_body("Another", 1)).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem_detail(&problem)?.contains("Idempotency-Key was used for a different request"));
    let (status, _) = create(&relay, ADMIN, Some("bad key with spaces"), &body).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Another organiser's key is its own.
    let alpha = Token::generate();
    relay.server.store().insert_organiser("Alpha", &alpha).await?;
    let (status, theirs) = create(&relay, alpha.secret(), Some("key-1"), &body).await?;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(theirs["id"], first["id"]);

    // The key is durable, and the port stays the same across a restart.
    let data_dir = relay.data_dir.clone();
    relay.stop().await;
    let relay = TestRelay::start_in(data_dir, 1).await?;
    let (status, after) = create(&relay, ADMIN, Some("key-1"), &body).await?;
    assert_eq!((status, &after), (StatusCode::CREATED, &first));
    let read: Value = relay.admin_get(&format!("/api/v1/events/{id}")).await?;
    assert_eq!(read["floor"]["rtp_url"], first["floor"]["rtp_url"]);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_have_a_maximum_length_and_organisers_a_quota() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| s.max_events_per_organiser = 2).await?;
    let (status, problem) = create(&relay, ADMIN, None, &event_body("Too long", 8)).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem_detail(&problem)?.contains("an event lasts at most 7 days"), "{problem}");

    let alpha = Token::generate();
    relay.server.store().insert_organiser("Alpha", &alpha).await?;
    for n in 0..2 {
        let (status, body) = create(&relay, alpha.secret(), None, &event_body(&format!("E{n}"), 1)).await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, problem) = create(&relay, alpha.secret(), None, &event_body("Third", 1)).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem_detail(&problem)?.contains("at most 2 events that are not over yet"), "{problem}");
    // The admin has no quota; a longer event by PATCH is refused too.
    let (status, admin) = create(&relay, ADMIN, None, &event_body("Admin's", 1)).await?;
    assert_eq!(status, StatusCode::CREATED);
    let ends_at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let id = admin["id"].as_str().unwrap_or_default();
    let patched = relay
        .http
        .patch(relay.url(&format!("/api/v1/events/{id}")))
        .bearer_auth(ADMIN)
        .json(&json!({"ends_at": ends_at}))
        .send()
        .await?;
    assert_eq!(patched.status(), StatusCode::BAD_REQUEST);
    relay.stop().await;
    Ok(())
}
