//! Recording every language channel: one Ogg Opus file (RFC 7845) per recorded channel and part,
//! written from the packets listeners get — pass-through channels are neither decoded nor
//! re-encoded, a mixed channel records its mix. Every file of a part shares one time base (the
//! part's start), so the languages line up with each other and with the floor.
//!
//! - [`track`]: the pure rules of one file (placement on the time base, gaps, consent);
//! - [`ogg`], [`opus`]: pages and packets, no IO;
//! - [`writer`]: the thread that owns the open files (the shards hand it packets through a
//!   bounded tap and never wait for it);
//! - [`files`]: the recording directory (paths, free space, sealing a crashed file);
//! - [`tickets`]: the download cookie's tickets (no token in a URL);
//! - [`zip`]: every file of an event as one download; [`views`]: what organisers read and send;
//! - this module: the service (start, stop, consent, listing, deleting, retention, metrics).

#[doc(hidden)]
pub mod bench;
pub(crate) mod files;
pub(crate) mod ogg;
pub(crate) mod opus;
pub(crate) mod tickets;
pub(crate) mod track;
pub(crate) mod views;
pub(crate) mod writer;
pub(crate) mod zip;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use tracing::{info, warn};

use crate::ids::{EventId, InterpreterId, Language, RecordingId};
use crate::media::tap::{Tap, Tapped};
use crate::net::{EventLayout, Media, NetError};
use crate::store::recordings::{
    RecordedChannels, RecordingPlan, RecordingRow, RecordingState, StoredStretch,
};
use crate::store::{Store, StoreError, now_ms};
use writer::{Consent, FileOrder, Order, WriterCounters, WriterNote};

/// What can go wrong with recordings.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Not enough room where recordings go.
    #[error(
        "not enough free disk space to record: {free_mb} MB free where recordings go, at least {needed_mb} MB needed; free some space or delete old recordings"
    )]
    DiskFull {
        /// Free space now, in MB.
        free_mb: u64,
        /// What recording needs, in MB.
        needed_mb: u64,
    },
    /// A recorded channel the event does not have.
    #[error("recording.channels: the event has no '{language}' channel; its channels are {channels}")]
    NoChannel {
        /// The language asked for.
        language: Language,
        /// The event's channels.
        channels: String,
    },
    /// An empty list of channels.
    #[error("recording.channels must be \"all\" or a list of at least one of the event's languages")]
    NoChannels,
    /// Recording is switched on outside the event's media window.
    #[error(
        "the event's media is not open now (it opens an hour before the event starts and closes when it ends)"
    )]
    NotOpen,
    /// No such file in the event.
    #[error("the event has no recording {0}")]
    NoRecording(RecordingId),
    /// The file is still being written.
    #[error("recording {0} is being written; stop the recording before deleting it")]
    StillRecording(RecordingId),
    /// The file is on another node of the cluster.
    #[error("recording {id} is kept on node {node}; ask that node")]
    Elsewhere {
        /// The file.
        id: RecordingId,
        /// The node that has it.
        node: String,
    },
    /// An event without files asks for all of them.
    #[error("the event has no recordings on this node")]
    NothingToDownload,
    /// The file is gone from the disk (deleted by hand).
    #[error("the file of recording {0} is missing from the disk")]
    Missing(RecordingId),
    /// The writer could not start the files.
    #[error("the recording could not start: {0}")]
    Writer(String),
    /// The recording directory cannot be used.
    #[error("the recording directory {path} cannot be used: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The media shards failed.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// How recording is set up on a node.
#[derive(Debug, Clone)]
pub struct RecordingSettings {
    /// Where files go (`<data_dir>/recordings` by default).
    pub dir: PathBuf,
    /// Files are deleted this many days after they end (None: kept until deleted).
    pub retention_days: Option<u32>,
    /// Recording does not start with less free space than this.
    pub min_free_bytes: u64,
}

/// The tap's queue: packets waiting for the writer (~10 s of 30 channels).
const TAP_QUEUE: usize = 16_384;

/// An event being recorded on this node.
struct Active {
    layout: Arc<EventLayout>,
    part: i64,
    started_at: i64,
    files: Vec<(RecordingId, Language)>,
}

/// The recording state of an event, for its organiser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub plan: Option<RecordingPlan>,
    /// Files being written now (this node).
    pub recording: bool,
    pub part: Option<i64>,
    pub started_at: Option<i64>,
    /// Why the last recording stopped by itself.
    pub problem: Option<String>,
}

