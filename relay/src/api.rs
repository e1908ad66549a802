//! The HTTP API's bodies as Rust types, for its clients (the tests, the load generator, tools):
//! what an organiser sends to create or change an event, and every view the relay answers with.
//! Each view reads back from the JSON the relay writes, so a client never walks JSON pointers.

use serde::{Deserialize, Serialize};

pub use crate::app::views::{
    Channels, Live, LiveChannel, LiveFloor, LiveOnAir, LiveSlowDown, PublicChannel, PublicEvent,
};
pub use crate::bbb::floor::{FloorState, FloorStatus};
pub use crate::booths::desk::{BoothAction, Who};
pub use crate::booths::views::{
    BoothEvent, BoothRecording, BoothState, ChannelState, ConsentChange, HandoverAsk, InterpreterView,
    Member, NewInterpreter, Partner, Speaker,
};
pub use crate::capacity::{Capacity, FreeSegment};
pub use crate::events::request::{
    AllChannels, ChannelChoice, EventChange, FloorRequest, NewEvent, RecordingRequest,
};
pub use crate::events::views::{ChannelView, EventView, FloorView};
pub use crate::media::router::ChannelKind;
pub use crate::recording::views::{
    OnAirStretch, RecordingFileView, RecordingStatusView, RecordingSwitch, RecordingsView,
};
pub use crate::store::FloorKind;
pub use crate::store::recordings::RecordingState;
pub use crate::usage::{ChannelUsage, InterpreterUsage, RecordedUsage, UsageEvent, UsageReport};

use crate::ids::Language;

/// Every error answer: `application/problem+json` (RFC 9457) with a sentence a person
/// understands in `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    pub r#type: String,
    /// The status's reason phrase ("Not Found", "Conflict", …).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong and, where it helps, what to do about it.
    pub detail: String,
}

/// `GET /api/v1/capacity`: the node's capacity and what is free over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapacityView {
    /// What the node can carry at once.
    pub capacity: Capacity,
    /// What is free, in stretches of time where it does not change.
    pub segments: Vec<FreeSegment>,
}

/// `POST /whep/sessions/{session}/channel`: the channel a live listener switches to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// The language of the channel to hear from the next packet on.
    pub language: Language,
}
