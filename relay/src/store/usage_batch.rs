//! Usage facts written in batches: a batch of facts (listeners joining, switching and leaving,
//! interpreters on and off air, handovers, slow-downs) is coalesced in memory — a session's
//! switches inside one batch become complete rows, not an insert and an update each — and written
//! in one transaction together with the node's heartbeat. After a crash the node closes its own
//! open intervals at that heartbeat ([`Store::close_open_usage`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::ids::{EventId, InterpreterId, Language, SessionId};
use crate::store::{Store, StoreError};

/// One usage fact. Every fact names its event (`event`) and its time (`at`, Unix milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub enum UsageFact {
    /// A listener session is now on `language` (None: it left).
    Listening {
        /// The event.
        event: EventId,
        /// The listener's session.
        session: SessionId,
        /// The channel listened to now (None: left).
        language: Option<Language>,
        /// When (Unix milliseconds).
        at: i64,
    },
    /// An interpreter is now on air in `language` (None: off air).
    OnAir {
        /// The event.
        event: EventId,
        /// The interpreter.
        interpreter: InterpreterId,
        /// The language on air now (None: off air).
        language: Option<Language>,
        /// When (Unix milliseconds).
        at: i64,
    },
    /// In `language`, `from` left the air to `to`.
    Handover {
        /// The event.
        event: EventId,
        /// The channel handed over.
        language: Language,
        /// Who gave the air.
        from: InterpreterId,
        /// Who took it.
        to: InterpreterId,
        /// When (Unix milliseconds).
        at: i64,
    },
    /// `interpreter` asked the floor to slow down.
    SlowDown {
        /// The event.
        event: EventId,
        /// Who asked.
        interpreter: InterpreterId,
        /// When (Unix milliseconds).
        at: i64,
    },
}

/// Whose interval a row is: a listener session's, or an interpreter's in an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A listener session.
    Session(SessionId),
    /// An interpreter of an event.
    Interpreter(EventId, InterpreterId),
}

/// One write of a coalesced batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Close the holder's interval left open by an earlier batch.
    Close {
        /// Whose interval.
        holder: Holder,
        /// When it ended (Unix milliseconds).
        at: i64,
    },
    /// An interval of the holder, complete (`to`) or still open.
    Interval {
        /// The event.
        event: EventId,
        /// Whose interval.
        holder: Holder,
        /// The channel listened to, or the language on air.
        language: Language,
        /// When it began (Unix milliseconds).
        from: i64,
        /// When it ended (None: still open).
        to: Option<i64>,
    },
    /// A handover or slow-down signal, as it came.
    Signal(UsageFact),
}

/// The writes of a batch of facts, in order: per holder at most one close of an earlier
/// interval, then its intervals; an interval opened and closed inside the batch is one row.
pub fn coalesce(facts: &[UsageFact]) -> Vec<Write> {
    let mut writes = Vec::with_capacity(facts.len() + 1);
    // Where each holder's interval opened in this batch sits in `writes`; a holder seen in the
    // batch with nothing open maps to None.
    let mut open: HashMap<Holder, Option<usize>> = HashMap::new();
    for fact in facts {
        let (event, holder, language, at) = match fact {
            UsageFact::Listening { event, session, language, at } => {
                (event, Holder::Session(session.clone()), language, *at)
            }
            UsageFact::OnAir { event, interpreter, language, at } => {
                (event, Holder::Interpreter(event.clone(), *interpreter), language, *at)
            }
            signal => {
                writes.push(Write::Signal(signal.clone()));
                continue;
            }
        };
        match open.get(&holder) {
            None => writes.push(Write::Close { holder: holder.clone(), at }),
            Some(Some(index)) => {
                if let Some(Write::Interval { to, .. }) = writes.get_mut(*index) {
                    *to = Some(at);
                }
            }
            Some(None) => {}
        }
        let opened = language.as_ref().map(|language| {
            writes.push(Write::Interval {
                event: event.clone(),
                holder: holder.clone(),
                language: language.clone(),
                from: at,
                to: None,
            });
            writes.len() - 1
        });
        open.insert(holder, opened);
    }
    writes
}

