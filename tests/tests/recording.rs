//! Recording every channel, end to end over real WebRTC: a floor of 440 Hz bursts, Ana (880 Hz)
//! then Ben (660 Hz) on air in `fr`, nobody in `de`. The files are downloaded through the API and
//! decoded by ffmpeg: the bursts are where they were sent on the shared time base, the handover
//! is seamless, the floor's payloads are the publisher's byte for byte; an interpreter without
//! consent is silence; a full disk stops the recording, never the listeners.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tolk_relay::api::{BoothState, RecordingFileView, RecordingState, RecordingStatusView, RecordingsView};
use tolk_tests::audio::{OpusTone, RATE, level_db, tone_level_db};
use tolk_tests::client::{self, Client, fingerprint};
use tolk_tests::recording::{decode, near, ogg_packets, onsets, tenths};
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, floor_token};

const FLOOR: f64 = 440.0;
const ANA: f64 = 880.0;
const BEN: f64 = 660.0;
/// The floor's bursts: 10 frames on, 10 off (an onset every 400 ms).
const GATE: u64 = 10;

/// The clocks of the test and the relay (one process): an instant as wall time.
struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    fn now() -> Self {
        Self { instant: Instant::now(), wall: Utc::now() }
    }

    /// Where `at` falls in a file whose position 0 is `started_at`, in samples (may be negative).
    fn position(&self, at: Instant, started_at: DateTime<Utc>) -> f64 {
        let since = at.saturating_duration_since(self.instant).as_secs_f64()
            - self.instant.saturating_duration_since(at).as_secs_f64();
        let offset = (self.wall - started_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        (since + offset) * f64::from(RATE)
    }
}

async fn event_recording(
    relay: &TestRelay,
    recording: Value,
) -> anyhow::Result<(String, tolk_relay::api::EventView)> {
    let now = Utc::now();
    let event = relay
        .create_event(json!({
            "title": "Recorded", "floor_language": "en", "languages": ["fr", "de"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 100, "floor": {"kind": "whip"}, "recording": recording,
        }))
        .await?;
    Ok((event.id.as_str().to_owned(), event))
}

async fn status(relay: &TestRelay, id: &str) -> anyhow::Result<RecordingStatusView> {
    relay.admin_get(&format!("/api/v1/events/{id}/recording")).await
}

/// Wait until the event's recording is (or is not) being written.
async fn until_recording(
    relay: &TestRelay,
    id: &str,
    recording: bool,
) -> anyhow::Result<RecordingStatusView> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = status(relay, id).await?;
        if now.recording == recording {
            return Ok(now);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "recording is still {} after 10 s: {now:?}",
            now.recording
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn switch(relay: &TestRelay, id: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let response = relay
        .http
        .post(relay.url(&format!("/api/v1/events/{id}/recording")))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn booth_call(relay: &TestRelay, token: &str, path: &str, body: Value) -> anyhow::Result<BoothState> {
    let response = relay.http.post(relay.url(path)).bearer_auth(token).json(&body).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status == StatusCode::OK, "{path} answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

async fn link(relay: &TestRelay, id: &str, name: &str, consent: bool) -> anyhow::Result<String> {
    let response = relay
        .http
        .post(relay.url(&format!("/api/v1/events/{id}/interpreters")))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name, "languages": ["fr"], "recording_consent": consent}))
        .send()
        .await?;
    anyhow::ensure!(response.status() == StatusCode::CREATED, "booth link: {}", response.status());
    let link: tolk_relay::api::InterpreterView = response.json().await?;
    assert_eq!(link.recording_consent, consent);
    Ok(booth_token(&link)?.to_owned())
}

/// The event's files, by language, downloaded into `dir`.
async fn download(
    relay: &TestRelay,
    id: &str,
    dir: &Path,
) -> anyhow::Result<Vec<(RecordingFileView, PathBuf)>> {
    let listed: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
    let mut files = Vec::new();
    for file in listed.recordings {
        let bytes = relay.http.get(relay.url(&file.url)).bearer_auth(ADMIN).send().await?;
        anyhow::ensure!(bytes.status() == StatusCode::OK, "download {}: {}", file.url, bytes.status());
        assert_eq!(bytes.headers()["content-type"], "audio/ogg; codecs=opus");
        let path = dir.join(format!("{}-{}.opus", file.part, file.language));
        std::fs::write(&path, bytes.bytes().await?)?;
        files.push((file, path));
    }
    Ok(files)
}

fn file_of<'a>(
    files: &'a [(RecordingFileView, PathBuf)],
    language: &str,
) -> anyhow::Result<&'a (RecordingFileView, PathBuf)> {
    files.iter().find(|(f, _)| f.language.as_str() == language).with_context(|| format!("no {language} file"))
}

