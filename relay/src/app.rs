//! The running relay: configuration, store and media shards together, and the operations the HTTP
//! side performs on events (create, read, cancel, check tokens). Handlers stay thin; the rules
//! live here.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::capacity::{FreeSegment, Reservation, channel_units};
use crate::config::Settings;
use crate::ids::{EventId, InterpreterId, Language, SessionId, Token};
use crate::media::mixer::MixSettings;
use crate::media::router::{ChannelKind, EventRouter};
use crate::net::{EventLayout, Media, MediaConfig, MediaNote, NetError, SessionKind};
use crate::store::{Event, FloorKind, Store, StoreError};

/// What can go wrong in an event operation.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("no event with id {0}")]
    NoEvent(EventId),
    #[error("event {event} has no '{language}' channel; its channels are {channels}")]
    NoChannel { event: EventId, language: Language, channels: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The event does not fit the node's capacity (409).
    #[error(transparent)]
    Capacity(#[from] crate::capacity::Shortfall),
    /// Full at run time: try again later (503 with Retry-After).
    #[error("{detail}")]
    Busy { detail: String, retry_after: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
}

/// `floor` in an event request.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FloorRequest {
    Whip,
    Rtp,
    /// The audio of a meeting on the node's BigBlueButton server.
    Bbb {
        meeting_id: String,
    },
}

/// `POST /api/v1/events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub title: String,
    pub floor_language: Language,
    #[serde(default)]
    pub languages: Vec<Language>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub expected_listeners: u32,
    #[serde(default = "default_floor")]
    pub floor: FloorRequest,
    /// Mix mode: the floor under the interpretation at this level in dB (e.g. -18); null or
    /// absent: pass-through (a listener can still mix the floor track in the browser).
    #[serde(default)]
    pub floor_under_interpretation_db: Option<f32>,
}

fn default_floor() -> FloorRequest {
    FloorRequest::Whip
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub language: Language,
    pub kind: ChannelKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloorView {
    pub kind: FloorKind,
    pub whip_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtp_url: Option<String>,
    /// A BBB floor: the meeting, and where Tolk is with it (waiting, joining, live, error, ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::bbb::FloorStatus>,
}

/// An event as the organiser API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub id: EventId,
    pub title: String,
    pub floor_language: Language,
    pub languages: Vec<Language>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub expected_listeners: u32,
    pub listener_url: String,
    pub floor: FloorView,
    pub channels: Vec<ChannelView>,
    pub floor_under_interpretation_db: Option<f32>,
}

/// A live event as admission sees it: its media layout, window and size.
#[derive(Debug)]
pub struct LiveEvent {
    pub layout: Arc<EventLayout>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub expected_listeners: u32,
}

impl std::ops::Deref for LiveEvent {
    type Target = EventLayout;
    fn deref(&self) -> &EventLayout {
        &self.layout
    }
}

pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub media: Media,
    pub(crate) booths: crate::booth::Booths,
    admin_hash: String,
    layouts: DashMap<EventId, Arc<LiveEvent>>,
    /// Serialises capacity checks with the writes they allow (two requests racing for the last
    /// capacity: exactly one wins).
    reserving: tokio::sync::Mutex<()>,
    /// Listeners admitted per event, and on the node.
    admitted: DashMap<EventId, u32>,
    admitted_total: std::sync::atomic::AtomicU32,
    /// The node's BBB server (None: BBB floors are refused).
    bbb: Option<Arc<crate::bbb::api::BbbApi>>,
    /// The running BBB floors; removing one makes Tolk leave its meeting.
    bbb_floors: DashMap<EventId, crate::bbb::BbbFloor>,
}

/// Who calls the organiser API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Organiser(i64),
}

impl Caller {
    fn organiser(self) -> Option<i64> {
        match self {
            Caller::Admin => None,
            Caller::Organiser(id) => Some(id),
        }
    }
}

/// `PATCH /api/v1/events/{id}`: any of these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventChange {
    pub title: Option<String>,
    pub languages: Option<Vec<Language>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub expected_listeners: Option<u32>,
}

