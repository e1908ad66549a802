//! What the organiser page reads besides events: the usage report (JSON or CSV), the live view of
//! an event, the language list, and the listener link's QR code for the room.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::UsageReport;
use crate::app::{App, Live};
use crate::http::ApiError;
use crate::http::extract::OwnedEvent;
use crate::http::openapi::EventPath;
use crate::ids::EventId;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UsageQuery {
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

/// `GET /api/v1/events/{id}/usage` (`?format=csv`).
#[utoipa::path(get, path = "/api/v1/events/{id}/usage", tag = "events", security(("organiser" = [])),
    params(EventPath, UsageQuery),
    responses((status = 200, body = UsageReport, description = "The report (JSON, or CSV with `format=csv`)."),
        (status = 400, description = "A format other than json or csv."),
        (status = 401, description = "No valid organiser token."), (status = 404, description = "No such event.")))]
pub(super) async fn usage(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let id = owned.event.id.clone();
    let report = app.usage(owned.event).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => {
            let mut response = crate::usage::to_csv(&report).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"tolk-usage-{id}.csv\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(response)
        }
        Some(other) => Err(ApiError::bad_request(format!("format '{other}' is not json or csv"))),
    }
}

/// `GET /api/v1/events/{id}/live`: listeners per channel, who is on air, floor state, slow-downs.
#[utoipa::path(get, path = "/api/v1/events/{id}/live", tag = "events", security(("organiser" = [])), params(EventPath),
    responses((status = 200, body = Live), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event.")))]
pub(super) async fn live(State(app): State<Arc<App>>, owned: OwnedEvent) -> Result<Json<Live>, ApiError> {
    Ok(Json(app.live_view(&owned.event).await?))
}

/// A language the pages offer by name.
#[derive(Serialize, ToSchema)]
pub(super) struct LanguageName {
    /// The BCP 47 tag.
    code: String,
    /// Its name, in that language.
    label: String,
}

/// `GET /api/v1/languages`: the languages the pages offer by name.
#[utoipa::path(get, path = "/api/v1/languages", tag = "listeners", responses((status = 200, body = Vec<LanguageName>)))]
pub(super) async fn languages() -> Json<Vec<LanguageName>> {
    Json(
        crate::languages::all()
            .map(|(code, label)| LanguageName { code: code.into(), label: label.into() })
            .collect(),
    )
}

/// `GET /e/{event}/qr.svg`: the listener link as a QR code, for the room.
#[utoipa::path(get, path = "/e/{event}/qr.svg", tag = "pages",
    params(("event" = EventId, Path, description = "The event's id.")),
    responses((status = 200, description = "An SVG image.", content_type = "image/svg+xml"),
        (status = 404, description = "No such event.")))]
pub(super) async fn qr(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let event = app.events.event(&EventId::parse(&id)?).await?;
    let link = app.events.listener_url(&event.id);
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::bad_request(format!("the listener link cannot be a QR code: {e}")))?;
    let svg =
        code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build();
    let mut response = svg.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok(response)
}
