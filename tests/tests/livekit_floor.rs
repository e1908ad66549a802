//! The floor of a BBB meeting whose audio runs on LiveKit (BBB 4.0): the BBB stand-in says the
//! meeting's internal id, the LiveKit stand-in has its room, and three real `livekit-client`s in
//! headless Chromium publish 440, 660 and 880 Hz from fake microphones. Tolk (`TOLK_BBB_AUDIO=auto`)
//! finds the room, joins it hidden, mixes the microphones into the floor, and a Tolk listener hears
//! one speaker at a time, then two at once, then silence without a gap; the meeting's participants
//! never see Tolk. A meeting without a LiveKit room is taken from bbb-webrtc-sfu as before.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tolk_relay::api::FloorState;
use tolk_relay::bbb::BbbConfig;
use tolk_relay::bbb::livekit::{AudioBridge, Bridge};
use tolk_relay::ids::EventId;
use tolk_tests::audio::{dominant_frequency, power_at, tone_wav};
use tolk_tests::bbb::{BbbStandIn, StandInConfig};
use tolk_tests::browser::Browser;
use tolk_tests::client;
use tolk_tests::livekit::LiveKitStandIn;
use tolk_tests::livekit::client::{SignalClient, SubscriberPeer};
use tolk_tests::relay::TestRelay;

const WAIT: Duration = Duration::from_secs(30);
/// What bbb-webrtc-sfu's listen-only mix carries in the stand-in: heard only if Tolk took the
/// wrong bridge.
const SFU_TONE: f64 = 300.0;
const TONES: [f64; 3] = [440.0, 660.0, 880.0];
const TOKEN_TTL: Duration = Duration::from_secs(5);

/// A relay whose BBB server is `bbb` and whose LiveKit is `lk`.
async fn relay_for(bbb: &BbbStandIn, lk: Option<&LiveKitStandIn>) -> anyhow::Result<TestRelay> {
    let mut config = BbbConfig::new(&bbb.api_url(), bbb.secret())?;
    config.poll = Duration::from_millis(200);
    config.keepalive = Duration::from_secs(1);
    config.audio = AudioBridge::Auto;
    config.livekit = match lk {
        Some(lk) => {
            let mut livekit =
                tolk_relay::bbb::livekit::LiveKitConfig::new(&lk.url(), lk.api_key(), lk.api_secret())?;
            // Tokens that expire during the test: a connection outlives its token, and every
            // reconnection mints a fresh one.
            livekit.token_ttl = TOKEN_TTL;
            Some(livekit)
        }
        None => None,
    };
    TestRelay::start_with(1, move |s| s.bbb = Some(config)).await
}

/// A meeting participant in Chromium: joined the room and publishing its fake microphone, muted.
struct Speaker {
    browser: Browser,
    track: String,
    _wav: PathBuf,
}

async fn speaker(lk: &LiveKitStandIn, room: &str, identity: &str, frequency: f64) -> anyhow::Result<Speaker> {
    if !tolk_tests::livekit::page_dir().join("node_modules/livekit-client").exists() {
        anyhow::bail!("tests/web/livekit has no node_modules: run `npm ci` there (./scripts/test does)");
    }
    let wav = std::env::temp_dir().join(format!("tolk-lk-floor-{}-{identity}.wav", std::process::id()));
    std::fs::write(&wav, tone_wav(frequency, 0.5, 120))?;
    let browser = Browser::start(Some(&wav)).await?;
    let track = join_and_publish(&browser, lk, room, identity).await?;
    browser.eval_promise("window.lk.mute(true)").await?;
    Ok(Speaker { browser, track, _wav: wav })
}

/// Open the test page, join `room` as `identity` and publish the microphone; its track's sid.
async fn join_and_publish(
    browser: &Browser,
    lk: &LiveKitStandIn,
    room: &str,
    identity: &str,
) -> anyhow::Result<String> {
    browser.goto(&lk.page_url()).await?;
    browser.wait_for("!!window.lk", WAIT).await?;
    let token = lk.join_token(room, identity);
    let state = browser.eval_promise(&format!("window.lk.join({:?}, {token:?})", lk.url())).await?;
    anyhow::ensure!(state == "connected", "{identity} did not connect: {state}");
    let track = browser.eval_promise("window.lk.publishMicrophone()").await?;
    Ok(track.as_str().unwrap_or_default().to_owned())
}

impl Speaker {
    async fn talk(&self, lk: &LiveKitStandIn, talking: bool) -> anyhow::Result<()> {
        self.browser.eval_promise(&format!("window.lk.mute({})", !talking)).await?;
        let track = self.track.clone();
        lk.wait_until(move |s| s.tracks.get(&track).is_some_and(|t| t.muted != talking), WAIT).await?;
        Ok(())
    }
}

