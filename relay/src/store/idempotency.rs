//! Inside a booking: what an `Idempotency-Key` answered before (written in the same transaction as
//! the event, so a key never names an event that was not stored, nor an event its key), and how
//! many events an organiser has that are not over yet (its quota).

use chrono::{DateTime, Utc};

use crate::ids::{EventId, IdempotencyKey};
use crate::store::{Booking, StoreError};

/// How long an idempotency key is remembered, in seconds (a day: retries come within minutes).
pub const KEY_LIFETIME_SECS: i64 = 24 * 3600;

/// What a key answered the first time.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptAnswer {
    /// The SHA-256 of the first request, in hex.
    pub request_hash: String,
    /// The event it created.
    pub event: EventId,
    /// The first answer's body (JSON).
    pub response: String,
}

impl Booking {
    /// What `owner`'s `key` answered within [`KEY_LIFETIME_SECS`] of `now`, if anything.
    pub async fn kept_answer(
        &mut self,
        owner: &str,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<KeptAnswer>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT request_hash, event_id, response FROM idempotency_keys
             WHERE owner = $1 AND key = $2 AND created_at > $3",
        )
        .bind(owner)
        .bind(key.as_str())
        .bind(now.timestamp() - KEY_LIFETIME_SECS)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some((request_hash, event, response)) = row else { return Ok(None) };
        let event = EventId::parse(&event)
            .map_err(|e| StoreError::Corrupt { id: event.clone(), why: e.to_string() })?;
        Ok(Some(KeptAnswer { request_hash, event, response }))
    }

    /// Keep the answer of `owner`'s `key` (the event is written in this booking too); keys older
    /// than [`KEY_LIFETIME_SECS`] are forgotten, their stored answers (and floor tokens) with them.
    pub async fn keep_answer(
        &mut self,
        owner: &str,
        key: &IdempotencyKey,
        answer: &KeptAnswer,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let expired = now.timestamp() - KEY_LIFETIME_SECS;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
            .bind(expired)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (owner, key, request_hash, event_id, response, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(owner)
        .bind(key.as_str())
        .bind(&answer.request_hash)
        .bind(answer.event.as_str())
        .bind(&answer.response)
        .bind(now.timestamp())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// How many live events of `organiser` are not over at `now`, besides `except`.
    pub async fn events_not_over(
        &mut self,
        organiser: i64,
        now: DateTime<Utc>,
        except: &EventId,
    ) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events
             WHERE organiser_id = $1 AND cancelled_at IS NULL AND ends_at > $2 AND id != $3",
        )
        .bind(organiser)
        .bind(now.timestamp())
        .bind(except.as_str())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }
}
