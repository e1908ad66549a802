//! The test page's files, served by the stand-in under `/page/` (same origin as `/rtc`, so
//! livekit-client's `/rtc/validate` fetch needs no CORS): `tests/web/livekit/`, its
//! `node_modules/` included, so the page imports livekit-client's ESM build.

use std::path::{Component, Path, PathBuf};

use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `tests/web/livekit/`.
pub fn page_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web/livekit")
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("css") => "text/css",
        _ => "application/octet-stream",
    }
}

/// `GET /page/{*path}`.
pub(crate) async fn file(UrlPath(path): UrlPath<String>) -> Response {
    let relative = Path::new(&path);
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let full = page_dir().join(relative);
    match tokio::fs::read(&full).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, content_type(&full)), (header::CACHE_CONTROL, "no-store")], bytes)
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
