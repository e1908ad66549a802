//! The BBB plugin's API (`/api/v1/bbb/…`) against the BBB stand-in over the network: identity
//! comes from bbb-web (the session token in `X-Session-Token` with BBB's session cookie); only
//! participants of a meeting see its interpretation, only its moderators start, stop and name
//! interpreters, only named interpreters open a booth; forged, foreign, cookieless and stale
//! sessions get 401 with a sentence; a meeting created with `meta_tolk-languages` gets its
//! interpretation by itself, and an interpretation ends with its meeting.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tolk_relay::api::EventView;
use tolk_relay::bbb::BbbConfig;
use tolk_tests::audio::dominant_frequency;
use tolk_tests::bbb::{BbbStandIn, StandInConfig, StandInUser};
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, problem_detail};

const TONE: f64 = 520.0;

/// A relay whose BBB server is `bbb`, following its meetings every 200 ms.
async fn relay_for(bbb: &BbbStandIn) -> anyhow::Result<TestRelay> {
    let mut config = BbbConfig::new(&bbb.api_url(), bbb.secret())?;
    config.poll = Duration::from_millis(200);
    config.keepalive = Duration::from_secs(1);
    TestRelay::start_with(1, move |s| s.bbb = Some(config)).await
}

/// A plugin call as `user`'s browser makes it: token header and BBB's cookie.
async fn call(
    relay: &TestRelay,
    user: &StandInUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = relay
        .http
        .request(method, relay.url(path))
        .header("X-Session-Token", &user.token)
        .header("Cookie", format!("_ga=x; {}", user.cookie));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await?;
    let status = answer.status();
    let text = answer.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn me(relay: &TestRelay, user: &StandInUser) -> anyhow::Result<Value> {
    let (status, body) = call(relay, user, Method::GET, "/api/v1/bbb/me", None).await?;
    anyhow::ensure!(status == StatusCode::OK, "me answered {status}: {body}");
    Ok(body)
}

fn start_body(languages: &[&str], listeners: u32) -> Option<Value> {
    Some(json!({"floor_language": "en", "languages": languages, "expected_listeners": listeners}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_see_only_their_meeting_and_only_moderators_start_and_stop() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary", TONE);
    bbb.create_meeting("other", 330.0);
    let relay = relay_for(&bbb).await?;
    let moderator = bbb.join_participant("plenary", "Moa Moderator", true)?;
    let viewer = bbb.join_participant("plenary", "Vic Viewer", false)?;
    let stranger = bbb.join_participant("other", "Sam Stranger", true)?;

    let seen = me(&relay, &viewer).await?;
    assert_eq!(seen["meeting"]["external_id"], "plenary");
    assert_eq!(seen["meeting"]["id"].as_str(), bbb.internal_id("plenary").as_deref());
    assert_eq!(seen["user"]["name"], "Vic Viewer");
    assert_eq!(seen["user"]["moderator"], false);
    assert!(seen["interpretation"].is_null(), "{seen}");

    let (status, body) =
        call(&relay, &viewer, Method::POST, "/api/v1/bbb/interpretation", start_body(&["fr"], 50)).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(problem_detail(&body)?.contains("moderator"), "{body}");
    let (status, body) =
        call(&relay, &moderator, Method::POST, "/api/v1/bbb/interpretation", start_body(&["fr"], 900_000))
            .await?;
    assert_eq!(status, StatusCode::CONFLICT, "too big for the node: {body}");
    assert!(!problem_detail(&body)?.is_empty());

    let (status, started) =
        call(&relay, &moderator, Method::POST, "/api/v1/bbb/interpretation", start_body(&["fr", "de"], 50))
            .await?;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let event = started["event"].as_str().unwrap_or_default().to_owned();
    assert_eq!(started["whep"], format!("whep/{event}/"));
    let (status, body) =
        call(&relay, &moderator, Method::POST, "/api/v1/bbb/interpretation", start_body(&["it"], 50)).await?;
    assert_eq!(status, StatusCode::CONFLICT, "one interpretation per meeting: {body}");

    // The viewer sees the channels, not the moderator's details.
    let seen = me(&relay, &viewer).await?;
    let interpretation = &seen["interpretation"];
    assert_eq!(interpretation["event"], event);
    assert_eq!(interpretation["languages"], json!(["fr", "de"]));
    let channels: Vec<&str> = interpretation["channels"]["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["language"].as_str())
        .collect();
    assert_eq!(channels, ["en", "fr", "de"]);
    assert!(
        interpretation.get("interpreters").is_none() && interpretation.get("listeners").is_none(),
        "{seen}"
    );
    let seen = me(&relay, &moderator).await?;
    assert!(seen["interpretation"]["interpreters"].is_array(), "{seen}");
    assert!(seen["interpretation"]["floor"]["state"].is_string(), "{seen}");

    // Another meeting's moderator neither sees nor stops it.
    assert!(me(&relay, &stranger).await?["interpretation"].is_null());
    let (status, _) = call(&relay, &stranger, Method::DELETE, "/api/v1/bbb/interpretation", None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A listener hears the meeting through the channel the plugin would play.
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{event}/fr")), 1).await?;
    let stats = listener.wait_packets(0, 100, Duration::from_secs(20)).await?;
    let heard = dominant_frequency(stats.last_seconds(1.0));
    assert!((heard - TONE).abs() <= 5.0, "the French channel carries the meeting's floor: {heard} Hz");

    let (status, body) = call(&relay, &viewer, Method::DELETE, "/api/v1/bbb/interpretation", None).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(&relay, &moderator, Method::DELETE, "/api/v1/bbb/interpretation", None).await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(me(&relay, &viewer).await?["interpretation"].is_null());
    let stored: EventView = relay.admin_get(&format!("/api/v1/events/{event}")).await?;
    assert!(stored.ends_at <= chrono::Utc::now(), "the event ended: {}", stored.ends_at);
    let _ = listener.stop();
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_cookieless_and_stale_sessions_are_refused() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary", TONE);
    let relay = relay_for(&bbb).await?;
    let user = bbb.join_participant("plenary", "Ana", true)?;
    let refused = |status: StatusCode, body: &Value| -> anyhow::Result<String> {
        anyhow::ensure!(status == StatusCode::UNAUTHORIZED, "expected 401, got {status}: {body}");
        problem_detail(body)
    };

    let forged = StandInUser { token: "0123456789abcdef".into(), ..user.clone() };
    let (status, body) = call(&relay, &forged, Method::GET, "/api/v1/bbb/me", None).await?;
    assert!(refused(status, &body)?.contains("BBB does not know this session"), "{body}");
    // The right token with another browser's cookie, or none: bbb-web refuses it too.
    let other_cookie = StandInUser { cookie: "JSESSIONID=0000".into(), ..user.clone() };
    let (status, body) = call(&relay, &other_cookie, Method::GET, "/api/v1/bbb/me", None).await?;
    refused(status, &body)?;
    let answer =
        relay.http.get(relay.url("/api/v1/bbb/me")).header("X-Session-Token", &user.token).send().await?;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    // Never from the address.
    let answer = relay
        .http
        .get(relay.url(&format!("/api/v1/bbb/me?sessionToken={}", user.token)))
        .header("Cookie", &user.cookie)
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await?;
    assert!(refused(status, &body)?.contains("X-Session-Token"), "{body}");

    // The genuine session works; a participant who left, or whose meeting ended, does not.
    assert_eq!(me(&relay, &user).await?["user"]["name"], "Ana");
    let gone = bbb.join_participant("plenary", "Gus", false)?;
    let late = bbb.join_participant("plenary", "Lea", false)?;
    bbb.leave(&gone.token);
    let (status, body) = call(&relay, &gone, Method::GET, "/api/v1/bbb/me", None).await?;
    assert!(refused(status, &body)?.contains("no longer in this BBB meeting"), "{body}");
    bbb.end_meeting("plenary");
    let (status, body) = call(&relay, &late, Method::GET, "/api/v1/bbb/me", None).await?;
    refused(status, &body)?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_interpreter_opens_their_own_booth_and_nobody_else_does() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary", TONE);
    let relay = relay_for(&bbb).await?;
    let moderator = bbb.join_participant("plenary", "Moa", true)?;
    let marie = bbb.join_participant("plenary", "Marie", false)?;
    let viewer = bbb.join_participant("plenary", "Vic", false)?;
    let (status, body) = call(&relay, &marie, Method::POST, "/api/v1/bbb/booth", None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "no interpretation yet: {body}");
    let (status, _) =
        call(&relay, &moderator, Method::POST, "/api/v1/bbb/interpretation", start_body(&["fr", "de"], 50))
            .await?;
    assert_eq!(status, StatusCode::CREATED);

    let path = format!("/api/v1/bbb/interpretation/interpreters/{}", marie.user_id);
    let name = Some(json!({"name": "Marie", "languages": ["fr"]}));
    let (status, body) = call(&relay, &viewer, Method::PUT, &path, name.clone()).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) =
        call(&relay, &moderator, Method::PUT, &path, Some(json!({"name": "Marie", "languages": ["it"]})))
            .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not a language of the event: {body}");
    let (status, body) = call(&relay, &moderator, Method::PUT, &path, name).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], marie.user_id.as_str());
    assert_eq!(me(&relay, &marie).await?["interpretation"]["my_languages"], json!(["fr"]));
    let named = me(&relay, &moderator).await?;
    assert_eq!(named["interpretation"]["interpreters"][0]["name"], "Marie", "{named}");

    // Only Marie opens Marie's booth; each opening is a fresh link, the old one dies.
    let (status, body) = call(&relay, &viewer, Method::POST, "/api/v1/bbb/booth", None).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let booth_token =
        |body: &Value| body["url"].as_str().and_then(|u| u.split_once("#token=")).map(|(_, t)| t.to_owned());
    let (status, first) = call(&relay, &marie, Method::POST, "/api/v1/bbb/booth", None).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first = booth_token(&first).ok_or_else(|| anyhow::anyhow!("no token in {first}"))?;
    let state = |token: String| {
        let request = relay.http.get(relay.url("/api/v1/booth/state")).bearer_auth(token);
        async move { anyhow::Ok(request.send().await?.status()) }
    };
    assert_eq!(state(first.clone()).await?, StatusCode::OK);
    let (_, second) = call(&relay, &marie, Method::POST, "/api/v1/bbb/booth", None).await?;
    let second = booth_token(&second).ok_or_else(|| anyhow::anyhow!("no token"))?;
    assert_eq!(state(first).await?, StatusCode::UNAUTHORIZED, "the first link is dead");
    assert_eq!(state(second.clone()).await?, StatusCode::OK);

    // An interpreter from outside the meeting gets a booth link from the moderator.
    let (status, body) = call(
        &relay,
        &moderator,
        Method::POST,
        "/api/v1/bbb/interpretation/booth-links",
        Some(json!({"name": "Dieter", "languages": ["de"]})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let outside = booth_token(&body).ok_or_else(|| anyhow::anyhow!("no token in {body}"))?;
    assert_eq!(state(outside).await?, StatusCode::OK);

    // Unnamed: no booth any more.
    let (status, _) = call(&relay, &moderator, Method::DELETE, &path, None).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(state(second).await?, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&relay, &marie, Method::POST, "/api/v1/bbb/booth", None).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_asking_for_interpretation_gets_it_once_and_loses_it_when_it_ends() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    let relay = relay_for(&bbb).await?;
    bbb.create_meeting_with(
        "conference",
        "Annual conference",
        &[("tolk-languages", "fr,de"), ("tolk-floor-language", "en"), ("tolk-expected-listeners", "80")],
        &[],
    );
    let moderator = bbb.join_participant("conference", "Moa", true)?;
    // Each getMeetings of the relay's watcher is a turn; within a few the event is there.
    let calls = |s: &tolk_tests::bbb::StandInStats| s.calls.iter().filter(|c| *c == "getMeetings").count();
    let before = calls(&bbb.stats());
    bbb.wait_until(|s| calls(s) >= before + 3, Duration::from_secs(10)).await?;
    let seen = me(&relay, &moderator).await?;
    let interpretation = &seen["interpretation"];
    assert_eq!(interpretation["languages"], json!(["fr", "de"]), "{seen}");
    assert_eq!(interpretation["title"], "Annual conference");
    let event = interpretation["event"].as_str().unwrap_or_default().to_owned();
    let stored: EventView = relay.admin_get(&format!("/api/v1/events/{event}")).await?;
    assert_eq!(stored.expected_listeners, 80);

    // Stopped by a moderator, it stays stopped.
    let (status, _) = call(&relay, &moderator, Method::DELETE, "/api/v1/bbb/interpretation", None).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let before = calls(&bbb.stats());
    bbb.wait_until(|s| calls(s) >= before + 3, Duration::from_secs(10)).await?;
    assert!(me(&relay, &moderator).await?["interpretation"].is_null(), "not started again");

    // Started again by hand, it ends when the meeting ends.
    let (status, body) =
        call(&relay, &moderator, Method::POST, "/api/v1/bbb/interpretation", start_body(&["fr"], 50)).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let event = body["event"].as_str().unwrap_or_default().to_owned();
    bbb.end_meeting("conference");
    let ended = |relay: &TestRelay, event: &str| {
        let request = relay.http.get(relay.url(&format!("/api/v1/events/{event}"))).bearer_auth(ADMIN);
        async move {
            let view: EventView = request.send().await?.json().await?;
            anyhow::Ok(view.ends_at <= chrono::Utc::now())
        }
    };
    // The watcher ends it within a few of its turns.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ended(&relay, &event).await? {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the interpretation outlived its meeting");
        let before = calls(&bbb.stats());
        bbb.wait_until(|s| calls(s) > before, Duration::from_secs(5)).await?;
    }
    relay.stop().await;
    Ok(())
}
