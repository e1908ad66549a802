//! The last layer of the edge: an error answer that is not problem+json yet becomes one. Tolk's
//! own errors already are ([`super::ApiError`]); this catches axum's refusals made before a
//! handler runs (a query string or a path segment that does not parse, a method the address
//! does not take, a body over the limit), keeping their status, their text as the `detail`, and
//! the `Allow` and `Retry-After` headers.

use axum::extract::Request;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::ApiError;
use crate::http::openapi::PROBLEM_JSON;

/// Longest text of a refusal kept as its detail.
const MAX_DETAIL: usize = 1024;

/// Headers of the refusal that the problem keeps.
const KEPT: [HeaderName; 2] = [header::ALLOW, header::RETRY_AFTER];

pub(super) async fn problems_only(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == PROBLEM_JSON);
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let mut problem = ApiError::new(status, detail(status, &method, text)).into_response();
    for name in KEPT {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

/// The sentence of a refusal: its own text, or one made from its status. (axum adds `Allow` to
/// a 405 outside this layer.)
fn detail(status: StatusCode, method: &Method, text: String) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => format!("this address does not take {method} (see Allow)"),
        _ if text.is_empty() => {
            format!("the request was refused: {}", status.canonical_reason().unwrap_or("an error"))
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answer(router: Router, request: Request) -> (StatusCode, String, String, String) {
        let Ok(response) = router.layer(axum::middleware::from_fn(problems_only)).oneshot(request).await;
        let (parts, body) = response.into_parts();
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (kind, allow) = (header(header::CONTENT_TYPE), header(header::ALLOW));
        let body = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let detail =
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()["detail"].to_string();
        (parts.status, kind, allow, detail)
    }

    fn request(method: &str, uri: &str) -> Request {
        Request::builder().method(method).uri(uri).body(Body::empty()).unwrap_or_default()
    }

    #[derive(serde::Deserialize)]
    struct Flag {
        #[allow(dead_code)]
        on: Option<bool>,
    }

    #[tokio::test]
    async fn axum_refusals_become_problems_with_their_sentence_and_headers() {
        let router = || {
            Router::new()
                .route("/flag", get(|_: axum::extract::Query<Flag>| async { "ok" }))
                .route("/text", get(|| async { (StatusCode::BAD_REQUEST, "plain words") }))
        };
        // A query that does not parse: 400 with axum's own words.
        let (status, kind, _, detail) = answer(router(), request("GET", "/flag?on=perhaps")).await;
        assert_eq!((status, kind.as_str()), (StatusCode::BAD_REQUEST, PROBLEM_JSON));
        assert!(detail.contains("on"), "{detail}");
        // A method the address does not take: 405, its Allow kept and named.
        let (status, kind, allow, detail) = answer(router(), request("DELETE", "/flag")).await;
        assert_eq!((status, kind.as_str()), (StatusCode::METHOD_NOT_ALLOWED, PROBLEM_JSON));
        assert!(allow.contains("GET") && detail.contains("DELETE"), "{allow} {detail}");
        // Plain text: kept as the detail. Successes pass untouched.
        let (_, kind, _, detail) = answer(router(), request("GET", "/text")).await;
        assert_eq!((kind.as_str(), detail.as_str()), (PROBLEM_JSON, "\"plain words\""));
        let (status, kind, _, _) = answer(router(), request("GET", "/flag?on=true")).await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/plain; charset=utf-8"));
    }
}
