//! Peer timeouts: a min-heap of deadlines with lazy cancellation. A shard asks it for what is due
//! instead of polling every peer; each peer keeps at most one live entry (the earliest).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Wake {
    /// The WebRTC engine asked to be woken (retransmits, keep-alives, its own timeouts).
    Engine,
    /// The peer must be connected by now, or it is dropped.
    ConnectDeadline,
    /// A listener's handshake is long enough done to drop its engine ([`super::settled`]).
    Settle,
    /// A settled listener must have passed a consent check since the last look.
    Consent,
}

/// A peer's place in its shard and the generation of that place (slots are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, PeerKey, Wake)>>,
}

impl Timers {
    /// Schedule `key` at `at`. The caller keeps the earliest deadline it scheduled and calls this
    /// only when a new deadline is earlier, so that stale entries stay few.
    pub fn schedule(&mut self, at: Instant, key: PeerKey, wake: Wake) {
        self.heap.push(Reverse((at, key, wake)));
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pop one entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, PeerKey, Wake)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let k = |slot| PeerKey { slot, generation: 0 };
        t.schedule(t0 + Duration::from_millis(30), k(3), Wake::Engine);
        t.schedule(t0 + Duration::from_millis(10), k(1), Wake::Engine);
        t.schedule(t0 + Duration::from_millis(20), k(2), Wake::ConnectDeadline);
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.pop_due(t0), None);
        let due: Vec<u32> = std::iter::from_fn(|| t.pop_due(t0 + Duration::from_millis(25)))
            .map(|(_, k, _)| k.slot)
            .collect();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(t.len(), 1);
    }
}
