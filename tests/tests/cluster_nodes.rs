//! Three nodes as separate `tolk serve` processes, each in its own network namespace, with a real
//! Redis and a throwaway PostgreSQL (tests/src/cluster.rs). Listeners join through node A and are
//! placed on B and C; the floor published on A is heard everywhere. Then the faults, in turn: an
//! edge is killed (its listeners listen again on another node within 3 s), the origin is killed
//! (the edge's listeners stay connected and hear the floor again within 5 s, once the floor
//! publisher has come back through another node), Redis stops for 10 s (media keeps flowing,
//! control comes back with it).

use std::time::{Duration, Instant};

use serde_json::Value;
use tolk_tests::audio::dominant_frequency;
use tolk_tests::client::{self, Client};
use tolk_tests::cluster::TestCluster;

const FLOOR: f64 = 440.0;

/// A listener through `entry`, following the cluster's redirect.
async fn listen_via(entry: &str) -> anyhow::Result<Client> {
    client::listen(&reqwest::Client::new(), entry, 1).await
}

/// What a node's record in Redis says about its listeners, awaited until `what` holds.
async fn until_record(cluster: &TestCluster, node: &str, what: impl Fn(u64) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = cluster.redis.get(&format!("tolk:node:{node}")).await?;
        let listeners =
            record.and_then(|r| serde_json::from_str::<Value>(&r).ok()).and_then(|v| v["listeners"].as_u64());
        if listeners.is_some_and(&what) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "node {node}'s record says {listeners:?} listeners");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The frequency of the last half second a listener heard.
fn tone(client: &Client) -> f64 {
    dominant_frequency(client.track(0).last_seconds(0.5))
}

