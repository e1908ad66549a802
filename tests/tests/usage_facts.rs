//! Usage facts under load and across stops: a burst of channel switches costs the database a
//! batch, not a transaction each; a graceful stop writes every fact and closes the open
//! intervals; a killed relay's open intervals are closed at its next start, at its last
//! heartbeat; an event whose media window closes ends its sessions and drops its state.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::json;
use tolk_relay::ids::EventId;
use tolk_relay::store::{Store, now_ms};
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, test_database};

/// Listening intervals of an event as (from, to), earliest first; an open one has `to == i64::MAX`.
async fn listening(store: &Store, event: &str) -> anyhow::Result<Vec<(i64, i64)>> {
    let rows = store.listening_intervals(&EventId::parse(event)?, i64::MAX).await?;
    let mut rows: Vec<(i64, i64)> = rows.into_iter().map(|i| (i.from, i.to)).collect();
    rows.sort_unstable();
    Ok(rows)
}

/// Poll `check` every 50 ms until it holds (the database is another process's, or written by
/// the relay's own tasks), at most `within`.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    while !check().await? {
        if start.elapsed() > within {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_switches_is_written_in_a_batch() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?;
    let store = relay.server.store();
    let before = store.usage_transactions();
    for i in 0..10 {
        let language = if i % 2 == 0 { "fr" } else { "de" };
        let switched = relay
            .http
            .post(format!("{}/channel", listener.session_url))
            .json(&json!({"language": language}))
            .send()
            .await?;
        assert_eq!(switched.status(), StatusCode::NO_CONTENT);
    }
    let during = store.usage_transactions() - before;
    assert!(during <= 3, "10 switches took {during} transactions");
    // The report flushes what is buffered: every switch is there.
    let _: serde_json::Value = relay.admin_get(&format!("/api/v1/events/{id}/usage")).await?;
    assert_eq!(listening(store, &id).await?.len(), 11, "the join and 10 switches");
    let _ = listener.stop();
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_every_fact_and_closes_the_intervals() -> anyhow::Result<()> {
    // Facts only ever written by a flush: nothing reaches the database before the stop.
    let relay = TestRelay::start_with(1, |s| s.usage.flush_interval = Duration::from_secs(3600)).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?;
    let switched = relay
        .http
        .post(format!("{}/channel", listener.session_url))
        .json(&json!({"language": "fr"}))
        .send()
        .await?;
    assert_eq!(switched.status(), StatusCode::NO_CONTENT);
    let data_dir = relay.data_dir.clone();
    let stopped_at = now_ms();
    relay.stop().await;
    let again = TestRelay::start_in(data_dir, 1).await?;
    let rows = listening(again.server.store(), &id).await?;
    assert_eq!(rows.len(), 2, "the join and the switch: {rows:?}");
    // The join's interval ends at the switch, the switch's at the stop; none is left open.
    assert!(rows.iter().all(|(_, to)| *to < i64::MAX), "every interval closed: {rows:?}");
    assert_eq!(rows[0].1, rows[1].0, "the switch ends the first interval and starts the second: {rows:?}");
    assert!(rows[1].1 >= stopped_at, "the last interval closed at the stop: {rows:?}");
    let _ = listener.stop();
    again.stop().await;
    Ok(())
}

/// The `tolk` binary beside this test binary (built by `cargo test --workspace`).
fn tolk_binary() -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().and_then(|d| d.parent()).context("no target directory")?;
    let tolk = dir.join("tolk");
    anyhow::ensure!(tolk.exists(), "{} is not built (cargo build -p tolk-relay)", tolk.display());
    Ok(tolk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_closes_its_open_intervals_at_its_last_heartbeat() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("tolk-test-{}", tolk_relay::ids::random_hex(8)));
    std::fs::create_dir_all(&data_dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = std::process::Command::new(tolk_binary()?);
    command
        .arg("serve")
        .env("TOLK_DATA_DIR", &data_dir)
        .env("TOLK_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLK_MEDIA_PORT", "0")
        .env("TOLK_MEDIA_SHARDS", "1")
        .env("TOLK_ADMIN_TOKEN", ADMIN)
        .env("TOLK_METRICS_LISTEN", "off")
        .env("TOLK_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let database = test_database(&data_dir).await?;
    if let Some(url) = &database {
        command.env("TOLK_DATABASE_URL", url);
    }
    let mut child = command.spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    until(Duration::from_secs(20), "the relay answers", || {
        let request = http.get(format!("{base}/healthz")).send();
        async move { Ok(request.await.is_ok_and(|r| r.status().is_success())) }
    })
    .await?;
    let now = chrono::Utc::now();
    let created = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&json!({"title": "Killed", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(), "expected_listeners": 10}))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    let id = created["id"].as_str().context("no id")?.to_owned();
    // A listener joins (its offer never connects, but the relay dies within its 10 s).
    client::offer_and_vanish(&http, &format!("{base}/whep/{id}/fr")).await?;
    let store = match &database {
        Some(url) => Store::open(url).await?,
        None => Store::open_in(&data_dir).await?,
    };
    until(Duration::from_secs(5), "the join is written", || {
        let rows = listening(&store, &id);
        async move { Ok(rows.await?.len() == 1) }
    })
    .await?;
    let killed_at = now_ms();
    child.kill()?; // SIGKILL: no shutdown at all
    child.wait()?;
    assert_eq!(listening(&store, &id).await?[0].1, i64::MAX, "open after the kill");
    let restarted_at = now_ms();
    let relay = TestRelay::start_in(data_dir, 1).await?;
    let rows = listening(relay.server.store(), &id).await?;
    let (from, to) = rows[0];
    assert!(
        from <= to && to <= killed_at && killed_at <= restarted_at,
        "closed at the last heartbeat ({from}..{to}), not at the restart ({restarted_at}); killed at {killed_at}"
    );
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_window_closes_ends_its_sessions_and_drops_its_state() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    // Media closes an hour after the end: this event's media window closes in 4 seconds.
    let now = chrono::Utc::now();
    let ends_at = now - chrono::Duration::hours(1) + chrono::Duration::seconds(4);
    let event = relay
        .create_event(json!({"title": "Closing", "floor_language": "en", "languages": ["fr"],
            "starts_at": (ends_at - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": ends_at.to_rfc3339(), "expected_listeners": 10, "floor": {"kind": "rtp"}}))
        .await?;
    let id = event.id.as_str().to_owned();
    let port: u16 =
        event.floor.rtp_url.as_deref().and_then(|u| u.rsplit(':').next()).context("port")?.parse()?;
    let ana = relay.booth_link(&id, "Ana", &["fr"]).await?;
    let token = booth_token(&ana)?.to_owned();
    let booth = client::booth(&relay.http, &relay.url("/whip/booth"), &token, 880.0).await?;
    assert_eq!(relay.on_air(&token, "fr").await?, StatusCode::OK);
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    assert!(relay.server.events_held() >= 1);
    let (relay_ref, store, event_id, id_ref) = (&relay, relay.server.store(), &EventId::parse(&id)?, &id);
    until(Duration::from_secs(15), "the sessions end and the state goes", || async move {
        let (relay, id) = (relay_ref, id_ref);
        let _: serde_json::Value = relay.admin_get(&format!("/api/v1/events/{id}/usage")).await?;
        let listening = listening(store, id).await?;
        let on_air = store.on_air_intervals(event_id, i64::MAX).await?;
        Ok(relay.server.events_held() == 0
            && !listening.is_empty()
            && listening.iter().all(|(_, to)| *to < i64::MAX)
            && !on_air.is_empty()
            && on_air.iter().all(|i| i.to < i64::MAX))
    })
    .await?;
    let ended = relay.http.delete(&listener.session_url).send().await?;
    assert_eq!(ended.status(), StatusCode::NOT_FOUND, "the listener's session is gone");
    // The RTP floor's port is free, and a restart does not bind it again.
    drop(std::net::UdpSocket::bind(("127.0.0.1", port)).context("the floor port is still bound")?);
    let data_dir = relay.data_dir.clone();
    let _ = (listener.stop(), booth.stop());
    relay.stop().await;
    let again = TestRelay::start_in(data_dir, 1).await?;
    drop(std::net::UdpSocket::bind(("127.0.0.1", port)).context("a restart bound a past event's port")?);
    assert_eq!(again.server.events_held(), 0, "a past event holds no state after a restart");
    again.stop().await;
    Ok(())
}
