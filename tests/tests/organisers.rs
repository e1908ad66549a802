//! Organiser accounts see and manage only their own events (the admin token sees all), and the
//! usage report tells what an event used: peak listeners and listener-minutes per channel,
//! on-air minutes per interpreter and language, handovers and slow-downs — as JSON and CSV.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tolk_relay::api::{EventView, Live, UsageReport};
use tolk_relay::ids::Token;
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, floor_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisers_see_only_their_own_events() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let store = relay.server.store();
    let (alpha, beta) = (Token::generate(), Token::generate());
    store.insert_organiser("Alpha Conferences", &alpha).await?;
    let b = store.insert_organiser("Beta Events", &beta).await?;
    let now = chrono::Utc::now();
    let body = json!({
        "title": "Alpha plenary", "floor_language": "en", "languages": ["fr"],
        "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(), "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "expected_listeners": 50
    });
    let response =
        relay.http.post(relay.url("/api/v1/events")).bearer_auth(alpha.secret()).json(&body).send().await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    let event: EventView = response.json().await?;
    let id = event.id.as_str().to_owned();

    let list = |token: String| {
        let (http, url) = (relay.http.clone(), relay.url("/api/v1/events"));
        async move { http.get(url).bearer_auth(token).send().await?.json::<Vec<EventView>>().await }
    };
    assert_eq!(list(alpha.secret().into()).await?.len(), 1);
    assert_eq!(list(beta.secret().into()).await?.len(), 0, "Beta sees nothing of Alpha's");
    assert_eq!(list(ADMIN.into()).await?.len(), 1, "the admin sees all");
    for (method, path) in [
        ("GET", format!("/api/v1/events/{id}")),
        ("PATCH", format!("/api/v1/events/{id}")),
        ("DELETE", format!("/api/v1/events/{id}")),
        ("GET", format!("/api/v1/events/{id}/interpreters")),
        ("POST", format!("/api/v1/events/{id}/interpreters")),
        ("GET", format!("/api/v1/events/{id}/usage")),
        ("GET", format!("/api/v1/events/{id}/live")),
    ] {
        let request = relay.http.request(method.parse()?, relay.url(&path)).bearer_auth(beta.secret());
        let response = request.json(&json!({"title": "x"})).send().await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path} for another organiser");
    }
    // The owner can; a revoked organiser cannot do anything.
    let response = relay
        .http
        .get(relay.url(&format!("/api/v1/events/{id}/live")))
        .bearer_auth(alpha.secret())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    store.revoke_organiser(b.id).await?;
    let response = relay.http.get(relay.url("/api/v1/events")).bearer_auth(beta.secret()).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The capacity answer before saving: a dry run stores nothing.
    let response = relay
        .http
        .post(relay.url("/api/v1/events?dry_run=true"))
        .bearer_auth(alpha.secret())
        .json(&body)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await?["fits"], true);
    assert_eq!(list(alpha.secret().into()).await?.len(), 1);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_report_counts_listeners_and_on_air_time() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let ana = relay.booth_link(&id, "Ana, senior", &["fr"]).await?;
    let token = booth_token(&ana)?.to_owned();
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, 440.0).await?;
    let booth = client::booth(&relay.http, &relay.url("/whip/booth"), &token, 880.0).await?;
    assert_eq!(relay.on_air(&token, "fr").await?, StatusCode::OK);
    let slow = relay.http.post(relay.url("/api/v1/booth/slow-down")).bearer_auth(&token).send().await?;
    assert_eq!(slow.status(), StatusCode::OK);
    let listeners = vec![
        client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?,
        client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?,
        client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?,
    ];
    for l in &listeners {
        l.wait_packets(0, 50, Duration::from_secs(15)).await?;
    }
    let live: Live = relay.admin_get(&format!("/api/v1/events/{id}/live")).await?;
    assert_eq!(live.listeners, 3);
    assert_eq!(live.floor.connected, Some(true));
    assert_eq!(live.channels[1].on_air.as_ref().map(|o| o.name.as_str()), Some("Ana, senior"));
    assert_eq!(live.slow_downs.first().map(|s| s.name.as_str()), Some("Ana, senior"));

    let report: UsageReport = relay.admin_get(&format!("/api/v1/events/{id}/usage")).await?;
    let fr = &report.channels[1];
    assert_eq!(fr.language.as_str(), "fr");
    assert_eq!(fr.peak_listeners, 2);
    assert!(fr.listener_minutes > 0.0, "{report:?}");
    assert_eq!(report.channels[0].peak_listeners, 1);
    assert_eq!(report.interpreters.first().map(|i| i.name.as_str()), Some("Ana, senior"));
    assert!(report.interpreters[0].on_air_minutes > 0.0, "{report:?}");
    assert_eq!(report.slow_downs, 1);
    assert_eq!(report.handovers, 0);

    let csv = relay
        .http
        .get(relay.url(&format!("/api/v1/events/{id}/usage?format=csv")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(
        csv.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let csv = csv.text().await?;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("row,language,"), "{csv}");
    assert!(lines.iter().any(|l| l.starts_with("channel,fr,,,2,")), "{csv}");
    assert!(lines.iter().any(|l| l.contains("\"Ana, senior\"")), "names are quoted: {csv}");
    assert!(lines.contains(&"slow_downs,,,,,,,1"), "{csv}");

    for c in listeners.into_iter().chain([booth, floor]) {
        let _ = c.stop();
    }
    relay.stop().await;
    Ok(())
}
