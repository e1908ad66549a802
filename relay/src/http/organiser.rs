//! What the organiser page reads besides events: the usage report (JSON or CSV), the live view of
//! an event, the language list, and the listener link's QR code for the room.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::http::ApiError;
use crate::http::api::owned;
use crate::ids::{EventId, Language};
use crate::net::SessionKind;
use crate::store::FloorKind;

#[derive(Deserialize)]
pub struct UsageQuery {
    format: Option<String>,
}

pub async fn usage(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    let report = app.usage(&event.id).await?;
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

#[derive(Serialize)]
pub struct LiveChannel {
    language: Language,
    label: String,
    kind: crate::media::router::ChannelKind,
    listeners: usize,
    on_air: Option<LiveOnAir>,
}

#[derive(Serialize)]
pub struct LiveOnAir {
    name: String,
    muted: bool,
}

#[derive(Serialize)]
pub struct LiveFloor {
    kind: FloorKind,
    /// A WHIP floor publisher is connected, a BBB floor is live (None for an RTP floor: packets
    /// are not tracked).
    connected: Option<bool>,
    /// A BBB floor: waiting, joining, live, error or ended, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    bbb: Option<crate::bbb::FloorStatus>,
}

#[derive(Serialize)]
pub struct LiveSlowDown {
    name: String,
    at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
pub struct Live {
    floor: LiveFloor,
    channels: Vec<LiveChannel>,
    listeners: usize,
    slow_downs: Vec<LiveSlowDown>,
    handovers: i64,
}

/// `GET /api/v1/events/{id}/live`: listeners per channel, who is on air, floor state, slow-downs.
pub async fn live(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Live>, ApiError> {
    let (_, event) = owned(&app, &headers, &id).await?;
    let listeners = app.listeners(&event.id).await;
    let on_air = app.on_air_now(&event.id);
    let names: std::collections::HashMap<_, _> =
        app.store.all_interpreters(&event.id).await?.into_iter().map(|i| (i.id, i.name)).collect();
    let name = |who| names.get(&who).cloned().unwrap_or_default();
    let channels: Vec<LiveChannel> = std::iter::once(&event.floor_language)
        .chain(&event.languages)
        .enumerate()
        .map(|(i, language)| LiveChannel {
            language: language.clone(),
            label: crate::languages::label(language),
            kind: crate::media::router::EventRouter::kind(i),
            listeners: listeners.get(language).copied().unwrap_or(0),
            on_air: on_air.get(language).map(|(who, muted)| LiveOnAir { name: name(*who), muted: *muted }),
        })
        .collect();
    let bbb = app.bbb_floor(&event.id).map(|w| w.borrow().clone());
    let connected = match event.floor_kind {
        FloorKind::Whip => Some(
            app.media.sessions().iter().any(|s| s.event == event.id && s.kind == SessionKind::FloorPublisher),
        ),
        FloorKind::Rtp => None,
        FloorKind::Bbb => Some(bbb.as_ref().is_some_and(|s| s.state == crate::bbb::floor::FloorState::Live)),
    };
    let (_, _, handovers, _) = app.store.usage_counts(&event.id).await?;
    let slow_downs = app
        .store
        .slow_downs(&event.id)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(LiveSlowDown {
                name: name(s.interpreter),
                at: chrono::DateTime::from_timestamp_millis(s.at)?,
            })
        })
        .collect();
    Ok(Json(Live {
        floor: LiveFloor { kind: event.floor_kind, connected, bbb },
        listeners: channels.iter().map(|c| c.listeners).sum(),
        channels,
        slow_downs,
        handovers,
    }))
}

#[derive(Serialize)]
pub struct LanguageName {
    code: String,
    label: String,
}

/// `GET /api/v1/languages`: the languages the pages offer by name.
pub async fn languages() -> Json<Vec<LanguageName>> {
    Json(
        crate::languages::all()
            .map(|(code, label)| LanguageName { code: code.into(), label: label.into() })
            .collect(),
    )
}

/// `GET /e/{event}/qr.svg`: the listener link as a QR code, for the room.
pub async fn qr(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let event = app.event(&EventId::parse(&id)?).await?;
    let link = format!("{}/e/{}", app.settings.public_url, event.id);
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::bad_request(format!("the listener link cannot be a QR code: {e}")))?;
    let svg =
        code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build();
    let mut response = svg.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    Ok(response)
}
