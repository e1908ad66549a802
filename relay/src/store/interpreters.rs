//! Interpreters: booth links with a personal token (stored hashed), one or two languages, and
//! revocation, which takes effect at once.

use chrono::Utc;
use sqlx::Row;

use crate::ids::{EventId, InterpreterId, Language, Token};
use crate::store::{Store, StoreError};

/// An interpreter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The booth link's id (in URLs of the organiser API).
    pub id: InterpreterId,
    /// The event the booth link is for.
    pub event: EventId,
    /// The interpreter's name, as their partners and the organiser see it.
    pub name: String,
    /// The languages they interpret into: one, or two for an A/B booth.
    pub languages: Vec<Language>,
    /// Whether they agreed to be recorded (recordings hold silence for them otherwise).
    pub recording_consent: bool,
}

impl Store {
    /// Issue a booth link: store the interpreter with the hash of `token`, which is theirs alone.
    pub async fn insert_interpreter(
        &self,
        event: &EventId,
        name: &str,
        languages: &[Language],
        token: &Token,
        recording_consent: bool,
    ) -> Result<Interpreter, StoreError> {
        let encoded = serde_json::to_string(languages).unwrap_or_else(|_| "[]".into());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO interpreters (event_id, name, languages, token_hash, created_at, recording_consent)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(event.as_str())
        .bind(name)
        .bind(encoded)
        .bind(token.hash())
        .bind(Utc::now().timestamp())
        .bind(i64::from(recording_consent))
        .fetch_one(&self.pool)
        .await?;
        Ok(Interpreter {
            id: InterpreterId(id),
            event: event.clone(),
            name: name.into(),
            languages: languages.to_vec(),
            recording_consent,
        })
    }

    /// The live (not revoked) interpreter holding `token`, whose event is live too.
    pub async fn interpreter_by_token(&self, token: &Token) -> Result<Option<Interpreter>, StoreError> {
        let row = sqlx::query(
            "SELECT i.id, i.event_id, i.name, i.languages, i.recording_consent FROM interpreters i JOIN events e ON e.id = i.event_id
             WHERE i.token_hash = $1 AND i.revoked_at IS NULL AND e.cancelled_at IS NULL",
        )
        .bind(token.hash())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Live interpreters of an event, in the order they were issued.
    pub async fn interpreters(&self, event: &EventId) -> Result<Vec<Interpreter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, name, languages, recording_consent FROM interpreters WHERE event_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every interpreter an event ever had, revoked ones too (for reports).
    pub async fn all_interpreters(&self, event: &EventId) -> Result<Vec<Interpreter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, name, languages, recording_consent FROM interpreters WHERE event_id = $1 ORDER BY id",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Name a BBB meeting participant as an interpreter of `event`: a booth link held by their BBB
    /// user id, with a token nobody has seen yet (they get a fresh one each time they open their
    /// booth from the plugin, [`Store::renew_interpreter_token`]).
    pub async fn insert_bbb_interpreter(
        &self,
        event: &EventId,
        bbb_user: &str,
        name: &str,
        languages: &[Language],
    ) -> Result<Interpreter, StoreError> {
        let interpreter = self.insert_interpreter(event, name, languages, &Token::generate(), false).await?;
        sqlx::query("UPDATE interpreters SET bbb_user_id = $1 WHERE id = $2")
            .bind(bbb_user)
            .bind(interpreter.id.0)
            .execute(&self.pool)
            .await?;
        Ok(interpreter)
    }

    /// The live interpreters of `event` named in its BBB meeting, with their BBB user ids.
    pub async fn bbb_interpreters(&self, event: &EventId) -> Result<Vec<(Interpreter, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, name, languages, recording_consent, bbb_user_id FROM interpreters
             WHERE event_id = $1 AND revoked_at IS NULL AND bbb_user_id IS NOT NULL ORDER BY id",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((decode(r)?, r.try_get::<String, _>("bbb_user_id")?))).collect()
    }

    /// A new token for a booth link (the old one stops working at once).
    pub async fn renew_interpreter_token(
        &self,
        id: InterpreterId,
        token: &Token,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE interpreters SET token_hash = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(token.hash())
                .bind(id.0)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revoke a booth link; false when there was no such live link in that event.
    pub async fn revoke_interpreter(&self, event: &EventId, id: InterpreterId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE interpreters SET revoked_at = $1 WHERE id = $2 AND event_id = $3 AND revoked_at IS NULL",
        )
        .bind(Utc::now().timestamp())
        .bind(id.0)
        .bind(event.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Interpreter, StoreError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |why: String| StoreError::Corrupt { id: format!("interpreter {id}"), why };
    let event: String = row.try_get("event_id")?;
    let languages: String = row.try_get("languages")?;
    Ok(Interpreter {
        id: InterpreterId(id),
        event: EventId::parse(&event).map_err(|e| corrupt(e.to_string()))?,
        name: row.try_get("name")?,
        languages: serde_json::from_str(&languages).map_err(|e| corrupt(e.to_string()))?,
        recording_consent: row.try_get::<i64, _>("recording_consent")? != 0,
    })
}
