//! The organiser JSON API over events, and the public channel list the listener page reads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::CapacityView;
use crate::app::{App, Channels};
use crate::events::{EventChange, EventView, NewEvent};
use crate::http::ApiError;
use crate::http::extract::{JsonBody, Organiser, OwnedEvent};
use crate::ids::{EventId, IdempotencyKey};

#[derive(Deserialize)]
pub(super) struct CreateQuery {
    dry_run: Option<bool>,
}

/// `POST /api/v1/events` (`?dry_run=true`: only check, `200 {"fits": true}` or the 409).
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

pub(super) async fn list_events(
    State(app): State<Arc<App>>,
    Organiser(caller): Organiser,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let events = app.events.visible_to(caller).await?;
    Ok(Json(events.iter().map(|e| app.events.view(e, None)).collect()))
}

pub(super) async fn get_event(State(app): State<Arc<App>>, owned: OwnedEvent) -> Json<EventView> {
    Json(app.events.view(&owned.event, None))
}

pub(super) async fn change_event(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    JsonBody(change): JsonBody<EventChange>,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(app.events.change(&owned.event.id, change).await?))
}

pub(super) async fn cancel_event(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<StatusCode, ApiError> {
    app.events.cancel(&owned.event.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(super) struct CapacityQuery {
    from: Option<String>,
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
pub(super) async fn channels(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Channels>, ApiError> {
    Ok(Json(app.public_channels(&EventId::parse(&id)?).await?))
}
