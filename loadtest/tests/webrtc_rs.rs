//! webrtc-rs listeners against an in-process relay (str0m): two independent WebRTC stacks
//! interoperating. A thread sends a stamped Opus tone as the event's plain RTP floor; listeners on
//! both channels count what arrives, measure the relay-added latency, switch channel, and a
//! listener of an unknown event gets a clear error. `webrtc_rs_cost` (ignored; run it in release)
//! measures the CPU time a webrtc-rs listener spends per received packet.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tolk_loadtest::stamp;
use tolk_loadtest::tally::LatencyHistogram;
use tolk_loadtest::webrtc_rs::RsListener;
use tolk_tests::client::RtpSender;
use tolk_tests::relay::{TestRelay, rtp_url};

/// An RTP-floor event with a French channel, its id, and a stamped tone on its floor.
async fn event_with_floor(relay: &TestRelay) -> anyhow::Result<(String, RtpSender)> {
    let event = relay.event_now(&["fr"], "rtp").await?;
    let id = event.id.as_str().to_owned();
    let rtp = rtp_url(&event)?.trim_start_matches("rtp://").parse()?;
    // Each packet stamped with its send time (source 0: the floor).
    let sender = RtpSender::start_mapped(rtp, 440.0, |payload| stamp::stamp(&payload, 0, stamp::now_us()))?;
    Ok((id, sender))
}

/// Wait until every listener has heard `packets`, or `within` has passed.
async fn wait_packets(listeners: &[RsListener], packets: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && listeners.iter().any(|l| l.tally().packets < packets) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_rs_listeners_hear_the_relay() -> anyhow::Result<()> {
    tolk_relay::bbb::install_default_crypto();
    let http = reqwest::Client::new();
    let relay = TestRelay::start(1).await?;
    let (id, sender) = event_with_floor(&relay).await?;
    let latency = Arc::new(Mutex::new(LatencyHistogram::default()));

    let mut listeners = Vec::new();
    for i in 0..5 {
        let language = ["en", "fr"][i % 2];
        let url = relay.url(&format!("/whep/{id}/{language}"));
        listeners.push(RsListener::listen(&http, &url, latency.clone()).await?);
    }
    wait_packets(&listeners, 100, Duration::from_secs(10)).await;
    for (i, listener) in listeners.iter().enumerate() {
        let tally = listener.tally();
        assert!(listener.connected(), "listener {i} is not connected");
        assert!(tally.packets >= 100, "listener {i} heard {} packets in 10 s", tally.packets);
        let lost = tally.lost() as f64 / tally.expected() as f64;
        assert!(lost < 0.01, "listener {i} lost {} of {}", tally.lost(), tally.expected());
        assert!(tally.first_audio_ms().is_some_and(|ms| ms < 10_000.0), "{:?}", tally.first_audio_ms());
        assert!(listener.session_url().contains("/whep/sessions/"), "{}", listener.session_url());
    }
    let histogram = latency.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let p50 = histogram.quantile_ms(0.5);
    eprintln!(
        "webrtc-rs listeners: {} latency samples, p50 {p50:.2} ms, p99 {:.2} ms",
        histogram.total(),
        histogram.quantile_ms(0.99)
    );
    assert!(histogram.total() >= 500, "only {} latency samples", histogram.total());
    assert!(p50 < 20.0, "p50 latency {p50} ms");

    // Switching channel (no renegotiation): the relay answers 204 and the audio goes on.
    listeners[0].switch(&http, "fr").await?;
    let before = listeners[0].tally().packets;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(listeners[0].tally().packets > before + 10, "no audio after the switch");
    assert!(listeners[0].switch(&http, "xx").await.is_err(), "switching to a language the event lacks");

    // An unknown event: a clear error naming the status.
    let error = RsListener::listen(&http, &relay.url("/whep/nosuchevent/en"), latency.clone())
        .await
        .expect_err("listening to an unknown event");
    let message = format!("{error:#}");
    assert!(message.contains("404") && message.contains("nosuchevent"), "{message}");

    for listener in listeners {
        listener.close(&http).await?;
    }
    sender.stop()?;
    relay.stop().await;
    Ok(())
}

/// CPU time (µs) of this process's threads whose name starts with `prefix`, or of all of them.
fn thread_cpu_us(prefix: Option<&str>) -> anyhow::Result<u64> {
    let ticks_per_s: u64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100);
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = match std::fs::read_to_string(task?.path().join("stat")) {
            Ok(stat) => stat,
            Err(_) => continue, // the thread ended
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if prefix.is_some_and(|p| !stat[open + 1..close].starts_with(p)) {
            continue;
        }
        // After the name: state (field 3), …, utime (14), stime (15).
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        ticks += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    }
    Ok(ticks * 1_000_000 / ticks_per_s)
}

