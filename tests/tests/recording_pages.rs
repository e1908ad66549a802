//! Recording on the pages, in headless Chromium: the organiser stops a recording with the page's
//! switch, sees one file per channel, plays one in an `<audio>` element and downloads the ZIP —
//! both through the download cookie, no token in any URL; an interpreter whose booth link has no
//! recording consent sees REC and that they are not recorded, agrees with the page's control,
//! and the server agrees.

use std::time::{Duration, Instant};

use chrono::Utc;
use fantoccini::Locator;
use serde_json::{Value, json};
use tolk_relay::api::{EventView, RecordingStatusView, RecordingsView};
use tolk_tests::browser::Browser;
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, booth_url, floor_token};

const FLOOR: f64 = 440.0;

/// A relay with an event happening now (English floor, French and German channels) created to
/// record all channels, its floor publishing a tone, and its files being written.
async fn recording_now() -> anyhow::Result<(TestRelay, EventView, client::Client)> {
    let relay = TestRelay::start(1).await?;
    let now = Utc::now();
    let event = relay
        .create_event(json!({
            "title": "Recorded assembly", "floor_language": "en", "languages": ["fr", "de"],
            "starts_at": (now - chrono::Duration::minutes(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 100, "floor": {"kind": "whip"}, "recording": {"channels": "all"},
        }))
        .await?;
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let status = until_recording(&relay, event.id.as_str()).await?;
    println!("recording: {status:?}");
    Ok((relay, event, floor))
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

/// The organiser page in Chromium, signed in with the admin token.
async fn organiser_page(relay: &TestRelay) -> anyhow::Result<Browser> {
    let browser = Browser::start(None).await?;
    browser.goto(&relay.url("/")).await?;
    let signed_in = browser.eval_promise(&format!("window.tolkOrganiser.signIn({ADMIN:?})")).await?;
    anyhow::ensure!(signed_in == true, "the admin token signs in: {signed_in}");
    Ok(browser)
}

/// Open the event in the organiser page, its recording section on screen (it polls while shown).
async fn open_recording(browser: &Browser, id: &str) -> anyhow::Result<()> {
    browser
        .eval(&format!(
            "(window.tolkOrganiser.openEvent({id:?}), document.querySelector('#recording').scrollIntoView(), true)"
        ))
        .await?;
    Ok(())
}

/// Click the element `css` selects.
async fn click(browser: &Browser, css: &str) -> anyhow::Result<()> {
    browser.client.find(Locator::Css(css)).await?.click().await?;
    Ok(())
}

/// Click `css`, then "Confirm" in the dialog that asks.
async fn click_confirmed(browser: &Browser, css: &str) -> anyhow::Result<()> {
    click(browser, css).await?;
    browser.wait_for("document.querySelector('#confirm').open", Duration::from_secs(5)).await?;
    click(browser, "#confirm-ok").await
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
    let (relay, event, floor) = recording_now().await?;
    let id = event.id.as_str();

    let browser = organiser_page(&relay).await?;
    open_recording(&browser, id).await?;
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

    let recording_since = Instant::now();

    // Meanwhile a booth link with consent, issued in the page.
    browser.client.find(Locator::Css("#bl-name")).await?.send_keys("Ana").await?;
    browser.client.find(Locator::Css("#bl-languages")).await?.send_keys("fr").await?;
    click(&browser, "#bl-consent").await?;
    click(&browser, "#bl-issue").await?;
    browser
        .wait_for(
            "(document.querySelector('#bl-list .to-consent') || {}).textContent === 'Agreed to be recorded'",
            Duration::from_secs(10),
        )
        .await?;
    let links: Value = relay.admin_get(&format!("/api/v1/events/{id}/interpreters")).await?;
    assert_eq!(links[0]["recording_consent"], true, "{links}");

    browser.eval("(document.querySelector('#recording').scrollIntoView(), true)").await?;
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(recording_since.elapsed())).await;
    click(&browser, "#rec-toggle").await?;
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

    // Delete one file (confirmed), then all: the list says so.
    click_confirmed(&browser, "#rec-files tr[data-language=\"de\"] button.t-btn--danger").await?;
    browser
        .wait_for(
            "document.querySelectorAll('#rec-files tr[data-rid]').length === 2",
            Duration::from_secs(10),
        )
        .await?;
    let left: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
    assert_eq!(left.recordings.len(), 2);
    assert!(left.recordings.iter().all(|f| f.language.as_str() != "de"));
    click_confirmed(&browser, "#rec-delete-all").await?;
    browser
        .wait_for(
            "document.querySelector('#rec-files').textContent === 'No recordings yet.' \
             && document.querySelector('#rec-zip').hidden",
            Duration::from_secs(10),
        )
        .await?;
    let left: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
    assert!(left.recordings.is_empty());

    browser.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_without_consent_sees_rec_and_agrees_on_the_booth_page() -> anyhow::Result<()> {
    let (relay, event, floor) = recording_now().await?;
    let id = event.id.as_str();
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

    click(&booth, "#rec-consent").await?;
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

    // The organiser sees who was on air in the French file, and which stretch is silence.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = relay
        .http
        .post(relay.url(&format!("/api/v1/events/{id}/recording")))
        .bearer_auth(ADMIN)
        .json(&json!({"on": false}))
        .send()
        .await?;
    assert_eq!(stopped.status().as_u16(), 200);
    let organiser = organiser_page(&relay).await?;
    open_recording(&organiser, id).await?;
    organiser
        .wait_for(
            "document.querySelectorAll('#rec-files tr[data-language=\"fr\"] li[data-consent]').length >= 2",
            Duration::from_secs(15),
        )
        .await?;
    let on_air = organiser
        .eval(
            "[...document.querySelectorAll('#rec-files tr[data-language=\"fr\"] li[data-consent]')]
                .map(li => li.dataset.consent + ': ' + li.textContent)",
        )
        .await?;
    println!("on air in the French file: {on_air}");
    let stretches: Vec<&str> =
        on_air.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(
        stretches[0].starts_with("false: Ana") && stretches[0].ends_with("not recorded: no consent"),
        "{on_air}"
    );
    assert!(stretches[1].starts_with("true: Ana") && !stretches[1].contains("no consent"), "{on_air}");
    organiser.close().await?;

    booth.close().await?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_created_in_the_page_with_record_checked_will_record_all_channels() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let browser = organiser_page(&relay).await?;
    click(&browser, "#new-event").await?;
    browser.client.find(Locator::Css("#ev-title")).await?.send_keys("Recorded later").await?;
    click(&browser, "#ev-record").await?;
    click(&browser, "#ev-save").await?;
    browser
        .wait_for("(document.querySelector('#ev-floor-token') || {}).textContent", Duration::from_secs(10))
        .await?;
    let events: Value = relay.admin_get("/api/v1/events").await?;
    let id = events[0]["id"].as_str().unwrap_or("");
    let status: RecordingStatusView = relay.admin_get(&format!("/api/v1/events/{id}/recording")).await?;
    assert!(status.on && !status.recording, "switched on, waiting for the event: {status:?}");
    assert_eq!(serde_json::to_value(&status.channels)?, json!("all"));
    browser
        .wait_for(
            "document.querySelector('#rec-state').dataset.state === 'waiting' \
             && document.querySelector('#rec-files').textContent === 'No recordings yet.'",
            Duration::from_secs(10),
        )
        .await?;
    let shown = browser.client.find(Locator::Css("#rec-state")).await?.text().await?;
    println!("an upcoming recorded event: {shown:?}");
    browser.close().await?;
    relay.stop().await;
    Ok(())
}
