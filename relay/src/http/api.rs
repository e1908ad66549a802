//! The organiser JSON API over events, and the public channel list the listener page reads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::app::{App, Caller, NewEvent};
use crate::http::{ApiError, bearer, parse_json};
use crate::ids::EventId;
use crate::media::router::{ChannelKind, EventRouter};
use axum::response::{IntoResponse, Response};

/// The caller of an organiser call: the admin token or an organiser's token (401 otherwise).
pub(crate) async fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    Ok(app.caller(bearer(headers)).await?)
}

/// An event the caller may manage (404 for others' events).
pub(crate) async fn owned(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, crate::store::Event), ApiError> {
    let caller = caller(app, headers).await?;
    let event = app.owned_event(&caller, &EventId::parse(id)?).await?;
    Ok((caller, event))
}

#[derive(serde::Deserialize)]
pub struct CreateQuery {
    dry_run: Option<bool>,
}

/// `POST /api/v1/events` (`?dry_run=true`: only check, `200 {"fits": true}` or the 409).
pub async fn create_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CreateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&app, &headers).await?;
    let request: NewEvent = parse_json(&headers, &body)?;
    let dry_run = query.dry_run.unwrap_or(false);
    let view = app.create_event(&caller, request, dry_run).await?;
    Ok(if dry_run {
        Json(serde_json::json!({"fits": true})).into_response()
    } else {
        (StatusCode::CREATED, Json(view)).into_response()
    })
}

pub async fn list_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<crate::app::EventView>>, ApiError> {
    let caller = caller(&app, &headers).await?;
    let events = app.events_of(&caller).await?;
    Ok(Json(events.iter().map(|e| app.view(e, None)).collect()))
}

pub async fn get_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<crate::app::EventView>, ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    Ok(Json(app.view(&event, None)))
}

pub async fn change_event(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<crate::app::EventView>, ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    let change: crate::app::EventChange = parse_json(&headers, &body)?;
    Ok(Json(app.change_event(&event.id, change).await?))
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
    caller(&app, &headers).await?;
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
    let (_, event) = owned(&app, &headers, &id).await?;
    app.cancel_event(&event.id).await?;
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
