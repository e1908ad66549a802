//! The BBB stand-in's own strictness: checksums as bbb-web checks them (each algorithm, refused
//! ones, wrong secret, missing), join's session token and cookie, the websocket refused without
//! them, ping/pong, bad messages answered without losing the socket, the end of a meeting and a
//! network drop, and both offer flows carrying the meeting's tone to a real str0m peer.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha1::Digest;
use str0m::Rtc;
use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind, Mid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tolk_tests::audio::dominant_frequency;
use tolk_tests::bbb::{BbbStandIn, OfferFlow, StandInConfig};
use tolk_tests::client::{self, Client};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WITHIN: Duration = Duration::from_secs(5);

/// Percent-encoding as `encodeURIComponent` does it.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Computed here independently of the stand-in.
fn hash(algorithm: &str, data: &str) -> String {
    match algorithm {
        "sha1" => hex::encode(sha1::Sha1::digest(data)),
        "sha256" => hex::encode(sha2::Sha256::digest(data)),
        "sha384" => hex::encode(sha2::Sha384::digest(data)),
        _ => hex::encode(sha2::Sha512::digest(data)),
    }
}

/// `{api}api/{call}?{query}&checksum=…` signed with `algorithm` and `secret`.
fn signed(bbb: &BbbStandIn, call: &str, query: &str, algorithm: &str, secret: &str) -> String {
    let checksum = hash(algorithm, &format!("{call}{query}{secret}"));
    format!("{}api/{call}?{query}&checksum={checksum}", bbb.api_url())
}

/// A plain HTTP/1.1 GET: (status, headers in lower case, body). (Not reqwest: with the relay's
/// rustls features, its default client needs a process-wide crypto provider.)
async fn get_with_headers(url: &str) -> anyhow::Result<(u16, Vec<(String, String)>, String)> {
    let rest = url.strip_prefix("http://").context("not an http URL")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(WITHIN, stream.read_to_end(&mut raw)).await??;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).context("no status line")?.parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, body.to_owned()))
}

async fn get(url: &str) -> anyhow::Result<(u16, String)> {
    let (status, _, body) = get_with_headers(url).await?;
    Ok((status, body))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The text of `<name>…</name>` in an XML answer.
fn field(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].to_owned())
}

fn returncode(xml: &str) -> String {
    field(xml, "returncode").unwrap_or_default()
}

struct Joined {
    session_token: String,
    jsessionid: String,
    set_cookie: String,
    xml: String,
}

async fn join(bbb: &BbbStandIn, meeting: &str) -> anyhow::Result<Joined> {
    let query = format!("fullName={}&meetingID={}&role=VIEWER&redirect=false", enc("Tolk bot"), enc(meeting));
    let (_, headers, xml) = get_with_headers(&signed(bbb, "join", &query, "sha256", bbb.secret())).await?;
    let set_cookie = header(&headers, "set-cookie").to_owned();
    anyhow::ensure!(returncode(&xml) == "SUCCESS", "join failed: {xml}");
    let jsessionid = set_cookie
        .split(';')
        .find_map(|p| p.trim().strip_prefix("JSESSIONID="))
        .unwrap_or_default()
        .to_owned();
    Ok(Joined {
        session_token: field(&xml, "session_token").unwrap_or_default(),
        jsessionid,
        set_cookie,
        xml,
    })
}

fn socket_url(bbb: &BbbStandIn, token: &str) -> String {
    format!(
        "{}?sessionToken={}",
        bbb.api_url().replace("http://", "ws://").replace("/bigbluebutton/", "/bbb-webrtc-sfu"),
        enc(token)
    )
}