impl Store {
    /// Write a batch of usage facts for `node` in one transaction, with the node's heartbeat at
    /// `now` (Unix milliseconds). An empty batch writes only the heartbeat.
    pub async fn write_usage(&self, node: &str, facts: &[UsageFact], now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for write in coalesce(facts) {
            write_one(&mut tx, node, &write).await?;
        }
        sqlx::query(
            "INSERT INTO usage_heartbeats (node, at) VALUES ($1, $2)
             ON CONFLICT (node) DO UPDATE SET at = excluded.at",
        )
        .bind(node)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.usage_transactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Transactions that wrote usage facts since the store was opened (by this handle and its
    /// clones): what a burst of channel switches costs the database.
    pub fn usage_transactions(&self) -> u64 {
        self.usage_transactions.load(Ordering::Relaxed)
    }

    /// The node's last heartbeat (Unix milliseconds), if it ever wrote one.
    pub async fn heartbeat(&self, node: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT at FROM usage_heartbeats WHERE node = $1")
            .bind(node)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Close the node's open listening and on-air intervals (and those written before intervals
    /// carried a node) at `at`, or at the node's last heartbeat when `at` is None (after a crash:
    /// the last moment the node is known to have been running). An interval never ends before it
    /// began. Returns how many were closed.
    pub async fn close_open_usage(&self, node: &str, at: Option<i64>) -> Result<u64, StoreError> {
        let at = match at {
            Some(at) => Some(at),
            None => self.heartbeat(node).await?,
        };
        let mut closed = 0;
        for (table, from, to) in [("listening", "joined_at", "left_at"), ("on_air", "started_at", "ended_at")]
        {
            let sql = match at {
                Some(_) => format!(
                    "UPDATE {table} SET {to} = CASE WHEN {from} > $2 THEN {from} ELSE $2 END
                     WHERE {to} IS NULL AND (node = $1 OR node IS NULL)"
                ),
                // Without a heartbeat nothing is known past the interval's start.
                None => format!(
                    "UPDATE {table} SET {to} = {from} WHERE {to} IS NULL AND (node = $1 OR node IS NULL)"
                ),
            };
            let query = sqlx::query(&sql).bind(node);
            let query = match at {
                Some(at) => query.bind(at),
                None => query,
            };
            closed += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(closed)
    }
}

async fn write_one(tx: &mut sqlx::AnyConnection, node: &str, write: &Write) -> Result<(), StoreError> {
    let query = match write {
        Write::Close { holder: Holder::Session(session), at } => {
            sqlx::query("UPDATE listening SET left_at = $1 WHERE session_id = $2 AND left_at IS NULL")
                .bind(*at)
                .bind(session.as_str())
        }
        Write::Close { holder: Holder::Interpreter(event, interpreter), at } => sqlx::query(
            "UPDATE on_air SET ended_at = $1 WHERE event_id = $2 AND interpreter_id = $3 AND ended_at IS NULL",
        )
        .bind(*at)
        .bind(event.as_str())
        .bind(interpreter.0),
        Write::Interval { event, holder: Holder::Session(session), language, from, to } => sqlx::query(
            "INSERT INTO listening (event_id, session_id, language, joined_at, left_at, node)
                 VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.as_str())
        .bind(session.as_str())
        .bind(language.as_str())
        .bind(*from)
        .bind(*to)
        .bind(node),
        Write::Interval { event, holder: Holder::Interpreter(_, interpreter), language, from, to } => {
            sqlx::query(
                "INSERT INTO on_air (event_id, interpreter_id, language, started_at, ended_at, node)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.as_str())
            .bind(interpreter.0)
            .bind(language.as_str())
            .bind(*from)
            .bind(*to)
            .bind(node)
        }
        Write::Signal(UsageFact::Handover { event, language, from, to, at }) => sqlx::query(
            "INSERT INTO booth_signals (event_id, kind, language, interpreter_id, from_interpreter, at)
                 VALUES ($1, 'handover', $2, $3, $4, $5)",
        )
        .bind(event.as_str())
        .bind(language.as_str())
        .bind(to.0)
        .bind(from.0)
        .bind(*at),
        Write::Signal(UsageFact::SlowDown { event, interpreter, at }) => sqlx::query(
            "INSERT INTO booth_signals (event_id, kind, interpreter_id, at) VALUES ($1, 'slow-down', $2, $3)",
        )
        .bind(event.as_str())
        .bind(interpreter.0)
        .bind(*at),
        Write::Signal(_) => return Ok(()),
    };
    query.execute(&mut *tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Option<Language> {
        Language::parse(code).ok()
    }

    #[test]
    fn switches_inside_a_batch_become_complete_rows() -> Result<(), crate::ids::IdError> {
        let event = EventId::parse("ev")?;
        let session = SessionId::generate();
        let fact = |language: Option<Language>, at| UsageFact::Listening {
            event: event.clone(),
            session: session.clone(),
            language,
            at,
        };
        let facts = [fact(lang("fr"), 10), fact(lang("de"), 20), fact(lang("en"), 30), fact(None, 40)];
        let holder = Holder::Session(session.clone());
        let row = |language: &str, from, to| Write::Interval {
            event: event.clone(),
            holder: holder.clone(),
            language: Language::parse(language).expect("valid"),
            from,
            to: Some(to),
        };
        assert_eq!(
            coalesce(&facts),
            vec![
                Write::Close { holder: holder.clone(), at: 10 },
                row("fr", 10, 20),
                row("de", 20, 30),
                row("en", 30, 40),
            ],
            "one close of what an earlier batch left open, then one row per channel listened to"
        );
        // The last interval of a batch stays open for the next one to close.
        let open = coalesce(&facts[..2]);
        assert!(matches!(open.last(), Some(Write::Interval { to: None, .. })));
        Ok(())
    }
}
