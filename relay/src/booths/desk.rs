//! The booth desk of one event: the booth rules as a pure state machine. Who is on air in which
//! channel (one interpreter per channel), handover on request or by taking the air, cough (on air
//! and muted), what each interpreter listens to (the floor or a relay language), who is present.
//! No IO and no clock: an action comes in with the time, and the [`Effects`] say what the media,
//! the usage store and the booth pages must be told. [`super::Booths`] carries them out.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, InterpreterId, Language, SessionId};
use crate::media::router::OnAir;
use crate::net::EventLayout;
use crate::store::interpreters::Interpreter;

/// An action sent by an interpreter (JSON body of `POST /api/v1/booth/{action}`, or a websocket
/// message with `"action"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BoothAction {
    /// Take the air in one of my languages (from a partner: a handover without asking).
    OnAir {
        /// The language to go on air in: one of my booth link's languages.
        language: Language,
    },
    /// Leave the air: the channel carries the floor.
    OffAir {},
    /// Cough: on air and muted gives silence, never the floor.
    Mute {
        /// True to mute, false to speak again; while off air it changes nothing.
        muted: bool,
    },
    /// What I listen to: `"floor"`, or a language channel of the event (relay).
    Input {
        /// `"floor"`, or the language of one of the event's channels, e.g. `"de"`.
        source: String,
    },
    /// Ask my partner on air to hand over.
    HandoverRequest {},
    /// Hand the air to the partner who asked.
    HandoverAccept {},
    /// A message to my booth (interpreters sharing a language).
    Chat {
        /// The message, 1 to 500 characters once trimmed.
        text: String,
    },
    /// Ask the floor to slow down (shown to the organiser).
    SlowDown {},
}

/// Who, as the booth page shows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Who {
    /// The interpreter's booth link id.
    pub id: InterpreterId,
    /// The interpreter's name, as on their booth link.
    pub name: String,
}

impl Who {
    fn of(i: &Interpreter) -> Self {
        Who { id: i.id, name: i.name.clone() }
    }
}

/// What the booth pushes to connected pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum BoothPush {
    /// Something changed: each page fetches its own view of the state.
    State,
    /// A chat message to the interpreters of `languages`.
    Chat { from: Who, languages: Vec<Language>, text: String, at: DateTime<Utc> },
    /// `from` asks `to` (on air) to hand over.
    HandoverRequest { to: InterpreterId, from: Who },
    /// `from` asked the floor to slow down.
    SlowDown { from: Who, at: DateTime<Utc> },
}

impl BoothPush {
    /// Whether this push concerns `me` (chat and handover requests go to the booth, not the event).
    pub(crate) fn is_for(&self, me: &Interpreter) -> bool {
        match self {
            BoothPush::State => true,
            BoothPush::Chat { languages, .. } => shares_language(languages, &me.languages),
            BoothPush::HandoverRequest { to, .. } => *to == me.id,
            BoothPush::SlowDown { .. } => false,
        }
    }
}

/// Why an action is refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeskError {
    /// Taking the air in a language not on the booth link.
    #[error("you interpret into {mine}, not {asked}")]
    NotYourLanguage { mine: String, asked: Language },
    /// Asking for a handover with nobody else on air in my languages.
    #[error("nobody else is on air in your languages: take the air directly")]
    NobodyToAsk,
    /// Handing over while not on air.
    #[error("you are not on air, so there is nothing to hand over")]
    NotOnAir,
    /// Handing over with no request.
    #[error("no partner has asked to take over")]
    NoRequest,
    /// A chat message that is empty or too long.
    #[error("a chat message has 1 to 500 characters")]
    ChatLength,
    /// An input that is not a language code.
    #[error("{0}")]
    BadInput(String),
    /// An input language the event does not have.
    #[error("event {event} has no '{language}' channel; its channels are {channels}")]
    NoChannel { event: EventId, language: Language, channels: String },
}

/// A seat on air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seat {
    pub interpreter: InterpreterId,
    pub muted: bool,
}

/// A handover: in `language`, `from` left the air to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handover {
    pub language: Language,
    pub from: InterpreterId,
    pub to: InterpreterId,
}

