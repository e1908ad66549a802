//! Control messages about one event, published by the node that decides (its origin, or the node
//! an organiser called) to every node serving the event. Media never waits for them: they keep
//! the edges' views (who is on air) and sessions (a cancelled event) in step with the origin.

use serde::{Deserialize, Serialize};

use crate::ids::{Language, NodeId};

/// What changed about an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// Who is on air in a channel (None: nobody, the channel carries the floor).
    OnAir {
        /// The channel.
        language: Language,
        /// The interpreter's name.
        interpreter: Option<String>,
        /// Coughing.
        muted: bool,
    },
    /// The event's channels changed: edges take the new layout from the store.
    Layout,
    /// The event was cancelled or ended: every node drops its sessions.
    Ended,
    /// A node took the event's origin (edges resubscribe to it).
    Origin {
        /// The new origin.
        node: NodeId,
    },
}
