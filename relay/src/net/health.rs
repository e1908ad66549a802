//! Whether the media shards live: each shard loop beats a [`Heartbeat`] every turn (a turn waits at
//! most half a second), and [`Media::health`](crate::net::Media::health) reads the beats and the
//! threads' join handles without asking the shards anything.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A shard whose last turn is older than this is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The time of a shard's last loop turn.
#[derive(Debug)]
pub struct Heartbeat(AtomicU64);

impl Default for Heartbeat {
    fn default() -> Self {
        let beat = Self(AtomicU64::new(0));
        beat.beat(Instant::now());
        beat
    }
}

impl Heartbeat {
    pub fn beat(&self, now: Instant) {
        self.0.store(now.saturating_duration_since(epoch()).as_millis() as u64, Ordering::Relaxed);
    }

    /// How long ago the last beat was.
    pub fn age(&self, now: Instant) -> Duration {
        let last = epoch() + Duration::from_millis(self.0.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }
}

/// What is wrong with a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardProblem {
    #[error("media shard {0} has stopped")]
    Stopped(usize),
    #[error("media shard {index} has not turned its loop for {} s", .age.as_secs())]
    Stuck { index: usize, age: Duration },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_ages_with_time() {
        let beat = Heartbeat::default();
        let now = Instant::now();
        beat.beat(now);
        assert!(beat.age(now) < Duration::from_millis(2));
        assert!(beat.age(now + Duration::from_secs(6)) > STUCK_AFTER);
    }
}
