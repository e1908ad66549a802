//! The booth websocket, `GET /api/v1/booth/ws`. The page's first message carries its booth token
//! (`{"token": "…"}`; never the URL, which logs and proxies keep). Then the socket pushes the
//! booth's state (at most one push per [`STATE_EVERY`], however many changes), chat and handover
//! requests, and takes booth actions as JSON messages (`{"action": "off-air"}`).
//!
//! Against a hostile or confused page: one socket per interpreter (a newer one replaces it),
//! messages of at most [`MAX_MESSAGE`] bytes, actions within the booth link's rate, and the token
//! checked again before every action, so a revoked link is closed at its next step. A refusal
//! is an `{"type": "error", "detail": …}` message; a closing socket says why in its close frame.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::app::{App, AppError};
use crate::auth::AuthError;
use crate::booths::desk::{BoothAction, BoothPush};
use crate::http::ApiError;
use crate::http::booth::action_from;
use crate::http::extract::ClientAddr;
use crate::store::interpreters::Interpreter;

/// Largest message or frame a page may send: a booth action is well under a hundred bytes, a
/// chat message at most a few.
const MAX_MESSAGE: usize = 4 * 1024;
/// The first message must bring the booth token within this time.
const AUTH_WITHIN: Duration = Duration::from_secs(5);
/// At most one state push per socket per this interval; changes in between make one push.
pub(crate) const STATE_EVERY: Duration = Duration::from_millis(100);
/// Listener counts change without a booth action: the state is pushed this often anyway.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Close codes the page tells apart (4000–4999 are the application's own).
pub(crate) mod close {
    /// The booth was opened in another window: this one must not reconnect by itself.
    pub(crate) const REPLACED: u16 = 4000;
    /// The booth link is not valid (unknown, revoked, or its event cancelled): stop.
    pub(crate) const NOT_A_BOOTH_LINK: u16 = 4001;
    /// The first message was not the booth token, or it came too late: send it first.
    pub(crate) const NO_TOKEN: u16 = 4002;
    /// The booth desk is on another node of the cluster (the event's origin): the page polls
    /// the state and posts its actions through this node, which forwards them.
    pub(crate) const ELSEWHERE: u16 = 4003;
}

/// The page's first message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hello {
    token: String,
}

/// Why a message from the page changed nothing.
enum Refusal {
    /// Tell the page, keep the socket.
    Refused(String),
    /// Close the socket with this code and sentence.
    Close(u16, String),
}

/// `GET /api/v1/booth/ws`: upgrade anyone; the socket serves only once the first message
/// brought a valid booth token.
#[utoipa::path(get, path = "/api/v1/booth/ws", tag = "booths",
    responses((status = 101, description = "A websocket: the first message is {\"token\": \"<booth token>\"}; then state         pushes, chat, handover requests; booth actions as messages."),
        (status = 400, description = "Not a websocket upgrade request."), (status = 426, description = "Not a websocket upgrade request.")))]
pub(super) async fn socket(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(e) => {
            let detail = format!(
                "this address is the booth's websocket: open it with a websocket client ({})",
                e.body_text()
            );
            return ApiError::new(e.status(), detail).into_response();
        }
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(app, client, socket))
}

async fn serve(app: Arc<App>, client: IpAddr, mut socket: WebSocket) {
    let Some((token, me)) = authenticate(&app, client, &mut socket).await else { return };
    // In a cluster, the booth desk is on the event's origin: the page polls through this node.
    match app.booth_origin(&me, "").await {
        Ok(None) => {}
        Ok(Some(_)) => {
            let why = "the booth desk is on another node of the cluster: this page follows it by polling";
            return close(&mut socket, close::ELSEWHERE, why).await;
        }
        Err(e) => return close(&mut socket, close_code::AGAIN, &e.to_string()).await,
    }
    let mut place = app.booths.sockets.open(me.id);
    let mut pushes = match app.events.live(&me.event).await {
        Ok(live) => app.booths.subscribe(&live),
        Err(e) => return close(&mut socket, close_code::AGAIN, &e.to_string()).await,
    };
    if !send_state(&app, &me, &mut socket).await {
        return;
    }
    let mut last_state = Instant::now();
    let mut state_due = false;
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.tick().await;
    loop {
        tokio::select! {
            _ = &mut place.replaced => {
                return close(&mut socket, close::REPLACED, "this booth was opened in another window").await;
            }
            _ = refresh.tick() => state_due = true,
            _ = tokio::time::sleep_until(last_state + STATE_EVERY), if state_due => {
                state_due = false;
                last_state = Instant::now();
                // A revoked link stops receiving anything but its close.
                if let Err(AppError::Auth(e @ AuthError::NotABoothLink)) = recheck(&app, &token).await {
                    return close(&mut socket, close::NOT_A_BOOTH_LINK, &e.to_string()).await;
                }
                if !send_state(&app, &me, &mut socket).await {
                    return;
                }
            }
            push = pushes.recv() => match push {
                Ok(BoothPush::State) | Err(RecvError::Lagged(_)) => state_due = true,
                Ok(push) if push.is_for(&me) => {
                    if !send_json(&mut socket, &push).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            },
            message = socket.recv() => {
                let refusal = match message {
                    Some(Ok(Message::Text(text))) => act(&app, &token, &me, &text).await.err(),
                    Some(Ok(Message::Binary(_))) => Some(Refusal::Refused(
                        "booth messages are JSON text, e.g. {\"action\": \"off-air\"}; nothing was changed".into(),
                    )),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Err(e)) => Some(Refusal::Close(close_code::SIZE, too_big_or(e))),
                    Some(Ok(Message::Close(_))) | None => return,
                };
                match refusal {
                    Some(Refusal::Refused(detail))
                        if !send_json(&mut socket, &json!({"type": "error", "detail": detail})).await =>
                    {
                        return;
                    }
                    Some(Refusal::Close(code, sentence)) => return close(&mut socket, code, &sentence).await,
                    _ => {}
                }
            }
        }
    }
}

