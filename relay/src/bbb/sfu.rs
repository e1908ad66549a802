//! bbb-webrtc-sfu's websocket: connecting with the session token and the cookie, and the JSON
//! messages of a listen-only audio session (`start`, `startResponse`, `subscriberAnswer`,
//! `webRTCAudioSuccess`, `webRTCAudioError`, `error`, `ping`/`pong`). BBB's field names are its
//! own: in the server-offers flow the server's *offer* arrives in `sdpAnswer` and our answer goes
//! out in `sdpOffer`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::BbbError;
use super::api::BotSession;

/// A message from bbb-webrtc-sfu that matters to a listen-only session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ServerMessage {
    Pong,
    /// `startResponse`: accepted with an SDP (the server's offer or its answer), or rejected.
    Started {
        sdp: String,
    },
    Rejected {
        reason: String,
    },
    /// `webRTCAudioSuccess`: the server sees media flowing.
    Flowing,
    /// `webRTCAudioError` or `error`.
    Failed {
        reason: String,
    },
    /// A trickled ICE candidate (mediasoup normally puts them all in the SDP).
    Candidate {
        candidate: String,
    },
    /// Anything else (ignored, logged).
    Other(String),
}

/// Read one text message.
pub(crate) fn parse(text: &str) -> Result<ServerMessage, BbbError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| BbbError::Signalling(format!("a message that is not JSON ({e}): {text:.120}")))?;
    let id = value.get("id").and_then(Value::as_str).unwrap_or("");
    let text_of = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let reason = || {
        let reason = text_of("reason").or_else(|| text_of("message"));
        // bbb-webrtc-sfu sends codes as numbers or as strings.
        let code = value.get("code").map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned));
        match (reason, code) {
            (Some(r), Some(c)) => format!("{r} (code {c})"),
            (Some(r), None) => r,
            (None, Some(c)) => format!("code {c}"),
            (None, None) => format!("no reason given: {text:.120}"),
        }
    };
    Ok(match id {
        "pong" => ServerMessage::Pong,
        "startResponse" => match (text_of("response").as_deref(), text_of("sdpAnswer")) {
            (Some("rejected"), _) => ServerMessage::Rejected { reason: reason() },
            (_, Some(sdp)) if !sdp.is_empty() => ServerMessage::Started { sdp },
            _ => ServerMessage::Rejected { reason: "startResponse without an SDP".into() },
        },
        "webRTCAudioSuccess" => ServerMessage::Flowing,
        "webRTCAudioError" | "error" => ServerMessage::Failed { reason: reason() },
        "iceCandidate" => match value.get("candidate") {
            Some(Value::String(c)) => ServerMessage::Candidate { candidate: c.clone() },
            Some(Value::Object(o)) => match o.get("candidate").and_then(Value::as_str) {
                Some(c) => ServerMessage::Candidate { candidate: c.to_owned() },
                None => ServerMessage::Other(text.to_owned()),
            },
            _ => ServerMessage::Other(text.to_owned()),
        },
        _ => ServerMessage::Other(text.to_owned()),
    })
}

/// `start` for the meeting's listen-only audio; with our offer in the client-offers flow.
pub(super) fn start(offer: Option<&str>) -> Value {
    let mut start = json!({
        "id": "start",
        "type": "audio",
        "role": "recv",
        "clientSessionNumber": 1,
        "extension": null,
    });
    if let (Some(offer), Some(map)) = (offer, start.as_object_mut()) {
        map.insert("sdpOffer".into(), offer.into());
    }
    start
}

/// `subscriberAnswer` carrying our answer to the server's offer.
pub(super) fn subscriber_answer(answer: &str) -> Value {
    json!({ "id": "subscriberAnswer", "type": "audio", "role": "recv", "sdpOffer": answer })
}

pub(super) fn ping() -> Value {
    json!({ "id": "ping" })
}

