//! Booths: booth links (issue, list, revoke), interpreters' media sessions, and the executor of
//! the [`desk`] — the pure booth rules of each event. An action is decided by the desk under its
//! event's lock; its [`Effects`](desk::Effects) are then carried out in order: media first (so
//! the switch happens now), then usage facts, then pushes to the booth pages.

pub(crate) mod desk;
pub(crate) mod sockets;
pub(crate) mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use dashmap::DashMap;
use tokio::sync::broadcast;
use tracing::info;

pub(crate) use views::{
    BoothEvent, BoothRecording, BoothState, ChannelState, ConsentChange, HandoverAsk, InterpreterView,
    Member, NewInterpreter, Partner, Speaker,
};

use crate::booths::desk::{BoothAction, BoothDesk, BoothPush, DeskError, Effects, Who};
use crate::events::LiveEvent;
use crate::ids::{EventId, InterpreterId, Language, SessionId, Token};
use crate::net::{Media, NetError};
use crate::recorder::Recorder;
use crate::store::interpreters::Interpreter;
use crate::store::usage_batch::UsageFact;
use crate::store::{Event, Store, StoreError, now_ms};

/// What can go wrong with booths.
#[derive(Debug, thiserror::Error)]
pub enum BoothError {
    /// The desk refused the action.
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error("name must be 1 to 100 characters")]
    NameLength,
    #[error("a booth link has one language, or two for an A/B booth (e.g. [\"fr\", \"en\"])")]
    LanguageCount,
    #[error("the two languages of an A/B booth must differ")]
    SameLanguages,
    #[error("'{language}' is not an interpretation language of this event (it has: {have})")]
    NotAnEventLanguage { language: Language, have: String },
    #[error("this booth link has no language")]
    NoLanguage,
    #[error("event {event} has no live booth link {id}")]
    NoBoothLink { event: EventId, id: InterpreterId },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
}

/// A booth link's name (trimmed) and languages, checked against the event: 1 to 100 characters,
/// one language or two different ones, each an interpretation language of the event.
fn check_link<'a>(event: &Event, request: &'a NewInterpreter) -> Result<&'a str, BoothError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(BoothError::NameLength);
    }
    if request.languages.is_empty() || request.languages.len() > 2 {
        return Err(BoothError::LanguageCount);
    }
    if request.languages.len() == 2 && request.languages[0] == request.languages[1] {
        return Err(BoothError::SameLanguages);
    }
    if let Some(language) = request.languages.iter().find(|l| !event.languages.contains(l)) {
        let have = event.languages.iter().map(Language::as_str).collect::<Vec<_>>().join(", ");
        return Err(BoothError::NotAnEventLanguage { language: language.clone(), have });
    }
    Ok(name)
}

/// One event's desk and the channel its pushes go out on.
struct Desk {
    desk: BoothDesk,
    pushes: broadcast::Sender<BoothPush>,
}

fn lock(desk: &Mutex<Desk>) -> MutexGuard<'_, Desk> {
    // A poisoned lock only means another request panicked mid-update; the desk stays usable.
    desk.lock().unwrap_or_else(|e| e.into_inner())
}

/// The booth page of a token: the token in the fragment, which browsers never send to a server
/// (so no access log, proxy or referrer ever sees it).
pub(crate) fn booth_url(public_url: &str, token: &Token) -> String {
    format!("{public_url}/booth#token={}", token.secret())
}

/// The booths of a node.
pub(crate) struct Booths {
    store: Store,
    recorder: Recorder,
    media: Arc<Media>,
    public_url: String,
    desks: DashMap<EventId, Arc<Mutex<Desk>>>,
    /// The booth sockets open now, one per interpreter.
    pub(crate) sockets: sockets::OpenSockets,
}

impl Booths {
    /// Booths over `store` and `media`, their usage facts to `recorder`; booth links start with
    /// `public_url`.
    pub(crate) fn new(store: Store, recorder: Recorder, media: Arc<Media>, public_url: String) -> Self {
        let sockets = sockets::OpenSockets::default();
        Self { store, recorder, media, public_url, desks: DashMap::new(), sockets }
    }

    /// The event's window closed: its desk is dropped; returns who was on air then.
    pub(crate) fn forget(&self, event: &EventId) -> Vec<InterpreterId> {
        let Some((_, desk)) = self.desks.remove(event) else { return Vec::new() };
        let desk = lock(&desk);
        desk.desk.on_air().map(|(_, seat)| seat.interpreter).collect()
    }

    /// Events with a desk.
    pub(crate) fn held(&self) -> usize {
        self.desks.len()
    }

