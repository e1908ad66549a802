//! Listeners past their handshake are held without a WebRTC engine: Tolk protects their packets
//! itself and answers their ICE consent checks. A real str0m client, two tracks (channel and
//! floor), well past the consent timeout: the same session keeps hearing the tone, no packet
//! missing, no gap.

use std::time::{Duration, Instant};

use tolk_relay::net::settled::{CONSENT_TIMEOUT, SETTLE_AFTER};
use tolk_tests::audio::dominant_frequency;
use tolk_tests::client;
use tolk_tests::relay::TestRelay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_listener_keeps_hearing_past_the_consent_timeout() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let sender = relay.tone_floor(&event, 440.0).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 2).await?;
    listener.wait_packets(0, 10, Duration::from_secs(10)).await?;

    relay.wait_metric("tolk_shard_settled_listeners", 1.0, SETTLE_AFTER + Duration::from_secs(5)).await?;
    let settled_at = Instant::now();
    let before = listener.track(0).packets;
    println!("settled after {} packets", before);

    // Past the consent timeout: only answered consent checks keep the session (and the client's
    // ICE) alive that long.
    let hold = CONSENT_TIMEOUT + Duration::from_secs(3);
    let expected = before + hold.as_millis() as u64 / 20;
    for track in 0..2 {
        let stats = listener.wait_packets(track, expected * 95 / 100, hold + Duration::from_secs(10)).await?;
        assert_eq!(stats.missing(), 0, "track {track}: no packet missing across settling");
        assert!(stats.max_gap < Duration::from_millis(250), "track {track}: largest gap {:?}", stats.max_gap);
        let heard = dominant_frequency(stats.samples_since(settled_at + Duration::from_secs(1)));
        assert!((heard - 440.0).abs() <= 5.0, "track {track} hears {heard} Hz after settling");
    }
    assert!(settled_at.elapsed() >= CONSENT_TIMEOUT, "held past the consent timeout");
    assert_eq!(relay.metric("tolk_sessions").await?, 1.0, "the same session, never dropped");
    assert_eq!(relay.metric("tolk_shard_settled_listeners").await?, 1.0);
    assert!(relay.metric("tolk_packets_direct_total").await? >= expected as f64);

    // Leaving with DELETE ends it at once.
    let gone = relay.http.delete(&listener.session_url).send().await?;
    assert_eq!(gone.status().as_u16(), 200);
    assert_eq!(relay.metric("tolk_sessions").await?, 0.0);
    listener.stop()?;
    sender.stop()?;
    relay.stop().await;
    Ok(())
}
