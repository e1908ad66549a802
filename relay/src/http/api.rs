//! The organiser JSON API over events, and the public channel list the listener page reads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::CapacityView;
use crate::app::{App, Channels};
use crate::events::{EventChange, EventView, NewEvent};
use crate::http::ApiError;
use crate::http::extract::{JsonBody, Organiser, OwnedEvent};
use crate::http::openapi::EventPath;
use crate::ids::{EventId, IdempotencyKey};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CreateQuery {
    /// Only check whether the event fits: `200 {"fits": true}` or the 409; nothing is stored.
    dry_run: Option<bool>,
}

/// `POST /api/v1/events` (`?dry_run=true`: only check, `200 {"fits": true}` or the 409).
#[utoipa::path(post, path = "/api/v1/events", tag = "events", security(("organiser" = [])),
    params(CreateQuery, ("Idempotency-Key" = Option<String>, Header,
        description = "A retry with the same key and body within 24 h gets the first answer again (`Idempotent-Replayed: true`), creating nothing.")),
    request_body = NewEvent,
    responses(
        (status = 201, description = "Created: ids, links and the floor token (shown once).", body = EventView),
        (status = 422, description = "The Idempotency-Key was used for a different request."),
        (status = 429, description = "Too many wrong tokens from this address (`Retry-After`)."),
        (status = 200, description = "`dry_run`: the event fits (`{\"fits\": true}`).", body = serde_json::Value),
        (status = 400, description = "The request breaks a rule (named in `detail`)."),
        (status = 401, description = "No valid organiser token."),
        (status = 403, description = "A BBB meeting this organiser may not take."),
        (status = 409, description = "Capacity is short: when, by how much, and what would fit."),
        (status = 413, description = "The body is over 64 KiB."),
        (status = 415, description = "The body is not `application/json`.")))]
pub(super) async fn create_event(
    State(app): State<Arc<App>>,
    Organiser(caller): Organiser,
    Query(query): Query<CreateQuery>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<NewEvent>,
) -> Result<Response, ApiError> {
    let dry_run = query.dry_run.unwrap_or(false);
    let key = match headers.get("idempotency-key") {
        Some(value) => Some(IdempotencyKey::parse(value.to_str().unwrap_or("\u{fffd}"))?),
        None => None,
    };
    let created = app.create_event(caller, request, dry_run, key).await?;
    Ok(if dry_run {
        Json(serde_json::json!({"fits": true})).into_response()
    } else if created.replayed {
        let replayed = [("idempotent-replayed", "true")];
        (StatusCode::CREATED, replayed, Json(created.view)).into_response()
    } else {
        (StatusCode::CREATED, Json(created.view)).into_response()
    })
}

/// `GET /api/v1/events`: the events the caller may see (the admin: all).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("organiser" = [])),
    responses((status = 200, body = Vec<EventView>), (status = 401, description = "No valid organiser token.")))]
pub(super) async fn list_events(
    State(app): State<Arc<App>>,
    Organiser(caller): Organiser,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let events = app.events.visible_to(caller).await?;
    Ok(Json(events.iter().map(|e| app.events.view(e, None)).collect()))
}

/// `GET /api/v1/events/{id}`.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", security(("organiser" = [])), params(EventPath),
    responses((status = 200, body = EventView), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event (or not the caller's).")))]
pub(super) async fn get_event(State(app): State<Arc<App>>, owned: OwnedEvent) -> Json<EventView> {
    Json(app.events.view(&owned.event, None))
}

/// `PATCH /api/v1/events/{id}`: change title, languages, window or listeners (capacity re-checked).
#[utoipa::path(patch, path = "/api/v1/events/{id}", tag = "events", security(("organiser" = [])), params(EventPath),
    request_body = EventChange,
    responses((status = 200, body = EventView), (status = 400, description = "The change breaks a rule."),
        (status = 401, description = "No valid organiser token."), (status = 404, description = "No such event."),
        (status = 409, description = "Capacity is short, or languages change while sessions are live."),
        (status = 415, description = "The body is not `application/json`.")))]
pub(super) async fn change_event(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    JsonBody(change): JsonBody<EventChange>,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(app.change_event(&owned.event.id, change).await?))
}

/// `DELETE /api/v1/events/{id}`: cancel; its sessions end and its capacity is freed.
#[utoipa::path(delete, path = "/api/v1/events/{id}", tag = "events", security(("organiser" = [])), params(EventPath),
    responses((status = 204, description = "Cancelled."), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event.")))]
pub(super) async fn cancel_event(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<StatusCode, ApiError> {
    app.cancel_event(&owned.event.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CapacityQuery {
    /// Start of the window (RFC 3339); default: now.
    from: Option<String>,
    /// End of the window (RFC 3339); default: 7 days after `from`.
    to: Option<String>,
}

/// An RFC 3339 time from a query, or `default` when absent.
fn time_param(
    name: &str,
    value: Option<&String>,
    default: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => {
            chrono::DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| {
                ApiError::bad_request(format!(
                    "'{name}' must be an RFC 3339 time such as 2026-12-01T09:00:00Z ({e})"
                ))
            })
        }
    }
}

/// `GET /api/v1/capacity?from=&to=` (RFC 3339; default: the next 7 days).
#[utoipa::path(get, path = "/api/v1/capacity", tag = "events", security(("organiser" = [])), params(CapacityQuery),
    responses((status = 200, body = CapacityView), (status = 400, description = "`from` or `to` is not an RFC 3339 time."),
        (status = 401, description = "No valid organiser token.")))]
pub(super) async fn capacity(
    State(app): State<Arc<App>>,
    _caller: Organiser,
    Query(query): Query<CapacityQuery>,
) -> Result<Json<CapacityView>, ApiError> {
    let from = time_param("from", query.from.as_ref(), chrono::Utc::now())?;
    let to = time_param("to", query.to.as_ref(), from + chrono::Duration::days(7))?;
    let segments = app.events.free_capacity(from, to).await?;
    Ok(Json(CapacityView { capacity: app.events.capacity(), segments }))
}

/// What a listener may know: title, window and channels. No secrets.
#[utoipa::path(get, path = "/api/v1/events/{id}/channels", tag = "listeners", params(EventPath),
    responses((status = 200, body = Channels), (status = 404, description = "No such event.")))]
pub(super) async fn channels(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Channels>, ApiError> {
    Ok(Json(app.public_channels(&EventId::parse(&id)?).await?))
}
