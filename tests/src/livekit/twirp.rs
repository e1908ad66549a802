//! The stand-in's room service: Twirp `POST /twirp/livekit.RoomService/{method}` with a bearer
//! token, in JSON (`application/json`, with the protobuf field names livekit-server's Twirp
//! emits) or protobuf (`application/protobuf`); errors as Twirp JSON.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use livekit_protocol as proto;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::signal::App;
use super::token::{self, VideoGrants};

/// A Twirp error: its code, its HTTP status, its message.
struct TwirpError(&'static str, StatusCode, String);

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.0, "msg": self.2 });
        (self.1, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

fn unauthenticated(msg: impl Into<String>) -> TwirpError {
    TwirpError("unauthenticated", StatusCode::UNAUTHORIZED, msg.into())
}

fn denied() -> TwirpError {
    unauthenticated("permissions denied")
}

fn not_found() -> TwirpError {
    TwirpError("not_found", StatusCode::NOT_FOUND, "requested room does not exist".into())
}

/// The body's format.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Protobuf,
}

/// `lowerCamel` → `snake_case`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// pbjson's JSON with protobuf field names (as Twirp's `protojson` with `UseProtoNames`); the keys
/// of map fields are data, not names, and stay.
fn proto_names(value: Value) -> Value {
    const MAPS: [&str; 3] = ["attributes", "tags", "midToTrackId"];
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if MAPS.contains(&k.as_str()) { v } else { proto_names(v) };
                    (snake(&k), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(proto_names).collect()),
        other => other,
    }
}

fn decode<T: prost::Message + Default + DeserializeOwned>(
    format: Format,
    body: &[u8],
) -> Result<T, TwirpError> {
    let malformed = |e: String| {
        TwirpError(
            "malformed",
            StatusCode::BAD_REQUEST,
            format!("the json request could not be decoded: {e}"),
        )
    };
    match format {
        Format::Protobuf => T::decode(body).map_err(|e| malformed(e.to_string())),
        Format::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        Format::Json => serde_json::from_slice(body).map_err(|e| malformed(e.to_string())),
    }
}

fn encode<T: prost::Message + Serialize>(format: Format, message: &T) -> Response {
    match format {
        Format::Protobuf => {
            ([(header::CONTENT_TYPE, "application/protobuf")], message.encode_to_vec()).into_response()
        }
        Format::Json => {
            let value = serde_json::to_value(message).map(proto_names).unwrap_or(Value::Null);
            ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
        }
    }
}

/// The grants of the request's bearer token.
fn grants(app: &App, headers: &HeaderMap) -> Result<VideoGrants, TwirpError> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(denied());
    };
    let Some(raw) = value.strip_prefix("Bearer ") else {
        return Err(unauthenticated("invalid authorization header. Must start with Bearer "));
    };
    let claims =
        token::verify(raw, &app.api_key, &app.api_secret).map_err(|e| unauthenticated(e.to_string()))?;
    Ok(claims.video.unwrap_or_default())
}

/// `POST /twirp/livekit.RoomService/{method}`.
pub(crate) async fn room_service(
    State(app): State<App>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match call(&app, &method, &headers, &body) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn call(app: &App, method: &str, headers: &HeaderMap, body: &[u8]) -> Result<Response, TwirpError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = if content_type.starts_with("application/json") {
        Format::Json
    } else if content_type.starts_with("application/protobuf") {
        Format::Protobuf
    } else {
        return Err(TwirpError(
            "bad_route",
            StatusCode::NOT_FOUND,
            format!("unexpected Content-Type: {content_type:?}"),
        ));
    };
    let grants = grants(app, headers)?;
    let hub = &app.hub;
    match method {
        "ListRooms" => {
            let request: proto::ListRoomsRequest = decode(format, body)?;
            if !grants.room_list {
                return Err(denied());
            }
            let rooms = hub
                .rooms()
                .into_iter()
                .filter(|r| request.names.is_empty() || request.names.contains(&r.name))
                .collect();
            Ok(encode(format, &proto::ListRoomsResponse { rooms }))
        }
        "ListParticipants" => {
            let request: proto::ListParticipantsRequest = decode(format, body)?;
            if !grants.room_admin || grants.room != request.room {
                return Err(denied());
            }
            let participants = hub.participants(&request.room).ok_or_else(not_found)?;
            Ok(encode(format, &proto::ListParticipantsResponse { participants }))
        }
        "CreateRoom" => {
            let request: proto::CreateRoomRequest = decode(format, body)?;
            if !grants.room_create {
                return Err(denied());
            }
            if request.name.is_empty() {
                return Err(TwirpError("invalid_argument", StatusCode::BAD_REQUEST, "no room name".into()));
            }
            let metadata = (!request.metadata.is_empty()).then_some(request.metadata.as_str());
            Ok(encode(format, &hub.create_room(&request.name, metadata)))
        }
        "DeleteRoom" => {
            let request: proto::DeleteRoomRequest = decode(format, body)?;
            if !grants.room_create {
                return Err(denied());
            }
            if !hub.delete_room(&request.room) {
                return Err(not_found());
            }
            Ok(encode(format, &proto::DeleteRoomResponse {}))
        }
        "UpdateRoomMetadata" => {
            let request: proto::UpdateRoomMetadataRequest = decode(format, body)?;
            if !grants.room_admin || grants.room != request.room {
                return Err(denied());
            }
            let room = hub.set_room_metadata(&request.room, &request.metadata).ok_or_else(not_found)?;
            Ok(encode(format, &room))
        }
        other => Err(TwirpError(
            "bad_route",
            StatusCode::NOT_FOUND,
            format!("no handler for path \"/twirp/livekit.RoomService/{other}\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_protobuf_field_names_but_keeps_map_keys() {
        let p = proto::ParticipantInfo {
            identity: "a".into(),
            joined_at_ms: 5,
            attributes: [("someKey".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        let v = proto_names(serde_json::to_value(&p).unwrap());
        assert_eq!(v["joined_at_ms"], "5");
        assert_eq!(v["attributes"]["someKey"], "v");
        assert!(v.get("joinedAtMs").is_none());
    }
}
