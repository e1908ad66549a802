//! Faults on a real relay: a panic on a media shard drops one listener and is counted while the
//! others keep hearing the floor; a dead shard or a database that does not answer turns
//! `/healthz` into a 503 with a sentence; oversized offers are refused before a shard sees them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tolk_relay::ids::SessionId;
use tolk_relay::net::Fault;
use tolk_tests::client;
use tolk_tests::relay::{TestRelay, problem_detail};

/// `/healthz`: its status and, for a 503, the problem's sentence.
async fn healthz(relay: &TestRelay) -> anyhow::Result<(StatusCode, String)> {
    let response = relay.http.get(relay.url("/healthz")).send().await?;
    let status = response.status();
    if status == StatusCode::OK {
        return Ok((status, response.text().await?));
    }
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await?;
    Ok((status, problem_detail(&body)?))
}

fn session_of(listener: &client::Client) -> anyhow::Result<SessionId> {
    let id = listener.session_url.rsplit('/').next().unwrap_or_default();
    Ok(SessionId::parse(id)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_a_shard_drops_one_listener_and_a_dead_shard_fails_healthz() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let sender = relay.tone_floor(&event, 440.0).await?;
    let url = relay.url(&format!("/whep/{}/fr", event.id.as_str()));
    let victim = client::listen(&relay.http, &url, 1).await?;
    let other = client::listen(&relay.http, &url, 1).await?;
    victim.wait_packets(0, 10, Duration::from_secs(10)).await?;
    other.wait_packets(0, 10, Duration::from_secs(10)).await?;
    assert_eq!(healthz(&relay).await?, (StatusCode::OK, "ok\n".into()));

    // The core panics while handling the victim's session: contained, that session dropped.
    let session = session_of(&victim)?;
    let shard = relay.server.shard_of(&session).expect("the victim's session is live");
    relay.server.inject_fault(shard, Fault::PanicOn(session))?;
    relay.wait_metric("tolk_shard_panics_total", 1.0, Duration::from_secs(5)).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while relay.metric("tolk_sessions").await? > 1.0 {
        assert!(std::time::Instant::now() < deadline, "the victim's session is not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = other.track(0).packets;
    other.wait_packets(0, before + 25, Duration::from_secs(5)).await?;
    assert_eq!(healthz(&relay).await?.0, StatusCode::OK, "a contained panic leaves the node healthy");
    let late = client::listen(&relay.http, &url, 1).await?;
    late.wait_packets(0, 10, Duration::from_secs(10)).await?;

    // A panic outside the containment ends the shard thread: healthz says so.
    relay.server.inject_fault(shard, Fault::Die)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (status, detail) = loop {
        let (status, detail) = healthz(&relay).await?;
        if status != StatusCode::OK || std::time::Instant::now() > deadline {
            break (status, detail);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{detail}");
    assert!(detail.contains("media shard 0 has stopped"), "{detail}");
    let refused = relay.http.post(&url).header("content-type", "application/sdp").body("v=0").send().await?;
    assert!(refused.status().is_client_error() || refused.status() == StatusCode::SERVICE_UNAVAILABLE);

    for c in [victim, other, late] {
        let _ = c.stop();
    }
    sender.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_when_the_database_does_not_answer() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    assert_eq!(healthz(&relay).await?.0, StatusCode::OK);
    relay.server.store().close_for_test().await;
    let (status, detail) = healthz(&relay).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{detail}");
    assert!(detail.contains("database"), "{detail}");
    relay.stop().await;
    Ok(())
}

/// Offers with hundreds of media sections or candidates are refused by the HTTP task with a
/// sentence; the relay serves the next listener as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_over_the_limits_are_refused_with_a_sentence() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "rtp").await?;
    let url = relay.url(&format!("/whep/{}/fr", event.id.as_str()));
    let offer = client::vanishing_offer()?;
    let (head, section) = offer.split_at(offer.find("m=audio").unwrap_or(0));
    let section = section.replace("a=mid:0", "a=mid:{}");
    let sections: String = (0..40).map(|i| section.replace("{}", &i.to_string())).collect();
    let candidates: String = (0..100)
        .map(|i| format!("a=candidate:{i} 1 udp 2122260223 192.0.2.{} 5000 typ host\r\n", i % 250 + 1))
        .collect();
    for (body, says) in [
        (format!("{head}{sections}"), "40 media sections"),
        (format!("{offer}{candidates}"), "ICE candidates"),
    ] {
        let response =
            relay.http.post(&url).header("content-type", "application/sdp").body(body).send().await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let detail = problem_detail(&response.json().await?)?;
        assert!(detail.contains(says) && detail.contains("at most"), "{detail}");
    }
    let listener = client::listen(&relay.http, &url, 1).await?;
    assert_eq!(relay.http.delete(&listener.session_url).send().await?.status(), StatusCode::OK);
    listener.stop()?;
    relay.stop().await;
    Ok(())
}
