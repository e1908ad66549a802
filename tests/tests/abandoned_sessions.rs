//! Sessions whose client goes away without a DELETE are cleaned up: one that never connects is
//! dropped at the connect deadline, one that stops answering when ICE consent lapses.

use std::time::{Duration, Instant};

use tolk_tests::client;
use tolk_tests::relay::TestRelay;

/// Live sessions as `/metrics` counts them.
async fn sessions(relay: &TestRelay) -> anyhow::Result<u64> {
    let text = relay.metrics_text().await?;
    Ok(text.lines().find_map(|l| l.strip_prefix("tolk_sessions ")?.parse().ok()).unwrap_or(u64::MAX))
}

async fn wait_sessions(relay: &TestRelay, expected: u64, within: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let n = sessions(relay).await?;
        if n == expected {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(start.elapsed() < within, "{n} sessions, expected {expected} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_clients_are_cleaned_up() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let url = relay.url(&format!("/whep/{}/fr", event.id.as_str()));

    // Never connects: gone at the connect deadline (2 s in tests, 30 s by default).
    let session = client::offer_and_vanish(&relay.http, &url).await?;
    assert_eq!(sessions(&relay).await?, 1);
    let took = wait_sessions(&relay, 0, Duration::from_secs(10)).await?;
    println!("unconnected session dropped after {took:?}");
    assert_eq!(relay.http.delete(&session).send().await?.status().as_u16(), 404);

    // Connects, then goes silent (no DELETE): gone when ICE consent lapses (15 s without checks).
    let listener = client::listen(&relay.http, &url, 1).await?;
    wait_sessions(&relay, 1, Duration::from_secs(5)).await?;
    while !listener.connected.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listener.stop()?;
    let took = wait_sessions(&relay, 0, Duration::from_secs(30)).await?;
    println!("silent listener dropped after {took:?}");
    relay.stop().await;
    Ok(())
}

/// Joins are limited per client address (the one behind a trusted proxy's X-Forwarded-For), so
/// that one client cannot fill an event with offers; 429 with Retry-After and a sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_limited_per_client_address() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| {
        s.joins_burst = 3.0;
        s.joins_per_second = 0.2;
    })
    .await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let url = relay.url(&format!("/whep/{}/fr", event.id));
    let post = |from: Option<&'static str>| {
        let mut request = relay.http.post(&url).header("content-type", "application/sdp").body("v=0\r\n");
        if let Some(from) = from {
            request = request.header("x-forwarded-for", from);
        }
        request.send()
    };
    // Each join counts, a bad offer too (it cost the relay a parse).
    for _ in 0..3 {
        assert_eq!(post(None).await?.status().as_u16(), 400);
    }
    let limited = post(None).await?;
    assert_eq!(limited.status().as_u16(), 429);
    let retry: u32 =
        limited.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    assert!(retry >= 1, "Retry-After {retry}");
    let problem: tolk_relay::api::Problem = limited.json().await?;
    assert!(problem.detail.contains("too many listeners joined from your address"), "{problem:?}");
    // Another client behind the proxy (the relay trusts loopback's X-Forwarded-For) is apart.
    assert_eq!(post(Some("198.51.100.7")).await?.status().as_u16(), 400);
    assert_eq!(post(Some("198.51.100.8, 127.0.0.1")).await?.status().as_u16(), 400);
    relay.stop().await;
    Ok(())
}

/// An offer that never connects holds a connecting place, not a listener's: one client address
/// may have only so many connecting at once (others are apart), and gets in again as soon as
/// they drop at the connect deadline or connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconnected_offers_are_capped_per_client_address() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| s.connecting_per_client = 2).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let url = relay.url(&format!("/whep/{}/fr", event.id));
    let post = |from: &'static str| -> anyhow::Result<_> {
        Ok(relay
            .http
            .post(&url)
            .header("content-type", "application/sdp")
            .header("x-forwarded-for", from)
            .body(client::vanishing_offer()?)
            .send())
    };
    for _ in 0..2 {
        assert_eq!(post("198.51.100.1")?.await?.status().as_u16(), 201);
    }
    let refused = post("198.51.100.1")?.await?;
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let problem: tolk_relay::api::Problem = refused.json().await?;
    assert!(problem.detail.contains("still connecting"), "{problem:?}");
    assert_eq!(post("198.51.100.2")?.await?.status().as_u16(), 201, "another address is apart");
    assert_eq!(connecting(&relay).await?, 3);
    // The deadline drops them (2 s in tests) and gives their places back.
    wait_sessions(&relay, 0, Duration::from_secs(10)).await?;
    assert_eq!(connecting(&relay).await?, 0);
    for _ in 0..2 {
        assert_eq!(post("198.51.100.1")?.await?.status().as_u16(), 201);
    }
    // A listener that connects stops counting as connecting.
    wait_sessions(&relay, 0, Duration::from_secs(10)).await?;
    let listener = client::listen(&relay.http, &url, 1).await?;
    while !listener.connected.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    while connecting(&relay).await? != 0 {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(5), "a connected listener still counts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

/// Listeners connecting, as `/metrics` counts them.
async fn connecting(relay: &TestRelay) -> anyhow::Result<u64> {
    let text = relay.metrics_text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("tolk_listeners_connecting ")?.parse().ok())
        .unwrap_or(u64::MAX))
}
