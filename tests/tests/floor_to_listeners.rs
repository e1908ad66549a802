//! The first media path end to end, over real WebRTC: a floor (WHIP publisher or plain RTP) heard
//! by many WHEP listeners on every channel, each decoding the tone and counting lost packets.

use std::time::{Duration, Instant};

use tolk_tests::audio::dominant_frequency;
use tolk_tests::client::{self, Client, RtpSender};
use tolk_tests::relay::{TestRelay, floor_token, rtp_url};

const LISTENERS: usize = 50;
const TONE: f64 = 440.0;

/// Every listener hears the tone on every track, with fewer than 1% of packets missing.
async fn check_listeners(listeners: &[Client], packets: u64) -> anyhow::Result<Vec<Duration>> {
    let mut first_audio = Vec::new();
    for (i, listener) in listeners.iter().enumerate() {
        let tracks = listener.tracks.lock().map(|t| t.len()).unwrap_or(0);
        for track in 0..tracks {
            let stats = listener.wait_packets(track, packets, Duration::from_secs(20)).await?;
            let frequency = dominant_frequency(stats.last_seconds(1.0));
            assert!(
                (frequency - TONE).abs() <= 5.0,
                "listener {i} track {track} hears {frequency} Hz, not {TONE} Hz"
            );
            let missing = stats.missing() as f64 / (stats.packets + stats.missing()) as f64;
            assert!(missing < 0.01, "listener {i} track {track} misses {:.2}% of packets", missing * 100.0);
            if track == 0
                && let Some(first) = stats.first_packet_at
            {
                first_audio.push(first - listener.posted_at);
            }
        }
    }
    Ok(first_audio)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_floor_reaches_fifty_listeners_on_every_channel() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let event = relay.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str();
    let publisher =
        client::publish(&relay.http, event.floor.whip_url.as_str(), floor_token(&event)?, TONE).await?;

    let languages = ["en", "fr", "de"];
    let mut listeners = Vec::new();
    for i in 0..LISTENERS {
        let url = relay.url(&format!("/whep/{id}/{}", languages[i % 3]));
        // Every fifth listener also takes the floor on a second track.
        listeners.push(client::listen(&relay.http, &url, if i % 5 == 0 { 2 } else { 1 }).await?);
    }
    let first_audio = check_listeners(&listeners, 150).await?;
    println!(
        "{} listeners on 2 shards; WHEP POST to first audio: median {:?} (of {}), max {:?}",
        listeners.len(),
        median(first_audio.clone()),
        first_audio.len(),
        first_audio.iter().max()
    );

    let all: Vec<Duration> = listeners.iter().flat_map(|l| client::delays(&publisher, l, 0)).collect();
    let matched = all.len();
    let (p50, p95, max) = client::percentiles(all);
    println!(
        "floor → listener over real WebRTC on loopback ({matched} packets): p50 {p50:?}, p95 {p95:?}, max {max:?}"
    );
    assert!(matched > LISTENERS * 100, "payloads are forwarded byte for byte ({matched} matched)");

    // Metrics count every listener once, on the metrics address only, and name no event.
    let metrics = relay.metrics_text().await?;
    let listed: usize = metrics
        .lines()
        .filter(|l| l.starts_with("tolk_listeners{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(listed, LISTENERS, "metrics count every listener once:\n{metrics}");
    assert!(!metrics.contains(id), "an event id is all it takes to listen: none in /metrics:\n{metrics}");
    let public = relay.http.get(relay.url("/metrics")).send().await?;
    assert_eq!(public.status().as_u16(), 404, "no /metrics on the public address");
    assert_ne!(relay.server.metrics_addr.map(|a| a.port()), Some(relay.server.addr.port()));

    for listener in listeners {
        listener.stop()?;
    }
    publisher.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtp_floor_reaches_listeners() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let rtp_url = rtp_url(&event)?;
    let to = rtp_url.trim_start_matches("rtp://").parse()?;
    let sender = RtpSender::start(to, TONE)?;
    let mut listeners = Vec::new();
    for i in 0..10 {
        let language = if i % 2 == 0 { "en" } else { "fr" };
        listeners.push(client::listen(&relay.http, &relay.url(&format!("/whep/{id}/{language}")), 1).await?);
    }
    check_listeners(&listeners, 100).await?;
    for listener in listeners {
        listener.stop()?;
    }
    sender.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_floor_publisher_keeps_the_listeners_stream_continuous() -> anyhow::Result<()> {
    let relay = TestRelay::start(2).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str();
    let (whip, token) = (event.floor.whip_url.as_str(), floor_token(&event)?);
    let first = client::publish(&relay.http, whip, token, TONE).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    let before = listener.wait_packets(0, 50, Duration::from_secs(15)).await?;

    // A second publisher takes over the floor (the first one's session is ended by the relay).
    let second = client::publish(&relay.http, whip, token, 660.0).await?;
    let changed_at = Instant::now();
    let after = listener.wait_packets(0, before.packets + 100, Duration::from_secs(15)).await?;
    assert_eq!(after.missing(), 0, "sequence numbers run on across the change of publisher");
    let heard = dominant_frequency(after.samples_since(changed_at + Duration::from_millis(500)));
    assert!((heard - 660.0).abs() <= 5.0, "the new publisher is heard: {heard} Hz");
    assert!(after.max_gap < Duration::from_millis(500), "no long silence at the change: {:?}", after.max_gap);
    let gone = relay.http.delete(&first.session_url).send().await?;
    assert_eq!(gone.status().as_u16(), 404, "the replaced publisher's session was ended");

    listener.stop()?;
    let _ = first.stop();
    second.stop()?;
    relay.stop().await;
    Ok(())
}

/// The RTP floor takes exactly what the README says: `ffmpeg -re -i talk.wav -c:a libopus -f rtp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_is_an_rtp_floor() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let wav = relay.data_dir.join("talk.wav");
    std::fs::write(&wav, tolk_tests::audio::tone_wav(TONE, 0.5, 8))?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    let mut ffmpeg = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&wav)
        .args(["-c:a", "libopus", "-f", "rtp"])
        .arg(rtp_url(&event)?)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("ffmpeg is needed for this test (./scripts/test installs it): {e}"))?;
    let stats = listener.wait_packets(0, 150, Duration::from_secs(20)).await;
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let stats = stats?;
    let heard = dominant_frequency(stats.last_seconds(1.0));
    assert!((heard - TONE).abs() <= 5.0, "the listener hears {heard} Hz from ffmpeg's floor");
    assert!(stats.missing() <= 1, "{} packets missing", stats.missing());
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

/// `tolk demo`'s event: its built-in voice is heard on every channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_event_speaks() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let demo = relay.server.ensure_demo().await?;
    assert_eq!(demo.id.as_str(), "demo");
    let again = relay.server.ensure_demo().await?;
    assert_eq!(again.floor.rtp_url, demo.floor.rtp_url, "the demo event is reused, not created twice");
    let to = demo.floor.rtp_url.as_deref().unwrap_or("").trim_start_matches("rtp://").parse()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let voice = tolk_relay::demo::spawn_floor(to, stop.clone())?;
    let listener = client::listen(&relay.http, &relay.url("/whep/demo/de"), 1).await?;
    let stats = listener.wait_packets(0, 150, Duration::from_secs(20)).await?;
    let level = tolk_tests::audio::level_db(stats.last_seconds(3.0));
    assert!(level > -40.0, "the demo voice is audible: {level:.1} dBFS");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = voice.join();
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

/// Per-event labels in `/metrics` only when the operator asks for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_events_only_when_asked() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| s.metrics_per_event = true).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str();
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    relay.wait_metric("tolk_listeners", 1.0, Duration::from_secs(10)).await?;
    let metrics = relay.metrics_text().await?;
    assert!(
        metrics.contains(&format!("tolk_listeners{{event=\"{id}\",language=\"fr\"}} 1")),
        "per-event labels:\n{metrics}"
    );
    listener.stop()?;
    relay.stop().await;
    Ok(())
}