/// What an action asks of the world, in the order [`super::Booths`] carries it out.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Effects {
    /// Media: who is on air per channel now (None: nobody, the floor).
    pub on_air: Vec<(Language, Option<OnAir>)>,
    /// Media: an interpreter's session now listens to this channel.
    pub switch_input: Option<(SessionId, Language)>,
    /// Usage: on-air intervals start (Some) or end (None).
    pub on_air_facts: Vec<(InterpreterId, Option<Language>)>,
    pub handover: Option<Handover>,
    /// Usage: a slow-down signal by this interpreter.
    pub slow_down: Option<InterpreterId>,
    /// Booth pages.
    pub pushes: Vec<BoothPush>,
}

/// The booth state of one event.
#[derive(Debug)]
pub(crate) struct BoothDesk {
    /// The event's channels (an input must be one of them).
    layout: Arc<EventLayout>,
    on_air: HashMap<Language, Seat>,
    /// Interpreters with a media session, and which.
    sessions: HashMap<InterpreterId, SessionId>,
    /// What an interpreter listens to, when not the floor.
    inputs: HashMap<InterpreterId, Language>,
    /// Handover asked of the on-air interpreter (key) by a partner (value).
    requests: HashMap<InterpreterId, InterpreterId>,
}

fn shares_language(a: &[Language], b: &[Language]) -> bool {
    a.iter().any(|l| b.contains(l))
}

impl BoothDesk {
    /// An empty desk for an event with these channels.
    pub(crate) fn new(layout: Arc<EventLayout>) -> Self {
        Self {
            layout,
            on_air: HashMap::new(),
            sessions: HashMap::new(),
            inputs: HashMap::new(),
            requests: HashMap::new(),
        }
    }

    /// The event's channels changed (only while nobody is connected to it).
    pub(crate) fn set_layout(&mut self, layout: &Arc<EventLayout>) {
        if !Arc::ptr_eq(&self.layout, layout) {
            self.layout = layout.clone();
        }
    }

    /// Carry out one action of `me` at `now`.
    pub(crate) fn act(
        &mut self,
        me: &Interpreter,
        action: BoothAction,
        now: DateTime<Utc>,
    ) -> Result<Effects, DeskError> {
        let mut effects = Effects::default();
        match action {
            BoothAction::OnAir { language } => {
                if !me.languages.contains(&language) {
                    let mine = me.languages.iter().map(Language::as_str).collect::<Vec<_>>().join(" and ");
                    return Err(DeskError::NotYourLanguage { mine, asked: language });
                }
                self.take_air(&mut effects, me.id, &language);
            }
            BoothAction::OffAir {} => self.leave_air(&mut effects, me.id),
            BoothAction::Mute { muted } => {
                if let Some((language, _)) = self.seat_of(me.id) {
                    self.on_air.insert(language.clone(), Seat { interpreter: me.id, muted });
                    effects.on_air.push((language, Some(OnAir { interpreter: me.id, muted })));
                }
            }
            BoothAction::Input { source } => {
                let language = self.input_language(&source)?;
                effects.switch_input = self.sessions.get(&me.id).cloned().map(|s| (s, language.clone()));
                self.inputs.insert(me.id, language);
            }
            BoothAction::HandoverRequest {} => {
                let holder = me
                    .languages
                    .iter()
                    .filter_map(|l| self.on_air.get(l))
                    .find(|seat| seat.interpreter != me.id)
                    .map(|seat| seat.interpreter)
                    .ok_or(DeskError::NobodyToAsk)?;
                self.requests.insert(holder, me.id);
                effects.pushes.push(BoothPush::HandoverRequest { to: holder, from: Who::of(me) });
            }
            BoothAction::HandoverAccept {} => {
                let (language, _) = self.seat_of(me.id).ok_or(DeskError::NotOnAir)?;
                let to = self.requests.remove(&me.id).ok_or(DeskError::NoRequest)?;
                self.take_air(&mut effects, to, &language);
            }
            BoothAction::Chat { text } => {
                let text = text.trim();
                if text.is_empty() || text.chars().count() > 500 {
                    return Err(DeskError::ChatLength);
                }
                effects.pushes.push(BoothPush::Chat {
                    from: Who::of(me),
                    languages: me.languages.clone(),
                    text: text.to_owned(),
                    at: now,
                });
                return Ok(effects);
            }
            BoothAction::SlowDown {} => {
                effects.slow_down = Some(me.id);
                effects.pushes.push(BoothPush::SlowDown { from: Who::of(me), at: now });
                return Ok(effects);
            }
        }
        effects.pushes.push(BoothPush::State);
        Ok(effects)
    }

