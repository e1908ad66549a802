//! Cascades: an edge subscribes to an event at its origin (`POST
//! /cluster/v1/events/{event}/cascade`, an SDP offer with one receive-only audio section per
//! channel), asks whether its subscription stands (`GET /cluster/v1/sessions/{session}`) and ends
//! it (`DELETE`). The edge is a node of this cluster (its bearer token is the cluster's secret,
//! `TOLK_CLUSTER_SECRET`) or a peer cluster's (a peering token from `tolk peer add`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::app::App;
use crate::auth::AuthError;
use crate::cluster::Subscriber;
use crate::cluster::cascade::CHANNELS_HEADER;
use crate::http::ApiError;
use crate::http::extract::{ClientAddr, SdpOffer, bearer};
use crate::http::media::served;
use crate::http::openapi::SessionPath;
use crate::ids::{EventId, SessionId};

impl FromRequestParts<Arc<App>> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, app).await?;
        let token = bearer(&parts.headers).map(str::to_owned);
        let check = async {
            match token {
                None => Err(AuthError::NoClusterSecret),
                Some(t) if app.cluster.as_ref().is_some_and(|c| c.is_member(Some(&t))) => {
                    Ok(Subscriber::Node)
                }
                Some(t) => app.auth.check_peer_token(&t).await.map(Subscriber::Peer),
            }
        };
        Ok(app.auth.guarded(client, check).await?)
    }
}

/// `POST /cluster/v1/events/{event}/cascade`: an edge node subscribes to every channel.
#[utoipa::path(post, path = "/cluster/v1/events/{event}/cascade", tag = "cluster", security(("cluster" = [])),
    params(("event" = EventId, Path, description = "The event's id."),
        ("Tolk-Channels" = String, Header, description = "The channels the offer's audio sections are for, in order: `en,fr,de`.")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer: one receive-only Opus section per channel."),
    responses((status = 201, description = "The SDP answer; `Location` is the cascade session's URL.", body = String, content_type = "application/sdp"),
        (status = 307, description = "Another node is the event's origin: `Location` is the same call there."),
        (status = 400, description = "The offer is not SDP Tolk can answer."), (status = 401, description = "Neither the cluster's secret nor a peering token."),
        (status = 404, description = "No such event."), (status = 409, description = "The event's channels are others (the answer names them)."),
        (status = 415, description = "The body is not `application/sdp`."), (status = 503, description = "The cluster's Redis does not answer.")))]
pub(super) async fn cascade(
    State(app): State<Arc<App>>,
    subscriber: Subscriber,
    Path(event): Path<String>,
    headers: HeaderMap,
    SdpOffer(offer): SdpOffer<{ crate::net::offer::MAX_CASCADE_SECTIONS }>,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&event)?;
    let channels = headers.get(CHANNELS_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let result = app.cascade(&event, channels, offer, subscriber).await?;
    Ok(served(&app, "cluster/v1", result))
}

/// `DELETE /cluster/v1/sessions/{session}`: an edge ends its subscription.
#[utoipa::path(delete, path = "/cluster/v1/sessions/{session}", tag = "cluster", security(("cluster" = [])), params(SessionPath),
    responses((status = 200, description = "Ended."), (status = 401, description = "Neither the cluster's secret nor a peering token."),
        (status = 404, description = "No such session."), (status = 409, description = "Not a cascade session.")))]
pub(super) async fn end_cascade(
    State(app): State<Arc<App>>,
    _subscriber: Subscriber,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.end_cascade(&SessionId::parse(&session)?).await?;
    Ok(StatusCode::OK)
}

/// `GET /cluster/v1/sessions/{session}`: 204 while the origin holds the subscription.
#[utoipa::path(get, path = "/cluster/v1/sessions/{session}", tag = "cluster", security(("cluster" = [])), params(SessionPath),
    responses((status = 204, description = "The origin holds the subscription."), (status = 401, description = "Neither the cluster's secret nor a peering token."),
        (status = 404, description = "No such session."), (status = 409, description = "Not a cascade session.")))]
pub(super) async fn cascade_state(
    State(app): State<Arc<App>>,
    _subscriber: Subscriber,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.cascade_state(&SessionId::parse(&session)?)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a request one node forwarded to another: it is never forwarded again (a lease that
/// moves while the request travels gives a 503 to retry, not a loop).
pub(super) const FORWARDED_HEADER: &str = "tolk-forwarded";

/// Whether a request was forwarded by another node.
pub(super) fn was_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_HEADER)
}

/// Send a publisher's or a booth's request on to the event's origin (`url`) with its token and
/// body, and answer what the origin answers (a WHIP `Location` is the session on the origin). A
/// redirect is no use here: clients drop `Authorization` on a redirect to another host.
pub(super) async fn forward(
    app: &App,
    method: axum::http::Method,
    url: &str,
    headers: &HeaderMap,
    body: axum::body::Bytes,
    forwarded: bool,
) -> Result<Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let Some(cluster) = &app.cluster else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no cluster to forward to"));
    };
    let retry =
        |detail: String| ApiError { status: StatusCode::SERVICE_UNAVAILABLE, detail, retry_after: Some(1) };
    if forwarded {
        return Err(retry("the event's origin moved while this request travelled; send it again".into()));
    }
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut request = cluster.http().request(method, url).header(FORWARDED_HEADER, "1").body(body);
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.send().await.map_err(|e| {
        tracing::warn!(%url, error = %e, "the origin does not answer");
        retry(
            "the event's origin node does not answer (it may be failing over); try again in a second".into(),
        )
    })?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = StatusCode::OK.into_response();
    *response.status_mut() = status;
    for name in [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = answer.headers().get(name.as_str())
            && let Ok(value) = axum::http::HeaderValue::from_bytes(value.as_bytes())
        {
            response.headers_mut().insert(name, value);
        }
    }
    let body =
        answer.bytes().await.map_err(|_| retry("the origin's answer was cut off; try again".into()))?;
    *response.body_mut() = axum::body::Body::from(body);
    Ok(response)
}
