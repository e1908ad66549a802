//! WHIP (publish, RFC 9725) and WHEP (listen) endpoints, and ending a session by its URL.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::http::{ApiError, bearer};
use crate::ids::{EventId, Language, SessionId};

/// The SDP offer of a request: `Content-Type: application/sdp`, UTF-8, looks like SDP.
pub(crate) fn offer(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the SDP offer with 'Content-Type: application/sdp'",
        ));
    }
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the SDP offer is not UTF-8 text"))?;
    if !text.trim_start().starts_with("v=0") {
        return Err(ApiError::bad_request("the body is not an SDP offer (it must start with 'v=0')"));
    }
    Ok(text.to_owned())
}

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

pub async fn publish_floor(
    State(app): State<Arc<App>>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let layout = app.check_floor_token(&event, bearer(&headers)).await?;
    let offer = offer(&headers, &body)?;
    let (session, answer) = app.media.publish_floor(layout, offer).await?;
    Ok(created(&app, "whip", &session, answer))
}

pub async fn listen(
    State(app): State<Arc<App>>,
    Path((event, language)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let language = Language::parse(&language)?;
    let offer = offer(&headers, &body)?;
    let (session, answer) = app.listen(&event, language, offer).await?;
    Ok(created(&app, "whep", &session, answer))
}

pub async fn end_session(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = SessionId::parse(&session)?;
    app.media.end(&session).await?;
    Ok(StatusCode::OK)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    language: Language,
}

/// `POST {session}/channel {"language"}`: switch a live WHEP session at the next packet.
pub async fn switch_channel(
    State(app): State<Arc<App>>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let session = SessionId::parse(&session)?;
    let request: SwitchRequest = crate::http::parse_json(&headers, &body)?;
    app.switch_channel(&session, request.language).await?;
    Ok(StatusCode::NO_CONTENT)
}
