//! Recording on the pages, in headless Chromium: the organiser stops a recording with the page's
//! switch, sees one file per channel, plays one in an `<audio>` element and downloads the ZIP —
//! both through the download cookie, no token in any URL; an interpreter whose booth link has no
//! recording consent sees REC and that they are not recorded, agrees with the page's control,
//! and the server agrees.

use std::time::{Duration, Instant};

use chrono::Utc;
use fantoccini::Locator;
use serde_json::{Value, json};
use tolk_relay::api::{EventView, RecordingStatusView};
use tolk_tests::browser::Browser;
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, booth_url, floor_token};

const FLOOR: f64 = 440.0;

/// An event happening now (English floor, French and German channels) recording all channels.
async fn recorded_event(relay: &TestRelay) -> anyhow::Result<EventView> {
    let now = Utc::now();
    relay
        .create_event(json!({
            "title": "Recorded assembly", "floor_language": "en", "languages": ["fr", "de"],
            "starts_at": (now - chrono::Duration::minutes(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 100, "floor": {"kind": "whip"}, "recording": {"channels": "all"},
        }))
        .await
}

/// Wait until the event's files are being written (the recording starts within about a second).
async fn until_recording(relay: &TestRelay, id: &str) -> anyhow::Result<RecordingStatusView> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: RecordingStatusView = relay.admin_get(&format!("/api/v1/events/{id}/recording")).await?;
        if status.recording {
            return Ok(status);
        }
        anyhow::ensure!(Instant::now() < deadline, "not recording after 10 s: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(browser: &Browser, name: &str) -> anyhow::Result<()> {
    if let Ok(dir) = std::env::var("TOLK_SCREENSHOTS") {
        browser.screenshot(&std::path::Path::new(&dir).join(name)).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organiser_stops_the_recording_then_plays_and_downloads_the_files_in_the_page()
-> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = recorded_event(&relay).await?;
    let id = event.id.as_str();
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let status = until_recording(&relay, id).await?;
    println!("recording: {status:?}");

    let browser = Browser::start(None).await?;
    browser.goto(&relay.url("/")).await?;
    let signed_in = browser.eval_promise(&format!("window.tolkOrganiser.signIn({ADMIN:?})")).await?;
    assert_eq!(signed_in, true);
    browser
        .eval(&format!(
            "(window.tolkOrganiser.openEvent({id:?}), document.querySelector('#recording').scrollIntoView(), true)"
        ))
        .await?;
    browser
        .wait_for(
            "window.tolkOrganiser.recording.status.recording === true \
             && document.querySelector('#rec-state').dataset.state === 'recording' \
             && document.querySelector('#rec-toggle').textContent === 'Stop recording'",
            Duration::from_secs(10),
        )
        .await?;
    let shown = browser.client.find(Locator::Css("#rec-state")).await?.text().await?;
    println!("while recording the page says: {shown:?}");
    assert!(shown.contains("REC") && shown.contains("part 1") && shown.contains("free on disk"), "{shown}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    browser.client.find(Locator::Css("#rec-toggle")).await?.click().await?;
    browser
        .wait_for(
            "window.tolkOrganiser.recording.status.on === false \
             && window.tolkOrganiser.recording.files.length === 3 \
             && window.tolkOrganiser.recording.files.every(f => f.state === 'done') \
             && document.querySelectorAll('#rec-files tr[data-state=\"done\"]').length === 3 \
             && document.querySelector('#rec-toggle').textContent === 'Start recording'",
            Duration::from_secs(15),
        )
        .await?;
    let rows = browser
        .eval(
            "[...document.querySelectorAll('#rec-files tr[data-rid]')].map(r => r.dataset.language + ': ' \
             + [...r.cells].slice(0, 4).map(c => c.textContent.trim()).join(' | '))",
        )
        .await?;
    println!("files listed: {rows:#}");
    let mut languages: Vec<String> = rows
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()?.split(':').next().map(str::to_owned)).collect())
        .unwrap_or_default();
    languages.sort();
    assert_eq!(languages, ["de", "en", "fr"]);

    // One player plays: its duration is known (ranges through the cookie) and time advances.
    let played = browser
        .eval_promise(
            "(async () => {
                const a = document.querySelector('#rec-files audio');
                if (a.error) throw new Error('audio error ' + a.error.code);
                if (a.readyState < 1) await new Promise((ok, no) => {
                    a.addEventListener('loadedmetadata', ok, {once: true});
                    a.addEventListener('error', () => no(new Error('audio error ' + (a.error && a.error.code))), {once: true});
                });
                const duration = a.duration;
                a.muted = true;
                await a.play();
                const from = a.currentTime;
                await new Promise((r) => setTimeout(r, 1500));
                return {duration, from, to: a.currentTime, src: a.currentSrc, paused: a.paused};
            })()",
        )
        .await?;
    println!("audio element: {played}");
    let duration = played["duration"].as_f64().unwrap_or(0.0);
    assert!(duration > 2.0 && duration < 60.0, "the file lasts the ~3 s recorded: {duration}");
    let advanced = played["to"].as_f64().unwrap_or(0.0) - played["from"].as_f64().unwrap_or(0.0);
    assert!(advanced > 0.5, "playback advances: {played}");
    let src = played["src"].as_str().unwrap_or("");
    assert!(src.contains(&format!("/api/v1/events/{id}/recordings/")), "{src}");
    assert!(!src.contains(ADMIN) && !src.contains("token"), "no token in the player's URL: {src}");

    // The ZIP link downloads with the cookie alone.
    let zip = browser
        .eval_promise(
            "fetch(document.querySelector('#rec-zip').href, {credentials: 'same-origin'}).then(async (r) => {
                const b = new Uint8Array(await r.arrayBuffer());
                return {status: r.status, type: r.headers.get('Content-Type'), signature: String.fromCharCode(b[0], b[1]), size: b.length};
            })",
        )
        .await?;
    println!("ZIP: {zip}");
    assert_eq!(zip["status"], 200);
    assert_eq!(zip["signature"], "PK");
    assert!(zip["size"].as_u64().unwrap_or(0) > 1000, "{zip}");
    // Without the cookie (a plain client, no token), the same link is refused.
    let bare = relay.http.get(relay.url(&format!("/api/v1/events/{id}/recordings/all.zip"))).send().await?;
    assert_eq!(bare.status().as_u16(), 401);

    screenshot(&browser, "organiser-recording.png").await?;
    browser.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_without_consent_sees_rec_and_agrees_on_the_booth_page() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = recorded_event(&relay).await?;
    let id = event.id.as_str();
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    until_recording(&relay, id).await?;
    let ana = relay.booth_link(id, "Ana", &["fr"]).await?;
    assert!(!ana.recording_consent, "booth links are issued without consent by default");

    let booth = Browser::start(None).await?;
    booth.goto(&booth_url(&ana)?.replacen("#", "?autoplay=1#", 1)).await?;
    booth
        .wait_for("window.tolkBooth && window.tolkBooth.connection === 'connected'", Duration::from_secs(20))
        .await?;
    booth
        .wait_for(
            "!document.querySelector('#rec-sign').hidden && !document.querySelector('#rec-note').hidden \
             && !document.querySelector('#rec-consent').checked",
            Duration::from_secs(10),
        )
        .await?;
    let state = booth.eval_promise("window.tolkBooth.call('on-air', {language: 'fr'})").await?;
    assert_eq!(state["on_air"], "fr");
    booth
        .wait_for("document.querySelector('#rec-sign').dataset.live === 'true'", Duration::from_secs(5))
        .await?;
    let note = booth.client.find(Locator::Css("#rec-note")).await?.text().await?;
    assert_eq!(note, "You are not recorded: your channel's recording holds silence while you speak.");
    let sign = booth.client.find(Locator::Css("#air")).await?.text().await?;
    println!("on air, without consent: {sign:?} / {note:?}");
    assert!(sign.contains("REC"), "{sign}");
    screenshot(&booth, "booth-recording.png").await?;

    booth.client.find(Locator::Css("#rec-consent")).await?.click().await?;
    booth
        .wait_for(
            "document.querySelector('#rec-note').hidden && document.querySelector('#rec-consent').checked \
             && window.tolkBooth.recording.consent === true",
            Duration::from_secs(10),
        )
        .await?;
    let state: Value = relay
        .http
        .get(relay.url("/api/v1/booth/state"))
        .bearer_auth(booth_token(&ana)?)
        .send()
        .await?
        .json()
        .await?;
    println!("booth state recording: {}", state["recording"]);
    assert_eq!(state["recording"]["consent"], true);
    assert!(
        booth.client.find(Locator::Css("#rec-sign")).await?.is_displayed().await?,
        "REC stays while recording"
    );

    booth.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}
