//! Several nodes serving one event (`TOLK_REDIS_URL`): each node publishes itself in Redis with a
//! heartbeat; each event has one **origin** node (a lease in Redis) where its floor and booths
//! publish and its channels are made; every other node that has listeners of the event is an
//! **edge**: it subscribes to the origin once, over one WebRTC link carrying every channel
//! ([`cascade`]), and fans the channels out to its own listeners. A listener may reach any node;
//! a full node sends it on ([`placement`]). Without Redis none of this runs and a node is the
//! single node it always was.
//!
//! - [`node`]: what a node publishes about itself;
//! - [`placement`]: pure choices (the origin of an event, the node a listener is served on);
//! - [`registry`]: the Redis side (node records, leases, control messages);
//! - [`cascade`]: an edge's subscription to an origin;
//! - [`control`]: the control messages.

pub mod cascade;
pub mod control;
pub mod node;
pub mod placement;
pub mod registry;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::cluster::cascade::EdgeLink;
use crate::cluster::node::NodeInfo;
use crate::cluster::registry::Registry;
use crate::ids::{EventId, NodeId};
use crate::net::{EventLayout, Media};

/// What can go wrong in the cluster layer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer, or answered an error.
    #[error("the cluster's Redis: {0}")]
    Redis(String),
    /// A setting that cannot work.
    #[error("{0}")]
    Config(String),
    /// No node of the cluster has room (or none is alive).
    #[error("no node of the cluster has room for another listener")]
    Full,
}

/// How a node takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis (`redis://host:6379/0`).
    pub redis_url: String,
    /// The secret every node of the cluster shares: it authorises one node's cascade at another.
    pub secret: String,
    /// Where this node is (an operator's word), for `tolk cluster status`.
    pub region: String,
    /// The prefix of every Redis key (several clusters on one Redis).
    pub prefix: String,
    /// How often the node renews its record and its leases.
    pub heartbeat: Duration,
    /// How long a node's record lives without a heartbeat.
    pub node_ttl: Duration,
    /// How long an origin lease lives without renewal.
    pub lease_ttl: Duration,
}

impl ClusterConfig {
    /// The defaults: a heartbeat every 500 ms; a node, and the leases it held, gone 2 s after
    /// its last one (an origin's failover starts then).
    pub fn new(redis_url: String, secret: String) -> Self {
        Self {
            redis_url,
            secret,
            region: String::new(),
            prefix: "tolk".into(),
            heartbeat: Duration::from_millis(500),
            node_ttl: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(2),
        }
    }
}

/// Who subscribes to an event at its origin: a node of this cluster, or a peer cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscriber {
    /// A node of this cluster (its token is the cluster's secret).
    Node,
    /// A peer cluster, by the name its peering token was issued to.
    Peer(String),
}

/// Where an event's origin is, seen from this node.
#[derive(Debug, Clone)]
pub enum Origin {
    /// This node.
    Here,
    /// Another node.
    There(NodeInfo),
}

/// Where a listener is served.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// This node.
    Here,
    /// Another node's public URL.
    There(String),
}

/// What the cluster tells the rest of the node, as it happens.
#[derive(Debug, Clone)]
pub(crate) enum ClusterNote {
    /// This node took (true) or lost (false) the event's origin: the floors Tolk pulls itself
    /// (BBB, peer) run on the origin.
    Origin(EventId, bool),
    /// Another node says the event was cancelled or ended: its sessions end here too.
    Ended(EventId),
    /// Another node changed the event (channels, window): read it again.
    Changed(EventId),
}

/// The receiving end of [`ClusterNote`]s.
pub(crate) type ClusterNotes = tokio::sync::mpsc::UnboundedReceiver<ClusterNote>;