async fn connect(bbb: &BbbStandIn, token: &str, cookie: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = socket_url(bbb, token).into_client_request()?;
    if let Some(cookie) = cookie {
        let value = HeaderValue::from_str(cookie).map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
        request.headers_mut().insert("cookie", value);
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

async fn connect_joined(bbb: &BbbStandIn, joined: &Joined) -> anyhow::Result<Socket> {
    Ok(connect(bbb, &joined.session_token, Some(&format!("JSESSIONID={}", joined.jsessionid))).await?)
}

fn refused_with(result: Result<Socket, tungstenite::Error>) -> Option<u16> {
    match result {
        Err(tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        _ => None,
    }
}

async fn send(socket: &mut Socket, message: Value) -> anyhow::Result<()> {
    socket.send(Message::Text(message.to_string().into())).await?;
    Ok(())
}

/// The next JSON message, within 5 s.
async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    tokio::time::timeout(WITHIN, async {
        while let Some(message) = socket.next().await {
            match message? {
                Message::Text(text) => return Ok(serde_json::from_str(&text)?),
                Message::Close(frame) => anyhow::bail!("closed: {frame:?}"),
                _ => {}
            }
        }
        anyhow::bail!("the socket ended")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no message within 5 s"))?
}

/// The next message with this `id` (skipping others), within 5 s.
async fn next_with_id(socket: &mut Socket, id: &str) -> anyhow::Result<Value> {
    loop {
        let message = next_json(socket).await?;
        if message["id"] == id {
            return Ok(message);
        }
    }
}

fn start_message(sdp_offer: Option<&str>) -> Value {
    let mut start =
        json!({"id": "start", "type": "audio", "role": "recv", "clientSessionNumber": 1, "extension": null});
    if let Some(sdp) = sdp_offer {
        start["sdpOffer"] = json!(sdp);
    }
    start
}

/// A str0m peer as a client would be: full ICE, Opus, on its own loopback socket.
fn client_rtc() -> anyhow::Result<(Rtc, UdpSocket, std::net::SocketAddr)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let local = socket.local_addr()?;
    let mut rtc =
        Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host(local, "udp")?);
    Ok((rtc, socket, local))
}

/// What the client heard: at least 2 s of the tone, at `tone_hz`.
async fn assert_hears(listener: &Client, tone_hz: f64) -> anyhow::Result<()> {
    let track = listener.wait_packets(0, 100, WITHIN).await?;
    let heard = dominant_frequency(track.last_seconds(1.0));
    assert!((heard - tone_hz).abs() <= 4.0, "heard {heard} Hz, the meeting's tone is {tone_hz} Hz");
    assert_eq!(track.missing(), 0, "packets lost on loopback");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_accepted_with_each_algorithm() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("room one", 440.0);
    let query = format!("meetingID={}", enc("room one"));
    for algorithm in ["sha1", "sha256", "sha384", "sha512"] {
        let (status, xml) = get(&signed(&bbb, "isMeetingRunning", &query, algorithm, bbb.secret())).await?;
        assert_eq!(status, 200);
        assert_eq!(returncode(&xml), "SUCCESS", "{algorithm}: {xml}");
        assert_eq!(field(&xml, "running").as_deref(), Some("true"), "{algorithm}: {xml}");
    }
    // The checksum may come first; it is cut out of the query with its '&'.
    let checksum = hash("sha1", &format!("isMeetingRunning{query}{}", bbb.secret()));
    let (_, xml) = get(&format!("{}api/isMeetingRunning?checksum={checksum}&{query}", bbb.api_url())).await?;
    assert_eq!(returncode(&xml), "SUCCESS", "{xml}");
    // A meeting that does not exist is not running.
    let (_, xml) = get(&signed(&bbb, "isMeetingRunning", "meetingID=nope", "sha256", bbb.secret())).await?;
    assert_eq!(field(&xml, "running").as_deref(), Some("false"), "{xml}");
    let (_, xml) = get(&signed(&bbb, "getMeetingInfo", &query, "sha512", bbb.secret())).await?;
    assert_eq!(field(&xml, "meetingName").as_deref(), Some("room one"), "{xml}");
    assert_eq!(field(&xml, "running").as_deref(), Some("true"), "{xml}");
    let (_, xml) = get(&signed(&bbb, "getMeetingInfo", "meetingID=nope", "sha512", bbb.secret())).await?;
    assert_eq!(field(&xml, "messageKey").as_deref(), Some("notFound"), "{xml}");

    let stats = bbb.stats();
    assert_eq!(stats.checksum_failures, 0);
    assert_eq!(stats.calls.len(), 8);
    assert_eq!(stats.calls[..6], ["isMeetingRunning"; 6]);
    assert_eq!(stats.calls[6..], ["getMeetingInfo", "getMeetingInfo"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_refused_when_wrong() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig { algorithms: vec!["sha256", "sha512"], ..Default::default() })
        .await?;
    bbb.create_meeting("m", 440.0);
    let secret = bbb.secret().to_owned();
    let checksum_error = |xml: &str| {
        returncode(xml) == "FAILED" && field(xml, "messageKey").as_deref() == Some("checksumError")
    };
    // Accepted algorithms pass.
    let (_, xml) = get(&signed(&bbb, "isMeetingRunning", "meetingID=m", "sha256", &secret)).await?;
    assert_eq!(returncode(&xml), "SUCCESS", "{xml}");

    let upper = hash("sha256", &format!("isMeetingRunningmeetingID=m{secret}")).to_uppercase();
    let api = bbb.api_url();
    let refused = [
        // An algorithm not accepted, though the checksum is right.
        signed(&bbb, "isMeetingRunning", "meetingID=m", "sha1", &secret),
        signed(&bbb, "isMeetingRunning", "meetingID=m", "sha384", &secret),
        // A wrong secret.
        signed(&bbb, "isMeetingRunning", "meetingID=m", "sha256", "not-the-secret"),
        // Signed for another call.
        signed(&bbb, "getMeetingInfo", "meetingID=m", "sha256", &secret)
            .replace("getMeetingInfo?", "isMeetingRunning?"),
        // A parameter changed after signing.
        signed(&bbb, "isMeetingRunning", "meetingID=m", "sha256", &secret)
            .replace("meetingID=m", "meetingID=n"),
        // Upper-case hex (bbb-web compares the strings).
        format!("{api}api/isMeetingRunning?meetingID=m&checksum={upper}"),
        // No checksum, an empty one, one of no known length.
        format!("{api}api/isMeetingRunning?meetingID=m"),
        format!("{api}api/isMeetingRunning?meetingID=m&checksum="),
        format!("{api}api/join?meetingID=m&fullName=x&role=VIEWER&checksum=abc123"),
    ];
    for url in &refused {
        let (status, xml) = get(url).await?;
        assert_eq!(status, 200, "{url}");
        assert!(checksum_error(&xml), "{url}: {xml}");
    }
    let stats = bbb.stats();
    assert_eq!(stats.checksum_failures as usize, refused.len());
    assert!(stats.joins.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_issues_a_session_token_and_a_cookie() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("m", 440.0);
    let secret = bbb.secret().to_owned();
    let query = format!(
        "fullName={}&meetingID=m&role=VIEWER&redirect=false&bot=true&excludeFromDashboard=true&userdata-bbb_tolk={}",
        enc("Tolk – interprétation"),
        enc("a&b=c")
    );
    let (status, headers, xml) = get_with_headers(&signed(&bbb, "join", &query, "sha1", &secret)).await?;
    assert_eq!(status, 200);
    let set_cookie = header(&headers, "set-cookie").to_owned();
    assert_eq!(returncode(&xml), "SUCCESS", "{xml}");
    assert_eq!(field(&xml, "messageKey").as_deref(), Some("successfullyJoined"));
    let token = field(&xml, "session_token").unwrap_or_default();
    assert!(token.len() >= 12, "{xml}");
    assert!(field(&xml, "user_id").is_some_and(|u| u.starts_with("w_")), "{xml}");
    assert!(field(&xml, "auth_token").is_some_and(|t| !t.is_empty()), "{xml}");
    assert_eq!(field(&xml, "guestStatus").as_deref(), Some("ALLOW"));
    assert!(
        field(&xml, "url").is_some_and(|u| u.ends_with(&format!("/html5client/join?sessionToken={token}")))
    );
    assert!(set_cookie.starts_with("JSESSIONID="), "{set_cookie}");
    assert!(set_cookie.contains("Path=/") && set_cookie.contains("HttpOnly"), "{set_cookie}");

    // A second join (a reconnect) gets its own token and cookie.
    let again = join(&bbb, "m").await?;
    assert_ne!(again.session_token, token);
    assert_ne!(again.set_cookie, set_cookie);
    assert!(!again.xml.is_empty());

    let stats = bbb.stats();
    assert_eq!(stats.joins.len(), 2);
    assert_eq!(stats.joins[0]["fullName"], "Tolk – interprétation");
    assert_eq!(stats.joins[0]["userdata-bbb_tolk"], "a&b=c");
    assert_eq!(stats.joins[0]["bot"], "true");
    assert!(!stats.joins[0].contains_key("checksum"));

    // stuns takes the session token, no checksum.
    let (status, body) = get(&format!("{}api/stuns?sessionToken={token}", bbb.api_url())).await?;
    assert_eq!(status, 200, "{body}");
    let stuns: Value = serde_json::from_str(&body)?;
    assert_eq!(stuns["stunServers"][0]["url"], "stun:127.0.0.1:3478");
    assert_eq!(stuns["turnServers"], json!([]));
    let (status, _) = get(&format!("{}api/stuns?sessionToken=unknown", bbb.api_url())).await?;
    assert_eq!(status, 401);

    // Refusals, as BBB words them.
    let failures = [
        ("fullName=x&meetingID=nope&role=VIEWER&redirect=false", "invalidMeetingIdentifier"),
        ("meetingID=m&role=VIEWER&redirect=false", "missingParamFullName"),
        ("fullName=x&role=VIEWER&redirect=false", "missingParamMeetingID"),
        ("fullName=x&meetingID=m&redirect=false", "invalidPassword"),
    ];
    for (query, key) in failures {
        let (status, xml) = get(&signed(&bbb, "join", query, "sha256", &secret)).await?;
        assert_eq!(status, 200);
        assert_eq!(returncode(&xml), "FAILED", "{query}: {xml}");
        assert_eq!(field(&xml, "messageKey").as_deref(), Some(key), "{query}: {xml}");
    }
    assert_eq!(bbb.stats().joins.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_needs_the_session_token_and_its_cookie() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("m", 440.0);
    let joined = join(&bbb, "m").await?;
    let other = join(&bbb, "m").await?;
    let cookie = format!("JSESSIONID={}", joined.jsessionid);

    assert_eq!(refused_with(connect(&bbb, &joined.session_token, None).await), Some(403), "no cookie");
    assert_eq!(refused_with(connect(&bbb, "unknown", Some(&cookie)).await), Some(403), "unknown token");
    let other_cookie = format!("JSESSIONID={}", other.jsessionid);
    assert_eq!(
        refused_with(connect(&bbb, &joined.session_token, Some(&other_cookie)).await),
        Some(403),
        "another session's cookie"
    );
    assert_eq!(bbb.stats().websockets_refused, 3);
    assert_eq!(bbb.stats().websockets_open, 0);

    // With the token and its cookie (among other cookies) it opens.
    let cookies = format!("theme=dark; {cookie}; lang=fr");
    let _socket = connect(&bbb, &joined.session_token, Some(&cookies)).await?;
    bbb.wait_until(|s| s.websockets_open == 1, WITHIN).await?;
    assert_eq!(bbb.stats().websockets_refused, 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_and_bad_messages_keep_the_socket() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("m", 440.0);
    let joined = join(&bbb, "m").await?;
    let mut socket = connect_joined(&bbb, &joined).await?;

    send(&mut socket, json!({"id": "ping"})).await?;
    assert_eq!(next_json(&mut socket).await?, json!({"id": "pong"}));
    assert_eq!(bbb.stats().pings, 1);

    let bad = [
        Message::Text("{not json".into()),
        Message::Text("[1,2]".into()),
        Message::Text(json!({"id": "dance", "type": "audio"}).to_string().into()),
        // This stand-in offers: a start with an offer is the wrong shape.
        Message::Text(start_message(Some("v=0\r\n")).to_string().into()),
        Message::Text(
            json!({"id": "start", "type": "audio", "role": "sendrecv", "clientSessionNumber": 1})
                .to_string()
                .into(),
        ),
        Message::Text(json!({"id": "start", "type": "audio", "role": "recv"}).to_string().into()),
        Message::Text(
            json!({"id": "start", "type": "video", "role": "recv", "clientSessionNumber": 1})
                .to_string()
                .into(),
        ),
        // No offer of the SFU is waiting for this answer.
        Message::Text(
            json!({"id": "subscriberAnswer", "type": "audio", "role": "recv", "sdpOffer": "v=0\r\n"})
                .to_string()
                .into(),
        ),
    ];
    for message in bad {
        let shown = message.to_string();
        socket.send(message).await?;
        let reply = next_json(&mut socket).await?;
        assert_eq!(reply["id"], "error", "{shown}: {reply}");
        assert_eq!(reply["type"], "audio", "{shown}: {reply}");
        assert_eq!(reply["code"], 2300, "{shown}: {reply}");
        assert!(reply["reason"].as_str().is_some_and(|r| !r.is_empty()), "{shown}: {reply}");
    }
    send(&mut socket, json!({"id": "ping"})).await?;
    assert_eq!(next_json(&mut socket).await?, json!({"id": "pong"}));
    let stats = bbb.stats();
    assert_eq!((stats.pings, stats.media_started, stats.websockets_open), (2, 0, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_meeting_closes_and_drop_cuts() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("dropped", 440.0);
    bbb.create_meeting("ended", 440.0);

    // A network drop: no close frame, the meeting runs on, the same session reconnects.
    let joined = join(&bbb, "dropped").await?;
    let mut socket = connect_joined(&bbb, &joined).await?;
    bbb.wait_until(|s| s.websockets_open == 1, WITHIN).await?;
    bbb.drop_connections("dropped");
    match tokio::time::timeout(WITHIN, socket.next()).await? {
        Some(Ok(Message::Close(frame))) => panic!("a drop sent a close frame: {frame:?}"),
        Some(Ok(other)) => panic!("a drop sent {other:?}"),
        Some(Err(_)) | None => {}
    }
    bbb.wait_until(|s| s.websockets_open == 0, WITHIN).await?;
    let (_, xml) = get(&signed(&bbb, "isMeetingRunning", "meetingID=dropped", "sha1", bbb.secret())).await?;
    assert_eq!(field(&xml, "running").as_deref(), Some("true"));
    let _again = connect_joined(&bbb, &joined).await?;
    bbb.wait_until(|s| s.websockets_open == 1, WITHIN).await?;

    // The end: a close frame, not running, the session token dead, joins refused.
    let joined = join(&bbb, "ended").await?;
    let mut socket = connect_joined(&bbb, &joined).await?;
    bbb.wait_until(|s| s.websockets_open == 2, WITHIN).await?;
    bbb.end_meeting("ended");
    match tokio::time::timeout(WITHIN, socket.next()).await? {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("the end did not close with a close frame: {other:?}"),
    }
    bbb.wait_until(|s| s.websockets_open == 1, WITHIN).await?;
    let (_, xml) = get(&signed(&bbb, "isMeetingRunning", "meetingID=ended", "sha1", bbb.secret())).await?;
    assert_eq!(field(&xml, "running").as_deref(), Some("false"));
    let cookie = format!("JSESSIONID={}", joined.jsessionid);
    assert_eq!(refused_with(connect(&bbb, &joined.session_token, Some(&cookie)).await), Some(403));
    let query = "fullName=x&meetingID=ended&role=VIEWER&redirect=false";
    let (_, xml) = get(&signed(&bbb, "join", query, "sha1", bbb.secret())).await?;
    assert_eq!(returncode(&xml), "FAILED", "{xml}");
    assert_eq!(bbb.stats().websockets_open, 1, "the other meeting's socket stays");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_offer_flow_carries_the_tone() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig::default()).await?;
    bbb.create_meeting("m", 520.0);
    let joined = join(&bbb, "m").await?;
    let mut socket = connect_joined(&bbb, &joined).await?;

    send(&mut socket, start_message(None)).await?;
    let response = next_json(&mut socket).await?;
    assert_eq!(response["id"], "startResponse", "{response}");
    assert_eq!(response["response"], "accepted");
    let offer = response["sdpAnswer"].as_str().unwrap_or_default();
    assert!(offer.contains("a=ice-lite"), "{offer}");
    assert!(offer.contains("127.0.0.1"), "no host candidate: {offer}");
    assert!(offer.contains("a=sendonly"), "{offer}");
    assert!(offer.contains("a=setup:actpass"), "{offer}");

    let (mut rtc, udp, local) = client_rtc()?;
    let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer)?)?;
    let mids: Vec<Mid> = answer.media_lines.iter().map(|l| l.mid()).collect();
    assert!(
        rtc.media(mids[0])
            .is_some_and(|m| m.kind() == MediaKind::Audio && m.direction() == Direction::RecvOnly)
    );
    send(
        &mut socket,
        json!({"id": "subscriberAnswer", "type": "audio", "role": "recv", "sdpOffer": answer.to_sdp_string()}),
    )
    .await?;
    let listener = client::receive(rtc, udp, local, mids);
    let success = next_json(&mut socket).await?;
    assert_eq!(success["id"], "webRTCAudioSuccess", "{success}");
    assert_eq!(success["success"], "MEDIA_FLOWING");
    bbb.wait_until(|s| s.media_flowing == 1 && s.media_started == 1, WITHIN).await?;
    assert_hears(&listener, 520.0).await?;

    // The websocket goes: the media stops.
    socket.close(None).await?;
    bbb.wait_until(|s| s.media_flowing == 0 && s.websockets_open == 0, WITHIN).await?;
    listener.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_offer_flow_carries_the_tone() -> anyhow::Result<()> {
    let bbb = BbbStandIn::start(StandInConfig { offer: OfferFlow::Client, ..Default::default() }).await?;
    bbb.create_meeting("m", 660.0);
    let joined = join(&bbb, "m").await?;
    let mut socket = connect_joined(&bbb, &joined).await?;

    // This stand-in answers: a start without an offer is the wrong shape.
    send(&mut socket, start_message(None)).await?;
    let reply = next_json(&mut socket).await?;
    assert_eq!(reply["id"], "error", "{reply}");

    // An offer that is not SDP fails the media.
    send(&mut socket, start_message(Some("this is no SDP"))).await?;
    let reply = next_json(&mut socket).await?;
    assert_eq!(reply["id"], "webRTCAudioError", "{reply}");
    assert_eq!(reply["code"], 2202, "{reply}");

    let (mut rtc, udp, local) = client_rtc()?;
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().ok_or_else(|| anyhow::anyhow!("no offer"))?;
    send(&mut socket, start_message(Some(&offer.to_sdp_string()))).await?;
    let response = next_json(&mut socket).await?;
    assert_eq!(response["id"], "startResponse", "{response}");
    assert_eq!(response["response"], "accepted");
    let answer = response["sdpAnswer"].as_str().unwrap_or_default();
    assert!(answer.contains("a=ice-lite") && answer.contains("127.0.0.1"), "{answer}");
    rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(answer)?)?;
    let listener = client::receive(rtc, udp, local, vec![mid]);
    next_with_id(&mut socket, "webRTCAudioSuccess").await?;
    bbb.wait_until(|s| s.media_flowing == 1, WITHIN).await?;
    assert_hears(&listener, 660.0).await?;

    // The meeting ends: the socket is closed, the media stops.
    bbb.end_meeting("m");
    bbb.wait_until(|s| s.media_flowing == 0 && s.websockets_open == 0, WITHIN).await?;
    let before = listener.track(0).packets;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(listener.track(0).packets <= before + 1, "the tone went on after the end");
    assert_eq!(bbb.stats().media_started, 1);
    listener.stop()?;
    Ok(())
}
