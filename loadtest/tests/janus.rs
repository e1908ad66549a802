//! Janus as the comparison relay: our own Janus process with an Opus RTP mountpoint fed a 440 Hz
//! tone, a str0m listener that watches it over the REST API and hears the tone.

use std::f64::consts::PI;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tolk_loadtest::janus::{JanusOptions, JanusServer, JanusWatch};

const RATE: u32 = 48_000;
const FRAME: usize = 960;
const TONE_HZ: f64 = 440.0;

/// Sends Opus RTP of a 440 Hz tone (pt 111, 20 ms frames) to `to`, paced every 20 ms.
fn send_tone(to: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<anyhow::Result<u64>> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let mut encoder = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Audio)?;
        let ssrc: u32 = 0x1234_5678;
        let mut seq: u16 = 1000;
        let mut ts: u32 = 90_000;
        let mut phase = 0.0f64;
        let step = 2.0 * PI * TONE_HZ / f64::from(RATE);
        let mut opus = vec![0u8; 1500];
        let mut sent = 0u64;
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut pcm = [0f32; FRAME];
            for s in &mut pcm {
                *s = (0.5 * phase.sin()) as f32;
                phase = (phase + step) % (2.0 * PI);
            }
            let n = encoder.encode_float(&pcm, &mut opus)?;
            let mut packet = Vec::with_capacity(12 + n);
            packet.extend_from_slice(&[0x80, 111]);
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(&ts.to_be_bytes());
            packet.extend_from_slice(&ssrc.to_be_bytes());
            packet.extend_from_slice(&opus[..n]);
            socket.send_to(&packet, to)?;
            sent += 1;
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(FRAME as u32);
            let next = start + Duration::from_millis(20 * sent);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(sent)
    })
}

/// What the listener heard.
#[derive(Default)]
struct Heard {
    connected: bool,
    packets: u64,
    payload_types: Vec<u8>,
    samples: Vec<f32>,
}

/// Drives a str0m `Rtc` on its socket until `stop`: decodes the Opus it receives.
fn listen(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    heard: Arc<Mutex<Heard>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<anyhow::Result<()>> {
    std::thread::spawn(move || {
        let mut decoder = opus::Decoder::new(RATE, opus::Channels::Mono)?;
        let mut pcm = vec![0f32; FRAME * 6];
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let deadline = loop {
                match rtc.poll_output()? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        socket.send_to(&t.contents, t.destination)?;
                    }
                    Output::Event(event) => {
                        if matches!(event, Event::Connected) {
                            heard.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.connected = true;
                        } else if let Event::RtpPacket(p) = event {
                            let n = decoder.decode_float(&p.payload, &mut pcm, false)?;
                            let mut h = heard.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                            h.packets += 1;
                            let pt = *p.header.payload_type;
                            if !h.payload_types.contains(&pt) {
                                h.payload_types.push(pt);
                            }
                            h.samples.extend_from_slice(&pcm[..n]);
                        }
                    }
                }
            };
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(20));
            socket.set_read_timeout(Some(wait))?;
            match socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let receive = Receive::new(Protocol::Udp, source, local, &buf[..n])?;
                    rtc.handle_input(Input::Receive(Instant::now(), receive))?;
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })
}

