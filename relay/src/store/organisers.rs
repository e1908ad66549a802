//! Organiser accounts: a name and a token (stored hashed). An organiser owns the events it creates,
//! and may take as a floor only the BigBlueButton meetings its allowances name.

use chrono::Utc;

use crate::ids::{MeetingPattern, Token};
use crate::store::{Store, StoreError};

/// An organiser account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Organiser {
    /// The account's id (what `tolk organiser revoke` takes).
    pub id: i64,
    /// The account's name.
    pub name: String,
    /// The account was revoked: its token no longer works.
    pub revoked: bool,
}

impl Store {
    /// Create an organiser account with the hash of `token`.
    pub async fn insert_organiser(&self, name: &str, token: &Token) -> Result<Organiser, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organisers (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(token.hash())
        .bind(Utc::now().timestamp())
        .fetch_one(&self.pool)
        .await?;
        Ok(Organiser { id, name: name.into(), revoked: false })
    }

    /// The live organiser holding `token`.
    pub async fn organiser_by_token(&self, token: &Token) -> Result<Option<Organiser>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM organisers WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(token.hash())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, name)| Organiser { id, name, revoked: false }))
    }

    /// Every organiser account, revoked ones too, oldest first.
    pub async fn organisers(&self) -> Result<Vec<Organiser>, StoreError> {
        let rows: Vec<(i64, String, Option<i64>)> =
            sqlx::query_as("SELECT id, name, revoked_at FROM organisers ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, revoked)| Organiser { id, name, revoked: revoked.is_some() })
            .collect())
    }

    /// Let organiser `id` take the BBB meetings `pattern` covers as floors; false when there is no
    /// such live organiser. Allowing twice changes nothing.
    pub async fn allow_meetings(&self, id: i64, pattern: &MeetingPattern) -> Result<bool, StoreError> {
        let live: Option<i64> =
            sqlx::query_scalar("SELECT id FROM organisers WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        if live.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO meeting_allowances (organiser_id, pattern, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (organiser_id, pattern) DO NOTHING",
        )
        .bind(id)
        .bind(pattern.as_str())
        .bind(Utc::now().timestamp())
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Take an allowance back; false when organiser `id` did not have it.
    pub async fn disallow_meetings(&self, id: i64, pattern: &MeetingPattern) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM meeting_allowances WHERE organiser_id = $1 AND pattern = $2")
            .bind(id)
            .bind(pattern.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The meeting patterns organiser `id` is allowed, in the order they were given.
    pub async fn meeting_allowances(&self, id: i64) -> Result<Vec<MeetingPattern>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT pattern FROM meeting_allowances WHERE organiser_id = $1 ORDER BY created_at, pattern",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        // Stored patterns were checked when allowed; one that no longer parses allows nothing.
        Ok(rows.iter().filter_map(|p| MeetingPattern::parse(p).ok()).collect())
    }

    /// Revoke an organiser account; false when there was no such live account.
    pub async fn revoke_organiser(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE organisers SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(Utc::now().timestamp())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
