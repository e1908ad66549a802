//! How early the booth page hears the floor: a plain Opus RTP floor carrying 1 kHz bursts (100 ms
//! of tone every 250 ms) → Tolk → the booth page in a real browser, each burst's onset timed in
//! the page on the received input track (`window.tolkBooth.recordOnsets()`, measure.js: the
//! analyser's newest samples read every 5 ms, dated on `performance.timeOrigin +
//! performance.now()`) against the moment the test sent the burst's first packet (`SystemTime`;
//! both clocks are this machine's). Opus's own delay (6.5 ms) is in the figures.
//!
//! The booth page asks its receivers for the lowest playout delay (`jitterBufferTarget = 0`,
//! `playoutDelayHint = 0`); `?playout=default` leaves the browser's own (docs/browsers.md). Both
//! are measured in the same run, then the listener page for comparison, and printed per second
//! since the bursts began (p50 / p95 / max), for the first second and for the steady state
//! (from 8 s). A report, like a benchmark: only functional things are asserted (the bursts are
//! heard, the setting is taken). The bursts start only once the page is connected, after seconds
//! of silence: the first onset the page hears after more than [`ANCHOR_GAP_MS`] of quiet is the
//! first burst (the others follow 150 ms of quiet); later onsets are matched to the burst nearest
//! the previous delay. `TOLK_BOOTH_DELAY_ROUNDS` repeats the comparison (default 1).
//!
//! The body takes the browser as a parameter ([`delay_report`]), so it can run in any browser
//! `tolk_tests::browser::Browser` drives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tolk_tests::audio::{FRAME, RATE, Tone};
use tolk_tests::browser::{Browser, Kind};
use tolk_tests::client::{RtpSender, percentiles};
use tolk_tests::relay::{TestRelay, booth_url, rtp_url};

/// Frames (20 ms) from one burst's onset to the next, and how many of them carry the tone.
const PERIOD: u64 = 12;
const ON: u64 = 5;
/// Quiet before an onset that only the first burst has (the others: 150 ms).
const ANCHOR_GAP_MS: f64 = 200.0;
/// How long each page is measured.
const MEASURE: Duration = Duration::from_secs(12);
/// From here on the delay counts as steady.
const STEADY_FROM_S: usize = 8;

/// The RTP floor: encoded silence until armed, then bursts; the send time of each onset.
struct BurstFloor {
    sender: RtpSender,
    armed: Arc<AtomicBool>,
    onsets: Arc<Mutex<Vec<SystemTime>>>,
}

impl BurstFloor {
    fn start(relay_rtp: &str) -> anyhow::Result<Self> {
        let to = relay_rtp.trim_start_matches("rtp://").parse()?;
        let armed = Arc::new(AtomicBool::new(false));
        let onsets = Arc::new(Mutex::new(Vec::new()));
        let (flag, sent) = (armed.clone(), onsets.clone());
        let mut tone = Tone::new(1000.0, 0.5);
        let mut encoder = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Audio)?;
        let mut buf = vec![0u8; 1500];
        let mut frame = 0u64; // frames since armed
        let sender = RtpSender::start_mapped(to, 1000.0, move |_| {
            let pcm = if flag.load(Ordering::Relaxed) {
                let k = frame;
                frame += 1;
                if k.is_multiple_of(PERIOD) {
                    sent.lock().unwrap_or_else(PoisonError::into_inner).push(SystemTime::now());
                }
                if k % PERIOD < ON { tone.frame() } else { [0.0; FRAME] }
            } else {
                frame = 0;
                [0.0; FRAME]
            };
            encoder.encode_float(&pcm, &mut buf).map(|n| buf[..n].to_vec()).unwrap_or_default()
        })?;
        Ok(Self { sender, armed, onsets })
    }

    /// Bursts from now on; the onsets sent so far are forgotten.
    fn arm(&self) {
        self.onsets.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.armed.store(true, Ordering::Relaxed);
    }

    /// Silence again; the send times (ms since 1970) of the onsets sent since `arm`.
    fn disarm(&self) -> Vec<f64> {
        self.armed.store(false, Ordering::Relaxed);
        self.onsets.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|t| epoch_ms(*t)).collect()
    }
}

fn epoch_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// One page measured: which, the browser's output latency and jitter buffer reports, and (seconds since the first burst
/// was sent, delay) for every onset heard.
struct Run {
    what: String,
    latency: Value,
    jitter_buffer: Value,
    delays: Vec<(usize, Duration)>,
    sent: usize,
}

