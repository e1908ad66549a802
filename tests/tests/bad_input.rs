//! Bad input gets a clear problem+json error and changes nothing: malformed SDP, JSON and RTP,
//! unknown events and languages, wrong or missing tokens, a session ended twice. Events survive a
//! restart. Bodies over 64 KiB, offers with hundreds of m-lines or that only send to WHEP, and
//! tokens of odd length or size are refused with a sentence too.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tolk_relay::api::{EventView, Problem};
use tolk_tests::client::{self, RtpSender};
use tolk_tests::relay::{ADMIN, TestRelay, floor_token, rtp_url};

/// The response is problem+json with this status and a sentence in `detail`.
async fn expect_problem(response: reqwest::Response, status: StatusCode) -> anyhow::Result<String> {
    assert_eq!(response.status(), status, "status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Problem = response.json().await?;
    assert!(body.detail.len() > 10 && body.detail.contains(' '), "detail is a sentence: {body:?}");
    assert_eq!(body.status, status.as_u16());
    Ok(body.detail)
}

const OFFER_VIDEO_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=setup:actpass\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_endpoints_reject_bad_input_clearly() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str();
    let http = &relay.http;
    let sdp =
        |url: String, body: &'static str| http.post(url).header("content-type", "application/sdp").body(body);

    // Malformed SDP → 400.
    let detail = expect_problem(
        sdp(relay.url(&format!("/whep/{id}/fr")), "v=0\r\nthis is not sdp").send().await?,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    assert!(detail.contains("SDP"), "{detail}");
    expect_problem(sdp(relay.url(&format!("/whep/{id}/fr")), "hello").send().await?, StatusCode::BAD_REQUEST)
        .await?;
    // An offer without audio → 400 that says what is missing.
    let detail = expect_problem(
        sdp(relay.url(&format!("/whep/{id}/fr")), OFFER_VIDEO_ONLY).send().await?,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    assert!(detail.contains("audio") || detail.contains("SDP"), "{detail}");
    // Wrong content type → 415.
    let response = http
        .post(relay.url(&format!("/whep/{id}/fr")))
        .header("content-type", "text/plain")
        .body("v=0")
        .send()
        .await?;
    expect_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await?;
    // Unknown event, unknown language, malformed language → 404.
    let detail =
        expect_problem(sdp(relay.url("/whep/nosuchevent/fr"), "v=0").send().await?, StatusCode::NOT_FOUND)
            .await?;
    assert!(detail.contains("nosuchevent"), "{detail}");
    let detail =
        expect_problem(sdp(relay.url(&format!("/whep/{id}/it")), "v=0").send().await?, StatusCode::NOT_FOUND)
            .await?;
    assert!(detail.contains("en, fr"), "names the channels there are: {detail}");
    expect_problem(sdp(relay.url(&format!("/whep/{id}/x!")), "v=0").send().await?, StatusCode::NOT_FOUND)
        .await?;
    // Floor publish without or with a wrong token → 401; with the admin token → 401 too.
    let whip = event.floor.whip_url.as_str().to_owned();
    let response = sdp(whip.clone(), "v=0").send().await?;
    assert_eq!(response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    expect_problem(response, StatusCode::UNAUTHORIZED).await?;
    expect_problem(sdp(whip.clone(), "v=0").bearer_auth("wrong").send().await?, StatusCode::UNAUTHORIZED)
        .await?;
    expect_problem(sdp(whip, "v=0").bearer_auth(ADMIN).send().await?, StatusCode::UNAUTHORIZED).await?;
    // Sessions: malformed or unknown id → 404.
    expect_problem(http.delete(relay.url("/whep/sessions/zzz")).send().await?, StatusCode::NOT_FOUND).await?;
    expect_problem(
        http.delete(relay.url(&format!("/whep/sessions/{}", "0".repeat(32)))).send().await?,
        StatusCode::NOT_FOUND,
    )
    .await?;
    expect_problem(http.get(relay.url("/no/such/page")).send().await?, StatusCode::NOT_FOUND).await?;

    // After all that, the relay still serves a real listener, and DELETE works once.
    let listener = client::listen(http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    assert_eq!(http.delete(&listener.session_url).send().await?.status(), StatusCode::OK);
    expect_problem(http.delete(&listener.session_url).send().await?, StatusCode::NOT_FOUND).await?;
    listener.stop()?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organiser_api_rejects_bad_requests_and_keeps_events_across_a_restart() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let http = &relay.http;
    let events = relay.url("/api/v1/events");
    let now = chrono::Utc::now();
    let good = json!({
        "title": "Plenary", "floor_language": "en", "languages": ["fr", "de"],
        "starts_at": (now - chrono::Duration::minutes(30)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(2)).to_rfc3339(), "expected_listeners": 300
    });
    // No token, wrong token → 401.
    expect_problem(http.post(&events).json(&good).send().await?, StatusCode::UNAUTHORIZED).await?;
    expect_problem(
        http.post(&events).bearer_auth("nope").json(&good).send().await?,
        StatusCode::UNAUTHORIZED,
    )
    .await?;
    expect_problem(http.get(&events).send().await?, StatusCode::UNAUTHORIZED).await?;
    // Malformed JSON, wrong fields, bad values → 400 naming the problem.
    let post = |body: String| {
        http.post(&events).bearer_auth(ADMIN).header("content-type", "application/json").body(body)
    };
    expect_problem(post("{not json".into()).send().await?, StatusCode::BAD_REQUEST).await?;
    let mut bad = good.clone();
    bad["ends_at"] = json!((now - chrono::Duration::hours(1)).to_rfc3339());
    let detail = expect_problem(post(bad.to_string()).send().await?, StatusCode::BAD_REQUEST).await?;
    assert!(detail.contains("ends_at"), "{detail}");
    let mut bad = good.clone();
    bad["languages"] = json!(["fr", "en"]);
    let detail = expect_problem(post(bad.to_string()).send().await?, StatusCode::BAD_REQUEST).await?;
    assert!(detail.contains("floor language"), "{detail}");
    let mut bad = good.clone();
    bad["languages"] = json!(["fr", "Français!"]);
    expect_problem(post(bad.to_string()).send().await?, StatusCode::BAD_REQUEST).await?;
    let mut bad = good.clone();
    bad["floor"] = json!({"kind": "carrier-pigeon"});
    expect_problem(post(bad.to_string()).send().await?, StatusCode::BAD_REQUEST).await?;
    let mut bad = good.clone();
    bad["expected_listeners"] = json!(0);
    expect_problem(post(bad.to_string()).send().await?, StatusCode::BAD_REQUEST).await?;
    // Dates at chrono's limits are a 400, not a panic (the window's arithmetic would overflow).
    for (starts, ends) in [
        ("+262142-12-31T00:00:00Z", "+262142-12-31T23:00:00Z"),
        ("-262143-01-01T00:00:00Z", "-262143-01-01T02:00:00Z"),
        ("1999-12-31T22:00:00Z", "2000-01-01T01:00:00Z"),
    ] {
        let mut bad = good.clone();
        bad["starts_at"] = json!(starts);
        bad["ends_at"] = json!(ends);
        let response = post(bad.to_string()).send().await?;
        let detail = expect_problem(response, StatusCode::BAD_REQUEST).await?;
        assert!(detail.contains("years 2000 and 9999") || detail.contains("starts_at"), "{starts}: {detail}");
    }
    // Nothing of that was stored.
    let listed: Value = http.get(&events).bearer_auth(ADMIN).send().await?.json().await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(0));

    // A good one: 201 with ids, links and a floor token; 128-bit id.
    let created = relay.create_event(good.clone()).await?;
    let id = created.id.as_str().to_owned();
    assert_eq!(id.len(), 32);
    assert!(created.listener_url.ends_with(&format!("/e/{id}")));
    assert!(floor_token(&created)?.len() >= 32);
    assert_eq!(
        serde_json::to_value(&created.channels)?,
        json!([
            {"language": "en", "kind": "floor"}, {"language": "fr", "kind": "interpretation"}, {"language": "de", "kind": "interpretation"}
        ])
    );
    // An RTP floor event gets an rtp_url.
    let mut rtp = good.clone();
    rtp["floor"] = json!({"kind": "rtp"});
    let rtp_event = relay.create_event(rtp).await?;
    let rtp_id = rtp_event.id.as_str().to_owned();
    let rtp_url = rtp_url(&rtp_event)?.to_owned();

    // Restart on the same data directory: both events are still there, the RTP floor port too.
    let data_dir = relay.data_dir.clone();
    relay.stop().await;
    let relay = TestRelay::start_in(data_dir, 1).await?;
    let read: EventView = relay.admin_get(&format!("/api/v1/events/{id}")).await?;
    assert_eq!(read.title, "Plenary");
    assert_eq!(read.languages.iter().map(|l| l.as_str()).collect::<Vec<_>>(), ["fr", "de"]);
    assert!(read.floor.token.is_none(), "the floor token is shown only once");
    let read: EventView = relay.admin_get(&format!("/api/v1/events/{rtp_id}")).await?;
    assert_eq!(read.floor.rtp_url.as_deref(), Some(rtp_url.as_str()));

    // Garbage on the RTP floor port changes nothing: a real floor after it is heard.
    let port_addr: std::net::SocketAddr = rtp_url.trim_start_matches("rtp://").parse()?;
    let junk = std::net::UdpSocket::bind("127.0.0.1:0")?;
    for datagram in [&b"x"[..], &[0x80; 5], &[0x40; 40], &[0x8f, 97, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]] {
        junk.send_to(datagram, port_addr)?;
    }
    let listener = client::listen(&relay.http, &relay.url(&format!("/whep/{rtp_id}/de")), 1).await?;
    let sender = RtpSender::start(port_addr, 440.0)?;
    let stats = listener.wait_packets(0, 50, Duration::from_secs(15)).await?;
    assert_eq!(stats.missing(), 0);

    // Cancel: gone from the API, its channel list and its media endpoints.
    let response =
        relay.http.delete(relay.url(&format!("/api/v1/events/{id}"))).bearer_auth(ADMIN).send().await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response =
        relay.http.delete(relay.url(&format!("/api/v1/events/{id}"))).bearer_auth(ADMIN).send().await?;
    expect_problem(response, StatusCode::NOT_FOUND).await?;
    expect_problem(
        relay.http.get(relay.url(&format!("/api/v1/events/{id}/channels"))).send().await?,
        StatusCode::NOT_FOUND,
    )
    .await?;

    // Security headers: pages carry a Content-Security-Policy (no inline script or style, framing
    // only by Tolk itself), every answer nosniff and no-referrer.
    let page = relay.http.get(relay.url(&format!("/e/{rtp_id}"))).send().await?;
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    };
    let csp = header(&page, "content-security-policy");
    for part in ["script-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'self'"] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    let api = relay.http.get(relay.url("/api/v1/languages")).send().await?;
    assert_eq!(header(&api, "x-content-type-options"), "nosniff");
    assert_eq!(header(&api, "content-security-policy"), "", "only pages carry a policy");

    listener.stop()?;
    sender.stop()?;
    relay.stop().await;
    Ok(())
}

/// An audio offer with `sections` audio m-lines, each in direction `direction`.
fn audio_offer(sections: usize, direction: &str) -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n",
    );
    let mids: Vec<String> = (0..sections).map(|m| m.to_string()).collect();
    sdp.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
    for mid in 0..sections {
        sdp.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=ice-ufrag:abcd\r\n\
             a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na={direction}\r\na=rtcp-mux\r\n\
             a=rtpmap:111 opus/48000/2\r\n"
        ));
    }
    sdp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_odd_offers_and_odd_tokens_are_refused_clearly() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr"], "whip").await?;
    let id = event.id.as_str();
    let http = &relay.http;
    let events = relay.url("/api/v1/events");
    let listed =
        |r: reqwest::Response| async move { anyhow::Ok(r.json::<Value>().await?.as_array().map(Vec::len)) };
    let before = listed(http.get(&events).bearer_auth(ADMIN).send().await?).await?;

    // A body over 64 KiB: 413 as problem+json, and nothing was stored.
    let huge = json!({"title": "x".repeat(70 * 1024), "floor_language": "en", "starts_at": "2026-12-01T09:00:00Z",
        "ends_at": "2026-12-01T10:00:00Z", "expected_listeners": 10});
    let response = http.post(&events).bearer_auth(ADMIN).json(&huge).send().await?;
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await?;
    assert_eq!(listed(http.get(&events).bearer_auth(ADMIN).send().await?).await?, before, "nothing stored");
    // The same on a booth action, whose body is read raw.
    let link = relay.booth_link(id, "Ana", &["fr"]).await?;
    let token = tolk_tests::relay::booth_token(&link)?.to_owned();
    let response = http
        .post(relay.url("/api/v1/booth/chat"))
        .bearer_auth(&token)
        .json(&json!({"text": "y".repeat(70 * 1024)}))
        .send()
        .await?;
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await?;

    // SDP with hundreds of m-lines, and a listener's offer that only sends: 400 with a sentence.
    let sdp = |body: String| {
        http.post(relay.url(&format!("/whep/{id}/fr"))).header("content-type", "application/sdp").body(body)
    };
    let detail =
        expect_problem(sdp(audio_offer(250, "recvonly")).send().await?, StatusCode::BAD_REQUEST).await?;
    println!("250 m-lines: {detail}");
    assert!(detail.contains("250 media sections"), "the offer is refused for its size: {detail}");
    for direction in ["sendonly", "inactive"] {
        let detail =
            expect_problem(sdp(audio_offer(1, direction)).send().await?, StatusCode::BAD_REQUEST).await?;
        println!("{direction} to WHEP: {detail}");
        assert!(!detail.contains("a=group"), "the offer is refused for its direction: {detail}");
        assert!(detail.contains("audio"), "{direction}: {detail}");
    }

    // Tokens of odd length, not hex, or large: 401 with a sentence, never a 5xx.
    for bad in ["abc".to_owned(), "zz".repeat(32), "f".repeat(8 * 1024), "not-a-token!".to_owned()] {
        let organiser = http.get(&events).bearer_auth(&bad).send().await?;
        expect_problem(organiser, StatusCode::UNAUTHORIZED).await?;
        let booth = http.get(relay.url("/api/v1/booth/state")).bearer_auth(&bad).send().await?;
        expect_problem(booth, StatusCode::UNAUTHORIZED).await?;
        let floor = http
            .post(event.floor.whip_url.as_str())
            .bearer_auth(&bad)
            .header("content-type", "application/sdp")
            .body(audio_offer(1, "sendonly"))
            .send()
            .await?;
        expect_problem(floor, StatusCode::UNAUTHORIZED).await?;
    }

    // After all that, a real listener is still served.
    let listener = client::listen(http, &relay.url(&format!("/whep/{id}/fr")), 1).await?;
    listener.stop()?;
    relay.stop().await;
    Ok(())
}
