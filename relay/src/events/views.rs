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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelView {
    /// The channel's language: what a listener puts in `/whep/{event}/{language}`.
    pub language: Language,
    /// Whether this is the floor or an interpretation channel.
    pub kind: ChannelKind,
}

/// How the floor of an event arrives, and (once, at creation) its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FloorView {
    /// Where the floor comes from: WHIP, RTP or a BigBlueButton meeting.
    pub kind: FloorKind,
    /// Where a WHIP publisher sends the floor, with the floor token as bearer token.
    pub whip_url: String,
    /// The floor token, shown only in the answer that created the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// An RTP floor: where to send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_url: Option<String>,
    /// An RTP floor: the only sources it takes audio from (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// A BBB floor: the meeting's BBB `meetingID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    /// A BBB floor: where Tolk is with the meeting (waiting, joining, live, error, ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FloorStatus>,
    /// A peer floor: the peer event's listener link (the peering token is never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_url: Option<String>,
}

/// An event as the organiser API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event's id (in the URLs of the organiser API and the listener page).
    pub id: EventId,
    /// The event's title, as listeners see it.
    pub title: String,
    /// The language of the floor (the original speech).
    pub floor_language: Language,
    /// The interpretation languages, one channel and booth each (the floor's not included).
    pub languages: Vec<Language>,
    /// When the event starts (its media opens an hour before).
    pub starts_at: DateTime<Utc>,
    /// When the event ends (its media closes an hour after).
    pub ends_at: DateTime<Utc>,
    /// The listeners the event reserved capacity for; it admits this many plus headroom.
    pub expected_listeners: u32,
    /// The listener page to share with the audience.
    pub listener_url: String,
    /// How the floor arrives (and, once, its token).
    pub floor: FloorView,
    /// The event's channels: the floor first, then each interpretation language.
    pub channels: Vec<ChannelView>,
    /// Mix mode: the floor's level under the interpretation, in dB (-60 to 0);
    /// null: pass-through (no floor under the interpreter's voice).
    pub floor_under_interpretation_db: Option<f32>,
}

/// An event's channels in order: the floor, then each interpretation language.
pub(crate) fn channels(event: &Event) -> impl Iterator<Item = (&Language, ChannelKind)> {
    std::iter::once((&event.floor_language, ChannelKind::Floor))
        .chain(event.languages.iter().map(|l| (l, ChannelKind::Interpretation)))
}
