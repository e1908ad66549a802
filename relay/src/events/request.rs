//! What organisers send to create or change an event, and the rules a request must meet before
//! capacity is even looked at.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::allow::SourceAllow;
use crate::events::EventError;
use crate::ids::Language;

/// `floor` in an event request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FloorRequest {
    /// A WebRTC publisher (WHIP) with the floor token.
    Whip,
    /// Plain Opus RTP on a port of its own.
    Rtp {
        /// The only addresses or networks (`192.0.2.10`, `198.51.100.0/24`) it takes audio
        /// from; absent or empty: any (the floor still locks on its first sender).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allow: Vec<String>,
    },
    /// The audio of a meeting on the node's BigBlueButton server.
    Bbb {
        /// BBB's `meetingID`.
        meeting_id: String,
    },
    /// An event of a peer cluster (another co-op's Tolk), floor and channels as it makes them:
    /// this cluster's listeners are served from its own nodes, and the peer sees one subscriber.
    /// The languages must be the peer event's.
    Peer {
        /// The peer event's listener link, `https://tolk.coop-a.example/e/{event}`.
        url: String,
        /// The peering token the peer's operator issued to this cluster (`tolk peer add`).
        token: String,
    },
}

/// A peer event's listener link, split: the peer cluster's URL and the event's id there.
pub(crate) fn peer_link(url: &str) -> Result<(String, crate::ids::EventId), EventError> {
    let bad = || EventError::PeerLink(url.chars().take(200).collect());
    let parsed = url::Url::parse(url.trim()).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad());
    }
    let path = parsed.path().trim_end_matches('/');
    let (base_path, id) = path.rsplit_once("/e/").ok_or_else(bad)?;
    let event = crate::ids::EventId::parse(id).map_err(|_| bad())?;
    let mut base = parsed.clone();
    base.set_path(base_path);
    base.set_query(None);
    base.set_fragment(None);
    Ok((base.as_str().trim_end_matches('/').to_owned(), event))
}

/// `POST /api/v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// The event's title, as listeners see it: 1 to 200 characters.
    pub title: String,
    /// The language of the floor (the original speech).
    pub floor_language: Language,
    /// Interpretation languages (the floor language is not repeated here).
    #[serde(default)]
    pub languages: Vec<Language>,
    /// When the event starts (its media opens an hour before).
    pub starts_at: DateTime<Utc>,
    /// When the event ends, after `starts_at` (its media closes an hour after).
    pub ends_at: DateTime<Utc>,
    /// How many listeners to reserve capacity for (1 to 1,000,000); the event admits
    /// this many plus the node's headroom.
    pub expected_listeners: u32,
    /// How the floor arrives; absent: a WHIP publisher.
    #[serde(default = "default_floor")]
    pub floor: FloorRequest,
    /// Mix mode: the floor under the interpretation at this level in dB (e.g. -18); null or
    /// absent: pass-through (a listener can still mix the floor track in the browser).
    #[serde(default)]
    pub floor_under_interpretation_db: Option<f32>,
    /// Record these channels from the event's start (each an Ogg Opus file); absent: not
    /// recorded (the organiser can still switch recording on while the event runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingRequest>,
}

/// `recording` in an event request: which channels are recorded (one Ogg Opus file each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingRequest {
    /// `"all"` (the floor and every interpretation channel) or a list of the event's languages
    /// (the floor's included, if it is to be recorded).
    pub channels: ChannelChoice,
}

/// `"all"`, or a list of languages.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ChannelChoice {
    /// Every channel.
    All(AllChannels),
    /// These channels.
    Languages(Vec<Language>),
}

impl<'de> Deserialize<'de> for ChannelChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Word(String),
            Languages(Vec<Language>),
        }
        match Given::deserialize(deserializer) {
            Ok(Given::Word(word)) if word == "all" => Ok(Self::All(AllChannels::All)),
            Ok(Given::Languages(languages)) => Ok(Self::Languages(languages)),
            _ => Err(serde::de::Error::custom(
                "recording.channels must be \"all\" or a list of the event's language codes, like [\"en\", \"fr\"]",
            )),
        }
    }
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllChannels {
    /// Every channel.
    All,
}

impl RecordingRequest {
    /// The channels, as stored.
    pub(crate) fn channels(&self) -> crate::store::recordings::RecordedChannels {
        use crate::store::recordings::RecordedChannels;
        match &self.channels {
            ChannelChoice::All(_) => RecordedChannels::All,
            ChannelChoice::Languages(languages) => RecordedChannels::Only(languages.clone()),
        }
    }
}

fn default_floor() -> FloorRequest {
    FloorRequest::Whip
}

/// `PATCH /api/v1/events/{id}`: any of these.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventChange {
    /// A new title, 1 to 200 characters; absent: unchanged.
    pub title: Option<String>,
    /// New interpretation languages; refused while the event has live sessions.
    pub languages: Option<Vec<Language>>,
    /// A new start; capacity is checked again over the new window.
    pub starts_at: Option<DateTime<Utc>>,
    /// A new end, after the start; capacity is checked again over the new window.
    pub ends_at: Option<DateTime<Utc>>,
    /// A new number of listeners to reserve capacity for (1 to 1,000,000).
    pub expected_listeners: Option<u32>,
    /// Which channels are recorded (a running recording takes them at its next part); to stop
    /// or start recording, use `POST /api/v1/events/{id}/recording`.
    pub recording: Option<RecordingRequest>,
}