/// This node in its cluster.
pub(crate) struct Cluster {
    me: NodeId,
    url: String,
    media_ip: IpAddr,
    capacity: crate::capacity::Capacity,
    config: ClusterConfig,
    registry: Registry,
    media: Arc<Media>,
    /// Talks to other nodes; follows no redirect (a redirect is the cluster's answer).
    http: reqwest::Client,
    /// Events this node is the origin of.
    origins: Mutex<HashSet<EventId>>,
    /// Events this node is an edge of: their running cascade.
    edges: Mutex<HashMap<EventId, EdgeLink>>,
    /// The live nodes at the last heartbeat.
    nodes: tokio::sync::watch::Sender<Vec<NodeInfo>>,
    draining: AtomicBool,
    /// Whether the last Redis call failed (logged once per outage).
    redis_down: AtomicBool,
    /// What the rest of the node hears of the cluster.
    notes: tokio::sync::mpsc::UnboundedSender<ClusterNote>,
    /// Who is on air at the origin, for the events this node is an edge of (control messages).
    remote_on_air: Mutex<HashMap<EventId, Vec<control::Speaking>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Join the cluster: the heartbeat starts at once (the node is listed within a heartbeat).
    pub(crate) fn start(
        config: ClusterConfig,
        me: NodeId,
        url: String,
        media_ip: IpAddr,
        capacity: crate::capacity::Capacity,
        media: Arc<Media>,
    ) -> Result<(Arc<Self>, ClusterNotes), ClusterError> {
        if config.secret.len() < 16 {
            return Err(ClusterError::Config(
                "TOLK_CLUSTER_SECRET must be set, and at least 16 characters, when TOLK_REDIS_URL is".into(),
            ));
        }
        let registry = Registry::open(&config.redis_url, &config.prefix)?;
        let (notes, changes) = tokio::sync::mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClusterError::Config(format!("HTTP client: {e}")))?;
        let cluster = Arc::new(Self {
            me,
            url,
            media_ip,
            capacity,
            config,
            registry,
            media,
            http,
            origins: Mutex::new(HashSet::new()),
            edges: Mutex::new(HashMap::new()),
            nodes: tokio::sync::watch::Sender::new(Vec::new()),
            draining: AtomicBool::new(false),
            redis_down: AtomicBool::new(false),
            notes,
            remote_on_air: Mutex::new(HashMap::new()),
        });
        tokio::spawn(heartbeats(Arc::downgrade(&cluster)));
        tokio::spawn(follow_control(Arc::downgrade(&cluster)));
        info!(node = %cluster.me, redis = %cluster.config.redis_url, "joined the cluster");
        Ok((cluster, changes))
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn secret(&self) -> &str {
        &self.config.secret
    }

    /// Whether a bearer token is the cluster's secret (compared in constant time).
    pub(crate) fn is_member(&self, token: Option<&str>) -> bool {
        use crate::ids::Token;
        let Some(token) = token else { return false };
        let secret = Token::from_secret(&self.config.secret).hash();
        crate::auth::constant_time_eq(&Token::from_secret(token).hash(), &secret)
    }

