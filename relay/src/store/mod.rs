//! The store: events and their secrets, kept in SQLite under the data directory (sqlx, with the
//! migrations in `relay/migrations`). Nothing the store accepted is lost across a restart.
//! [`interpreters`] holds booth links; [`usage`] the facts recorded as an event happens.

pub mod idempotency;
pub mod interpreters;
pub mod organisers;
pub mod peers;
mod ping;
pub mod recordings;
pub mod usage;
pub mod usage_batch;

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;

use crate::ids::{EventId, Language};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (or its URL is neither `sqlite://` nor `postgres://`).
    #[error("could not open the database {url}: {source}")]
    Open {
        /// The database URL, its password hidden.
        url: String,
        /// Why it could not be opened.
        source: sqlx::Error,
    },
    /// A migration of the schema failed.
    #[error("could not bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An event with this id is stored already (cancelled ones included).
    #[error("an event with id {0} exists already")]
    Duplicate(EventId),
    /// A stored event row cannot be read back (bad languages, time or floor kind).
    #[error("stored event {id} is unreadable: {why}")]
    Corrupt {
        /// The event's id as stored.
        id: String,
        /// What in the row is wrong.
        why: String,
    },
}

/// How an event's floor arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FloorKind {
    /// A WebRTC publisher (WHIP) with the floor token, at the event's `whip_url`.
    Whip,
    /// Plain Opus RTP sent to a UDP port of the event's own (its `rtp_url`).
    Rtp,
    /// A BigBlueButton meeting (see `bbb_meeting_id`).
    Bbb,
    /// An event of a peer cluster (another co-op's Tolk): its floor and every channel, as that
    /// cluster makes them.
    Peer,
}

impl FloorKind {
    fn as_str(self) -> &'static str {
        match self {
            FloorKind::Whip => "whip",
            FloorKind::Rtp => "rtp",
            FloorKind::Bbb => "bbb",
            FloorKind::Peer => "peer",
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's id (in the URLs of the organiser API and the listener page).
    pub id: EventId,
    /// The event's title, as listeners see it.
    pub title: String,
    /// The language of the floor (the original speech).
    pub floor_language: Language,
    /// Interpretation languages (the floor language is not repeated here).
    pub languages: Vec<Language>,
    /// When the event starts (stored to the second).
    pub starts_at: DateTime<Utc>,
    /// When the event ends (stored to the second).
    pub ends_at: DateTime<Utc>,
    /// The listeners the event reserved capacity for.
    pub expected_listeners: u32,
    /// How the floor arrives.
    pub floor_kind: FloorKind,
    /// The UDP port of an RTP floor, kept across restarts (None: not an RTP floor, or no port yet).
    pub rtp_port: Option<u16>,
    /// The SHA-256 of the floor token, in hex (the token itself is never stored).
    pub floor_token_hash: String,
    /// Mix mode: the floor under the interpretation at this level (dB); None: pass-through.
    pub floor_under_db: Option<f32>,
    /// The organiser account that owns it (None: created with the admin token).
    pub organiser: Option<i64>,
    /// The BBB meeting of a `bbb` floor.
    pub bbb_meeting_id: Option<String>,
    /// The sources an RTP floor takes audio from (empty: any).
    pub rtp_allow: crate::allow::SourceAllow,
    /// The internal id of the BBB meeting this interpretation was started in (the plugin, or the
    /// meeting's metadata); None for events made through the API.
    pub bbb_room: Option<String>,
    /// A `peer` floor: where the event comes from.
    pub peer: Option<PeerFloor>,
}

/// An event of a peer cluster that a `peer` floor relays.
#[derive(Clone, PartialEq)]
pub struct PeerFloor {
    /// The peer cluster's URL (any of its nodes, or its entry), `https://tolk.coop-a.example`.
    pub url: String,
    /// The event's id there.
    pub event: EventId,
    /// The peering token that cluster issued to this one.
    pub token: String,
}

impl std::fmt::Debug for PeerFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerFloor")
            .field("url", &self.url)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// The database (SQLite or PostgreSQL) behind a connection pool; clones share the pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    postgres: bool,
    /// Transactions that wrote usage facts (see [`Store::usage_transactions`]).
    usage_transactions: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A capacity booking: a transaction in which overlapping events are read and the event written,
/// serialised against every other booking — on PostgreSQL by a transaction-scoped advisory lock
/// (so several relay nodes sharing the database cannot both take the last capacity), on SQLite by
/// the database's single writer (the transaction starts with a write).
pub struct Booking {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

/// The advisory lock key for bookings ("tolk" in ASCII).
const BOOKING_LOCK: i64 = 0x746f_6c6b;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Now, in the Unix milliseconds the usage tables keep.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Store {
    /// Open (creating if needed) `tolk.sqlite` in `data_dir`, and migrate it.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", data_dir.join("tolk.sqlite").display());
        Self::open(&url).await
    }

