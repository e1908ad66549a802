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

use crate::app::{App, InterpreterView, NewInterpreter};
use crate::booth::{BoothAction, BoothPush, BoothState};
use crate::http::api::owned;
use crate::http::media::{created, offer};
use crate::http::{ApiError, bearer, parse_json};
use crate::ids::InterpreterId;
use crate::store::interpreters::Interpreter;

pub async fn issue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<InterpreterView>), ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    let request: NewInterpreter = parse_json(&headers, &body)?;
    Ok((StatusCode::CREATED, Json(app.issue_interpreter(&event.id, request).await?)))
}

pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Vec<InterpreterView>>, ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    let interpreters = app.store.interpreters(&event.id).await?;
    Ok(Json(
        interpreters
            .into_iter()
            .map(|i| InterpreterView {
                id: i.id,
                name: i.name,
                languages: i.languages,
                token: None,
                booth_url: None,
            })
            .collect(),
    ))
}

pub async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, interpreter)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    let event = event.id;
    let interpreter = interpreter
        .parse::<i64>()
        .map(InterpreterId)
        .map_err(|_| ApiError::not_found(format!("'{interpreter}' is not a booth link id")))?;
    app.revoke_interpreter(&event, interpreter).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /whip/booth`: the interpreter's microphone up, their input and partner down.
pub async fn publish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let me = app.interpreter(bearer(&headers)).await?;
    let offer = offer(&headers, &body)?;
    let (session, answer) = app.publish_booth(&me, offer).await?;
    Ok(created(&app, "whip", &session, answer))
}

pub async fn state(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Json<BoothState>, ApiError> {
    let me = app.interpreter(bearer(&headers)).await?;
    Ok(Json(app.booth_state(&me).await?))
}

/// The action of a request: the path names it, the JSON body (may be empty) carries its fields.
fn parse_action(action: &str, headers: &HeaderMap, body: &Bytes) -> Result<BoothAction, ApiError> {
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

pub async fn action(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Json<BoothState>, ApiError> {
    let me = app.interpreter(bearer(&headers)).await?;
    let action = parse_action(&action, &headers, &body)?;
    app.booth_action(&me, action).await?;
    Ok(Json(app.booth_state(&me).await?))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// `GET /api/v1/booth/ws?token=…` (browsers cannot set headers on a websocket).
pub async fn socket(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = query.token.as_deref().or_else(|| bearer(&headers));
    let me = app.interpreter(token).await?;
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
    let mut pushes = app.booth_pushes(&me.event);
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
                    if app.interpreter_still_valid(&me).await == Some(false) {
                        let _ = send_json(&mut socket, &json!({"type": "error", "detail": "this booth link was revoked"})).await;
                        return;
                    }
                    if !send_state(&app, &me, &mut socket).await {
                        return;
                    }
                }
                Ok(push) if App::push_is_for(&push, &me) => {
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