/// The open websocket.
pub(super) struct SfuSocket {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl SfuSocket {
    /// Open `url` with the session's cookie.
    pub(super) async fn connect(url: &url::Url, bot: &BotSession) -> Result<Self, BbbError> {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| BbbError::Signalling(format!("bad websocket URL: {e}")))?;
        if let Some(cookie) = &bot.cookie {
            let value = cookie
                .parse()
                .map_err(|_| BbbError::Signalling("the JSESSIONID cookie is not a valid header".into()))?;
            request.headers_mut().insert(tungstenite::http::header::COOKIE, value);
        }
        let connector = Connector::Rustls(super::tls_config()?);
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
        let (socket, _) = tokio::time::timeout(std::time::Duration::from_secs(15), connecting)
            .await
            .map_err(|_| {
                BbbError::Signalling(format!("no websocket answer from {} within 15 s", redact(url)))
            })?
            .map_err(|e| match e {
                tungstenite::Error::Http(response) => BbbError::Signalling(format!(
                    "{} refused the websocket with HTTP {}{}",
                    redact(url),
                    response.status(),
                    if bot.cookie.is_none() {
                        " (BBB's join set no JSESSIONID cookie)"
                    } else {
                        ": the session token or the JSESSIONID cookie was not accepted"
                    }
                )),
                other => BbbError::Signalling(format!("could not open {}: {other}", redact(url))),
            })?;
        Ok(Self { socket })
    }

    pub(super) async fn send(&mut self, message: &Value) -> Result<(), BbbError> {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|e| BbbError::Signalling(format!("the websocket dropped while sending: {e}")))
    }

    /// The next message; `Ok(None)` when the server closed the websocket.
    pub(super) async fn next(&mut self) -> Result<Option<ServerMessage>, BbbError> {
        loop {
            match self.socket.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(text))) => return parse(&text).map(Some),
                Some(Ok(_)) => continue, // pings are answered by tungstenite; binary is not used
                Some(Err(e)) => return Err(BbbError::Signalling(format!("the websocket dropped: {e}"))),
            }
        }
    }

    /// Close politely (leaving the meeting's audio).
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.socket.close(None)).await;
    }
}

/// The URL without the session token, for messages and logs.
fn redact(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_parse() {
        assert_eq!(parse(r#"{"id":"pong"}"#).unwrap(), ServerMessage::Pong);
        assert_eq!(
            parse(r#"{"id":"startResponse","type":"audio","role":"recv","response":"accepted","sdpAnswer":"v=0"}"#)
                .unwrap(),
            ServerMessage::Started { sdp: "v=0".into() }
        );
        assert_eq!(
            parse(r#"{"id":"webRTCAudioSuccess","success":"MEDIA_FLOWING"}"#).unwrap(),
            ServerMessage::Flowing
        );
        assert_eq!(
            parse(r#"{"id":"webRTCAudioError","code":2001,"reason":"MEDIA_SERVER_OFFLINE"}"#).unwrap(),
            ServerMessage::Failed { reason: "MEDIA_SERVER_OFFLINE (code 2001)".into() }
        );
        assert_eq!(
            parse(r#"{"id":"error","code":"2300","reason":"SFU_INVALID_REQUEST"}"#).unwrap(),
            ServerMessage::Failed { reason: "SFU_INVALID_REQUEST (code 2300)".into() }
        );
        assert!(matches!(
            parse(r#"{"id":"startResponse","response":"rejected","reason":"no"}"#).unwrap(),
            ServerMessage::Rejected { .. }
        ));
        assert!(matches!(parse(r#"{"id":"somethingNew"}"#).unwrap(), ServerMessage::Other(_)));
        assert!(parse("not json").is_err());
    }

    #[test]
    fn outgoing_messages_have_bbbs_shapes() {
        assert_eq!(start(None)["sdpOffer"], Value::Null);
        assert_eq!(start(None)["role"], "recv");
        assert_eq!(start(Some("v=0"))["sdpOffer"], "v=0");
        assert_eq!(subscriber_answer("v=0")["id"], "subscriberAnswer");
        assert_eq!(subscriber_answer("v=0")["sdpOffer"], "v=0");
    }
}
