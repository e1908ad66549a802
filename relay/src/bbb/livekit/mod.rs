//! The floor of a meeting whose audio runs on LiveKit (BBB 4.0's default, BBB 3.0 with
//! `audioBridge=livekit`): no server-side mix exists, every microphone is its own Opus track in a
//! LiveKit room named after BBB's internal meeting id. Tolk joins that room as a hidden,
//! subscribe-only system participant, as BBB's own server-side agent does (`token.rs`: a JWT
//! signed with the server's LiveKit key and secret), speaks LiveKit's signalling through the
//! `livekit-signaling` client over Tolk's own websocket and HTTP (`transport.rs`), receives every
//! audio track on one str0m peer (`peer.rs`), mixes them with [`crate::media::floor_mix`] and
//! sends the mix to the event's floor socket like any floor. `rooms.rs` asks the room service
//! whether a meeting's room exists (how `TOLK_BBB_AUDIO=auto` decides); `session.rs` is one
//! connection from join to drop.

pub(crate) mod peer;
pub(crate) mod rooms;
pub(crate) mod session;
pub(crate) mod token;
pub(crate) mod transport;

use std::time::Duration;

use serde::Serialize;

/// Which media bridge carries a meeting's audio to Tolk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioBridge {
    /// The meeting's LiveKit room exists → LiveKit, else bbb-webrtc-sfu; decided per meeting
    /// and again on every reconnection.
    #[default]
    Auto,
    /// Always the LiveKit room (BBB 4.0).
    LiveKit,
    /// Always bbb-webrtc-sfu's listen-only mix (BBB 3.0's default).
    Sfu,
}

impl std::str::FromStr for AudioBridge {
    type Err = LiveKitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(AudioBridge::Auto),
            "livekit" => Ok(AudioBridge::LiveKit),
            "sfu" | "mediasoup" | "bbb-webrtc-sfu" => Ok(AudioBridge::Sfu),
            other => {
                Err(LiveKitError::Config(format!("TOLK_BBB_AUDIO '{other}' must be auto, livekit or sfu")))
            }
        }
    }
}

/// The bridge a floor is taken through, as its state shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bridge {
    /// bbb-webrtc-sfu's listen-only mix of FreeSWITCH.
    Sfu,
    /// The meeting's LiveKit room, mixed by Tolk.
    Livekit,
}

/// How to reach the BBB server's LiveKit.
#[derive(Debug, Clone)]
pub struct LiveKitConfig {
    /// The signalling URL, `ws://127.0.0.1:7880` on the BBB host (livekit-server's port).
    pub url: url::Url,
    /// The API key (a key of `keys:` in `/etc/bigbluebutton/livekit.yaml`).
    pub api_key: String,
    /// Its secret.
    pub api_secret: String,
    /// How long a minted token is valid; each (re)connection mints a new one.
    pub token_ttl: Duration,
}

impl LiveKitConfig {
    /// A configuration with the defaults, checking the URL and the credentials.
    pub fn new(url: &str, api_key: &str, api_secret: &str) -> Result<Self, LiveKitError> {
        let parsed = url::Url::parse(url.trim())
            .map_err(|e| LiveKitError::Config(format!("TOLK_LIVEKIT_URL '{url}' is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "ws" | "wss" | "http" | "https") || parsed.host().is_none() {
            return Err(LiveKitError::Config(format!(
                "TOLK_LIVEKIT_URL '{url}' must be a ws(s):// URL such as ws://127.0.0.1:7880"
            )));
        }
        if api_key.trim().is_empty() || api_secret.trim().is_empty() {
            return Err(LiveKitError::Config(
                "the LiveKit API key and secret are both needed (TOLK_LIVEKIT_KEY, TOLK_LIVEKIT_SECRET; \
                 tolk-bbb-config reads them from /etc/bigbluebutton/livekit.yaml)"
                    .into(),
            ));
        }
        Ok(Self {
            url: parsed,
            api_key: api_key.trim().to_owned(),
            api_secret: api_secret.trim().to_owned(),
            token_ttl: Duration::from_secs(6 * 3600),
        })
    }

    /// The HTTP base of the same server (the room service).
    pub fn http_url(&self) -> url::Url {
        let mut url = self.url.clone();
        let scheme = if matches!(url.scheme(), "wss" | "https") { "https" } else { "http" };
        // ws→http and wss→https are always allowed by `Url::set_scheme`.
        let _ = url.set_scheme(scheme);
        url
    }

    /// The websocket base of the same server (signalling).
    pub fn ws_url(&self) -> String {
        let mut url = self.url.clone();
        let scheme = if matches!(url.scheme(), "wss" | "https") { "wss" } else { "ws" };
        let _ = url.set_scheme(scheme);
        url.to_string()
    }
}

/// What can go wrong with a LiveKit floor.
#[derive(Debug, thiserror::Error)]
pub enum LiveKitError {
    /// A LiveKit setting is missing or malformed; the sentence says which.
    #[error("LiveKit configuration: {0}")]
    Config(String),
    /// The meeting's audio is on LiveKit, but this node has no LiveKit credentials.
    #[error(
        "the meeting's audio runs on LiveKit, but this node has no LiveKit credentials: set \
         TOLK_LIVEKIT_KEY and TOLK_LIVEKIT_SECRET (tolk-bbb-config reads them on a BBB server)"
    )]
    NotConfigured,
    /// A token could not be minted.
    #[error("could not mint a LiveKit token: {0}")]
    Token(String),
    /// LiveKit refused the token or the room (HTTP 401/403/404 with its message).
    #[error("LiveKit refused to let Tolk in: {0}")]
    Refused(String),
    /// LiveKit could not be reached or its signalling failed.
    #[error("LiveKit signalling: {0}")]
    Signalling(String),
    /// The room service answered something Tolk cannot use.
    #[error("LiveKit room service: {0}")]
    RoomService(String),
    /// The WebRTC media from LiveKit failed.
    #[error("media from LiveKit: {0}")]
    Media(String),
}

impl LiveKitError {
    /// A configuration or credential problem: retrying soon will not help.
    pub fn is_lasting(&self) -> bool {
        matches!(self, LiveKitError::Config(_) | LiveKitError::NotConfigured | LiveKitError::Refused(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_parse_and_bad_ones_are_named() {
        assert_eq!("auto".parse::<AudioBridge>().ok(), Some(AudioBridge::Auto));
        assert_eq!("LiveKit".parse::<AudioBridge>().ok(), Some(AudioBridge::LiveKit));
        assert_eq!("sfu".parse::<AudioBridge>().ok(), Some(AudioBridge::Sfu));
        let e = "jitsi".parse::<AudioBridge>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("'jitsi'") && e.contains("auto, livekit or sfu"), "{e}");
    }

    #[test]
    fn urls_and_credentials_are_checked() {
        let c = LiveKitConfig::new("ws://127.0.0.1:7880", "key", "secret").expect("config");
        assert_eq!(c.http_url().as_str(), "http://127.0.0.1:7880/");
        assert_eq!(c.ws_url(), "ws://127.0.0.1:7880/");
        let c = LiveKitConfig::new("https://bbb.example.org/livekit", "k", "s").expect("config");
        assert_eq!(c.ws_url(), "wss://bbb.example.org/livekit");
        assert!(LiveKitConfig::new("ftp://x", "k", "s").is_err());
        assert!(LiveKitConfig::new("ws://x:7880", "k", " ").is_err());
    }
}
