//! Security headers on every answer: `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer` (a booth link's token must never leave in a Referer), and on
//! pages a `Content-Security-Policy`: scripts, styles and connections from Tolk only (the booth
//! socket on its ws/wss origin), no plugins, and framing only by Tolk itself and the origins the
//! operator lists (`frame_ancestors`).

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::config::Settings;

/// The page policy for these settings; `nodes`: the public URLs of the cluster's other nodes,
/// which a listener page may be sent to (its WHEP session on another node).
pub(super) fn content_security_policy(settings: &Settings, nodes: &[String]) -> HeaderValue {
    let socket = websocket_origin(&settings.public_url).map(|o| format!(" {o}")).unwrap_or_default();
    let ancestors: String = settings.frame_ancestors.iter().map(|o| format!(" {o}")).collect();
    let nodes: String = nodes.iter().filter_map(|url| http_origin(url)).map(|o| format!(" {o}")).collect();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'{socket}{nodes}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'self'{ancestors}"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
}

/// `ws://host:port` or `wss://host` for a public URL, where the booth socket connects.
fn websocket_origin(public_url: &str) -> Option<String> {
    let (scheme, rest) = public_url.split_once("://")?;
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    let scheme = match scheme {
        "https" => "wss",
        "http" => "ws",
        _ => return None,
    };
    Some(format!("{scheme}://{host}"))
}

/// `scheme://host[:port]` of an http(s) URL (nothing that could end the policy's directive).
fn http_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    let safe = matches!(scheme, "http" | "https")
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    safe.then(|| format!("{scheme}://{host}"))
}

/// Add the headers to one answer (`csp` on HTML only).
pub(super) fn secure(mut response: Response, csp: &HeaderValue) -> Response {
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if is_page {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_origin_follows_the_public_url() {
        assert_eq!(
            websocket_origin("https://bbb.example.org/tolk").as_deref(),
            Some("wss://bbb.example.org")
        );
        assert_eq!(websocket_origin("http://127.0.0.1:8080").as_deref(), Some("ws://127.0.0.1:8080"));
        assert_eq!(websocket_origin("ftp://x"), None);
    }

    #[test]
    fn cluster_nodes_join_connect_src_and_nothing_else_does() {
        let settings = crate::config::Settings::resolve(&crate::config::ConfigArgs::default()).unwrap();
        let nodes = ["http://10.0.0.2:8080/".to_owned(), "https://x.example; script-src *".to_owned()];
        let policy = content_security_policy(&settings, &nodes);
        let policy = policy.to_str().unwrap();
        assert!(policy.contains("connect-src 'self' ws://127.0.0.1:8080 http://10.0.0.2:8080;"), "{policy}");
        assert!(!policy.contains("x.example"), "{policy}");
    }
}
