//! Views that join several services: the organiser's live view of an event and the public
//! channel list the listener page reads. They read back from their JSON too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bbb::FloorStatus;
use crate::ids::{EventId, Language};
use crate::media::router::ChannelKind;
use crate::store::FloorKind;

/// A channel in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveChannel {
    /// The channel's language (the floor language for the floor channel).
    pub language: Language,
    /// The language's name in the language itself ("Français"), or its tag if unknown.
    pub label: String,
    /// Whether this is the floor or an interpretation channel.
    pub kind: ChannelKind,
    /// Listeners on this channel now.
    pub listeners: usize,
    /// The interpreter on air in this channel, if any (None: listeners hear the floor).
    pub on_air: Option<LiveOnAir>,
}

/// Who is on air, in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveOnAir {
    /// The interpreter's name, as on their booth link.
    pub name: String,
    /// Coughing: on air but muted, so listeners hear silence (not the floor).
    pub muted: bool,
}

/// The floor in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveFloor {
    /// Where the floor comes from: WHIP, RTP or a BigBlueButton meeting.
    pub kind: FloorKind,
    /// A WHIP floor publisher is connected, a BBB floor is live (None for an RTP floor: packets
    /// are not tracked).
    pub connected: Option<bool>,
    /// A BBB floor: waiting, joining, live, error or ended, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbb: Option<FloorStatus>,
}

/// A slow-down signal, in the live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveSlowDown {
    /// The name of the interpreter who asked the floor to slow down.
    pub name: String,
    /// When they asked.
    pub at: DateTime<Utc>,
}

/// `GET /api/v1/events/{id}/live`: listeners per channel, who is on air, floor state, slow-downs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Live {
    /// The state of the floor (the original speech).
    pub floor: LiveFloor,
    /// Every channel of the event, the floor first, then the interpretation languages.
    pub channels: Vec<LiveChannel>,
    /// Listeners on all channels together now.
    pub listeners: usize,
    /// Every slow-down signal of the event so far, oldest first.
    pub slow_downs: Vec<LiveSlowDown>,
    /// How many handovers between interpreters the event has had so far.
    pub handovers: i64,
}

/// What a listener may know of an event: title and window. No secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicEvent {
    /// The event's id (in the listener page's URL `/e/{id}`).
    pub id: EventId,
    /// The event's title.
    pub title: String,
    /// When the event starts (its media opens an hour before).
    pub starts_at: DateTime<Utc>,
    /// When the event ends (its media closes an hour after).
    pub ends_at: DateTime<Utc>,
}

/// A channel as listeners see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicChannel {
    /// The channel's language: what to put in `/whep/{event}/{language}`.
    pub language: Language,
    /// Whether this is the floor or an interpretation channel.
    pub kind: ChannelKind,
    /// The language's name in the language itself ("Français"), or its tag if unknown.
    pub label: String,
    /// Who is heard: "floor" (the original speech) or "interpreter".
    pub speaking: String,
    /// The interpreter on air, by name, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
}

/// `GET /api/v1/events/{id}/channels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channels {
    /// The event: title and window.
    pub event: PublicEvent,
    /// The channels to pick from, the floor first.
    pub channels: Vec<PublicChannel>,
}
