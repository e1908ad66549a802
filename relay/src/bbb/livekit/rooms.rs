//! Asking LiveKit's room service (Twirp, JSON) whether a meeting's room exists: how
//! `TOLK_BBB_AUDIO=auto` tells a meeting whose audio runs on LiveKit (BBB creates the room, named
//! after the internal meeting id, when the meeting starts) from one on bbb-webrtc-sfu.

use serde::Deserialize;

use super::{LiveKitConfig, LiveKitError, token};

/// A room as the room service lists it (the fields Tolk reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct Room {
    pub name: String,
    pub sid: String,
    /// BBB's room metadata (JSON with `bbb_meetingId`, `bbb_voiceConf`, `bbb_audioBridge`).
    pub metadata: String,
}

impl Room {
    /// Whether the meeting's audio is in this room: BBB's metadata `bbb_audioBridge` says so
    /// (`livekit`); a room without that key is taken to carry the audio (BBB 4.0).
    pub(crate) fn audio_on_livekit(&self) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.metadata)
            .ok()
            .and_then(|m| {
                m.get("bbb_audioBridge").and_then(|b| b.as_str()).map(|b| b.eq_ignore_ascii_case("livekit"))
            })
            .unwrap_or(true)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Rooms {
    rooms: Vec<Room>,
}

/// The room `name`, if LiveKit has it.
pub(crate) async fn find_room(config: &LiveKitConfig, name: &str) -> Result<Option<Room>, LiveKitError> {
    let mut base = config.http_url();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let url = base
        .join("twirp/livekit.RoomService/ListRooms")
        .map_err(|e| LiveKitError::Config(format!("room service URL: {e}")))?;
    let client = super::transport::http_client().map_err(|e| LiveKitError::RoomService(e.to_string()))?;
    let response = client
        .post(url.clone())
        .bearer_auth(token::room_service_token(config)?)
        .json(&serde_json::json!({ "names": [name] }))
        .send()
        .await
        .map_err(|e| {
            LiveKitError::RoomService(format!("{} is unreachable: {e}", url.origin().ascii_serialization()))
        })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(LiveKitError::Refused(format!(
            "the room service answered HTTP {status} ({}): check TOLK_LIVEKIT_KEY and TOLK_LIVEKIT_SECRET",
            twirp_message(&body)
        )));
    }
    if !status.is_success() {
        return Err(LiveKitError::RoomService(format!("HTTP {status}: {}", twirp_message(&body))));
    }
    let rooms: Rooms = serde_json::from_str(&body)
        .map_err(|e| LiveKitError::RoomService(format!("ListRooms answered what is not its JSON: {e}")))?;
    Ok(rooms.rooms.into_iter().find(|r| r.name == name))
}

/// The `msg` of a Twirp error body, else its start.
fn twirp_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twirp_errors_give_their_message() {
        assert_eq!(twirp_message(r#"{"code":"unauthenticated","msg":"invalid token"}"#), "invalid token");
        assert_eq!(twirp_message("plain"), "plain");
    }

    #[test]
    fn listed_rooms_are_read_with_protobuf_json_names() {
        let rooms: Rooms = serde_json::from_str(
            r#"{"rooms":[{"sid":"RM_1","name":"int-1","metadata":"{\"bbb_audioBridge\":\"livekit\"}","num_participants":3}]}"#,
        )
        .expect("json");
        assert_eq!(rooms.rooms[0].name, "int-1");
        assert!(rooms.rooms[0].metadata.contains("livekit"));
        let none: Rooms = serde_json::from_str("{}").expect("json");
        assert!(none.rooms.is_empty());
        assert!(rooms.rooms[0].audio_on_livekit());
        let room = |metadata: &str| Room { metadata: metadata.into(), ..Room::default() };
        assert!(!room(r#"{"bbb_audioBridge":"freeswitch"}"#).audio_on_livekit(), "cameras only");
        assert!(room("").audio_on_livekit() && room(r#"{"bbb_meetingId":"m"}"#).audio_on_livekit());
    }
}
