//! A relay started with its default addresses (no `TOLK_PUBLIC_IP`) is reached from another host.
//! `tolk serve` runs in a network namespace of its own (loopback and one veth, 10.77.N.k); the
//! test's peers are in the host's namespace, across the bridge: a non-loopback path that stays on
//! this machine. Until the relay offered the machine's addresses, its one default candidate was
//! 127.0.0.1, which no other host (and no Firefox, even on the same machine) uses.

use std::time::Duration;

use tolk_tests::audio::{OpusTone, tone_level_db};
use tolk_tests::client;
use tolk_tests::cluster::{ClusterNode, TestNet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_default_addresses_is_heard_from_another_host() -> anyhow::Result<()> {
    tolk_relay::bbb::install_default_crypto();
    let mut net = TestNet::new()?;
    let node = ClusterNode::start_in(&mut net, "lan", vec![("TOLK_PUBLIC_IP", String::new())])?;
    let http = reqwest::Client::new();
    node.until_healthy(&http).await?;
    // Its candidates: the namespace's address (found, not configured), then loopback.
    let log = node.log_tail(50);
    let found = format!("{}:40000", node.ip);
    assert!(
        log.contains(&found) && log.contains("127.0.0.1:40000"),
        "the relay offers {found} and 127.0.0.1:40000:\n{log}"
    );
    let (id, token) = node.create_event(&http, &["fr"], 10).await?;
    let floor = client::publish_tone(
        &http,
        &node.url(&format!("/whip/{id}/floor")),
        &token,
        OpusTone::new(440.0, 0.5)?,
    )
    .await?;

    let listener = client::listen(&http, &node.url(&format!("/whep/{id}/fr")), 1).await?;
    let stats = listener
        .wait_packets(0, 100, Duration::from_secs(20))
        .await
        .map_err(|e| anyhow::anyhow!("{e}; the node's log:\n{}", node.log_tail(20)))?;
    let level = tone_level_db(stats.last_seconds(1.0), 440.0);
    println!(
        "listener across the bridge: {} packets, {} missing, 440 Hz at {level:.1} dBFS",
        stats.packets,
        stats.missing()
    );
    assert!(level > -20.0, "the floor's tone is heard across the bridge ({level:.1} dBFS)");
    assert_eq!(stats.missing(), 0, "no packet lost on the way");
    listener.stop()?;
    floor.stop()?;
    Ok(())
}