/// Where the floor's bursts were spoken, in samples of the file's time base, during the file:
/// on the publisher's media clock (frame k at its start + 20 ms × k, the start taken from its
/// least delayed frame, as the recorder anchors a line), not at the instants its thread happened
/// to send them (a busy test thread sends some frames late).
fn sent_onsets(floor: &Client, clock: &Clock, started_at: DateTime<Utc>, length: usize) -> Vec<f64> {
    let frames = floor.frames_sent.lock().map(|f| f.clone()).unwrap_or_default();
    let frame = Duration::from_millis(20);
    let Some(start) = frames.iter().enumerate().filter_map(|(k, at)| at.checked_sub(frame * k as u32)).min()
    else {
        return Vec::new();
    };
    (0..frames.len())
        .filter(|k| (*k as u64).is_multiple_of(2 * GATE))
        .map(|k| clock.position(start + frame * k as u32, started_at))
        .filter(|p| *p > 4800.0 && *p < length as f64 - 4800.0)
        .collect()
}

/// Each onset heard in `samples` matches one sent, within 20 ms; returns the largest error (ms).
fn onsets_match(samples: &[f32], sent: &[f64], what: &str) -> anyhow::Result<f64> {
    let heard = onsets(samples, 0.02, 0.15, 2400);
    let mut worst: f64 = 0.0;
    let mut matched = 0;
    let mut signed = Vec::new();
    for s in sent {
        let Some(h) = heard.iter().min_by_key(|h| (**h as f64 - s).abs() as u64) else { continue };
        let error_ms = (*h as f64 - s) / 48.0;
        if error_ms.abs() < 100.0 {
            signed.push(error_ms.round() as i64);
            matched += 1;
            worst = worst.max(error_ms.abs());
        }
    }
    anyhow::ensure!(
        matched + 1 >= sent.len() && matched >= 3,
        "{what}: {matched} of {} bursts found ({heard:?})",
        sent.len()
    );
    println!("{what}: burst heard minus sent (ms): {signed:?}");
    anyhow::ensure!(worst <= 20.0, "{what}: a burst is {worst:.1} ms away from where it was sent");
    Ok(worst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_is_recorded_on_one_time_base_with_the_floor_bit_exact() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let (id, event) = event_recording(&relay, json!({"channels": "all"})).await?;
    let ana = link(&relay, &id, "Ana", true).await?;
    let ben = link(&relay, &id, "Ben", true).await?;
    let clock = Clock::now();
    let floor = client::publish_tone(
        &relay.http,
        event.floor.whip_url.as_str(),
        floor_token(&event)?,
        OpusTone::new(FLOOR, 0.5)?.gated(GATE),
    )
    .await?;
    let whip_booth = relay.url("/whip/booth");
    let a = client::booth(&relay.http, &whip_booth, &ana, ANA).await?;
    let b = client::booth(&relay.http, &whip_booth, &ben, BEN).await?;
    let fr = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    fr.wait_packets(0, 25, Duration::from_secs(15)).await?;

    // Planned at creation, for an event that has started: it records within a second.
    let started = until_recording(&relay, &id, true).await?;
    assert_eq!(started.part, Some(1));
    let started_at = started.started_at.context("a start")?;
    let state: BoothState =
        relay.http.get(relay.url("/api/v1/booth/state")).bearer_auth(&ana).send().await?.json().await?;
    assert!(state.recording.consent, "Ana agreed when her link was issued");
    let recorded: Vec<&str> = state.recording.channels.iter().map(|l| l.as_str()).collect();
    assert_eq!(recorded, ["en", "fr", "de"], "the booth page shows REC for fr");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    booth_call(&relay, &ana, "/api/v1/booth/on-air", json!({"language": "fr"})).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let handover_asked = Instant::now();
    booth_call(&relay, &ben, "/api/v1/booth/on-air", json!({"language": "fr"})).await?;
    let handover_answered = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, body) = switch(&relay, &id, json!({"on": false})).await?;
    anyhow::ensure!(code == StatusCode::OK, "switch off: {code} {body}");
    let stopped: RecordingStatusView = serde_json::from_value(body)?;
    assert!(!stopped.on && !stopped.recording);

    let dir = tempfile::tempdir()?;
    let files = download(&relay, &id, dir.path()).await?;
    assert_eq!(files.len(), 3, "floor, fr and de");
    let (en_file, en_path) = file_of(&files, "en")?;
    let (fr_file, fr_path) = file_of(&files, "fr")?;
    let (_, de_path) = file_of(&files, "de")?;
    assert_eq!(en_file.channel, "floor");
    assert!(files.iter().all(|(f, _)| f.state == RecordingState::Done && f.started_at == started_at));
    println!("fr on air: {:?}", fr_file.on_air);
    let names: Vec<(&str, bool)> = fr_file.on_air.iter().map(|s| (s.name.as_str(), s.consent)).collect();
    assert_eq!(names, [("Ana", true), ("Ben", true)], "who was on air in fr");

    let en = decode(en_path)?;
    let fr_audio = decode(fr_path)?;
    let de = decode(de_path)?;
    // Durations agree within one frame.
    let longest = en.len().max(fr_audio.len()).max(de.len());
    let shortest = en.len().min(fr_audio.len()).min(de.len());
    println!("durations: en {} fr {} de {} samples", en.len(), fr_audio.len(), de.len());
    assert!(longest - shortest <= 960, "durations differ by {} samples", longest - shortest);
    assert!((en_file.duration_ms - en.len() as i64 / 48).abs() <= 40, "the listing's duration is the file's");

    // The floor's bursts are where they were sent, in the floor file and in de (nobody on air).
    let sent = sent_onsets(&floor, &clock, started_at, en.len());
    let en_worst = onsets_match(&en, &sent, "en")?;
    let de_worst = onsets_match(&de, &sent, "de")?;
    let ana_from = fr_file.on_air[0].from_ms as usize * 48;
    let ben_from = fr_file.on_air[1].from_ms as usize * 48;
    let fr_worst = onsets_match(
        &fr_audio[..ana_from],
        &sent.iter().copied().filter(|p| *p < ana_from as f64 - 4800.0).collect::<Vec<_>>(),
        "fr before Ana",
    )?;
    println!("floor bursts vs sent, worst: en {en_worst:.1} ms, de {de_worst:.1} ms, fr {fr_worst:.1} ms");

    // fr: the floor, then Ana, then Ben, with no silence at the handover.
    let blocks = tenths(&fr_audio);
    let ana_block = ana_from / 480;
    let ben_block = ben_from / 480;
    assert!(blocks[ana_block + 5..ben_block - 5].iter().all(|f| near(*f, ANA)), "Ana in fr");
    let stop_block = blocks.len() - 30;
    assert!(blocks[ben_block + 5..stop_block].iter().all(|f| near(*f, BEN)), "Ben in fr");
    let around = &fr_audio[ben_from - 9600..ben_from + 9600];
    let levels: Vec<i64> = around.chunks_exact(240).map(|c| level_db(c) as i64).collect();
    println!("5 ms levels around the handover: {levels:?}");
    let quietest = around.chunks_exact(240).map(level_db).fold(f64::MAX, f64::min);
    // Seamless means no silence between the two voices. What remains is the decoder's: CELT codes
    // each band's energy as a change from the previous frame's, and Ben's first packets were coded
    // against his own previous frames, not Ana's, so the band of his tone rises over a few frames
    // (CI saw one block at -22 dB, back at the voice's level within 70 ms). A pass-through splice
    // cannot avoid that without re-encoding; a gap would be below -60 dB.
    assert!(quietest > -40.0, "the handover is seamless in the file: a 5 ms block at {quietest:.1} dB");
    let switch_at = blocks.iter().position(|f| near(*f, BEN)).context("Ben is heard")? as f64 * 480.0;
    let (asked, answered) =
        (clock.position(handover_asked, started_at), clock.position(handover_answered, started_at));
    println!(
        "handover in the file at {:.1} ms; asked at {:.1} ms, answered at {:.1} ms",
        switch_at / 48.0,
        asked / 48.0,
        answered / 48.0
    );
    // Ben is heard from his next packet after the switch (within a frame), give or take the
    // 10 ms blocks of the analysis and the decoder's crossfade.
    assert!(
        switch_at >= asked - 960.0 && switch_at <= answered + 3.0 * 960.0,
        "Ben starts when he took the air"
    );

    // Pass-through: the floor file's payloads are the publisher's, byte for byte.
    let packets = ogg_packets(&std::fs::read(en_path)?)?;
    let sent_prints = floor.sent.lock().map(|s| s.clone()).unwrap_or_default();
    let from_publisher = packets.iter().filter(|p| sent_prints.contains_key(&fingerprint(p))).count();
    let other: Vec<usize> =
        packets.iter().filter(|p| !sent_prints.contains_key(&fingerprint(p))).map(Vec::len).collect();
    println!(
        "floor file: {} packets, {from_publisher} the publisher's, {} silence fill",
        packets.len(),
        other.len()
    );
    assert!(other.iter().all(|len| *len <= 8), "every other packet is a silence fill: {other:?}");
    let spoken = (en.len() as f64 - clock.position(floor.posted_at, started_at).max(0.0)) / 960.0;
    assert!(
        from_publisher as f64 >= spoken - 15.0,
        "{from_publisher} of ~{spoken:.0} frames are the publisher's"
    );

    for c in [floor, a, b, fr] {
        c.stop()?;
    }
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_consent_the_interpreter_is_silence_in_the_file_and_heard_once_they_agree()
-> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let (id, event) = event_recording(&relay, json!({"channels": ["fr"]})).await?;
    let ana = link(&relay, &id, "Ana", false).await?;
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let a = client::booth(&relay.http, &relay.url("/whip/booth"), &ana, ANA).await?;
    let fr = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    fr.wait_packets(0, 25, Duration::from_secs(15)).await?;
    until_recording(&relay, &id, true).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let state = booth_call(&relay, &ana, "/api/v1/booth/on-air", json!({"language": "fr"})).await?;
    assert!(!state.recording.consent);
    assert_eq!(state.recording.channels.iter().map(|l| l.as_str()).collect::<Vec<_>>(), ["fr"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Listeners hear her all along; only the file holds silence.
    let heard = fr.track(0);
    assert!(tone_level_db(heard.last_seconds(0.5), ANA) > -20.0, "listeners hear Ana");
    let state = booth_call(&relay, &ana, "/api/v1/booth/consent", json!({"recording_consent": true})).await?;
    assert!(state.recording.consent);
    tokio::time::sleep(Duration::from_secs(2)).await;
    switch(&relay, &id, json!({"on": false})).await?;

    let dir = tempfile::tempdir()?;
    let files = download(&relay, &id, dir.path()).await?;
    assert_eq!(files.len(), 1, "only fr is recorded");
    let (file, path) = file_of(&files, "fr")?;
    let stretches: Vec<(bool, i64, Option<i64>)> =
        file.on_air.iter().map(|s| (s.consent, s.from_ms, s.to_ms)).collect();
    println!("fr stretches: {stretches:?}");
    assert_eq!(stretches.len(), 2, "without consent, then with");
    assert!(!stretches[0].0 && stretches[1].0);
    let audio = decode(path)?;
    let (silent_from, silent_to) =
        (stretches[0].1 as usize * 48, stretches[0].2.context("closed")? as usize * 48);
    let withheld = &audio[silent_from + 960..silent_to - 960];
    assert!(level_db(withheld) < -60.0, "Ana without consent is silence: {:.1} dB", level_db(withheld));
    let agreed = &audio[silent_to + 1920..stretches[1].2.context("closed")? as usize * 48 - 960];
    assert!(tone_level_db(agreed, ANA) > -15.0, "Ana with consent is in the file");
    let before = &audio[4800..silent_from - 960];
    assert!(tone_level_db(before, FLOOR) > -15.0, "the floor before she went on air");
    // The usage report says what the recordings hold of her, and what they held silent.
    let usage: tolk_relay::api::UsageReport = relay.admin_get(&format!("/api/v1/events/{id}/usage")).await?;
    let recorded = usage.recorded.first().context("Ana in the report's recorded stretches")?;
    println!("usage: {recorded:?}");
    assert_eq!(recorded.name, "Ana");
    assert!(
        (recorded.withheld_minutes * 60.0 - 2.0).abs() < 0.3
            && (recorded.recorded_minutes * 60.0 - 2.0).abs() < 0.3
    );

    for c in [floor, a, fr] {
        c.stop()?;
    }
    relay.stop().await;
    Ok(())
}

/// A small file system the test makes (tmpfs), nearly full; unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn new(free_kb: u64) -> anyhow::Result<Option<Self>> {
        let dir = std::env::temp_dir().join(format!("tolk-disk-{}", tolk_relay::ids::random_hex(6)));
        std::fs::create_dir_all(&dir)?;
        let size = free_kb + 256;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}k"), "tolk-test"])
            .arg(&dir)
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            return Ok(None);
        }
        std::fs::write(dir.join("filler"), vec![0u8; 256 * 1024])?;
        Ok(Some(Self(dir)))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_stops_the_recording_and_never_the_listeners() -> anyhow::Result<()> {
    let Some(disk) = SmallDisk::new(48)? else {
        bail!("this test mounts a tmpfs: run it as root (CI does)");
    };
    let dir = disk.0.join("recordings");
    let relay = TestRelay::start_with(1, |s| {
        s.recording.dir = dir.clone();
        s.recording.min_free_bytes = 0;
    })
    .await?;
    let (id, event) = event_recording(&relay, json!({"channels": "all"})).await?;
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/de")), 1).await?;
    listener.wait_packets(0, 10, Duration::from_secs(15)).await?;
    until_recording(&relay, &id, true).await?;

    // Three channels of ~8 kB/s fill 48 kB in seconds.
    let failed = until_recording(&relay, &id, false).await?;
    let at = Instant::now();
    println!("stopped: {failed:?}");
    assert!(!failed.on, "switched off: it does not start again by itself");
    assert_eq!(failed.problem.as_deref(), Some("the disk is full"));
    relay.metric_until("tolk_recording_failures_total", |v| v >= 1.0).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let listed: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
        if listed.recordings.iter().all(|f| f.state == RecordingState::Failed) {
            break listed;
        }
        anyhow::ensure!(Instant::now() < deadline, "not every file failed: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed.recordings.len(), 3);
    for file in &listed.recordings {
        let path = dir.join(&id).join(format!("part-01-{}.opus", file.language));
        let audio = decode(&path)?;
        println!("{}: {} ms recorded before the disk filled", file.language, audio.len() / 48);
        assert!(audio.len() >= 48_000, "the file plays to where the disk filled");
        assert!((file.size as u64) == std::fs::metadata(&path)?.len(), "whole pages only");
    }

    // Listeners went on without a loss, before and after.
    let before = listener.track(0).packets;
    listener.wait_packets(0, before + 50, Duration::from_secs(5)).await?;
    let track = listener.track(0);
    println!(
        "listener: {} packets, {} missing, longest gap {:?}",
        track.packets,
        track.missing(),
        track.max_gap
    );
    assert_eq!(track.missing(), 0, "no packet lost");
    assert!(track.max_gap < Duration::from_millis(200), "no stall: {:?}", track.max_gap);
    assert!(at.elapsed() < Duration::from_secs(5));

    floor.stop()?;
    listener.stop()?;
    relay.stop().await;

    // A start on a disk with too little room is refused, and says why.
    let relay = TestRelay::start_with(1, |s| {
        s.recording.dir = dir.clone();
        s.recording.min_free_bytes = 10_000_000_000_000;
    })
    .await?;
    let (id, _) = event_recording(&relay, json!({"channels": "all"})).await?;
    let (code, body) = switch(&relay, &id, json!({"on": true})).await?;
    println!("refused: {body}");
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("not enough free disk space")));
    relay.metric_until("tolk_recording_disk_free_bytes", |v| v >= 0.0).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_a_file_that_plays_and_continues_in_a_second_part() -> anyhow::Result<()> {
    use tolk_tests::process::TolkProcess;
    let mut node = TolkProcess::start(&[]).await?;
    let http = reqwest::Client::new();
    let now = Utc::now();
    let created = http
        .post(node.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&json!({
            "title": "Crash", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "floor": {"kind": "rtp"}, "recording": {"channels": "all"},
        }))
        .send()
        .await?;
    anyhow::ensure!(created.status() == StatusCode::CREATED, "create: {}", created.status());
    let event: tolk_relay::api::EventView = created.json().await?;
    let id = event.id.as_str().to_owned();
    let rtp = tolk_tests::relay::rtp_url(&event)?.trim_start_matches("rtp://").parse()?;
    let floor = client::RtpSender::start(rtp, FLOOR)?;
    let get_status = || async {
        let s: RecordingStatusView = http
            .get(node.url(&format!("/api/v1/events/{id}/recording")))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(s)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        let s = get_status().await?;
        if s.recording {
            break s;
        }
        anyhow::ensure!(Instant::now() < deadline, "not recording: {s:?}\n{}", node.log_tail(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let started_at = started.started_at.context("a start")?;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let killed_at = Utc::now();
    node.kill();

    // As the crash left it: every whole page plays, to within a second of the kill.
    let part_one = node.path(format!("recordings/{id}/part-01-en.opus"));
    let audio = decode(&part_one)?;
    let recorded_ms = audio.len() as i64 / 48;
    let ran_ms = (killed_at - started_at).num_milliseconds();
    println!("killed after {ran_ms} ms of recording; the file plays {recorded_ms} ms");
    assert!(recorded_ms >= ran_ms - 1000, "the file plays to within a second of the kill");
    assert!(tone_level_db(&audio[audio.len() - 24_000..], FLOOR) > -15.0, "the floor to the end");

    // Restarted: the first part is closed as interrupted, a second part follows.
    node.restart().await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let listed: RecordingsView = http
            .get(node.url(&format!("/api/v1/events/{id}/recordings")))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        if listed.recordings.iter().any(|f| f.part == 2 && f.state == RecordingState::Recording) {
            break listed;
        }
        anyhow::ensure!(Instant::now() < deadline, "no second part: {listed:?}\n{}", node.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first: Vec<&RecordingFileView> = listed.recordings.iter().filter(|f| f.part == 1).collect();
    assert_eq!(first.len(), 2, "en and fr");
    for file in &first {
        assert_eq!(file.state, RecordingState::Interrupted);
        assert!(
            (file.duration_ms - recorded_ms).abs() <= 40,
            "{} ms listed, {recorded_ms} ms plays",
            file.duration_ms
        );
    }
    let sealed = decode(&part_one)?;
    assert_eq!(sealed.len(), audio.len(), "sealing keeps every whole page");
    let bytes = std::fs::read(&part_one)?;
    let last_page = bytes.windows(4).rposition(|w| w == b"OggS").context("pages")?;
    assert_eq!(bytes[last_page + 5] & 4, 4, "the last page ends the stream");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let part_two = decode(&node.path(format!("recordings/{id}/part-02-en.opus")))?;
    assert!(
        tone_level_db(&part_two[part_two.len().saturating_sub(24_000)..], FLOOR) > -15.0,
        "part 2 records the floor"
    );
    floor.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_to_their_organiser_only_with_ranges_a_zip_and_a_retention() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let (id, event) = event_recording(&relay, json!({"channels": ["en", "fr"]})).await?;
    let (other, _) = event_recording(&relay, json!({"channels": "all"})).await?;
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    until_recording(&relay, &id, true).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A file being written is not deleted.
    let listed: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
    let busy = relay.http.delete(relay.url(&listed.recordings[0].url)).bearer_auth(ADMIN).send().await?;
    assert_eq!(busy.status(), StatusCode::CONFLICT);
    switch(&relay, &id, json!({"on": false})).await?;
    let listed: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
    let file = &listed.recordings[0];

    // No token, a wrong one, a cookie of another event: refused. Nothing in a URL.
    let url = relay.url(&file.url);
    assert_eq!(relay.http.get(&url).send().await?.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        relay.http.get(&url).bearer_auth("wrong-token-xxxxxxxxxxxxxxxx").send().await?.status(),
        StatusCode::UNAUTHORIZED
    );
    let access = |event: String| {
        let relay = &relay;
        async move {
            let r = relay
                .http
                .post(relay.url(&format!("/api/v1/events/{event}/recordings/access")))
                .bearer_auth(ADMIN)
                .send()
                .await?;
            anyhow::ensure!(r.status() == StatusCode::NO_CONTENT, "access: {}", r.status());
            let cookie = r.headers()["set-cookie"].to_str()?.to_owned();
            anyhow::Ok(cookie)
        }
    };
    let cookie = access(id.clone()).await?;
    println!(
        "download cookie: {}",
        cookie.split_once('=').map_or("", |(_, rest)| rest.split_once(';').map_or("", |(_, a)| a))
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(cookie.contains(&format!("Path=/api/v1/events/{id}/recordings/")));
    let pair = cookie.split(';').next().context("cookie")?.to_owned();
    let other_pair = access(other.clone()).await?.split(';').next().context("cookie")?.to_owned();
    assert_eq!(
        relay.http.get(&url).header("cookie", &other_pair).send().await?.status(),
        StatusCode::UNAUTHORIZED
    );

    // With the cookie: the whole file, a range of it (a browser seeking).
    let whole = relay.http.get(&url).header("cookie", &pair).send().await?;
    assert_eq!(whole.status(), StatusCode::OK);
    let whole = whole.bytes().await?;
    assert_eq!(whole.len() as i64, file.size);
    let range = relay.http.get(&url).header("cookie", &pair).header("range", "bytes=100-1099").send().await?;
    assert_eq!(range.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.headers()["content-range"].to_str()?, format!("bytes 100-1099/{}", whole.len()));
    assert_eq!(range.bytes().await?, whole.slice(100..1100));

    // The ZIP of all files: read by Python's zipfile, CRCs checked, the files as listed.
    let zip = relay
        .http
        .get(relay.url(&format!("/api/v1/events/{id}/recordings/all.zip")))
        .header("cookie", &pair)
        .send()
        .await?;
    assert_eq!(zip.status(), StatusCode::OK);
    let dir = tempfile::tempdir()?;
    let zip_path = dir.path().join("all.zip");
    std::fs::write(&zip_path, zip.bytes().await?)?;
    let check = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(' '.join(f'{i.filename}:{i.file_size}' for i in z.infolist()))"])
        .arg(&zip_path)
        .output()?;
    let names = String::from_utf8_lossy(&check.stdout).trim().to_owned();
    println!("zip: {names}");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let expected: Vec<String> =
        listed.recordings.iter().map(|f| format!("part-01/{}.opus:{}", f.language, f.size)).collect();
    assert_eq!(names, expected.join(" "));

    // Deleted by the organiser: gone from the list and the disk.
    let gone = relay.http.delete(&url).bearer_auth(ADMIN).send().await?;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(relay.http.get(&url).bearer_auth(ADMIN).send().await?.status(), StatusCode::NOT_FOUND);
    let on_disk = relay.data_dir.join(format!("recordings/{id}/part-01-{}.opus", file.language));
    assert!(!on_disk.exists());

    // Retention: a file that ended 31 days ago is deleted at the next start (default: 30 days).
    let store = match tolk_tests::relay::test_database(&relay.data_dir).await? {
        Some(url) => tolk_relay::store::Store::open(&url).await?,
        None => tolk_relay::store::Store::open_in(&relay.data_dir).await?,
    };
    let old = chrono::Utc::now().timestamp_millis() - 31 * 86_400_000;
    let left = &listed.recordings[1];
    store.age_recording_for_tests(&tolk_relay::ids::RecordingId::parse(&left.id)?, old).await?;
    drop(store);
    floor.stop()?;
    let relay = relay.restart(1).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed: RecordingsView = relay.admin_get(&format!("/api/v1/events/{id}/recordings")).await?;
        if listed.recordings.is_empty() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the expired file is still listed: {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!relay.data_dir.join(format!("recordings/{id}/part-01-{}.opus", left.language)).exists());
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_channel_records_its_mix_with_the_floor_under_the_voice() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let now = Utc::now();
    let event = relay
        .create_event(json!({
            "title": "Mixed", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "floor": {"kind": "whip"},
            "floor_under_interpretation_db": -12.0, "recording": {"channels": ["fr"]},
        }))
        .await?;
    let id = event.id.as_str().to_owned();
    let ana = link(&relay, &id, "Ana", true).await?;
    let floor =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, FLOOR).await?;
    let a = client::booth(&relay.http, &relay.url("/whip/booth"), &ana, ANA).await?;
    until_recording(&relay, &id, true).await?;
    booth_call(&relay, &ana, "/api/v1/booth/on-air", json!({"language": "fr"})).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    switch(&relay, &id, json!({"on": false})).await?;
    let dir = tempfile::tempdir()?;
    let files = download(&relay, &id, dir.path()).await?;
    let (file, path) = file_of(&files, "fr")?;
    let audio = decode(path)?;
    let from = file.on_air[0].from_ms as usize * 48 + 24_000;
    let mixed = &audio[from..audio.len() - 9600];
    let (voice, under) = (tone_level_db(mixed, ANA), tone_level_db(mixed, FLOOR));
    println!("mixed fr file: Ana {voice:.1} dB, the floor under her {under:.1} dB");
    assert!(voice > -15.0, "Ana in the mix");
    assert!(under < voice - 6.0 && under > voice - 20.0, "the floor under her, about 12 dB down");
    for c in [floor, a] {
        c.stop()?;
    }
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recording_requests_are_refused_with_a_sentence_and_change_nothing() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let now = Utc::now();
    let request = |recording: Value| {
        json!({
            "title": "Bad", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "recording": recording,
        })
    };
    for (recording, says) in [
        (json!({"channels": ["it"]}), "no 'it' channel"),
        (json!({"channels": []}), "at least one"),
        (json!({"channels": "some"}), "recording"),
        (json!({"channels": "all", "format": "mp3"}), "format"),
    ] {
        let r = relay
            .http
            .post(relay.url("/api/v1/events"))
            .bearer_auth(ADMIN)
            .json(&request(recording.clone()))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        println!("{recording} → {status}: {}", body["detail"]);
        assert!(status.is_client_error(), "{recording}: {status}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains(says)), "{recording}: {body}");
    }
    let events: Vec<Value> = relay.admin_get("/api/v1/events").await?;
    assert!(events.is_empty(), "nothing was created");

    let (id, _) = event_recording(&relay, json!({"channels": ["fr"]})).await?;
    let patch = relay
        .http
        .patch(relay.url(&format!("/api/v1/events/{id}")))
        .bearer_auth(ADMIN)
        .json(&json!({"title": "Renamed", "recording": {"channels": ["it"]}}))
        .send()
        .await?;
    assert_eq!(patch.status(), StatusCode::BAD_REQUEST);
    let event: tolk_relay::api::EventView = relay.admin_get(&format!("/api/v1/events/{id}")).await?;
    assert_eq!(event.title, "Recorded", "a refused change changes nothing");
    let (code, body) = switch(&relay, &id, json!({"on": true, "channels": ["it"]})).await?;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (code, _) = switch(&relay, &id, json!({"on": "yes"})).await?;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let status = status(&relay, &id).await?;
    assert_eq!(
        status.channels,
        Some(tolk_relay::api::ChannelChoice::Languages(vec![tolk_relay::ids::Language::parse("fr")?]))
    );
    let other = relay
        .http
        .get(relay.url(&format!("/api/v1/events/{id}/recordings/0123456789abcdef")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let junk = relay
        .http
        .get(relay.url(&format!("/api/v1/events/{id}/recordings/..%2F..%2Ftolk.sqlite")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(junk.status(), StatusCode::NOT_FOUND, "a file id is 16 hex digits, never a path");
    relay.stop().await;
    Ok(())
}
