//! Interpretation inside a BBB meeting, as the plugin asks for it: who the caller is (bbb-web
//! says, [`crate::bbb::session`]), the meeting's interpretation as that participant may see it,
//! and what moderators and named interpreters may do — start and stop it (an event with the
//! meeting as its floor, counted against capacity like any other), name participants as
//! interpreters, issue booth links for interpreters outside the meeting, open one's own booth.
//!
//! Rules: only participants of the meeting see its interpretation (the meeting comes from
//! bbb-web, never from the browser); only its moderators start, stop and name; only named
//! interpreters open a booth, and only their own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::app::{App, AppError, Channels};
use crate::auth::AuthError;
use crate::bbb::FloorStatus;
use crate::bbb::session::{Participant, SessionError};
use crate::booths::NewInterpreter;
use crate::events::{FloorRequest, NewEvent};
use crate::ids::{EventId, Language};
use crate::store::Event;

/// How long an interpretation started in a meeting reserves capacity at first; the meeting
/// watcher extends it while the meeting runs, and ends it when the meeting ends.
pub(crate) const MEETING_WINDOW: chrono::Duration = chrono::Duration::hours(4);

/// The meeting of a plugin call.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct MeetingRef {
    /// BBB's internal meeting id.
    pub id: String,
    /// The meeting id it was created with.
    pub external_id: String,
}

/// The participant making a plugin call, as BBB knows them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ParticipantView {
    /// BBB's internal user id.
    pub id: String,
    pub name: String,
    /// A moderator of the meeting: may start and stop interpretation and name interpreters.
    pub moderator: bool,
}

/// A participant named as an interpreter.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct NamedInterpreter {
    /// Their BBB user id.
    pub user_id: String,
    pub name: String,
    /// The languages they interpret into (two for an A/B booth).
    pub languages: Vec<Language>,
}

/// The interpretation of a meeting, as a participant may see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Interpretation {
    /// The Tolk event behind it.
    pub event: EventId,
    pub title: String,
    /// The language of the meeting itself.
    pub floor_language: Language,
    /// The interpretation languages.
    pub languages: Vec<Language>,
    /// The channels to pick from (the floor first), with who speaks on each.
    pub channels: Channels,
    /// Where to listen, relative to Tolk's root: POST a WHEP offer to this plus a language.
    pub whep: String,
    /// The languages this participant is named interpreter for (empty: none).
    pub my_languages: Vec<Language>,
    /// Moderators only: the interpreters named in the meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreters: Option<Vec<NamedInterpreter>>,
    /// Moderators only: listeners per channel now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<BTreeMap<Language, usize>>,
    /// Moderators only: where the meeting's audio (the floor) is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorStatus>,
}

/// `GET /api/v1/bbb/me`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct MeetingView {
    pub meeting: MeetingRef,
    pub user: ParticipantView,
    /// The meeting's interpretation, if one runs.
    pub interpretation: Option<Interpretation>,
}

/// `POST /api/v1/bbb/interpretation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartInterpretation {
    /// The language spoken in the meeting.
    pub floor_language: Language,
    /// The interpretation languages (at least one).
    pub languages: Vec<Language>,
    /// The listeners to reserve capacity for.
    pub expected_listeners: u32,
}

/// A booth to open: the booth page with a fresh token in its fragment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct BoothLink {
    pub url: String,
}

/// What the plugin flows refuse.
#[derive(Debug, thiserror::Error)]
pub enum MeetingError {
    #[error("only a moderator of this meeting can do that")]
    NotModerator,
    #[error("there is no interpretation in this meeting; a moderator can start one")]
    NoInterpretation,
    #[error("interpretation already runs in this meeting; stop it first to start it with other languages")]
    AlreadyRunning,
    #[error("you are not named as an interpreter in this meeting; a moderator can name you")]
    NotInterpreter,
    #[error("start interpretation with at least one interpretation language")]
    NoLanguages,
    #[error("'{0}' is not named as an interpreter in this meeting")]
    NotNamed(String),
    #[error("a BBB user id is 1 to 128 visible ASCII characters")]
    BadUserId,
}

