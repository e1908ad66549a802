//! The running relay: the services wired together (the composition root), and the few flows that
//! cross them — a listener joining (event → admission → media → usage), a channel switch, a floor
//! publish, a booth action, the live and public views — plus the back-channel that records what
//! the shards report ([`MediaNote`] → admission, booths, usage).
//!
//! Each service has one job: [`Auth`] (who calls), [`Events`] (events, capacity, live layouts),
//! [`Admission`] (who may listen now), [`Floors`] (RTP and BBB floors), [`Booths`] (booth links and
//! the booth desk). HTTP handlers call these, never the store or the media directly.

pub(crate) mod lifecycle;
pub(crate) mod meeting_watch;
pub(crate) mod meetings;
pub(crate) mod recording;
pub(crate) mod views;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;

pub(crate) use views::{
    Channels, Live, LiveChannel, LiveFloor, LiveOnAir, LiveSlowDown, PublicChannel, PublicEvent,
};

use crate::admission::{Admission, AdmissionError};
use crate::auth::{Auth, AuthError, Caller};
use crate::bbb::floor::FloorState;
use crate::booths::desk::BoothAction;
use crate::booths::{BoothError, BoothState, Booths};
use crate::config::Settings;
use crate::connecting::{Connecting, ConnectingError, ConnectingLimits};
use crate::events::{Created, EventError, EventView, Events, FloorRequest, NewEvent, channels};
use crate::floors::{FloorError, Floors};
use crate::ids::{EventId, IdempotencyKey, InterpreterId, Language, SessionId};
use crate::limits::{Limiter, Rate};
use crate::net::{Media, MediaConfig, MediaNote, NetError, SessionKind, ShardStats};
use crate::recorder::Recorder;
use crate::store::interpreters::Interpreter;
use crate::store::recordings::{RecordingPlan, RecordingState};
use crate::store::{FloorKind, Store, StoreError};
use crate::usage::UsageReport;