/// 50 webrtc-rs listeners on their own runtime (threads named `rs-listener`) for 10 s: CPU time
/// of those threads per received packet. Run in release:
/// `cargo test -p tolk-loadtest --release --test webrtc_rs -- --ignored --nocapture`.
#[test]
#[ignore]
fn webrtc_rs_cost() -> anyhow::Result<()> {
    const LISTENERS: usize = 50;
    const WINDOW: Duration = Duration::from_secs(10);
    tolk_relay::bbb::install_default_crypto();
    let relay_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay-rt")
        .enable_all()
        .build()?;
    let listener_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rs-listener")
        .enable_all()
        .build()?;
    let relay = relay_runtime.block_on(TestRelay::start(1))?;
    let (id, sender) = relay_runtime.block_on(event_with_floor(&relay))?;

    let result = listener_runtime.block_on(async {
        let http = reqwest::Client::new();
        let latency = Arc::new(Mutex::new(LatencyHistogram::default()));
        let mut listeners = Vec::new();
        for i in 0..LISTENERS {
            let language = ["en", "fr"][i % 2];
            let url = relay.url(&format!("/whep/{id}/{language}"));
            listeners.push(RsListener::listen(&http, &url, latency.clone()).await?);
        }
        wait_packets(&listeners, 50, Duration::from_secs(15)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let packets = |ls: &[RsListener]| ls.iter().map(|l| l.tally().packets).sum::<u64>();
        let (packets0, listener0, all0) = (packets(&listeners), thread_cpu_us(Some("rs-listener"))?, thread_cpu_us(None)?);
        let started = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let elapsed = started.elapsed().as_secs_f64();
        let (packets1, listener1, all1) = (packets(&listeners), thread_cpu_us(Some("rs-listener"))?, thread_cpu_us(None)?);

        let received = packets1 - packets0;
        let listener_us = listener1 - listener0;
        let all_us = all1 - all0;
        let connected = listeners.iter().filter(|l| l.connected()).count();
        let lost: u64 = listeners.iter().map(|l| l.tally().lost()).sum();
        println!(
            "webrtc-rs cost: {connected}/{LISTENERS} listeners connected, {received} packets in {elapsed:.1} s \
             ({lost} lost in all)"
        );
        println!(
            "  listener threads: {:.1} ms CPU, {:.1} µs per packet, {:.1} % of a core",
            listener_us as f64 / 1000.0,
            listener_us as f64 / received.max(1) as f64,
            listener_us as f64 / 1e4 / elapsed
        );
        println!(
            "  whole process (relay and sender too): {:.1} ms CPU, {:.1} µs per received packet",
            all_us as f64 / 1000.0,
            all_us as f64 / received.max(1) as f64
        );
        let histogram = latency.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        println!("  latency p50 {:.2} ms, p99 {:.2} ms", histogram.quantile_ms(0.5), histogram.quantile_ms(0.99));
        assert_eq!(connected, LISTENERS);
        assert!(received as f64 > LISTENERS as f64 * 50.0 * elapsed * 0.9, "{received} packets");
        for listener in listeners {
            listener.close(&http).await?;
        }
        anyhow::Ok(())
    });
    sender.stop()?;
    relay_runtime.block_on(relay.stop());
    listener_runtime.shutdown_background();
    relay_runtime.shutdown_background();
    result
}
