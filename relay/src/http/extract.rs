//! Typed extractors: what a handler needs, checked before it runs. The caller of an organiser
//! call, an event the caller owns, the interpreter of a booth call, a JSON body, an SDP offer.
//! Each refuses with problem+json and a sentence.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::Caller;
use crate::http::ApiError;
use crate::ids::EventId;
use crate::store::Event;
use crate::store::interpreters::Interpreter;

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The address of the client behind a request: the TCP peer, or, when that peer is a trusted
/// reverse proxy, the last address in X-Forwarded-For that is not one of those proxies.
pub(super) struct ClientAddr(pub std::net::IpAddr);

impl FromRequestParts<Arc<App>> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(Self(client_addr(peer, &parts.headers, &app.settings.trusted_proxies)))
    }
}

/// The client address: see [`ClientAddr`].
fn client_addr(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let hops: Vec<std::net::IpAddr> =
        forwarded.flat_map(|v| v.split(',')).filter_map(|h| h.trim().parse().ok()).collect();
    hops.into_iter().rev().find(|hop| !trusted.contains(hop)).unwrap_or(peer)
}

/// The caller of an organiser call: the admin token or an organiser's token (401 otherwise).
pub(super) struct Organiser(pub Caller);

impl FromRequestParts<Arc<App>> for Organiser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, app).await?;
        Ok(Organiser(app.auth.guarded(client, app.auth.caller(bearer(&parts.headers))).await?))
    }
}

/// The event `{id}` of the path, which the caller may manage (404 for others' events).
pub(super) struct OwnedEvent {
    pub event: Event,
}

impl FromRequestParts<Arc<App>> for OwnedEvent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let Organiser(caller) = Organiser::from_request_parts(parts, app).await?;
        let params = RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::not_found("this address names no event"))?;
        let id = params
            .iter()
            .find(|(name, _)| *name == "id")
            .map(|(_, value)| value)
            .ok_or_else(|| ApiError::not_found("this address names no event"))?;
        let event = app.events.owned(caller, &EventId::parse(id)?).await?;
        Ok(OwnedEvent { event })
    }
}

/// The interpreter whose booth token the request carries (401 when unknown or revoked).
pub(super) struct Booth(pub Interpreter);

impl FromRequestParts<Arc<App>> for Booth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, app).await?;
        Ok(Booth(app.auth.guarded(client, app.auth.interpreter(bearer(&parts.headers))).await?))
    }
}

/// A JSON body, with an error that names the problem.
pub(super) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        parse_json(&headers, &body).map(JsonBody)
    }
}

/// Parse a JSON body with an error that names the problem.
pub(crate) fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON with 'Content-Type: application/json'",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))
}

/// Most media sections an offer may have: a listener uses two (channel and floor), a booth a
/// few; hundreds would only cost the media thread time.
const MAX_MEDIA_SECTIONS: usize = 8;

/// The SDP offer of a request: `Content-Type: application/sdp`, UTF-8, looks like SDP.
pub(super) struct SdpOffer<const MAX: usize = MAX_MEDIA_SECTIONS>(pub String);

impl<S: Send + Sync, const MAX: usize> FromRequest<S> for SdpOffer<MAX> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type.starts_with("application/sdp") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the SDP offer with 'Content-Type: application/sdp'",
            ));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("the SDP offer is not UTF-8 text"))?;
        if !text.trim_start().starts_with("v=0") {
            return Err(ApiError::bad_request("the body is not an SDP offer (it must start with 'v=0')"));
        }
        let sections = text.lines().filter(|line| line.starts_with("m=")).count();
        if sections > MAX {
            return Err(ApiError::bad_request(format!(
                "the SDP offer has {sections} media sections; Tolk takes at most {MAX} \
                 (a listener needs one or two audio sections, a publisher one, a cascade one per channel)"
            )));
        }
        Ok(SdpOffer(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = [ip("127.0.0.1")];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.7, 203.0.113.5".parse().unwrap());
        // From nginx on loopback: the last hop nginx saw.
        assert_eq!(client_addr(ip("127.0.0.1"), &headers, &trusted), ip("203.0.113.5"));
        // From anyone else, the header is theirs to forge: the TCP peer counts.
        assert_eq!(client_addr(ip("192.0.2.1"), &headers, &trusted), ip("192.0.2.1"));
        // A proxy chain: trusted hops are skipped from the right.
        let trusted = [ip("127.0.0.1"), ip("203.0.113.5")];
        assert_eq!(client_addr(ip("127.0.0.1"), &headers, &trusted), ip("198.51.100.7"));
        // No header, or garbage: the peer.
        assert_eq!(client_addr(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
        headers.insert("x-forwarded-for", "not-an-address".parse().unwrap());
        assert_eq!(client_addr(ip("127.0.0.1"), &headers, &trusted), ip("127.0.0.1"));
    }
}
