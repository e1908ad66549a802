//! The peers of one shard: a slab of slots with generations (a slot is reused, its key is not)
//! and the three demultiplexing indices — by session id (HTTP commands), by remote address
//! (datagrams) and by ICE username fragment (a STUN check from an address not seen yet). The
//! indices change only through [`PeerTable::insert_with`], [`PeerTable::add_remote`] and
//! [`PeerTable::remove`], which keep them consistent with the slab.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ids::SessionId;
use crate::net::peer::Peer;
use crate::net::timers::PeerKey;

/// Addresses one peer may be reached from at once (its ICE candidates' pairs, a NAT rebinding):
/// enough for real clients, and a bound on what valid checks from new addresses can add.
pub const MAX_REMOTES: usize = 4;
/// How long an address may send nothing before it no longer reaches its peer (a browser checks
/// every pair it uses well within this; the same span as ICE consent).
pub const REMOTE_IDLE: Duration = Duration::from_secs(15);

/// The peers of one shard and their indices.
#[derive(Default)]
pub struct PeerTable {
    slots: Vec<Option<Peer>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    by_session: HashMap<SessionId, u32>,
    by_addr: HashMap<SocketAddr, u32>,
    by_ufrag: HashMap<String, u32>,
}

impl PeerTable {
    /// Place a new peer, built by `make` from the key it gets; its session and ICE username
    /// fragment are indexed.
    pub fn insert_with(&mut self, make: impl FnOnce(PeerKey) -> Peer) -> PeerKey {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            (self.slots.len() - 1) as u32
        });
        let key = PeerKey { slot, generation: self.generations[slot as usize] };
        let peer = make(key);
        self.by_session.insert(peer.session.clone(), slot);
        self.by_ufrag.insert(peer.ufrag.clone(), slot);
        for (remote, _) in &peer.remotes {
            self.by_addr.insert(*remote, slot);
        }
        self.slots[slot as usize] = Some(peer);
        key
    }

    /// Take a peer out: its slot's generation moves on and every index entry pointing at it goes.
    pub fn remove(&mut self, slot: u32) -> Option<Peer> {
        let peer = self.slots.get_mut(slot as usize).and_then(Option::take)?;
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.by_session.remove(&peer.session);
        self.by_ufrag.remove(&peer.ufrag);
        for (addr, _) in &peer.remotes {
            if self.by_addr.get(addr) == Some(&slot) {
                self.by_addr.remove(addr);
            }
        }
        Some(peer)
    }

    /// Datagrams from `addr` now go to the peer in `slot` (no-op for an empty slot). Addresses
    /// idle for [`REMOTE_IDLE`] go first; then a peer keeps at most [`MAX_REMOTES`]: the oldest
    /// goes when a new one comes.
    pub fn add_remote(&mut self, slot: u32, addr: SocketAddr, now: Instant) {
        self.expire_remotes(slot, now);
        let Some(peer) = self.get_mut(slot) else { return };
        let known = peer.remotes.iter().any(|(a, _)| *a == addr);
        if !known && peer.remotes.len() >= MAX_REMOTES {
            let keep = peer.destination();
            let oldest = peer.remotes.iter().position(|(a, _)| Some(*a) != keep).unwrap_or(0);
            let (oldest, _) = peer.remotes.remove(oldest);
            if self.by_addr.get(&oldest) == Some(&slot) {
                self.by_addr.remove(&oldest);
            }
        }
        if let Some(previous) = self.by_addr.insert(addr, slot)
            && previous != slot
            && let Some(other) = self.get_mut(previous)
        {
            other.remotes.retain(|(a, _)| *a != addr);
        }
        if let Some(peer) = self.get_mut(slot) {
            match peer.remotes.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, seen)) => *seen = now,
                None => peer.remotes.push((addr, now)),
            }
        }
    }

    /// `addr` of the peer in `slot` sent something at `now`.
    pub fn seen(&mut self, slot: u32, addr: SocketAddr, now: Instant) {
        if let Some(peer) = self.get_mut(slot)
            && let Some((_, seen)) = peer.remotes.iter_mut().find(|(a, _)| *a == addr)
        {
            *seen = now;
        }
    }

    /// Unmap the addresses of the peer in `slot` that sent nothing for [`REMOTE_IDLE`], except
    /// where its media goes.
    pub fn expire_remotes(&mut self, slot: u32, now: Instant) {
        let Some(peer) = self.get_mut(slot) else { return };
        let keep = peer.destination();
        let mut expired = Vec::new();
        peer.remotes.retain(|(addr, seen)| {
            let idle = Some(*addr) != keep && now.saturating_duration_since(*seen) > REMOTE_IDLE;
            if idle {
                expired.push(*addr);
            }
            !idle
        });
        for addr in expired {
            if self.by_addr.get(&addr) == Some(&slot) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The peer in `slot`, if any.
    pub fn get(&self, slot: u32) -> Option<&Peer> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The peer in `slot`, if any, to change.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Peer> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The peer `key` names: None once its slot was emptied or reused.
    pub fn by_key(&mut self, key: PeerKey) -> Option<&mut Peer> {
        self.get_mut(key.slot).filter(|p| p.key == key)
    }

    /// The slot of a session.
    pub fn slot_of_session(&self, session: &SessionId) -> Option<u32> {
        self.by_session.get(session).copied()
    }

    /// The slot datagrams from `addr` go to.
    pub fn slot_of_addr(&self, addr: &SocketAddr) -> Option<u32> {
        self.by_addr.get(addr).copied()
    }

    /// The slot of the peer whose ICE username fragment is `ufrag`.
    pub fn slot_of_ufrag(&self, ufrag: &str) -> Option<u32> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// Every peer.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.slots.iter().flatten()
    }

    /// How many peers there are.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    /// Whether there is no peer.
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }
}
