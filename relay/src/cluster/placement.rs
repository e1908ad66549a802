//! Where an event's origin goes and where a listener is served: pure choices over the live nodes
//! (as their last heartbeats describe them), tested without Redis.

use crate::cluster::node::NodeInfo;
use crate::ids::{EventId, NodeId};

/// What the cluster's live nodes carry together (draining ones not counted); None when no node
/// is known (Redis away at start): book against the node's own capacity then.
pub fn cluster_capacity(nodes: &[NodeInfo]) -> Option<crate::capacity::Capacity> {
    let live: Vec<&NodeInfo> = nodes.iter().filter(|n| !n.draining).collect();
    if live.is_empty() {
        return None;
    }
    Some(crate::capacity::Capacity {
        listeners: live.iter().map(|n| n.capacity).fold(0u32, u32::saturating_add),
        channels: live.iter().map(|n| n.channels).fold(0u32, u32::saturating_add),
    })
}

/// The node an event's origin should go to: the least loaded one that is not draining (ties: the
/// lowest id, so that two nodes choosing at once choose alike).
pub fn pick_origin(nodes: &[NodeInfo]) -> Option<&NodeInfo> {
    nodes
        .iter()
        .filter(|n| !n.draining && n.capacity > 0)
        .min_by(|a, b| a.load().total_cmp(&b.load()).then_with(|| a.id.cmp(&b.id)))
}

/// Where a listener of `event` who reached node `here` is served: `here` while it has room;
/// else a node that serves the event already (its subscription is paid for), the least loaded
/// first; else the least loaded node with room. None: the cluster is full.
pub fn place_listener<'a>(nodes: &'a [NodeInfo], here: &NodeId, event: &EventId) -> Option<&'a NodeInfo> {
    let with_room = || nodes.iter().filter(|n| n.room() > 0);
    if let Some(me) = with_room().find(|n| &n.id == here) {
        return Some(me);
    }
    let least = |a: &&NodeInfo, b: &&NodeInfo| a.load().total_cmp(&b.load()).then_with(|| a.id.cmp(&b.id));
    with_room().filter(|n| n.serves(event)).min_by(least).or_else(|| with_room().min_by(least))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: u32, listeners: u32) -> NodeInfo {
        NodeInfo {
            id: NodeId::parse(id).unwrap(),
            url: format!("http://{id}"),
            media_ip: "192.0.2.1".parse().unwrap(),
            region: String::new(),
            capacity,
            channels: 100,
            listeners,
            cpu: 0.0,
            draining: false,
            origins: Vec::new(),
            edges: Vec::new(),
            at_ms: 0,
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn the_cluster_carries_what_its_live_nodes_carry() {
        let mut nodes = vec![node("a", 100, 0), node("b", 300, 0), node("c", 50, 0)];
        nodes[2].draining = true;
        let sum = cluster_capacity(&nodes).unwrap();
        assert_eq!((sum.listeners, sum.channels), (400, 200));
        assert!(cluster_capacity(&[]).is_none());
    }

    #[test]
    fn the_origin_goes_to_the_least_loaded_node_that_is_not_draining() {
        let mut nodes = vec![node("a", 100, 50), node("b", 100, 10), node("c", 100, 0)];
        nodes[2].draining = true;
        assert_eq!(pick_origin(&nodes).unwrap().id, id("b"));
        nodes[1].cpu = 0.9; // b's shards are busy (a mixed event, say)
        assert_eq!(pick_origin(&nodes).unwrap().id, id("a"));
        assert_eq!(
            pick_origin(&[node("x", 10, 0), node("w", 10, 0)]).unwrap().id,
            id("w"),
            "ties: lowest id"
        );
        assert!(pick_origin(&nodes[2..]).is_none());
    }

    #[test]
    fn a_listener_stays_where_it_came_while_there_is_room_then_goes_where_the_event_is() {
        let event = EventId::parse("conf").unwrap();
        let mut nodes = vec![node("a", 2, 1), node("b", 10, 1), node("c", 10, 5)];
        assert_eq!(place_listener(&nodes, &id("a"), &event).unwrap().id, id("a"));
        nodes[0].listeners = 2; // a is full
        assert_eq!(place_listener(&nodes, &id("a"), &event).unwrap().id, id("b"), "least loaded");
        nodes[2].edges.push(event.clone());
        assert_eq!(place_listener(&nodes, &id("a"), &event).unwrap().id, id("c"), "c serves it already");
        nodes[2].draining = true;
        assert_eq!(place_listener(&nodes, &id("a"), &event).unwrap().id, id("b"), "not to a draining node");
        nodes[1].listeners = 10;
        assert!(place_listener(&nodes, &id("a"), &event).is_none(), "the cluster is full");
    }
}
