//! WHIP (publish, RFC 9725) and WHEP (listen) endpoints, and ending or switching a session by its
//! URL.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::SwitchRequest;
use crate::app::{App, Served};
use crate::http::ApiError;
use crate::http::extract::{ClientAddr, JsonBody, SdpOffer, bearer};
use crate::http::openapi::SessionPath;
use crate::ids::{EventId, Language, SessionId};

/// `201 Created` with the SDP answer and the session's URL (`{public_url}/{kind}/sessions/…`);
/// or, when another node of the cluster serves the request, `307 Temporary Redirect` to it (WHIP
/// and WHEP clients send the same offer there).
pub(crate) fn served(app: &App, kind: &str, served: Served) -> Response {
    match served {
        Served::Here(session, answer) => created(app, kind, &session, answer),
        Served::Elsewhere(url) => {
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(value) = HeaderValue::from_str(&url) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

/// `201 Created` with the SDP answer and the session's URL.
fn created(app: &App, kind: &str, session: &SessionId, answer: String) -> Response {
    let location = format!("{}/{kind}/sessions/{session}", app.settings.public_url);
    let mut response = (StatusCode::CREATED, answer).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// `POST /whip/{event}/floor` with the floor token.
#[utoipa::path(post, path = "/whip/{event}/floor", tag = "media", security(("floor" = [])),
    params(("event" = EventId, Path, description = "The event's id.")), request_body(content = String, content_type = "application/sdp", description = "The SDP offer."),
    responses((status = 201, description = "The SDP answer; `Location` is the session's URL.", body = String, content_type = "application/sdp", headers(("Location" = String, description = "The session's URL."))), (status = 400, description = "The offer is not SDP Tolk can answer (the reason is named)."), (status = 415, description = "The body is not `application/sdp`."), (status = 401, description = "No valid floor token for this event."), (status = 503, description = "In a cluster: the event's origin node does not answer (failing over); try again (Retry-After)."),
        (status = 403, description = "Outside the event's media window."), (status = 404, description = "No such event.")))]
pub(super) async fn publish_floor(
    State(app): State<Arc<App>>,
    Path(event): Path<String>,
    headers: HeaderMap,
    ClientAddr(client): ClientAddr,
    SdpOffer(offer): SdpOffer,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let result = app.publish_floor(&event, bearer(&headers), client, offer.clone()).await?;
    publish_served(&app, result, &headers, offer).await
}

/// A WHIP publish's answer: here, `201`; when the event's origin is another node, the origin's
/// own answer to the same request, forwarded there with its token.
pub(crate) async fn publish_served(
    app: &App,
    result: Served,
    headers: &HeaderMap,
    offer: String,
) -> Result<Response, ApiError> {
    match result {
        Served::Elsewhere(origin) => {
            let forwarded = super::cluster::was_forwarded(headers);
            super::cluster::forward(app, axum::http::Method::POST, &origin, headers, offer.into(), forwarded)
                .await
        }
        here => Ok(served(app, "whip", here)),
    }
}

/// `POST /whep/{event}/{language}`: a listener joins.
#[utoipa::path(post, path = "/whep/{event}/{language}", tag = "media",
    params(("event" = EventId, Path, description = "The event's id."), ("language" = Language, Path, description = "The channel's language.")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer."),
    responses((status = 201, description = "The SDP answer; `Location` is the session's URL.", body = String, content_type = "application/sdp", headers(("Location" = String, description = "The session's URL."))), (status = 307, description = "Another node of the cluster serves this: send the same offer to `Location`.", headers(("Location" = String, description = "The same request on that node."))), (status = 400, description = "The offer is not SDP Tolk can answer (the reason is named)."), (status = 415, description = "The body is not `application/sdp`."), (status = 403, description = "Outside the event's media window."),
        (status = 404, description = "No such event or channel."), (status = 429, description = "Too many joins from this address."),
        (status = 503, description = "The event or the node is full (Retry-After).")))]
pub(super) async fn listen(
    State(app): State<Arc<App>>,
    Path((event, language)): Path<(String, String)>,
    ClientAddr(client): ClientAddr,
    SdpOffer(offer): SdpOffer,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let language = Language::parse(&language)?;
    let result = app.listen(&event, language, client, offer).await?;
    Ok(served(&app, "whep", result))
}

/// `GET {session}`: 204 while the relay holds the session, 404 when it does not (a page asks
/// when its media stalls, to tell a quiet floor from a restarted relay).
async fn session_state(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = SessionId::parse(&session)?;
    if app.session_live(&session) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no media session {session}")))
    }
}

/// `GET /whip/sessions/{session}`: whether the relay still holds a publishing session.
#[utoipa::path(get, path = "/whip/sessions/{session}", tag = "media", params(SessionPath),
    responses((status = 204, description = "The relay holds the session."), (status = 404, description = "No such session.")))]
pub(super) async fn publishing_state(
    app: State<Arc<App>>,
    session: Path<String>,
) -> Result<StatusCode, ApiError> {
    session_state(app, session).await
}

/// `GET /whep/sessions/{session}`: whether the relay still holds a listening session.
#[utoipa::path(get, path = "/whep/sessions/{session}", tag = "media", params(SessionPath),
    responses((status = 204, description = "The relay holds the session."), (status = 404, description = "No such session.")))]
pub(super) async fn listening_state(
    app: State<Arc<App>>,
    session: Path<String>,
) -> Result<StatusCode, ApiError> {
    session_state(app, session).await
}

/// `DELETE /whip/sessions/{session}`: stop publishing.
#[utoipa::path(delete, path = "/whip/sessions/{session}", tag = "media", params(SessionPath),
    responses((status = 200, description = "Ended."), (status = 404, description = "No such session.")))]
pub(super) async fn end_publishing(
    app: State<Arc<App>>,
    session: Path<String>,
) -> Result<StatusCode, ApiError> {
    end_session(app, session).await
}

/// `DELETE /whep/sessions/{session}`: leave.
#[utoipa::path(delete, path = "/whep/sessions/{session}", tag = "media", params(SessionPath),
    responses((status = 200, description = "Ended."), (status = 404, description = "No such session.")))]
pub(super) async fn end_listening(
    app: State<Arc<App>>,
    session: Path<String>,
) -> Result<StatusCode, ApiError> {
    end_session(app, session).await
}

/// `DELETE {session}`: end a session.
async fn end_session(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.end_session(&SessionId::parse(&session)?).await?;
    Ok(StatusCode::OK)
}

/// `POST {session}/channel {"language"}`: switch a live WHEP session at the next packet.
#[utoipa::path(post, path = "/whep/sessions/{session}/channel", tag = "media", params(SessionPath),
    request_body = SwitchRequest,
    responses((status = 204, description = "Switched at the next packet."), (status = 400, description = "Not a language."),
        (status = 404, description = "No such session or channel."), (status = 415, description = "The body is not `application/json`."),
        (status = 429, description = "Too many switches.")))]
pub(super) async fn switch_channel(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
    JsonBody(request): JsonBody<SwitchRequest>,
) -> Result<StatusCode, ApiError> {
    let session = SessionId::parse(&session)?;
    app.switch_channel(&session, request.language).await?;
    Ok(StatusCode::NO_CONTENT)
}
