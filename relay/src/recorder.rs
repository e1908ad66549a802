//! The usage recorder: requests hand it usage facts and go on; one task per node buffers them and
//! writes them in batches — every flush interval (1 s), or sooner when a batch is full — each
//! batch one transaction with the node's heartbeat. A burst of channel switches therefore costs
//! the database one transaction, not one per request. Readers of usage (the report, the live view)
//! flush first; a graceful shutdown flushes everything before the node closes its open intervals.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::warn;

use crate::store::usage_batch::UsageFact;
use crate::store::{Store, now_ms};

/// How the recorder batches.
#[derive(Debug, Clone, Copy)]
pub struct RecorderSettings {
    /// Buffered facts are written at least this often.
    pub flush_interval: Duration,
    /// A batch this large is written at once.
    pub batch: usize,
    /// With no facts, the heartbeat is still written this often (a crashed node's open intervals
    /// are closed at its last heartbeat, so this bounds what a crash loses).
    pub heartbeat: Duration,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        Self { flush_interval: Duration::from_secs(1), batch: 512, heartbeat: Duration::from_secs(10) }
    }
}

/// Buffered facts a failing database may hold before the oldest are dropped (with a warning).
const MAX_BUFFERED: usize = 100_000;

enum Message {
    Fact(UsageFact),
    Flush(oneshot::Sender<()>),
}

/// A handle on the node's usage recorder; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    to_writer: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("usage message")
    }
}

impl Recorder {
    /// Start the writer task of `node` on `store`.
    pub(crate) fn start(store: Store, node: String, settings: RecorderSettings) -> Self {
        let (to_writer, from_handles) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, node, settings, from_handles));
        Self { to_writer }
    }

    /// Record a fact (written with the next batch).
    pub(crate) fn record(&self, fact: UsageFact) {
        if self.to_writer.send(Message::Fact(fact)).is_err() {
            warn!("the usage recorder has stopped; a usage fact is lost");
        }
    }

    /// Write every fact recorded before this call; returns once they are in the database (or the
    /// write failed and was logged).
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.to_writer.send(Message::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_batches(
    store: Store,
    node: String,
    settings: RecorderSettings,
    mut messages: mpsc::UnboundedReceiver<Message>,
) {
    let mut buffer: Vec<UsageFact> = Vec::new();
    let mut ticks = tokio::time::interval(settings.flush_interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Some(Message::Fact(fact)) => {
                    buffer.push(fact);
                    if buffer.len() >= settings.batch {
                        write(&store, &node, &mut buffer).await;
                        last_write = Instant::now();
                    }
                }
                Some(Message::Flush(done)) => {
                    if !buffer.is_empty() {
                        write(&store, &node, &mut buffer).await;
                        last_write = Instant::now();
                    }
                    let _ = done.send(());
                }
                None => {
                    if !buffer.is_empty() {
                        write(&store, &node, &mut buffer).await;
                    }
                    return;
                }
            },
            _ = ticks.tick() => {
                if !buffer.is_empty() || last_write.elapsed() >= settings.heartbeat {
                    write(&store, &node, &mut buffer).await;
                    last_write = Instant::now();
                }
            }
        }
    }
}

/// Write the buffer as one batch; on failure keep it for the next try (bounded).
async fn write(store: &Store, node: &str, buffer: &mut Vec<UsageFact>) {
    match store.write_usage(node, buffer, now_ms()).await {
        Ok(()) => buffer.clear(),
        Err(e) => {
            warn!(error = %e, facts = buffer.len(), "could not write usage facts; will retry");
            if buffer.len() > MAX_BUFFERED {
                let drop = buffer.len() - MAX_BUFFERED;
                warn!(dropped = drop, "usage buffer full; the oldest facts are dropped");
                buffer.drain(..drop);
            }
        }
    }
}