    /// The live nodes at the last heartbeat.
    pub(crate) fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.borrow().clone()
    }

    /// The live nodes, as they change.
    pub(crate) fn watch_nodes(&self) -> tokio::sync::watch::Receiver<Vec<NodeInfo>> {
        self.nodes.subscribe()
    }

    fn node(&self, id: &NodeId) -> Option<NodeInfo> {
        self.nodes().into_iter().find(|n| &n.id == id)
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn note_redis<T>(&self, result: Result<T, ClusterError>) -> Option<T> {
        match result {
            Ok(v) => {
                if self.redis_down.swap(false, Ordering::Relaxed) {
                    info!("the cluster's Redis answers again");
                }
                Some(v)
            }
            Err(e) => {
                if !self.redis_down.swap(true, Ordering::Relaxed) {
                    warn!(error = %e, "the cluster's Redis does not answer; media goes on, control waits");
                }
                None
            }
        }
    }

    /// The origin of `event` for a source or an edge arriving here: this node takes the lease
    /// when nobody holds it.
    pub(crate) async fn ensure_origin(&self, event: &EventId) -> Result<Origin, ClusterError> {
        let holder = self.registry.claim(event, &self.me, self.config.lease_ttl).await?;
        self.origin_is(event, holder)
    }

    /// The origin of `event` for a listener arriving here: the lease's holder, or, when nobody
    /// holds it yet, the least loaded node (which takes it at its first request, or this node,
    /// which takes it now).
    pub(crate) async fn listener_origin(&self, event: &EventId) -> Result<Origin, ClusterError> {
        if let Some(holder) = self.registry.origin(event).await?
            && (holder == self.me || self.node(&holder).is_some())
        {
            return self.origin_is(event, holder);
        }
        let nodes = self.nodes();
        match placement::pick_origin(&nodes) {
            Some(pick) if pick.id != self.me => Ok(Origin::There(pick.clone())),
            _ => self.ensure_origin(event).await,
        }
    }

    fn origin_is(&self, event: &EventId, holder: NodeId) -> Result<Origin, ClusterError> {
        if holder == self.me {
            let new = self.origins.lock().map(|mut o| o.insert(event.clone())).unwrap_or(false);
            if new {
                info!(%event, "this node is the event's origin");
                self.stop_edge(event);
                let _ = self.notes.send(ClusterNote::Origin(event.clone(), true));
            }
            return Ok(Origin::Here);
        }
        match self.node(&holder) {
            Some(node) => Ok(Origin::There(node)),
            None => Err(ClusterError::Redis(format!(
                "the origin of {event} is node {holder}, which has no heartbeat yet; try again in a moment"
            ))),
        }
    }

    /// Tell every node serving `event` (not waited for: control never holds up a request; a
    /// Redis away loses the message, and the next change or the edges' own state makes up).
    pub(crate) fn publish(self: &Arc<Self>, event: &EventId, message: control::Control) {
        let (cluster, event) = (self.clone(), event.clone());
        tokio::spawn(async move {
            let sent = cluster.registry.publish(&event, &message).await;
            cluster.note_redis(sent);
        });
    }

    /// Who is on air at the origin of an event this node is an edge of (None: this node does not
    /// know: it is the origin, or has heard nothing).
    pub(crate) fn remote_on_air(&self, event: &EventId) -> Option<Vec<control::Speaking>> {
        if self.is_origin(event) {
            return None;
        }
        self.remote_on_air.lock().ok()?.get(event).cloned()
    }

    /// A control message about `event` from another node.
    fn on_control(&self, event: EventId, message: control::Control) {
        match message {
            control::Control::OnAir { channels } => {
                if let Ok(mut remote) = self.remote_on_air.lock() {
                    remote.insert(event, channels);
                }
            }
            control::Control::Ended => {
                if let Ok(mut remote) = self.remote_on_air.lock() {
                    remote.remove(&event);
                }
                let _ = self.notes.send(ClusterNote::Ended(event));
            }
            control::Control::Layout => {
                let _ = self.notes.send(ClusterNote::Changed(event));
            }
        }
    }

    /// How many events this node is the origin of, and an edge of.
    pub(crate) fn serving(&self) -> (usize, usize) {
        let origins = self.origins.lock().map(|o| o.len()).unwrap_or(0);
        let edges = self.edges.lock().map(|e| e.len()).unwrap_or(0);
        (origins, edges)
    }

    /// Whether this node is the origin of `event` (as far as it knows).
    pub(crate) fn is_origin(&self, event: &EventId) -> bool {
        self.origins.lock().is_ok_and(|o| o.contains(event))
    }

    /// Where a listener of `event` who reached this node is served.
    pub(crate) fn place(&self, event: &EventId) -> Result<Placement, ClusterError> {
        let mut nodes = self.nodes();
        // This node's own record is as fresh as its media: count what it knows now.
        if let Some(me) = nodes.iter_mut().find(|n| n.id == self.me) {
            me.draining = self.draining();
        } else if !self.draining() {
            return Ok(Placement::Here); // not listed yet (first heartbeat pending)
        }
        match placement::place_listener(&nodes, &self.me, event) {
            Some(n) if n.id == self.me => Ok(Placement::Here),
            Some(n) => Ok(Placement::There(n.url.clone())),
            None => Err(ClusterError::Full),
        }
    }

    /// Another node for a listener this node turned out to be too full for: its URL.
    pub(crate) fn place_elsewhere(&self, event: &EventId) -> Option<String> {
        let mut nodes = self.nodes();
        nodes.retain(|n| n.id != self.me);
        placement::place_listener(&nodes, &self.me, event).map(|n| n.url.clone())
    }

    /// This node serves listeners of `event` whose origin is `origin`: the cascade runs (started
    /// now if it does not), and the layout the listeners join with is the edge's.
    pub(crate) fn edge_layout(self: &Arc<Self>, layout: &Arc<EventLayout>) -> Arc<EventLayout> {
        let edge = || Arc::new(EventLayout { cascaded: true, ..(**layout).clone() });
        let Ok(mut edges) = self.edges.lock() else { return edge() };
        if let Some(link) = edges.get(&layout.id).filter(|l| l.running()) {
            return link.layout().clone();
        }
        let edge = edge();
        self.media.prepare_event(edge.clone());
        let link = EdgeLink::start(
            cascade::Upstream::Cluster(Arc::downgrade(self)),
            edge.clone(),
            self.media.clone(),
        );
        edges.insert(layout.id.clone(), link);
        edge
    }

    /// The edge layout of `event` while its cascade runs.
    pub(crate) fn running_edge(&self, event: &EventId) -> Option<Arc<EventLayout>> {
        let edges = self.edges.lock().ok()?;
        edges.get(event).filter(|l| l.running()).map(|l| l.layout().clone())
    }

    /// The origin's layout of an event this node was an edge of (it becomes the origin): the
    /// shards flip in place, its listeners stay.
    fn stop_edge(&self, event: &EventId) {
        let link = self.edges.lock().ok().and_then(|mut e| e.remove(event));
        if let Some(link) = link {
            let edge = link.layout();
            let layout = Arc::new(EventLayout { cascaded: edge.relayed, ..(**edge).clone() });
            link.stop();
            self.media.prepare_event(layout);
        }
    }

    /// A listener of `event` left this node: an edge with no listener of it left drops its
    /// subscription.
    pub(crate) async fn listener_left(&self, event: &EventId) {
        if !self.edges.lock().is_ok_and(|e| e.contains_key(event)) {
            return;
        }
        let listening: usize = self.media.listeners(event).await.values().sum();
        if listening == 0 {
            let link = self.edges.lock().ok().and_then(|mut e| e.remove(event));
            if let Some(link) = link {
                info!(%event, "no listener of the event left here: the cascade ends");
                link.stop();
            }
        }
    }

    /// The event ended here: no lease, no cascade.
    pub(crate) async fn event_ended(&self, event: &EventId) {
        let link = self.edges.lock().ok().and_then(|mut e| e.remove(event));
        if let Some(link) = link {
            link.stop();
        }
        let was = self.origins.lock().is_ok_and(|mut o| o.remove(event));
        if was {
            let released = self.registry.release(event, &self.me).await;
            self.note_redis(released);
        }
    }

    /// This node's record as of now.
    async fn record(&self, cpu: f64) -> NodeInfo {
        let stats = self.media.stats().await;
        let listeners: usize = stats.iter().flat_map(|s| &s.channels).map(|c| c.listeners).sum();
        let mut origins: Vec<EventId> =
            self.origins.lock().map(|o| o.iter().cloned().collect()).unwrap_or_default();
        origins.sort();
        let mut edges: Vec<EventId> =
            self.edges.lock().map(|e| e.keys().cloned().collect()).unwrap_or_default();
        edges.sort();
        NodeInfo {
            id: self.me.clone(),
            url: self.url.clone(),
            media_ip: self.media_ip,
            region: self.config.region.clone(),
            capacity: self.capacity.listeners,
            channels: self.capacity.channels,
            listeners: u32::try_from(listeners).unwrap_or(u32::MAX),
            cpu,
            draining: self.draining(),
            origins,
            edges,
            at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// One heartbeat: read the drain flag, publish the record, renew the leases, read the
    /// nodes; a draining node moves some of its listeners on.
    async fn beat(&self, cpu: f64) {
        if let Some(drain) = self.note_redis(self.registry.drain_asked(&self.me).await)
            && self.draining.swap(drain, Ordering::Relaxed) != drain
        {
            info!(drain, "drain {}", if drain { "asked: listeners move to other nodes" } else { "ended" });
        }
        if self.draining() {
            self.move_listeners().await;
        }
        let record = self.record(cpu).await;
        let published = self.registry.heartbeat(&record, self.config.node_ttl).await;
        if self.note_redis(published).is_none() {
            return;
        }
        for event in record.origins {
            match self.registry.renew(&event, &self.me, self.config.lease_ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    // Redis lost it, or another node took it while this one was unreachable.
                    warn!(%event, "this node no longer holds the event's origin lease");
                    if let Ok(mut o) = self.origins.lock() {
                        o.remove(&event);
                    }
                    // Take it back if nobody else did.
                    if !matches!(self.ensure_origin(&event).await, Ok(Origin::Here)) {
                        let _ = self.notes.send(ClusterNote::Origin(event.clone(), false));
                    }
                }
                Err(e) => {
                    self.note_redis(Err::<(), _>(e));
                }
            }
        }
        if let Some(nodes) = self.note_redis(self.registry.nodes().await) {
            self.nodes.send_if_modified(|cached| {
                // Heartbeat times and loads change every time; who is there rarely.
                let changed = cached.len() != nodes.len()
                    || cached.iter().zip(&nodes).any(|(a, b)| {
                        a.id != b.id
                            || a.capacity != b.capacity
                            || a.channels != b.channels
                            || a.draining != b.draining
                    });
                *cached = nodes;
                changed
            });
        }
    }

    /// Draining: end up to [`DRAIN_PER_BEAT`] listener sessions while another node has room;
    /// their pages reconnect through this node, which places them elsewhere.
    async fn move_listeners(&self) {
        let room: u32 = self.nodes().iter().filter(|n| n.id != self.me).map(NodeInfo::room).sum();
        if room == 0 {
            return;
        }
        let sessions = self.media.listener_sessions(DRAIN_PER_BEAT.min(room as usize));
        for session in &sessions {
            let _ = self.media.end(session).await;
        }
        if !sessions.is_empty() {
            info!(moved = sessions.len(), "draining: listeners sent on");
        }
    }

    /// Leave the cluster (a clean shutdown): the record and the leases go at once.
    pub(crate) async fn leave(&self) {
        let origins: Vec<EventId> =
            self.origins.lock().map(|o| o.iter().cloned().collect()).unwrap_or_default();
        for event in origins {
            let _ = self.registry.release(&event, &self.me).await;
        }
        let _ = self.registry.leave(&self.me).await;
    }
}

/// Follow every event's control channel, subscribing again after a Redis outage.
async fn follow_control(cluster: Weak<Cluster>) {
    use futures_util::StreamExt;
    loop {
        let Some(c) = cluster.upgrade() else { return };
        let registry = c.registry.clone();
        drop(c);
        match registry.subscribe().await {
            Ok(pubsub) => {
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(c) = cluster.upgrade() else { return };
                    let Some(event) = registry.event_of_channel(message.get_channel_name()) else { continue };
                    let Ok(payload) = message.get_payload::<String>() else { continue };
                    match serde_json::from_str::<control::Control>(&payload) {
                        Ok(control) => c.on_control(event, control),
                        Err(e) => tracing::debug!(error = %e, "a control message that is not one"),
                    }
                }
                tracing::debug!("control subscription ended; subscribing again");
            }
            Err(e) => tracing::debug!(error = %e, "control subscription failed; trying again"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Listener sessions a draining node ends per heartbeat (50 a second at the default heartbeat):
/// a hall of listeners moves within a minute or two, without all reconnecting at once.
const DRAIN_PER_BEAT: usize = 25;

/// The heartbeat loop, until the cluster is dropped.
async fn heartbeats(cluster: Weak<Cluster>) {
    let every = match cluster.upgrade() {
        Some(c) => c.config.heartbeat,
        None => return,
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut busy_before: Option<(f64, Instant)> = None;
    loop {
        ticks.tick().await;
        let Some(cluster) = cluster.upgrade() else { return };
        let stats = cluster.media.stats().await;
        let busy: f64 = stats.iter().map(|s| s.busy_seconds).sum();
        let now = Instant::now();
        let cpu = match busy_before {
            Some((before, at)) if now > at => {
                let wall = now.duration_since(at).as_secs_f64() * stats.len().max(1) as f64;
                ((busy - before) / wall).clamp(0.0, 1.0)
            }
            _ => 0.0,
        };
        busy_before = Some((busy, now));
        cluster.beat(cpu).await;
    }
}
