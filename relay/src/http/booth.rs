//! The booth API: booth links (organiser), the interpreter's WHIP publish, booth actions as JSON
//! and the booth state. The booth's websocket is [`super::booth_socket`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::booths::desk::BoothAction;
use crate::booths::{BoothState, ConsentChange, InterpreterView, NewInterpreter};
use crate::http::ApiError;
use crate::http::extract::{Booth, JsonBody, OwnedEvent, SdpOffer, parse_json};
use crate::http::openapi::EventPath;
use crate::ids::InterpreterId;

/// `POST /api/v1/events/{id}/interpreters`: issue a booth link.
#[utoipa::path(post, path = "/api/v1/events/{id}/interpreters", tag = "booths", security(("organiser" = [])),
    params(EventPath), request_body = NewInterpreter,
    responses((status = 201, body = InterpreterView, description = "The booth link, with its token (shown once)."),
        (status = 400, description = "A name or languages that break a rule."), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event."), (status = 415, description = "The body is not `application/json`.")))]
pub(super) async fn issue(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    JsonBody(request): JsonBody<NewInterpreter>,
) -> Result<(StatusCode, Json<InterpreterView>), ApiError> {
    let issued = app.booths.issue(&owned.event, request).await?;
    if issued.recording_consent {
        // A recording running now hears them from their first word.
        app.recordings.refresh_consent().await;
    }
    Ok((StatusCode::CREATED, Json(issued)))
}

/// `GET /api/v1/events/{id}/interpreters`: the live booth links (without tokens).
#[utoipa::path(get, path = "/api/v1/events/{id}/interpreters", tag = "booths", security(("organiser" = [])),
    params(EventPath), responses((status = 200, body = Vec<InterpreterView>),
        (status = 401, description = "No valid organiser token."), (status = 404, description = "No such event.")))]
pub(super) async fn list(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<Json<Vec<InterpreterView>>, ApiError> {
    Ok(Json(app.booths.list(&owned.event.id).await?))
}

/// `DELETE /api/v1/events/{id}/interpreters/{interpreter}`: revoke a booth link.
#[utoipa::path(delete, path = "/api/v1/events/{id}/interpreters/{interpreter}", tag = "booths",
    security(("organiser" = [])),
    params(EventPath, ("interpreter" = InterpreterId, Path, description = "The booth link's id.")),
    responses((status = 204, description = "Revoked: the token is dead, its session ended."),
        (status = 401, description = "No valid organiser token."), (status = 404, description = "No such event or booth link.")))]
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
#[utoipa::path(post, path = "/whip/booth", tag = "booths", security(("booth" = [])), request_body(content = String, content_type = "application/sdp", description = "The SDP offer."),
    responses((status = 201, description = "The SDP answer; `Location` is the session's URL.", body = String, content_type = "application/sdp", headers(("Location" = String, description = "The session's URL."))), (status = 400, description = "The offer is not SDP Tolk can answer (the reason is named)."), (status = 415, description = "The body is not `application/sdp`."),
        (status = 401, description = "No valid booth token."), (status = 403, description = "Outside the event's media window.")))]
pub(super) async fn publish(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
    headers: HeaderMap,
    SdpOffer(offer): SdpOffer,
) -> Result<Response, ApiError> {
    let result = app.publish_booth(&me, offer.clone()).await?;
    super::media::publish_served(&app, result, &headers, offer).await
}

/// `GET /api/v1/booth/state`.
#[utoipa::path(get, path = "/api/v1/booth/state", tag = "booths", security(("booth" = [])),
    responses((status = 200, body = BoothState), (status = 401, description = "No valid booth token.")))]
pub(super) async fn state(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // In a cluster, the booth desk is on the event's origin.
    if let Some(origin) = app.booth_origin(&me, "/api/v1/booth/state").await? {
        let forwarded = super::cluster::was_forwarded(&headers);
        return super::cluster::forward(&app, Method::GET, &origin, &headers, Bytes::new(), forwarded).await;
    }
    Ok(Json(app.booth_state(&me).await?).into_response())
}

