//! Usage facts, recorded as they happen: on-air intervals per interpreter and language, listeners
//! joining and leaving channels, handovers and slow-down signals. The organisers' usage report is
//! computed from these rows.

use crate::ids::{EventId, InterpreterId, Language, SessionId};
use crate::store::{Store, StoreError, now_ms};

impl Store {
    /// Close the interpreter's open on-air interval (if any) and open one in `language` (if any).
    pub async fn record_on_air(
        &self,
        event: &EventId,
        interpreter: InterpreterId,
        language: Option<&Language>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE on_air SET ended_at = ? WHERE event_id = ? AND interpreter_id = ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(event.as_str())
        .bind(interpreter.0)
        .execute(&mut *tx)
        .await?;
        if let Some(language) = language {
            sqlx::query(
                "INSERT INTO on_air (event_id, interpreter_id, language, started_at) VALUES (?, ?, ?, ?)",
            )
            .bind(event.as_str())
            .bind(interpreter.0)
            .bind(language.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A listener session is now on `language` (None: it left). Closes its previous row.
    pub async fn record_listening(
        &self,
        event: &EventId,
        session: &SessionId,
        language: Option<&Language>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE listening SET left_at = ? WHERE session_id = ? AND left_at IS NULL")
            .bind(now)
            .bind(session.as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(language) = language {
            sqlx::query(
                "INSERT INTO listening (event_id, session_id, language, joined_at) VALUES (?, ?, ?, ?)",
            )
            .bind(event.as_str())
            .bind(session.as_str())
            .bind(language.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_handover(
        &self,
        event: &EventId,
        language: &Language,
        from: InterpreterId,
        to: InterpreterId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO booth_signals (event_id, kind, language, interpreter_id, from_interpreter, at)
             VALUES (?, 'handover', ?, ?, ?, ?)",
        )
        .bind(event.as_str())
        .bind(language.as_str())
        .bind(to.0)
        .bind(from.0)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_slow_down(
        &self,
        event: &EventId,
        interpreter: InterpreterId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO booth_signals (event_id, kind, interpreter_id, at) VALUES (?, 'slow-down', ?, ?)",
        )
        .bind(event.as_str())
        .bind(interpreter.0)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts of rows per usage table for an event: (on-air intervals, listening rows, handovers,
    /// slow-downs). The organisers' report builds on the rows themselves.
    pub async fn usage_counts(&self, event: &EventId) -> Result<(i64, i64, i64, i64), StoreError> {
        let count = |sql: &'static str| {
            let event = event.as_str().to_owned();
            async move { sqlx::query_scalar::<_, i64>(sql).bind(event).fetch_one(&self.pool).await }
        };
        Ok((
            count("SELECT COUNT(*) FROM on_air WHERE event_id = ?").await?,
            count("SELECT COUNT(*) FROM listening WHERE event_id = ?").await?,
            count("SELECT COUNT(*) FROM booth_signals WHERE event_id = ? AND kind = 'handover'").await?,
            count("SELECT COUNT(*) FROM booth_signals WHERE event_id = ? AND kind = 'slow-down'").await?,
        ))
    }
}
