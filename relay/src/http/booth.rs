//! The booth API: booth links (organiser), the interpreter's WHIP publish, booth actions as JSON,
//! the booth state, and a websocket that pushes state, chat and handover requests to the page.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::booths::desk::{BoothAction, BoothPush};
use crate::booths::{BoothState, InterpreterView, NewInterpreter};
use crate::http::ApiError;
use crate::http::extract::{Booth, JsonBody, OwnedEvent, SdpOffer, bearer, parse_json};
use crate::http::media::created;
use crate::ids::InterpreterId;
use crate::store::interpreters::Interpreter;

/// `POST /api/v1/events/{id}/interpreters`: issue a booth link.
pub(super) async fn issue(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    JsonBody(request): JsonBody<NewInterpreter>,
) -> Result<(StatusCode, Json<InterpreterView>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.booths.issue(&owned.event, request).await?)))
}

/// `GET /api/v1/events/{id}/interpreters`: the live booth links (without tokens).
pub(super) async fn list(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<Json<Vec<InterpreterView>>, ApiError> {
    Ok(Json(app.booths.list(&owned.event.id).await?))
}

/// `DELETE /api/v1/events/{id}/interpreters/{interpreter}`: revoke a booth link.
pub(super) async fn revoke(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    Path((_, interpreter)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let interpreter = interpreter
        .parse::<i64>()
        .map(InterpreterId)
        .map_err(|_| ApiError::not_found(format!("'{interpreter}' is not a booth link id")))?;
    app.booths.revoke(&owned.event.id, interpreter).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /whip/booth`: the interpreter's microphone up, their input and partner down.
pub(super) async fn publish(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
    SdpOffer(offer): SdpOffer,
) -> Result<Response, ApiError> {
    let (session, answer) = app.publish_booth(&me, offer).await?;
    Ok(created(&app, "whip", &session, answer))
}

/// `GET /api/v1/booth/state`.
pub(super) async fn state(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
) -> Result<Json<BoothState>, ApiError> {
    Ok(Json(app.booth_state(&me).await?))
}

/// The action of a request: the path names it, the JSON body (may be empty) carries its fields.
pub(crate) fn parse_action(action: &str, headers: &HeaderMap, body: &Bytes) -> Result<BoothAction, ApiError> {
    let mut fields: Value =
        if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_json(headers, body)? };
    let Some(object) = fields.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    object.insert("action".into(), Value::String(action.to_owned()));
    serde_json::from_value(fields).map_err(|e| {
        ApiError::bad_request(format!(
            "'{action}' is not a booth action with these fields ({e}); actions: on-air, off-air, mute, input, handover-request, handover-accept, chat, slow-down"
        ))
    })
}

/// `POST /api/v1/booth/{action}`: one booth action; answers the new state.
pub(super) async fn action(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Json<BoothState>, ApiError> {
    let action = parse_action(&action, &headers, &body)?;
    app.booth_action(&me, action).await?;
    Ok(Json(app.booth_state(&me).await?))
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

/// `GET /api/v1/booth/ws?token=…` (browsers cannot set headers on a websocket).
pub(super) async fn socket(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = query.token.as_deref().or_else(|| bearer(&headers));
    let me = app.auth.interpreter(token).await?;
    Ok(upgrade.on_upgrade(move |socket| serve_socket(app, me, socket)).into_response())
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

async fn serve_socket(app: Arc<App>, me: Interpreter, mut socket: WebSocket) {
    let mut pushes = match app.events.live(&me.event).await {
        Ok(live) => app.booths.subscribe(&live),
        Err(e) => {
            let _ = send_json(&mut socket, &json!({"type": "error", "detail": e.to_string()})).await;
            return;
        }
    };
    if !send_state(&app, &me, &mut socket).await {
        return;
    }
    // Listener counts change without a booth action: refresh them every few seconds.
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(5));
    refresh.tick().await;
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                if !send_state(&app, &me, &mut socket).await {
                    return;
                }
            }
            push = pushes.recv() => match push {
                Ok(BoothPush::State) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // A revoked link stops receiving anything but its 401.
                    if app.auth.still_valid(&me).await == Some(false) {
                        let _ = send_json(&mut socket, &json!({"type": "error", "detail": "this booth link was revoked"})).await;
                        return;
                    }
                    if !send_state(&app, &me, &mut socket).await {
                        return;
                    }
                }
                Ok(push) if push.is_for(&me) => {
                    if !send_json(&mut socket, &push).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    let result = match serde_json::from_str::<BoothAction>(&text) {
                        Ok(action) => app.booth_action(&me, action).await.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("not a booth action: {e}")),
                    };
                    if let Err(detail) = result
                        && !send_json(&mut socket, &json!({"type": "error", "detail": detail})).await
                    {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
