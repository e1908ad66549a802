//! The stand-in's signalling: `GET /rtc` (token check, then a websocket of binary protobuf
//! `SignalRequest`/`SignalResponse`), `/rtc/validate` (the same check over plain HTTP, which
//! livekit-client asks after a failed upgrade), and `/rtc/v1`, which it answers as a server
//! without the single-peer-connection path (404), so the client falls back to `/rtc`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;

use super::media::{self, MediaCommand, MediaContext};
use super::room::{Hub, Member, new_sid, now_ms};
use super::token::{self, Claims, VideoGrants};

/// What the routes share.
#[derive(Clone)]
pub(crate) struct App {
    pub hub: Arc<Hub>,
    pub api_key: String,
    pub api_secret: String,
}

/// A connection the token allows.
pub(crate) struct Admission {
    pub claims: Claims,
    pub grants: VideoGrants,
}

type Refusal = (StatusCode, String);

/// The access token of a request: `Authorization: Bearer …` or `?access_token=`.
fn access_token(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned());
    }
    params.get("access_token").filter(|t| !t.is_empty()).cloned()
}

/// livekit-server's checks of a connection (`auth.go`, `ValidateConnectRequest`), with its codes
/// and texts.
pub(crate) fn admit(
    app: &App,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Admission, Refusal> {
    let unauthorized = |text: String| (StatusCode::UNAUTHORIZED, text);
    let Some(raw) = access_token(headers, params) else {
        return Err(unauthorized("no permissions to access the room".into()));
    };
    let claims =
        token::verify(&raw, &app.api_key, &app.api_secret).map_err(|e| unauthorized(e.to_string()))?;
    let Some(grants) = claims.video.clone() else {
        return Err(unauthorized("no permissions to access the room".into()));
    };
    if !grants.room_join {
        return Err(unauthorized("permissions denied".into()));
    }
    if claims.sub.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "identity cannot be empty".into()));
    }
    if grants.room.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "no room name".into()));
    }
    if !app.hub.auto_create && !app.hub.lock().rooms.contains_key(&grants.room) {
        return Err((StatusCode::NOT_FOUND, "requested room does not exist".into()));
    }
    Ok(Admission { claims, grants })
}

/// `GET /rtc`: the signalling websocket.
pub(crate) async fn rtc(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let admission = match admit(&app, &headers, &params) {
        Ok(a) => a,
        Err(refusal) => {
            app.hub.count(|s| s.refusals += 1);
            return refusal.into_response();
        }
    };
    let Ok(ws) = ws else {
        return (StatusCode::BAD_REQUEST, "websocket upgrade expected").into_response();
    };
    let auto_subscribe = params.get("auto_subscribe").is_none_or(|v| v == "1" || v == "true");
    ws.on_upgrade(move |socket| session(app, admission, auto_subscribe, socket))
}

/// `GET /rtc/validate`: "success", or why not.
pub(crate) async fn validate(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let cors = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    match admit(&app, &headers, &params) {
        Ok(_) => (cors, "success").into_response(),
        Err((status, text)) => (status, cors, text).into_response(),
    }
}

/// `/rtc/v1` and `/rtc/v1/validate`: what a server without them answers (Go's mux).
pub(crate) async fn no_v1() -> Response {
    (StatusCode::NOT_FOUND, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], "404 page not found\n")
        .into_response()
}

fn frame(message: Resp) -> Message {
    Message::Binary(proto::SignalResponse { message: Some(message) }.encode_to_vec().into())
}