/// Events happen between these years (far from chrono's limits, where date arithmetic panics).
const FIRST_YEAR: i32 = 2000;
const LAST_YEAR: i32 = 9999;

/// Check that the recorded channels are channels of the event.
pub(crate) fn check_recorded(
    recording: &RecordingRequest,
    floor: &Language,
    languages: &[Language],
) -> Result<(), EventError> {
    if let ChannelChoice::Languages(recorded) = &recording.channels {
        if recorded.is_empty() {
            return Err(EventError::NothingRecorded);
        }
        if let Some(missing) = recorded.iter().find(|l| *l != floor && !languages.contains(l)) {
            let channels =
                std::iter::once(floor).chain(languages).map(Language::as_str).collect::<Vec<_>>().join(", ");
            return Err(EventError::RecordedChannel { language: missing.clone(), channels });
        }
    }
    Ok(())
}

/// Check a request; returns its interpretation languages in order.
pub(crate) fn validate(request: &NewEvent) -> Result<Vec<Language>, EventError> {
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(EventError::Title);
    }
    let sane = |t: &DateTime<Utc>| (FIRST_YEAR..=LAST_YEAR).contains(&t.year());
    if !sane(&request.starts_at) || !sane(&request.ends_at) {
        return Err(EventError::DateOutOfRange { starts_at: request.starts_at, ends_at: request.ends_at });
    }
    if request.ends_at <= request.starts_at {
        return Err(EventError::EndsBeforeStart { starts_at: request.starts_at, ends_at: request.ends_at });
    }
    if request.expected_listeners == 0 || request.expected_listeners > 1_000_000 {
        return Err(EventError::ExpectedListeners);
    }
    if let Some(db) = request.floor_under_interpretation_db
        && !(-60.0..=0.0).contains(&db)
    {
        return Err(EventError::FloorLevel(db));
    }
    if let FloorRequest::Bbb { meeting_id } = &request.floor {
        let id = meeting_id.trim();
        if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
            return Err(EventError::MeetingId);
        }
    }
    if let FloorRequest::Rtp { allow } = &request.floor {
        SourceAllow::parse(allow)?;
    }
    if let FloorRequest::Peer { url, token } = &request.floor {
        peer_link(url)?;
        let token = token.trim();
        if token.len() < 16 || token.len() > 200 || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(EventError::PeerToken);
        }
    }
    if request.languages.len() > 64 {
        return Err(EventError::TooManyLanguages);
    }
    let mut languages: Vec<Language> = Vec::with_capacity(request.languages.len());
    for language in &request.languages {
        if language == &request.floor_language {
            return Err(EventError::FloorLanguageListed(language.clone()));
        }
        if languages.contains(language) {
            return Err(EventError::LanguageTwice(language.clone()));
        }
        languages.push(language.clone());
    }
    if let Some(recording) = &request.recording {
        check_recorded(recording, &request.floor_language, &languages)?;
    }
    Ok(languages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NewEvent {
        let starts_at = Utc::now();
        NewEvent {
            title: "Congress".into(),
            floor_language: Language::parse("en").unwrap(),
            languages: vec![Language::parse("fr").unwrap()],
            starts_at,
            ends_at: starts_at + chrono::Duration::hours(1),
            expected_listeners: 100,
            floor: FloorRequest::Whip,
            floor_under_interpretation_db: None,
            recording: None,
        }
    }

    #[test]
    fn a_sound_request_passes_and_each_rule_is_named_when_broken() {
        assert_eq!(validate(&request()).unwrap(), vec![Language::parse("fr").unwrap()]);
        let broken: Vec<(NewEvent, &str)> = vec![
            (NewEvent { title: " ".into(), ..request() }, "title"),
            (NewEvent { ends_at: request().starts_at, ..request() }, "ends_at"),
            (NewEvent { ends_at: DateTime::<Utc>::MAX_UTC, ..request() }, "between the years"),
            (
                NewEvent {
                    starts_at: DateTime::<Utc>::MIN_UTC,
                    ends_at: DateTime::<Utc>::MIN_UTC,
                    ..request()
                },
                "between the years",
            ),
            (NewEvent { expected_listeners: 0, ..request() }, "expected_listeners"),
            (
                NewEvent { floor_under_interpretation_db: Some(3.0), ..request() },
                "floor_under_interpretation_db",
            ),
            (NewEvent { floor: FloorRequest::Bbb { meeting_id: "a\nb".into() }, ..request() }, "meeting_id"),
            (NewEvent { languages: vec![Language::parse("en").unwrap()], ..request() }, "floor language"),
            (
                NewEvent {
                    languages: vec![Language::parse("fr").unwrap(), Language::parse("fr").unwrap()],
                    ..request()
                },
                "twice",
            ),
        ];
        for (request, word) in broken {
            let detail = validate(&request).unwrap_err().to_string();
            assert!(detail.contains(word), "'{detail}' should name {word}");
        }
    }

    #[test]
    fn a_request_reads_back_from_its_own_json() {
        let json = serde_json::to_string(&request()).unwrap();
        let back: NewEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.title, "Congress");
        assert_eq!(back.floor, FloorRequest::Whip);
    }
}