    /// The desk of a live event, made on first use; it follows the event's channels.
    fn desk(&self, live: &LiveEvent) -> Arc<Mutex<Desk>> {
        let layout = &live.layout;
        let desk = self
            .desks
            .entry(layout.id.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Desk {
                    desk: BoothDesk::new(layout.clone()),
                    pushes: broadcast::channel(256).0,
                }))
            })
            .clone();
        lock(&desk).desk.set_layout(layout);
        desk
    }

    /// Issue a booth link for one language, or two (an A/B booth), of the event's interpretation
    /// languages.
    pub(crate) async fn issue(
        &self,
        event: &Event,
        request: NewInterpreter,
    ) -> Result<InterpreterView, BoothError> {
        let name = check_link(event, &request)?;
        let token = Token::generate();
        let interpreter = self
            .store
            .insert_interpreter(&event.id, name, &request.languages, &token, request.recording_consent)
            .await?;
        info!(event = %event.id, interpreter = %interpreter.id, "booth link issued");
        Ok(InterpreterView {
            id: interpreter.id,
            name: interpreter.name,
            languages: interpreter.languages,
            recording_consent: interpreter.recording_consent,
            booth_url: Some(booth_url(&self.public_url, &token)),
            token: Some(token.secret().to_owned()),
        })
    }

    /// Name a participant of the event's BBB meeting (`bbb_user`) as one of its interpreters. Named
    /// again, their booth link is replaced (the old one revoked) unless nothing changed.
    pub(crate) async fn name_in_meeting(
        &self,
        event: &Event,
        bbb_user: &str,
        request: NewInterpreter,
    ) -> Result<Interpreter, BoothError> {
        let name = check_link(event, &request)?;
        let named = self.store.bbb_interpreters(&event.id).await?;
        if let Some((was, _)) = named.iter().find(|(_, user)| user == bbb_user) {
            if was.name == name && was.languages == request.languages {
                return Ok(was.clone());
            }
            self.revoke(&event.id, was.id).await?;
        }
        let interpreter =
            self.store.insert_bbb_interpreter(&event.id, bbb_user, name, &request.languages).await?;
        info!(event = %event.id, interpreter = %interpreter.id, "interpreter named in the meeting");
        Ok(interpreter)
    }

    /// The interpreters named in the event's BBB meeting, with their BBB user ids.
    pub(crate) async fn named_in_meeting(
        &self,
        event: &EventId,
    ) -> Result<Vec<(Interpreter, String)>, BoothError> {
        Ok(self.store.bbb_interpreters(event).await?)
    }

    /// A named interpreter opens their booth: a fresh booth link (the previous one of theirs stops
    /// working, and a booth page still open on it is replaced like a second socket).
    pub(crate) async fn open_named(&self, interpreter: &Interpreter) -> Result<String, BoothError> {
        let token = Token::generate();
        if !self.store.renew_interpreter_token(interpreter.id, &token).await? {
            return Err(BoothError::NoBoothLink { event: interpreter.event.clone(), id: interpreter.id });
        }
        Ok(booth_url(&self.public_url, &token))
    }

    /// The live booth links of an event (without their tokens).
    pub(crate) async fn list(&self, event: &EventId) -> Result<Vec<InterpreterView>, BoothError> {
        Ok(self
            .store
            .interpreters(event)
            .await?
            .into_iter()
            .map(|i| InterpreterView {
                id: i.id,
                name: i.name,
                languages: i.languages,
                recording_consent: i.recording_consent,
                token: None,
                booth_url: None,
            })
            .collect())
    }

    /// Revoke a booth link: the token stops working (store), the session ends and a channel the
    /// interpreter voiced falls back to the floor.
    pub(crate) async fn revoke(&self, event: &EventId, id: InterpreterId) -> Result<(), BoothError> {
        if !self.store.revoke_interpreter(event, id).await? {
            return Err(BoothError::NoBoothLink { event: event.clone(), id });
        }
        if let Some(desk) = self.desks.get(event).map(|d| d.clone()) {
            let effects = lock(&desk).desk.revoke(id);
            self.apply(event, &desk, effects).await;
        }
        self.media.end_interpreter(event, id).await;
        info!(%event, interpreter = %id, "booth link revoked");
        Ok(())
    }

    /// Start an interpreter's media session (WHIP) with the input they chose last.
    pub(crate) async fn publish(
        &self,
        me: &Interpreter,
        live: &LiveEvent,
        offer: String,
    ) -> Result<(SessionId, String), BoothError> {
        let desk = self.desk(live);
        let listen_to = lock(&desk).desk.input_of(me.id);
        let booth = me.languages.first().cloned().ok_or(BoothError::NoLanguage)?;
        let (session, answer) =
            self.media.publish_booth(live.layout.clone(), me.id, listen_to, booth, offer).await?;
        let effects = lock(&desk).desk.connected(me.id, session.clone());
        self.apply(&me.event, &desk, effects).await;
        info!(event = %me.event, interpreter = %me.id, "booth connected");
        Ok((session, answer))
    }

    /// A media session ended (noted by a shard): an interpreter who drops leaves the air.
    pub(crate) async fn session_ended(
        &self,
        event: &EventId,
        interpreter: InterpreterId,
        session: &SessionId,
    ) {
        let Some(desk) = self.desks.get(event).map(|d| d.clone()) else { return };
        let effects = lock(&desk).desk.session_ended(interpreter, session);
        self.apply(event, &desk, effects).await;
    }

    /// Carry out one booth action for `me`.
    pub(crate) async fn act(
        &self,
        me: &Interpreter,
        live: &LiveEvent,
        action: BoothAction,
    ) -> Result<(), BoothError> {
        let desk = self.desk(live);
        let effects = lock(&desk).desk.act(me, action, Utc::now())?;
        if let Some((session, language)) = &effects.switch_input {
            self.media.switch(session, 0, language.clone()).await?;
        }
        if let Some(who) = effects.slow_down {
            let at = now_ms();
            self.recorder.record(UsageFact::SlowDown { event: me.event.clone(), interpreter: who, at });
        }
        self.apply(&me.event, &desk, effects).await;
        Ok(())
    }

    /// Media first (so the switch happens now), then usage facts, then pushes.
    async fn apply(&self, event: &EventId, desk: &Mutex<Desk>, effects: Effects) {
        for (language, on_air) in &effects.on_air {
            self.media.set_on_air(event, language, *on_air);
        }
        let at = now_ms();
        for (interpreter, language) in &effects.on_air_facts {
            let (event, interpreter, language) = (event.clone(), *interpreter, language.clone());
            self.recorder.record(UsageFact::OnAir { event, interpreter, language, at });
        }
        if let Some(h) = &effects.handover {
            let (event, language) = (event.clone(), h.language.clone());
            self.recorder.record(UsageFact::Handover { event, language, from: h.from, to: h.to, at });
        }
        let desk = lock(desk);
        for push in effects.pushes {
            let _ = desk.pushes.send(push);
        }
    }

    /// An interpreter's view of the booth; `listeners` per language from the media.
    pub(crate) async fn state(
        &self,
        me: &Interpreter,
        event: &Event,
        live: &LiveEvent,
        listeners: &HashMap<Language, usize>,
    ) -> Result<BoothState, BoothError> {
        let interpreters = self.store.interpreters(&me.event).await?;
        let desk = self.desk(live);
        let desk = lock(&desk);
        let desk = &desk.desk;
        let names: HashMap<InterpreterId, &str> =
            interpreters.iter().map(|i| (i.id, i.name.as_str())).collect();
        let name = |id: &InterpreterId| names.get(id).copied().unwrap_or("?").to_owned();
        let channel = |language: &Language| ChannelState {
            language: language.clone(),
            label: crate::languages::label(language),
            on_air: desk.on_air_in(language).map(|seat| Speaker {
                id: seat.interpreter,
                name: name(&seat.interpreter),
                muted: seat.muted,
            }),
            listeners: listeners.get(language).copied().unwrap_or(0),
        };
        let seat = desk.seat_of(me.id);
        let input = desk.input_of(me.id);
        Ok(BoothState {
            event: BoothEvent { id: event.id.clone(), title: event.title.clone() },
            me: Member { id: me.id, name: me.name.clone(), languages: me.languages.clone() },
            input: if input == event.floor_language { "floor".to_owned() } else { input.to_string() },
            muted: seat.as_ref().is_some_and(|(_, muted)| *muted),
            on_air: seat.map(|(l, _)| l),
            floor: channel(&event.floor_language),
            channels: event.languages.iter().map(channel).collect(),
            partners: interpreters
                .iter()
                .filter(|i| i.id != me.id && i.languages.iter().any(|l| me.languages.contains(l)))
                .map(|i| Partner {
                    id: i.id,
                    name: i.name.clone(),
                    languages: i.languages.clone(),
                    present: desk.is_present(i.id),
                    on_air: desk.seat_of(i.id).map(|(l, _)| l),
                })
                .collect(),
            handover_request: desk
                .request_for(me.id)
                .map(|from| HandoverAsk { from: Who { id: from, name: name(&from) } }),
            recording: BoothRecording {
                consent: interpreters
                    .iter()
                    .find(|i| i.id == me.id)
                    .map_or(me.recording_consent, |i| i.recording_consent),
                channels: Vec::new(),
            },
        })
    }

    /// Who is on air per language (interpreter id and whether muted).
    pub(crate) fn on_air_now(&self, event: &EventId) -> HashMap<Language, (InterpreterId, bool)> {
        let Some(desk) = self.desks.get(event).map(|d| d.clone()) else { return HashMap::new() };
        let desk = lock(&desk);
        desk.desk.on_air().map(|(l, s)| (l.clone(), (s.interpreter, s.muted))).collect()
    }

    /// Something about the event changed outside the desk (recording started or stopped, a
    /// consent given): each booth page fetches its state again.
    pub(crate) fn changed(&self, event: &EventId) {
        if let Some(desk) = self.desks.get(event).map(|d| d.clone()) {
            let _ = lock(&desk).pushes.send(BoothPush::State);
        }
    }

    /// Pushes of an event's booths, for a websocket.
    pub(crate) fn subscribe(&self, live: &LiveEvent) -> broadcast::Receiver<BoothPush> {
        lock(&self.desk(live)).pushes.subscribe()
    }
}
