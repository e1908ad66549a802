//! What booth pages and organisers read of the booths: an interpreter's view of the booth, and
//! booth links as issued. They read back from their JSON too.

use serde::{Deserialize, Serialize};

use crate::booths::desk::Who;
use crate::ids::{EventId, InterpreterId, Language};

/// An interpreter's view of the booth (`GET /api/v1/booth/state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoothState {
    /// The event this booth link is for.
    pub event: BoothEvent,
    /// Me: the interpreter of this booth link.
    pub me: Member,
    /// What I listen to: `"floor"` or a relay language.
    pub input: String,
    /// I am on air and muted (cough); false when off air.
    pub muted: bool,
    /// The language I am on air in (null: off air).
    pub on_air: Option<Language>,
    /// The floor channel (the original speech) and its listeners; nobody is on air in it.
    pub floor: ChannelState,
    /// Each interpretation channel: who is on air in it and its listeners.
    pub channels: Vec<ChannelState>,
    /// The other interpreters sharing one of my languages (my booth), whether connected or not.
    pub partners: Vec<Partner>,
    /// A partner's pending request that I hand the air over to them (null: none).
    pub handover_request: Option<HandoverAsk>,
    /// Recording: whether I agreed to be recorded, and which channels are recorded now.
    #[serde(default)]
    pub recording: BoothRecording,
}

/// Recording as a booth sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoothRecording {
    /// I agreed to be recorded; if not, recordings hold silence while I am on air.
    pub consent: bool,
    /// The channels being recorded now (the page shows REC when one of mine is).
    pub channels: Vec<Language>,
}

/// `POST /api/v1/booth/consent`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChange {
    /// Whether I agree to my interpretation being recorded.
    pub recording_consent: bool,
}

/// The event a booth belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoothEvent {
    /// The event's id (as in the listener page's URL `/e/{id}`).
    pub id: EventId,
    /// The event's title, as listeners see it.
    pub title: String,
}

/// An interpreter and the languages of their booth link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// The booth link's id (in URLs of the organiser API).
    pub id: InterpreterId,
    /// The interpreter's name, as on the booth link.
    pub name: String,
    /// The languages they interpret into: one, or two for an A/B booth.
    pub languages: Vec<Language>,
}

/// A channel as a booth sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelState {
    /// The channel's language.
    pub language: Language,
    /// The language's name in the language itself ("Français"), or its tag if unknown.
    pub label: String,
    /// Who is on air in this channel (absent: nobody, listeners hear the floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_air: Option<Speaker>,
    /// Listeners on this channel now.
    pub listeners: usize,
}

/// Who is on air in a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Speaker {
    /// The on-air interpreter's booth link id.
    pub id: InterpreterId,
    /// The on-air interpreter's name.
    pub name: String,
    /// Coughing: on air but muted, so listeners hear silence (not the floor).
    pub muted: bool,
}

/// A booth partner (an interpreter sharing a language).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Partner {
    /// The partner's booth link id.
    pub id: InterpreterId,
    /// The partner's name.
    pub name: String,
    /// The languages the partner interprets into.
    pub languages: Vec<Language>,
    /// The partner is connected to the booth (has a media session) now.
    pub present: bool,
    /// The language the partner is on air in (null: off air).
    pub on_air: Option<Language>,
}

/// A partner asks me to hand over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HandoverAsk {
    /// The partner who asks to take the air.
    pub from: Who,
}

/// `POST /api/v1/events/{id}/interpreters`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInterpreter {
    /// The interpreter's name, 1 to 100 characters (shown to partners and the organiser).
    pub name: String,
    /// The languages they interpret into: one of the event's interpretation languages, or two
    /// different ones for an A/B booth.
    pub languages: Vec<Language>,
    /// Whether the interpreter agreed to be recorded (they can change it on the booth page);
    /// default false: recordings hold silence while they are on air.
    #[serde(default)]
    pub recording_consent: bool,
}

/// A booth link as issued (the token is shown once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InterpreterView {
    /// The booth link's id (in URLs of the organiser API, e.g. to revoke it).
    pub id: InterpreterId,
    /// The interpreter's name.
    pub name: String,
    /// The languages they interpret into: one, or two for an A/B booth.
    pub languages: Vec<Language>,
    /// Whether they agreed to be recorded.
    #[serde(default)]
    pub recording_consent: bool,
    /// The booth link's secret: the bearer token of the booth API and `/whip/booth`; only in the
    /// answer that issued the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The booth page to send the interpreter (it holds the token); only in the answer that issued
    /// the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booth_url: Option<String>,
}