impl App {
    /// Who a plugin call comes from: bbb-web is asked about the session token (and the BBB
    /// session cookie the browser sent along). Unknown tokens count as wrong tokens of `client`.
    pub(crate) async fn bbb_participant(
        &self,
        client: IpAddr,
        token: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<Participant, AppError> {
        let token = token.ok_or(AuthError::BbbSession(SessionError::NoToken))?;
        let sessions = self.sessions.as_ref().ok_or(AuthError::BbbSession(SessionError::NoServer))?;
        let check = async { sessions.participant(token, cookie).await.map_err(AuthError::BbbSession) };
        Ok(self.auth.guarded(client, check).await?)
    }

    /// The meeting's interpretation as `who` may see it.
    pub(crate) async fn meeting_view(&self, who: &Participant) -> Result<MeetingView, AppError> {
        let event = self.store.event_in_room(&who.meeting, Utc::now()).await?;
        let interpretation = match event {
            Some(event) => Some(self.interpretation(who, &event).await?),
            None => None,
        };
        Ok(MeetingView {
            meeting: MeetingRef { id: who.meeting.clone(), external_id: who.external_meeting.clone() },
            user: ParticipantView { id: who.user.clone(), name: who.name.clone(), moderator: who.moderator },
            interpretation,
        })
    }

    async fn interpretation(&self, who: &Participant, event: &Event) -> Result<Interpretation, AppError> {
        let named = self.booths.named_in_meeting(&event.id).await?;
        let my_languages = named
            .iter()
            .filter(|(_, user)| *user == who.user)
            .flat_map(|(i, _)| i.languages.iter().cloned())
            .collect();
        let (interpreters, listeners, floor) = if who.moderator {
            let live = self.live_view(event).await?;
            let listeners = live.channels.iter().map(|c| (c.language.clone(), c.listeners)).collect();
            let interpreters = named
                .into_iter()
                .map(|(i, user)| NamedInterpreter { user_id: user, name: i.name, languages: i.languages })
                .collect();
            (Some(interpreters), Some(listeners), live.floor.bbb)
        } else {
            (None, None, None)
        };
        Ok(Interpretation {
            event: event.id.clone(),
            title: event.title.clone(),
            floor_language: event.floor_language.clone(),
            languages: event.languages.clone(),
            channels: self.public_channels(&event.id).await?,
            whep: format!("whep/{}/", event.id),
            my_languages,
            interpreters,
            listeners,
            floor,
        })
    }

    /// The meeting's running interpretation, or 404.
    async fn running(&self, who: &Participant) -> Result<Event, AppError> {
        Ok(self.store.event_in_room(&who.meeting, Utc::now()).await?.ok_or(MeetingError::NoInterpretation)?)
    }

    /// A moderator starts interpretation: an event with the meeting as its floor, from now.
    pub(crate) async fn start_interpretation(
        &self,
        who: &Participant,
        request: StartInterpretation,
    ) -> Result<Interpretation, AppError> {
        moderator(who)?;
        if request.languages.is_empty() {
            return Err(MeetingError::NoLanguages.into());
        }
        let _starting = self.starting.lock().await;
        if self.store.event_in_room(&who.meeting, Utc::now()).await?.is_some() {
            return Err(MeetingError::AlreadyRunning.into());
        }
        let title = self.meeting_title(&who.external_meeting).await;
        let event = self.start_in_room(&who.meeting, &who.external_meeting, title, request).await?;
        info!(event = %event.id, meeting = %who.meeting, by = %who.user, "interpretation started in the meeting");
        self.interpretation(who, &event).await
    }

    /// An interpretation event for BBB meeting `room` (internal id; `meeting`: its API id).
    pub(crate) async fn start_in_room(
        &self,
        room: &str,
        meeting: &str,
        title: String,
        request: StartInterpretation,
    ) -> Result<Event, AppError> {
        let now = Utc::now();
        let new = NewEvent {
            title,
            floor_language: request.floor_language,
            languages: request.languages,
            // A second back: an event lasts at least a second, so one stopped in its first second
            // would otherwise run on until that second is over.
            starts_at: now - chrono::Duration::seconds(1),
            ends_at: now + MEETING_WINDOW,
            expected_listeners: request.expected_listeners,
            floor: FloorRequest::Bbb { meeting_id: meeting.to_owned() },
            floor_under_interpretation_db: None,
            recording: None,
        };
        let created = self.events.create_in_room(new, room).await?;
        self.take_bbb_origin(&created.view.id).await;
        Ok(self.events.event(&created.view.id).await?)
    }

    /// The meeting's name for the event's title (its id when BBB cannot say).
    async fn meeting_title(&self, meeting: &str) -> String {
        let name = match &self.floors_api {
            Some(api) => api.meeting_info(meeting).await.ok().flatten().map(|m| m.name),
            None => None,
        };
        let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| meeting.to_owned());
        name.chars().take(200).collect()
    }

