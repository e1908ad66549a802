//! What BBB shows its HTML5 client and the client's plugins, for the plugin tests: written from
//! bbb-web's `ConnectionController` (`checkGraphqlAuthorization`) and `ApiController` (`enter`,
//! `getMeetings`) and the plugin SDK's loading protocol.
//!
//! - `GET /bigbluebutton/connection/checkGraphqlAuthorization`: the session token in
//!   `x-session-token`, valid only with the `JSESSIONID` cookie `join` issued with it (bbb-web's
//!   `session[sessionToken]`); 200 with `Meeting-Id`, `Meeting-External-Id`, `User-Id`,
//!   `User-External-Id`, `User-Name` (URL-encoded), `User-Is-Moderator`, `User-Is-Presenter`
//!   headers and a JSON body with `X-Currently-Online`; a user who left is still answered, as
//!   bbb-web answers a removed session, with `"false"`; 401 `{"response": "unauthorized"}` else;
//! - `GET /bigbluebutton/api/enter?sessionToken=…` with the cookie: the joined user as JSON;
//! - what BBB's client learns over GraphQL, here as plain JSON for the stand-in client page:
//!   `/bigbluebutton/api/stand-in/plugins` (the meeting's plugins: manifests fetched, entry
//!   points resolved against them) and `/bigbluebutton/api/stand-in/users` (who is in it);
//! - the client page itself at `/html5client/join` and `/html5client/{file}`
//!   (`tests/web/bbb-client/`), which loads the plugins like BBB's client does.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{Inner, jsessionid, param, query_params, tag};

/// The stand-in client's files.
const CLIENT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/bbb-client");

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/bigbluebutton/connection/checkGraphqlAuthorization", get(check_session))
        .route("/bigbluebutton/api/stand-in/plugins", get(plugins))
        .route("/bigbluebutton/api/stand-in/users", get(users))
        .route("/html5client/join", get(client_page))
        .route("/html5client/{file}", get(client_file))
}

/// The URLs of a `pluginManifests` create parameter (`[{"url": "…"}]`).
pub(super) fn manifest_urls(param: &str) -> Vec<String> {
    let list: Vec<Value> = serde_json::from_str(param).unwrap_or_default();
    list.iter().filter_map(|m| m.get("url")?.as_str().map(str::to_owned)).collect()
}

/// `<metadata>` of a meeting, as getMeetingInfo and getMeetings show it.
pub(super) fn metadata_xml(metadata: &[(String, String)]) -> String {
    let fields: String = metadata.iter().map(|(name, value)| tag(name, value)).collect();
    format!("<metadata>{fields}</metadata>")
}

/// A session as the stand-in's session checks see it.
struct Who {
    meeting_id: String,
    internal_id: String,
    user_id: String,
    full_name: String,
    role: &'static str,
    online: bool,
}

impl Inner {
    /// The session of `token`, if `jsessionid` is the cookie issued with it (bbb-web keeps the
    /// token in the servlet session of that cookie). Sessions of ended meetings are gone.
    fn who(&self, token: Option<&str>, jsessionid: Option<&str>) -> Option<Who> {
        let (token, jsessionid) = (token?, jsessionid?);
        let registry = self.registry();
        let session = registry.sessions.get(token).filter(|s| s.jsessionid == jsessionid)?;
        let meeting = registry.meetings.get(&session.meeting_id)?;
        Some(Who {
            meeting_id: session.meeting_id.clone(),
            internal_id: meeting.internal_id.clone(),
            user_id: session.user_id.clone(),
            full_name: session.full_name.clone(),
            role: session.role,
            online: meeting.running && !session.left,
        })
    }

    /// `getMeetings`: every meeting that has not ended, with its metadata.
    pub(super) fn get_meetings(&self) -> Response {
        let registry = self.registry();
        let meetings: String = registry
            .meetings
            .iter()
            .filter(|(_, m)| m.running)
            .map(|(id, m)| {
                let participants =
                    registry.sessions.values().filter(|s| &s.meeting_id == id && !s.left).count();
                let fields = [
                    tag("meetingName", &m.name),
                    tag("meetingID", id),
                    tag("internalMeetingID", &m.internal_id),
                    tag("createTime", m.create_time),
                    tag("voiceBridge", &m.voice_bridge),
                    tag("running", m.running),
                    tag("participantCount", participants),
                    tag("hasBeenForciblyEnded", false),
                    metadata_xml(&m.metadata),
                ];
                format!("<meeting>{}</meeting>", fields.concat())
            })
            .collect();
        if meetings.is_empty() {
            return super::xml(
                [
                    tag("returncode", "SUCCESS"),
                    "<meetings/>".into(),
                    tag("messageKey", "noMeetings"),
                    tag("message", "no meetings were found on this server"),
                ]
                .concat(),
            );
        }
        super::xml([tag("returncode", "SUCCESS"), format!("<meetings>{meetings}</meetings>")].concat())
    }