/// `POST /api/v1/booth/consent`: whether I agree to my interpretation being recorded; answers
/// the new state. Withdrawn, it takes effect at my next packet in a running recording.
#[utoipa::path(operation_id = "booth_consent", post, path = "/api/v1/booth/consent", tag = "booths", security(("booth" = [])),
    request_body = ConsentChange,
    responses((status = 200, body = BoothState, description = "Done: the new state."),
        (status = 400, description = "Not a consent change."), (status = 401, description = "No valid booth token.")))]
pub(super) async fn consent(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    app.booth_rate(me.id)?;
    let change: ConsentChange = parse_json(&headers, &body)?;
    // In a cluster, a running recording is on the event's origin.
    if let Some(origin) = app.booth_origin(&me, "/api/v1/booth/consent").await? {
        let forwarded = super::cluster::was_forwarded(&headers);
        return super::cluster::forward(&app, Method::POST, &origin, &headers, body, forwarded).await;
    }
    app.set_recording_consent(&me, change.recording_consent).await?;
    let me = crate::store::interpreters::Interpreter { recording_consent: change.recording_consent, ..me };
    Ok(Json(app.booth_state(&me).await?).into_response())
}

/// What a booth message may ask, for the sentence of a refusal.
const ACTIONS: &str = "actions: on-air {language}, off-air, mute {muted}, input {source}, \
     handover-request, handover-accept, chat {text}, slow-down";

/// A booth action from its JSON fields (`"action"` and the action's own), or a sentence that
/// names what is wrong and that nothing changed. Shared by the JSON calls and the websocket.
pub(super) fn action_from(fields: Value) -> Result<BoothAction, String> {
    let name = match fields.get("action") {
        Some(Value::String(name)) => name.chars().take(40).collect::<String>(),
        _ => {
            return Err(format!(
                "a booth message needs \"action\" (a string); nothing was changed; {ACTIONS}"
            ));
        }
    };
    serde_json::from_value(fields).map_err(|e| {
        format!("'{name}' is not a booth action with these fields ({e}); nothing was changed; {ACTIONS}")
    })
}

/// The action of a request: the path names it, the JSON body (may be empty) carries its fields.
pub(crate) fn parse_action(action: &str, headers: &HeaderMap, body: &Bytes) -> Result<BoothAction, ApiError> {
    let mut fields: Value =
        if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_json(headers, body)? };
    let Some(object) = fields.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    object.insert("action".into(), Value::String(action.to_owned()));
    action_from(fields).map_err(ApiError::bad_request)
}

/// `POST /api/v1/booth/{action}`: one booth action; answers the new state.
#[utoipa::path(post, path = "/api/v1/booth/{action}", tag = "booths", security(("booth" = [])),
    params(("action" = String, Path, description = "on-air, off-air, mute, input, handover-request, handover-accept, chat or slow-down.")),
    request_body(content = Option<serde_json::Value>, description = "The action's fields as a JSON object (may be empty):         on-air {language}, mute {muted}, input {source}, chat {text}."),
    responses((status = 200, body = BoothState, description = "Done: the new state."),
        (status = 400, description = "Not an action, or fields of the wrong name or type; nothing changed."),
        (status = 401, description = "No valid booth token."), (status = 403, description = "Not one of this booth's languages."),
        (status = 409, description = "Not possible now (e.g. nothing to hand over)."),
        (status = 415, description = "A body that is not `application/json`."), (status = 429, description = "Too many actions.")))]
pub(super) async fn action(
    State(app): State<Arc<App>>,
    Booth(me): Booth,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    app.booth_rate(me.id)?;
    let parsed = parse_action(&action, &headers, &body)?;
    // In a cluster, the booth desk is on the event's origin.
    if let Some(origin) = app.booth_origin(&me, &format!("/api/v1/booth/{action}")).await? {
        let forwarded = super::cluster::was_forwarded(&headers);
        return super::cluster::forward(&app, Method::POST, &origin, &headers, body, forwarded).await;
    }
    app.booth_action(&me, parsed).await?;
    Ok(Json(app.booth_state(&me).await?).into_response())
}
