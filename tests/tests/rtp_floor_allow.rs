//! An RTP floor with an allow-list takes audio only from the sources on it: a sender elsewhere
//! never locks the floor (its datagrams are counted, listeners hear nothing), one on the list is
//! heard; a list with a mistake is refused with a sentence and creates nothing.

use std::time::Duration;

use serde_json::{Value, json};
use tolk_relay::api::EventView;
use tolk_tests::client;
use tolk_tests::relay::{ADMIN, TestRelay, problem_detail};

fn rtp_event(allow: &[&str]) -> Value {
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    json!({
        "title": "Allow-list",
        "floor_language": "en",
        "languages": ["fr"],
        "starts_at": (now - hour).to_rfc3339(),
        "ends_at": (now + hour).to_rfc3339(),
        "expected_listeners": 10,
        "floor": {"kind": "rtp", "allow": allow},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtp_floor_takes_audio_only_from_its_allow_list() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    // The tone comes from 127.0.0.1, which this list does not name.
    let closed: EventView = relay.create_event(rtp_event(&["192.0.2.0/24"])).await?;
    assert_eq!(closed.floor.allow, ["192.0.2.0/24"]);
    let listener =
        client::listen(&relay.http, &relay.url(&format!("/whep/{}/en", closed.id.as_str())), 1).await?;
    let sender = relay.tone_floor(&closed, 440.0).await?;
    relay.wait_metric("tolk_rtp_floor_rejected_total", 100.0, Duration::from_secs(10)).await?;
    assert_eq!(listener.track(0).packets, 0, "nothing from outside the list reaches a listener");
    sender.stop()?;
    listener.stop()?;

    // The same sender on a list that names it is heard.
    let open: EventView = relay.create_event(rtp_event(&["127.0.0.1", "2001:db8::/32"])).await?;
    let listener =
        client::listen(&relay.http, &relay.url(&format!("/whep/{}/en", open.id.as_str())), 1).await?;
    let sender = relay.tone_floor(&open, 440.0).await?;
    listener.wait_packets(0, 25, Duration::from_secs(10)).await?;
    sender.stop()?;
    listener.stop()?;

    // A mistake: 400 with a sentence, nothing created.
    let before: Vec<Value> = relay.admin_get("/api/v1/events").await?;
    let answer = relay
        .http
        .post(relay.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&rtp_event(&["192.0.2.0/33"]))
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 400);
    let detail = problem_detail(&answer.json().await?)?;
    assert!(detail.contains("floor.allow") && detail.contains("prefix length"), "{detail}");
    let after: Vec<Value> = relay.admin_get("/api/v1/events").await?;
    assert_eq!(after.len(), before.len());
    relay.stop().await;
    Ok(())
}