    /// `enter`: the joined user, for the client page (needs the session cookie, as in bbb-web).
    pub(super) fn enter(&self, params: &[(String, String)], jsessionid: Option<&str>) -> Response {
        let Some(who) = self.who(param(params, "sessionToken"), jsessionid).filter(|w| w.online) else {
            let body = json!({"response": {"returncode": "FAILED", "message": "Could not find conference."}});
            return (StatusCode::OK, axum::Json(body)).into_response();
        };
        let name = self.registry().meetings.get(&who.meeting_id).map(|m| m.name.clone()).unwrap_or_default();
        axum::Json(json!({"response": {
            "returncode": "SUCCESS",
            "fullname": who.full_name,
            "confname": name,
            "meetingID": who.internal_id,
            "externMeetingID": who.meeting_id,
            "internalUserID": who.user_id,
            "externUserID": who.user_id,
            "role": who.role,
            "guest": "false",
        }}))
        .into_response()
    }
}

/// `GET /bigbluebutton/connection/checkGraphqlAuthorization`.
async fn check_session(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    inner.stat(|s| s.calls.push("checkGraphqlAuthorization".into()));
    let token = headers.get("x-session-token").and_then(|v| v.to_str().ok());
    let Some(who) = inner.who(token, jsessionid(&headers).as_deref()) else {
        let mut response = axum::Json(json!({"response": "unauthorized"})).into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    let moderator = if who.role == "MODERATOR" { "true" } else { "false" };
    let online = if who.online { "true" } else { "false" };
    let name: String = url::form_urlencoded::byte_serialize(who.full_name.as_bytes()).collect();
    let mut response = axum::Json(json!({
        "response": "authorized",
        "X-Currently-Online": online,
        "X-Moderator": moderator,
        "X-Presenter": "false",
        "X-UserId": who.user_id,
        "X-MeetingId": who.internal_id,
    }))
    .into_response();
    let out = response.headers_mut();
    for (name, value) in [
        ("Meeting-Id", who.internal_id.as_str()),
        ("Meeting-External-Id", who.meeting_id.as_str()),
        ("User-Id", who.user_id.as_str()),
        ("User-External-Id", who.user_id.as_str()),
        ("User-Name", name.as_str()),
        ("User-Is-Moderator", moderator),
        ("User-Is-Presenter", "false"),
        ("Cache-Control", "no-cache"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(name, value);
        }
    }
    response
}

/// `GET /bigbluebutton/api/stand-in/plugins?sessionToken=…`: the meeting's plugins, each
/// manifest fetched (its `%%MEETING_ID%%` filled in) and its entry point made absolute.
async fn plugins(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap) -> Response {
    let params = query_params(&uri);
    let Some(who) = inner.who(param(&params, "sessionToken"), jsessionid(&headers).as_deref()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let urls = inner
        .registry()
        .meetings
        .get(&who.meeting_id)
        .map(|m| m.plugin_manifests.clone())
        .unwrap_or_default();
    let http = reqwest::Client::new();
    let mut plugins = Vec::new();
    for url in urls {
        let url =
            url.replace("%%MEETING_ID%%", &who.meeting_id).replace("%%HTML5_PLUGIN_SDK_VERSION%%", "0.1.3");
        let manifest: Value = match http.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => answer.json().await.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let entry = manifest.get("javascriptEntrypointUrl").and_then(Value::as_str).unwrap_or_default();
        let entry = url::Url::parse(&url)
            .and_then(|base| base.join(entry))
            .map(|u| u.to_string())
            .unwrap_or_default();
        plugins.push(json!({
            "name": manifest.get("name").cloned().unwrap_or(Value::Null),
            "url": entry,
            "manifest": url,
            "loaded": !manifest.is_null(),
        }));
    }
    axum::Json(plugins).into_response()
}

/// `GET /bigbluebutton/api/stand-in/users?sessionToken=…`: who is in the meeting.
async fn users(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap) -> Response {
    let params = query_params(&uri);
    let Some(who) = inner.who(param(&params, "sessionToken"), jsessionid(&headers).as_deref()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let registry = inner.registry();
    let users: Vec<Value> = registry
        .sessions
        .values()
        .filter(|s| s.meeting_id == who.meeting_id && !s.left)
        .map(|s| json!({"userId": s.user_id, "name": s.full_name, "role": s.role, "presenter": false}))
        .collect();
    axum::Json(users).into_response()
}

/// `GET /html5client/join?sessionToken=…`: the client page (BBB redirects a join here).
async fn client_page() -> Response {
    client_file(Path("index.html".into())).await
}

/// `GET /html5client/{file}`.
async fn client_file(Path(file): Path<String>) -> Response {
    if file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(std::path::Path::new(CLIENT_DIR).join(&file)).await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
