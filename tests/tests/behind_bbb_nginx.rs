//! Tolk behind a BBB host's nginx, as `deploy/bbb` installs it: the real nginx with the shipped
//! `tolk.nginx` snippet in front of the relay, everything under the `/tolk/` prefix — pages,
//! assets, the API, WHEP with its Location, the booth websocket — and a listener hearing the floor
//! through it. Also runs the install script's own checks (`deploy/bbb/test/run`).

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use futures_util::{SinkExt, StreamExt};
use tolk_tests::audio::dominant_frequency;
use tolk_tests::client::{self, RtpSender};
use tolk_tests::nginx::{Nginx, repo};
use tolk_tests::relay::{ADMIN, TestRelay, booth_token, rtp_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolk_works_under_the_tolk_prefix_of_bbbs_nginx() -> anyhow::Result<()> {
    // nginx needs the relay's port and the relay its public URL (with nginx's port and the
    // prefix) before either starts: the relay takes a port known to be free.
    let relay_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let nginx = Nginx::start(relay_port, None).await?;
    let base = nginx.url("/tolk");
    let public = base.clone();
    let relay = TestRelay::start_with(1, move |s| {
        s.listen = std::net::SocketAddr::from(([127, 0, 0, 1], relay_port));
        s.public_url = public;
        s.public_url_from_listen = false;
    })
    .await?;
    let http = &relay.http;

    // The organiser page and its assets, through the prefix (not the regex location).
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(nginx.url("/tolk"))
        .send()
        .await?;
    assert_eq!(redirect.status().as_u16(), 301);
    assert_eq!(redirect.headers().get("location").and_then(|v| v.to_str().ok()), Some("/tolk/"));
    // Metrics are not for the public, through nginx or not.
    let metrics = http.get(nginx.url("/tolk/metrics")).send().await?;
    assert_eq!(metrics.status().as_u16(), 404, "/tolk/metrics");
    let home = http.get(nginx.url("/tolk/")).send().await?;
    assert!(home.status().is_success());
    assert!(home.text().await?.contains("static/organiser.js"), "the page's assets are not relative");
    for asset in ["/tolk/static/organiser.js", "/tolk/static/listener.js", "/tolk/static/tolk.css"] {
        let r = http.get(nginx.url(asset)).send().await?;
        assert_eq!(r.status().as_u16(), 200, "{asset}");
    }

    // The API through the prefix: links carry it.
    let now = chrono::Utc::now();
    let created = http
        .post(nginx.url("/tolk/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({
            "title": "Behind nginx", "floor_language": "en", "languages": ["fr"],
            "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "expected_listeners": 10, "floor": {"kind": "rtp"},
        }))
        .send()
        .await?;
    assert_eq!(created.status().as_u16(), 201);
    let event: tolk_relay::api::EventView = created.json().await?;
    let id = event.id.as_str();
    let listener_url = event.listener_url.as_str();
    assert_eq!(listener_url, format!("{base}/e/{id}"));
    let page = http.get(listener_url).send().await?;
    assert!(page.status().is_success());
    assert!(page.text().await?.contains("../static/listener.js"));

    // WHEP through nginx: the answer, a Location under the prefix, and the floor's tone.
    let rtp = rtp_url(&event)?.trim_start_matches("rtp://").parse()?;
    let floor = RtpSender::start(rtp, 440.0)?;
    let listener = client::listen(http, &nginx.url(&format!("/tolk/whep/{id}/en")), 1).await?;
    assert!(listener.session_url.starts_with(&format!("{base}/whep/sessions/")), "{}", listener.session_url);
    let stats = listener.wait_packets(0, 100, Duration::from_secs(20)).await?;
    let heard = dominant_frequency(stats.last_seconds(1.0));
    assert!((heard - 440.0).abs() <= 5.0, "heard {heard} Hz through nginx");
    let ended = http.delete(&listener.session_url).send().await?;
    assert!(ended.status().is_success(), "DELETE {} answered {}", listener.session_url, ended.status());

    // The booth websocket upgrades through the prefix and pushes the booth's state.
    let booth = relay.booth_link(id, "Ana", &["fr"]).await?;
    let token = booth_token(&booth)?;
    let ws_url = format!("ws://127.0.0.1:{}/tolk/api/v1/booth/ws", nginx.port());
    let (mut socket, response) = tokio_tungstenite::connect_async(&ws_url).await?;
    assert_eq!(response.status().as_u16(), 101);
    let hello = serde_json::json!({ "token": token }).to_string();
    socket.send(tokio_tungstenite::tungstenite::Message::Text(hello.into())).await?;
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .context("no push through the proxy")?
        .context("socket closed")??;
    assert!(first.to_text()?.contains("\"fr\""), "{first:?}");

    floor.stop()?;
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

#[test]
fn the_bbb_install_script_passes_its_checks() -> anyhow::Result<()> {
    let output = Command::new("sh").arg(repo().join("deploy/bbb/test/run")).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "deploy/bbb/test/run failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("0 failed"), "{text}");
    Ok(())
}
