//! What a node tells the cluster about itself at every heartbeat: where it is reached, how full it
//! is, and which events it serves (as their origin, or as an edge of another node's).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, NodeId};

/// One node, as published in Redis (`tolk:node:{id}`, expiring unless renewed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Its public HTTP base (`https://tolk-2.coop.example`): where listeners and publishers are sent.
    pub url: String,
    /// The address in its ICE candidates.
    pub media_ip: IpAddr,
    /// Where it is (an operator's word: `eu-west`, `coop-b`); empty when not set.
    #[serde(default)]
    pub region: String,
    /// Listeners it takes at the most.
    pub capacity: u32,
    /// Channel units it carries at the most ([`crate::capacity::Capacity::channels`]).
    #[serde(default)]
    pub channels: u32,
    /// Listeners connected now.
    pub listeners: u32,
    /// Busy share of its media shards over the last heartbeat, 0 to 1.
    pub cpu: f64,
    /// Draining (`tolk drain`): takes no new listener and no new event.
    #[serde(default)]
    pub draining: bool,
    /// Events it is the origin of.
    #[serde(default)]
    pub origins: Vec<EventId>,
    /// Events it serves as an edge (it subscribes to their origin).
    #[serde(default)]
    pub edges: Vec<EventId>,
    /// Its clock at the heartbeat, milliseconds since 1970.
    pub at_ms: i64,
}

impl NodeInfo {
    /// Listeners it may still take.
    pub fn room(&self) -> u32 {
        if self.draining { 0 } else { self.capacity.saturating_sub(self.listeners) }
    }

    /// How full it is, 0 to 1 (a draining node counts as full): its share of listeners, or its
    /// CPU once that is over half (mixing, or a machine busy with something else). Below that,
    /// CPU is noise and would make nodes' choices differ for nothing.
    pub fn load(&self) -> f64 {
        if self.draining || self.capacity == 0 {
            return 1.0;
        }
        let cpu = if self.cpu > 0.5 { self.cpu } else { 0.0 };
        (f64::from(self.listeners) / f64::from(self.capacity)).max(cpu).min(1.0)
    }

    /// Whether it serves `event` already (origin or edge).
    pub fn serves(&self, event: &EventId) -> bool {
        self.origins.contains(event) || self.edges.contains(event)
    }
}
