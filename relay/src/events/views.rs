//! An event as the organiser API shows it, and its channels in order (the floor first, then the
//! interpretation languages). Views read back from their JSON too, so clients (the tests, the
//! load generator) use these types rather than JSON pointers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bbb::FloorStatus;
use crate::ids::{EventId, Language};
use crate::media::router::ChannelKind;
use crate::store::{Event, FloorKind};

/// One channel of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelView {
    pub language: Language,
    pub kind: ChannelKind,
}

/// How the floor of an event arrives, and (once, at creation) its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloorView {
    pub kind: FloorKind,
    pub whip_url: String,
    /// The floor token, shown only in the answer that created the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// An RTP floor: where to send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_url: Option<String>,
    /// A BBB floor: the meeting, and where Tolk is with it (waiting, joining, live, error, ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FloorStatus>,
}

/// An event as the organiser API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: EventId,
    pub title: String,
    pub floor_language: Language,
    pub languages: Vec<Language>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub expected_listeners: u32,
    pub listener_url: String,
    pub floor: FloorView,
    pub channels: Vec<ChannelView>,
    pub floor_under_interpretation_db: Option<f32>,
}

/// An event's channels in order: the floor, then each interpretation language.
pub fn channels(event: &Event) -> impl Iterator<Item = (&Language, ChannelKind)> {
    std::iter::once((&event.floor_language, ChannelKind::Floor))
        .chain(event.languages.iter().map(|l| (l, ChannelKind::Interpretation)))
}
