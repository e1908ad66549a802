//! Booth control: who is on air in which channel, who is present, what each interpreter listens
//! to, handover requests, booth chat and slow-down signals. This is the control plane behind
//! `POST /api/v1/booth/{action}` and the booth websocket; the media follows through
//! [`Media::set_on_air`](crate::net::Media::set_on_air) and [`Media::switch`](crate::net::Media::switch),
//! and every change is recorded as a usage fact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::app::{App, AppError};
use crate::ids::{EventId, InterpreterId, Language, SessionId};
use crate::media::router::OnAir;
use crate::store::interpreters::Interpreter;

/// An action sent by an interpreter (JSON body of `POST /api/v1/booth/{action}`, or a websocket
/// message with `"action"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BoothAction {
    OnAir { language: Language },
    OffAir {},
    Mute { muted: bool },
    Input { source: String },
    HandoverRequest {},
    HandoverAccept {},
    Chat { text: String },
    SlowDown {},
}

/// Who, as the booth page shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Who {
    pub id: InterpreterId,
    pub name: String,
}

/// What the booth pushes to connected pages.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BoothPush {
    /// Something changed: each page fetches its own view of the state.
    State,
    Chat {
        from: Who,
        languages: Vec<Language>,
        text: String,
        at: DateTime<Utc>,
    },
    HandoverRequest {
        to: InterpreterId,
        from: Who,
    },
    SlowDown {
        from: Who,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Seat {
    interpreter: InterpreterId,
    muted: bool,
}

/// The booth state of one event.
#[derive(Debug)]
struct EventBooths {
    on_air: HashMap<Language, Seat>,
    sessions: HashMap<InterpreterId, SessionId>,
    /// What each interpreter listens to: `None` is the floor, else a relay language.
    inputs: HashMap<InterpreterId, Language>,
    /// Handover asked of the on-air interpreter (key) by a partner (value).
    requests: HashMap<InterpreterId, InterpreterId>,
    pushes: broadcast::Sender<BoothPush>,
}

#[derive(Debug, Default)]
pub struct Booths {
    events: DashMap<EventId, Arc<Mutex<EventBooths>>>,
}

impl Booths {
    fn event(&self, id: &EventId) -> Arc<Mutex<EventBooths>> {
        self.events
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(EventBooths {
                    on_air: HashMap::new(),
                    sessions: HashMap::new(),
                    inputs: HashMap::new(),
                    requests: HashMap::new(),
                    pushes: broadcast::channel(256).0,
                }))
            })
            .clone()
    }

    /// Pushes of an event's booths, for a websocket.
    pub fn subscribe(&self, id: &EventId) -> broadcast::Receiver<BoothPush> {
        lock(&self.event(id)).pushes.subscribe()
    }

    /// Where an interpreter is on air, and whether muted.
    fn seat_of(state: &EventBooths, who: InterpreterId) -> Option<(Language, bool)> {
        state.on_air.iter().find(|(_, s)| s.interpreter == who).map(|(l, s)| (l.clone(), s.muted))
    }
}

fn lock(state: &Mutex<EventBooths>) -> MutexGuard<'_, EventBooths> {
    // A poisoned lock only means another request panicked mid-update; the maps stay usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Media and store work decided under the lock, carried out after it.
#[derive(Default)]
struct Effects {
    on_air: Vec<(Language, Option<OnAir>)>,
    on_air_facts: Vec<(InterpreterId, Option<Language>)>,
    handover: Option<(Language, InterpreterId, InterpreterId)>,
    pushes: Vec<BoothPush>,
}