/// `POST /api/v1/events/{id}/interpreters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInterpreter {
    pub name: String,
    pub languages: Vec<Language>,
}

/// A booth link as issued (the token is shown once).
#[derive(Debug, Clone, Serialize)]
pub struct InterpreterView {
    pub id: InterpreterId,
    pub name: String,
    pub languages: Vec<Language>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booth_url: Option<String>,
}

impl App {
    /// Open the store, start the media shards, reopen stored RTP floors.
    pub async fn start(settings: Settings) -> Result<Arc<Self>, AppError> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|source| AppError::DataDir { path: settings.data_dir.display().to_string(), source })?;
        let store = match &settings.database_url {
            Some(url) => Store::open(url).await?,
            None => Store::open_in(&settings.data_dir).await?,
        };
        let admin = admin_token(&settings)?;
        let (notes_tx, notes) = tokio::sync::mpsc::unbounded_channel();
        let media = Media::start(
            &MediaConfig {
                public_ip: settings.public_ip,
                bind_ip: settings.media_bind_ip(),
                first_port: settings.media_port,
                shards: settings.media_shards,
                connect_timeout: settings.connect_timeout,
            },
            Some(notes_tx),
        )?;
        crate::bbb::install_default_crypto();
        let bbb = match &settings.bbb {
            Some(config) => Some(Arc::new(
                crate::bbb::api::BbbApi::new(config.clone()).map_err(|e| AppError::Invalid(e.to_string()))?,
            )),
            None => None,
        };
        let app = Arc::new(Self {
            bbb,
            bbb_floors: DashMap::new(),
            settings,
            store,
            media,
            booths: Default::default(),
            admin_hash: admin.hash(),
            layouts: DashMap::new(),
            reserving: tokio::sync::Mutex::new(()),
            admitted: DashMap::new(),
            admitted_total: std::sync::atomic::AtomicU32::new(0),
        });
        tokio::spawn(follow_notes(Arc::downgrade(&app), notes));
        for event in app.store.events().await? {
            if event.floor_kind == FloorKind::Rtp
                && let Err(e) = app.open_rtp_floor(&event).await
            {
                warn!(event = %event.id, error = %e, "could not reopen the RTP floor");
            }
            if event.floor_kind == FloorKind::Bbb
                && event.ends_at > Utc::now()
                && let Err(e) = app.start_bbb_floor(&event).await
            {
                warn!(event = %event.id, error = %e, "could not start the BBB floor");
            }
        }
        Ok(app)
    }

    /// Whether `token` is the admin token.
    pub fn is_admin(&self, token: &str) -> bool {
        constant_time_eq(&Token::from_secret(token).hash(), &self.admin_hash)
    }

    /// Create an event after validating the request; its secrets are in the returned view only.
    /// `dry_run`: only check (validation and capacity), store nothing.
    pub async fn create_event(
        &self,
        caller: &Caller,
        request: NewEvent,
        dry_run: bool,
    ) -> Result<EventView, AppError> {
        self.create_event_with_id(EventId::generate(), request, caller.organiser(), dry_run).await
    }

    /// Who is calling the organiser API: the admin token, or an organiser's token.
    pub async fn caller(&self, token: Option<&str>) -> Result<Caller, AppError> {
        let token = token.ok_or_else(|| {
            AppError::Unauthorized(
                "this call needs 'Authorization: Bearer <admin or organiser token>'".into(),
            )
        })?;
        if self.is_admin(token) {
            return Ok(Caller::Admin);
        }
        match self.store.organiser_by_token(&Token::from_secret(token)).await? {
            Some(o) => Ok(Caller::Organiser(o.id)),
            None => Err(AppError::Unauthorized("that token is not valid for the organiser API".into())),
        }
    }

    /// An event the caller may manage (others' events are "not found", not "forbidden").
    pub async fn owned_event(&self, caller: &Caller, id: &EventId) -> Result<Event, AppError> {
        let event = self.event(id).await?;
        match caller {
            Caller::Organiser(me) if event.organiser != Some(*me) => Err(AppError::NoEvent(id.clone())),
            _ => Ok(event),
        }
    }

    /// The events the caller may see.
    pub async fn events_of(&self, caller: &Caller) -> Result<Vec<Event>, AppError> {
        let all = self.store.events().await?;
        Ok(match caller {
            Caller::Admin => all,
            Caller::Organiser(me) => all.into_iter().filter(|e| e.organiser == Some(*me)).collect(),
        })
    }

    pub(crate) async fn create_event_with_id(
        &self,
        id: EventId,
        request: NewEvent,
        organiser: Option<i64>,
        dry_run: bool,
    ) -> Result<EventView, AppError> {
        let languages = validate(&request)?;
        let token = Token::generate();
        let mut event = Event {
            id,
            title: request.title.trim().to_owned(),
            floor_language: request.floor_language,
            languages,
            starts_at: request.starts_at,
            ends_at: request.ends_at,
            expected_listeners: request.expected_listeners,
            floor_kind: match request.floor {
                FloorRequest::Whip => FloorKind::Whip,
                FloorRequest::Rtp => FloorKind::Rtp,
                FloorRequest::Bbb { .. } => FloorKind::Bbb,
            },
            rtp_port: None,
            floor_token_hash: token.hash(),
            floor_under_db: request.floor_under_interpretation_db,
            organiser,
            bbb_meeting_id: match &request.floor {
                FloorRequest::Bbb { meeting_id } => Some(meeting_id.trim().to_owned()),
                _ => None,
            },
        };
        if event.floor_kind == FloorKind::Bbb && self.bbb.is_none() {
            return Err(AppError::Invalid(crate::bbb::BbbError::NotConfigured.to_string()));
        }
        {
            let _reserving = self.reserving.lock().await;
            let mut booking = self.check_capacity(&event).await?;
            if dry_run {
                return Ok(self.view(&event, None)); // the booking rolls back
            }
            booking.insert(&event).await?;
            booking.commit().await?;
        }
        if event.floor_kind == FloorKind::Rtp {
            let port = self.open_rtp_floor(&event).await?;
            self.store.set_rtp_port(&event.id, port.port()).await?;
            event.rtp_port = Some(port.port());
        }
        if event.floor_kind == FloorKind::Bbb {
            self.start_bbb_floor(&event).await?;
        }
        info!(event = %event.id, title = %event.title, "event created");
        Ok(self.view(&event, Some(&token)))
    }

    /// Whether `event` fits beside every other live event overlapping its window.
    /// Whether `event` fits beside every other live event overlapping its window; on success the
    /// booking (still holding the lock) is the caller's to write the event and commit.
    async fn check_capacity(&self, event: &Event) -> Result<crate::store::Booking, AppError> {
        let mut booking = self.store.booking().await?;
        let others = booking.overlapping(event.starts_at, event.ends_at, Some(&event.id)).await?;
        let reserved: Vec<Reservation> = others.iter().map(reservation).collect();
        crate::capacity::check(self.settings.capacity, &reserved, &reservation(event))?;
        Ok(booking)
    }

    /// Free capacity over a time range.
    pub async fn free_capacity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FreeSegment>, AppError> {
        if to <= from {
            return Err(AppError::Invalid(format!("'to' ({to}) must be after 'from' ({from})")));
        }
        if to - from > chrono::Duration::days(400) {
            return Err(AppError::Invalid("ask for at most 400 days at a time".into()));
        }
        let events = self.store.events_overlapping(from, to, None).await?;
        let reserved: Vec<Reservation> = events.iter().map(reservation).collect();
        Ok(crate::capacity::free_over(self.settings.capacity, &reserved, from, to))
    }

    /// Change an event; capacity is checked again as for a new one.
    pub async fn change_event(&self, id: &EventId, change: EventChange) -> Result<EventView, AppError> {
        let _reserving = self.reserving.lock().await;
        let mut event = self.event(id).await?;
        if let Some(languages) = change.languages
            && languages != event.languages
        {
            if self.media.sessions().iter().any(|s| &s.event == id) {
                return Err(AppError::Conflict(
                    "the languages cannot change while the event has live sessions; end them or change it later".into(),
                ));
            }
            event.languages = languages;
        }
        if let Some(title) = change.title {
            event.title = title.trim().to_owned();
        }
        event.starts_at = change.starts_at.unwrap_or(event.starts_at);
        event.ends_at = change.ends_at.unwrap_or(event.ends_at);
        event.expected_listeners = change.expected_listeners.unwrap_or(event.expected_listeners);
        validate(&NewEvent {
            title: event.title.clone(),
            floor_language: event.floor_language.clone(),
            languages: event.languages.clone(),
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            expected_listeners: event.expected_listeners,
            floor: FloorRequest::Whip,
            floor_under_interpretation_db: event.floor_under_db,
        })?;
        let mut booking = self.check_capacity(&event).await?;
        if !booking.update(&event).await? {
            return Err(AppError::NoEvent(id.clone()));
        }
        booking.commit().await?;
        if let Some(floor) = self.bbb_floors.get(id) {
            floor.set_ends_at(event.ends_at);
        }
        self.layouts.remove(id);
        self.remember(&event);
        info!(event = %id, "event changed");
        Ok(self.view(&event, None))
    }

    async fn open_rtp_floor(&self, event: &Event) -> Result<SocketAddr, AppError> {
        let layout = self.remember(event).layout.clone();
        Ok(self.media.open_rtp_floor(layout, event.rtp_port.unwrap_or(0)).await?)
    }

    /// Follow the event's BBB meeting: its audio enters the shards through a loopback floor socket.
    async fn start_bbb_floor(&self, event: &Event) -> Result<(), AppError> {
        let (Some(api), Some(meeting)) = (&self.bbb, &event.bbb_meeting_id) else {
            return Err(AppError::Invalid(crate::bbb::BbbError::NotConfigured.to_string()));
        };
        let layout = self.remember(event).layout.clone();
        let forward_to = self.media.open_loopback_floor(layout).await?;
        let floor = crate::bbb::BbbFloor::spawn(
            api.clone(),
            event.id.clone(),
            meeting.clone(),
            forward_to,
            event.ends_at,
        );
        self.bbb_floors.insert(event.id.clone(), floor);
        Ok(())
    }

    /// The state of an event's BBB floor, to wait on (None: not a running BBB floor).
    pub fn bbb_floor(&self, id: &EventId) -> Option<tokio::sync::watch::Receiver<crate::bbb::FloorStatus>> {
        self.bbb_floors.get(id).map(|f| f.watch())
    }

    fn remember(&self, event: &Event) -> Arc<LiveEvent> {
        let layout = Arc::new(EventLayout {
            id: event.id.clone(),
            floor: event.floor_language.clone(),
            languages: event.languages.clone(),
            mix: event.floor_under_db.map(|floor_db| MixSettings {
                floor_db,
                complexity: self.settings.mix_complexity,
                bitrate: self.settings.mix_bitrate,
            }),
        });
        let live = Arc::new(LiveEvent {
            layout: layout.clone(),
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            expected_listeners: event.expected_listeners,
        });
        if self.layouts.insert(event.id.clone(), live.clone()).is_none() {
            self.media.prepare_event(layout);
        }
        live
    }

    /// The demo event `demo`: English floor from the built-in voice (an RTP floor), French and
    /// German channels. Created on first use, reused afterwards.
    pub async fn ensure_demo(&self) -> Result<EventView, AppError> {
        let id = EventId::parse("demo").map_err(|e| AppError::Invalid(e.to_string()))?;
        if let Some(event) = self.store.event(&id).await? {
            return Ok(self.view(&event, None));
        }
        let now = Utc::now();
        let lang = |s: &str| Language::parse(s).map_err(|e| AppError::Invalid(e.to_string()));
        let request = NewEvent {
            title: "Tolk demo".into(),
            floor_language: lang("en")?,
            languages: vec![lang("fr")?, lang("de")?],
            starts_at: now - chrono::Duration::hours(1),
            ends_at: now + chrono::Duration::days(3650),
            expected_listeners: 100,
            floor: FloorRequest::Rtp,
            floor_under_interpretation_db: None,
        };
        self.create_event_with_id(id, request, None, false).await
    }

    pub async fn event(&self, id: &EventId) -> Result<Event, AppError> {
        self.store.event(id).await?.ok_or_else(|| AppError::NoEvent(id.clone()))
    }

    /// The media layout of a live event (cached: read on every WHEP request).
    pub async fn layout(&self, id: &EventId) -> Result<Arc<LiveEvent>, AppError> {
        if let Some(layout) = self.layouts.get(id) {
            return Ok(layout.clone());
        }
        let event = self.event(id).await?;
        Ok(self.remember(&event))
    }

    /// The channel of `language` in an event, or a sentence naming the ones it has.
    pub fn check_channel(&self, layout: &EventLayout, language: &Language) -> Result<(), AppError> {
        if &layout.floor == language || layout.languages.contains(language) {
            return Ok(());
        }
        let channels = std::iter::once(&layout.floor)
            .chain(&layout.languages)
            .map(Language::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Err(AppError::NoChannel { event: layout.id.clone(), language: language.clone(), channels })
    }

    /// Issue a booth link for one language, or two (an A/B booth), of the event's interpretation
    /// languages.
    pub async fn issue_interpreter(
        &self,
        event: &EventId,
        request: NewInterpreter,
    ) -> Result<InterpreterView, AppError> {
        let stored = self.event(event).await?;
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::Invalid("name must be 1 to 100 characters".into()));
        }
        if request.languages.is_empty() || request.languages.len() > 2 {
            return Err(AppError::Invalid(
                "a booth link has one language, or two for an A/B booth (e.g. [\"fr\", \"en\"])".into(),
            ));
        }
        if request.languages.len() == 2 && request.languages[0] == request.languages[1] {
            return Err(AppError::Invalid("the two languages of an A/B booth must differ".into()));
        }
        for language in &request.languages {
            if !stored.languages.contains(language) {
                let have = stored.languages.iter().map(Language::as_str).collect::<Vec<_>>().join(", ");
                return Err(AppError::Invalid(format!(
                    "'{language}' is not an interpretation language of this event (it has: {have})"
                )));
            }
        }
        let token = Token::generate();
        let interpreter = self.store.insert_interpreter(event, name, &request.languages, &token).await?;
        info!(%event, interpreter = %interpreter.id, "booth link issued");
        Ok(InterpreterView {
            id: interpreter.id,
            name: interpreter.name,
            languages: interpreter.languages,
            booth_url: Some(format!("{}/booth/{}", self.settings.public_url, token.secret())),
            token: Some(token.secret().to_owned()),
        })
    }

    /// Listeners per language of an event, over all shards.
    pub async fn listeners(&self, event: &EventId) -> std::collections::HashMap<Language, usize> {
        let mut counts = std::collections::HashMap::new();
        for shard in self.media.stats().await {
            for c in shard.channels.into_iter().filter(|c| &c.event == event) {
                *counts.entry(c.language).or_insert(0) += c.listeners;
            }
        }
        counts
    }

    /// Media endpoints work from an hour before an event to an hour after it.
    pub fn check_window(&self, layout: &LiveEvent) -> Result<(), AppError> {
        let now = Utc::now();
        let (opens, closes) =
            (layout.starts_at - chrono::Duration::hours(1), layout.ends_at + chrono::Duration::hours(1));
        if now < opens || now >= closes {
            return Err(AppError::Forbidden(format!(
                "this event's media is open from {} to {} (one hour before and after {} – {}); it is now {}",
                opens.to_rfc3339(),
                closes.to_rfc3339(),
                layout.starts_at.to_rfc3339(),
                layout.ends_at.to_rfc3339(),
                now.to_rfc3339()
            )));
        }
        Ok(())
    }

    /// Admit one more listener to `event`, or say why not (503). Undone by [`App::release`].
    fn admit(&self, layout: &LiveEvent) -> Result<(), AppError> {
        use std::sync::atomic::Ordering;
        let limit = (f64::from(layout.expected_listeners) * self.settings.headroom).ceil() as u32;
        let mut admitted = self.admitted.entry(layout.id.clone()).or_insert(0);
        if *admitted >= limit {
            return Err(AppError::Busy {
                detail: format!(
                    "this event is full: it was reserved for {} listeners and {} are listening; please try again in a minute",
                    layout.expected_listeners, *admitted
                ),
                retry_after: 60,
            });
        }
        let total = self.admitted_total.fetch_add(1, Ordering::SeqCst);
        if total >= self.settings.capacity.listeners {
            self.admitted_total.fetch_sub(1, Ordering::SeqCst);
            return Err(AppError::Busy {
                detail:
                    "this interpretation service is at its capacity right now; please try again in a minute"
                        .into(),
                retry_after: 60,
            });
        }
        *admitted += 1;
        Ok(())
    }

    fn release(&self, event: &EventId) {
        if let Some(mut admitted) = self.admitted.get_mut(event) {
            *admitted = admitted.saturating_sub(1);
            self.admitted_total.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A WHEP listener joins: admission, media, then the usage fact.
    pub async fn listen(
        &self,
        event: &EventId,
        language: Language,
        offer: String,
    ) -> Result<(SessionId, String), AppError> {
        let layout = self.layout(event).await?;
        self.check_channel(&layout, &language)?;
        self.check_window(&layout)?;
        self.admit(&layout)?;
        let joined = self.media.listen(layout.layout.clone(), language.clone(), offer).await;
        let (session, answer) = joined.inspect_err(|_| self.release(event))?;
        if let Err(e) = self.store.record_listening(event, &session, Some(&language)).await {
            warn!(error = %e, "could not record a listener joining");
        }
        Ok((session, answer))
    }

    /// A listener switches channel without renegotiating.
    pub async fn switch_channel(&self, session: &SessionId, language: Language) -> Result<(), AppError> {
        let event = self
            .media
            .sessions()
            .get(session)
            .filter(|e| e.kind == SessionKind::Listener)
            .map(|e| e.event.clone())
            .ok_or_else(|| AppError::NotFound(format!("no listening session {session}")))?;
        let layout = self.layout(&event).await?;
        self.check_channel(&layout, &language)?;
        self.media.switch(session, 0, language.clone()).await?;
        if let Err(e) = self.store.record_listening(&event, session, Some(&language)).await {
            warn!(error = %e, "could not record a channel switch");
        }
        Ok(())
    }

    /// Whether a booth link still works (None: the store could not say).
    pub async fn interpreter_still_valid(
        &self,
        me: &crate::store::interpreters::Interpreter,
    ) -> Option<bool> {
        self.store.interpreters(&me.event).await.ok().map(|all| all.iter().any(|i| i.id == me.id))
    }

    /// Check a floor token against the event's.
    pub async fn check_floor_token(
        &self,
        id: &EventId,
        token: Option<&str>,
    ) -> Result<Arc<EventLayout>, AppError> {
        let event = self.event(id).await?;
        let token = token.ok_or_else(|| {
            AppError::Unauthorized("publishing the floor needs 'Authorization: Bearer <floor token>'".into())
        })?;
        if !constant_time_eq(&Token::from_secret(token).hash(), &event.floor_token_hash) {
            return Err(AppError::Unauthorized(format!("that is not the floor token of event {id}")));
        }
        let layout = self.remember(&event);
        self.check_window(&layout)?;
        Ok(layout.layout.clone())
    }

    pub async fn cancel_event(&self, id: &EventId) -> Result<(), AppError> {
        if !self.store.cancel_event(id).await? {
            return Err(AppError::NoEvent(id.clone()));
        }
        self.layouts.remove(id);
        self.bbb_floors.remove(id);
        self.media.end_event(id);
        info!(event = %id, "event cancelled");
        Ok(())
    }

    /// The organiser's view of an event; `token` is shown only when just created.
    pub fn view(&self, event: &Event, token: Option<&Token>) -> EventView {
        let base = &self.settings.public_url;
        let host = self.settings.public_ip;
        let channels = std::iter::once(&event.floor_language)
            .chain(&event.languages)
            .enumerate()
            .map(|(i, language)| ChannelView { language: language.clone(), kind: EventRouter::kind(i) })
            .collect();
        EventView {
            id: event.id.clone(),
            title: event.title.clone(),
            floor_language: event.floor_language.clone(),
            languages: event.languages.clone(),
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            expected_listeners: event.expected_listeners,
            listener_url: format!("{base}/e/{}", event.id),
            floor: FloorView {
                kind: event.floor_kind,
                whip_url: format!("{base}/whip/{}/floor", event.id),
                token: token.map(|t| t.secret().to_owned()),
                rtp_url: event.rtp_port.map(|p| format!("rtp://{}", SocketAddr::new(host, p))),
                meeting_id: event.bbb_meeting_id.clone(),
                state: self.bbb_floors.get(&event.id).map(|f| f.status()),
            },
            channels,
            floor_under_interpretation_db: event.floor_under_db,
        }
    }
}

/// What an event holds on the node over its window.
fn reservation(event: &Event) -> Reservation {
    Reservation {
        starts_at: event.starts_at,
        ends_at: event.ends_at,
        listeners: event.expected_listeners,
        channels: channel_units(event.languages.len(), event.floor_under_db.is_some()),
    }
}

fn validate(request: &NewEvent) -> Result<Vec<Language>, AppError> {
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::Invalid("title must be 1 to 200 characters".into()));
    }
    if request.ends_at <= request.starts_at {
        return Err(AppError::Invalid(format!(
            "ends_at ({}) must be after starts_at ({})",
            request.ends_at, request.starts_at
        )));
    }
    if request.expected_listeners == 0 || request.expected_listeners > 1_000_000 {
        return Err(AppError::Invalid("expected_listeners must be 1 to 1,000,000".into()));
    }
    if let Some(db) = request.floor_under_interpretation_db
        && !(-60.0..=0.0).contains(&db)
    {
        return Err(AppError::Invalid(format!(
            "floor_under_interpretation_db must be between -60 and 0 dB (or null for pass-through), not {db}"
        )));
    }
    if let FloorRequest::Bbb { meeting_id } = &request.floor {
        let id = meeting_id.trim();
        if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
            return Err(AppError::Invalid(
                "floor.meeting_id must be the BBB meetingID: 1 to 256 characters, no control characters"
                    .into(),
            ));
        }
    }
    if request.languages.len() > 64 {
        return Err(AppError::Invalid("an event has at most 64 interpretation languages".into()));
    }
    let mut languages: Vec<Language> = Vec::with_capacity(request.languages.len());
    for language in &request.languages {
        if language == &request.floor_language {
            return Err(AppError::Invalid(format!(
                "'{language}' is the floor language; list only interpretation languages in 'languages'"
            )));
        }
        if languages.contains(language) {
            return Err(AppError::Invalid(format!("'{language}' is listed twice in 'languages'")));
        }
        languages.push(language.clone());
    }
    Ok(languages)
}

