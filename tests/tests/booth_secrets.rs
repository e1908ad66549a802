//! A booth link's token never reaches the relay's log: in headless Chromium, the booth page opens
//! from its link (`/booth#token=…`), connects its websocket and goes on air while the relay logs
//! every request it sees (tower-http at debug: method and URI). Its own binary, because the
//! captured log is process-wide.

use std::time::Duration;

use tolk_tests::audio::tone_wav;
use tolk_tests::browser::Browser;
use tolk_tests::relay::{TestRelay, booth_token, booth_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_booth_token_reaches_the_log_during_a_booth_session() -> anyhow::Result<()> {
    let log = tolk_tests::log::capture("warn,tower_http=debug,tolk_relay=debug")?;
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let ana = relay.booth_link(event.id.as_str(), "Ana", &["fr"]).await?;
    let token = booth_token(&ana)?.to_owned();
    let microphone = relay.data_dir.join("ana.wav");
    std::fs::write(&microphone, tone_wav(880.0, 0.5, 10))?;

    let booth = Browser::start(Some(&microphone)).await?;
    booth.goto(booth_url(&ana)?).await?;
    booth
        .wait_for(
            "window.tolkBooth && window.tolkBooth.connection === 'connected' && window.tolkBooth.socketOpen",
            Duration::from_secs(20),
        )
        .await?;
    let state = booth.eval_promise("window.tolkBooth.call('on-air', {language: 'fr'})").await?;
    assert_eq!(state["on_air"], "fr");
    booth.wait_for("document.body.dataset.air === 'on'", Duration::from_secs(5)).await?;
    booth.close().await?;
    relay.stop().await;

    let text = log.text();
    // The log does show each request's address: the check below could see a token there.
    for seen in ["uri=/booth", "uri=/api/v1/booth/ws", "uri=/whip/booth", "uri=/api/v1/booth/on-air"] {
        assert!(text.contains(seen), "the log shows {seen}:\n{text}");
    }
    assert!(!text.contains(&token), "the booth token is in the relay's log:\n{text}");
    Ok(())
}
