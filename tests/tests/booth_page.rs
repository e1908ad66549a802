//! The booth page in headless Chromium and in headless Firefox, with a fake microphone fed from a
//! WAV tone: it connects, hears the floor as its input, goes on air, and a listener page in a
//! second browser of the same kind hears the interpreter's tone on that channel, then switches to
//! the original and hears the floor.

use std::time::{Duration, Instant};

use tolk_tests::audio::tone_wav;
use tolk_tests::browser::{Browser, Kind};
use tolk_tests::relay::{TestRelay, booth_url};

tolk_tests::in_each_browser!(an_interpreter_on_the_booth_page_is_heard_on_the_listener_page);

async fn an_interpreter_on_the_booth_page_is_heard_on_the_listener_page(kind: Kind) -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let floor = relay.tone_floor(&event, 440.0).await?;
    let ana = relay.booth_link(id, "Ana", &["fr"]).await?;
    let microphone = relay.data_dir.join("ana.wav");
    std::fs::write(&microphone, tone_wav(880.0, 0.5, 30))?;

    let booth = Browser::start_in(kind, Some(&microphone)).await?;
    // The query goes before the fragment, which holds the token.
    booth.goto(&booth_url(&ana)?.replacen("#", "?autoplay=1#", 1)).await?;
    booth
        .wait_for("window.tolkBooth && window.tolkBooth.connection === 'connected'", Duration::from_secs(20))
        .await?;
    // The floor's first sound reaches the booth's analyser some time after the connection (Firefox
    // on a busy machine: over 1.5 s); wait for it (10 s at most), then measure.
    let connected = Instant::now();
    while connected.elapsed() < Duration::from_secs(10) {
        let input = booth.eval_promise("window.tolkBooth.measureInput(200)").await?;
        if input["level_db"].as_f64().unwrap_or(-200.0) > -60.0 {
            break;
        }
    }
    let sounding = connected.elapsed();
    let input = booth.eval_promise("window.tolkBooth.measureInput(1500)").await?;
    println!("booth input in {kind:?}: {input}, sounding {sounding:?} after the connection");
    let heard = input["frequency"].as_f64().unwrap_or(0.0);
    assert!((heard - 440.0).abs() < 10.0, "the interpreter hears the floor: {heard} Hz");
    let state = booth.eval_promise("window.tolkBooth.call('on-air', {language: 'fr'})").await?;
    assert_eq!(state["on_air"], "fr");
    booth.wait_for("document.body.dataset.air === 'on'", Duration::from_secs(5)).await?;

    let listener = Browser::start_in(kind, None).await?;
    listener.goto(&relay.url(&format!("/e/{id}?lang=fr&autoplay=1"))).await?;
    listener
        .wait_for("window.tolkListener && window.tolkListener.state === 'listening'", Duration::from_secs(20))
        .await?;
    listener.wait_for("window.tolkListener.firstAudioMs !== null", Duration::from_secs(10)).await?;
    let measured = listener.eval_promise("window.tolkListener.measureTone(1500)").await?;
    println!("listener on fr: {measured}");
    let frequency = measured["frequency"].as_f64().unwrap_or(0.0);
    assert!((frequency - 880.0).abs() < 10.0, "the listener hears the interpreter: {frequency} Hz");
    assert!(measured["level_db"].as_f64().unwrap_or(-200.0) > -40.0);
    listener
        .wait_for(
            "window.tolkListener.channels.some(c => c.language === 'fr' && c.interpreter === 'Ana')",
            Duration::from_secs(10),
        )
        .await?;

    // The listener switches to the original without renegotiating, and hears the floor.
    listener.eval_promise("window.tolkListener.selectLanguage('en')").await?;
    let original = listener.eval_promise("window.tolkListener.measureTone(1500)").await?;
    println!("listener after switching to en: {original}");
    let frequency = original["frequency"].as_f64().unwrap_or(0.0);
    assert!(
        (frequency - 440.0).abs() < 10.0,
        "after the switch the listener hears the floor: {frequency} Hz"
    );

    if let Ok(dir) = std::env::var("TOLK_SCREENSHOTS") {
        let name = if kind == Kind::Chromium { "booth.png" } else { "booth-firefox.png" };
        booth.screenshot(&std::path::Path::new(&dir).join(name)).await?;
    }
    booth.close().await?;
    listener.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}