    /// An interpreter's media session started (a newer one replaces an older one).
    pub(crate) fn connected(&mut self, who: InterpreterId, session: SessionId) -> Effects {
        self.sessions.insert(who, session);
        Effects { pushes: vec![BoothPush::State], ..Effects::default() }
    }

    /// A media session ended: an interpreter who drops leaves the air, so the channel falls back
    /// to the floor. A session already replaced by a newer one changes nothing.
    pub(crate) fn session_ended(&mut self, who: InterpreterId, session: &SessionId) -> Effects {
        if self.sessions.get(&who) != Some(session) {
            return Effects::default();
        }
        self.sessions.remove(&who);
        let mut effects = Effects::default();
        self.leave_air(&mut effects, who);
        effects.pushes.push(BoothPush::State);
        effects
    }

    /// A booth link was revoked: off the air, no session, no pending handover.
    pub(crate) fn revoke(&mut self, who: InterpreterId) -> Effects {
        let mut effects = Effects::default();
        self.leave_air(&mut effects, who);
        self.sessions.remove(&who);
        self.inputs.remove(&who);
        self.requests.retain(|k, v| *k != who && *v != who);
        effects.pushes.push(BoothPush::State);
        effects
    }

    /// What `who` listens to: the floor unless they chose a relay language.
    pub(crate) fn input_of(&self, who: InterpreterId) -> Language {
        self.inputs.get(&who).cloned().unwrap_or_else(|| self.layout.floor.clone())
    }

    /// Where `who` is on air, and whether muted.
    pub(crate) fn seat_of(&self, who: InterpreterId) -> Option<(Language, bool)> {
        self.on_air.iter().find(|(_, s)| s.interpreter == who).map(|(l, s)| (l.clone(), s.muted))
    }

    /// Who is on air in `language`.
    pub(crate) fn on_air_in(&self, language: &Language) -> Option<Seat> {
        self.on_air.get(language).copied()
    }

    /// Who is on air, per language.
    pub(crate) fn on_air(&self) -> impl Iterator<Item = (&Language, &Seat)> {
        self.on_air.iter()
    }

    /// Who asked `who` for a handover.
    pub(crate) fn request_for(&self, who: InterpreterId) -> Option<InterpreterId> {
        self.requests.get(&who).copied()
    }

    /// Whether `who` has a media session.
    pub(crate) fn is_present(&self, who: InterpreterId) -> bool {
        self.sessions.contains_key(&who)
    }

    /// The language an input names: `"floor"` or one of the event's channels.
    fn input_language(&self, source: &str) -> Result<Language, DeskError> {
        if source == "floor" {
            return Ok(self.layout.floor.clone());
        }
        let language = Language::parse(source).map_err(|e| DeskError::BadInput(e.to_string()))?;
        if self.layout.has_channel(&language) {
            return Ok(language);
        }
        let (event, channels) = (self.layout.id.clone(), self.layout.channel_list());
        Err(DeskError::NoChannel { event, language, channels })
    }

    /// `who` leaves the air, if on it.
    fn leave_air(&mut self, effects: &mut Effects, who: InterpreterId) {
        if let Some((language, _)) = self.seat_of(who) {
            self.on_air.remove(&language);
            effects.on_air.push((language, None));
            effects.on_air_facts.push((who, None));
        }
    }

    /// `who` takes the air in `language`: from a partner (a handover), from nobody, or moving
    /// from their other language (A/B booth).
    fn take_air(&mut self, effects: &mut Effects, who: InterpreterId, language: &Language) {
        if let Some((current, _)) = self.seat_of(who) {
            if &current == language {
                return;
            }
            self.on_air.remove(&current);
            effects.on_air.push((current, None));
        }
        if let Some(previous) = self.on_air.get(language).map(|s| s.interpreter) {
            effects.on_air_facts.push((previous, None));
            effects.handover = Some(Handover { language: language.clone(), from: previous, to: who });
            self.requests.remove(&previous);
        }
        self.on_air.insert(language.clone(), Seat { interpreter: who, muted: false });
        effects.on_air.push((language.clone(), Some(OnAir { interpreter: who, muted: false })));
        effects.on_air_facts.push((who, Some(language.clone())));
    }
}

