//! Views that join several services: the organiser's live view of an event and the public
//! channel list the listener page reads. They read back from their JSON too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bbb::FloorStatus;
use crate::ids::{EventId, Language};
use crate::media::router::ChannelKind;
use crate::store::FloorKind;

/// A channel in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveChannel {
    pub language: Language,
    pub label: String,
    pub kind: ChannelKind,
    pub listeners: usize,
    pub on_air: Option<LiveOnAir>,
}

/// Who is on air, in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveOnAir {
    pub name: String,
    pub muted: bool,
}

/// The floor in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFloor {
    pub kind: FloorKind,
    /// A WHIP floor publisher is connected, a BBB floor is live (None for an RTP floor: packets
    /// are not tracked).
    pub connected: Option<bool>,
    /// A BBB floor: waiting, joining, live, error or ended, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbb: Option<FloorStatus>,
}

/// A slow-down signal, in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSlowDown {
    pub name: String,
    pub at: DateTime<Utc>,
}

/// `GET /api/v1/events/{id}/live`: listeners per channel, who is on air, floor state, slow-downs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub floor: LiveFloor,
    pub channels: Vec<LiveChannel>,
    pub listeners: usize,
    pub slow_downs: Vec<LiveSlowDown>,
    pub handovers: i64,
}

/// What a listener may know of an event: title and window. No secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicEvent {
    pub id: EventId,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A channel as listeners see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicChannel {
    pub language: Language,
    pub kind: ChannelKind,
    pub label: String,
    /// Who is heard: "floor" (the original speech) or "interpreter".
    pub speaking: String,
    /// The interpreter on air, by name, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
}

/// `GET /api/v1/events/{id}/channels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channels {
    pub event: PublicEvent,
    pub channels: Vec<PublicChannel>,
}
