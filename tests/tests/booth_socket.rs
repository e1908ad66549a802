//! The booth websocket: state pushed on every change, chat to the booth (not to other booths),
//! handover requests to the interpreter on air, clear errors for bad messages, and a revoked link
//! cut off. Against hostile users: the token only as the first message (never in the URL), one
//! socket per interpreter, small messages, a rate per booth link, the token checked again before
//! every action, and state pushes coalesced on a burst of changes.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tolk_relay::api::InterpreterView;
use tolk_tests::relay::{ADMIN, TestRelay, booth_token};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn issue(relay: &TestRelay, id: &str, name: &str, language: &str) -> anyhow::Result<InterpreterView> {
    relay.booth_link(id, name, &[language]).await
}

/// The booth socket, not yet told who is there.
async fn open(relay: &TestRelay) -> anyhow::Result<Socket> {
    let url = format!("{}/api/v1/booth/ws", relay.base.replace("http://", "ws://"));
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// The booth socket of `token`: the token is its first message.
async fn connect(relay: &TestRelay, token: &str) -> anyhow::Result<Socket> {
    let mut socket = open(relay).await?;
    socket.send(Message::Text(json!({ "token": token }).to_string().into())).await?;
    Ok(socket)
}

async fn send(socket: &mut Socket, value: Value) -> anyhow::Result<()> {
    Ok(socket.send(Message::Text(value.to_string().into())).await?)
}

/// The close frame's code and reason (skipping other messages), within `within`; None when the
/// connection ended without one.
async fn closed(socket: &mut Socket, within: Duration) -> anyhow::Result<Option<(u16, String)>> {
    tokio::time::timeout(within, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    return Ok(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
        }
        Ok(None)
    })
    .await
    .map_err(|_| anyhow::anyhow!("the socket stayed open for {within:?}"))?
}

/// The booth state of `token`, over HTTP.
async fn state(relay: &TestRelay, token: &str) -> anyhow::Result<Value> {
    Ok(relay.http.get(relay.url("/api/v1/booth/state")).bearer_auth(token).send().await?.json().await?)
}

/// A booth action over HTTP; its status.
async fn post(relay: &TestRelay, token: &str, action: &str, body: Value) -> anyhow::Result<u16> {
    let url = relay.url(&format!("/api/v1/booth/{action}"));
    Ok(relay.http.post(url).bearer_auth(token).json(&body).send().await?.status().as_u16())
}

/// A relay with an event in fr, booth links for Ana and Ben (fr); their tokens and the event id.
async fn two_in_fr() -> anyhow::Result<(TestRelay, String, String, String)> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let ana = issue(&relay, &id, "Ana", "fr").await?;
    let ben = issue(&relay, &id, "Ben", "fr").await?;
    let (a, b) = (booth_token(&ana)?.to_owned(), booth_token(&ben)?.to_owned());
    Ok((relay, id, a, b))
}

/// The next pushed message of `kind` (skipping others), within 5 s.
async fn next_of(socket: &mut Socket, kind: &str) -> anyhow::Result<Value> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message? {
                let value: Value = serde_json::from_str(&text)?;
                if value["type"] == kind {
                    return Ok(value);
                }
            }
        }
        anyhow::bail!("the socket closed before a '{kind}' message")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no '{kind}' message within 5 s"))?
}

/// Messages until the next state push, to check what did not arrive.
async fn until_state(socket: &mut Socket) -> anyhow::Result<Vec<Value>> {
    let mut seen = Vec::new();
    loop {
        let value = next_of_any(socket).await?;
        let done = value["type"] == "state";
        seen.push(value);
        if done {
            return Ok(seen);
        }
    }
}