/// The admin token: configured, or generated once into the data directory and printed.
fn admin_token(settings: &Settings) -> Result<Token, AppError> {
    if let Some(token) = &settings.admin_token {
        return Ok(Token::from_secret(token));
    }
    let path = settings.data_dir.join("admin-token");
    let data_err = |source| AppError::DataDir { path: path.display().to_string(), source };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            info!(path = %path.display(), "admin token read from the data directory");
            return Ok(Token::from_secret(existing));
        }
    }
    let token = Token::generate();
    write_private(&path, token.secret()).map_err(data_err)?;
    println!(
        "Generated the organiser API token (kept in {}; set TOLK_ADMIN_TOKEN to choose your own):\n  {}",
        path.display(),
        token.secret()
    );
    Ok(token)
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Record what the shards report: listeners leaving, interpreters dropping off.
async fn follow_notes(app: std::sync::Weak<App>, mut notes: tokio::sync::mpsc::UnboundedReceiver<MediaNote>) {
    while let Some(note) = notes.recv().await {
        let Some(app) = app.upgrade() else { return };
        match note {
            MediaNote::SessionEnded { session, event, kind: Some(SessionKind::Listener) } => {
                app.release(&event);
                if let Err(e) = app.store.record_listening(&event, &session, None).await {
                    warn!(error = %e, "could not record a listener leaving");
                }
            }
            MediaNote::SessionEnded { session, event, kind: Some(SessionKind::Booth(interpreter)) } => {
                app.booth_session_ended(&event, interpreter, &session).await;
            }
            MediaNote::SessionEnded { .. } => {}
        }
    }
}
