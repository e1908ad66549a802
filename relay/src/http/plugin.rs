//! The BBB plugin's API (`/api/v1/bbb/…`): every call carries the participant's BBB session token
//! in `X-Session-Token` (never in the URL) and, the plugin being served from the BBB host, BBB's
//! session cookie; the [`BbbCaller`] extractor has bbb-web say who that is. What each role may do
//! is decided in [`crate::app::meetings`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::app::App;
use crate::app::meetings::{BoothLink, Interpretation, MeetingView, NamedInterpreter, StartInterpretation};
use crate::bbb::session::{Participant, bbb_session_cookie};
use crate::booths::NewInterpreter;
use crate::http::ApiError;
use crate::http::extract::{ClientAddr, JsonBody};

/// The header the plugin sends the participant's BBB session token in.
pub(crate) const SESSION_TOKEN: &str = "x-session-token";

/// The BBB participant behind a plugin call, as bbb-web says (401 with a sentence otherwise).
pub(super) struct BbbCaller(pub Participant);

impl FromRequestParts<Arc<App>> for BbbCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, app).await?;
        let token = parts.headers.get(SESSION_TOKEN).and_then(|v| v.to_str().ok());
        let cookie = parts
            .headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(bbb_session_cookie);
        Ok(BbbCaller(app.bbb_participant(client, token, cookie.as_deref()).await?))
    }
}

/// `GET /api/v1/bbb/me`: the caller and their meeting's interpretation.
#[utoipa::path(get, path = "/api/v1/bbb/me", tag = "bbb plugin", security(("bbb_session" = [])),
    responses((status = 200, body = MeetingView),
        (status = 401, description = "BBB does not know this session (ended, forged, or the participant left)."),
        (status = 404, description = "This node has no BBB server."), (status = 502, description = "BBB could not be asked.")))]
pub(super) async fn me(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
) -> Result<Json<MeetingView>, ApiError> {
    Ok(Json(app.meeting_view(&who).await?))
}

/// `POST /api/v1/bbb/interpretation`: a moderator starts interpretation in their meeting.
#[utoipa::path(post, path = "/api/v1/bbb/interpretation", tag = "bbb plugin", security(("bbb_session" = [])),
    request_body = StartInterpretation,
    responses((status = 201, body = Interpretation), (status = 400, description = "Languages or a size that break a rule."),
        (status = 401, description = "BBB does not know this session."), (status = 403, description = "Not a moderator of the meeting."),
        (status = 409, description = "It runs already, or it does not fit the capacity (the sentence says what fits)."),
        (status = 415, description = "The body is not `application/json`.")))]
pub(super) async fn start(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
    JsonBody(request): JsonBody<StartInterpretation>,
) -> Result<(StatusCode, Json<Interpretation>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.start_interpretation(&who, request).await?)))
}

/// `DELETE /api/v1/bbb/interpretation`: a moderator stops it; the event ends now.
#[utoipa::path(delete, path = "/api/v1/bbb/interpretation", tag = "bbb plugin", security(("bbb_session" = [])),
    responses((status = 204, description = "Stopped: listeners and booths are disconnected."),
        (status = 401, description = "BBB does not know this session."), (status = 403, description = "Not a moderator of the meeting."),
        (status = 404, description = "No interpretation runs in the meeting.")))]
pub(super) async fn stop(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
) -> Result<StatusCode, ApiError> {
    app.stop_interpretation(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/bbb/interpretation/interpreters/{user_id}`: a moderator names a participant.
#[utoipa::path(put, path = "/api/v1/bbb/interpretation/interpreters/{user_id}", tag = "bbb plugin",
    security(("bbb_session" = [])), request_body = NewInterpreter,
    params(("user_id" = String, Path, description = "The participant's BBB user id.")),
    responses((status = 200, body = NamedInterpreter), (status = 400, description = "A name or languages that break a rule."),
        (status = 401, description = "BBB does not know this session."), (status = 403, description = "Not a moderator of the meeting."),
        (status = 404, description = "No interpretation runs in the meeting.")))]
pub(super) async fn name(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
    Path(user): Path<String>,
    JsonBody(request): JsonBody<NewInterpreter>,
) -> Result<Json<NamedInterpreter>, ApiError> {
    Ok(Json(app.name_interpreter(&who, &user, request).await?))
}

/// `DELETE /api/v1/bbb/interpretation/interpreters/{user_id}`: their booth link is revoked.
#[utoipa::path(delete, path = "/api/v1/bbb/interpretation/interpreters/{user_id}", tag = "bbb plugin",
    security(("bbb_session" = [])), params(("user_id" = String, Path, description = "The participant's BBB user id.")),
    responses((status = 204, description = "No longer an interpreter: their booth is closed."),
        (status = 401, description = "BBB does not know this session."), (status = 403, description = "Not a moderator of the meeting."),
        (status = 404, description = "No interpretation, or that participant is not named.")))]
pub(super) async fn unname(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.unname_interpreter(&who, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/bbb/interpretation/booth-links`: a booth link for an interpreter outside the meeting.
#[utoipa::path(post, path = "/api/v1/bbb/interpretation/booth-links", tag = "bbb plugin",
    security(("bbb_session" = [])), request_body = NewInterpreter,
    responses((status = 201, body = BoothLink, description = "The booth page, its token in the fragment (shown once)."),
        (status = 400, description = "A name or languages that break a rule."), (status = 401, description = "BBB does not know this session."),
        (status = 403, description = "Not a moderator of the meeting."), (status = 404, description = "No interpretation runs in the meeting.")))]
pub(super) async fn booth_link(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
    JsonBody(request): JsonBody<NewInterpreter>,
) -> Result<(StatusCode, Json<BoothLink>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.external_booth_link(&who, request).await?)))
}

/// `POST /api/v1/bbb/booth`: a named interpreter opens their booth (a fresh booth link).
#[utoipa::path(post, path = "/api/v1/bbb/booth", tag = "bbb plugin", security(("bbb_session" = [])),
    responses((status = 200, body = BoothLink, description = "The booth page, its token in the fragment."),
        (status = 401, description = "BBB does not know this session."),
        (status = 403, description = "Not named as an interpreter in this meeting."),
        (status = 404, description = "No interpretation runs in the meeting.")))]
pub(super) async fn open_booth(
    State(app): State<Arc<App>>,
    BbbCaller(who): BbbCaller,
) -> Result<Json<BoothLink>, ApiError> {
    Ok(Json(app.open_my_booth(&who).await?))
}
