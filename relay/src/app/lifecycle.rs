//! A node's life and its events' lives: the node's name in the usage tables, closing what a crash
//! left open, a graceful shutdown that loses no usage fact, and the one task that ends each
//! event's sessions, publishers and booths when its media window closes and prunes its per-event
//! state (the [`Schedule`] of closes is pure: tested on simulated time).

use std::collections::{BTreeSet, HashMap};
use std::sync::Weak;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::app::{App, AppError};
use crate::config::Settings;
use crate::ids::{EventId, Language, SessionId};
use crate::store::usage_batch::UsageFact;
use crate::store::{Store, now_ms};

/// This node's name in the usage tables: configured, or generated once into `data_dir/node-id`.
pub(crate) fn node_id(settings: &Settings) -> Result<String, AppError> {
    if let Some(node) = &settings.node_id {
        return Ok(node.clone());
    }
    let path = settings.data_dir.join("node-id");
    let data_dir = |source| AppError::DataDir { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(node) if !node.trim().is_empty() => Ok(node.trim().to_owned()),
        Ok(_) => write_node_id(&path).map_err(data_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_node_id(&path).map_err(data_dir),
        Err(e) => Err(data_dir(e)),
    }
}

fn write_node_id(path: &std::path::Path) -> std::io::Result<String> {
    let node = crate::ids::random_hex(8);
    std::fs::write(path, format!("{node}\n"))?;
    Ok(node)
}

/// At startup: close the listening and on-air intervals this node left open when it last
/// stopped without shutting down (a crash, SIGKILL, power loss) — at its last heartbeat, the last
/// moment it is known to have been running. Closing them at the restart instead would count
/// the time the node was down as listened, which can be hours.
pub(crate) async fn close_after_crash(store: &Store, node: &str) -> Result<(), AppError> {
    let closed = store.close_open_usage(node, None).await?;
    if closed > 0 {
        warn!(closed, "closed usage intervals left open by an unclean stop, at the last heartbeat");
    }
    Ok(())
}

impl App {
    /// Record that a listener session is now on `language` (None: it left).
    pub(crate) fn record_listening(&self, event: &EventId, session: &SessionId, language: Option<Language>) {
        let (event, session, at) = (event.clone(), session.clone(), now_ms());
        self.recorder.record(UsageFact::Listening { event, session, language, at });
    }

    /// A graceful stop: every usage fact recorded is written, then the node's open intervals
    /// are closed now.
    pub(crate) async fn shutdown(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        self.recordings.stop_all().await;
        self.recorder.flush().await;
        match self.store.close_open_usage(&self.node, Some(now_ms())).await {
            Ok(closed) => info!(closed, "usage intervals closed at shutdown"),
            Err(e) => warn!(error = %e, "could not close usage intervals at shutdown"),
        }
    }

    /// An event's media window closed: its sessions, publishers and booths end, its floor stops
    /// (a BBB floor leaves its meeting, an RTP floor's port is closed), its per-event state goes.
    pub(crate) async fn close_window(&self, id: &EventId) {
        let at = now_ms();
        for interpreter in self.booths.forget(id) {
            let event = id.clone();
            self.recorder.record(UsageFact::OnAir { event, interpreter, language: None, at });
        }
        self.recordings.stop_recording(id, crate::store::recordings::RecordingState::Done).await;
        self.events.forget(id);
        self.floors.stop(id);
        self.media.end_event(id);
        if let Some(cluster) = &self.cluster {
            cluster.event_ended(id).await;
        }
        info!(event = %id, "event window closed: its sessions ended, its state pruned");
    }

    /// Per-event state the node holds now (cached live events, booth desks, running BBB floors).
    pub(crate) fn events_held(&self) -> usize {
        self.events.held() + self.booths.held() + self.floors.held()
    }
}

/// When each event's window closes, soonest first.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    at: HashMap<EventId, DateTime<Utc>>,
    queue: BTreeSet<(DateTime<Utc>, EventId)>,
}

impl Schedule {
    /// The event's window closes at `at` (replacing what was known).
    pub(crate) fn set(&mut self, id: EventId, at: DateTime<Utc>) {
        if let Some(old) = self.at.insert(id.clone(), at) {
            self.queue.remove(&(old, id.clone()));
        }
        self.queue.insert((at, id));
    }

    /// The event is gone (cancelled).
    pub(crate) fn remove(&mut self, id: &EventId) {
        if let Some(old) = self.at.remove(id) {
            self.queue.remove(&(old, id.clone()));
        }
    }

    /// The next close.
    pub(crate) fn next(&self) -> Option<DateTime<Utc>> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// The events whose window closed by `now`, taken off the schedule.
    pub(crate) fn due(&mut self, now: DateTime<Utc>) -> Vec<EventId> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.queue.first()
            && *at <= now
        {
            if let Some((_, id)) = self.queue.pop_first() {
                self.at.remove(&id);
                due.push(id);
            }
        }
        due
    }
}

/// Tells the closing task when an event's window closes (None: the event is gone).
#[derive(Debug, Clone)]
pub(crate) struct Closing(mpsc::UnboundedSender<(EventId, Option<DateTime<Utc>>)>);

/// The closing task's end of the channel.
pub(crate) type Closes = mpsc::UnboundedReceiver<(EventId, Option<DateTime<Utc>>)>;

impl Closing {
    /// A handle and the receiver for [`close_windows`].
    pub(crate) fn new() -> (Self, Closes) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// The event's media window closes at `at`.
    pub(crate) fn schedule(&self, id: &EventId, at: DateTime<Utc>) {
        let _ = self.0.send((id.clone(), Some(at)));
    }

    /// The event is gone; nothing to close.
    pub(crate) fn unschedule(&self, id: &EventId) {
        let _ = self.0.send((id.clone(), None));
    }
}

/// The longest the closing task sleeps before looking at the wall clock again (a clock step).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The one task that closes event windows as they come due.
pub(crate) async fn close_windows(app: Weak<App>, mut closes: Closes) {
    let mut schedule = Schedule::default();
    loop {
        let sleep = schedule
            .next()
            .map_or(MAX_SLEEP, |at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP));
        tokio::select! {
            message = closes.recv() => match message {
                Some((id, Some(at))) => schedule.set(id, at),
                Some((id, None)) => schedule.remove(&id),
                None => return,
            },
            () = tokio::time::sleep(sleep) => {
                for id in schedule.due(Utc::now()) {
                    let Some(app) = app.upgrade() else { return };
                    app.close_window(&id).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_close_in_order_and_a_change_moves_a_close() -> Result<(), crate::ids::IdError> {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        let (a, b, c) = (EventId::parse("a")?, EventId::parse("b")?, EventId::parse("c")?);
        let mut schedule = Schedule::default();
        schedule.set(a.clone(), minutes(10));
        schedule.set(b.clone(), minutes(5));
        schedule.set(c.clone(), minutes(7));
        schedule.set(b.clone(), minutes(20)); // b was made longer
        schedule.remove(&c); // c was cancelled
        assert_eq!(schedule.next(), Some(minutes(10)));
        assert!(schedule.due(minutes(9)).is_empty());
        assert_eq!(schedule.due(minutes(10)), vec![a]);
        assert_eq!(schedule.due(minutes(30)), vec![b]);
        assert_eq!(schedule.next(), None);
        Ok(())
    }
}
