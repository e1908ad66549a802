//! What booth pages and organisers read of the booths: an interpreter's view of the booth, and
//! booth links as issued. They read back from their JSON too.

use serde::{Deserialize, Serialize};

use crate::booths::desk::Who;
use crate::ids::{EventId, InterpreterId, Language};

/// An interpreter's view of the booth (`GET /api/v1/booth/state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoothState {
    pub event: BoothEvent,
    pub me: Member,
    /// What I listen to: `"floor"` or a relay language.
    pub input: String,
    pub muted: bool,
    pub on_air: Option<Language>,
    pub floor: ChannelState,
    pub channels: Vec<ChannelState>,
    pub partners: Vec<Partner>,
    pub handover_request: Option<HandoverAsk>,
}

/// The event a booth belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoothEvent {
    pub id: EventId,
    pub title: String,
}

/// An interpreter and the languages of their booth link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: InterpreterId,
    pub name: String,
    pub languages: Vec<Language>,
}

/// A channel as a booth sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    pub language: Language,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_air: Option<Speaker>,
    pub listeners: usize,
}

/// Who is on air in a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    pub id: InterpreterId,
    pub name: String,
    pub muted: bool,
}

/// A booth partner (an interpreter sharing a language).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partner {
    pub id: InterpreterId,
    pub name: String,
    pub languages: Vec<Language>,
    pub present: bool,
    pub on_air: Option<Language>,
}

/// A partner asks me to hand over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverAsk {
    pub from: Who,
}

/// `POST /api/v1/events/{id}/interpreters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInterpreter {
    pub name: String,
    pub languages: Vec<Language>,
}

/// A booth link as issued (the token is shown once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterpreterView {
    pub id: InterpreterId,
    pub name: String,
    pub languages: Vec<Language>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booth_url: Option<String>,
}
