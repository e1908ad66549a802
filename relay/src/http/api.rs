//! The organiser JSON API over events, and the public channel list the listener page reads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::app::{App, NewEvent};
use crate::http::{ApiError, bearer, parse_json};
use crate::ids::EventId;
use crate::media::router::{ChannelKind, EventRouter};

pub(crate) fn require_admin(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        None => Err(ApiError::unauthorized("this call needs 'Authorization: Bearer <admin token>'")),
        Some(token) if app.is_admin(token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("that token is not valid for the organiser API")),
    }
}

pub async fn create_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<crate::app::EventView>), ApiError> {
    require_admin(&app, &headers)?;
    let request: NewEvent = parse_json(&headers, &body)?;
    Ok((StatusCode::CREATED, Json(app.create_event(request).await?)))
}

pub async fn list_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<crate::app::EventView>>, ApiError> {
    require_admin(&app, &headers)?;
    let events = app.store.events().await?;
    Ok(Json(events.iter().map(|e| app.view(e, None)).collect()))
}

pub async fn get_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<crate::app::EventView>, ApiError> {
    require_admin(&app, &headers)?;
    let event = app.event(&EventId::parse(&id)?).await?;
    Ok(Json(app.view(&event, None)))
}

pub async fn change_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<crate::app::EventView>, ApiError> {
    require_admin(&app, &headers)?;
    let change: crate::app::EventChange = parse_json(&headers, &body)?;
    Ok(Json(app.change_event(&EventId::parse(&id)?, change).await?))
}

#[derive(serde::Deserialize)]
pub struct CapacityQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
pub struct CapacityView {
    capacity: crate::capacity::Capacity,
    segments: Vec<crate::capacity::FreeSegment>,
}

/// `GET /api/v1/capacity?from=&to=` (RFC 3339; default: the next 7 days).
pub async fn capacity(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CapacityQuery>,
) -> Result<Json<CapacityView>, ApiError> {
    require_admin(&app, &headers)?;
    let parse = |name: &str, value: Option<&String>, default: chrono::DateTime<chrono::Utc>| match value {
        None => Ok(default),
        Some(v) => {
            chrono::DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| {
                ApiError::bad_request(format!(
                    "'{name}' must be an RFC 3339 time such as 2026-12-01T09:00:00Z ({e})"
                ))
            })
        }
    };
    let now = chrono::Utc::now();
    let from = parse("from", query.from.as_ref(), now)?;
    let to = parse("to", query.to.as_ref(), from + chrono::Duration::days(7))?;
    let segments = app.free_capacity(from, to).await?;
    Ok(Json(CapacityView { capacity: app.settings.capacity, segments }))
}

pub async fn cancel_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&app, &headers)?;
    app.cancel_event(&EventId::parse(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct PublicEvent {
    id: EventId,
    title: String,
    starts_at: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
pub struct PublicChannel {
    language: crate::ids::Language,
    kind: ChannelKind,
    label: String,
    /// Who is heard: "floor" (the original speech) or "interpreter".
    speaking: &'static str,
    /// The interpreter on air, by name, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<String>,
}

#[derive(Serialize)]
pub struct Channels {
    event: PublicEvent,
    channels: Vec<PublicChannel>,
}

/// What a listener may know: title, window and channels. No secrets.
pub async fn channels(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Channels>, ApiError> {
    let event = app.event(&EventId::parse(&id)?).await?;
    let on_air = app.on_air_now(&event.id);
    let names: std::collections::HashMap<_, _> =
        app.store.interpreters(&event.id).await?.into_iter().map(|i| (i.id, i.name)).collect();
    let channels = std::iter::once(&event.floor_language)
        .chain(&event.languages)
        .enumerate()
        .map(|(i, language)| {
            let interpreter = on_air.get(language).and_then(|(who, _)| names.get(who).cloned());
            PublicChannel {
                language: language.clone(),
                kind: EventRouter::kind(i),
                label: crate::languages::label(language),
                speaking: if interpreter.is_some() { "interpreter" } else { "floor" },
                interpreter,
            }
        })
        .collect();
    Ok(Json(Channels {
        event: PublicEvent {
            id: event.id,
            title: event.title,
            starts_at: event.starts_at,
            ends_at: event.ends_at,
        },
        channels,
    }))
}