#[cfg(test)]
mod tests {
    //! The booth rules on simulated time, with no media and no store.

    use super::*;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    fn interpreter(id: i64, name: &str, languages: &[&str]) -> Interpreter {
        Interpreter {
            id: InterpreterId(id),
            event: EventId::parse("desk").unwrap(),
            name: name.into(),
            languages: languages.iter().map(|l| lang(l)).collect(),
            recording_consent: false,
        }
    }

    fn desk() -> BoothDesk {
        BoothDesk::new(Arc::new(EventLayout {
            id: EventId::parse("desk").unwrap(),
            floor: lang("en"),
            languages: vec![lang("fr"), lang("de")],
            rtp_allow: Default::default(),
            mix: None,
            cascaded: false,
            relayed: false,
        }))
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn on(id: i64, muted: bool) -> Option<OnAir> {
        Some(OnAir { interpreter: InterpreterId(id), muted })
    }

    fn take(language: &str) -> BoothAction {
        BoothAction::OnAir { language: lang(language) }
    }

    #[test]
    fn taking_the_air_puts_the_voice_on_the_channel_and_starts_an_interval() {
        let mut desk = desk();
        let ana = interpreter(1, "Ana", &["fr"]);
        let fx = desk.act(&ana, take("fr"), t0()).unwrap();
        assert_eq!(fx.on_air, vec![(lang("fr"), on(1, false))]);
        assert_eq!(fx.on_air_facts, vec![(InterpreterId(1), Some(lang("fr")))]);
        assert_eq!(fx.handover, None);
        assert_eq!(fx.pushes, vec![BoothPush::State]);
        assert_eq!(desk.seat_of(InterpreterId(1)), Some((lang("fr"), false)));
        // Again: nothing changes on the media.
        let again = desk.act(&ana, take("fr"), t0()).unwrap();
        assert!(again.on_air.is_empty() && again.on_air_facts.is_empty());
    }

    #[test]
    fn a_language_not_on_the_link_is_refused_and_changes_nothing() {
        let mut desk = desk();
        let ana = interpreter(1, "Ana", &["fr"]);
        let err = desk.act(&ana, take("de"), t0()).unwrap_err();
        assert_eq!(err, DeskError::NotYourLanguage { mine: "fr".into(), asked: lang("de") });
        assert_eq!(err.to_string(), "you interpret into fr, not de");
        assert_eq!(desk.on_air().count(), 0);
    }

    #[test]
    fn handover_on_request_moves_the_air_without_a_gap() {
        let mut desk = desk();
        let (ana, ben) = (interpreter(1, "Ana", &["fr"]), interpreter(2, "Ben", &["fr"]));
        desk.act(&ana, take("fr"), t0()).unwrap();
        // Ben asks; only Ana is told.
        let asked = desk.act(&ben, BoothAction::HandoverRequest {}, t0()).unwrap();
        let push = BoothPush::HandoverRequest {
            to: InterpreterId(1),
            from: Who { id: InterpreterId(2), name: "Ben".into() },
        };
        assert_eq!(asked.pushes, vec![push.clone(), BoothPush::State]);
        assert!(push.is_for(&ana) && !push.is_for(&ben));
        assert_eq!(desk.request_for(InterpreterId(1)), Some(InterpreterId(2)));
        // Ana accepts: one on-air change straight from Ana to Ben (never the floor between).
        let fx = desk.act(&ana, BoothAction::HandoverAccept {}, t0()).unwrap();
        assert_eq!(fx.on_air, vec![(lang("fr"), on(2, false))]);
        assert_eq!(fx.on_air_facts, vec![(InterpreterId(1), None), (InterpreterId(2), Some(lang("fr")))]);
        assert_eq!(
            fx.handover,
            Some(Handover { language: lang("fr"), from: InterpreterId(1), to: InterpreterId(2) })
        );
        assert_eq!(desk.request_for(InterpreterId(1)), None);
        assert_eq!(desk.seat_of(InterpreterId(1)), None);
        // Nothing left to accept.
        assert_eq!(desk.act(&ana, BoothAction::HandoverAccept {}, t0()).unwrap_err(), DeskError::NotOnAir);
        assert_eq!(desk.act(&ben, BoothAction::HandoverAccept {}, t0()).unwrap_err(), DeskError::NoRequest);
    }

    #[test]
    fn taking_over_without_a_request_is_a_handover_too() {
        let mut desk = desk();
        let (ana, ben) = (interpreter(1, "Ana", &["fr"]), interpreter(2, "Ben", &["fr"]));
        desk.act(&ana, take("fr"), t0()).unwrap();
        let fx = desk.act(&ben, take("fr"), t0()).unwrap();
        assert_eq!(fx.on_air, vec![(lang("fr"), on(2, false))]);
        assert_eq!(
            fx.handover,
            Some(Handover { language: lang("fr"), from: InterpreterId(1), to: InterpreterId(2) })
        );
        assert_eq!(desk.on_air_in(&lang("fr")), Some(Seat { interpreter: InterpreterId(2), muted: false }));
    }

    #[test]
    fn asking_with_nobody_on_air_is_refused() {
        let mut desk = desk();
        let ana = interpreter(1, "Ana", &["fr"]);
        assert_eq!(
            desk.act(&ana, BoothAction::HandoverRequest {}, t0()).unwrap_err(),
            DeskError::NobodyToAsk
        );
        desk.act(&ana, take("fr"), t0()).unwrap();
        assert_eq!(
            desk.act(&ana, BoothAction::HandoverRequest {}, t0()).unwrap_err(),
            DeskError::NobodyToAsk,
            "asking myself"
        );
    }

    #[test]
    fn cough_keeps_the_seat_muted_and_off_air_gives_the_floor() {
        let mut desk = desk();
        let ana = interpreter(1, "Ana", &["fr"]);
        // Mute while off air: nothing for the media.
        assert!(desk.act(&ana, BoothAction::Mute { muted: true }, t0()).unwrap().on_air.is_empty());
        desk.act(&ana, take("fr"), t0()).unwrap();
        let cough = desk.act(&ana, BoothAction::Mute { muted: true }, t0()).unwrap();
        assert_eq!(cough.on_air, vec![(lang("fr"), on(1, true))], "silence, not the floor");
        assert!(cough.on_air_facts.is_empty(), "still on air for the usage report");
        let back = desk.act(&ana, BoothAction::Mute { muted: false }, t0()).unwrap();
        assert_eq!(back.on_air, vec![(lang("fr"), on(1, false))]);
        let off = desk.act(&ana, BoothAction::OffAir {}, t0()).unwrap();
        assert_eq!(off.on_air, vec![(lang("fr"), None)]);
        assert_eq!(off.on_air_facts, vec![(InterpreterId(1), None)]);
    }

    #[test]
    fn an_ab_booth_moves_between_its_two_languages() {
        let mut desk = desk();
        let ab = interpreter(3, "Chris", &["fr", "de"]);
        desk.act(&ab, take("fr"), t0()).unwrap();
        let fx = desk.act(&ab, take("de"), t0()).unwrap();
        assert_eq!(fx.on_air, vec![(lang("fr"), None), (lang("de"), on(3, false))]);
        assert_eq!(fx.on_air_facts, vec![(InterpreterId(3), Some(lang("de")))]);
        assert_eq!(desk.seat_of(InterpreterId(3)), Some((lang("de"), false)));
        assert_eq!(desk.on_air_in(&lang("fr")), None);
    }

    #[test]
    fn relay_input_switches_the_live_session_and_is_remembered() {
        let mut desk = desk();
        let ana = interpreter(1, "Ana", &["fr"]);
        assert_eq!(desk.input_of(InterpreterId(1)), lang("en"));
        // Without a session: remembered for the next one.
        let fx = desk.act(&ana, BoothAction::Input { source: "de".into() }, t0()).unwrap();
        assert_eq!(fx.switch_input, None);
        assert_eq!(desk.input_of(InterpreterId(1)), lang("de"));
        let session = SessionId::generate();
        desk.connected(InterpreterId(1), session.clone());
        let fx = desk.act(&ana, BoothAction::Input { source: "floor".into() }, t0()).unwrap();
        assert_eq!(fx.switch_input, Some((session, lang("en"))));
        assert!(matches!(
            desk.act(&ana, BoothAction::Input { source: "it".into() }, t0()),
            Err(DeskError::NoChannel { .. })
        ));
        assert!(matches!(
            desk.act(&ana, BoothAction::Input { source: "not a language!".into() }, t0()),
            Err(DeskError::BadInput(_))
        ));
        assert_eq!(desk.input_of(InterpreterId(1)), lang("en"), "a refused input changes nothing");
    }

    #[test]
    fn dropping_off_leaves_the_air_but_an_old_session_ending_does_not() {
        let mut desk = desk();
        let ana = interpreter(1, "Ana", &["fr"]);
        let (old, new) = (SessionId::generate(), SessionId::generate());
        desk.connected(InterpreterId(1), old.clone());
        desk.connected(InterpreterId(1), new.clone());
        assert!(desk.is_present(InterpreterId(1)));
        desk.act(&ana, take("fr"), t0()).unwrap();
        assert_eq!(desk.session_ended(InterpreterId(1), &old), Effects::default(), "replaced: nothing");
        assert!(desk.seat_of(InterpreterId(1)).is_some());
        let fx = desk.session_ended(InterpreterId(1), &new);
        assert_eq!(fx.on_air, vec![(lang("fr"), None)]);
        assert_eq!(fx.on_air_facts, vec![(InterpreterId(1), None)]);
        assert!(!desk.is_present(InterpreterId(1)));
    }

    #[test]
    fn revoking_while_on_air_gives_the_floor_and_forgets_requests() {
        let mut desk = desk();
        let (ana, ben) = (interpreter(1, "Ana", &["fr"]), interpreter(2, "Ben", &["fr"]));
        desk.connected(InterpreterId(1), SessionId::generate());
        desk.act(&ana, take("fr"), t0()).unwrap();
        desk.act(&ben, BoothAction::HandoverRequest {}, t0()).unwrap();
        let fx = desk.revoke(InterpreterId(1));
        assert_eq!(fx.on_air, vec![(lang("fr"), None)]);
        assert_eq!(fx.on_air_facts, vec![(InterpreterId(1), None)]);
        assert_eq!(fx.pushes, vec![BoothPush::State]);
        assert!(!desk.is_present(InterpreterId(1)));
        assert_eq!(desk.request_for(InterpreterId(1)), None);
        // Ben can take the channel, with no handover from a revoked link.
        let fx = desk.act(&ben, take("fr"), t0()).unwrap();
        assert_eq!(fx.handover, None);
    }

    #[test]
    fn chat_and_slow_down_reach_the_right_people_at_the_given_time() {
        let mut desk = desk();
        let (ana, ben, carl) =
            (interpreter(1, "Ana", &["fr"]), interpreter(2, "Ben", &["fr"]), interpreter(4, "Carl", &["de"]));
        let at = t0() + chrono::Duration::seconds(42);
        let fx = desk.act(&ana, BoothAction::Chat { text: "  water please ".into() }, at).unwrap();
        let [BoothPush::Chat { text, at: sent, .. }] = &fx.pushes[..] else { panic!("{fx:?}") };
        assert_eq!((text.as_str(), *sent), ("water please", at));
        assert!(fx.pushes[0].is_for(&ben) && !fx.pushes[0].is_for(&carl));
        assert_eq!(
            desk.act(&ana, BoothAction::Chat { text: "   ".into() }, at).unwrap_err(),
            DeskError::ChatLength
        );
        assert_eq!(
            desk.act(&ana, BoothAction::Chat { text: "x".repeat(501) }, at).unwrap_err(),
            DeskError::ChatLength
        );
        let slow = desk.act(&carl, BoothAction::SlowDown {}, at).unwrap();
        assert_eq!(slow.slow_down, Some(InterpreterId(4)));
        assert!(!slow.pushes.contains(&BoothPush::State), "no state refresh for a signal");
        assert!(!slow.pushes[0].is_for(&ana), "slow-downs go to the organiser, not the booths");
    }

    #[test]
    fn a_partner_sees_who_is_on_air_in_each_language() {
        let mut desk = desk();
        let (ana, carl) = (interpreter(1, "Ana", &["fr"]), interpreter(4, "Carl", &["de"]));
        desk.act(&ana, take("fr"), t0()).unwrap();
        desk.act(&carl, take("de"), t0()).unwrap();
        let mut seats: Vec<_> =
            desk.on_air().map(|(l, s)| (l.as_str().to_owned(), s.interpreter.0)).collect();
        seats.sort();
        assert_eq!(seats, vec![("de".to_owned(), 4), ("fr".to_owned(), 1)]);
    }
}
