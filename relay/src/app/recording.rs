//! Recording, where it crosses services: the watch that starts and stops events' recordings as
//! their plans and times say (at the event's origin node only, in a cluster), the organiser's
//! switch, the listing with interpreters' names, and an interpreter's consent.
//!
//! The rules: a recording planned at creation starts when the event starts; the switch starts
//! one at once (while the event's media is open); it stops when switched off, when the event
//! ends or is cancelled, or by itself on a problem (a full disk), which switches it off so it is
//! not started again until the organiser does. After a restart a planned recording continues in
//! a new part.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::Duration;

use chrono::Utc;
use tracing::warn;

use crate::app::{App, AppError};
use crate::events::request::{AllChannels, ChannelChoice};
use crate::ids::{EventId, InterpreterId};
use crate::recording::RecordingError;
use crate::recording::views::{
    OnAirStretch, RecordingFileView, RecordingStatusView, RecordingSwitch, RecordingsView,
};
use crate::store::Event;
use crate::store::interpreters::Interpreter;
use crate::store::recordings::{RecordedChannels, RecordingPlan, RecordingState};

/// How often the watch looks at the plans.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often expired recordings are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Start and stop recordings as plans and times say; apply the retention.
pub(crate) async fn watch(app: Weak<App>) {
    let mut ticks = tokio::time::interval(WATCH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_retention: Option<tokio::time::Instant> = None;
    loop {
        ticks.tick().await;
        let Some(app) = app.upgrade() else { return };
        app.sync_recordings().await;
        app.recordings.refresh_consent().await;
        if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(tokio::time::Instant::now());
            match app.recordings.apply_retention().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "recordings past their retention deleted"),
                Err(e) => warn!(error = %e, "the recording retention could not run"),
            }
        }
    }
}

fn choice(channels: &RecordedChannels) -> ChannelChoice {
    match channels {
        RecordedChannels::All => ChannelChoice::All(AllChannels::All),
        RecordedChannels::Only(languages) => ChannelChoice::Languages(languages.clone()),
    }
}

impl App {
    /// Whether this node records `event`: a single node does; in a cluster, its origin.
    fn records_here(&self, event: &EventId) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.is_origin(event))
    }

    /// One look at the plans: start what should run and does not, stop what runs and should not.
    pub(crate) async fn sync_recordings(&self) {
        let plans = match self.store.recording_events().await {
            Ok(plans) => plans,
            Err(e) => {
                warn!(error = %e, "recording plans could not be read");
                return;
            }
        };
        let now = Utc::now();
        let mut wanted = HashSet::new();
        for (event, channels, starts_at, ends_at) in plans {
            if now >= ends_at || !self.records_here(&event) {
                continue;
            }
            wanted.insert(event.clone());
            if now < starts_at || self.recordings.is_recording(&event).await {
                continue;
            }
            if let Err(e) = self.start_recording(&event, &channels).await {
                warn!(%event, error = %e, "a planned recording could not start; it is switched off");
                self.recordings.note_problem(&event, &e.to_string());
                let plan = RecordingPlan { channels, on: false };
                let _ = self.store.set_recording_plan(&event, Some(&plan)).await;
            }
        }
        for event in self.recordings.recording_events().await {
            if !wanted.contains(&event) {
                self.recordings.stop_recording(&event, RecordingState::Done).await;
                self.booths.changed(&event);
            }
        }
    }

    async fn start_recording(&self, event: &EventId, channels: &RecordedChannels) -> Result<(), AppError> {
        let live = self.events.live(event).await?;
        self.recordings.start_recording(live.layout.clone(), channels).await?;
        self.booths.changed(event);
        Ok(())
    }

    /// The organiser's switch.
    pub(crate) async fn switch_recording(
        &self,
        event: &Event,
        switch: RecordingSwitch,
    ) -> Result<RecordingStatusView, AppError> {
        let planned = self.store.recording_plan(&event.id).await?;
        let channels = match (&switch.channels, &planned) {
            (Some(ChannelChoice::All(_)), _) | (None, None) => RecordedChannels::All,
            (Some(ChannelChoice::Languages(languages)), _) => RecordedChannels::Only(languages.clone()),
            (None, Some(plan)) => plan.channels.clone(),
        };
        let live = self.events.live(&event.id).await?;
        crate::recording::Recordings::check_plan(&live.layout, &channels)?;
        if switch.on {
            if live.window.check(Utc::now()).is_err() {
                return Err(RecordingError::NotOpen.into());
            }
            if self.records_here(&event.id) {
                self.recordings.start_recording(live.layout.clone(), &channels).await?;
                self.booths.changed(&event.id);
            }
        } else {
            self.recordings.stop_recording(&event.id, RecordingState::Done).await;
            self.booths.changed(&event.id);
        }
        let plan = RecordingPlan { channels, on: switch.on };
        self.store.set_recording_plan(&event.id, Some(&plan)).await?;
        self.recording_status(event).await
    }

    /// An event's recording state, for its organiser.
    pub(crate) async fn recording_status(&self, event: &Event) -> Result<RecordingStatusView, AppError> {
        let status = self.recordings.status(&event.id).await?;
        Ok(RecordingStatusView {
            channels: status.plan.as_ref().map(|p| choice(&p.channels)),
            on: status.plan.as_ref().is_some_and(|p| p.on),
            recording: status.recording,
            part: status.part,
            started_at: status.started_at.and_then(chrono::DateTime::from_timestamp_millis),
            problem: status.problem,
            free_bytes: self.recordings.free_bytes(),
        })
    }

    /// An event's files, with who was on air in each.
    pub(crate) async fn recordings_view(&self, event: &Event) -> Result<RecordingsView, AppError> {
        let (rows, stretches) = self.recordings.list(&event.id).await?;
        let names: HashMap<InterpreterId, String> =
            self.store.all_interpreters(&event.id).await?.into_iter().map(|i| (i.id, i.name)).collect();
        let floor = &event.floor_language;
        let recordings = rows
            .into_iter()
            .map(|row| RecordingFileView {
                on_air: stretches
                    .iter()
                    .filter(|s| s.recording == row.id)
                    .map(|s| OnAirStretch {
                        interpreter: s.interpreter,
                        name: names.get(&s.interpreter).cloned().unwrap_or_default(),
                        from_ms: s.from_ms,
                        to_ms: s.to_ms,
                        consent: s.consent,
                    })
                    .collect(),
                url: format!("/api/v1/events/{}/recordings/{}", event.id, row.id),
                id: row.id.to_string(),
                part: row.part,
                channel: if &row.language == floor { "floor" } else { "interpretation" }.to_owned(),
                language: row.language,
                started_at: chrono::DateTime::from_timestamp_millis(row.started_at).unwrap_or_default(),
                duration_ms: row.duration_ms,
                size: row.size,
                state: row.state,
                problem: row.problem,
            })
            .collect();
        Ok(RecordingsView { recordings })
    }

    /// An interpreter agrees (or no longer agrees) to be recorded.
    pub(crate) async fn set_recording_consent(
        &self,
        me: &Interpreter,
        consent: bool,
    ) -> Result<(), AppError> {
        self.recordings.set_consent(&me.event, me.id, consent).await?;
        self.booths.changed(&me.event);
        Ok(())
    }

    /// Whether the channels of an event are recorded now, by language (the booth's REC sign).
    pub(crate) async fn recorded_now(&self, event: &EventId) -> Vec<crate::ids::Language> {
        self.recordings.recorded_languages(event).await
    }
}
