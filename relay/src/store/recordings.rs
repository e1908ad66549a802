//! Recordings as stored: each event's plan (which channels, on or off), interpreters' consent,
//! one row per recorded file (channel and part) with its state, and who was on air in it.
//! Rows are written when a file opens, updated as it grows, and closed when it ends; after a
//! crash the node finds its files still marked `recording` and closes them
//! ([`Store::recordings_left_open`]).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::ids::{EventId, InterpreterId, Language, RecordingId};
use crate::store::{Store, StoreError, now_ms};

/// Which channels of an event are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedChannels {
    /// The floor and every interpretation channel.
    All,
    /// These channels only (the floor included only if listed).
    Only(Vec<Language>),
}

impl RecordedChannels {
    /// Whether `language`'s channel is recorded.
    pub fn includes(&self, language: &Language) -> bool {
        match self {
            Self::All => true,
            Self::Only(languages) => languages.contains(language),
        }
    }

    fn encode(&self) -> String {
        match self {
            Self::All => "*".into(),
            Self::Only(languages) => serde_json::to_string(languages).unwrap_or_else(|_| "[]".into()),
        }
    }

    fn decode(stored: &str) -> Option<Self> {
        if stored == "*" { Some(Self::All) } else { serde_json::from_str(stored).ok().map(Self::Only) }
    }
}

/// An event's recording plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingPlan {
    /// What is recorded.
    pub channels: RecordedChannels,
    /// Whether recording is on now (the organiser's switch).
    pub on: bool,
}

/// Where a recorded file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Being written now.
    Recording,
    /// Ended when the recording stopped or the event ended.
    Done,
    /// Ended by a crash or a stop of the node: it plays up to its last second.
    Interrupted,
    /// Ended by a problem (the disk filled up, a write failed): it plays up to the problem.
    Failed,
}

impl RecordingState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Done => "done",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "recording" => Self::Recording,
            "done" => Self::Done,
            "interrupted" => Self::Interrupted,
            _ => Self::Failed,
        }
    }
}

/// One recorded file.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRow {
    /// The file's id (in the organiser API's URLs).
    pub id: RecordingId,
    /// The event recorded.
    pub event: EventId,
    /// Which part of the event's recording (1, 2, …).
    pub part: i64,
    /// The channel's language.
    pub language: Language,
    /// The node that holds the file.
    pub node: String,
    /// The file, relative to that node's recording directory.
    pub file: String,
    /// The part's time base (Unix ms): position 0 of every channel's file of the part.
    pub started_at: i64,
    /// How long it is (ms).
    pub duration_ms: i64,
    /// Its size in bytes.
    pub size: i64,
    /// Where it stands.
    pub state: RecordingState,
    /// Why it ended, if not as planned.
    pub problem: Option<String>,
}

/// Who was on air over a stretch of a recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStretch {
    /// The file.
    pub recording: RecordingId,
    /// The interpreter on air.
    pub interpreter: InterpreterId,
    /// Whether they agreed to be recorded (if not, the stretch is silence in the file).
    pub consent: bool,
    /// From and to, in ms from the file's start (to: None while on air).
    pub from_ms: i64,
    /// See `from_ms`.
    pub to_ms: Option<i64>,
}

