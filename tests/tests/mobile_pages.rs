//! The listener and booth pages on a phone, as far as Chromium's mobile emulation can show it
//! (`tolk_tests::mobile::Phone`: an iPhone's 390 px viewport, touch, and sound only after a tap):
//! the pages lay out at 390 px without horizontal scrolling; with `?autoplay=1` the browser holds
//! the sound back and the page says "Tap to listen", and a tap starts it; the volume slider sets
//! the WebAudio gain and what is heard, Mute silences it; after a locked screen (the context
//! suspended, the connection gone, the page hidden — simulated, see `tolkListener.interrupt`) the
//! sound comes back when the page is shown again; the language, volume and mute survive a reload,
//! and `?lang=` still wins. What emulation cannot show (iOS's read-only media volume, a real lock
//! screen) is in docs/browsers.md.

use std::time::Duration;

use serde_json::Value;
use tolk_tests::mobile::{PHONE_WIDTH, Phone};
use tolk_tests::relay::{TestRelay, booth_url};

const WAIT: Duration = Duration::from_secs(20);

/// The page fits the phone's width: nothing scrolls sideways.
async fn fits_the_phone(phone: &Phone, page: &str) -> anyhow::Result<()> {
    let widths = phone
        .run("return [window.innerWidth, document.documentElement.scrollWidth, document.body.scrollWidth];")
        .await?;
    println!("{page} at {widths} (viewport, document, body)");
    let w: Vec<u64> = widths.as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
    assert_eq!(w[0], u64::from(PHONE_WIDTH), "{page}: the viewport is the phone's");
    assert!(w[1] <= w[0] && w[2] <= w[0], "{page} scrolls sideways at {PHONE_WIDTH} px: {widths}");
    Ok(())
}

/// The level of the listener's channel track (before any gain) and of what is heard, dBFS.
async fn levels(phone: &Phone) -> anyhow::Result<(f64, f64)> {
    let m = phone
        .run(
            "const [tone, out] = await Promise.all([tolkListener.measureTone(800), tolkListener.measureOutput(800)]);
             return [tone.frequency, tone.level_db, out.level_db];",
        )
        .await?;
    let v: Vec<f64> = m.as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    assert!((v[0] - 440.0).abs() < 10.0, "the page hears the floor's 440 Hz: {m}");
    Ok((v[1], v[2]))
}

/// Sets the volume slider as a finger would (its value, then the input event).
async fn set_volume(phone: &Phone, percent: u32) -> anyhow::Result<()> {
    phone
        .run(&format!(
            "const v = document.getElementById('volume'); v.value = '{percent}';
             v.dispatchEvent(new Event('input', {{ bubbles: true }}));"
        ))
        .await?;
    Ok(())
}

