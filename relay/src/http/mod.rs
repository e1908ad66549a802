//! The HTTP edge (axum): WHIP/WHEP, the JSON API, pages, `/metrics` and `/healthz`. Handlers are
//! thin: typed extractors ([`extract`]) check the caller and parse the input, the handler calls the
//! services on [`App`], and errors map to problem+json ([`error`]); media state stays in the shards.

mod api;
pub(crate) mod booth;
mod booth_socket;
pub(crate) mod edge;
mod error;
pub(crate) mod extract;
mod headers;
mod media;
mod metrics;
mod organiser;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use crate::app::App;
pub(crate) use error::ApiError;

/// Largest request body: an SDP offer or an event request is a few kilobytes.
const BODY_LIMIT: usize = 64 * 1024;

/// The metrics listener's routes: `/metrics` and `/healthz`, for the operator's Prometheus, on
/// an address of their own (loopback by default), never the public one.
pub(crate) fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(metrics::healthz))
        .with_state(app)
}

/// The public routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    let csp = headers::content_security_policy(&app.settings);
    Router::new()
        .route("/healthz", get(metrics::healthz))
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
        .route("/api/v1/booth/ws", get(booth_socket::socket))
        .route("/api/v1/booth/{action}", post(booth::action))
        .route("/whip/booth", post(booth::publish))
        .route("/whip/{event}/floor", post(media::publish_floor))
        .route("/whip/sessions/{session}", delete(media::end_session).get(media::session_state))
        .route("/whep/{event}/{language}", post(media::listen))
        .route("/whep/sessions/{session}", delete(media::end_session).get(media::session_state))
        .route("/whep/sessions/{session}/channel", post(media::switch_channel))
        .route("/", get(pages::home))
        .route("/e/{event}", get(pages::listener))
        .route("/booth", get(pages::booth))
        .route("/booth/{token}", get(pages::old_booth_link))
        .route("/static/{file}", get(pages::asset))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(move |response| {
            let csp = csp.clone();
            async move { headers::secure(response, &csp) }
        }))
        // Refusals (a full event's 503) are answers, not failures: log them quietly.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(app)
}
