//! Events: validate, create, change, cancel and show them, with capacity checked under one lock
//! (two requests racing for the last capacity: exactly one wins); and the live events the media
//! side reads on every join (layout, window, size), cached.

pub(crate) mod request;
pub(crate) mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tracing::info;

pub(crate) use request::{EventChange, FloorRequest, NewEvent, validate};
pub(crate) use views::{ChannelView, EventView, FloorView, channels};

use crate::admission::Window;
use crate::allow::SourceAllow;
use crate::app::lifecycle::Closing;
use crate::auth::Caller;
use crate::capacity::{Capacity, FreeSegment, Reservation, Shortfall, channel_units};
use crate::config::Settings;
use crate::floors::{FloorError, Floors};
use crate::ids::{EventId, IdempotencyKey, Language, Token};
use crate::media::mixer::MixSettings;
use crate::net::{EventLayout, Media, NetError};
use crate::store::idempotency::KeptAnswer;
use crate::store::{Booking, Event, FloorKind, Store, StoreError};

/// What can go wrong with an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("title must be 1 to 200 characters")]
    Title,
    #[error("ends_at ({ends_at}) must be after starts_at ({starts_at})")]
    EndsBeforeStart { starts_at: DateTime<Utc>, ends_at: DateTime<Utc> },
    #[error("starts_at ({starts_at}) and ends_at ({ends_at}) must be between the years 2000 and 9999")]
    DateOutOfRange { starts_at: DateTime<Utc>, ends_at: DateTime<Utc> },
    #[error("expected_listeners must be 1 to 1,000,000")]
    ExpectedListeners,
    #[error("floor_under_interpretation_db must be between -60 and 0 dB (or null for pass-through), not {0}")]
    FloorLevel(f32),
    #[error("floor.meeting_id must be the BBB meetingID: 1 to 256 characters, no control characters")]
    MeetingId,
    #[error("floor.allow: {0}")]
    Allow(#[from] crate::allow::AllowError),
    #[error(
        "floor.url must be a peer event's listener link, like https://tolk.coop-a.example/e/EVENT; not '{0}'"
    )]
    PeerLink(String),
    #[error("floor.token must be the peering token the peer issued (16 to 200 visible characters)")]
    PeerToken,
    #[error("an event has at most 64 interpretation languages")]
    TooManyLanguages,
    #[error("'{0}' is the floor language; list only interpretation languages in 'languages'")]
    FloorLanguageListed(Language),
    #[error("'{0}' is listed twice in 'languages'")]
    LanguageTwice(Language),
    #[error("recording.channels: the event has no '{language}' channel; its channels are {channels}")]
    RecordedChannel { language: Language, channels: String },
    #[error("recording.channels must be \"all\" or a list of at least one of the event's languages")]
    NothingRecorded,
    /// No such event, or not the caller's.
    #[error("no event with id {0}")]
    NoEvent(EventId),
    #[error("event {event} has no '{language}' channel; its channels are {channels}")]
    NoChannel { event: EventId, language: Language, channels: String },
    #[error("the languages cannot change while the event has live sessions; end them or change it later")]
    LanguagesLocked,
    #[error("'to' ({to}) must be after 'from' ({from})")]
    RangeBackwards { from: DateTime<Utc>, to: DateTime<Utc> },
    #[error("ask for at most 400 days at a time")]
    RangeTooLong,
    #[error(
        "an event lasts at most {max_days} days on this node; this one lasts {days:.1} days: split it into several events"
    )]
    TooLong { max_days: i64, days: f64 },
    #[error(
        "an organiser may have at most {limit} events that are not over yet; cancel one, or wait until one ends"
    )]
    TooManyEvents { limit: u32 },
    #[error("this Idempotency-Key was used for a different request; use a new key for a new event")]
    KeyReused,
    /// The event does not fit the node's capacity.
    #[error(transparent)]
    Capacity(#[from] Shortfall),
    #[error(transparent)]
    Floor(#[from] FloorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
}

/// A live event as the media side sees it: its layout, window and size.
#[derive(Debug)]
pub(crate) struct LiveEvent {
    pub layout: Arc<EventLayout>,
    pub window: Window,
    pub expected_listeners: u32,
}

impl LiveEvent {
    /// The channel of `language`, or a sentence naming the ones the event has.
    pub(crate) fn check_channel(&self, language: &Language) -> Result<(), EventError> {
        let layout = &self.layout;
        if layout.has_channel(language) {
            return Ok(());
        }
        let channels = layout.channel_list();
        Err(EventError::NoChannel { event: layout.id.clone(), language: language.clone(), channels })
    }
}

/// What the events service needs of the settings.
#[derive(Debug, Clone)]
struct EventSettings {
    /// This node's own capacity (a single node's, and the fallback in a cluster).
    capacity: Capacity,
    max_length: chrono::Duration,
    max_per_organiser: u32,
    public_url: String,
    public_ip: std::net::IpAddr,
    mix_complexity: i32,
    mix_bitrate: i32,
}

/// The events of a node.
pub(crate) struct Events {
    settings: EventSettings,
    /// What events are booked against: this node's capacity, or in a cluster the sum of its
    /// live nodes' ([`Events::set_capacity`]).
    capacity: std::sync::Mutex<Capacity>,
    store: Store,
    media: Arc<Media>,
    floors: Arc<Floors>,
    reserving: tokio::sync::Mutex<()>,
    live: DashMap<EventId, Arc<LiveEvent>>,
    closing: Closing,
}

/// An event created, or the first answer to the same `Idempotency-Key` again.
#[derive(Debug)]
pub(crate) struct Created {
    pub view: EventView,
    /// The answer given to an earlier request with the same key.
    pub replayed: bool,
}

/// A creation that must happen once: whose key, and what the request was.
pub(crate) struct Once {
    owner: String,
    key: IdempotencyKey,
    request_hash: String,
}

impl Events {
    /// The events service over `store`, preparing `media` and starting `floors`.
    pub(crate) fn new(
        settings: &Settings,
        store: Store,
        media: Arc<Media>,
        floors: Arc<Floors>,
        closing: Closing,
    ) -> Self {
        Self {
            settings: EventSettings {
                capacity: settings.capacity,
                max_length: settings.max_event_length,
                max_per_organiser: settings.max_events_per_organiser,
                public_url: settings.links_url().to_owned(),
                public_ip: settings.public_ip(),
                mix_complexity: settings.mix_complexity,
                mix_bitrate: settings.mix_bitrate,
            },
            capacity: std::sync::Mutex::new(settings.capacity),
            store,
            media,
            floors,
            reserving: tokio::sync::Mutex::new(()),
            live: DashMap::new(),
            closing,
        }
    }

    /// After a restart (or a crash): the floor of every stored event whose media window is still
    /// open is started again, an RTP floor on its stored port. Past events bind no port, follow
    /// no BBB meeting and hold no state.
    pub(crate) async fn resume_floors(&self) -> Result<(), EventError> {
        let now = Utc::now();
        for event in self.store.events().await? {
            if window(&event).closes() <= now {
                continue;
            }
            let layout = self.remember(&event).layout.clone();
            self.floors.resume(&event, layout).await;
        }
        Ok(())
    }

    /// Create an event after validating the request; its secrets are in the returned view only.
    /// `dry_run`: only check (validation, quota and capacity), store nothing. With a `key`, a
    /// retry of the same request gets the first answer again.
    pub(crate) async fn create(
        &self,
        caller: Caller,
        request: NewEvent,
        dry_run: bool,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, EventError> {
        self.check_length(request.starts_at, request.ends_at)?;
        let once = key.map(|key| Once {
            owner: caller.organiser().map_or_else(|| "admin".to_owned(), |o| format!("organiser:{o}")),
            key,
            request_hash: request_hash(&request),
        });
        self.create_with_id(EventId::generate(), request, caller.organiser(), dry_run, once.as_ref()).await
    }

    /// Create an event with a given id (the demo event: no length limit). The floor is started (an RTP floor's port bound) while the
    /// booking holds its lock, and the event is stored with that port, its idempotency key and
    /// the answer in the booking's one transaction: a stored event always has its port.
    pub(crate) async fn create_with_id(
        &self,
        id: EventId,
        request: NewEvent,
        organiser: Option<i64>,
        dry_run: bool,
        once: Option<&Once>,
    ) -> Result<Created, EventError> {
        self.create_event(id, request, organiser, None, dry_run, once).await
    }

    /// Create the interpretation of BBB meeting `room` (its internal id), as the admin's: started
    /// in the meeting by a moderator, or from the meeting's metadata.
    pub(crate) async fn create_in_room(&self, request: NewEvent, room: &str) -> Result<Created, EventError> {
        self.check_length(request.starts_at, request.ends_at)?;
        self.create_event(EventId::generate(), request, None, Some(room), false, None).await
    }

    async fn create_event(
        &self,
        id: EventId,
        request: NewEvent,
        organiser: Option<i64>,
        room: Option<&str>,
        dry_run: bool,
        once: Option<&Once>,
    ) -> Result<Created, EventError> {
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
                FloorRequest::Rtp { .. } => FloorKind::Rtp,
                FloorRequest::Bbb { .. } => FloorKind::Bbb,
                FloorRequest::Peer { .. } => FloorKind::Peer,
            },
            rtp_port: None,
            rtp_allow: match &request.floor {
                FloorRequest::Rtp { allow } => SourceAllow::parse(allow)?,
                _ => SourceAllow::default(),
            },
            bbb_room: room.map(str::to_owned),
            peer: match &request.floor {
                FloorRequest::Peer { url, token } => {
                    let (url, event) = request::peer_link(url)?;
                    Some(crate::store::PeerFloor { url, event, token: token.trim().to_owned() })
                }
                _ => None,
            },
            floor_token_hash: token.hash(),
            floor_under_db: request.floor_under_interpretation_db,
            organiser,
            bbb_meeting_id: match &request.floor {
                FloorRequest::Bbb { meeting_id } => Some(meeting_id.trim().to_owned()),
                _ => None,
            },
        };
        if event.floor_kind == FloorKind::Bbb {
            self.floors.check_bbb()?;
        }
        let _reserving = self.reserving.lock().await;
        let mut booking = self.store.booking().await?;
        let now = Utc::now();
        if let Some(once) = once.filter(|_| !dry_run)
            && let Some(kept) = booking.kept_answer(&once.owner, &once.key, now).await?
        {
            if kept.request_hash != once.request_hash {
                return Err(EventError::KeyReused);
            }
            let view = serde_json::from_str(&kept.response)
                .map_err(|e| StoreError::Corrupt { id: kept.event.to_string(), why: e.to_string() })?;
            return Ok(Created { view, replayed: true });
        }
        if let Some(organiser) = organiser {
            let limit = self.settings.max_per_organiser;
            if booking.events_not_over(organiser, now, &event.id).await? >= limit {
                return Err(EventError::TooManyEvents { limit });
            }
        }
        self.check_capacity(&mut booking, &event).await?;
        if dry_run {
            return Ok(Created { view: self.view(&event, None), replayed: false }); // rolls back
        }
        // An event whose media window has closed already binds no port and follows no meeting.
        if window(&event).closes() > now {
            let layout = self.remember(&event).layout.clone();
            match self.floors.start(&event, layout).await {
                Ok(port) => event.rtp_port = port,
                Err(e) => {
                    self.undo(&event.id);
                    return Err(e.into());
                }
            }
        }
        let view = self.view(&event, Some(&token));
        if let Err(e) = store_event(booking, &event, once, &view, now).await {
            self.undo(&event.id);
            return Err(e.into());
        }
        info!(event = %event.id, title = %event.title, "event created");
        Ok(Created { view, replayed: false })
    }

    /// An event that was not stored after all: its floor and state go.
    fn undo(&self, id: &EventId) {
        self.forget(id);
        self.floors.stop(id);
        self.media.end_event(id);
        self.closing.unschedule(id);
    }

    /// Whether an event of this window is within the node's maximum length.
    fn check_length(&self, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<(), EventError> {
        let max = self.settings.max_length;
        if ends_at - starts_at > max {
            let days = (ends_at - starts_at).num_seconds() as f64 / 86_400.0;
            return Err(EventError::TooLong { max_days: max.num_days(), days });
        }
        Ok(())
    }

    /// Whether `event` fits beside every other live event overlapping its window, seen in
    /// `booking` (which holds the lock until the caller writes the event and commits).
    async fn check_capacity(&self, booking: &mut Booking, event: &Event) -> Result<(), EventError> {
        let others = booking.overlapping(event.starts_at, event.ends_at, Some(&event.id)).await?;
        let reserved: Vec<Reservation> = others.iter().map(reservation).collect();
        crate::capacity::check(self.capacity(), &reserved, &reservation(event))?;
        Ok(())
    }

    /// The capacity events are booked against (the node's, or its cluster's).
    pub(crate) fn capacity(&self) -> Capacity {
        self.capacity.lock().map_or(self.settings.capacity, |c| *c)
    }

    /// Book against `capacity` from now on (a cluster's nodes came or went); None: this node's own.
    pub(crate) fn set_capacity(&self, capacity: Option<Capacity>) {
        if let Ok(mut c) = self.capacity.lock() {
            *c = capacity.unwrap_or(self.settings.capacity);
        }
    }

    /// Free capacity over a time range.
    pub(crate) async fn free_capacity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FreeSegment>, EventError> {
        if to <= from {
            return Err(EventError::RangeBackwards { from, to });
        }
        if to - from > chrono::Duration::days(400) {
            return Err(EventError::RangeTooLong);
        }
        let events = self.store.events_overlapping(from, to, None).await?;
        let reserved: Vec<Reservation> = events.iter().map(reservation).collect();
        Ok(crate::capacity::free_over(self.capacity(), &reserved, from, to))
    }

    /// Change an event; capacity is checked again as for a new one.
    pub(crate) async fn change(&self, id: &EventId, change: EventChange) -> Result<EventView, EventError> {
        let _reserving = self.reserving.lock().await;
        let event = self.event(id).await?;
        self.apply_change(id, event, change).await
    }

    /// Move a running event's end to `ends_at` (its BBB meeting runs on). An event that ended
    /// meanwhile (its moderator stopped it) stays ended: `None`. Checked under the same lock as
    /// [`Self::end_now`], so a stop is never undone by an extension decided just before it.
    pub(crate) async fn extend(
        &self,
        id: &EventId,
        ends_at: DateTime<Utc>,
    ) -> Result<Option<EventView>, EventError> {
        let _reserving = self.reserving.lock().await;
        let event = self.event(id).await?;
        if event.ends_at <= Utc::now() {
            return Ok(None);
        }
        let change = EventChange { ends_at: Some(ends_at), ..EventChange::default() };
        self.apply_change(id, event, change).await.map(Some)
    }

    /// `change` applied to `event` (read under the reservation lock, which the caller holds).
    async fn apply_change(
        &self,
        id: &EventId,
        event: Event,
        change: EventChange,
    ) -> Result<EventView, EventError> {
        if change.languages.as_ref().is_some_and(|l| l != &event.languages)
            && self.media.sessions().iter().any(|s| &s.event == id)
        {
            return Err(EventError::LanguagesLocked);
        }
        let event = changed(event, change)?;
        self.check_length(event.starts_at, event.ends_at)?;
        let mut booking = self.store.booking().await?;
        self.check_capacity(&mut booking, &event).await?;
        if !booking.update(&event).await? {
            return Err(EventError::NoEvent(id.clone()));
        }
        booking.commit().await?;
        self.floors.set_ends_at(id, event.ends_at);
        self.live.remove(id);
        self.remember(&event);
        info!(event = %id, "event changed");
        Ok(self.view(&event, None))
    }

    /// Cancel an event: its capacity is free, its sessions end, its floor stops.
    pub(crate) async fn cancel(&self, id: &EventId) -> Result<(), EventError> {
        if !self.store.cancel_event(id).await? {
            return Err(EventError::NoEvent(id.clone()));
        }
        self.undo(id);
        info!(event = %id, "event cancelled");
        Ok(())
    }

    /// End an event now (its BBB meeting ended, or its moderator stopped it): it ends at this
    /// moment, its sessions end, its floor stops, and the rest of its window is free capacity.
    /// Its usage stays as it was. An event that ended already is left as it is.
    pub(crate) async fn end_now(&self, id: &EventId) -> Result<(), EventError> {
        let _reserving = self.reserving.lock().await;
        let mut event = self.event(id).await?;
        let now = Utc::now();
        if event.ends_at > now {
            event.ends_at = now.max(event.starts_at + chrono::Duration::seconds(1));
            let mut booking = self.store.booking().await?;
            if !booking.update(&event).await? {
                return Err(EventError::NoEvent(id.clone()));
            }
            booking.commit().await?;
        }
        self.undo(id);
        info!(event = %id, "event ended");
        Ok(())
    }

    /// The event's window closed: its cached live form goes (the media side prunes its own).
    pub(crate) fn forget(&self, id: &EventId) {
        self.live.remove(id);
    }

    /// Events with a cached live form.
    pub(crate) fn held(&self) -> usize {
        self.live.len()
    }

    /// A stored event.
    pub(crate) async fn event(&self, id: &EventId) -> Result<Event, EventError> {
        self.store.event(id).await?.ok_or_else(|| EventError::NoEvent(id.clone()))
    }

    /// An event the caller may manage (others' events are "not found", not "forbidden").
    pub(crate) async fn owned(&self, caller: Caller, id: &EventId) -> Result<Event, EventError> {
        let event = self.event(id).await?;
        if caller.owns(&event) { Ok(event) } else { Err(EventError::NoEvent(id.clone())) }
    }

    /// The events the caller may see.
    pub(crate) async fn visible_to(&self, caller: Caller) -> Result<Vec<Event>, EventError> {
        Ok(self.store.events().await?.into_iter().filter(|e| caller.owns(e)).collect())
    }

    /// A live event (cached: read on every join).
    pub(crate) async fn live(&self, id: &EventId) -> Result<Arc<LiveEvent>, EventError> {
        if let Some(live) = self.live.get(id) {
            return Ok(live.clone());
        }
        let event = self.event(id).await?;
        Ok(self.remember(&event))
    }

    /// The live form of a stored event, cached; the shards get ready for its media.
    pub(crate) fn remember(&self, event: &Event) -> Arc<LiveEvent> {
        let layout = Arc::new(EventLayout {
            id: event.id.clone(),
            floor: event.floor_language.clone(),
            languages: event.languages.clone(),
            rtp_allow: event.rtp_allow.clone(),
            mix: event.floor_under_db.map(|floor_db| MixSettings {
                floor_db,
                complexity: self.settings.mix_complexity,
                bitrate: self.settings.mix_bitrate,
            }),
            cascaded: event.floor_kind == FloorKind::Peer,
            relayed: event.floor_kind == FloorKind::Peer,
        });
        let live = Arc::new(LiveEvent {
            layout: layout.clone(),
            window: window(event),
            expected_listeners: event.expected_listeners,
        });
        self.closing.schedule(&event.id, live.window.closes());
        if self.live.insert(event.id.clone(), live.clone()).is_none() {
            self.media.prepare_event(layout);
        }
        live
    }

    /// The organiser's view of an event; `token` is shown only when just created.
    pub(crate) fn view(&self, event: &Event, token: Option<&Token>) -> EventView {
        let base = &self.settings.public_url;
        let host = self.settings.public_ip;
        EventView {
            id: event.id.clone(),
            title: event.title.clone(),
            floor_language: event.floor_language.clone(),
            languages: event.languages.clone(),
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            expected_listeners: event.expected_listeners,
            listener_url: self.listener_url(&event.id),
            floor: FloorView {
                kind: event.floor_kind,
                whip_url: format!("{base}/whip/{}/floor", event.id),
                token: token.map(|t| t.secret().to_owned()),
                rtp_url: event.rtp_port.map(|p| format!("rtp://{}", SocketAddr::new(host, p))),
                allow: event.rtp_allow.entries(),
                meeting_id: event.bbb_meeting_id.clone(),
                state: self.floors.status(&event.id),
                peer_url: event.peer.as_ref().map(|p| format!("{}/e/{}", p.url, p.event)),
            },
            channels: channels(event)
                .map(|(language, kind)| ChannelView { language: language.clone(), kind })
                .collect(),
            floor_under_interpretation_db: event.floor_under_db,
        }
    }

    /// Where listeners open an event.
    pub(crate) fn listener_url(&self, id: &EventId) -> String {
        format!("{}/e/{id}", self.settings.public_url)
    }
}

/// An event's window.
fn window(event: &Event) -> Window {
    Window { starts_at: event.starts_at, ends_at: event.ends_at, sharp_end: event.bbb_room.is_some() }
}

/// The SHA-256 of a request as JSON (its fields in declaration order), in hex.
fn request_hash(request: &NewEvent) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(serde_json::to_vec(request).unwrap_or_default()))
}

/// Write a new event, with its idempotency key and answer, in the booking, and commit.
async fn store_event(
    mut booking: Booking,
    event: &Event,
    once: Option<&Once>,
    view: &EventView,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    booking.insert(event).await?;
    if let Some(once) = once {
        let answer = KeptAnswer {
            request_hash: once.request_hash.clone(),
            event: event.id.clone(),
            response: serde_json::to_string(view).unwrap_or_default(),
        };
        booking.keep_answer(&once.owner, &once.key, &answer, now).await?;
    }
    booking.commit().await
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

/// `event` with `change` applied, checked by the rules of a new request.
pub(crate) fn changed(mut event: Event, change: EventChange) -> Result<Event, EventError> {
    if let Some(languages) = change.languages {
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
        recording: None,
    })?;
    Ok(event)
}