/// Pairs the onsets heard (times, and the quiet before each) with those sent: the first after a
/// long quiet is the first sent (nothing was sent before the page was listening); each later one
/// with the burst nearest the previous delay.
fn match_onsets(sent: &[f64], heard: &[f64], gaps: &[f64]) -> Vec<(usize, Duration)> {
    let Some(anchor) = gaps.iter().position(|&g| g >= ANCHOR_GAP_MS) else {
        println!("no onset after {ANCHOR_GAP_MS} ms of quiet: the first burst was not heard");
        return Vec::new();
    };
    if anchor > 0 {
        println!("{anchor} onsets heard before the first burst, left out");
    }
    let heard = &heard[anchor..];
    let (Some(&first_sent), Some(&first_heard)) = (sent.first(), heard.first()) else {
        return Vec::new();
    };
    let mut delay = first_heard - first_sent;
    let mut next = 1;
    let mut out = vec![(0, Duration::from_secs_f64(delay.max(0.0) / 1000.0))];
    for &t in &heard[1..] {
        let Some(j) = (next..sent.len())
            .filter(|&j| sent[j] <= t)
            .min_by(|&a, &b| (t - sent[a] - delay).abs().total_cmp(&(t - sent[b] - delay).abs()))
        else {
            continue;
        };
        delay = t - sent[j];
        next = j + 1;
        let second = ((sent[j] - first_sent) / 1000.0) as usize;
        out.push((second, Duration::from_secs_f64(delay.max(0.0) / 1000.0)));
    }
    out
}

