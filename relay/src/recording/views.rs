//! What organisers read and send about recordings: the switch, the state, the files with who
//! was on air in them. They read back from their JSON too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::request::ChannelChoice;
use crate::ids::{InterpreterId, Language};
use crate::store::recordings::RecordingState;

/// `POST /api/v1/events/{id}/recording`: switch recording on or off.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingSwitch {
    /// On: files start now (a new part); off: the files of this part end now.
    pub on: bool,
    /// Which channels, when switching on: `"all"` or languages; absent: as planned (or all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelChoice>,
}

/// An event's recording now (`GET /api/v1/events/{id}/recording`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingStatusView {
    /// Which channels are recorded: `"all"` or languages (null: never planned).
    pub channels: Option<ChannelChoice>,
    /// Whether recording is switched on (it runs while the event does).
    pub on: bool,
    /// Whether files are being written now.
    pub recording: bool,
    /// The part being written (each start, and each restart of the node, begins a part).
    pub part: Option<i64>,
    /// When the part being written started: position 0 of every channel's file.
    pub started_at: Option<DateTime<Utc>>,
    /// Why the last recording stopped by itself (the disk filled up, …); null: it did not.
    pub problem: Option<String>,
    /// Free space where recordings go, in bytes.
    pub free_bytes: Option<u64>,
}

/// An event's recorded files (`GET /api/v1/events/{id}/recordings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingsView {
    /// By part, the floor first.
    pub recordings: Vec<RecordingFileView>,
}

/// One recorded file: a channel of a part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingFileView {
    /// The file's id.
    pub id: String,
    /// Which part of the event's recording.
    pub part: i64,
    /// The channel's language.
    pub language: Language,
    /// `floor` or `interpretation`.
    pub channel: String,
    /// Position 0 of the file (every channel of the part starts here).
    pub started_at: DateTime<Utc>,
    /// Length in ms (while recording: as of the last few seconds).
    pub duration_ms: i64,
    /// Size in bytes.
    pub size: i64,
    /// `recording`, `done`, `interrupted` (a crash or stop of the node) or `failed`.
    pub state: RecordingState,
    /// Why it ended early, if it did.
    pub problem: Option<String>,
    /// Who was on air in it, and when.
    pub on_air: Vec<OnAirStretch>,
    /// Where to download it (`audio/ogg`; range requests for seeking).
    pub url: String,
}

/// Who was on air over a stretch of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnAirStretch {
    /// The interpreter's booth link id.
    pub interpreter: InterpreterId,
    /// Their name.
    pub name: String,
    /// From and to, in ms from the file's start (to: null while on air).
    pub from_ms: i64,
    /// See `from_ms`.
    pub to_ms: Option<i64>,
    /// Whether they agreed to be recorded; if not, this stretch is silence in the file.
    pub consent: bool,
}
