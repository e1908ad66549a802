//! The booth websocket: state pushed on every change, chat to the booth (not to other booths),
//! handover requests to the interpreter on air, clear errors for bad messages, and a revoked link
//! cut off.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tolk_relay::api::InterpreterView;
use tolk_tests::relay::{ADMIN, TestRelay, booth_token};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn issue(relay: &TestRelay, id: &str, name: &str, language: &str) -> anyhow::Result<InterpreterView> {
    relay.booth_link(id, name, &[language]).await
}

async fn connect(relay: &TestRelay, token: &str) -> anyhow::Result<Socket> {
    let url = format!("{}/api/v1/booth/ws?token={token}", relay.base.replace("http://", "ws://"));
    Ok(tokio_tungstenite::connect_async(url).await?.0)
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

    // A wrong token gets no socket.
    assert!(connect(&relay, "not-a-token").await.is_err());

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
    let error = next_of(&mut b, "error").await?;
    assert!(error["detail"].as_str().unwrap_or("").contains("revoked"), "{error}");

    relay.stop().await;
    Ok(())
}
