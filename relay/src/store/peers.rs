//! Peers (federation): other co-ops' clusters whose edges subscribe to this cluster's events with
//! a token this cluster's admin issued (`tolk peer add NAME`, stored hashed), and each such
//! subscription, so that usage counts them by peer.

use chrono::Utc;

use crate::ids::{EventId, SessionId, Token};
use crate::store::{Store, StoreError};

/// A peer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    /// Its id.
    pub id: i64,
    /// Its name (`coop-b`).
    pub name: String,
    /// Revoked: its token no longer works.
    pub revoked: bool,
}

/// What one peer took of one event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PeerUsage {
    /// The peer's name.
    pub peer: String,
    /// Subscriptions (one per edge of the peer, per reconnection).
    pub subscriptions: u32,
    /// Minutes subscribed, over every subscription.
    pub minutes: f64,
}

impl Store {
    /// Add a peer with the hash of `token`; `Duplicate`-like error when the name is taken.
    pub async fn insert_peer(&self, name: &str, token: &Token) -> Result<Peer, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO peers (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(token.hash())
        .bind(Utc::now().timestamp())
        .fetch_one(&self.pool)
        .await?;
        Ok(Peer { id, name: name.into(), revoked: false })
    }

    /// The live peer holding `token`.
    pub async fn peer_by_token(&self, token: &Token) -> Result<Option<Peer>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM peers WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(token.hash())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, name)| Peer { id, name, revoked: false }))
    }

    /// Every peer, revoked ones too, oldest first.
    pub async fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        let rows: Vec<(i64, String, Option<i64>)> =
            sqlx::query_as("SELECT id, name, revoked_at FROM peers ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, revoked)| Peer { id, name, revoked: revoked.is_some() })
            .collect())
    }

    /// Revoke the peer named `name`; false when there is no such live peer.
    pub async fn revoke_peer(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE peers SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
            .bind(Utc::now().timestamp())
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A peer's edge subscribed to `event` on `node` (session `session`) at `at_ms`.
    pub async fn peer_subscribed(
        &self,
        session: &SessionId,
        event: &EventId,
        peer: &str,
        node: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO peer_subscriptions (session, event_id, peer, node, started_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.as_str())
        .bind(event.as_str())
        .bind(peer)
        .bind(node)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A peer's subscription ended at `at_ms` (nothing when `session` is not one).
    pub async fn peer_unsubscribed(&self, session: &SessionId, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE peer_subscriptions SET ended_at = $1 WHERE session = $2 AND ended_at IS NULL")
            .bind(at_ms)
            .bind(session.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// What each peer took of `event`, up to `now_ms` for subscriptions still running.
    pub async fn peer_usage(&self, event: &EventId, now_ms: i64) -> Result<Vec<PeerUsage>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT peer, started_at, ended_at FROM peer_subscriptions WHERE event_id = $1 ORDER BY peer",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut usage: Vec<PeerUsage> = Vec::new();
        for (peer, started, ended) in rows {
            let ms = (ended.unwrap_or(now_ms) - started).max(0);
            match usage.iter_mut().find(|u| u.peer == peer) {
                Some(u) => {
                    u.subscriptions += 1;
                    u.minutes += ms as f64 / 60_000.0;
                }
                None => usage.push(PeerUsage { peer, subscriptions: 1, minutes: ms as f64 / 60_000.0 }),
            }
        }
        Ok(usage)
    }
}
