//! The organiser's recordings: the switch, the state, the files (each one, or all as a ZIP),
//! deleting them. Files are read with the organiser's bearer token, or with a short-lived
//! download cookie the organiser page asks for (so an `<audio>` element can fetch and seek a
//! file with range requests, and no token ever sits in a URL).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::app::App;
use crate::http::ApiError;
use crate::http::extract::{ClientAddr, JsonBody, OwnedEvent, bearer};
use crate::http::openapi::EventPath;
use crate::ids::{EventId, RecordingId};
use crate::recording::views::{RecordingStatusView, RecordingSwitch, RecordingsView};
use crate::recording::{RecordingError, TICKET_LIFETIME, zip};
use crate::store::Event;
use crate::store::recordings::RecordingState;

/// The download cookie's name.
const TICKET_COOKIE: &str = "tolk_recordings";

/// `GET /api/v1/events/{id}/recording`: the switch and what is written now.
#[utoipa::path(operation_id = "recording_status", get, path = "/api/v1/events/{id}/recording", tag = "recordings", security(("organiser" = [])),
    params(EventPath),
    responses((status = 200, body = RecordingStatusView), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event.")))]
pub(super) async fn status(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<Json<RecordingStatusView>, ApiError> {
    Ok(Json(app.recording_status(&owned.event).await?))
}

/// `POST /api/v1/events/{id}/recording`: switch recording on (a new part starts now) or off.
#[utoipa::path(operation_id = "recording_switch", post, path = "/api/v1/events/{id}/recording", tag = "recordings", security(("organiser" = [])),
    params(EventPath), request_body = RecordingSwitch,
    responses((status = 200, body = RecordingStatusView, description = "Switched: the new state."),
        (status = 400, description = "Not a switch."), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event."),
        (status = 409, description = "The event's media is not open now."),
        (status = 422, description = "A channel the event does not have."),
        (status = 503, description = "Not enough free disk space to record.")))]
pub(super) async fn switch(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    JsonBody(switch): JsonBody<RecordingSwitch>,
) -> Result<Json<RecordingStatusView>, ApiError> {
    Ok(Json(app.switch_recording(&owned.event, switch).await?))
}

/// `GET /api/v1/events/{id}/recordings`: the files, with who was on air in each.
#[utoipa::path(operation_id = "recordings_list", get, path = "/api/v1/events/{id}/recordings", tag = "recordings", security(("organiser" = [])),
    params(EventPath),
    responses((status = 200, body = RecordingsView), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event.")))]
pub(super) async fn list(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<Json<RecordingsView>, ApiError> {
    Ok(Json(app.recordings_view(&owned.event).await?))
}

/// `DELETE /api/v1/events/{id}/recordings`: delete every file of the event not being written.
#[utoipa::path(operation_id = "recordings_delete_all", delete, path = "/api/v1/events/{id}/recordings", tag = "recordings", security(("organiser" = [])),
    params(EventPath),
    responses((status = 200, body = RecordingsView, description = "Deleted: what is left (files being written)."),
        (status = 401, description = "No valid organiser token."), (status = 404, description = "No such event.")))]
pub(super) async fn delete_all(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
) -> Result<Json<RecordingsView>, ApiError> {
    let (rows, _) = app.recordings.list(&owned.event.id).await?;
    for row in rows.iter().filter(|r| r.state != RecordingState::Recording) {
        app.recordings.delete(&owned.event.id, &row.id).await?;
    }
    Ok(Json(app.recordings_view(&owned.event).await?))
}

/// `DELETE /api/v1/events/{id}/recordings/{recording}`.
#[utoipa::path(operation_id = "recording_delete", delete, path = "/api/v1/events/{id}/recordings/{recording}", tag = "recordings",
    security(("organiser" = [])), params(EventPath, ("recording" = String, Path, description = "The file's id.")),
    responses((status = 204, description = "Deleted."), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event or file."),
        (status = 409, description = "The file is being written: stop the recording first.")))]
pub(super) async fn delete_one(
    State(app): State<Arc<App>>,
    owned: OwnedEvent,
    Path((_, recording)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.recordings.delete(&owned.event.id, &RecordingId::parse(&recording)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/events/{id}/recordings/access`: a download cookie for the event's files (an
/// hour; `HttpOnly`, `SameSite=Strict`, for these paths only), so the organiser page can play
/// and download them with plain links.
#[utoipa::path(operation_id = "recordings_access", post, path = "/api/v1/events/{id}/recordings/access", tag = "recordings",
    security(("organiser" = [])), params(EventPath),
    responses((status = 204, description = "The cookie is set."), (status = 401, description = "No valid organiser token."),
        (status = 404, description = "No such event.")))]
pub(super) async fn access(State(app): State<Arc<App>>, owned: OwnedEvent) -> Result<Response, ApiError> {
    let id = &owned.event.id;
    let ticket = app.recordings.issue_ticket(id);
    let secure = if app.settings.public_url.starts_with("https://") { "; Secure" } else { "" };
    // Behind a proxy at a path (`https://bbb.example.org/tolk`), browsers see that path first.
    let prefix = url::Url::parse(&app.settings.public_url)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let cookie = format!(
        "{TICKET_COOKIE}={ticket}; Path={prefix}/api/v1/events/{id}/recordings/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        TICKET_LIFETIME.as_secs()
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Who may read an event's files: its organiser (bearer token) or a holder of its download
/// cookie.
pub(super) struct Reader {
    event: EventId,
}

impl FromRequestParts<Arc<App>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        if bearer(&parts.headers).is_some() {
            let owned = OwnedEvent::from_request_parts(parts, app).await?;
            return Ok(Self { event: owned.event.id });
        }
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, app).await?;
        let event = parts
            .uri
            .path()
            .strip_prefix("/api/v1/events/")
            .and_then(|rest| rest.split('/').next())
            .map(EventId::parse)
            .transpose()?
            .ok_or_else(|| ApiError::not_found("this address names no event"))?;
        let ticket = cookie(parts, TICKET_COOKIE);
        let check = async {
            match ticket {
                Some(t) if app.recordings.ticket_opens(&t, &event) => Ok(()),
                Some(_) => Err(crate::auth::AuthError::NotAnOrganiser),
                None => Err(crate::auth::AuthError::NoOrganiserToken),
            }
        };
        app.auth.guarded(client, check).await?;
        Ok(Self { event })
    }
}

fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    })
}