/// An interpreter's view of the booth (`GET /api/v1/booth/state`).
#[derive(Debug, Clone, Serialize)]
pub struct BoothState {
    pub event: EventSummary,
    pub me: BoothMember,
    pub input: String,
    pub muted: bool,
    pub on_air: Option<Language>,
    pub floor: ChannelState,
    pub channels: Vec<ChannelState>,
    pub partners: Vec<Partner>,
    pub handover_request: Option<HandoverRequest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub id: EventId,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BoothMember {
    pub id: InterpreterId,
    pub name: String,
    pub languages: Vec<Language>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelState {
    pub language: Language,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_air: Option<OnAirView>,
    pub listeners: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct OnAirView {
    pub id: InterpreterId,
    pub name: String,
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Partner {
    pub id: InterpreterId,
    pub name: String,
    pub languages: Vec<Language>,
    pub present: bool,
    pub on_air: Option<Language>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandoverRequest {
    pub from: Who,
}

fn who(i: &Interpreter) -> Who {
    Who { id: i.id, name: i.name.clone() }
}

fn shares_language(a: &[Language], b: &[Language]) -> bool {
    a.iter().any(|l| b.contains(l))
}

impl App {
    /// The interpreter holding `token` (401 when unknown or revoked).
    pub async fn interpreter(&self, token: Option<&str>) -> Result<Interpreter, AppError> {
        let token = token.ok_or_else(|| {
            AppError::Unauthorized(
                "the booth needs 'Authorization: Bearer <booth token>' (the token of your booth link)".into(),
            )
        })?;
        self.store.interpreter_by_token(&crate::ids::Token::from_secret(token)).await?.ok_or_else(|| {
            AppError::Unauthorized(
                "this booth link is not valid (revoked, or its event was cancelled)".into(),
            )
        })
    }

    /// The language an interpreter's partner track follows: their first language.
    fn booth_language(me: &Interpreter) -> Result<Language, AppError> {
        me.languages
            .first()
            .cloned()
            .ok_or_else(|| AppError::Invalid("this booth link has no language".into()))
    }

    /// Start an interpreter's media session (WHIP) with the input they chose last.
    pub async fn publish_booth(
        &self,
        me: &Interpreter,
        offer: String,
    ) -> Result<(SessionId, String), AppError> {
        let layout = self.layout(&me.event).await?;
        self.check_window(&layout)?;
        let listen_to = {
            let state = self.booths.event(&me.event);
            let state = lock(&state);
            state.inputs.get(&me.id).cloned().unwrap_or_else(|| layout.floor.clone())
        };
        let (session, answer) = self
            .media
            .publish_booth(layout.layout.clone(), me.id, listen_to, Self::booth_language(me)?, offer)
            .await?;
        let state = self.booths.event(&me.event);
        let mut state = lock(&state);
        state.sessions.insert(me.id, session.clone());
        let _ = state.pushes.send(BoothPush::State);
        info!(event = %me.event, interpreter = %me.id, "booth connected");
        Ok((session, answer))
    }

    /// A media session ended (noted by a shard): an interpreter who drops leaves the air, so the
    /// channel falls back to the floor.
    pub(crate) async fn booth_session_ended(
        &self,
        event: &EventId,
        interpreter: InterpreterId,
        session: &SessionId,
    ) {
        let effects = {
            let state = self.booths.event(event);
            let mut state = lock(&state);
            if state.sessions.get(&interpreter) != Some(session) {
                return; // replaced by a newer session
            }
            state.sessions.remove(&interpreter);
            let mut effects = Effects::default();
            if let Some((language, _)) = Booths::seat_of(&state, interpreter) {
                state.on_air.remove(&language);
                effects.on_air.push((language, None));
                effects.on_air_facts.push((interpreter, None));
            }
            effects.pushes.push(BoothPush::State);
            effects
        };
        self.apply(event, effects).await;
    }

    /// Revoke a booth link: the token stops working (store), the session ends and a channel the
    /// interpreter voiced falls back to the floor.
    pub async fn revoke_interpreter(&self, event: &EventId, id: InterpreterId) -> Result<(), AppError> {
        if !self.store.revoke_interpreter(event, id).await? {
            return Err(AppError::NotFound(format!("event {event} has no live booth link {id}")));
        }
        let effects = {
            let state = self.booths.event(event);
            let mut state = lock(&state);
            let mut effects = Effects::default();
            if let Some((language, _)) = Booths::seat_of(&state, id) {
                state.on_air.remove(&language);
                effects.on_air.push((language, None));
                effects.on_air_facts.push((id, None));
            }
            state.sessions.remove(&id);
            state.requests.retain(|k, v| *k != id && *v != id);
            effects.pushes.push(BoothPush::State);
            effects
        };
        self.apply(event, effects).await;
        self.media.end_interpreter(event, id).await;
        info!(%event, interpreter = %id, "booth link revoked");
        Ok(())
    }

    /// Carry out one booth action for `me`.
    pub async fn booth_action(&self, me: &Interpreter, action: BoothAction) -> Result<(), AppError> {
        let layout = self.layout(&me.event).await?;
        let mut switch_input = None;
        let effects = {
            let state = self.booths.event(&me.event);
            let mut state = lock(&state);
            let mut effects = Effects::default();
            match action {
                BoothAction::OnAir { language } => {
                    if !me.languages.contains(&language) {
                        let mine =
                            me.languages.iter().map(Language::as_str).collect::<Vec<_>>().join(" and ");
                        return Err(AppError::Forbidden(format!(
                            "you interpret into {mine}, not {language}"
                        )));
                    }
                    take_air(&mut state, &mut effects, me.id, &language);
                }
                BoothAction::OffAir {} => {
                    if let Some((language, _)) = Booths::seat_of(&state, me.id) {
                        state.on_air.remove(&language);
                        effects.on_air.push((language, None));
                        effects.on_air_facts.push((me.id, None));
                    }
                }
                BoothAction::Mute { muted } => {
                    if let Some((language, _)) = Booths::seat_of(&state, me.id) {
                        state.on_air.insert(language.clone(), Seat { interpreter: me.id, muted });
                        effects.on_air.push((language, Some(OnAir { interpreter: me.id, muted })));
                    }
                }
                BoothAction::Input { source } => {
                    let language = if source == "floor" {
                        layout.floor.clone()
                    } else {
                        let language =
                            Language::parse(&source).map_err(|e| AppError::Invalid(e.to_string()))?;
                        self.check_channel(&layout, &language)?;
                        language
                    };
                    state.inputs.insert(me.id, language.clone());
                    switch_input = state.sessions.get(&me.id).cloned().map(|s| (s, language));
                }
                BoothAction::HandoverRequest {} => {
                    let holder = me
                        .languages
                        .iter()
                        .filter_map(|l| state.on_air.get(l))
                        .find(|seat| seat.interpreter != me.id)
                        .map(|seat| seat.interpreter)
                        .ok_or_else(|| {
                            AppError::Conflict(
                                "nobody else is on air in your languages: take the air directly".into(),
                            )
                        })?;
                    state.requests.insert(holder, me.id);
                    effects.pushes.push(BoothPush::HandoverRequest { to: holder, from: who(me) });
                }
                BoothAction::HandoverAccept {} => {
                    let (language, _) = Booths::seat_of(&state, me.id).ok_or_else(|| {
                        AppError::Conflict("you are not on air, so there is nothing to hand over".into())
                    })?;
                    let to = state
                        .requests
                        .remove(&me.id)
                        .ok_or_else(|| AppError::Conflict("no partner has asked to take over".into()))?;
                    take_air(&mut state, &mut effects, to, &language);
                }
                BoothAction::Chat { text } => {
                    let text = text.trim();
                    if text.is_empty() || text.chars().count() > 500 {
                        return Err(AppError::Invalid("a chat message has 1 to 500 characters".into()));
                    }
                    effects.pushes.push(BoothPush::Chat {
                        from: who(me),
                        languages: me.languages.clone(),
                        text: text.to_owned(),
                        at: Utc::now(),
                    });
                }
                BoothAction::SlowDown {} => {
                    effects.pushes.push(BoothPush::SlowDown { from: who(me), at: Utc::now() });
                }
            }
            if !matches!(effects.pushes.first(), Some(BoothPush::Chat { .. } | BoothPush::SlowDown { .. })) {
                effects.pushes.push(BoothPush::State);
            }
            effects
        };
        if let Some((session, language)) = switch_input {
            self.media.switch(&session, 0, language).await?;
        }
        if effects.pushes.iter().any(|p| matches!(p, BoothPush::SlowDown { .. })) {
            self.store.record_slow_down(&me.event, me.id).await?;
        }
        self.apply(&me.event, effects).await;
        Ok(())
    }

    /// Media first (so the switch happens now), then usage facts, then pushes.
    async fn apply(&self, event: &EventId, effects: Effects) {
        for (language, on_air) in &effects.on_air {
            self.media.set_on_air(event, language, *on_air);
        }
        for (interpreter, language) in &effects.on_air_facts {
            if let Err(e) = self.store.record_on_air(event, *interpreter, language.as_ref()).await {
                warn!(error = %e, "could not record an on-air interval");
            }
        }
        if let Some((language, from, to)) = &effects.handover
            && let Err(e) = self.store.record_handover(event, language, *from, *to).await
        {
            warn!(error = %e, "could not record a handover");
        }
        let state = self.booths.event(event);
        let state = lock(&state);
        for push in effects.pushes {
            let _ = state.pushes.send(push);
        }
    }

    /// An interpreter's view of the booth.
    pub async fn booth_state(&self, me: &Interpreter) -> Result<BoothState, AppError> {
        let event = self.event(&me.event).await?;
        let interpreters = self.store.interpreters(&me.event).await?;
        let listeners = self.listeners(&me.event).await;
        let state = self.booths.event(&me.event);
        let state = lock(&state);
        let names: HashMap<InterpreterId, &str> =
            interpreters.iter().map(|i| (i.id, i.name.as_str())).collect();
        let channel = |language: &Language| ChannelState {
            language: language.clone(),
            label: crate::languages::label(language),
            on_air: state.on_air.get(language).map(|seat| OnAirView {
                id: seat.interpreter,
                name: names.get(&seat.interpreter).copied().unwrap_or("?").to_owned(),
                muted: seat.muted,
            }),
            listeners: listeners.get(language).copied().unwrap_or(0),
        };
        let seat = Booths::seat_of(&state, me.id);
        let input = match state.inputs.get(&me.id) {
            Some(l) if l != &event.floor_language => l.to_string(),
            _ => "floor".to_owned(),
        };
        let handover_request = state.requests.get(&me.id).map(|from| HandoverRequest {
            from: Who { id: *from, name: names.get(from).copied().unwrap_or("?").to_owned() },
        });
        Ok(BoothState {
            event: EventSummary { id: event.id.clone(), title: event.title.clone() },
            me: BoothMember { id: me.id, name: me.name.clone(), languages: me.languages.clone() },
            input,
            muted: seat.as_ref().is_some_and(|(_, muted)| *muted),
            on_air: seat.map(|(l, _)| l),
            floor: channel(&event.floor_language),
            channels: event.languages.iter().map(channel).collect(),
            partners: interpreters
                .iter()
                .filter(|i| i.id != me.id && shares_language(&i.languages, &me.languages))
                .map(|i| Partner {
                    id: i.id,
                    name: i.name.clone(),
                    languages: i.languages.clone(),
                    present: state.sessions.contains_key(&i.id),
                    on_air: Booths::seat_of(&state, i.id).map(|(l, _)| l),
                })
                .collect(),
            handover_request,
        })
    }

    /// Whether a push concerns `me` (chat and handover requests go to the booth, not the event).
    pub fn push_is_for(push: &BoothPush, me: &Interpreter) -> bool {
        match push {
            BoothPush::State => true,
            BoothPush::Chat { languages, .. } => shares_language(languages, &me.languages),
            BoothPush::HandoverRequest { to, .. } => *to == me.id,
            BoothPush::SlowDown { .. } => false,
        }
    }

    /// Who is on air per language (interpreter id and whether muted), for the listener page.
    pub fn on_air_now(&self, event: &EventId) -> HashMap<Language, (InterpreterId, bool)> {
        let state = self.booths.event(event);
        let state = lock(&state);
        state.on_air.iter().map(|(l, s)| (l.clone(), (s.interpreter, s.muted))).collect()
    }

    pub fn booth_pushes(&self, event: &EventId) -> broadcast::Receiver<BoothPush> {
        self.booths.subscribe(event)
    }
}

/// `who` takes the air in `language`: from a partner (a handover), from nobody, or moving from
/// their other language (A/B booth).
fn take_air(state: &mut EventBooths, effects: &mut Effects, who: InterpreterId, language: &Language) {
    if let Some((current, _)) = Booths::seat_of(state, who) {
        if &current == language {
            return;
        }
        state.on_air.remove(&current);
        effects.on_air.push((current, None));
    }
    if let Some(previous) = state.on_air.get(language).map(|s| s.interpreter) {
        effects.on_air_facts.push((previous, None));
        effects.handover = Some((language.clone(), previous, who));
        state.requests.remove(&previous);
    }
    state.on_air.insert(language.clone(), Seat { interpreter: who, muted: false });
    effects.on_air.push((language.clone(), Some(OnAir { interpreter: who, muted: false })));
    effects.on_air_facts.push((who, Some(language.clone())));
}
