//! Entry points for the fuzz targets in `fuzz/` (libFuzzer), and for nothing else: thin wrappers
//! that hand bytes to the relay's own parsers of network and user input where those are private
//! to the crate (BBB's answers, booth actions, event requests). They add no rules of their own and
//! are no stable API. The media core the other targets drive is public already ([`crate::net`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use chrono::{DateTime, TimeZone, Utc};

use crate::bbb::{api, peer, sfu};
use crate::booths::desk::{self, BoothAction};
use crate::events::{self, EventChange, NewEvent};
use crate::http::booth::parse_action;
use crate::http::extract::parse_json;
use crate::ids::{EventId, InterpreterId, Language, SessionId};
use crate::net::EventLayout;
use crate::store::interpreters::Interpreter;
use crate::store::{Event, FloorKind};

/// BBB's XML answer to an API call, read as the API client reads it: the `<response>` fields,
/// then what `getMeetingInfo` and `join` take from them (`set_cookie`: a `Set-Cookie` header of
/// the answer). True when it parsed.
pub fn bbb_api_answer(call: &str, body: &str, set_cookie: &[u8]) -> bool {
    let Ok(response) = api::parse(call, body) else { return false };
    let info = api::meeting_info(&response);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(set_cookie) {
        headers.append(SET_COOKIE, value);
    }
    let bot = api::bot_session(&response, &headers);
    info.participants > 0 || bot.is_ok()
}

/// BBB's `getMeetings` answer: the meetings listed, with their metadata.
pub fn bbb_meetings(body: &str) -> usize {
    api::listed_meetings(body).map_or(0, |m| m.iter().map(|m| m.metadata.len() + 1).sum())
}

/// bbb-web's answer to a session check: a status picked by `status % 4` (200, 401, 403, 502), headers
/// as `Name: value` lines, the body. True when it names a participant.
pub fn bbb_session_answer(status: u8, headers: &[u8], body: &[u8]) -> bool {
    let status = match status % 4 {
        0 => StatusCode::OK,
        1 => StatusCode::UNAUTHORIZED,
        2 => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut map = HeaderMap::new();
    for line in headers.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value.trim_ascii()))
        {
            map.append(name, value);
        }
    }
    crate::bbb::session::read_answer(status, &map, body).is_ok()
}

/// BBB's `/api/stuns` JSON answer: the STUN and TURN URLs in it.
pub fn bbb_stuns(body: &str) -> usize {
    api::stun_urls(body).map_or(0, |urls| urls.len())
}

/// One text message on bbb-webrtc-sfu's websocket, and the first candidate address of an SDP in
/// it (where the floor's media comes from).
pub fn bbb_sfu_message(text: &str) -> bool {
    match sfu::parse(text) {
        Ok(sfu::ServerMessage::Started { sdp }) => peer::first_candidate_ip(&sdp).is_some(),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// An event's booth desk with three interpreters, fed actions as the booth socket and the booth
/// API receive them.
pub struct BoothDesk {
    desk: desk::BoothDesk,
    interpreters: Vec<Interpreter>,
    sessions: Vec<SessionId>,
    now: DateTime<Utc>,
}

impl BoothDesk {
    /// The desk of an event with the floor in English and French and German channels; its
    /// interpreters: two into French, one A/B booth into German and French.
    pub fn new() -> Option<Self> {
        let lang = |code: &str| Language::parse(code).ok();
        let event = EventId::parse("fuzz").ok()?;
        let layout = EventLayout {
            id: event.clone(),
            floor: lang("en")?,
            languages: vec![lang("fr")?, lang("de")?],
            rtp_allow: Default::default(),
            mix: None,
            cascaded: false,
            relayed: false,
        };
        let interpreters = [
            (1, "Ann", vec![lang("fr")?]),
            (2, "Ben", vec![lang("fr")?]),
            (3, "Cem", vec![lang("de")?, lang("fr")?]),
        ]
        .into_iter()
        .map(|(id, name, languages)| Interpreter {
            id: InterpreterId(id),
            event: event.clone(),
            name: name.into(),
            languages,
            recording_consent: false,
        })
        .collect::<Vec<_>>();
        let sessions = interpreters.iter().map(|_| SessionId::generate()).collect();
        Some(Self {
            desk: desk::BoothDesk::new(Arc::new(layout)),
            interpreters,
            sessions,
            now: Utc.timestamp_opt(1_800_000_000, 0).single()?,
        })
    }

    fn who(&self, who: usize) -> &Interpreter {
        &self.interpreters[who % self.interpreters.len()]
    }

    /// A websocket text message from interpreter `who`: a JSON booth action, carried out.
    pub fn socket_message(&mut self, who: usize, text: &str) -> bool {
        let Ok(action) = serde_json::from_str::<BoothAction>(text) else { return false };
        self.act(who, action)
    }

    /// `POST /api/v1/booth/{action}` with a JSON body from interpreter `who`, carried out.
    pub fn api_call(&mut self, who: usize, action: &str, body: &[u8]) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let Ok(action) = parse_action(action, &headers, &Bytes::copy_from_slice(body)) else { return false };
        self.act(who, action)
    }

    fn act(&mut self, who: usize, action: BoothAction) -> bool {
        let me = self.who(who).clone();
        self.now += chrono::Duration::seconds(1);
        self.desk.act(&me, action, self.now).is_ok()
    }

    /// Interpreter `who`'s media session starts (`fresh`: a new session replaces the old one).
    pub fn connect(&mut self, who: usize, fresh: bool) {
        let i = who % self.interpreters.len();
        if fresh {
            self.sessions[i] = SessionId::generate();
        }
        self.desk.connected(self.interpreters[i].id, self.sessions[i].clone());
    }

    /// Interpreter `who`'s media session ends.
    pub fn disconnect(&mut self, who: usize) {
        let i = who % self.interpreters.len();
        self.desk.session_ended(self.interpreters[i].id, &self.sessions[i]);
    }

    /// Interpreter `who`'s booth link is revoked.
    pub fn revoke(&mut self, who: usize) {
        let id = self.who(who).id;
        self.desk.revoke(id);
    }
}

/// `POST /api/v1/events`: a JSON body read as the API reads it, then checked. True when valid.
pub fn new_event(body: &[u8]) -> bool {
    let Ok(request) = parse_json::<NewEvent>(&json_headers(), &Bytes::copy_from_slice(body)) else {
        return false;
    };
    events::validate(&request).is_ok()
}

/// `PATCH /api/v1/events/{id}`: a JSON body read as the API reads it and applied to a sound
/// event, then checked. True when valid.
pub fn event_change(body: &[u8]) -> bool {
    let Ok(change) = parse_json::<EventChange>(&json_headers(), &Bytes::copy_from_slice(body)) else {
        return false;
    };
    let Some(event) = sound_event() else { return false };
    events::changed(event, change).is_ok()
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

fn sound_event() -> Option<Event> {
    let starts_at = Utc.timestamp_opt(1_800_000_000, 0).single()?;
    Some(Event {
        id: EventId::parse("fuzz").ok()?,
        title: "Congress".into(),
        floor_language: Language::parse("en").ok()?,
        languages: vec![Language::parse("fr").ok()?],
        starts_at,
        ends_at: starts_at + chrono::Duration::hours(2),
        expected_listeners: 100,
        floor_kind: FloorKind::Whip,
        rtp_port: None,
        floor_token_hash: String::new(),
        floor_under_db: None,
        organiser: None,
        bbb_meeting_id: None,
        rtp_allow: Default::default(),
        bbb_room: None,
        peer: None,
    })
}