/// The recordings of a node.
pub(crate) struct Recordings {
    settings: RecordingSettings,
    store: Store,
    media: Arc<Media>,
    node: String,
    orders: crossbeam_channel::Sender<Order>,
    packets: crossbeam_channel::Sender<Tapped>,
    counters: Arc<WriterCounters>,
    active: tokio::sync::Mutex<HashMap<EventId, Active>>,
    /// Consent sets of the events being recorded (read by the writer for every voice).
    consent: RwLock<HashMap<EventId, Consent>>,
    problems: RwLock<HashMap<EventId, String>>,
    /// Held while consent changes (store and running set), so a refresh never reads between.
    consent_changes: tokio::sync::Mutex<()>,
    /// Download tickets (a cookie the organiser page gets, so `<audio>` can fetch files with
    /// range requests and no token in a URL).
    tickets: tickets::Tickets,
}

/// How long a download ticket lasts.
pub(crate) const TICKET_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

impl Recordings {
    /// Start the writer thread; close what a crash left open.
    pub(crate) async fn start(
        settings: RecordingSettings,
        store: Store,
        media: Arc<Media>,
        node: String,
        ticket_secret: Option<String>,
    ) -> Result<Arc<Self>, RecordingError> {
        let dir_err = |source| RecordingError::Directory { path: settings.dir.display().to_string(), source };
        tokio::fs::create_dir_all(&settings.dir).await.map_err(dir_err)?;
        let (packets, tapped) = crossbeam_channel::bounded(TAP_QUEUE);
        let (orders, ordered) = crossbeam_channel::unbounded();
        let (notes_tx, notes) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(WriterCounters::default());
        writer::start(tapped, ordered, notes_tx, counters.clone()).map_err(dir_err)?;
        let recordings = Arc::new(Self {
            settings,
            store,
            media,
            node,
            orders,
            packets,
            counters,
            active: tokio::sync::Mutex::new(HashMap::new()),
            consent: RwLock::new(HashMap::new()),
            problems: RwLock::new(HashMap::new()),
            consent_changes: tokio::sync::Mutex::new(()),
            tickets: tickets::Tickets::new(ticket_secret.as_deref()),
        });
        recordings.seal_left_open().await?;
        tokio::spawn(follow_writer(Arc::downgrade(&recordings), notes));
        Ok(recordings)
    }

    /// Files this node was writing when it stopped: cut after their last whole page, marked
    /// `interrupted`; their open stretches closed there.
    async fn seal_left_open(&self) -> Result<(), RecordingError> {
        for row in self.store.recordings_left_open(&self.node).await? {
            let path = self.settings.dir.join(&row.file);
            let sealed = tokio::task::spawn_blocking(move || files::seal(&path)).await;
            let (size, duration_ms) = match sealed {
                Ok(Ok(done)) => done,
                Ok(Err(e)) => {
                    warn!(recording = %row.id, error = %e, "a recording left open by a crash cannot be read");
                    (0, 0)
                }
                Err(_) => (0, 0),
            };
            info!(recording = %row.id, size, duration_ms, "recording left open by a stop or crash: sealed");
            self.store
                .update_recording(
                    &row.id,
                    duration_ms,
                    size as i64,
                    RecordingState::Interrupted,
                    Some("the node stopped while recording"),
                )
                .await?;
            self.store.close_stretches(&row.id, duration_ms).await?;
        }
        Ok(())
    }

    /// Check a plan against an event's channels.
    pub(crate) fn check_plan(
        layout: &EventLayout,
        channels: &RecordedChannels,
    ) -> Result<(), RecordingError> {
        if let RecordedChannels::Only(languages) = channels {
            if languages.is_empty() {
                return Err(RecordingError::NoChannels);
            }
            if let Some(language) = languages.iter().find(|l| !layout.has_channel(l)) {
                return Err(RecordingError::NoChannel {
                    language: language.clone(),
                    channels: layout.channel_list(),
                });
            }
        }
        Ok(())
    }

