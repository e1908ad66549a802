//! The listener page in headless Chromium (and, for the first test, Firefox) plays the floor: the
//! page's own WebAudio analyser finds the floor's tone in what arrives over WebRTC.

use std::time::Duration;

use tolk_tests::browser::{Browser, Kind};
use tolk_tests::client::RtpSender;
use tolk_tests::relay::TestRelay;

/// A relay with an event whose RTP floor carries a 440 Hz tone, and a browser on its listener page
/// in French, listening.
async fn listening_page(kind: Kind) -> anyhow::Result<(TestRelay, RtpSender, Browser)> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let sender = relay.tone_floor(&event, 440.0).await?;
    let browser = Browser::start_in(kind, None).await?;
    browser.goto(&relay.url(&format!("/e/{id}?lang=fr&autoplay=1"))).await?;
    browser
        .wait_for("window.tolkListener && window.tolkListener.state === 'listening'", Duration::from_secs(20))
        .await?;
    Ok((relay, sender, browser))
}

/// From now on, every state the page goes through lands in `window.tolkStates`.
async fn record_states(browser: &Browser) -> anyhow::Result<()> {
    browser
        .eval(
            "(() => { window.tolkStates = []; setInterval(() => { const s = window.tolkListener.state; \
             if (window.tolkStates[window.tolkStates.length - 1] !== s) window.tolkStates.push(s); }, 50); \
             return true; })()",
        )
        .await?;
    Ok(())
}

tolk_tests::in_each_browser!(the_listener_page_plays_the_floor);

async fn the_listener_page_plays_the_floor(kind: Kind) -> anyhow::Result<()> {
    let (relay, sender, browser) = listening_page(kind).await?;
    browser.wait_for("window.tolkListener.firstAudioMs !== null", Duration::from_secs(10)).await?;
    let measured = browser.eval_promise("window.tolkListener.measureTone(1500)").await?;
    let frequency = measured["frequency"].as_f64().unwrap_or(0.0);
    let level = measured["level_db"].as_f64().unwrap_or(-200.0);
    println!(
        "listener page in {kind:?}: {measured}, first audio after {} ms",
        browser.eval("window.tolkListener.firstAudioMs").await?
    );
    assert!((frequency - 440.0).abs() < 10.0, "the page hears {frequency} Hz, not 440 Hz");
    assert!(level > -30.0, "the page hears the tone at {level} dBFS");
    if let Ok(dir) = std::env::var("TOLK_SCREENSHOTS") {
        let name = if kind == Kind::Chromium { "listener.png" } else { "listener-firefox.png" };
        browser.screenshot(&std::path::Path::new(&dir).join(name)).await?;
    }

    browser.close().await?;
    sender.stop()?;
    relay.stop().await;
    Ok(())
}

/// Chromium's listener is held without a WebRTC engine once its handshake is done: Tolk answers
/// Chromium's consent checks itself. Past the consent timeout the page is still listening on the
/// same session and still hears the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_page_keeps_playing_after_its_session_settles() -> anyhow::Result<()> {
    use tolk_relay::net::settled::{CONSENT_TIMEOUT, SETTLE_AFTER};
    let (relay, sender, browser) = listening_page(Kind::Chromium).await?;
    relay.wait_metric("tolk_shard_settled_listeners", 1.0, SETTLE_AFTER + Duration::from_secs(5)).await?;
    // Every state the page goes through from here on.
    record_states(&browser).await?;
    let settled_at = std::time::Instant::now();
    while settled_at.elapsed() < CONSENT_TIMEOUT + Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(relay.metric("tolk_sessions").await?, 1.0, "the page's session is never dropped");
    }
    let states = browser.eval("window.tolkStates").await?;
    assert_eq!(states, serde_json::json!(["listening"]), "the page never left 'listening': {states}");
    let measured = browser.eval_promise("window.tolkListener.measureTone(1500)").await?;
    let frequency = measured["frequency"].as_f64().unwrap_or(0.0);
    assert!((frequency - 440.0).abs() < 10.0, "after settling the page hears {frequency} Hz, not 440 Hz");
    println!("listener page {:?} after settling: {measured}", settled_at.elapsed());

    browser.close().await?;
    sender.stop()?;
    relay.stop().await;
    Ok(())
}

/// The relay restarts (same ports, same data directory) while the page plays: without a click,
/// the page is back to `listening` and hears the floor's tone within 3 s of the relay answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_page_comes_back_by_itself_after_a_relay_restart() -> anyhow::Result<()> {
    let (relay, sender, browser) = listening_page(Kind::Chromium).await?;
    browser.wait_for("window.tolkListener.firstAudioMs !== null", Duration::from_secs(10)).await?;
    record_states(&browser).await?;
    let relay = relay.restart(1).await?;
    let answering = std::time::Instant::now();
    // The new relay holds the page's new session, and the page says it is listening.
    relay.wait_metric("tolk_sessions", 1.0, Duration::from_secs(3)).await?;
    browser.wait_for("window.tolkListener.state === 'listening'", Duration::from_secs(3)).await?;
    let measured = browser.eval_promise("window.tolkListener.measureTone(500)").await?;
    let back_after = answering.elapsed();
    let frequency = measured["frequency"].as_f64().unwrap_or(0.0);
    let level = measured["level_db"].as_f64().unwrap_or(-200.0);
    let states = browser.eval("window.tolkStates").await?;
    println!("after the restart: {measured} within {back_after:?}; states {states}");
    assert!((frequency - 440.0).abs() < 10.0, "the page hears {frequency} Hz, not 440 Hz");
    assert!(level > -30.0, "the page hears the tone at {level} dBFS");
    assert!(back_after <= Duration::from_secs(3), "back after {back_after:?}");
    assert_eq!(states.as_array().and_then(|s| s.last()).and_then(|s| s.as_str()), Some("listening"));

    browser.close().await?;
    sender.stop()?;
    relay.stop().await;
    Ok(())
}