/// Opens `url` (a page whose test hook is `hook`), waits until `ready`, records the onsets while
/// the floor sends bursts for [`MEASURE`].
async fn measure(
    browser: &Browser,
    floor: &BurstFloor,
    what: &str,
    url: &str,
    hook: &str,
    ready: &str,
) -> anyhow::Result<Run> {
    // From a blank page: Firefox's WebDriver may answer a navigation between two booth links
    // before the new page has replaced the old one.
    browser.goto("about:blank").await?;
    browser.goto(url).await?;
    browser.wait_for(&format!("window.{hook} && {ready}"), Duration::from_secs(20)).await?;
    browser.eval(&format!("window.{hook}.recordOnsets()")).await?;
    floor.arm();
    tokio::time::sleep(MEASURE).await; // the measurement itself
    let sent = floor.disarm();
    // The last bursts are still on their way: until all are heard, or a second.
    let all = format!("window.{hook}.onsetCount() >= {}", sent.len());
    if browser.wait_for(&all, Duration::from_secs(1)).await.is_err() {
        println!("{what}: not every burst heard within a second of the last");
    }
    let result = browser.eval_promise(&format!("window.{hook}.onsets()")).await?;
    let numbers = |key: &str| -> Vec<f64> {
        result[key].as_array().into_iter().flatten().filter_map(Value::as_f64).collect()
    };
    Ok(Run {
        what: what.to_owned(),
        latency: result["latency"].clone(),
        jitter_buffer: result["jitter_buffer"].clone(),
        delays: match_onsets(&sent, &numbers("times"), &numbers("gaps")),
        sent: sent.len(),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn stats(delays: impl Iterator<Item = Duration>) -> String {
    let values: Vec<Duration> = delays.collect();
    if values.is_empty() {
        return "–".to_owned();
    }
    let n = values.len();
    let (p50, p95, max) = percentiles(values);
    format!("p50 {:>4} p95 {:>4} max {:>4} ms (n {n})", ms(p50), ms(p95), ms(max))
}

fn report(run: &Run) {
    println!(
        "\n{}: {} of {} bursts heard; the page's audio output adds {}; jitter buffer {}",
        run.what,
        run.delays.len(),
        run.sent,
        run.latency,
        run.jitter_buffer
    );
    let seconds = run.delays.iter().map(|(s, _)| *s).max().unwrap_or(0);
    for second in 0..=seconds {
        let bucket = run.delays.iter().filter(|(s, _)| *s == second).map(|(_, d)| *d);
        println!("  {second:>2}–{:<2} s  {}", second + 1, stats(bucket));
    }
    let after = run.delays.iter().filter(|(s, _)| *s >= 1).map(|(_, d)| *d).max();
    println!("  first second     {}", stats(run.delays.iter().filter(|(s, _)| *s == 0).map(|(_, d)| *d)));
    println!(
        "  steady (≥ {STEADY_FROM_S} s)   {}",
        stats(run.delays.iter().filter(|(s, _)| *s >= STEADY_FROM_S).map(|(_, d)| *d))
    );
    println!("  max after the first second: {} ms", after.map(ms).unwrap_or_else(|| "–".into()));
}

/// At least 80 % of the bursts sent were heard.
fn assert_heard(run: &Run) {
    assert!(
        run.sent > 0 && run.delays.len() * 10 >= run.sent * 8,
        "{}: only {} of {} bursts heard",
        run.what,
        run.delays.len(),
        run.sent
    );
}

/// The comparison in `browser`: the booth page with the browser's own playout delay, with the
/// lowest, and the listener page; each printed. Asserts that the bursts were heard.
pub async fn delay_report(browser: &Browser, relay: &TestRelay) -> anyhow::Result<()> {
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let floor = BurstFloor::start(rtp_url(&event)?)?;
    let ana = relay.booth_link(id, "Ana", &["fr"]).await?;
    let booth = booth_url(&ana)?;
    let rounds: usize =
        std::env::var("TOLK_BOOTH_DELAY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let connected = "window.tolkBooth.connection === 'connected' && window.tolkBooth.playout !== null";
    let mut runs = Vec::new();
    for _ in 0..rounds {
        for (what, query) in [
            ("booth page, browser's own playout delay (?playout=default)", "?autoplay=1&playout=default#"),
            ("booth page, lowest playout delay", "?autoplay=1#"),
        ] {
            let run = measure(browser, &floor, what, &booth.replacen('#', query, 1), "tolkBooth", connected)
                .await?;
            let playout = browser.eval("window.tolkBooth.playout").await?;
            println!("{what}: receivers took {playout}");
            let supported = browser.eval("'jitterBufferTarget' in RTCRtpReceiver.prototype").await? == true;
            let asked = playout.as_array().is_some_and(|p| p.contains(&"jitterBufferTarget".into()));
            assert_eq!(
                asked,
                supported && !query.contains("playout=default"),
                "the booth page asks for the lowest playout delay where the browser can, unless \
                 ?playout=default: {playout}"
            );
            runs.push(run);
        }
    }
    runs.push(
        measure(
            browser,
            &floor,
            "listener page (floor channel)",
            &relay.url(&format!("/e/{id}?lang=en&autoplay=1")),
            "tolkListener",
            "window.tolkListener.state === 'listening'",
        )
        .await?,
    );
    for run in &runs {
        report(run);
    }
    for run in &runs {
        assert_heard(run);
    }
    floor.sender.stop()?;
    Ok(())
}

/// A report, in each browser, in the SQLite stage only (the store plays no part in it).
async fn the_booth_page_hears_the_floor_early(kind: Kind) -> anyhow::Result<()> {
    if std::env::var_os("TOLK_TEST_DATABASE_URL").is_some() {
        eprintln!("skipped: the booth delay report runs in the SQLite stage only");
        return Ok(());
    }
    let relay = TestRelay::start(1).await?;
    let browser = Browser::start_in(kind, None).await?;
    let result = delay_report(&browser, &relay).await;
    browser.close().await?;
    relay.stop().await;
    result
}

tolk_tests::in_each_browser!(the_booth_page_hears_the_floor_early);

/// Firefox as it comes (audible autoplay blocked: `media.autoplay.default = 1`) lets a page's
/// `AudioContext` run without a click (it blocks media elements, not WebAudio), so the booth page
/// opened as an interpreter opens it (no `?autoplay=1`) plays at once and never shows "Enable
/// sound" — not even while Firefox opens its audio device (1–1.8 s, during which the context is
/// `suspended`: the page used to flash the prompt then). Its delay is reported like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_as_it_comes_plays_the_booth_page_without_a_click() -> anyhow::Result<()> {
    if let Some(reason) = tolk_tests::firefox::skip_reason() {
        eprintln!("skipped in Firefox: {reason}");
        return Ok(());
    }
    let relay = TestRelay::start(1).await?;
    let options = tolk_tests::firefox::Options::default().autoplay(false);
    let browser = Browser::firefox_with(&options, None).await?;
    let result = without_a_click(&browser, &relay).await;
    browser.close().await?;
    relay.stop().await;
    result
}

async fn without_a_click(browser: &Browser, relay: &TestRelay) -> anyhow::Result<()> {
    let event = relay.event_now(&["fr"], "rtp").await?;
    let floor = BurstFloor::start(rtp_url(&event)?)?;
    let ana = relay.booth_link(event.id.as_str(), "Ana", &["fr"]).await?;
    let run = measure(
        browser,
        &floor,
        "booth page opened as an interpreter opens it (no click, Firefox's own autoplay policy)",
        booth_url(&ana)?,
        "tolkBooth",
        "window.tolkBooth.connection === 'connected'",
    )
    .await?;
    report(&run);
    let prompts = browser.eval("window.tolkBooth.soundPrompts").await?;
    assert_eq!(prompts, 0, "the booth page asked for a click to enable sound");
    assert_heard(&run);
    floor.sender.stop()?;
    Ok(())
}