    /// A moderator stops the meeting's interpretation: the event ends now.
    pub(crate) async fn stop_interpretation(&self, who: &Participant) -> Result<(), AppError> {
        moderator(who)?;
        let event = self.running(who).await?;
        self.events.end_now(&event.id).await?;
        info!(event = %event.id, meeting = %who.meeting, by = %who.user, "interpretation stopped in the meeting");
        Ok(())
    }

    /// A moderator names participant `user` as an interpreter.
    pub(crate) async fn name_interpreter(
        &self,
        who: &Participant,
        user: &str,
        request: NewInterpreter,
    ) -> Result<NamedInterpreter, AppError> {
        moderator(who)?;
        check_user_id(user)?;
        let event = self.running(who).await?;
        let named = self.booths.name_in_meeting(&event, user, request).await?;
        Ok(NamedInterpreter { user_id: user.to_owned(), name: named.name, languages: named.languages })
    }

    /// A moderator takes participant `user`'s booth away.
    pub(crate) async fn unname_interpreter(&self, who: &Participant, user: &str) -> Result<(), AppError> {
        moderator(who)?;
        let event = self.running(who).await?;
        let named = self.booths.named_in_meeting(&event.id).await?;
        let Some((interpreter, _)) = named.into_iter().find(|(_, u)| u == user) else {
            return Err(MeetingError::NotNamed(user.chars().take(64).collect()).into());
        };
        Ok(self.booths.revoke(&event.id, interpreter.id).await?)
    }

    /// A moderator issues a booth link for an interpreter outside the meeting.
    pub(crate) async fn external_booth_link(
        &self,
        who: &Participant,
        request: NewInterpreter,
    ) -> Result<BoothLink, AppError> {
        moderator(who)?;
        let event = self.running(who).await?;
        let issued = self.booths.issue(&event, request).await?;
        Ok(BoothLink { url: issued.booth_url.unwrap_or_default() })
    }

    /// A named interpreter opens their booth: a fresh booth link of their own.
    pub(crate) async fn open_my_booth(&self, who: &Participant) -> Result<BoothLink, AppError> {
        let event = self.running(who).await?;
        let named = self.booths.named_in_meeting(&event.id).await?;
        let (mine, _) =
            named.into_iter().find(|(_, user)| *user == who.user).ok_or(MeetingError::NotInterpreter)?;
        Ok(BoothLink { url: self.booths.open_named(&mine).await? })
    }
}

/// Only a moderator of the meeting may do this.
fn moderator(who: &Participant) -> Result<(), MeetingError> {
    if who.moderator { Ok(()) } else { Err(MeetingError::NotModerator) }
}

/// A BBB user id as the plugin names one: 1 to 128 visible ASCII characters.
fn check_user_id(user: &str) -> Result<(), MeetingError> {
    if user.is_empty() || user.len() > 128 || !user.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MeetingError::BadUserId);
    }
    Ok(())
}
