//! Pages and their assets, embedded in the binary. URLs inside pages are relative, so Tolk works
//! behind a path prefix (e.g. `/tolk/` on a BBB server).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::http::ApiError;
use crate::ids::EventId;

const LISTENER_HTML: &str = include_str!("../../web/listener.html");
const BOOTH_HTML: &str = include_str!("../../web/booth.html");
const ORGANISER_HTML: &str = include_str!("../../web/organiser.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The pages' files; the scripts are ES modules that import each other by relative URLs.
const ASSETS: &[(&str, &str, &str)] = &[
    ("tolk.css", "text/css; charset=utf-8", include_str!("../../web/tolk.css")),
    ("listener.js", JAVASCRIPT, include_str!("../../web/listener.js")),
    ("booth.js", JAVASCRIPT, include_str!("../../web/booth.js")),
    ("organiser.js", JAVASCRIPT, include_str!("../../web/organiser.js")),
    ("page.js", JAVASCRIPT, include_str!("../../web/page.js")),
    ("http.js", JAVASCRIPT, include_str!("../../web/http.js")),
    ("session.js", JAVASCRIPT, include_str!("../../web/session.js")),
    ("audio.js", JAVASCRIPT, include_str!("../../web/audio.js")),
    ("measure.js", JAVASCRIPT, include_str!("../../web/measure.js")),
];

/// The language table as a module, made from [`crate::languages`] when asked for.
const LANGUAGES_JS: &str = "languages.js";

/// The organiser page (sign in with the admin token or an organiser's token).
#[utoipa::path(get, path = "/", tag = "pages", responses((status = 200, description = "The organiser page.", content_type = "text/html")))]
pub(super) async fn home() -> Html<&'static str> {
    Html(ORGANISER_HTML)
}

/// The listener page of an event.
#[utoipa::path(get, path = "/e/{event}", tag = "pages", params(("event" = EventId, Path, description = "The event's id.")),
    responses((status = 200, description = "The listener page.", content_type = "text/html"), (status = 404, description = "Not an event id.")))]
pub(super) async fn listener(Path(event): Path<String>) -> Result<Html<String>, ApiError> {
    let event = EventId::parse(&event)?;
    // Event ids are [A-Za-z0-9_-]: nothing to escape, but keep the page safe if that ever changes.
    let escaped = html_escape(event.as_str());
    Ok(Html(LISTENER_HTML.replace("{{EVENT_ID}}", &escaped)))
}

/// The booth page, `/booth#token=…`: the token stays in the fragment, which the browser keeps to
/// itself; the page sends it in an `Authorization` header and as the websocket's first message.
#[utoipa::path(get, path = "/booth", tag = "pages", responses((status = 200, description = "The booth page (its token in the fragment).", content_type = "text/html")))]
pub(super) async fn booth() -> Html<&'static str> {
    Html(BOOTH_HTML)
}

/// A booth link of the old form, `/booth/{token}` (issued before links kept their token in the
/// fragment): sent on to `/booth#token=…`, so the page and every later request leave the token out.
#[utoipa::path(get, path = "/booth/{token}", tag = "pages",
    params(("token" = String, Path, description = "A booth token (old links).")),
    responses((status = 303, description = "On to `/booth#token=…`."), (status = 404, description = "Not a booth link.")))]
pub(super) async fn old_booth_link(Path(token): Path<String>) -> Result<Response, ApiError> {
    if token.is_empty() || token.len() > 128 || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("this is not a booth link"));
    }
    Ok(Redirect::to(&format!("../booth#token={token}")).into_response())
}

/// A file of the pages (scripts, style).
#[utoipa::path(get, path = "/static/{file}", tag = "pages", params(("file" = String, Path, description = "The file's name.")),
    responses((status = 200, description = "The file."), (status = 404, description = "No such file.")))]
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    if file == LANGUAGES_JS {
        return static_file(JAVASCRIPT, crate::languages::es_module());
    }
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => static_file(content_type, *body),
        None => ApiError::not_found(format!("no asset '{file}'")).into_response(),
    }
}

pub(super) fn static_file(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(super) async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "there is nothing at this address").into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
