//! The HTTP edge (axum): WHIP/WHEP, the JSON API, pages, `/metrics` and `/healthz`. Handlers parse
//! and check input, call [`App`], and map errors to problem+json; media state stays in the shards.

mod api;
mod booth;
mod error;
mod media;
mod metrics;
mod organiser;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, header};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;
use tower_http::trace::TraceLayer;

use crate::app::App;
pub use error::ApiError;

/// Largest request body: an SDP offer or an event request is a few kilobytes.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/events", post(api::create_event).get(api::list_events))
        .route("/api/v1/events/{id}", get(api::get_event).delete(api::cancel_event).patch(api::change_event))
        .route("/api/v1/capacity", get(api::capacity))
        .route("/api/v1/languages", get(organiser::languages))
        .route("/api/v1/events/{id}/usage", get(organiser::usage))
        .route("/api/v1/events/{id}/live", get(organiser::live))
        .route("/e/{event}/qr.svg", get(organiser::qr))
        .route("/api/v1/events/{id}/channels", get(api::channels))
        .route("/api/v1/events/{id}/interpreters", post(booth::issue).get(booth::list))
        .route("/api/v1/events/{id}/interpreters/{interpreter}", delete(booth::revoke))
        .route("/api/v1/booth/state", get(booth::state))
        .route("/api/v1/booth/ws", get(booth::socket))
        .route("/api/v1/booth/{action}", post(booth::action))
        .route("/whip/booth", post(booth::publish))
        .route("/whip/{event}/floor", post(media::publish_floor))
        .route("/whip/sessions/{session}", delete(media::end_session))
        .route("/whep/{event}/{language}", post(media::listen))
        .route("/whep/sessions/{session}", delete(media::end_session))
        .route("/whep/sessions/{session}/channel", post(media::switch_channel))
        .route("/", get(pages::home))
        .route("/e/{event}", get(pages::listener))
        .route("/booth/{token}", get(pages::booth))
        .route("/static/{file}", get(pages::asset))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Refusals (a full event's 503) are answers, not failures: log them quietly.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(app)
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Parse a JSON body with an error that names the problem.
fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON with 'Content-Type: application/json'",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))
}
