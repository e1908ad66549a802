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