async fn next_of_any(socket: &mut Socket) -> anyhow::Result<Value> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message? {
                return Ok(serde_json::from_str(&text)?);
            }
        }
        anyhow::bail!("the socket closed")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no message within 5 s"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booth_socket_pushes_state_chat_and_handover_requests() -> anyhow::Result<()> {
    let relay = TestRelay::start(1).await?;
    let event = relay.event_now(&["fr", "de"], "whip").await?;
    let id = event.id.as_str().to_owned();
    let ana = issue(&relay, &id, "Ana", "fr").await?;
    let ben = issue(&relay, &id, "Ben", "fr").await?;
    let cleo = issue(&relay, &id, "Cleo", "de").await?;
    let (ana_token, ben_token, cleo_token) =
        (booth_token(&ana)?.to_owned(), booth_token(&ben)?.to_owned(), booth_token(&cleo)?.to_owned());

    // A wrong token: the socket closes with a sentence.
    let mut wrong = connect(&relay, "not-a-token").await?;
    let (code, reason) = closed(&mut wrong, Duration::from_secs(5)).await?.context("no close frame")?;
    assert_eq!(code, 4001);
    assert!(reason.contains("not valid"), "{reason}");

    let mut a = connect(&relay, &ana_token).await?;
    let mut b = connect(&relay, &ben_token).await?;
    let mut c = connect(&relay, &cleo_token).await?;
    let first = next_of(&mut a, "state").await?;
    assert_eq!(first["state"]["me"]["name"], "Ana");
    assert_eq!(first["state"]["partners"][0]["name"], "Ben", "Ana's booth partner");
    next_of(&mut b, "state").await?;
    next_of(&mut c, "state").await?;

    // Chat reaches the fr booth, not Cleo in de.
    b.send(Message::Text(json!({"action": "chat", "text": "water please"}).to_string().into())).await?;
    let chat = next_of(&mut a, "chat").await?;
    assert_eq!(chat["from"]["name"], "Ben");
    assert_eq!(chat["text"], "water please");

    // Ana goes on air (over HTTP): everyone gets a state push; Cleo saw no chat before it.
    let response = relay
        .http
        .post(relay.url("/api/v1/booth/on-air"))
        .bearer_auth(&ana_token)
        .json(&json!({"language": "fr"}))
        .send()
        .await?;
    assert!(response.status().is_success());
    let seen = until_state(&mut c).await?;
    assert!(seen.iter().all(|m| m["type"] != "chat"), "no chat from another booth: {seen:?}");
    let state = next_of(&mut a, "state").await?;
    assert_eq!(state["state"]["on_air"], "fr");

    // Ben asks to take over: Ana is told.
    b.send(Message::Text(json!({"action": "handover-request"}).to_string().into())).await?;
    let request = next_of(&mut a, "handover-request").await?;
    assert_eq!(request["from"]["name"], "Ben");

    // A message that is not an action gets an error sentence, and the socket stays open.
    b.send(Message::Text("{\"action\": \"dance\"}".into())).await?;
    let error = next_of(&mut b, "error").await?;
    assert!(error["detail"].as_str().unwrap_or("").contains("not a booth action"), "{error}");

    // Revoking Ben closes his socket with a sentence.
    let response = relay
        .http
        .delete(relay.url(&format!("/api/v1/events/{id}/interpreters/{}", ben.id)))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    let (code, reason) = closed(&mut b, Duration::from_secs(5)).await?.context("no close frame")?;
    assert_eq!(code, 4001);
    assert!(reason.contains("revoked"), "{reason}");

    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_in_the_first_message_never_in_the_url() -> anyhow::Result<()> {
    let (relay, _, ana, _) = two_in_fr().await?;

    // The old form, ?token= in the URL, no longer opens a booth: a first message that is an action
    // closes the socket, and the action did nothing.
    let url = format!("{}/api/v1/booth/ws?token={ana}", relay.base.replace("http://", "ws://"));
    let (mut old, _) = tokio_tungstenite::connect_async(url).await?;
    send(&mut old, json!({"action": "on-air", "language": "fr"})).await?;
    let (code, reason) = closed(&mut old, Duration::from_secs(5)).await?.context("no close frame")?;
    assert_eq!(code, 4002);
    assert!(reason.contains("first message must be {\"token\""), "{reason}");
    assert_eq!(state(&relay, &ana).await?["on_air"], Value::Null, "nothing changed");

    // Nothing at all within a few seconds: closed with a sentence.
    let mut silent = open(&relay).await?;
    let (code, reason) = closed(&mut silent, Duration::from_secs(8)).await?.context("no close frame")?;
    assert_eq!(code, 4002);
    assert!(reason.contains("no booth token within 5 s"), "{reason}");

    // The token first: the state follows.
    let mut socket = connect(&relay, &ana).await?;
    assert_eq!(next_of(&mut socket, "state").await?["state"]["me"]["name"], "Ana");
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booth_opened_in_another_window_replaces_the_first() -> anyhow::Result<()> {
    let (relay, _, ana, ben) = two_in_fr().await?;
    let mut first = connect(&relay, &ana).await?;
    next_of(&mut first, "state").await?;
    let mut ben_socket = connect(&relay, &ben).await?;
    next_of(&mut ben_socket, "state").await?;

    let mut second = connect(&relay, &ana).await?;
    next_of(&mut second, "state").await?;
    let (code, reason) = closed(&mut first, Duration::from_secs(5)).await?.context("no close frame")?;
    assert_eq!(code, 4000);
    assert_eq!(reason, "this booth was opened in another window");

    // The new window has the booth; Ben's socket was not touched.
    send(&mut second, json!({"action": "on-air", "language": "fr"})).await?;
    assert_eq!(next_of(&mut second, "state").await?["state"]["on_air"], "fr");
    assert_eq!(next_of(&mut ben_socket, "state").await?["state"]["partners"][0]["on_air"], "fr");
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_message_closes_the_socket_and_changes_nothing() -> anyhow::Result<()> {
    let (relay, _, ana, _) = two_in_fr().await?;
    let mut socket = connect(&relay, &ana).await?;
    next_of(&mut socket, "state").await?;
    // A valid action, padded with JSON whitespace to 64 KiB.
    let huge = format!("{{\"action\": \"on-air\",{}\"language\": \"fr\"}}", " ".repeat(64 * 1024));
    socket.send(Message::Text(huge.into())).await?;
    if let Some((code, reason)) = closed(&mut socket, Duration::from_secs(5)).await? {
        assert_eq!(code, 1009);
        assert!(reason.contains("at most 4 KiB"), "{reason}");
    }
    assert_eq!(state(&relay, &ana).await?["on_air"], Value::Null, "nothing changed");
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booth_actions_over_the_rate_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let (relay, _, ana, ben) = two_in_fr().await?;
    let mut socket = connect(&relay, &ana).await?;
    next_of(&mut socket, "state").await?;
    // The burst (20) spent on actions that change nothing while off air…
    for _ in 0..20 {
        send(&mut socket, json!({"action": "mute", "muted": false})).await?;
    }
    // …then going on air is refused, with a sentence.
    send(&mut socket, json!({"action": "on-air", "language": "fr"})).await?;
    let error = next_of(&mut socket, "error").await?;
    let detail = error["detail"].as_str().unwrap_or("");
    assert!(detail.contains("too many booth actions") && detail.contains("nothing was changed"), "{error}");
    // Over HTTP too (the same booth link): 429.
    assert_eq!(post(&relay, &ana, "on-air", json!({"language": "fr"})).await?, 429);
    assert_eq!(state(&relay, &ana).await?["on_air"], Value::Null, "nothing changed");
    // Another booth link has its own allowance.
    assert_eq!(post(&relay, &ben, "on-air", json!({"language": "fr"})).await?, 200);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_again_before_every_action() -> anyhow::Result<()> {
    let (relay, id, ana, _) = two_in_fr().await?;
    let mut socket = connect(&relay, &ana).await?;
    next_of(&mut socket, "state").await?;
    // Cancelling the event pushes nothing to the booths: the next action finds the link dead.
    let response =
        relay.http.delete(relay.url(&format!("/api/v1/events/{id}"))).bearer_auth(ADMIN).send().await?;
    assert!(response.status().is_success(), "{}", response.status());
    send(&mut socket, json!({"action": "on-air", "language": "fr"})).await?;
    let (code, reason) = closed(&mut socket, Duration::from_secs(5)).await?.context("no close frame")?;
    assert_eq!(code, 4001);
    assert!(reason.contains("not valid"), "{reason}");
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_with_wrong_types_get_a_clear_error_and_change_nothing() -> anyhow::Result<()> {
    let (relay, _, ana, _) = two_in_fr().await?;
    let mut socket = connect(&relay, &ana).await?;
    next_of(&mut socket, "state").await?;
    let wrong = [
        (json!({"action": "take", "language": 5}).to_string(), "'take' is not a booth action"),
        (json!({"action": "on-air", "language": 5}).to_string(), "invalid type: integer `5`"),
        (json!({"action": "mute", "muted": "yes"}).to_string(), "'mute' is not a booth action"),
        (json!({"action": 7}).to_string(), "needs \"action\""),
        (json!(["on-air"]).to_string(), "a JSON object"),
        ("on-air".to_owned(), "a booth message is JSON"),
    ];
    for (message, says) in wrong {
        socket.send(Message::Text(message.clone().into())).await?;
        let error = next_of(&mut socket, "error").await?;
        let detail = error["detail"].as_str().unwrap_or("");
        assert!(detail.contains(says) && detail.contains("nothing was changed"), "{message}: {detail}");
    }
    socket.send(Message::Binary(b"{\"action\": \"on-air\", \"language\": \"fr\"}".to_vec().into())).await?;
    let error = next_of(&mut socket, "error").await?;
    assert!(error["detail"].as_str().unwrap_or("").contains("JSON text"), "{error}");
    assert_eq!(state(&relay, &ana).await?["on_air"], Value::Null, "nothing changed");
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_makes_few_state_pushes() -> anyhow::Result<()> {
    let (relay, _, ana, ben) = two_in_fr().await?;
    let mut watcher = connect(&relay, &ben).await?;
    next_of(&mut watcher, "state").await?;
    // Ana goes on and off air 15 times (the last on): each is a change.
    let started = std::time::Instant::now();
    for i in 0..15 {
        let (action, body) =
            if i % 2 == 0 { ("on-air", json!({"language": "fr"})) } else { ("off-air", json!({})) };
        assert_eq!(post(&relay, &ana, action, body).await?, 200);
    }
    let burst = started.elapsed();
    // Count Ben's state pushes until they stop for half a second.
    let mut pushes = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(500), watcher.next()).await {
        if let Message::Text(text) = message? {
            let value: Value = serde_json::from_str(&text)?;
            if value["type"] == "state" {
                pushes.push(value);
            }
        }
    }
    let allowed = burst.as_millis() / 100 + 2;
    println!("{} state pushes for 15 changes in {burst:?}", pushes.len());
    assert!(
        (pushes.len() as u128) <= allowed && pushes.len() < 15,
        "{} pushes for 15 changes in {burst:?} (at most one per 100 ms: {allowed})",
        pushes.len()
    );
    let last = pushes.last().context("no state push at all")?;
    assert_eq!(last["state"]["partners"][0]["on_air"], "fr", "the last push has the last state");
    relay.stop().await;
    Ok(())
}
