//! LiveKit access tokens Tolk mints with the server's API key and secret: the floor's (join the
//! meeting's room hidden, subscribe only, marked `bbb_system` so BBB does not list it as a user,
//! as BBB's own server-side agent joins) and the room service's (list rooms).

use livekit_token::{AccessToken, VideoGrants};

use super::{LiveKitConfig, LiveKitError};

/// The metadata that makes BBB ignore a participant (bbb-webrtc-sfu's webhook receiver).
pub(crate) const SYSTEM_METADATA: &str = r#"{"bbb_system":true}"#;

/// A token for the floor of `room`, as participant `identity`.
pub(crate) fn floor_token(
    config: &LiveKitConfig,
    room: &str,
    identity: &str,
) -> Result<String, LiveKitError> {
    let grants = VideoGrants {
        room_join: true,
        room: room.to_owned(),
        can_subscribe: Some(true),
        can_publish: Some(false),
        can_publish_data: Some(false),
        hidden: true,
        ..VideoGrants::default()
    };
    AccessToken::with_api_key(&config.api_key, &config.api_secret)
        .with_identity(identity)
        .with_name("Interpretation")
        .with_metadata(SYSTEM_METADATA)
        .with_grants(grants)
        .with_ttl(config.token_ttl)
        .to_jwt()
        .map_err(|e| LiveKitError::Token(e.to_string()))
}

/// A short-lived token for the room service (`ListRooms`).
pub(crate) fn room_service_token(config: &LiveKitConfig) -> Result<String, LiveKitError> {
    let grants = VideoGrants { room_list: true, ..VideoGrants::default() };
    AccessToken::with_api_key(&config.api_key, &config.api_secret)
        .with_grants(grants)
        .with_ttl(std::time::Duration::from_secs(600))
        .to_jwt()
        .map_err(|e| LiveKitError::Token(e.to_string()))
}

#[cfg(test)]
mod tests {
    use livekit_token::TokenVerifier;

    use super::*;

    #[test]
    fn the_floor_joins_hidden_and_only_subscribes() {
        let config =
            LiveKitConfig::new("ws://127.0.0.1:7880", "APIkey", "a-secret-of-enough-length").expect("c");
        let jwt = floor_token(&config, "internal-1", "tolk-floor/ab12").expect("token");
        let claims =
            TokenVerifier::with_api_key("APIkey", "a-secret-of-enough-length").verify(&jwt).expect("valid");
        assert_eq!(claims.sub, "tolk-floor/ab12");
        assert_eq!(claims.metadata, SYSTEM_METADATA);
        assert!(claims.video.room_join && claims.video.hidden);
        assert_eq!(claims.video.room, "internal-1");
        assert_eq!((claims.video.can_subscribe, claims.video.can_publish), (Some(true), Some(false)));
        assert!(TokenVerifier::with_api_key("APIkey", "another-secret-of-enough-len").verify(&jwt).is_err());
    }

    #[test]
    fn the_room_service_token_only_lists() {
        let config = LiveKitConfig::new("ws://127.0.0.1:7880", "k", "s3cret-s3cret-s3cret").expect("c");
        let jwt = room_service_token(&config).expect("token");
        let claims = TokenVerifier::with_api_key("k", "s3cret-s3cret-s3cret").verify(&jwt).expect("valid");
        assert!(claims.video.room_list && !claims.video.room_join && !claims.video.room_admin);
    }
}