/// The page's visibility as a phone changes it (locking, unlocking): the state and its event.
async fn show(phone: &Phone, visible: bool) -> anyhow::Result<()> {
    let state = if visible { "visible" } else { "hidden" };
    phone
        .run(&format!(
            "Object.defineProperty(document, 'visibilityState', {{ value: '{state}', configurable: true }});
             Object.defineProperty(document, 'hidden', {{ value: {}, configurable: true }});
             document.dispatchEvent(new Event('visibilitychange'));",
            !visible
        ))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_page_on_a_phone() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let floor = relay.tone_floor(&event, 440.0).await?;
    let phone = Phone::start().await?;

    // Opened with ?autoplay=1 but no tap yet: the browser holds the sound back, the page asks.
    phone.goto(&relay.url(&format!("/e/{id}?autoplay=1"))).await?;
    phone.wait_for("window.tolkListener && tolkListener.needsGesture", WAIT).await?;
    let prompt = phone
        .run(
            "return [document.getElementById('play-label').textContent, tolkListener.audioState,
                     !document.getElementById('hint').hidden];",
        )
        .await?;
    println!("before a tap: {prompt}");
    assert_eq!(prompt[0], "Tap to listen");
    assert_eq!(prompt[1], "suspended");
    assert_eq!(prompt[2], true, "the hint says why");
    fits_the_phone(&phone, "the listener page").await?;

    phone.tap("#play").await?;
    phone
        .wait_for("tolkListener.audioState === 'running' && tolkListener.state === 'listening'", WAIT)
        .await?;
    phone.wait_for("!tolkListener.needsGesture && tolkListener.firstAudioMs !== null", WAIT).await?;
    assert_eq!(phone.run("return document.getElementById('play-label').textContent;").await?, "Stop");

    // The volume is the WebAudio gain: the track's level stays, what is heard follows.
    set_volume(&phone, 100).await?;
    phone.wait_for("Math.abs(tolkListener.volume.gain - 1) < 0.001", WAIT).await?;
    let (track_full, heard_full) = levels(&phone).await?;
    set_volume(&phone, 30).await?;
    phone.wait_for("Math.abs(tolkListener.volume.gain - 0.09) < 0.001", WAIT).await?;
    let (track_low, heard_low) = levels(&phone).await?;
    println!(
        "volume 100 %: track {track_full:.1} dBFS, heard {heard_full:.1}; 30 %: {track_low:.1}, {heard_low:.1}"
    );
    assert!((track_full - track_low).abs() < 2.0, "the volume does not change the track's level");
    let drop = heard_full - heard_low;
    assert!((drop - 20.9).abs() < 2.0, "30 % is a gain of 0.09, -20.9 dB: heard {drop:.1} dB less");

    phone.tap("#mute").await?;
    phone.wait_for("tolkListener.volume.muted && tolkListener.volume.gain < 0.0001", WAIT).await?;
    let (_, heard_muted) = levels(&phone).await?;
    assert!(heard_muted < -80.0, "muted, nothing is heard: {heard_muted} dBFS");
    assert_eq!(
        phone.run("return document.getElementById('mute').getAttribute('aria-pressed');").await?,
        "true"
    );
    phone.tap("button.t-choice[data-language='fr']").await?;
    phone.wait_for("tolkListener.language === 'fr' && tolkListener.state === 'listening'", WAIT).await?;

    // The screen locks: the context is suspended and the connection lost while hidden; when the
    // page is shown again the sound and the connection come back without a tap.
    show(&phone, false).await?;
    phone.run("await tolkListener.interrupt();").await?;
    assert_eq!(phone.run("return tolkListener.audioState;").await?, "suspended");
    phone
        .run(
            "window.tolkSeen = []; setInterval(() => { const s = tolkListener.state;
             if (tolkSeen[tolkSeen.length - 1] !== s) tolkSeen.push(s); }, 5);",
        )
        .await?;
    show(&phone, true).await?;
    phone
        .wait_for("tolkListener.audioState === 'running' && tolkListener.state === 'listening'", WAIT)
        .await?;
    phone.wait_for("tolkListener.firstAudioMs !== null", WAIT).await?;
    let seen = phone.run("return tolkSeen;").await?;
    println!("states after the page was shown again: {seen}");
    assert!(seen.as_array().is_some_and(|s| s.contains(&"reconnecting".into())), "it reconnected: {seen}");
    let (track_back, _) = levels(&phone).await?;
    assert!(track_back > -30.0, "after the lock the page hears the floor again: {track_back} dBFS");

    // The choice survives a reload (the plain link, as from a QR code); ?lang= still wins.
    phone.goto(&relay.url(&format!("/e/{id}"))).await?;
    phone.wait_for("window.tolkListener && tolkListener.language !== null", WAIT).await?;
    let kept = phone
        .run("return [tolkListener.language, tolkListener.volume.percent, tolkListener.volume.muted];")
        .await?;
    println!("after a reload: {kept}");
    assert_eq!(kept, serde_json::json!(["fr", 30, true]));
    phone.goto(&relay.url(&format!("/e/{id}?lang=en"))).await?;
    phone.wait_for("window.tolkListener && tolkListener.language !== null", WAIT).await?;
    assert_eq!(phone.run("return tolkListener.language;").await?, "en", "?lang= wins");

    if let Ok(dir) = std::env::var("TOLK_SCREENSHOTS") {
        std::fs::write(
            std::path::Path::new(&dir).join("listener-phone.png"),
            phone.client.screenshot().await?,
        )?;
    }
    phone.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booth_page_on_a_phone() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let floor = relay.tone_floor(&event, 440.0).await?;
    let ana = relay.booth_link(event.id.as_str(), "Ana", &["fr"]).await?;
    // The booth's air buttons, meters and chat at a phone's width.
    let phone = Phone::start().await?;
    phone.goto(&booth_url(&ana)?.replacen('#', "?autoplay=1#", 1)).await?;
    phone.wait_for("window.tolkBooth && tolkBooth.connection === 'connected'", WAIT).await?;
    fits_the_phone(&phone, "the booth page").await?;
    // A page capturing the microphone may play sound without a tap (Chromium's autoplay policy);
    // where the browser still holds it back, the page's own prompt is the way.
    if phone.run("return !document.getElementById('sound-hint').hidden;").await? == true {
        println!("the booth page asks for a tap");
        phone.tap("#sound-unlock").await?;
        phone.wait_for("document.getElementById('sound-hint').hidden", WAIT).await?;
    }
    let input = phone.run("return await tolkBooth.measureInput(1000);").await?;
    println!("booth input: {input}");
    assert!((input["frequency"].as_f64().unwrap_or(0.0) - 440.0).abs() < 10.0, "the booth hears the floor");
    phone.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}
