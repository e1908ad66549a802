//! Cross-origin access to the media session routes a page on another node (or any WHEP player
//! on another site) uses: `/whep/…` (listen, switch channel, leave; capability URLs, no cookies)
//! and `/whip/sessions/…` (a booth's session on the event's origin node, by bearer token).
//! Answers carry `Access-Control-Allow-Origin: *` and expose `Location`; preflights are
//! answered here. Nothing else is shared across origins: the organiser API and the pages are not.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether `path` is a media session route shared across origins.
fn shared(path: &str) -> bool {
    path.starts_with("/whep/") || path.starts_with("/whip/sessions/")
}

/// The CORS layer of the media session routes.
pub(super) async fn media_cors(request: Request<Body>, next: Next) -> Response {
    if !shared(request.uri().path()) {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response =
        if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Location, Retry-After"));
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Authorization"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::shared;

    #[test]
    fn only_media_sessions_are_shared() {
        assert!(shared("/whep/e1/fr"));
        assert!(shared("/whep/sessions/0123/channel"));
        assert!(shared("/whip/sessions/0123"));
        assert!(!shared("/whip/booth"));
        assert!(!shared("/whip/e1/floor"));
        assert!(!shared("/api/v1/events"));
        assert!(!shared("/e/e1"));
    }
}
