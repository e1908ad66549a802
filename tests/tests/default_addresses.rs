//! A relay started with its default addresses (no `TOLK_PUBLIC_IP`) is reached from another host.
//! `tolk serve` runs in a network namespace of its own (loopback and one veth, 10.77.N.k); the
//! test's peers are in the host's namespace, across the bridge: a non-loopback path that stays on
//! this machine. Until the relay offered the machine's addresses, its one default candidate was
//! 127.0.0.1, which no other host (and no Firefox, even on the same machine) uses.

use std::time::Duration;

use tolk_tests::audio::{OpusTone, tone_level_db};
use tolk_tests::browser::{Browser, Kind};
use tolk_tests::client::{self, Client};
use tolk_tests::cluster::{ClusterNode, TestNet};
use tolk_tests::process::TolkProcess;
use tolk_tests::relay::TestRelay;

/// A node with the relay's default addresses in its own namespace, an event on it (languages
/// `fr`) and a 440 Hz floor published over WHIP; returns the event's id too.
struct LanEvent {
    node: ClusterNode,
    id: String,
    floor: Client,
    _net: TestNet,
}

impl LanEvent {
    async fn start(http: &reqwest::Client) -> anyhow::Result<Self> {
        let mut net = TestNet::new()?;
        let node = ClusterNode::start_in(&mut net, "lan", vec![("TOLK_PUBLIC_IP", String::new())])?;
        node.until_healthy(http).await?;
        // Its candidates: the namespace's address (found, not configured), then loopback.
        let log = node.log_tail(50);
        let found = format!("{}:40000", node.ip);
        assert!(
            log.contains(&found) && log.contains("127.0.0.1:40000"),
            "the relay offers {found} and 127.0.0.1:40000:\n{log}"
        );
        let (id, token) = node.create_event(http, &["fr"], 10).await?;
        let whip = node.url(&format!("/whip/{id}/floor"));
        let floor = client::publish_tone(http, &whip, &token, OpusTone::new(440.0, 0.5)?).await?;
        Ok(Self { node, id, floor, _net: net })
    }
}