/// What can go wrong in a flow that crosses services.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    #[error(transparent)]
    Connecting(#[from] ConnectingError),
    #[error(transparent)]
    Booth(#[from] BoothError),
    #[error(transparent)]
    Floor(#[from] FloorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    /// A channel switch for a session that is not a live listener.
    #[error("no listening session {0}")]
    NoListeningSession(SessionId),
    /// Too many listener joins from one client address.
    #[error("too many listeners joined from your address just now; try again in {0} s")]
    TooManyJoins(u32),
    /// Too many channel switches from one session.
    #[error("too many channel switches; try again in {0} s")]
    TooManySwitches(u32),
    /// Too many booth actions from one booth link.
    #[error("too many booth actions at once; nothing was changed, try again in {0} s")]
    TooManyBoothActions(u32),
    #[error(transparent)]
    Meeting(#[from] meetings::MeetingError),
    #[error(transparent)]
    Recording(#[from] crate::recording::RecordingError),
    #[error(transparent)]
    Id(#[from] crate::ids::IdError),
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A cluster session URL that is not a cascade.
    #[error("no cascade session {0}")]
    NotCascade(SessionId),
    /// An edge's cascade offer names other channels than the event has (it changed).
    #[error("the event's channels are {0} now; subscribe again with these")]
    Layout(String),
}

/// Where a media request is served.
#[derive(Debug)]
pub(crate) enum Served {
    /// Here: the session and the SDP answer.
    Here(SessionId, String),
    /// On another node of the cluster: the URL to send the same request to (a 307).
    Elsewhere(String),
}

/// The relay's services.
pub(crate) struct App {
    pub settings: Settings,
    pub auth: Auth,
    pub events: Events,
    pub admission: Admission,
    /// Listeners whose peer has not connected yet.
    pub connecting: Connecting,
    pub floors: Arc<Floors>,
    pub booths: Booths,
    /// Recordings of events' channels (files on this node).
    pub recordings: Arc<crate::recording::Recordings>,
    media: Arc<Media>,
    store: Store,
    /// Usage facts, written in batches.
    recorder: Recorder,
    /// This node's name in the usage tables.
    node: String,
    /// Channel switches per listening session: a page's language picker, not a script.
    switches: Mutex<Limiter<SessionId>>,
    /// Listener joins per client address.
    joins: Mutex<Limiter<IpAddr>>,
    /// Booth actions per booth link: a person at a console, not a script.
    booth_actions: Mutex<Limiter<InterpreterId>>,
    /// This node in its cluster (None: a single node).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Who a BBB session token belongs to (None: no BBB server configured).
    sessions: Option<crate::bbb::session::SessionCheck>,
    /// BBB's API, for meeting names and the meeting watcher (None: no BBB server configured).
    floors_api: Option<Arc<crate::bbb::api::BbbApi>>,
    /// Held while a meeting's interpretation is started: one per meeting, even when two
    /// moderators click at once.
    starting: tokio::sync::Mutex<()>,
}

/// How long `/healthz` waits for the database.
const STORE_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Channel switches a session may make at once, and per second after that.
const SWITCH_RATE: Rate = Rate { burst: 10.0, per_second: 1.0 };

/// Booth actions a booth link may make at once, and per second after that (a cough is two).
pub(crate) const BOOTH_ACTION_RATE: Rate = Rate { burst: 20.0, per_second: 5.0 };

impl App {
    /// Open the store, start the media shards and the services, resume stored floors.
    pub(crate) async fn start(settings: Settings) -> Result<Arc<Self>, AppError> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|source| AppError::DataDir { path: settings.data_dir.display().to_string(), source })?;
        let store = match &settings.database_url {
            Some(url) => Store::open(url).await?,
            None => Store::open_in(&settings.data_dir).await?,
        };
        let node = lifecycle::node_id(&settings)?;
        lifecycle::close_after_crash(&store, &node).await?;
        let recorder = Recorder::start(store.clone(), node.clone(), settings.usage);
        let auth = Auth::new(&settings, store.clone())?;
        let (notes_tx, notes) = tokio::sync::mpsc::unbounded_channel();
        let media = Arc::new(Media::start(
            &MediaConfig {
                public_ips: settings.public_ips.clone(),
                bind_ip: settings.media_bind_ip(),
                first_port: settings.media_port,
                shards: settings.media_shards,
                connect_timeout: settings.connect_timeout,
            },
            Some(notes_tx),
        )?);
        let recordings = crate::recording::Recordings::start(
            settings.recording.clone(),
            store.clone(),
            media.clone(),
            node.clone(),
            settings.cluster.as_ref().map(|c| c.secret.clone()),
        )
        .await?;
        crate::bbb::install_default_crypto();
        let floors = Arc::new(Floors::new(media.clone(), settings.bbb.clone(), settings.cluster.is_some())?);
        let (closing, closes) = lifecycle::Closing::new();
        let events = Events::new(&settings, store.clone(), media.clone(), floors.clone(), closing);
        let booths =
            Booths::new(store.clone(), recorder.clone(), media.clone(), settings.links_url().to_owned());
        let join_rate = Rate { burst: settings.joins_burst, per_second: settings.joins_per_second };
        let (sessions, floors_api) = match &settings.bbb {
            Some(bbb) => {
                let check = match &bbb.session_check {
                    Some(url) => url.clone(),
                    None => crate::bbb::session::check_url(&bbb.url).map_err(FloorError::Bbb)?,
                };
                let sessions = crate::bbb::session::SessionCheck::new(check).map_err(FloorError::Bbb)?;
                let api = crate::bbb::api::BbbApi::new(bbb.clone()).map_err(FloorError::Bbb)?;
                (Some(sessions), Some(Arc::new(api)))
            }
            None => (None, None),
        };
        let (cluster, cluster_notes) = match &settings.cluster {
            Some(config) => {
                let (cluster, changes) = crate::cluster::Cluster::start(
                    config.clone(),
                    crate::ids::NodeId::parse(&node)?,
                    settings.public_url.clone(),
                    settings.public_ip(),
                    settings.capacity,
                    media.clone(),
                )?;
                (Some(cluster), Some(changes))
            }
            None => (None, None),
        };
        let app = Arc::new(Self {
            cluster,
            admission: Admission::new(settings.headroom, settings.capacity.listeners),
            connecting: Connecting::new(ConnectingLimits {
                per_node: settings.connecting_per_node,
                per_client: settings.connecting_per_client,
            }),
            settings,
            auth,
            events,
            floors,
            booths,
            recordings,
            media,
            store,
            recorder,
            node,
            switches: Mutex::new(Limiter::new(SWITCH_RATE, 10_000)),
            joins: Mutex::new(Limiter::new(join_rate, 10_000)),
            booth_actions: Mutex::new(Limiter::new(BOOTH_ACTION_RATE, 10_000)),
            sessions,
            floors_api,
            starting: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(follow_notes(Arc::downgrade(&app), notes));
        if let Some(cluster) = &app.cluster {
            tokio::spawn(follow_cluster_capacity(Arc::downgrade(&app), cluster.watch_nodes()));
        }
        if let Some(notes) = cluster_notes {
            tokio::spawn(follow_cluster(Arc::downgrade(&app), notes));
        }
        tokio::spawn(lifecycle::close_windows(Arc::downgrade(&app), closes));
        tokio::spawn(recording::watch(Arc::downgrade(&app)));
        if let Some(api) = app.floors_api.clone() {
            tokio::spawn(meeting_watch::watch_meetings(Arc::downgrade(&app), api));
        }
        app.events.resume_floors().await?;
        Ok(app)
    }

    /// The store (for tools and tests; handlers go through the services).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// A WHEP listener joins: window, channel, (in a cluster: the node it is served on, and
    /// whether this node is the event's origin or an edge), admission, media, then the usage fact.
    pub(crate) async fn listen(
        &self,
        event: &EventId,
        language: Language,
        client: IpAddr,
        offer: String,
    ) -> Result<Served, AppError> {
        let allowed = self.joins.lock().map_or(Ok(()), |mut j| j.check(&client, Instant::now()));
        if let Err(wait) = allowed {
            return Err(AppError::TooManyJoins(wait.as_secs_f64().ceil().max(1.0) as u32));
        }
        let live = self.events.live(event).await?;
        live.check_channel(&language)?;
        live.window.check(Utc::now())?;
        let layout = match &self.cluster {
            None => live.layout.clone(),
            Some(cluster) => {
                if let crate::cluster::Placement::There(node) = cluster.place(event)? {
                    return Ok(Served::Elsewhere(format!("{node}/whep/{event}/{language}")));
                }
                match cluster.listener_origin(event).await {
                    Ok(crate::cluster::Origin::Here) => live.layout.clone(),
                    Ok(crate::cluster::Origin::There(_)) => cluster.edge_layout(&live.layout),
                    // Redis away: what this node already serves goes on.
                    Err(_) if cluster.is_origin(event) => live.layout.clone(),
                    Err(e) => match cluster.running_edge(event) {
                        Some(layout) => layout,
                        None => return Err(e.into()),
                    },
                }
            }
        };
        let admitted = match self.admission.admit(event, live.expected_listeners) {
            // Full after all (joins in flight the last heartbeat did not count): another node.
            Err(AdmissionError::NodeFull) if self.cluster.is_some() => {
                match self.cluster.as_ref().and_then(|c| c.place_elsewhere(event)) {
                    Some(node) => return Ok(Served::Elsewhere(format!("{node}/whep/{event}/{language}"))),
                    None => return Err(AdmissionError::NodeFull.into()),
                }
            }
            admitted => admitted?,
        };
        let connecting = self.connecting.hold(client)?;
        let (session, answer) = self.media.listen(layout, language.clone(), offer).await?;
        admitted.keep();
        connecting.attach(session.clone());
        self.record_listening(event, &session, Some(language));
        Ok(Served::Here(session, answer))
    }

    /// Where an event's sources publish: `Some(url)` when another node of the cluster is its
    /// origin (`path` on that node), None on a single node or at the origin.
    async fn at_origin(&self, event: &EventId, path: &str) -> Result<Option<String>, AppError> {
        let Some(cluster) = &self.cluster else { return Ok(None) };
        match cluster.ensure_origin(event).await {
            Ok(crate::cluster::Origin::Here) => Ok(None),
            Ok(crate::cluster::Origin::There(node)) => Ok(Some(format!("{}{path}", node.url))),
            Err(_) if cluster.is_origin(event) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// In a cluster, where a booth's calls go when this node is not the event's origin: `path`
    /// on the origin (None: here).
    pub(crate) async fn booth_origin(
        &self,
        me: &Interpreter,
        path: &str,
    ) -> Result<Option<String>, AppError> {
        self.at_origin(&me.event, path).await
    }

    /// An edge node subscribes to every channel of `event` (`channels`: the channel order it
    /// offers, as in [`crate::cluster::cascade::CHANNELS_HEADER`]).
    pub(crate) async fn cascade(
        &self,
        event: &EventId,
        channels: &str,
        offer: String,
        subscriber: crate::cluster::Subscriber,
    ) -> Result<Served, AppError> {
        let live = self.events.live(event).await?;
        live.window.check(Utc::now())?;
        let ours = crate::cluster::cascade::channel_list(&live.layout);
        if channels != ours {
            return Err(AppError::Layout(ours));
        }
        if let Some(url) = self.at_origin(event, &format!("/cluster/v1/events/{event}/cascade")).await? {
            return Ok(Served::Elsewhere(url));
        }
        let (session, answer) = self.media.cascade(live.layout.clone(), offer).await?;
        match subscriber {
            crate::cluster::Subscriber::Node => tracing::info!(%event, %session, "an edge subscribed"),
            crate::cluster::Subscriber::Peer(peer) => {
                tracing::info!(%event, %session, %peer, "a peer's edge subscribed");
                let at = crate::store::now_ms();
                self.store.peer_subscribed(&session, event, &peer, &self.node, at).await?;
            }
        }
        Ok(Served::Here(session, answer))
    }

    /// Whether this node holds cascade session `session`.
    pub(crate) fn cascade_state(&self, session: &SessionId) -> Result<(), AppError> {
        match self.media.sessions().get(session).map(|e| e.kind) {
            None => Err(NetError::UnknownSession(session.clone()).into()),
            Some(SessionKind::Cascade) => Ok(()),
            Some(_) => Err(AppError::NotCascade(session.clone())),
        }
    }

    /// End an edge's cascade session.
    pub(crate) async fn end_cascade(&self, session: &SessionId) -> Result<(), AppError> {
        let kind = self.media.sessions().get(session).map(|e| e.kind);
        match kind {
            None => return Err(NetError::UnknownSession(session.clone()).into()),
            Some(SessionKind::Cascade) => {}
            Some(_) => return Err(AppError::NotCascade(session.clone())),
        }
        Ok(self.media.end(session).await?)
    }

    /// A listener switches channel without renegotiating.
    pub(crate) async fn switch_channel(
        &self,
        session: &SessionId,
        language: Language,
    ) -> Result<(), AppError> {
        let event = self
            .media
            .sessions()
            .get(session)
            .filter(|e| e.kind == SessionKind::Listener)
            .map(|e| e.event.clone())
            .ok_or_else(|| AppError::NoListeningSession(session.clone()))?;
        self.events.live(&event).await?.check_channel(&language)?;
        let allowed = self.switches.lock().map_or(Ok(()), |mut s| s.check(session, Instant::now()));
        if let Err(wait) = allowed {
            return Err(AppError::TooManySwitches(wait.as_secs_f64().ceil().max(1.0) as u32));
        }
        self.media.switch(session, 0, language.clone()).await?;
        self.record_listening(&event, session, Some(language));
        Ok(())
    }

    /// End a media session by its URL.
    pub(crate) async fn end_session(&self, session: &SessionId) -> Result<(), AppError> {
        Ok(self.media.end(session).await?)
    }

    /// Publish an event's floor over WHIP with its floor token.
    pub(crate) async fn publish_floor(
        &self,
        event: &EventId,
        token: Option<&str>,
        client: IpAddr,
        offer: String,
    ) -> Result<Served, AppError> {
        let stored = self.events.event(event).await?;
        self.auth.guarded(client, async { self.auth.check_floor_token(&stored, token) }).await?;
        let live = self.events.remember(&stored);
        live.window.check(Utc::now())?;
        if let Some(url) = self.at_origin(event, &format!("/whip/{event}/floor")).await? {
            return Ok(Served::Elsewhere(url));
        }
        let (session, answer) = self.media.publish_floor(live.layout.clone(), offer).await?;
        Ok(Served::Here(session, answer))
    }

    /// An interpreter's booth session (WHIP).
    pub(crate) async fn publish_booth(&self, me: &Interpreter, offer: String) -> Result<Served, AppError> {
        let live = self.events.live(&me.event).await?;
        live.window.check(Utc::now())?;
        if let Some(url) = self.at_origin(&me.event, "/whip/booth").await? {
            return Ok(Served::Elsewhere(url));
        }
        let (session, answer) = self.booths.publish(me, &live, offer).await?;
        Ok(Served::Here(session, answer))
    }

    /// Count one booth action (or attempt) of a booth link against its rate: call before
    /// [`Self::booth_action`], and before even reading what was asked.
    pub(crate) fn booth_rate(&self, me: InterpreterId) -> Result<(), AppError> {
        let allowed = self.booth_actions.lock().map_or(Ok(()), |mut l| l.check(&me, Instant::now()));
        allowed.map_err(|wait| AppError::TooManyBoothActions(wait.as_secs_f64().ceil().max(1.0) as u32))
    }

    /// One booth action of `me` (its rate counted by [`Self::booth_rate`]).
    pub(crate) async fn booth_action(&self, me: &Interpreter, action: BoothAction) -> Result<(), AppError> {
        let live = self.events.live(&me.event).await?;
        self.booths.act(me, &live, action).await?;
        self.tell_edges_on_air(&me.event).await;
        Ok(())
    }

    /// In a cluster, tell the edges who is on air now (after a booth action, or a booth leaving).
    async fn tell_edges_on_air(&self, event: &EventId) {
        let Some(cluster) = &self.cluster else { return };
        let names: HashMap<_, _> = match self.store.interpreters(event).await {
            Ok(all) => all.into_iter().map(|i| (i.id, i.name)).collect(),
            Err(e) => {
                tracing::warn!(%event, error = %e, "on-air not told to the edges");
                return;
            }
        };
        let channels = self
            .booths
            .on_air_now(event)
            .into_iter()
            .map(|(language, (who, muted))| crate::cluster::control::Speaking {
                language,
                interpreter: names.get(&who).cloned(),
                muted,
            })
            .collect();
        cluster.publish(event, crate::cluster::control::Control::OnAir { channels });
    }

    /// Change an event; in a cluster, the other nodes take the new layout and window.
    pub(crate) async fn change_event(
        &self,
        event: &EventId,
        change: crate::events::EventChange,
    ) -> Result<EventView, AppError> {
        let recording = change.recording.clone();
        if let Some(recording) = &recording {
            let now = self.events.event(event).await?;
            let languages = change.languages.as_ref().unwrap_or(&now.languages);
            crate::events::request::check_recorded(recording, &now.floor_language, languages)?;
        }
        let view = self.events.change(event, change).await?;
        if let Some(recording) = recording {
            let on = self.store.recording_plan(event).await?.is_some_and(|p| p.on);
            let plan = RecordingPlan { channels: recording.channels(), on };
            self.store.set_recording_plan(event, Some(&plan)).await?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.publish(event, crate::cluster::control::Control::Layout);
        }
        Ok(view)
    }

    /// Cancel an event: here, and (in a cluster) on every node serving it.
    pub(crate) async fn cancel_event(&self, event: &EventId) -> Result<(), AppError> {
        self.events.cancel(event).await?;
        self.recordings.stop_recording(event, RecordingState::Done).await;
        if let Some(cluster) = &self.cluster {
            cluster.publish(event, crate::cluster::control::Control::Ended);
            cluster.event_ended(event).await;
        }
        Ok(())
    }

    /// An interpreter's view of the booth.
    pub(crate) async fn booth_state(&self, me: &Interpreter) -> Result<BoothState, AppError> {
        let event = self.events.event(&me.event).await?;
        let live = self.events.live(&me.event).await?;
        let listeners = self.media.listeners(&me.event).await;
        let mut state = self.booths.state(me, &event, &live, &listeners).await?;
        state.recording.channels = self.recorded_now(&me.event).await;
        Ok(state)
    }

    /// The organiser's live view of an event.
    pub(crate) async fn live_view(&self, event: &crate::store::Event) -> Result<Live, AppError> {
        self.recorder.flush().await;
        let listeners = self.media.listeners(&event.id).await;
        let on_air = self.booths.on_air_now(&event.id);
        let names: HashMap<_, _> =
            self.store.all_interpreters(&event.id).await?.into_iter().map(|i| (i.id, i.name)).collect();
        let name = |who| names.get(&who).cloned().unwrap_or_default();
        let channels: Vec<LiveChannel> = channels(event)
            .map(|(language, kind)| LiveChannel {
                language: language.clone(),
                label: crate::languages::label(language),
                kind,
                listeners: listeners.get(language).copied().unwrap_or(0),
                on_air: on_air
                    .get(language)
                    .map(|(who, muted)| LiveOnAir { name: name(*who), muted: *muted }),
            })
            .collect();
        let bbb = self.floors.status(&event.id);
        let connected = match event.floor_kind {
            FloorKind::Whip => Some(
                self.media
                    .sessions()
                    .iter()
                    .any(|s| s.event == event.id && s.kind == SessionKind::FloorPublisher),
            ),
            FloorKind::Rtp => None,
            FloorKind::Bbb => Some(bbb.as_ref().is_some_and(|s| s.state == FloorState::Live)),
            FloorKind::Peer => Some(self.floors.peer_running(&event.id).unwrap_or(false)),
        };
        let handovers = self.store.usage_counts(&event.id).await?.handovers;
        let slow_downs = self
            .store
            .slow_downs(&event.id)
            .await?
            .into_iter()
            .filter_map(|s| {
                Some(LiveSlowDown {
                    name: name(s.interpreter),
                    at: chrono::DateTime::from_timestamp_millis(s.at)?,
                })
            })
            .collect();
        Ok(Live {
            floor: LiveFloor { kind: event.floor_kind, connected, bbb },
            listeners: channels.iter().map(|c| c.listeners).sum(),
            channels,
            slow_downs,
            handovers,
        })
    }

    /// What a listener may know: title, window and channels, who speaks on each. No secrets.
    pub(crate) async fn public_channels(&self, id: &EventId) -> Result<Channels, AppError> {
        let event = self.events.event(id).await?;
        let on_air = self.booths.on_air_now(&event.id);
        let names: HashMap<_, _> =
            self.store.interpreters(&event.id).await?.into_iter().map(|i| (i.id, i.name)).collect();
        // An edge of the event knows who is on air from the origin's control messages.
        let remote = self.cluster.as_ref().and_then(|c| c.remote_on_air(&event.id));
        let speaking = |language: &Language| match &remote {
            Some(remote) => {
                remote.iter().find(|s| &s.language == language).and_then(|s| s.interpreter.clone())
            }
            None => on_air.get(language).and_then(|(who, _)| names.get(who).cloned()),
        };
        let channels = channels(&event)
            .map(|(language, kind)| {
                let interpreter = speaking(language);
                PublicChannel {
                    language: language.clone(),
                    kind,
                    label: crate::languages::label(language),
                    speaking: if interpreter.is_some() { "interpreter" } else { "floor" }.to_owned(),
                    interpreter,
                }
            })
            .collect();
        Ok(Channels {
            event: PublicEvent {
                id: event.id,
                title: event.title,
                starts_at: event.starts_at,
                ends_at: event.ends_at,
            },
            channels,
        })
    }

    /// The usage report of an event.
    pub(crate) async fn usage(&self, event: crate::store::Event) -> Result<UsageReport, AppError> {
        self.recorder.flush().await;
        Ok(crate::usage::report(&self.store, event).await?)
    }

    /// Counters of every media shard.
    pub(crate) async fn media_stats(&self) -> Vec<ShardStats> {
        self.media.stats().await
    }

    /// What keeps the node from serving (empty: healthy): a media shard stopped or stuck, or a
    /// database that does not answer a trivial query within [`STORE_PING_TIMEOUT`].
    pub(crate) async fn health(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.media.health().iter().map(ToString::to_string).collect();
        match tokio::time::timeout(STORE_PING_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("the database does not answer ({e})")),
            Err(_) => problems
                .push(format!("the database did not answer within {} s", STORE_PING_TIMEOUT.as_secs())),
        }
        problems
    }

    /// The media handle (operator tools and tests inject faults through it).
    pub(crate) fn media(&self) -> &Media {
        &self.media
    }

    /// Whether the node holds this media session.
    pub(crate) fn session_live(&self, session: &SessionId) -> bool {
        self.media.sessions().contains_key(session)
    }

    /// Live media sessions on the node.
    pub(crate) fn media_sessions(&self) -> usize {
        self.media.sessions().len()
    }

    /// Edges subscribed here (cascade sessions).
    pub(crate) fn cascade_sessions(&self) -> usize {
        self.media.sessions().iter().filter(|s| s.kind == SessionKind::Cascade).count()
    }

    /// The demo event `demo`: English floor from the built-in voice (an RTP floor), French and
    /// German channels. Created on first use, reused afterwards.
    /// Create an event for `caller` (or only check it, `dry_run`). A BBB floor must be a meeting
    /// the caller may take: checked after the request itself, before capacity.
    pub(crate) async fn create_event(
        &self,
        caller: Caller,
        request: NewEvent,
        dry_run: bool,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, AppError> {
        let bbb = matches!(request.floor, FloorRequest::Bbb { .. });
        if let FloorRequest::Bbb { meeting_id } = &request.floor {
            crate::events::validate(&request)?;
            self.auth.may_take_meeting(caller, meeting_id).await?;
        }
        let recording = request.recording.clone();
        let created = self.events.create(caller, request, dry_run, key).await?;
        if let Some(recording) = recording.filter(|_| !dry_run && !created.replayed) {
            let plan = RecordingPlan { channels: recording.channels(), on: true };
            self.store.set_recording_plan(&created.view.id, Some(&plan)).await?;
        }
        if bbb && !dry_run {
            self.take_bbb_origin(&created.view.id).await;
        }
        Ok(created)
    }

    /// In a cluster, the node of the BBB server a BBB-floor event was made on (through its API,
    /// its plugin or its meeting's metadata) takes the event's origin at once: it pulls the
    /// meeting's audio from its own BBB server, and the floor is there before anyone joins. (No
    /// harm when another node holds it already: that one goes on.)
    pub(crate) async fn take_bbb_origin(&self, event: &EventId) {
        let (Some(cluster), Some(_)) = (&self.cluster, &self.floors_api) else { return };
        match cluster.ensure_origin(event).await {
            // The floor starts now: it is there when the answer is.
            Ok(crate::cluster::Origin::Here) => self.start_pulled_floor(event).await,
            Ok(crate::cluster::Origin::There(_)) => {}
            Err(e) => {
                tracing::warn!(%event, error = %e, "the BBB host's node could not take the event's origin yet")
            }
        }
    }

    /// Start the floor Tolk pulls itself (BBB, peer) of an event this node is the origin of,
    /// unless it runs or the event is not in its window.
    async fn start_pulled_floor(&self, id: &EventId) {
        let Ok(event) = self.events.event(id).await else { return };
        if !matches!(event.floor_kind, FloorKind::Bbb | FloorKind::Peer) {
            return;
        }
        let live = self.events.remember(&event);
        if live.window.check(Utc::now()).is_err() {
            return;
        }
        if let Err(e) = self.floors.start_pulled(&event, live.layout.clone()).await {
            tracing::warn!(event = %id, error = %e, "the origin could not take the floor");
        }
    }

    pub(crate) async fn ensure_demo(&self) -> Result<EventView, AppError> {
        let id = EventId::parse("demo")?;
        if let Some(event) = self.store.event(&id).await? {
            return Ok(self.events.view(&event, None));
        }
        let now = Utc::now();
        let lang = Language::parse;
        let request = NewEvent {
            title: "Tolk demo".into(),
            floor_language: lang("en")?,
            languages: vec![lang("fr")?, lang("de")?],
            starts_at: now - chrono::Duration::hours(1),
            ends_at: now + chrono::Duration::days(3650),
            expected_listeners: 100,
            floor: FloorRequest::Rtp { allow: Vec::new() },
            floor_under_interpretation_db: None,
            recording: None,
        };
        Ok(self.events.create_with_id(id, request, None, false, None).await?.view)
    }
}

/// What the cluster says: run the floors Tolk pulls itself (BBB, peer) where the event's origin
/// is (start them when this node takes it, stop them when it loses it); end an event another
/// node cancelled.
async fn follow_cluster(app: std::sync::Weak<App>, mut notes: crate::cluster::ClusterNotes) {
    use crate::cluster::ClusterNote;
    while let Some(note) = notes.recv().await {
        let Some(app) = app.upgrade() else { return };
        let id = match note {
            ClusterNote::Origin(id, false) => {
                app.floors.stop(&id);
                continue;
            }
            ClusterNote::Ended(id) => {
                app.close_window(&id).await;
                continue;
            }
            ClusterNote::Changed(id) => {
                // Read again from the store at the next use (a new layout, a new window).
                app.events.forget(&id);
                continue;
            }
            ClusterNote::Origin(id, true) => id,
        };
        app.start_pulled_floor(&id).await;
    }
}

/// Book events against what the cluster's live nodes carry together, as nodes come and go.
async fn follow_cluster_capacity(
    app: std::sync::Weak<App>,
    mut nodes: tokio::sync::watch::Receiver<Vec<crate::cluster::node::NodeInfo>>,
) {
    while nodes.changed().await.is_ok() {
        let Some(app) = app.upgrade() else { return };
        let capacity = crate::cluster::placement::cluster_capacity(&nodes.borrow_and_update());
        if let Some(c) = capacity {
            tracing::info!(listeners = c.listeners, channels = c.channels, "the cluster's capacity");
        }
        app.events.set_capacity(capacity);
    }
}

/// Record what the shards report: listeners leaving, interpreters dropping off.
async fn follow_notes(app: std::sync::Weak<App>, mut notes: tokio::sync::mpsc::UnboundedReceiver<MediaNote>) {
    while let Some(note) = notes.recv().await {
        let Some(app) = app.upgrade() else { return };
        match note {
            MediaNote::Connected { session } => app.connecting.done(&session),
            MediaNote::SessionEnded { session, event, kind: Some(SessionKind::Listener) } => {
                app.connecting.done(&session);
                app.admission.release(&event);
                if let Ok(mut switches) = app.switches.lock() {
                    switches.forget(&session);
                }
                app.record_listening(&event, &session, None);
                if let Some(cluster) = &app.cluster {
                    cluster.listener_left(&event).await;
                }
            }
            MediaNote::SessionEnded { session, event, kind: Some(SessionKind::Booth(interpreter)) } => {
                app.booths.session_ended(&event, interpreter, &session).await;
                app.tell_edges_on_air(&event).await;
            }
            MediaNote::SessionEnded { session, kind: Some(SessionKind::Cascade), .. } => {
                if let Err(e) = app.store.peer_unsubscribed(&session, crate::store::now_ms()).await {
                    tracing::warn!(error = %e, "a peer's subscription end was not recorded");
                }
            }
            MediaNote::SessionEnded { .. } => {}
        }
    }
}
