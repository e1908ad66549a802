//! The organiser page in headless Chromium and in headless Firefox: sign in with the admin token, create an event through
//! the form (the capacity answer shows before saving), see the floor token once, issue a booth
//! link — and the API agrees that all of it happened.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;
use tolk_tests::browser::{Browser, Kind};
use tolk_tests::relay::{ADMIN, TestRelay};

tolk_tests::in_each_browser!(an_organiser_creates_an_event_and_issues_a_booth_link_in_the_page);

async fn an_organiser_creates_an_event_and_issues_a_booth_link_in_the_page(kind: Kind) -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let browser = Browser::start_in(kind, None).await?;
    browser.goto(&relay.url("/")).await?;
    let page = &browser.client;

    page.find(Locator::Css("#token")).await?.send_keys(ADMIN).await?;
    page.find(Locator::Css("#sign-in")).await?.click().await?;
    browser
        .wait_for("window.tolkOrganiser && window.tolkOrganiser.signedIn", Duration::from_secs(10))
        .await?;

    page.find(Locator::Css("#new-event")).await?.click().await?;
    browser.wait_for("document.querySelector('#ev-title') !== null", Duration::from_secs(5)).await?;
    page.find(Locator::Css("#ev-title")).await?.send_keys("Annual assembly").await?;
    let languages = page.find(Locator::Css("#ev-language-add")).await?;
    languages.send_keys(&format!("fr{}", char::from(Key::Enter))).await?;
    languages.send_keys(&format!("Deutsch{}", char::from(Key::Enter))).await?;
    // datetime-local takes local time: set it from the page's own clock (now - 10 min, + 2 h).
    browser
        .eval(
            "(() => {
                const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
                const set = (id, v) => { const e = document.querySelector(id); e.value = v;
                    e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); };
                set('#ev-starts', local(new Date(Date.now() - 600000)));
                set('#ev-ends', local(new Date(Date.now() + 7200000)));
                set('#ev-listeners', '250');
                return true;
            })()",
        )
        .await?;
    browser
        .wait_for(
            "window.tolkOrganiser.lastCapacityAnswer && window.tolkOrganiser.lastCapacityAnswer.fits === true",
            Duration::from_secs(10),
        )
        .await?;
    let answer = page.find(Locator::Css("#ev-capacity")).await?.text().await?;
    println!("capacity answer before saving: {answer}");
    page.find(Locator::Css("#ev-save")).await?.click().await?;
    browser
        .wait_for("(document.querySelector('#ev-floor-token') || {}).textContent", Duration::from_secs(10))
        .await?;
    let token = page.find(Locator::Css("#ev-floor-token")).await?.text().await?;
    assert!(token.trim().len() >= 32, "the floor token is shown once: {token:?}");

    page.find(Locator::Css("#bl-name")).await?.send_keys("Ana").await?;
    page.find(Locator::Css("#bl-languages")).await?.send_keys("fr").await?;
    page.find(Locator::Css("#bl-issue")).await?.click().await?;
    browser
        .wait_for(
            "(document.querySelector('#booth-links .booth-url') || {}).textContent",
            Duration::from_secs(10),
        )
        .await?;
    let booth_url = page.find(Locator::Css("#booth-links .booth-url")).await?.text().await?;
    assert!(booth_url.contains("/booth#token="), "the booth link is shown: {booth_url}");
    if let Ok(dir) = std::env::var("TOLK_SCREENSHOTS") {
        let name = if kind == Kind::Chromium { "organiser.png" } else { "organiser-firefox.png" };
        browser.screenshot(&std::path::Path::new(&dir).join(name)).await?;
    }

    // The API agrees.
    let events: Value = relay.admin_get("/api/v1/events").await?;
    let event = &events[0];
    assert_eq!(event["title"], "Annual assembly");
    assert_eq!(event["languages"], serde_json::json!(["fr", "de"]));
    assert_eq!(event["expected_listeners"], 250);
    let id = event["id"].as_str().unwrap_or("");
    let links: Value = relay.admin_get(&format!("/api/v1/events/{id}/interpreters")).await?;
    assert_eq!(links[0]["name"], "Ana");
    // The booth link from the page works.
    let booth = relay.http.get(booth_url.trim()).send().await?;
    assert_eq!(booth.status().as_u16(), 200);

    browser.close().await?;
    relay.stop().await;
    Ok(())
}