async fn session(app: App, admission: Admission, auto_subscribe: bool, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let Admission { claims, grants } = admission;
    let room = grants.room.clone();
    let sid = new_sid("PA_");
    let (signal, mut outgoing) = mpsc::unbounded_channel();
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let joined = now_ms();
    let info = proto::ParticipantInfo {
        sid: sid.clone(),
        identity: claims.sub.clone(),
        name: if claims.name.is_empty() { claims.sub.clone() } else { claims.name.clone() },
        metadata: claims.metadata.clone(),
        state: proto::participant_info::State::Active as i32,
        joined_at: joined / 1000,
        joined_at_ms: joined,
        version: 1,
        permission: Some(proto::ParticipantPermission {
            can_subscribe: grants.can_subscribe(),
            can_publish: grants.can_publish(),
            can_publish_data: true,
            hidden: grants.hidden,
            ..Default::default()
        }),
        kind: proto::participant_info::Kind::Standard as i32,
        ..Default::default()
    };
    let member = Member {
        info,
        hidden: grants.hidden,
        can_subscribe: grants.can_subscribe(),
        auto_subscribe,
        choices: HashMap::new(),
        signal,
        media: media_tx.clone(),
    };
    let Some(join) = app.hub.join(&room, member) else {
        let _ = sink.send(frame(Resp::Leave(proto::LeaveRequest::default()))).await;
        return;
    };
    // The join response is the first frame; what the join queued for this client follows it.
    if sink.send(frame(Resp::Join(join))).await.is_err() {
        app.hub.leave(&room, &sid);
        return;
    }
    app.hub.count(|s| {
        s.joins += 1;
        s.websockets_open += 1;
    });
    let media = tokio::spawn(media::run(
        MediaContext { hub: app.hub.clone(), room: room.clone(), sid: sid.clone() },
        media_rx,
    ));
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else { break };
                if sink.send(Message::Binary(message.encode_to_vec().into())).await.is_err() {
                    break;
                }
            }
            received = stream.next() => {
                let request = match received {
                    Some(Ok(Message::Binary(bytes))) => proto::SignalRequest::decode(bytes.as_ref()).ok(),
                    Some(Ok(Message::Text(text))) => serde_json::from_str::<proto::SignalRequest>(text.as_str()).ok(),
                    Some(Ok(_)) => None,
                    Some(Err(_)) | None => break,
                };
                let Some(message) = request.and_then(|r| r.message) else { continue };
                if !handle(&app, &room, &sid, &grants, &media_tx, message) {
                    break;
                }
            }
        }
    }
    app.hub.leave(&room, &sid);
    let _ = media_tx.send(MediaCommand::Close);
    let _ = media.await;
    let _ = sink.close().await;
    app.hub.count(|s| s.websockets_open -= 1);
}

/// One request of a joined client; false when it left.
fn handle(
    app: &App,
    room: &str,
    sid: &str,
    grants: &VideoGrants,
    media: &mpsc::UnboundedSender<MediaCommand>,
    message: Req,
) -> bool {
    let reply = |m: Resp| app.hub.send_to(room, sid, m);
    match message {
        Req::Offer(offer) => {
            let _ = media.send(MediaCommand::PublisherOffer { sdp: offer.sdp, id: offer.id });
        }
        Req::Answer(answer) => {
            let _ = media.send(MediaCommand::SubscriberAnswer { sdp: answer.sdp });
        }
        Req::Trickle(t) => {
            let _ = media.send(MediaCommand::Candidate { target: t.target, candidate: t.candidate_init });
        }
        Req::AddTrack(add) => {
            let refuse =
                |reason: proto::request_response::Reason, message: &str, add: proto::AddTrackRequest| {
                    reply(Resp::RequestResponse(proto::RequestResponse {
                        reason: reason as i32,
                        message: message.to_owned(),
                        request: Some(proto::request_response::Request::AddTrack(add)),
                        ..Default::default()
                    }));
                };
            if !grants.can_publish() {
                refuse(
                    proto::request_response::Reason::NotAllowed,
                    "does not have permission to publish",
                    add,
                );
            } else if add.r#type != proto::TrackType::Audio as i32 {
                // Audio only: a video track is refused (livekit-client's publish then times out).
                refuse(
                    proto::request_response::Reason::UnsupportedType,
                    "the stand-in forwards audio only",
                    add,
                );
            } else {
                let track = proto::TrackInfo {
                    sid: new_sid("TR_"),
                    r#type: add.r#type,
                    name: add.name.clone(),
                    muted: add.muted,
                    source: add.source,
                    mime_type: "audio/opus".into(),
                    stream: add.stream.clone(),
                    ..Default::default()
                };
                reply(Resp::TrackPublished(proto::TrackPublishedResponse {
                    cid: add.cid.clone(),
                    track: Some(track.clone()),
                }));
                let _ = media.send(MediaCommand::Expect { cid: add.cid, track: track.sid.clone() });
                app.hub.add_track(room, sid, track);
            }
        }
        Req::Mute(m) => app.hub.mute(room, sid, &m.sid, m.muted),
        Req::Subscription(s) => {
            let mut tracks = s.track_sids;
            tracks.extend(s.participant_tracks.into_iter().flat_map(|p| p.track_sids));
            app.hub.set_subscription(room, sid, &tracks, s.subscribe);
        }
        Req::Leave(_) => return false,
        Req::Ping(ts) => {
            app.hub.count(|s| s.pings += 1);
            reply(Resp::Pong(ts));
        }
        Req::PingReq(ping) => {
            app.hub.count(|s| s.pings += 1);
            reply(Resp::PongResp(proto::Pong { last_ping_timestamp: ping.timestamp, timestamp: now_ms() }));
        }
        _ => {}
    }
    true
}