/// The last second the listener heard, after `packets` more packets: dominant frequency and the
/// power of each test tone and of the SFU's, in dB.
async fn hear(listener: &client::Client, packets: u64) -> anyhow::Result<(f64, Vec<f64>)> {
    let since = listener.track(0).packets;
    let stats = listener.wait_packets(0, since + packets, WAIT).await?;
    let last = stats.last_seconds(1.0);
    let db = |f: f64| 10.0 * power_at(last, f).max(1e-20).log10();
    Ok((dominant_frequency(last), TONES.iter().chain([SFU_TONE].iter()).map(|f| db(*f)).collect()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_meeting_is_mixed_into_the_floor() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-lk", SFU_TONE);
    let room = bbb.internal_id("plenary-lk").ok_or_else(|| anyhow::anyhow!("no internal id"))?;
    let lk = LiveKitStandIn::start(tolk_tests::livekit::LiveKitConfig::default()).await?;
    lk.create_room(&room, r#"{"bbb_meetingId":"plenary-lk","bbb_audioBridge":"livekit"}"#);

    let mut speakers: Vec<Speaker> = Vec::new();
    for (identity, frequency) in ["ana", "ben", "cleo"].into_iter().zip(TONES) {
        speakers.push(speaker(&lk, &room, identity, frequency).await?);
    }

    let relay = relay_for(&bbb, Some(&lk)).await?;
    let started_at = std::time::Instant::now();
    let event = relay.bbb_event("plenary-lk", chrono::Duration::hours(1)).await?;
    let id = event.id.as_str();
    let live = relay.floor_until(id, WAIT, |s| s.state == FloorState::Live).await?;
    assert_eq!(live.bridge, Some(Bridge::Livekit), "{live:?}");
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/en")), 1).await?;

    // Tolk is in the room, hidden: the participants do not see it, and BBB's bot never joined.
    let tolk: Vec<_> =
        lk.participants(&room).into_iter().filter(|p| p.identity.starts_with("tolk-floor/")).collect();
    assert_eq!(tolk.len(), 1, "Tolk joined the room once");
    assert_eq!(tolk[0].metadata, r#"{"bbb_system":true}"#);
    let seen = speakers[0].browser.eval("window.lk.participants()").await?;
    assert_eq!(seen, json!(["ben", "cleo"]), "ana sees the others but not Tolk");
    assert!(bbb.stats().joins.is_empty(), "no listen-only bot joined through BBB's API");

    // One speaker at a time: the floor carries that voice alone.
    for (k, frequency) in TONES.iter().enumerate() {
        speakers[k].talk(&lk, true).await?;
        let (heard, db) = hear(&listener, 75).await?;
        println!("{frequency} Hz talking: the listener hears {heard:.1} Hz; tones at {db:.1?} dB");
        assert!((heard - frequency).abs() <= 5.0, "heard {heard} Hz while {frequency} Hz talks");
        for (other, level) in TONES.iter().zip(&db).filter(|(f, _)| *f != frequency) {
            assert!(*level < db[k] - 30.0, "{other} Hz ({level:.1} dB) is silent under {frequency} Hz");
        }
        assert!(db[3] < db[k] - 30.0, "nothing of bbb-webrtc-sfu's mix");
        speakers[k].talk(&lk, false).await?;
    }

    // Two at once: both voices, at the same level.
    speakers[0].talk(&lk, true).await?;
    speakers[2].talk(&lk, true).await?;
    let (_, db) = hear(&listener, 75).await?;
    println!("440 and 880 Hz talking: tones at {db:.1?} dB");
    assert!((db[0] - db[2]).abs() < 6.0, "both voices at about the same level: {db:?}");
    assert!(db[1] < db[0] - 30.0, "660 Hz stays silent: {db:?}");

    // Cleo leaves while talking: ana alone; cleo joins again and is heard again.
    let leaves = lk.stats().leaves;
    speakers[2].browser.eval_promise("window.lk.leave()").await?;
    lk.wait_until(|s| s.leaves > leaves, WAIT).await?;
    assert!(!lk.participants(&room).iter().any(|p| p.identity == "cleo"));
    let (_, db) = hear(&listener, 75).await?;
    println!("cleo left: tones at {db:.1?} dB");
    assert!(db[2] < db[0] - 30.0, "880 Hz gone with cleo: {db:?}");
    speakers[2].track = join_and_publish(&speakers[2].browser, &lk, &room, "cleo").await?;
    let track = speakers[2].track.clone();
    lk.wait_until(move |s| s.tracks.get(&track).is_some_and(|t| t.received > 25), WAIT).await?;
    let (_, db) = hear(&listener, 75).await?;
    println!("cleo rejoined: tones at {db:.1?} dB");
    assert!((db[0] - db[2]).abs() < 6.0, "cleo heard again beside ana: {db:?}");

    // Nobody talking: silence, and no gap (the floor keeps its 50 packets a second).
    speakers[0].talk(&lk, false).await?;
    speakers[2].talk(&lk, false).await?;
    let before = listener.track(0).packets;
    let started = std::time::Instant::now();
    let stats = listener.wait_packets(0, before + 100, WAIT).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = (stats.packets - before) as f64 / elapsed;
    let rms =
        (stats.last_seconds(1.0).iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / (48_000.0f64)).sqrt();
    println!("nobody talking: {rate:.1} packets/s, rms {rms:.5}");
    assert!(rate > 40.0, "the floor keeps sending while nobody talks: {rate:.1} packets/s");
    assert!(rms < 0.01, "silence while nobody talks: rms {rms}");
    assert_eq!(listener.track(0).missing(), 0, "no packet of the floor lost");

    // Latency of the mix: a hidden participant beside Tolk gets each packet when Tolk's floor does;
    // from its hearing ana start talking to Tolk's listener hearing it.
    let (signal, _) =
        SignalClient::connect(&lk.url(), &lk.hidden_token(&room, "latency-probe"), true).await?;
    let probe = SubscriberPeer::start(signal);
    let ana = speakers[0].track.clone();
    probe.wait_until(|t| t.get(&ana).is_some_and(|t| t.packets > 25), WAIT).await?;
    for _ in 0..8 {
        let n = probe.tracks().get(&ana).map_or(0, |t| t.onsets.len());
        speakers[0].talk(&lk, true).await?;
        probe.wait_until(|t| t.get(&ana).is_some_and(|t| t.onsets.len() > n), WAIT).await?;
        hear(&listener, 20).await?;
        speakers[0].talk(&lk, false).await?;
        hear(&listener, 50).await?;
    }
    let sent = probe.tracks().get(&ana).map(|t| t.onsets.clone()).unwrap_or_default();
    let delays = onset_delays(&sent, &listener.track(0));
    let (p50, p95, max) = client::percentiles(delays.clone());
    println!(
        "floor → listener through the mix, from the room's packet to the listener's: {} onsets, p50 {p50:?}, p95 {p95:?}, max {max:?}",
        delays.len()
    );
    assert!(delays.len() >= 4, "onsets heard: {delays:?}");

    // LiveKit drops everyone (the room is closed and opened again at once): long after its first
    // token expired, Tolk joins again with a fresh one, back on LiveKit; the listener stays
    // connected and hears ana again once she is back.
    assert!(started_at.elapsed() > TOKEN_TTL * 2, "the first token has long expired");
    let connections =
        relay.server.watch_floor(&EventId::parse(id)?).map(|w| w.borrow().connections).unwrap_or(0);
    let refusals = lk.stats().refusals;
    lk.delete_room(&room);
    lk.create_room(&room, r#"{"bbb_meetingId":"plenary-lk","bbb_audioBridge":"livekit"}"#);
    let back = relay
        .floor_until(id, WAIT, |s| s.connections > connections && s.bridge == Some(Bridge::Livekit))
        .await?;
    assert_eq!(lk.stats().refusals, refusals, "no token refused: {back:?}");
    speakers[0].track = join_and_publish(&speakers[0].browser, &lk, &room, "ana").await?;
    let track = speakers[0].track.clone();
    lk.wait_until(move |s| s.tracks.get(&track).is_some_and(|t| t.received > 25), WAIT).await?;
    let (heard, _) = hear(&listener, 75).await?;
    println!("after LiveKit dropped everyone: {heard:.1} Hz ({back:?})");
    assert!((heard - TONES[0]).abs() <= 5.0, "heard {heard} Hz");

    // The room is deleted (the meeting's audio moved off LiveKit): Tolk decides again and takes
    // bbb-webrtc-sfu's mix; the listener stays connected and hears it.
    let connections =
        relay.server.watch_floor(&EventId::parse(id)?).map(|w| w.borrow().connections).unwrap_or(0);
    lk.delete_room(&room);
    let moved =
        relay.floor_until(id, WAIT, |s| s.bridge == Some(Bridge::Sfu) && s.state == FloorState::Live).await?;
    assert!(moved.connections > connections, "{moved:?}");
    let (heard, _) = hear(&listener, 100).await?;
    println!("after the room was deleted: {heard:.1} Hz through bbb-webrtc-sfu ({moved:?})");
    assert!((heard - SFU_TONE).abs() <= 5.0, "heard {heard} Hz");
    assert!(listener.connected.load(std::sync::atomic::Ordering::Relaxed), "the listener stayed");

    probe.stop().await?;
    for speaker in speakers {
        speaker.browser.close().await?;
    }
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

/// For each onset the room's probe heard, the delay to the listener's next onset (its floor rising
/// above -50 dBFS after a packet below -60) before the probe's following one.
fn onset_delays(sent: &[std::time::Instant], heard: &client::TrackStats) -> Vec<Duration> {
    let mut onsets = Vec::new();
    let mut was_silent = false;
    for (i, (at, offset)) in heard.arrivals.iter().enumerate() {
        let end = heard.arrivals.get(i + 1).map_or(heard.samples.len(), |(_, o)| *o);
        let Some(frame) = heard.samples.get(*offset..end) else { continue };
        let level = tolk_tests::audio::level_db(frame);
        if was_silent && level > -50.0 {
            onsets.push(*at);
        }
        was_silent = level < -60.0;
    }
    sent.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let next = sent.get(i + 1);
            let heard = onsets.iter().find(|at| *at >= s && next.is_none_or(|n| *at < n))?;
            Some(*heard - *s)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_livekit_credentials_are_a_clear_floor_error() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-key", SFU_TONE);
    let room = bbb.internal_id("plenary-key").ok_or_else(|| anyhow::anyhow!("no internal id"))?;
    let lk = LiveKitStandIn::start(tolk_tests::livekit::LiveKitConfig::default()).await?;
    lk.create_room(&room, "{}");
    for audio in [AudioBridge::Auto, AudioBridge::LiveKit] {
        let mut config = BbbConfig::new(&bbb.api_url(), bbb.secret())?;
        config.poll = Duration::from_millis(200);
        config.audio = audio;
        config.livekit = Some(tolk_relay::bbb::livekit::LiveKitConfig::new(
            &lk.url(),
            lk.api_key(),
            "not-the-livekit-secret",
        )?);
        let relay = TestRelay::start_with(1, move |s| s.bbb = Some(config)).await?;
        let event = relay.bbb_event("plenary-key", chrono::Duration::hours(1)).await?;
        let status = relay.floor_until(event.id.as_str(), WAIT, |s| s.state == FloorState::Error).await?;
        let detail = status.detail.unwrap_or_default();
        println!("{audio:?} with a wrong LiveKit secret: {detail}");
        assert!(detail.contains("LiveKit refused"), "{detail}");
        assert!(
            detail.contains("signature is invalid") || detail.contains("TOLK_LIVEKIT_SECRET"),
            "{detail}"
        );
        assert!(lk.participants(&room).is_empty(), "nobody got in");
        relay.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_without_a_livekit_room_is_taken_from_bbb_webrtc_sfu() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("plenary-sfu", SFU_TONE);
    let lk = LiveKitStandIn::start(tolk_tests::livekit::LiveKitConfig::default()).await?;
    // A second meeting has a LiveKit room for its cameras only (BBB 3.0's cameraBridge=livekit).
    bbb.create_meeting("plenary-cameras", SFU_TONE);
    let cameras = bbb.internal_id("plenary-cameras").ok_or_else(|| anyhow::anyhow!("no internal id"))?;
    lk.create_room(&cameras, r#"{"bbb_meetingId":"plenary-cameras","bbb_audioBridge":"freeswitch"}"#);
    let relay = relay_for(&bbb, Some(&lk)).await?;
    let with_cameras = relay.bbb_event("plenary-cameras", chrono::Duration::hours(1)).await?;
    let live = relay.floor_until(with_cameras.id.as_str(), WAIT, |s| s.state == FloorState::Live).await?;
    assert_eq!(live.bridge, Some(Bridge::Sfu), "a room without the audio is not the floor: {live:?}");
    assert!(lk.participants(&cameras).is_empty(), "Tolk did not join the cameras' room");
    let event = relay.bbb_event("plenary-sfu", chrono::Duration::hours(1)).await?;
    let live = relay.floor_until(event.id.as_str(), WAIT, |s| s.state == FloorState::Live).await?;
    assert_eq!(live.bridge, Some(Bridge::Sfu), "{live:?}");
    let listener =
        client::listen(&relay.http, &relay.url(&format!("/whep/{}/en", event.id.as_str())), 1).await?;
    let (heard, _) = hear(&listener, 100).await?;
    assert!((heard - SFU_TONE).abs() <= 5.0, "heard {heard} Hz");
    assert_eq!(lk.rooms().len(), 1, "asking about the room did not create it");
    listener.stop()?;
    relay.stop().await;
    Ok(())
}
