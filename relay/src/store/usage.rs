//! Usage facts, recorded as they happen: on-air intervals per interpreter and language, listeners
//! joining and leaving channels, handovers and slow-down signals. The organisers' usage report is
//! computed from these rows; [`super::usage_batch`] writes them.

use crate::ids::{EventId, InterpreterId, Language};
use crate::store::{Store, StoreError};

impl Store {
    /// Counts of rows per usage table for an event. The organisers' report builds on the rows
    /// themselves.
    pub async fn usage_counts(&self, event: &EventId) -> Result<UsageCounts, StoreError> {
        let count = |sql: &'static str| {
            let event = event.as_str().to_owned();
            async move { sqlx::query_scalar::<_, i64>(sql).bind(event).fetch_one(&self.pool).await }
        };
        Ok(UsageCounts {
            on_air: count("SELECT COUNT(*) FROM on_air WHERE event_id = $1").await?,
            listening: count("SELECT COUNT(*) FROM listening WHERE event_id = $1").await?,
            handovers: count("SELECT COUNT(*) FROM booth_signals WHERE event_id = $1 AND kind = 'handover'")
                .await?,
            slow_downs: count(
                "SELECT COUNT(*) FROM booth_signals WHERE event_id = $1 AND kind = 'slow-down'",
            )
            .await?,
        })
    }
}

/// How many usage facts an event has of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    /// On-air intervals.
    pub on_air: i64,
    /// Listening rows (a join or a switch each).
    pub listening: i64,
    /// Handovers between interpreters.
    pub handovers: i64,
    /// Slow-down signals sent to the floor.
    pub slow_downs: i64,
}

/// One listening interval or on-air interval, in Unix milliseconds (an open one runs to `until`).
#[derive(Debug, Clone)]
pub struct Interval {
    /// The channel listened to, or the language interpreted into on air.
    pub language: Language,
    /// Who was on air (None for a listening interval).
    pub interpreter: Option<InterpreterId>,
    /// When the interval began (Unix milliseconds).
    pub from: i64,
    /// When it ended (Unix milliseconds), never before `from`.
    pub to: i64,
}

/// A slow-down signal: who, when (Unix milliseconds).
#[derive(Debug, Clone)]
pub struct SlowDown {
    /// The interpreter who asked the floor to slow down.
    pub interpreter: InterpreterId,
    /// When (Unix milliseconds).
    pub at: i64,
}

impl Store {
    /// Listening intervals of an event; open ones end at `until`.
    pub async fn listening_intervals(
        &self,
        event: &EventId,
        until: i64,
    ) -> Result<Vec<Interval>, StoreError> {
        self.intervals(
            "SELECT language, CAST(NULL AS BIGINT) AS interpreter_id, joined_at AS t0, left_at AS t1 FROM listening WHERE event_id = $1",
            event,
            until,
        )
        .await
    }

    /// On-air intervals of an event; open ones end at `until`.
    pub async fn on_air_intervals(&self, event: &EventId, until: i64) -> Result<Vec<Interval>, StoreError> {
        self.intervals(
            "SELECT language, interpreter_id, started_at AS t0, ended_at AS t1 FROM on_air WHERE event_id = $1",
            event,
            until,
        )
        .await
    }

    async fn intervals(
        &self,
        sql: &'static str,
        event: &EventId,
        until: i64,
    ) -> Result<Vec<Interval>, StoreError> {
        use sqlx::Row;
        let rows = sqlx::query(sql).bind(event.as_str()).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let language: String = row.try_get("language")?;
            let Ok(language) = Language::parse(&language) else { continue };
            let from: i64 = row.try_get("t0")?;
            let to: Option<i64> = row.try_get("t1")?;
            let interpreter: Option<i64> = row.try_get("interpreter_id")?;
            out.push(Interval {
                language,
                interpreter: interpreter.map(InterpreterId),
                from,
                to: to.unwrap_or(until).max(from),
            });
        }
        Ok(out)
    }

    /// The slow-down signals of an event, oldest first.
    pub async fn slow_downs(&self, event: &EventId) -> Result<Vec<SlowDown>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT interpreter_id, at FROM booth_signals WHERE event_id = $1 AND kind = 'slow-down' ORDER BY at",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(i, at)| SlowDown { interpreter: InterpreterId(i), at }).collect())
    }
}