/// The test's HTTP client (rustls's provider chosen first).
fn http() -> reqwest::Client {
    tolk_relay::bbb::install_default_crypto();
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_default_addresses_is_heard_from_another_host() -> anyhow::Result<()> {
    let http = http();
    let lan = LanEvent::start(&http).await?;
    let listener = client::listen(&http, &lan.node.url(&format!("/whep/{}/fr", lan.id)), 1).await?;
    let stats = listener
        .wait_packets(0, 100, Duration::from_secs(20))
        .await
        .map_err(|e| anyhow::anyhow!("{e}; the node's log:\n{}", lan.node.log_tail(20)))?;
    let level = tone_level_db(stats.last_seconds(1.0), 440.0);
    println!(
        "listener across the bridge: {} packets, {} missing, 440 Hz at {level:.1} dBFS",
        stats.packets,
        stats.missing()
    );
    assert!(level > -20.0, "the floor's tone is heard across the bridge ({level:.1} dBFS)");
    assert_eq!(stats.missing(), 0, "no packet lost on the way");
    listener.stop()?;
    lan.floor.stop()?;
    Ok(())
}

/// The listener page, in a browser on the host, plays the floor of a relay with its defaults.
async fn the_listener_page_plays_across_the_bridge(browser: Browser, name: &str) -> anyhow::Result<()> {
    let http = http();
    let lan = LanEvent::start(&http).await?;
    browser.goto(&lan.node.url(&format!("/e/{}?lang=fr&autoplay=1", lan.id))).await?;
    browser
        .wait_for("window.tolkListener && window.tolkListener.firstAudioMs !== null", Duration::from_secs(20))
        .await?;
    let measured = browser.eval_promise("window.tolkListener.measureTone(1500)").await?;
    println!("{name}, listener page across the bridge: {measured}");
    let frequency = measured["frequency"].as_f64().unwrap_or(0.0);
    let level = measured["level_db"].as_f64().unwrap_or(-200.0);
    assert!((frequency - 440.0).abs() < 10.0, "{name} hears {frequency} Hz, not 440 Hz");
    assert!(level > -30.0, "{name} hears the tone at {level} dBFS");
    browser.close().await?;
    lan.floor.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_relay_with_default_addresses() -> anyhow::Result<()> {
    the_listener_page_plays_across_the_bridge(Browser::start(None).await?, "Chromium").await
}

/// Firefox as it comes: no test pref that lets it use loopback candidates (a newcomer's Firefox
/// opening the demo). With the relay's old default, 127.0.0.1 only, this page never connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_plays_a_relay_with_default_addresses() -> anyhow::Result<()> {
    if Kind::Firefox.skipped() {
        return Ok(());
    }
    let as_it_comes = tolk_tests::firefox::Options::default().loopback_candidates(false);
    the_listener_page_plays_across_the_bridge(Browser::firefox_with(&as_it_comes, None).await?, "Firefox")
        .await
}

/// `TOLK_PUBLIC_IP` with an IPv6 address: the media socket is dual-stack, and a listener over IPv6
/// hears an RTP floor sent over IPv6 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_an_ipv6_address_is_heard_over_ipv6() -> anyhow::Result<()> {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("skipped: this machine has no IPv6 loopback");
        return Ok(());
    }
    let relay = TestRelay::start_with(1, |s| {
        s.listen = "[::1]:0".parse().expect("an address");
        s.public_url_from_listen = true;
        s.public_ips = vec!["::1".parse().expect("an address"), "127.0.0.1".parse().expect("an address")];
    })
    .await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    assert!(
        event.floor.rtp_url.as_deref().is_some_and(|u| u.starts_with("rtp://[::1]:")),
        "{:?}",
        event.floor
    );
    let floor = relay.tone_floor(&event, 440.0).await?;
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{}/fr", event.id)), 1).await?;
    assert!(listener.session_url.contains("[::1]"), "the listener is on IPv6: {}", listener.session_url);
    let stats = listener.wait_packets(0, 100, Duration::from_secs(20)).await?;
    let level = tone_level_db(stats.last_seconds(1.0), 440.0);
    println!(
        "listener over IPv6: {} packets, {} missing, 440 Hz at {level:.1} dBFS",
        stats.packets,
        stats.missing()
    );
    assert!(level > -20.0, "the floor's tone is heard over IPv6 ({level:.1} dBFS)");
    listener.stop()?;
    floor.stop()?;
    relay.stop().await;
    Ok(())
}

/// The newcomer's way: `tolk demo` with its defaults on this machine, its link opened in Firefox
/// as it comes (which skips loopback candidates, so it reaches the relay at the machine's own
/// address): the demo's voice is heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_plays_the_demo_on_this_machine() -> anyhow::Result<()> {
    if Kind::Firefox.skipped() {
        return Ok(());
    }
    if tolk_relay::net::addresses::discover().len() < 2 {
        println!("skipped: this machine has no address but loopback (the bridge test covers the path)");
        return Ok(());
    }
    let demo = TolkProcess::start_demo(&[("TOLK_PUBLIC_IP", "")]).await?;
    let as_it_comes = tolk_tests::firefox::Options::default().loopback_candidates(false);
    let browser = Browser::firefox_with(&as_it_comes, None).await?;
    browser.goto(&demo.url("/e/demo?autoplay=1")).await?;
    browser
        .wait_for("window.tolkListener && window.tolkListener.firstAudioMs !== null", Duration::from_secs(20))
        .await
        .map_err(|e| anyhow::anyhow!("{e}; the demo's log:\n{}", demo.log_tail(20)))?;
    let measured = browser.eval_promise("window.tolkListener.measureTone(2000)").await?;
    println!("Firefox, the demo on this machine: {measured}");
    let level = measured["level_db"].as_f64().unwrap_or(-200.0);
    assert!(level > -50.0, "Firefox hears the demo's voice ({level} dBFS)");
    browser.close().await?;
    Ok(())
}
