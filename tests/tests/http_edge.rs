//! The HTTP edge against hostile clients: a client trickling its headers or its body is cut off
//! at the deadline, connections beyond the limit wait until one closes, and wrong tokens are
//! throttled per client address (429 with Retry-After), while other addresses are not.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tolk_tests::relay::{ADMIN, TestRelay, problem_detail};

/// Read until the relay closes the connection; what it sent.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> anyhow::Result<String> {
    let mut answer = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut answer))
        .await
        .map_err(|_| anyhow::anyhow!("the relay kept the connection open for {within:?}"))??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_slow_bodies_are_cut_off() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| {
        s.edge.header_timeout = Duration::from_secs(1);
        s.edge.body_timeout = Duration::from_secs(1);
    })
    .await?;
    let addr = relay.server.addr;

    // Half a request line, then nothing: closed at the header deadline.
    let mut slow = TcpStream::connect(addr).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: tolk\r\n").await?;
    let started = Instant::now();
    read_to_close(&mut slow, Duration::from_secs(5)).await?;
    let took = started.elapsed();
    println!("a client trickling its headers was cut off after {took:?}");
    assert!(took >= Duration::from_millis(900), "cut off early: {took:?}");

    // Headers promise a body that never comes: answered with an error at the body deadline,
    // and nothing is created.
    let mut body = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: tolk\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 400\r\nConnection: close\r\n\r\n{{\"title\": \"sl"
    );
    body.write_all(head.as_bytes()).await?;
    let started = Instant::now();
    let answer = read_to_close(&mut body, Duration::from_secs(5)).await?;
    let took = started.elapsed();
    println!(
        "a client trickling its body was answered after {took:?}: {}",
        answer.lines().next().unwrap_or("")
    );
    assert!(took >= Duration::from_millis(900), "answered early: {took:?}");
    let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&status), "a client error, not {status}: {answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    let events: serde_json::Value = relay.admin_get("/api/v1/events").await?;
    assert_eq!(events.as_array().map(Vec::len), Some(0), "nothing was created: {events}");

    // The relay still serves others.
    let health = relay.http.get(relay.url("/healthz")).send().await?;
    assert!(health.status().is_success());
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_one() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(1, |s| s.edge.max_connections = 3).await?;
    let addr = relay.server.addr;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let stream = TcpStream::connect(addr).await?;
        idle.push(stream);
    }
    // Make sure the relay has taken all three (each answers a request and stays open).
    for stream in &mut idle {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: tolk\r\n\r\n").await?;
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await?;
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    // A fourth connection is accepted by the kernel but not served while three are open.
    let mut fourth = TcpStream::connect(addr).await?;
    fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: tolk\r\nConnection: close\r\n\r\n").await?;
    let mut buf = [0u8; 512];
    let waited = tokio::time::timeout(Duration::from_millis(500), fourth.read(&mut buf)).await;
    assert!(waited.is_err(), "served beyond the limit");
    // One closes: the fourth is served.
    drop(idle.pop());
    let answer = read_to_close(&mut fourth, Duration::from_secs(5)).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_throttled_per_client_address() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let events = relay.url("/api/v1/events");
    let from = |client: &str| relay.http.get(&events).header("x-forwarded-for", client);
    // Missing tokens are not guesses: never throttled.
    for _ in 0..30 {
        assert_eq!(from("203.0.113.1").send().await?.status(), StatusCode::UNAUTHORIZED);
    }
    // Wrong tokens: 20 at once, then 429 with Retry-After and a sentence.
    let mut refused = None;
    for i in 0..25 {
        let answer = from("203.0.113.1").bearer_auth(format!("guess-{i}")).send().await?;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((i, answer));
            break;
        }
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let Some((after, answer)) = refused else { anyhow::bail!("25 wrong tokens were all checked") };
    assert_eq!(after, 20, "throttled after 20 wrong tokens");
    let wait: u64 = answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Retry-After"))?;
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    let detail = problem_detail(&answer.json().await?)?;
    assert!(detail.contains("too many wrong tokens"), "{detail}");
    // Even the right token waits at that address (a guess that happens to be right is no
    // different); another address is not affected, and a floor token or booth token check
    // counts against the same allowance.
    assert_eq!(from("203.0.113.1").bearer_auth(ADMIN).send().await?.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(from("203.0.113.2").bearer_auth(ADMIN).send().await?.status(), StatusCode::OK);
    let booth = relay
        .http
        .get(relay.url("/api/v1/booth/state"))
        .header("x-forwarded-for", "203.0.113.1")
        .bearer_auth("not-a-booth-token")
        .send()
        .await?;
    assert_eq!(booth.status(), StatusCode::TOO_MANY_REQUESTS);
    relay.stop().await;
    Ok(())
}