    /// Free space where recordings go, in bytes.
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        files::free_bytes(&self.settings.dir).ok()
    }

    /// Whether an event is being recorded on this node.
    pub(crate) async fn is_recording(&self, event: &EventId) -> bool {
        self.active.lock().await.contains_key(event)
    }

    /// Events being recorded on this node.
    pub(crate) async fn recording_events(&self) -> Vec<EventId> {
        self.active.lock().await.keys().cloned().collect()
    }

    /// Start recording an event's `channels` now (a new part); nothing if it is being recorded.
    pub(crate) async fn start_recording(
        &self,
        layout: Arc<EventLayout>,
        channels: &RecordedChannels,
    ) -> Result<(), RecordingError> {
        let mut active = self.active.lock().await;
        let event = layout.id.clone();
        if active.contains_key(&event) {
            return Ok(());
        }
        Self::check_plan(&layout, channels)?;
        let free = self.free_bytes().unwrap_or(u64::MAX);
        if free < self.settings.min_free_bytes {
            return Err(RecordingError::DiskFull {
                free_mb: free / 1_000_000,
                needed_mb: self.settings.min_free_bytes.div_ceil(1_000_000),
            });
        }
        let part = self.store.next_recording_part(&event).await?;
        let dir = self.settings.dir.join(event.as_str());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| RecordingError::Directory { path: dir.display().to_string(), source })?;
        let started_at = now_ms();
        let start = Instant::now();
        let languages = channel_languages(&layout);
        let mut orders = Vec::new();
        let mut rows = Vec::new();
        let mut recorded = vec![false; languages.len()];
        let start_time = chrono::DateTime::from_timestamp_millis(started_at).unwrap_or_default();
        for (channel, language) in languages.iter().enumerate() {
            if !channels.includes(language) {
                continue;
            }
            recorded[channel] = true;
            let id = RecordingId::generate();
            let file = files::relative_path(&event, part, language);
            orders.push(FileOrder {
                id: id.clone(),
                channel,
                path: self.settings.dir.join(&file),
                tags: vec![
                    format!("LANGUAGE={language}"),
                    format!("TOLK_EVENT={event}"),
                    format!("TOLK_PART={part}"),
                    format!("TOLK_CHANNEL={}", if channel == 0 { "floor" } else { "interpretation" }),
                    format!("DATE={}", start_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ],
            });
            rows.push(RecordingRow {
                id,
                event: event.clone(),
                part,
                language: language.clone(),
                node: self.node.clone(),
                file: file.to_string_lossy().into_owned(),
                started_at,
                duration_ms: 0,
                size: 0,
                state: RecordingState::Recording,
                problem: None,
            });
        }
        let consent: Consent =
            Arc::new(RwLock::new(self.store.consenting_interpreters(&event).await?.into_iter().collect()));
        for row in &rows {
            self.store.insert_recording(row).await?;
        }
        let (opened, answer) = tokio::sync::oneshot::channel();
        let order =
            Order::Open { event: event.clone(), start, files: orders, consent: consent.clone(), opened };
        let result = match self.orders.send(order) {
            Ok(()) => answer.await.unwrap_or_else(|_| Err("the recording writer stopped".into())),
            Err(_) => Err("the recording writer stopped".into()),
        };
        if let Err(problem) = result {
            for row in &rows {
                self.store.update_recording(&row.id, 0, 0, RecordingState::Failed, Some(&problem)).await?;
            }
            return Err(RecordingError::Writer(problem));
        }
        self.media.tap(
            layout.clone(),
            Some(Tap::new(event.clone(), recorded, self.packets.clone(), self.counters.dropped.clone())),
        )?;
        if let Ok(mut sets) = self.consent.write() {
            sets.insert(event.clone(), consent);
        }
        if let Ok(mut problems) = self.problems.write() {
            problems.remove(&event);
        }
        info!(%event, part, files = rows.len(), "recording");
        let files = rows.into_iter().map(|r| (r.id, r.language)).collect();
        active.insert(event, Active { layout, part, started_at, files });
        Ok(())
    }

    /// Stop recording an event (its files end `state` now); nothing if it is not recorded.
    pub(crate) async fn stop_recording(&self, event: &EventId, state: RecordingState) {
        let Some(active) = self.active.lock().await.remove(event) else { return };
        let _ = self.media.tap(active.layout.clone(), None);
        if let Ok(mut sets) = self.consent.write() {
            sets.remove(event);
        }
        let (closed, done) = tokio::sync::oneshot::channel();
        let order = Order::Close { event: event.clone(), at: Instant::now(), state, closed: Some(closed) };
        if self.orders.send(order).is_ok() {
            let _ = done.await;
        }
        info!(%event, part = active.part, "recording stopped");
    }

    /// Stop every recording (the node shuts down): the files end `interrupted`.
    pub(crate) async fn stop_all(&self) {
        for event in self.recording_events().await {
            self.stop_recording(&event, RecordingState::Interrupted).await;
        }
    }

    /// An interpreter agreed (or no longer agrees) to be recorded: takes effect at their next
    /// packet in a recording already running.
    pub(crate) async fn set_consent(
        &self,
        event: &EventId,
        interpreter: InterpreterId,
        consent: bool,
    ) -> Result<(), RecordingError> {
        // The running recording first when consent is withdrawn, the store first when given:
        // either way, no voice is written without consent at any moment. A refresh from the
        // store waits (it would read the store between the two).
        let _held = self.consent_changes.lock().await;
        if !consent {
            self.apply_consent(event, |set| {
                set.remove(&interpreter);
            });
        }
        self.store.set_recording_consent(interpreter, consent).await?;
        if consent {
            self.apply_consent(event, |set| {
                set.insert(interpreter);
            });
        }
        Ok(())
    }

    /// Read again who agreed to be recorded, for every event recorded here: a booth link issued
    /// with consent while its event is recorded, consent given through another node.
    pub(crate) async fn refresh_consent(&self) {
        let events: Vec<EventId> =
            self.consent.read().map(|sets| sets.keys().cloned().collect()).unwrap_or_default();
        for event in events {
            let _held = self.consent_changes.lock().await;
            match self.store.consenting_interpreters(&event).await {
                Ok(ids) => self.apply_consent(&event, |set| *set = ids.into_iter().collect()),
                Err(e) => warn!(%event, error = %e, "recording consent could not be read"),
            }
        }
    }

    fn apply_consent(
        &self,
        event: &EventId,
        change: impl FnOnce(&mut std::collections::HashSet<InterpreterId>),
    ) {
        if let Some(set) = self.consent.read().ok().and_then(|sets| sets.get(event).cloned())
            && let Ok(mut set) = set.write()
        {
            change(&mut set);
        }
    }

    /// The recording state of an event.
    pub(crate) async fn status(&self, event: &EventId) -> Result<Status, RecordingError> {
        // The plan is read under the lock a failure switches it off under: never "stopped
        // by itself" and still on.
        let active = self.active.lock().await;
        let plan = self.store.recording_plan(event).await?;
        let running = active.get(event);
        Ok(Status {
            plan,
            recording: running.is_some(),
            part: running.map(|a| a.part),
            started_at: running.map(|a| a.started_at),
            problem: self.problems.read().ok().and_then(|p| p.get(event).cloned()),
        })
    }

    /// Which languages are being recorded now (the booth page's REC sign).
    pub(crate) async fn recorded_languages(&self, event: &EventId) -> Vec<Language> {
        self.active
            .lock()
            .await
            .get(event)
            .map(|a| a.files.iter().map(|(_, l)| l.clone()).collect())
            .unwrap_or_default()
    }

    /// An event's files and who was on air in them.
    pub(crate) async fn list(
        &self,
        event: &EventId,
    ) -> Result<(Vec<RecordingRow>, Vec<StoredStretch>), RecordingError> {
        Ok((self.store.recordings(event).await?, self.store.recording_stretches(event).await?))
    }

    /// Where a file of the event is on this node's disk.
    pub(crate) async fn file(
        &self,
        event: &EventId,
        id: &RecordingId,
    ) -> Result<(RecordingRow, PathBuf), RecordingError> {
        let row =
            self.store.recording(event, id).await?.ok_or_else(|| RecordingError::NoRecording(id.clone()))?;
        if row.node != self.node {
            return Err(RecordingError::Elsewhere { id: id.clone(), node: row.node });
        }
        let path = self.settings.dir.join(&row.file);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(RecordingError::Missing(id.clone()));
        }
        Ok((row, path))
    }

    /// Delete one file of the event (not while it is written).
    pub(crate) async fn delete(&self, event: &EventId, id: &RecordingId) -> Result<(), RecordingError> {
        let row =
            self.store.recording(event, id).await?.ok_or_else(|| RecordingError::NoRecording(id.clone()))?;
        if row.state == RecordingState::Recording {
            return Err(RecordingError::StillRecording(id.clone()));
        }
        if row.node != self.node {
            return Err(RecordingError::Elsewhere { id: id.clone(), node: row.node });
        }
        self.remove(&row).await
    }

    async fn remove(&self, row: &RecordingRow) -> Result<(), RecordingError> {
        let path = self.settings.dir.join(&row.file);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RecordingError::Directory { path: path.display().to_string(), source });
            }
        }
        self.store.delete_recording(&row.id).await?;
        info!(recording = %row.id, event = %row.event, "recording deleted");
        Ok(())
    }

    /// Delete this node's files that ended more than the retention ago; returns how many.
    pub(crate) async fn apply_retention(&self) -> Result<usize, RecordingError> {
        let Some(days) = self.settings.retention_days else { return Ok(0) };
        let before = now_ms() - i64::from(days) * 86_400_000;
        let expired = self.store.recordings_ended_before(&self.node, before).await?;
        for row in &expired {
            self.remove(row).await?;
        }
        Ok(expired.len())
    }

    /// What `/metrics` shows.
    pub(crate) fn counters(&self) -> &WriterCounters {
        &self.counters
    }

    /// A download ticket for an event's files (its organiser asked), valid [`TICKET_LIFETIME`].
    pub(crate) fn issue_ticket(&self, event: &EventId) -> String {
        let expires = chrono::Utc::now().timestamp() + TICKET_LIFETIME.as_secs() as i64;
        self.tickets.issue(event, expires)
    }

    /// Whether `ticket` opens `event`'s files now.
    pub(crate) fn ticket_opens(&self, ticket: &str, event: &EventId) -> bool {
        self.tickets.opens(ticket, event, chrono::Utc::now().timestamp())
    }

    /// Why an event's recording stopped (or did not start) by itself.
    pub(crate) fn note_problem(&self, event: &EventId, problem: &str) {
        self.failed(event, problem);
    }

    fn failed(&self, event: &EventId, problem: &str) {
        if let Ok(mut problems) = self.problems.write() {
            problems.insert(event.clone(), problem.to_owned());
        }
    }
}

