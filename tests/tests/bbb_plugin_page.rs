//! The BBB plugin at work in a meeting, in headless Chromium with real WebRTC: the built bundle,
//! served by Tolk, loaded by the BBB-client stand-in page (`tests/web/bbb-client/`) the way BBB's
//! client loads plugins, everything behind one nginx origin as on a BBB host (BBB's locations to
//! the BBB stand-in, `/tolk/` to the relay). A moderator starts interpretation and names a
//! participant as interpreter; the interpreter's "Open my booth" opens the booth, which goes on
//! air with a fake microphone; a participant picks French, hears the interpreter's tone while the
//! meeting's own audio is lowered to their level, switches to German (nobody on air there: the
//! floor) in the same session, and "Original" gives the meeting's audio back.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tolk_relay::bbb::BbbConfig;
use tolk_tests::audio::tone_wav;
use tolk_tests::bbb::{BbbStandIn, StandInConfig};
use tolk_tests::browser::Browser;
use tolk_tests::nginx::{Nginx, repo};
use tolk_tests::relay::TestRelay;

const FLOOR_TONE: f64 = 520.0;
const INTERPRETER_TONE: f64 = 880.0;
const WAIT: Duration = Duration::from_secs(20);

/// Where the tests leave their screenshots (looked at; named in the closing note).
fn screenshots() -> anyhow::Result<PathBuf> {
    let dir = std::env::var("TOLK_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target/screenshots"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An element of the plugin's panel, by its `data-tolk` name.
fn tolk(name: &str) -> String {
    format!("document.querySelector('[data-tolk=\"{name}\"]')")
}

/// Click what `selector_js` finds (a JavaScript expression for an element).
async fn click(browser: &Browser, selector_js: &str) -> anyhow::Result<()> {
    browser.wait_for(&format!("!!({selector_js})"), WAIT).await?;
    browser.eval(&format!("({selector_js}).click()")).await?;
    Ok(())
}

/// An actions-bar item the plugin put there, by its tooltip.
fn actions_bar(label: &str) -> String {
    format!(
        "[...document.querySelectorAll('[data-standin=\"actions-bar-button\"]')].find(b => (b.getAttribute('aria-label') || '').startsWith('{label}'))"
    )
}

/// Set a form field of the panel as a person typing would (React sees the input event).
async fn set_field(browser: &Browser, name: &str, value: &str) -> anyhow::Result<()> {
    browser.wait_for(&format!("!!{}", tolk(name)), WAIT).await?;
    browser
        .eval(&format!(
            "(() => {{ const el = {}; const proto = Object.getPrototypeOf(el);
               Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, {value:?});
               el.dispatchEvent(new Event('input', {{bubbles: true}}));
               el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            tolk(name)
        ))
        .await?;
    Ok(())
}

/// The tone and level of the channel the plugin plays (an analyser on its stream, with the
/// measurement of Tolk's own pages).
async fn channel_tone(browser: &Browser, base: &str) -> anyhow::Result<Value> {
    browser
        .eval_promise(&format!(
            "(async () => {{
               const {{ measureTone }} = await import('{base}/static/measure.js');
               const audio = {};
               const ctx = new AudioContext();
               const analyser = ctx.createAnalyser();
               analyser.fftSize = 8192;
               ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
               await ctx.resume();
               const result = await measureTone(() => analyser, 1500);
               ctx.close();
               return result;
             }})()",
            tolk("channel-audio")
        ))
        .await
}

/// Measures the channel until it carries `frequency` (a switch reaches the ear within a few
/// packets; the first measurement may still hold the channel before it), at most three times.
async fn wait_for_tone(browser: &Browser, base: &str, frequency: f64) -> anyhow::Result<Value> {
    let mut heard = Value::Null;
    for _ in 0..3 {
        heard = channel_tone(browser, base).await?;
        if (heard["frequency"].as_f64().unwrap_or(0.0) - frequency).abs() < 10.0 {
            return Ok(heard);
        }
    }
    anyhow::bail!("the channel did not carry {frequency} Hz: {heard}")
}

/// A BBB host: the BBB stand-in and the relay behind one nginx, the relay following BBB's
/// meetings every 200 ms.
struct Host {
    bbb: BbbStandIn,
    nginx: Nginx,
    relay: TestRelay,
    /// `{nginx}/tolk`: where the browser reaches Tolk.
    public: String,
}