/// Wait until `client` receives packets after `since` and hears the floor; returns when.
async fn hears_floor_after(client: &Client, since: Instant, within: Duration) -> anyhow::Result<Instant> {
    let deadline = since + within;
    loop {
        let track = client.track(0);
        let heard = track.samples_since(since).len();
        if heard >= 24_000 && (tone(client) - FLOOR).abs() <= 5.0 {
            // The first packet after `since`.
            let first = track.arrivals.iter().find(|(at, _)| *at >= since).map(|(at, _)| *at);
            return Ok(first.unwrap_or_else(Instant::now));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no floor heard {within:?} after the change ({heard} samples)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener page's reconnection: once no packet came for a second, listen again through
/// `entry` (retrying while the cluster settles).
async fn reconnect_when_stalled(client: &Client, entry: &str) -> anyhow::Result<Client> {
    loop {
        let last = client.track(0).last_packet_at;
        if last.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listen_via(entry).await {
            Ok(again) => return Ok(again),
            Err(e) if Instant::now() < deadline => {
                println!("listen again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_spread_over_nodes_and_survive_an_edge_the_origin_and_redis_going_away()
-> anyhow::Result<()> {
    // A takes one listener, B two, C five: listeners who come through A go on to B, then C.
    let mut cluster = TestCluster::start(&["a", "b", "c"], |name| {
        let capacity = match name {
            "a" => "1",
            "b" => "2",
            _ => "5",
        };
        vec![("TOLK_CAPACITY_LISTENERS", capacity.to_owned())]
    })
    .await?;
    let (a, c) = (cluster.node("a")?.base.clone(), cluster.node("c")?.base.clone());
    let (id, token) = cluster.create_event("a", &["fr"], 6).await?;
    let http = reqwest::Client::new();
    let floor = client::publish(&http, &format!("{a}/whip/{id}/floor"), &token, FLOOR).await?;
    assert_eq!(cluster.origin_of(&id).await?.as_deref(), Some("a"), "the floor's node is the origin");

    // Five listeners through A: one on A, two on B, two on C.
    let entry_a = format!("{a}/whep/{id}/en");
    let mut listeners = Vec::new();
    for (expected, count_after) in [("a", 1), ("b", 1), ("b", 2), ("c", 1), ("c", 2)] {
        let listener = listen_via(&entry_a).await?;
        let node = cluster.node_of(&listener.session_url).unwrap_or("?").to_owned();
        assert_eq!(node, expected, "listener {} placed on {node}", listeners.len() + 1);
        until_record(&cluster, &node, |n| n >= count_after).await?;
        listeners.push(listener);
    }
    for listener in &listeners {
        hears_floor_after(listener, Instant::now(), Duration::from_secs(10)).await?;
    }
    assert_eq!(cluster.metric("a", "tolk_cluster_cascades_out ").await?, Some(2.0), "one cascade per edge");

    // An edge dies: B's listeners listen again through A, on C, within 3 s.
    cluster.node_mut("b")?.kill();
    let killed = Instant::now();
    for i in [1, 2] {
        let again = reconnect_when_stalled(&listeners[i], &entry_a).await?;
        assert_eq!(cluster.node_of(&again.session_url), Some("c"));
        let back = hears_floor_after(&again, killed, Duration::from_secs(10)).await?;
        println!("edge B killed: listener {} listening again on C after {:?}", i + 1, back - killed);
        assert!(back - killed <= Duration::from_secs(3), "back after {:?}", back - killed);
        listeners[i] = again;
    }

    // The origin dies: C's listeners stay connected; the floor publisher comes back through C
    // (the cluster URL), and the floor is heard again within 5 s.
    let edge_sessions: Vec<String> = listeners[3..].iter().map(|l| l.session_url.clone()).collect();
    cluster.node_mut("a")?.kill();
    let killed = Instant::now();
    drop(floor);
    let republish = async {
        let deadline = killed + Duration::from_secs(10);
        loop {
            match client::publish(&http, &format!("{c}/whip/{id}/floor"), &token, FLOOR).await {
                Ok(floor) => return Ok(floor),
                Err(e) if Instant::now() < deadline => {
                    println!("floor publish again: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    };
    let floor: Client = republish.await?;
    for listener in &listeners[3..] {
        let back =
            hears_floor_after(listener, killed + Duration::from_millis(100), Duration::from_secs(10)).await?;
        println!("origin A killed: a listener on C hears the floor again after {:?}", back - killed);
        assert!(back - killed <= Duration::from_secs(5), "floor back after {:?}", back - killed);
    }
    let still: Vec<String> = listeners[3..].iter().map(|l| l.session_url.clone()).collect();
    assert_eq!(still, edge_sessions, "the edge's listeners kept their sessions");
    assert_eq!(cluster.origin_of(&id).await?.as_deref(), Some("c"), "C took the event");

    // Redis stops for 10 s: media keeps flowing; control comes back with Redis.
    let listener = &listeners[3];
    let before = listener.track(0).packets;
    cluster.redis.stop();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = listener.track(0);
    let gap = during.arrivals.windows(2).filter(|w| w[1].0 >= stopped).map(|w| w[1].0 - w[0].0).max();
    println!("Redis down 10 s: {} packets, largest gap {gap:?}", during.packets - before);
    assert!(during.packets - before >= 450, "media kept flowing ({} packets)", during.packets - before);
    assert!(gap.is_some_and(|g| g < Duration::from_millis(200)), "no gap in the media: {gap:?}");
    cluster.redis.resume().await?;
    let resumed = Instant::now();
    while cluster.origin_of(&id).await?.as_deref() != Some("c")
        || cluster.redis.keys("tolk:node:*").await?.len() != 1
    {
        anyhow::ensure!(resumed.elapsed() < Duration::from_secs(5), "control did not come back with Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("Redis back: node and lease registered again after {:?}", resumed.elapsed());
    let newcomer = listen_via(&format!("{c}/whep/{id}/fr")).await?;
    hears_floor_after(&newcomer, Instant::now(), Duration::from_secs(10)).await?;
    drop(floor);
    Ok(())
}

/// The listener page (Chromium) on node A is sent to edge B; B dies; without a click the page
/// listens again, through A, on C within 3 s, and hears the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_page_comes_back_on_another_node_when_its_edge_dies() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(&["a", "b", "c"], |name| {
        let capacity = match name {
            "a" => "0",
            "b" => "1",
            _ => "5",
        };
        vec![("TOLK_CAPACITY_LISTENERS", capacity.to_owned())]
    })
    .await?;
    let a = cluster.node("a")?.base.clone();
    let (id, token) = cluster.create_event("a", &["fr"], 5).await?;
    let _floor =
        client::publish(&reqwest::Client::new(), &format!("{a}/whip/{id}/floor"), &token, FLOOR).await?;

    let browser = tolk_tests::browser::Browser::start(None).await?;
    browser.goto(&format!("{a}/e/{id}?lang=en&autoplay=1")).await?;
    browser
        .wait_for("window.tolkListener && window.tolkListener.state === 'listening'", Duration::from_secs(20))
        .await?;
    until_record(&cluster, "b", |n| n == 1).await?;
    browser.wait_for("window.tolkListener.firstAudioMs !== null", Duration::from_secs(10)).await?;
    browser
        .eval(
            "(() => { window.tolkStates = []; setInterval(() => { const s = window.tolkListener.state; \
             if (window.tolkStates[window.tolkStates.length - 1] !== s) window.tolkStates.push(s); }, 20); \
             return true; })()",
        )
        .await?;

    cluster.node_mut("b")?.kill();
    let killed = Instant::now();
    browser
        .wait_for(
            "window.tolkStates.includes('reconnecting') && window.tolkListener.state === 'listening'",
            Duration::from_secs(10),
        )
        .await?;
    until_record(&cluster, "c", |n| n == 1).await?;
    let measured = browser.eval_promise("window.tolkListener.measureTone(500)").await?;
    let back = killed.elapsed();
    let frequency = measured["frequency"].as_f64().unwrap_or(0.0);
    println!(
        "edge B killed: the listener page listens on C again after {back:?} (states {}), hears {measured}",
        browser.eval("window.tolkStates").await?
    );
    assert!((frequency - FLOOR).abs() < 10.0, "the page hears {frequency} Hz");
    assert!(back <= Duration::from_secs(3), "the page was back after {back:?}");
    browser.close().await?;
    Ok(())
}

/// `tolk drain` sends a node's listeners on (they reconnect through it and are placed on the
/// other node, no gap longer than a reconnect); `tolk cluster status` shows the nodes, the
/// draining one, and where the event runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_moves_its_listeners_and_the_status_shows_it() -> anyhow::Result<()> {
    let cluster =
        TestCluster::start(&["a", "b"], |_| vec![("TOLK_CAPACITY_LISTENERS", "5".to_owned())]).await?;
    let (a, b) = (cluster.node("a")?.base.clone(), cluster.node("b")?.base.clone());
    let (id, token) = cluster.create_event("a", &["fr"], 4).await?;
    let _floor =
        client::publish(&reqwest::Client::new(), &format!("{a}/whip/{id}/floor"), &token, FLOOR).await?;
    let entry_b = format!("{b}/whep/{id}/fr");
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let listener = listen_via(&entry_b).await?;
        assert_eq!(cluster.node_of(&listener.session_url), Some("b"));
        listeners.push(listener);
    }
    for listener in &listeners {
        hears_floor_after(listener, Instant::now(), Duration::from_secs(10)).await?;
    }

    let tolk = tolk_tests::cluster::tolk_binary()?;
    let cli = |args: &[&str]| {
        std::process::Command::new(&tolk)
            .args(args)
            .env("TOLK_REDIS_URL", cluster.redis.url())
            .env("TOLK_CLUSTER_SECRET", tolk_tests::cluster::SECRET)
            .env("TOLK_LOG", "warn")
            .output()
    };
    let drained = cli(&["drain", "b"])?;
    assert!(drained.status.success(), "{}", String::from_utf8_lossy(&drained.stderr));
    let asked = Instant::now();
    let mut longest = Duration::ZERO;
    for listener in &mut listeners {
        let again = reconnect_when_stalled(listener, &entry_b).await?;
        assert_eq!(cluster.node_of(&again.session_url), Some("a"), "sent on to A");
        let last = listener.track(0).last_packet_at.unwrap_or(asked);
        let back = hears_floor_after(&again, last, Duration::from_secs(10)).await?;
        longest = longest.max(back - last);
        *listener = again;
    }
    println!("drain: every listener moved to A within {:?}; longest gap {longest:?}", asked.elapsed());
    assert!(longest <= Duration::from_secs(3), "the gap was {longest:?}");
    until_record(&cluster, "b", |n| n == 0).await?;

    let status = cli(&["cluster", "status"])?;
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    println!("{text}");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let line = |node: &str| text.lines().find(|l| l.starts_with(node)).unwrap_or_default().to_owned();
    assert!(line("b ").contains("draining") && line("a ").contains("serving"), "{text}");
    assert!(
        text.contains(&id) && text.lines().any(|l| l.starts_with(id.as_str()) && l.contains(" a ")),
        "{text}"
    );
    Ok(())
}