/// The first message, within [`AUTH_WITHIN`]: the booth token and its interpreter; otherwise
/// the socket is closed with a sentence.
async fn authenticate(app: &App, client: IpAddr, socket: &mut WebSocket) -> Option<(String, Interpreter)> {
    const FIRST: &str = "the booth socket's first message must be {\"token\": \"<booth token>\"}";
    let refused = match tokio::time::timeout(AUTH_WITHIN, socket.recv()).await {
        Err(_) => (close::NO_TOKEN, format!("no booth token within {} s; {FIRST}", AUTH_WITHIN.as_secs())),
        Ok(None | Some(Ok(Message::Close(_)))) => return None,
        Ok(Some(Err(e))) => (close_code::SIZE, too_big_or(e)),
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<Hello>(&text) {
            Err(_) => (close::NO_TOKEN, FIRST.to_owned()),
            Ok(Hello { token }) => match app.auth.guarded(client, app.auth.interpreter(Some(&token))).await {
                Ok(me) => return Some((token, me)),
                Err(e @ AuthError::Store(_)) => (close_code::AGAIN, AppError::from(e).to_string()),
                Err(e @ AuthError::TooManyFailedChecks(_)) => (close_code::AGAIN, e.to_string()),
                Err(e) => (close::NOT_A_BOOTH_LINK, e.to_string()),
            },
        },
        Ok(Some(Ok(_))) => (close::NO_TOKEN, FIRST.to_owned()),
    };
    close(socket, refused.0, &refused.1).await;
    None
}

/// The booth link of `token`, checked again (it may have been revoked since).
async fn recheck(app: &App, token: &str) -> Result<Interpreter, AppError> {
    Ok(app.auth.interpreter(Some(token)).await?)
}

/// One message from the page: within the rate, from a link still valid, a well-formed action.
async fn act(app: &App, token: &str, me: &Interpreter, text: &str) -> Result<(), Refusal> {
    app.booth_rate(me.id).map_err(|e| Refusal::Refused(e.to_string()))?;
    let me = recheck(app, token).await.map_err(|e| match e {
        AppError::Auth(e @ AuthError::NotABoothLink) => {
            Refusal::Close(close::NOT_A_BOOTH_LINK, e.to_string())
        }
        e => Refusal::Refused(e.to_string()),
    })?;
    let action = parse(text).map_err(Refusal::Refused)?;
    app.booth_action(&me, action).await.map_err(|e| Refusal::Refused(e.to_string()))
}

/// A socket message as a booth action, or a sentence saying what is wrong.
fn parse(text: &str) -> Result<BoothAction, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(fields @ Value::Object(_)) => action_from(fields),
        Ok(_) => {
            Err("a booth message is a JSON object, e.g. {\"action\": \"off-air\"}; nothing was changed"
                .into())
        }
        Err(e) => Err(format!(
            "a booth message is JSON ({e}), e.g. {{\"action\": \"off-air\"}}; nothing was changed"
        )),
    }
}

/// The sentence for a message the socket could not read (most likely: too big).
fn too_big_or(e: axum::Error) -> String {
    let e = e.to_string();
    if e.contains("too long") || e.contains("Space limit") {
        format!("a booth message is at most {} KiB; nothing was changed", MAX_MESSAGE / 1024)
    } else {
        format!("the booth socket could not read a message ({e})")
    }
}

async fn send_json(socket: &mut WebSocket, value: &impl serde::Serialize) -> bool {
    match serde_json::to_string(value) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => true,
    }
}

async fn send_state(app: &App, me: &Interpreter, socket: &mut WebSocket) -> bool {
    match app.booth_state(me).await {
        Ok(state) => send_json(socket, &json!({"type": "state", "state": state})).await,
        Err(e) => send_json(socket, &json!({"type": "error", "detail": e.to_string()})).await,
    }
}

/// Close with a code and a sentence (a close frame's reason holds at most 123 bytes).
async fn close(socket: &mut WebSocket, code: u16, sentence: &str) {
    let mut end = sentence.len().min(123);
    while !sentence.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code, reason: sentence[..end].into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
