//! The HTTP edge (axum): WHIP/WHEP, the JSON API, pages, `/metrics` and `/healthz`. Handlers are
//! thin: typed extractors ([`extract`]) check the caller and parse the input, the handler calls the
//! services on [`App`], and errors map to problem+json ([`error`]); media state stays in the shards.
//! The routes and their OpenAPI document come from one list ([`routes`]).

mod api;
pub(crate) mod booth;
mod booth_socket;
mod cluster;
mod cors;
pub(crate) mod edge;
mod error;
pub(crate) mod extract;
mod headers;
pub(crate) mod media;
mod metrics;
mod openapi;
mod organiser;
mod pages;
mod plugin;
mod plugin_bundle;
mod problems;
mod recordings;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The public routes, each with its OpenAPI operation (`#[utoipa::path]` on its handler): the
/// router and the document ([`openapi`]) are made from this one list.
fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(metrics::healthz))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(api::create_event, api::list_events))
        .routes(routes!(api::get_event, api::cancel_event, api::change_event))
        .routes(routes!(api::capacity))
        .routes(routes!(organiser::languages))
        .routes(routes!(organiser::usage))
        .routes(routes!(organiser::live))
        .routes(routes!(organiser::qr))
        .routes(routes!(recordings::status, recordings::switch))
        .routes(routes!(recordings::list, recordings::delete_all))
        .routes(routes!(recordings::file, recordings::delete_one))
        .routes(routes!(recordings::archive))
        .routes(routes!(recordings::access))
        .routes(routes!(api::channels))
        .routes(routes!(booth::issue, booth::list))
        .routes(routes!(booth::revoke))
        .routes(routes!(booth::state))
        .routes(routes!(booth::consent))
        .routes(routes!(booth_socket::socket))
        .routes(routes!(booth::action))
        .routes(routes!(booth::publish))
        .routes(routes!(media::publish_floor))
        .routes(routes!(media::end_publishing, media::publishing_state))
        .routes(routes!(media::listen))
        .routes(routes!(media::end_listening, media::listening_state))
        .routes(routes!(media::switch_channel))
        .routes(routes!(cluster::cascade))
        .routes(routes!(cluster::end_cascade, cluster::cascade_state))
        .routes(routes!(pages::home))
        .routes(routes!(pages::listener))
        .routes(routes!(pages::booth))
        .routes(routes!(pages::old_booth_link))
        .routes(routes!(pages::asset))
        .routes(routes!(plugin::me))
        .routes(routes!(plugin::start, plugin::stop))
        .routes(routes!(plugin::name, plugin::unname))
        .routes(routes!(plugin::booth_link))
        .routes(routes!(plugin::open_booth))
        .routes(routes!(plugin_bundle::manifest))
        .routes(routes!(plugin_bundle::file))
}

/// The public router.
pub(crate) fn router(app: Arc<App>) -> Router {
    let single = headers::content_security_policy(&app.settings, &[]);
    let weak = Arc::downgrade(&app);
    // In a cluster, a page may talk to the other nodes (a listener sent on to another node).
    let csp = move || match weak.upgrade() {
        Some(app) if app.cluster.is_some() => {
            let nodes: Vec<String> = app.cluster.iter().flat_map(|c| c.nodes()).map(|n| n.url).collect();
            headers::content_security_policy(&app.settings, &nodes)
        }
        _ => single.clone(),
    };
    public(csp).with_state(app)
}

/// The public routes with their fallback and layers: everything but the state. `csp` gives the
/// pages' policy.
fn public(csp: impl Fn() -> axum::http::HeaderValue + Clone + Send + Sync + 'static) -> Router<Arc<App>> {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(problems::problems_only))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(move |response| {
            let csp = csp.clone();
            async move { headers::secure(response, &csp()) }
        }))
        .layer(axum::middleware::from_fn(cors::media_cors))
        // Refusals (a full event's 503) are answers, not failures: log them quietly.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
}