impl Host {
    async fn start() -> anyhow::Result<Self> {
        let bbb = BbbStandIn::start(StandInConfig::default()).await?;
        let bbb_port = url::Url::parse(&bbb.api_url())?.port().unwrap_or(80);
        let relay_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let nginx = Nginx::start(relay_port, Some(bbb_port)).await?;
        let public = nginx.url("/tolk");
        let mut config = BbbConfig::new(&bbb.api_url(), bbb.secret())?;
        config.poll = Duration::from_millis(200);
        let relay = TestRelay::start_with(1, {
            let public = public.clone();
            move |s| {
                s.listen = std::net::SocketAddr::from(([127, 0, 0, 1], relay_port));
                s.public_url = public;
                s.public_url_from_listen = false;
                s.bbb = Some(config);
            }
        })
        .await?;
        Ok(Self { bbb, nginx, relay, public })
    }

    /// A meeting that loads Tolk's plugin (`pluginManifests` at create), with `metadata`.
    fn meeting(&self, id: &str, metadata: &[(&str, &str)]) {
        let manifest = format!("{}/bbb-plugin/manifest.json", self.public);
        self.bbb.create_meeting_with(id, id, metadata, &[&manifest]);
    }

    /// The signed join URL through nginx, as a front end sends a browser to BBB's join.
    fn join(&self, meeting: &str, name: &str, moderator: bool) -> anyhow::Result<String> {
        let url = self.bbb.join_url(meeting, name, moderator)?;
        let direct = self.bbb.api_url().trim_end_matches("/bigbluebutton/").to_owned();
        Ok(url.replacen(&direct, &self.nginx.url(""), 1))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_gets_interpretation_from_its_moderator_and_a_participant_hears_it() -> anyhow::Result<()> {
    let host = Host::start().await?;
    host.meeting("plenary", &[]);
    // The meeting's floor: a tone (for a meeting that runs, create changes only its tone).
    host.bbb.create_meeting("plenary", FLOOR_TONE);
    let (relay, public) = (&host.relay, host.public.as_str());
    let join = |name: &str, moderator: bool| host.join("plenary", name, moderator);
    let shots = screenshots()?;

    // The moderator starts interpretation into French from the plugin's panel.
    let moderator = Browser::start(None).await?;
    moderator.goto(&join("Moa Moderator", true)?).await?;
    click(&moderator, &actions_bar("Interpretation")).await?;
    moderator.wait_for(&format!("!!{}", tolk("start-form")), WAIT).await?;
    set_field(&moderator, "add-language", "fr").await?;
    moderator
        .wait_for("!!document.querySelector('[data-tolk=\"language-chip\"][data-language=\"fr\"]')", WAIT)
        .await?;
    set_field(&moderator, "add-language", "de").await?;
    moderator
        .wait_for("!!document.querySelector('[data-tolk=\"language-chip\"][data-language=\"de\"]')", WAIT)
        .await?;
    set_field(&moderator, "expected-listeners", "40").await?;
    moderator.screenshot(&shots.join("plugin-moderator-start.png")).await?;
    click(&moderator, &tolk("start-interpretation")).await?;
    moderator.wait_for(&format!("!!{}", tolk("running")), WAIT).await?;

    // A participant is named interpreter for French.
    let marie_browser = {
        let wav = relay.data_dir.join("marie.wav");
        std::fs::write(&wav, tone_wav(INTERPRETER_TONE, 0.5, 30))?;
        Browser::start(Some(&wav)).await?
    };
    marie_browser.goto(&join("Marie", false)?).await?;
    moderator
        .wait_for(
            &format!("[...{}.options].some(o => o.textContent.includes('Marie'))", tolk("interpreter-user")),
            WAIT,
        )
        .await?;
    moderator
        .eval(&format!(
            "(() => {{ const s = {}; s.value = [...s.options].find(o => o.textContent.includes('Marie')).value;
               s.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            tolk("interpreter-user")
        ))
        .await?;
    click(&moderator, "document.querySelector('[data-tolk=\"interpreter-language\"][data-language=\"fr\"]')")
        .await?;
    click(&moderator, &tolk("name-interpreter")).await?;
    moderator.wait_for(&format!("!!{}", tolk("interpreter")), WAIT).await?;
    moderator.screenshot(&shots.join("plugin-moderator-running.png")).await?;

    // Marie opens her booth from the meeting and goes on air.
    click(&marie_browser, &actions_bar("Open my booth")).await?;
    let windows = {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let windows = marie_browser.client.windows().await?;
            if windows.len() > 1 {
                break windows;
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "Open my booth opened no window");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let meeting_window = marie_browser.client.window().await?;
    let booth_window = windows
        .into_iter()
        .find(|w| *w != meeting_window)
        .ok_or_else(|| anyhow::anyhow!("no booth window"))?;
    marie_browser.client.switch_to_window(booth_window).await?;
    marie_browser.wait_for("window.tolkBooth && window.tolkBooth.connection === 'connected'", WAIT).await?;
    let state = marie_browser.eval_promise("window.tolkBooth.call('on-air', {language: 'fr'})").await?;
    assert_eq!(state["on_air"], "fr", "{state}");

    // A participant picks French: Tolk's channel plays, the meeting's audio goes down to 15 %.
    let lee = Browser::start(None).await?;
    lee.goto(&join("Lee Listener", false)?).await?;
    click(&lee, &actions_bar("Interpretation")).await?;
    click(&lee, "document.querySelector('[data-tolk=\"choice\"][data-language=\"fr\"]')").await?;
    lee.wait_for(&format!("{}.dataset.state === 'listening'", tolk("status")), WAIT).await?;
    let heard = channel_tone(&lee, public).await?;
    println!("the participant on French: {heard}");
    let frequency = heard["frequency"].as_f64().unwrap_or(0.0);
    assert!(
        (frequency - INTERPRETER_TONE).abs() < 10.0,
        "the participant hears the interpreter: {frequency} Hz"
    );
    assert!(heard["level_db"].as_f64().unwrap_or(-200.0) > -40.0, "{heard}");
    let level = lee.eval("window.standin.speakerLevel").await?;
    assert_eq!(level.as_f64(), Some(0.15), "the meeting's audio under the interpretation");
    lee.screenshot(&shots.join("plugin-listener-french.png")).await?;

    // The slider sets the meeting's level while French plays.
    set_field(&lee, "original-volume", "40").await?;
    lee.wait_for("window.standin.speakerLevel === 0.4", WAIT).await?;

    // German, where nobody is on air, carries the floor: the same session switches channel (the
    // stream the page plays stays the one it was), and the meeting's level stays where it was set.
    let stream = format!("{}.srcObject.id", tolk("channel-audio"));
    let before = lee.eval(&stream).await?;
    click(&lee, "document.querySelector('[data-tolk=\"choice\"][data-language=\"de\"]')").await?;
    lee.wait_for(
        "document.querySelector('[data-tolk=\"choice\"][data-language=\"de\"]').getAttribute('aria-pressed') === 'true'",
        WAIT,
    )
    .await?;
    lee.wait_for(&format!("{}.dataset.state === 'listening'", tolk("status")), WAIT).await?;
    let german = wait_for_tone(&lee, public, FLOOR_TONE).await?;
    println!("the participant on German: {german}");
    assert!(german["level_db"].as_f64().unwrap_or(-200.0) > -40.0, "{german}");
    assert_eq!(lee.eval(&stream).await?, before, "switching language kept the session");
    assert_eq!(relay.metric("tolk_listeners").await?, 1.0, "one listening session, switched");
    assert_eq!(lee.eval("window.standin.speakerLevel").await?.as_f64(), Some(0.4));

    // "Original" gives the meeting's audio back.
    click(&lee, "document.querySelector('[data-tolk=\"choice\"][data-language=\"original\"]')").await?;
    lee.wait_for("window.standin.speakerLevel === 1", WAIT).await?;
    lee.wait_for(&format!("{}.dataset.state === 'idle'", tolk("status")), WAIT).await?;
    // Its WHEP session ended: nobody listens any more.
    let deadline = tokio::time::Instant::now() + WAIT;
    while relay.metric("tolk_listeners").await? > 0.0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the plugin's listening session outlived Original"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A viewer is offered no way to start or stop it.
    assert_eq!(lee.eval(&format!("!!{}", tolk("moderator"))).await?, Value::Bool(false));
    for browser in [lee, marie_browser, moderator] {
        browser.close().await?;
    }
    host.relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_created_with_tolk_languages_offers_them_without_anyone_clicking() -> anyhow::Result<()> {
    let host = Host::start().await?;
    host.meeting("conference", &[("tolk-languages", "fr,de"), ("tolk-floor-language", "en")]);
    let viewer = Browser::start(None).await?;
    viewer.goto(&host.join("conference", "Vic Viewer", false)?).await?;
    click(&viewer, &actions_bar("Interpretation")).await?;
    for language in ["original", "fr", "de"] {
        viewer
            .wait_for(
                &format!("!!document.querySelector('[data-tolk=\"choice\"][data-language=\"{language}\"]')"),
                WAIT,
            )
            .await?;
    }
    viewer.screenshot(&screenshots()?.join("plugin-listener-menu.png")).await?;
    viewer.close().await?;
    host.relay.stop().await;
    Ok(())
}