/// An event's channels by index, as the router numbers them: the floor, then each
/// interpretation language once.
pub(crate) fn channel_languages(layout: &EventLayout) -> Vec<Language> {
    let mut languages = vec![layout.floor.clone()];
    for language in &layout.languages {
        if !languages.contains(language) {
            languages.push(language.clone());
        }
    }
    languages
}

/// The writer's notes into the store; a recording the writer ended by itself (a full disk) is
/// switched off, so it is not started again until the organiser does.
async fn follow_writer(
    recordings: Weak<Recordings>,
    mut notes: tokio::sync::mpsc::UnboundedReceiver<WriterNote>,
) {
    while let Some(note) = notes.recv().await {
        let Some(recordings) = recordings.upgrade() else { return };
        let store = &recordings.store;
        let written = match &note {
            WriterNote::Stored(_) => Ok(()),
            WriterNote::Progress { id, duration_ms, size } => {
                store.update_recording(id, *duration_ms, *size, RecordingState::Recording, None).await
            }
            WriterNote::Stretch { id, interpreter, consent, from_ms, to_ms } => {
                let stretch = StoredStretch {
                    recording: id.clone(),
                    interpreter: *interpreter,
                    consent: *consent,
                    from_ms: *from_ms,
                    to_ms: *to_ms,
                };
                store.record_stretch(&stretch).await
            }
            WriterNote::Ended { event, id, duration_ms, size, state, problem } => {
                if *state == RecordingState::Failed {
                    let problem = problem.as_deref().unwrap_or("the recording failed");
                    recordings.failed(event, problem);
                    let mut active = recordings.active.lock().await;
                    if active.contains_key(event) {
                        // Switched off before it stops counting as recording: nobody sees it
                        // stopped and still on (and the watch does not start it again).
                        if let Ok(Some(mut plan)) = store.recording_plan(event).await {
                            plan.on = false;
                            let _ = store.set_recording_plan(event, Some(&plan)).await;
                        }
                        if let Some(stopped) = active.remove(event) {
                            let _ = recordings.media.tap(stopped.layout, None);
                        }
                    }
                    drop(active);
                }
                store.update_recording(id, *duration_ms, *size, *state, problem.as_deref()).await
            }
        };
        if let Err(e) = written {
            warn!(error = %e, "a recording's state could not be stored");
        }
        if let WriterNote::Stored(stored) = note {
            let _ = stored.send(());
        }
    }
}