/// `GET /api/v1/events/{id}/recordings/{recording}`: the file (`audio/ogg`, Ogg Opus), with
/// range requests.
#[utoipa::path(operation_id = "recording_file", get, path = "/api/v1/events/{id}/recordings/{recording}", tag = "recordings",
    security(("organiser" = [])), params(EventPath, ("recording" = String, Path, description = "The file's id.")),
    responses((status = 200, description = "The file.", content_type = "audio/ogg"),
        (status = 206, description = "The range asked for."),
        (status = 401, description = "No valid organiser token or download cookie."),
        (status = 404, description = "No such event or file."),
        (status = 503, description = "The file is on another node of the cluster.")))]
pub(super) async fn file(
    State(app): State<Arc<App>>,
    reader: Reader,
    Path((_, recording)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (row, path) = match app.recordings.file(&reader.event, &RecordingId::parse(&recording)?).await {
        // In a cluster, the node that recorded it serves it, through this one.
        Err(RecordingError::Elsewhere { node, .. }) if app.cluster.is_some() => {
            return from_node(&app, &node, request).await;
        }
        found => found?,
    };
    let served = tower_http::services::ServeFile::new(&path).oneshot(request).await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg; codecs=opus"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    let name = format!("{}-part-{:02}-{}.opus", reader.event, row.part, row.language);
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A file another node of the cluster holds: the same request sent there (with its
/// authorization, download cookie and range), the answer streamed back as it comes.
async fn from_node(app: &App, node: &str, request: Request) -> Result<Response, ApiError> {
    let unavailable =
        |detail: String| ApiError { status: StatusCode::SERVICE_UNAVAILABLE, detail, retry_after: Some(5) };
    let Some(cluster) = &app.cluster else { return Err(unavailable(format!("recording is on node {node}"))) };
    if request.headers().contains_key(super::cluster::FORWARDED_HEADER) {
        return Err(unavailable("the recording is not on the node it was sent to".into()));
    }
    let Some(base) = cluster.nodes().into_iter().find(|n| n.id.as_str() == node).map(|n| n.url) else {
        return Err(unavailable(format!("the node that holds this recording ({node}) is not running now")));
    };
    let url = format!("{base}{}", request.uri().path());
    let mut ask = cluster.http().get(&url).header(super::cluster::FORWARDED_HEADER, "1");
    for name in [header::AUTHORIZATION, header::COOKIE, header::RANGE, header::IF_RANGE] {
        if let Some(value) = request.headers().get(&name) {
            ask = ask.header(name.as_str(), value.as_bytes());
        }
    }
    let mut answer = ask.send().await.map_err(|e| {
        tracing::warn!(%url, error = %e, "the node holding a recording does not answer");
        unavailable(format!("the node that holds this recording ({node}) does not answer; try again"))
    })?;
    let mut response = StatusCode::OK.into_response();
    *response.status_mut() =
        StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
        header::CONTENT_DISPOSITION,
        header::CACHE_CONTROL,
        header::LAST_MODIFIED,
    ] {
        if let Some(value) = answer.headers().get(name.as_str())
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response.headers_mut().insert(name, value);
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let chunk = answer.chunk().await.map_err(std::io::Error::other);
            let done = matches!(chunk, Ok(None) | Err(_));
            if let Some(chunk) = chunk.transpose()
                && tx.send(chunk).await.is_err()
            {
                break;
            }
            if done {
                break;
            }
        }
    });
    *response.body_mut() = Body::from_stream(stream_of(rx));
    Ok(response)
}

/// `GET /api/v1/events/{id}/recordings/all.zip`: every file of the event on this node in one
/// ZIP (files still being written up to where they are now).
#[utoipa::path(operation_id = "recordings_zip", get, path = "/api/v1/events/{id}/recordings/all.zip", tag = "recordings",
    security(("organiser" = [])), params(EventPath),
    responses((status = 200, description = "The archive.", content_type = "application/zip"),
        (status = 401, description = "No valid organiser token or download cookie."),
        (status = 404, description = "No such event, or it has no files."),
        (status = 413, description = "Over 4 GB: download the files one by one.")))]
pub(super) async fn archive(State(app): State<Arc<App>>, reader: Reader) -> Result<Response, ApiError> {
    let event: Event = app.events.event(&reader.event).await?;
    let (rows, _) = app.recordings.list(&event.id).await?;
    let mut entries = Vec::new();
    for row in rows {
        let Ok((row, path)) = app.recordings.file(&event.id, &row.id).await else { continue };
        let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        entries.push(zip::Entry {
            name: format!("part-{:02}/{}.opus", row.part, row.language),
            path,
            size,
            modified_ms: row.started_at,
        });
    }
    if entries.is_empty() {
        return Err(RecordingError::NothingToDownload.into());
    }
    if entries.iter().map(|e| e.size + 200).sum::<u64>() > zip::MAX_ARCHIVE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the recordings are over 4 GB together; download them one by one",
        ));
    }
    let chunks = zip::stream(entries);
    let body = Body::from_stream(stream_of(chunks));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}-recordings.zip\"", event.id))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn stream_of(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