    /// Open a database URL — `sqlite://path` (created if missing) or `postgres://…` — and bring
    /// its schema up to date. The same queries serve both.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact(url);
        let open_err = |source| StoreError::Open { url: shown.clone(), source };
        let sqlite = url.starts_with("sqlite:");
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !sqlite && !postgres {
            return Err(StoreError::Open {
                url: shown.clone(),
                source: sqlx::Error::Configuration("use a sqlite:// or postgres:// database URL".into()),
            });
        }
        let url = if sqlite && !url.contains('?') && !url.contains(":memory:") {
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if url.contains(":memory:") { 1 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        for pragma in [
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 5000",
                            "PRAGMA journal_mode = WAL",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(open_err)?;
        if sqlite { &SQLITE_MIGRATIONS } else { &POSTGRES_MIGRATIONS }.run(&pool).await?;
        Ok(Self { pool, postgres, usage_transactions: Default::default() })
    }

    /// Store a new event without a capacity booking; [`StoreError::Duplicate`] if its id is taken.
    pub async fn insert_event(&self, event: &Event) -> Result<(), StoreError> {
        insert_event(&mut *self.pool.acquire().await?, event).await
    }

    /// Remember the port an RTP floor got, so that it keeps it across restarts.
    pub async fn set_rtp_port(&self, id: &EventId, port: u16) -> Result<(), StoreError> {
        sqlx::query("UPDATE events SET rtp_port = $1 WHERE id = $2")
            .bind(i64::from(port))
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A live (not cancelled) event.
    pub async fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query("SELECT * FROM events WHERE id = $1 AND cancelled_at IS NULL")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// The interpretation of BBB meeting `room` (its internal id) that has not ended at `now`.
    pub async fn event_in_room(&self, room: &str, now: DateTime<Utc>) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM events WHERE bbb_room = $1 AND cancelled_at IS NULL AND ends_at > $2
             ORDER BY starts_at DESC LIMIT 1",
        )
        .bind(room)
        .bind(now.timestamp())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Whether BBB meeting `room` ever had an interpretation (running, ended or cancelled).
    pub async fn room_had_interpretation(&self, room: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM events WHERE bbb_room = $1 LIMIT 1")
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Interpretations started in BBB meetings that have not ended at `now`.
    pub async fn events_in_rooms(&self, now: DateTime<Utc>) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE bbb_room IS NOT NULL AND cancelled_at IS NULL AND ends_at > $1 ORDER BY starts_at",
        )
        .bind(now.timestamp())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Live events, soonest first.
    pub async fn events(&self) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query("SELECT * FROM events WHERE cancelled_at IS NULL ORDER BY starts_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Live events whose window overlaps `[from, to)`, except `except`.
    pub async fn events_overlapping(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        except: Option<&EventId>,
    ) -> Result<Vec<Event>, StoreError> {
        events_overlapping(&mut *self.pool.acquire().await?, from, to, except).await
    }

    /// Start a capacity booking (see [`Booking`]).
    pub async fn booking(&self) -> Result<Booking, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(BOOKING_LOCK).execute(&mut *tx).await?;
        } else {
            // Take SQLite's write lock now, not at the insert, so two bookings cannot interleave.
            sqlx::query("UPDATE events SET id = id WHERE 0 = 1").execute(&mut *tx).await?;
        }
        Ok(Booking { tx })
    }

    /// Cancel an event; false when there was no such live event.
    pub async fn cancel_event(&self, id: &EventId) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE events SET cancelled_at = $1 WHERE id = $2 AND cancelled_at IS NULL")
            .bind(Utc::now().timestamp())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Booking {
    /// Live events whose window overlaps `[from, to)`, except `except`, seen inside the booking.
    pub async fn overlapping(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        except: Option<&EventId>,
    ) -> Result<Vec<Event>, StoreError> {
        events_overlapping(&mut self.tx, from, to, except).await
    }

    /// Write a new event in the booking; [`StoreError::Duplicate`] if its id is taken.
    pub async fn insert(&mut self, event: &Event) -> Result<(), StoreError> {
        insert_event(&mut self.tx, event).await
    }

    /// Replace an event's title, window, listeners and languages in the booking; false when
    /// there is no such live event.
    pub async fn update(&mut self, event: &Event) -> Result<bool, StoreError> {
        update_event(&mut self.tx, event).await
    }

    /// Commit the booking, releasing its lock; dropped without it, nothing is written.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}

async fn insert_event(conn: &mut sqlx::AnyConnection, event: &Event) -> Result<(), StoreError> {
    let languages = serde_json::to_string(&event.languages).unwrap_or_else(|_| "[]".into());
    let query = sqlx::query(
            "INSERT INTO events (id, title, floor_language, languages, starts_at, ends_at, expected_listeners,
                                 floor_kind, rtp_port, floor_token_hash, created_at, floor_under_db, organiser_id,
                                 bbb_meeting_id, rtp_allow, bbb_room, peer_url, peer_event, peer_token)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(event.id.as_str())
        .bind(&event.title)
        .bind(event.floor_language.as_str())
        .bind(languages)
        .bind(event.starts_at.timestamp())
        .bind(event.ends_at.timestamp())
        .bind(i64::from(event.expected_listeners))
        .bind(event.floor_kind.as_str())
        .bind(event.rtp_port.map(i64::from))
        .bind(&event.floor_token_hash)
        .bind(Utc::now().timestamp())
        ;
    // sqlx 0.8's Any driver sends a NULL f64 as a float4 and a NULL f32 as a float8
    // (swapped in AnyArguments), which PostgreSQL rejects for a DOUBLE PRECISION column.
    let query = match event.floor_under_db {
        Some(db) => query.bind(f64::from(db)),
        None => query.bind(None::<f32>),
    };
    let result = query
        .bind(event.organiser)
        .bind(event.bbb_meeting_id.as_deref())
        .bind(event.rtp_allow.to_stored())
        .bind(event.bbb_room.as_deref())
        .bind(event.peer.as_ref().map(|p| p.url.as_str()))
        .bind(event.peer.as_ref().map(|p| p.event.as_str()))
        .bind(event.peer.as_ref().map(|p| p.token.as_str()))
        .execute(&mut *conn)
        .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Duplicate(event.id.clone()))
        }
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

async fn events_overlapping(
    conn: &mut sqlx::AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    except: Option<&EventId>,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
            "SELECT * FROM events WHERE cancelled_at IS NULL AND starts_at < $1 AND ends_at > $2 AND id != $3 ORDER BY starts_at",
        )
        .bind(to.timestamp())
        .bind(from.timestamp())
        .bind(except.map_or("", EventId::as_str))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(decode).collect()
}

/// Replace an event's title, window, listeners and languages.
async fn update_event(conn: &mut sqlx::AnyConnection, event: &Event) -> Result<bool, StoreError> {
    let languages = serde_json::to_string(&event.languages).unwrap_or_else(|_| "[]".into());
    let done = sqlx::query(
        "UPDATE events SET title = $1, languages = $2, starts_at = $3, ends_at = $4, expected_listeners = $5
             WHERE id = $6 AND cancelled_at IS NULL",
    )
    .bind(&event.title)
    .bind(languages)
    .bind(event.starts_at.timestamp())
    .bind(event.ends_at.timestamp())
    .bind(i64::from(event.expected_listeners))
    .bind(event.id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn decode(row: &AnyRow) -> Result<Event, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |why: String| StoreError::Corrupt { id: id.clone(), why };
    let languages: String = row.try_get("languages")?;
    let languages: Vec<Language> = serde_json::from_str(&languages).map_err(|e| corrupt(e.to_string()))?;
    let time = |column: &str| -> Result<DateTime<Utc>, StoreError> {
        let secs: i64 = row.try_get(column)?;
        DateTime::from_timestamp(secs, 0).ok_or_else(|| corrupt(format!("{column} out of range")))
    };
    let floor_kind = match row.try_get::<String, _>("floor_kind")?.as_str() {
        "whip" => FloorKind::Whip,
        "rtp" => FloorKind::Rtp,
        "bbb" => FloorKind::Bbb,
        "peer" => FloorKind::Peer,
        other => return Err(corrupt(format!("unknown floor kind {other}"))),
    };
    let peer = match (
        row.try_get::<Option<String>, _>("peer_url")?,
        row.try_get::<Option<String>, _>("peer_event")?,
        row.try_get::<Option<String>, _>("peer_token")?,
    ) {
        (Some(url), Some(event), Some(token)) => {
            Some(PeerFloor { url, event: EventId::parse(&event).map_err(|e| corrupt(e.to_string()))?, token })
        }
        _ => None,
    };
    Ok(Event {
        id: EventId::parse(&id).map_err(|e| corrupt(e.to_string()))?,
        title: row.try_get("title")?,
        floor_language: Language::parse(&row.try_get::<String, _>("floor_language")?)
            .map_err(|e| corrupt(e.to_string()))?,
        languages,
        starts_at: time("starts_at")?,
        ends_at: time("ends_at")?,
        expected_listeners: u32::try_from(row.try_get::<i64, _>("expected_listeners")?).unwrap_or(u32::MAX),
        floor_kind,
        rtp_port: row.try_get::<Option<i64>, _>("rtp_port")?.and_then(|p| u16::try_from(p).ok()),
        floor_token_hash: row.try_get("floor_token_hash")?,
        floor_under_db: row.try_get::<Option<f64>, _>("floor_under_db")?.map(|db| db as f32),
        organiser: row.try_get("organiser_id")?,
        bbb_meeting_id: row.try_get("bbb_meeting_id")?,
        rtp_allow: crate::allow::SourceAllow::parse_stored(&row.try_get::<String, _>("rtp_allow")?)
            .map_err(|e| corrupt(e.to_string()))?,
        bbb_room: row.try_get("bbb_room")?,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        Event {
            id: EventId::parse(id).expect("valid"),
            title: "Plenary".into(),
            floor_language: Language::parse("en").expect("valid"),
            languages: vec![Language::parse("fr").expect("valid")],
            starts_at: DateTime::from_timestamp(1_800_000_000, 0).expect("valid"),
            ends_at: DateTime::from_timestamp(1_800_003_600, 0).expect("valid"),
            expected_listeners: 300,
            floor_kind: FloorKind::Bbb,
            rtp_port: None,
            floor_token_hash: "ab".into(),
            floor_under_db: Some(-18.0),
            organiser: None,
            bbb_meeting_id: Some("room-1".into()),
            rtp_allow: Default::default(),
            bbb_room: None,
            peer: None,
        }
    }

    #[tokio::test]
    async fn events_survive_a_reopen_and_cancel() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("tolk-store-{}", crate::ids::random_hex(6)));
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::Corrupt { id: "-".into(), why: e.to_string() })?;
        {
            let store = Store::open_in(&dir).await?;
            store.insert_event(&event("one")).await?;
            assert!(matches!(store.insert_event(&event("one")).await, Err(StoreError::Duplicate(_))));
            store.set_rtp_port(&EventId::parse("one").expect("valid"), 41_000).await?;
        }
        let store = Store::open_in(&dir).await?;
        let got = store.event(&EventId::parse("one").expect("valid")).await?.expect("still there");
        assert_eq!(got, Event { rtp_port: Some(41_000), ..event("one") });
        assert!(store.cancel_event(&got.id).await?);
        assert!(!store.cancel_event(&got.id).await?);
        assert_eq!(store.event(&got.id).await?, None);
        assert!(store.events().await?.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