/// Goertzel power of `samples` at `frequency`.
fn power_at(samples: &[f32], frequency: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * frequency / f64::from(RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len().max(1) as f64
}

/// The strongest frequency between 300 and 600 Hz, in 1 Hz steps.
fn dominant_frequency(samples: &[f32]) -> f64 {
    (300..=600)
        .map(f64::from)
        .max_by(|a, b| power_at(samples, *a).total_cmp(&power_at(samples, *b)))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_streams_the_floor_to_a_str0m_listener() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tolk_relay::bbb::install_default_crypto();
    let http = reqwest::Client::new();

    let started = Instant::now();
    let janus = JanusServer::start(JanusOptions::default())
        .await
        .expect("start Janus (the Debian package `janus`: scripts/test installs it)");
    eprintln!(
        "janus pid {} started in {:?}: {} rtp_in {}",
        janus.pid,
        started.elapsed(),
        janus.http_url,
        janus.rtp_in
    );
    assert!(std::path::Path::new(&format!("/proc/{}", janus.pid)).exists());

    let stop = Arc::new(AtomicBool::new(false));
    let sender = send_tone(janus.rtp_in, stop.clone());

    let (watch, offer) = JanusWatch::watch(&http, &janus.http_url, janus.mountpoint).await.expect("watch");
    assert!(offer.contains("a=candidate:"), "Janus's offer carries its candidates:\n{offer}");
    assert!(offer.contains("opus/48000/2"), "offer:\n{offer}");

    // Not 127.0.0.1: Janus's ICE sockets cannot send there (see `JanusServer::listener_ip`).
    assert!(
        offer.contains(&format!(" {} ", janus.listener_ip)),
        "candidate on {}:\n{offer}",
        janus.listener_ip
    );
    let socket = UdpSocket::bind((janus.listener_ip, 0)).unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc =
        Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let offer = SdpOffer::from_sdp_string(&offer).expect("parse Janus's offer");
    let answer = rtc.sdp_api().accept_offer(offer).expect("answer Janus's offer");
    let heard = Arc::new(Mutex::new(Heard::default()));
    let listener = listen(rtc, socket, local, heard.clone(), stop.clone());

    let start_at = Instant::now();
    watch.start(&answer.to_sdp_string()).await.expect("start");
    loop {
        let packets = heard.lock().unwrap().packets;
        if packets >= 100 {
            break;
        }
        assert!(
            start_at.elapsed() < Duration::from_secs(10),
            "only {packets} RTP packets within 10 s (connected: {}); Janus's log:\n{}",
            heard.lock().unwrap().connected,
            janus.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("100 packets {:?} after start", start_at.elapsed());
    watch.keepalive().await.expect("keepalive");

    let (connected, payload_types, frequency) = {
        let h = heard.lock().unwrap();
        let last_second = &h.samples[h.samples.len().saturating_sub(RATE as usize)..];
        (h.connected, h.payload_types.clone(), dominant_frequency(last_second))
    };
    eprintln!("dominant frequency over the last second: {frequency} Hz");
    assert!(connected, "str0m connected");
    assert_eq!(payload_types, vec![111], "Janus forwards with pt 111");
    assert!((frequency - TONE_HZ).abs() <= 10.0, "dominant frequency {frequency} Hz, expected 440");

    watch.hangup().await.expect("hangup");
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender thread").expect("sender");
    listener.join().expect("listener thread").expect("listener");
    assert!(sent >= 100);

    let pid = janus.pid;
    let dir = janus.dir.clone();
    janus.stop();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "Janus (pid {pid}) is gone");
    assert!(!dir.exists(), "its temp dir is removed");
}

#[tokio::test]
async fn janus_missing_binary_is_a_clear_error() {
    let options = JanusOptions { binary: "/nonexistent/janus".into(), ..JanusOptions::default() };
    let error = JanusServer::start(options).await.expect_err("no such binary").to_string();
    assert!(error.contains("scripts/test installs it"), "{error}");
}

#[tokio::test]
async fn janus_api_errors_carry_the_reason_and_cpu_pins_it() {
    tolk_relay::bbb::install_default_crypto();
    let http = reqwest::Client::new();
    let janus = JanusServer::start(JanusOptions { cpu: Some(0), ..JanusOptions::default() })
        .await
        .expect("start Janus (the Debian package `janus`: scripts/test installs it)");
    let status = std::fs::read_to_string(format!("/proc/{}/status", janus.pid)).unwrap();
    assert!(status.lines().any(|l| l.split_whitespace().eq(["Cpus_allowed_list:", "0"])), "{status}");
    let error = JanusWatch::watch(&http, &janus.http_url, 424242).await.expect_err("no such mountpoint");
    let text = format!("{error:#}");
    assert!(text.contains("No such mountpoint"), "{text}");
    janus.stop();
    let error = JanusWatch::watch(&http, "http://127.0.0.1:9/janus", 1).await.expect_err("nobody there");
    assert!(format!("{error:#}").contains("Janus create"), "{error:#}");
}