impl Store {
    /// Set an event's recording plan (None: not recorded).
    pub async fn set_recording_plan(
        &self,
        event: &EventId,
        plan: Option<&RecordingPlan>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE events SET recording_channels = $1, recording_on = $2 WHERE id = $3")
            .bind(plan.map(|p| p.channels.encode()))
            .bind(i64::from(plan.is_some_and(|p| p.on)))
            .bind(event.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An event's recording plan (None: not recorded, or no such event).
    pub async fn recording_plan(&self, event: &EventId) -> Result<Option<RecordingPlan>, StoreError> {
        let row = sqlx::query("SELECT recording_channels, recording_on FROM events WHERE id = $1")
            .bind(event.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let channels: Option<String> = row.try_get("recording_channels")?;
        let on: i64 = row.try_get("recording_on")?;
        Ok(channels
            .as_deref()
            .and_then(RecordedChannels::decode)
            .map(|channels| RecordingPlan { channels, on: on != 0 }))
    }

    /// Events whose recording is switched on and not cancelled: their channels and window.
    pub async fn recording_events(
        &self,
    ) -> Result<Vec<(EventId, RecordedChannels, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recording_channels, starts_at, ends_at FROM events
             WHERE recording_on <> 0 AND recording_channels IS NOT NULL AND cancelled_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let corrupt = |why: &str| StoreError::Corrupt { id: id.clone(), why: why.to_owned() };
            let channels: String = row.try_get("recording_channels")?;
            let time = |column: &str| -> Result<DateTime<Utc>, StoreError> {
                let secs: i64 = row.try_get(column)?;
                DateTime::from_timestamp(secs, 0).ok_or_else(|| corrupt("a time out of range"))
            };
            events.push((
                EventId::parse(&id).map_err(|e| corrupt(&e.to_string()))?,
                RecordedChannels::decode(&channels)
                    .ok_or_else(|| corrupt("unreadable recording channels"))?,
                time("starts_at")?,
                time("ends_at")?,
            ));
        }
        Ok(events)
    }

    /// Set whether an interpreter agreed to be recorded; false when no such live booth link.
    pub async fn set_recording_consent(
        &self,
        interpreter: InterpreterId,
        consent: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE interpreters SET recording_consent = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(i64::from(consent))
        .bind(interpreter.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The interpreters of an event who agreed to be recorded.
    pub async fn consenting_interpreters(&self, event: &EventId) -> Result<Vec<InterpreterId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM interpreters WHERE event_id = $1 AND recording_consent <> 0 AND revoked_at IS NULL",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(InterpreterId).collect())
    }

    /// Whether one interpreter agreed to be recorded.
    pub async fn recording_consent(&self, interpreter: InterpreterId) -> Result<bool, StoreError> {
        let consent: Option<i64> =
            sqlx::query_scalar("SELECT recording_consent FROM interpreters WHERE id = $1")
                .bind(interpreter.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(consent.unwrap_or(0) != 0)
    }

    /// The next part number of an event's recording.
    pub async fn next_recording_part(&self, event: &EventId) -> Result<i64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(part) FROM recordings WHERE event_id = $1")
            .bind(event.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(last.unwrap_or(0) + 1)
    }

    /// A file that starts being written.
    pub async fn insert_recording(&self, row: &RecordingRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recordings (id, event_id, part, language, node, file, started_at, duration_ms, size, state, problem)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(row.id.as_str())
        .bind(row.event.as_str())
        .bind(row.part)
        .bind(row.language.as_str())
        .bind(&row.node)
        .bind(&row.file)
        .bind(row.started_at)
        .bind(row.duration_ms)
        .bind(row.size)
        .bind(row.state.as_str())
        .bind(row.problem.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How long and large a file is now; with a `state` other than `recording`, it has ended.
    pub async fn update_recording(
        &self,
        id: &RecordingId,
        duration_ms: i64,
        size: i64,
        state: RecordingState,
        problem: Option<&str>,
    ) -> Result<(), StoreError> {
        let ended = (state != RecordingState::Recording).then(now_ms);
        sqlx::query(
            "UPDATE recordings SET duration_ms = $1, size = $2, state = $3, problem = COALESCE($4, problem),
             ended_at = COALESCE($5, ended_at) WHERE id = $6",
        )
        .bind(duration_ms)
        .bind(size)
        .bind(state.as_str())
        .bind(problem)
        .bind(ended)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An event's files, by part then channel order of writing.
    pub async fn recordings(&self, event: &EventId) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM recordings WHERE event_id = $1 ORDER BY part, started_at, id")
            .bind(event.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// One file of an event.
    pub async fn recording(
        &self,
        event: &EventId,
        id: &RecordingId,
    ) -> Result<Option<RecordingRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM recordings WHERE id = $1 AND event_id = $2")
            .bind(id.as_str())
            .bind(event.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Files `node` was writing when it stopped (a crash leaves them `recording`).
    pub async fn recordings_left_open(&self, node: &str) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM recordings WHERE node = $1 AND state = 'recording'")
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Files of `node` that ended before `before` (Unix ms): the retention's to delete.
    pub async fn recordings_ended_before(
        &self,
        node: &str,
        before: i64,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM recordings WHERE node = $1 AND state <> 'recording' AND ended_at < $2",
        )
        .bind(node)
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Make a file look as if it ended at `ended_at` (Unix ms): for tests of the retention.
    #[doc(hidden)]
    pub async fn age_recording_for_tests(&self, id: &RecordingId, ended_at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET ended_at = $1 WHERE id = $2")
            .bind(ended_at)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget a file (its bytes are removed by the caller) and its stretches.
    pub async fn delete_recording(&self, id: &RecordingId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recording_stretches WHERE recording = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recordings WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Someone went on air in a recorded file (`to_ms` None) or a stretch closed.
    pub async fn record_stretch(&self, stretch: &StoredStretch) -> Result<(), StoreError> {
        let closed = sqlx::query(
            "UPDATE recording_stretches SET to_ms = $1
             WHERE recording = $2 AND interpreter = $3 AND from_ms = $4 AND to_ms IS NULL",
        )
        .bind(stretch.to_ms)
        .bind(stretch.recording.as_str())
        .bind(stretch.interpreter.0)
        .bind(stretch.from_ms)
        .execute(&self.pool)
        .await?;
        if closed.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO recording_stretches (recording, interpreter, consent, from_ms, to_ms)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(stretch.recording.as_str())
            .bind(stretch.interpreter.0)
            .bind(i64::from(stretch.consent))
            .bind(stretch.from_ms)
            .bind(stretch.to_ms)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Who was on air in an event's files.
    pub async fn recording_stretches(&self, event: &EventId) -> Result<Vec<StoredStretch>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.recording, s.interpreter, s.consent, s.from_ms, s.to_ms FROM recording_stretches s
             JOIN recordings r ON r.id = s.recording WHERE r.event_id = $1 ORDER BY s.recording, s.from_ms",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let recording: String = row.try_get("recording")?;
                Ok(StoredStretch {
                    recording: RecordingId::parse(&recording)
                        .map_err(|e| StoreError::Corrupt { id: recording.clone(), why: e.to_string() })?,
                    interpreter: InterpreterId(row.try_get("interpreter")?),
                    consent: row.try_get::<i64, _>("consent")? != 0,
                    from_ms: row.try_get("from_ms")?,
                    to_ms: row.try_get("to_ms")?,
                })
            })
            .collect()
    }

    /// Stretches still open in files that were left open (a crash): closed at `at_ms`.
    pub async fn close_stretches(&self, recording: &RecordingId, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE recording_stretches SET to_ms = $1 WHERE recording = $2 AND to_ms IS NULL")
            .bind(at_ms)
            .bind(recording.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<RecordingRow, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |why: String| StoreError::Corrupt { id: format!("recording {id}"), why };
    let event: String = row.try_get("event_id")?;
    let language: String = row.try_get("language")?;
    let state: String = row.try_get("state")?;
    Ok(RecordingRow {
        id: RecordingId::parse(&id).map_err(|e| corrupt(e.to_string()))?,
        event: EventId::parse(&event).map_err(|e| corrupt(e.to_string()))?,
        part: row.try_get("part")?,
        language: Language::parse(&language).map_err(|e| corrupt(e.to_string()))?,
        node: row.try_get("node")?,
        file: row.try_get("file")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        size: row.try_get("size")?,
        state: RecordingState::parse(&state),
        problem: row.try_get("problem")?,
    })
}
