//! Listeners still connecting: their offer was answered but ICE and DTLS are not done yet. They
//! count apart from listening places, at most so many on the node and so many from one client
//! address, so offers that never connect cannot crowd out the listeners who do. A place is held
//! by a [`Held`] guard while the session is made (given back if the request is dropped), then by
//! the session until the shard reports it connected or ended ([`Connecting::done`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::ids::SessionId;

/// Why a listener may not start connecting now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectingError {
    /// One client address has as many listeners connecting as it may.
    #[error("{0} listeners from your address are still connecting; try again in a few seconds")]
    Client(u32),
    /// The node has as many listeners connecting as it may.
    #[error("too many listeners are connecting to this service right now; try again in a few seconds")]
    Node,
}

/// How many listeners may be connecting at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectingLimits {
    pub per_node: u32,
    pub per_client: u32,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    by_client: HashMap<IpAddr, u32>,
    sessions: HashMap<SessionId, IpAddr>,
}

impl Counts {
    fn release(&mut self, client: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_client.get_mut(&client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_client.remove(&client);
            }
        }
    }
}

/// The listeners connecting on this node.
#[derive(Debug)]
pub(crate) struct Connecting {
    limits: ConnectingLimits,
    counts: Mutex<Counts>,
}

impl Connecting {
    pub(crate) fn new(limits: ConnectingLimits) -> Self {
        Self { limits, counts: Mutex::default() }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic elsewhere while holding the lock leaves plain counters behind: still usable.
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hold a connecting place for a listener from `client`, or say why not.
    pub(crate) fn hold(&self, client: IpAddr) -> Result<Held<'_>, ConnectingError> {
        let mut counts = self.counts();
        let from_client = counts.by_client.get(&client).copied().unwrap_or(0);
        if from_client >= self.limits.per_client {
            return Err(ConnectingError::Client(from_client));
        }
        if counts.total >= self.limits.per_node {
            return Err(ConnectingError::Node);
        }
        counts.total += 1;
        *counts.by_client.entry(client).or_insert(0) += 1;
        Ok(Held { connecting: self, client, attached: false })
    }

    /// The session connected or ended: its place is free. Unknown sessions change nothing.
    pub(crate) fn done(&self, session: &SessionId) {
        let mut counts = self.counts();
        if let Some(client) = counts.sessions.remove(session) {
            counts.release(client);
        }
    }

    /// Listeners connecting on the node.
    pub(crate) fn total(&self) -> u32 {
        self.counts().total
    }
}

/// A connecting place, held while the listener's session is being made.
#[derive(Debug)]
#[must_use = "a place is given back when the guard drops; attach() it to the session"]
pub(crate) struct Held<'a> {
    connecting: &'a Connecting,
    client: IpAddr,
    attached: bool,
}

impl Held<'_> {
    /// The session exists: it holds the place until [`Connecting::done`].
    pub(crate) fn attach(mut self, session: SessionId) {
        self.attached = true;
        self.connecting.counts().sessions.insert(session, self.client);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.attached {
            self.connecting.counts().release(self.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    #[test]
    fn one_address_may_have_so_many_connecting_and_others_are_apart() {
        let connecting = Connecting::new(ConnectingLimits { per_node: 10, per_client: 2 });
        let a = SessionId::generate();
        connecting.hold(ip(1)).unwrap().attach(a.clone());
        connecting.hold(ip(1)).unwrap().attach(SessionId::generate());
        assert_eq!(connecting.hold(ip(1)).unwrap_err(), ConnectingError::Client(2));
        connecting.hold(ip(2)).unwrap().attach(SessionId::generate());
        // One connects: its address may start another.
        connecting.done(&a);
        connecting.done(&a); // a second note for it changes nothing
        connecting.hold(ip(1)).unwrap().attach(SessionId::generate());
        assert_eq!(connecting.total(), 3);
    }

    #[test]
    fn the_node_cap_counts_every_address() {
        let connecting = Connecting::new(ConnectingLimits { per_node: 2, per_client: 5 });
        connecting.hold(ip(1)).unwrap().attach(SessionId::generate());
        connecting.hold(ip(2)).unwrap().attach(SessionId::generate());
        assert_eq!(connecting.hold(ip(3)).unwrap_err(), ConnectingError::Node);
        assert_eq!(connecting.total(), 2, "a refusal changes nothing");
    }

    #[test]
    fn a_place_not_attached_is_given_back_when_the_guard_drops() {
        let connecting = Connecting::new(ConnectingLimits { per_node: 1, per_client: 1 });
        {
            let _held = connecting.hold(ip(1)).unwrap();
            assert!(connecting.hold(ip(1)).is_err());
        } // the offer was refused, or the request dropped
        assert_eq!(connecting.total(), 0);
        connecting.hold(ip(1)).unwrap().attach(SessionId::generate());
        assert_eq!(connecting.total(), 1);
    }
}
