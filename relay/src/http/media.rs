//! WHIP (publish, RFC 9725) and WHEP (listen) endpoints, and ending or switching a session by its
//! URL.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::SwitchRequest;
use crate::app::App;
use crate::http::ApiError;
use crate::http::extract::{ClientAddr, JsonBody, SdpOffer, bearer};
use crate::ids::{EventId, Language, SessionId};

/// `201 Created` with the SDP answer and the session's URL.
pub(crate) fn created(app: &App, kind: &str, session: &SessionId, answer: String) -> Response {
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
pub(super) async fn publish_floor(
    State(app): State<Arc<App>>,
    Path(event): Path<String>,
    headers: HeaderMap,
    ClientAddr(client): ClientAddr,
    SdpOffer(offer): SdpOffer,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let (session, answer) = app.publish_floor(&event, bearer(&headers), client, offer).await?;
    Ok(created(&app, "whip", &session, answer))
}

/// `POST /whep/{event}/{language}`: a listener joins.
pub(super) async fn listen(
    State(app): State<Arc<App>>,
    Path((event, language)): Path<(String, String)>,
    ClientAddr(client): ClientAddr,
    SdpOffer(offer): SdpOffer,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let language = Language::parse(&language)?;
    let (session, answer) = app.listen(&event, language, client, offer).await?;
    Ok(created(&app, "whep", &session, answer))
}

/// `GET {session}`: 204 while the relay holds the session, 404 when it does not (a page asks
/// when its media stalls, to tell a quiet floor from a restarted relay).
pub(super) async fn session_state(
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

/// `DELETE {session}`: leave.
pub(super) async fn end_session(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.end_session(&SessionId::parse(&session)?).await?;
    Ok(StatusCode::OK)
}

/// `POST {session}/channel {"language"}`: switch a live WHEP session at the next packet.
pub(super) async fn switch_channel(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
    JsonBody(request): JsonBody<SwitchRequest>,
) -> Result<StatusCode, ApiError> {
    let session = SessionId::parse(&session)?;
    app.switch_channel(&session, request.language).await?;
    Ok(StatusCode::NO_CONTENT)
}
