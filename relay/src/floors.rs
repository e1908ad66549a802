//! Floor lifecycles, under one supervisor: an RTP floor's port (opened at creation, reopened on
//! the same port after a restart), a BBB floor's task (it follows the meeting for the event's
//! life) and a peer floor's subscription to a peer cluster's event. A WHIP floor needs nothing
//! here: its publisher joins the shards like any session. In a cluster, the floors Tolk pulls
//! itself (BBB, peer) run on the event's origin only: they start when a node takes the origin
//! ([`Floors::start_pulled`]), not at creation.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::watch;
use tracing::warn;

use crate::bbb::api::BbbApi;
use crate::bbb::{BbbConfig, BbbError, BbbFloor, FloorStatus};
use crate::cluster::cascade::{EdgeLink, Upstream};
use crate::ids::EventId;
use crate::net::{EventLayout, Media, NetError};
use crate::store::{Event, FloorKind};

/// What can go wrong with a floor.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// A BBB floor on a node without a BBB server, or with an unusable configuration.
    #[error(transparent)]
    Bbb(#[from] BbbError),
    #[error(transparent)]
    Net(#[from] NetError),
    /// A peer floor that cannot be followed.
    #[error("the peer floor: {0}")]
    Peer(String),
}

/// The running floors of a node.
pub(crate) struct Floors {
    media: Arc<Media>,
    /// The node's BBB server (None: BBB floors are refused).
    bbb: Option<Arc<BbbApi>>,
    /// The running BBB floors; removing one makes Tolk leave its meeting.
    bbb_floors: DashMap<EventId, BbbFloor>,
    /// The running peer floors; stopping one ends its subscription.
    peer_floors: DashMap<EventId, EdgeLink>,
    /// Talks to peer clusters (follows no redirect by itself).
    http: reqwest::Client,
    /// In a cluster: BBB and peer floors start on the event's origin, not at creation.
    clustered: bool,
    /// Held while a pulled floor starts: two starts of one floor (the origin taken, and the
    /// event made there) make one.
    starting: tokio::sync::Mutex<()>,
}

impl Floors {
    /// Floors on `media`, with the node's BBB server if it has one.
    pub(crate) fn new(
        media: Arc<Media>,
        bbb: Option<BbbConfig>,
        clustered: bool,
    ) -> Result<Self, FloorError> {
        let bbb = match bbb {
            Some(config) => Some(Arc::new(BbbApi::new(config)?)),
            None => None,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| FloorError::Peer(format!("HTTP client: {e}")))?;
        Ok(Self {
            media,
            bbb,
            bbb_floors: DashMap::new(),
            peer_floors: DashMap::new(),
            http,
            clustered,
            starting: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether this node can take a BBB floor.
    pub(crate) fn check_bbb(&self) -> Result<(), FloorError> {
        match self.bbb {
            Some(_) => Ok(()),
            None => Err(BbbError::NotConfigured.into()),
        }
    }

    /// Start what an event's floor needs: an RTP floor's port (the stored one, else any free
    /// one; returned), a BBB floor's task, a peer floor's subscription (in a cluster these two
    /// wait for the event's origin). Nothing for a WHIP floor.
    pub(crate) async fn start(
        &self,
        event: &Event,
        layout: Arc<EventLayout>,
    ) -> Result<Option<u16>, FloorError> {
        match event.floor_kind {
            FloorKind::Whip => Ok(None),
            FloorKind::Rtp => {
                let addr = self.media.open_rtp_floor(layout, event.rtp_port.unwrap_or(0)).await?;
                Ok(Some(addr.port()))
            }
            FloorKind::Bbb | FloorKind::Peer if self.clustered => Ok(None),
            FloorKind::Bbb | FloorKind::Peer => {
                self.start_pulled(event, layout).await?;
                Ok(None)
            }
        }
    }

    /// Start a floor Tolk pulls itself (BBB, peer), unless it runs: on a single node at creation,
    /// in a cluster when this node takes the event's origin.
    pub(crate) async fn start_pulled(
        &self,
        event: &Event,
        layout: Arc<EventLayout>,
    ) -> Result<(), FloorError> {
        let _starting = self.starting.lock().await;
        match event.floor_kind {
            FloorKind::Bbb if !self.bbb_floors.contains_key(&event.id) => self.start_bbb(event, layout).await,
            FloorKind::Peer if !self.peer_floors.get(&event.id).is_some_and(|l| l.running()) => {
                self.start_peer(event, layout)
            }
            _ => Ok(()),
        }
    }

    /// Subscribe to the peer cluster's event: its channels become this event's.
    fn start_peer(&self, event: &Event, layout: Arc<EventLayout>) -> Result<(), FloorError> {
        let Some(peer) = &event.peer else {
            return Err(FloorError::Peer("a peer floor without its peer event".into()));
        };
        self.media.prepare_event(layout.clone());
        let upstream = Upstream::Peer {
            url: peer.url.clone(),
            event: peer.event.clone(),
            token: peer.token.clone(),
            http: self.http.clone(),
        };
        let link = EdgeLink::start(upstream, layout, self.media.clone());
        if let Some(old) = self.peer_floors.insert(event.id.clone(), link) {
            old.stop();
        }
        Ok(())
    }

    /// Whether the peer floor of an event is subscribed (None: not a running peer floor).
    pub(crate) fn peer_running(&self, id: &EventId) -> Option<bool> {
        self.peer_floors.get(id).map(|l| l.running())
    }

    /// After a restart: start the floor of a stored event whose media window is still open
    /// (the caller checks), on its stored port.
    pub(crate) async fn resume(&self, event: &Event, layout: Arc<EventLayout>) {
        if let Err(e) = self.start(event, layout).await {
            warn!(event = %event.id, error = %e, "could not start the floor");
        }
    }

    /// Follow the event's BBB meeting: its audio enters the shards through a loopback floor socket.
    async fn start_bbb(&self, event: &Event, layout: Arc<EventLayout>) -> Result<(), FloorError> {
        let (Some(api), Some(meeting)) = (&self.bbb, &event.bbb_meeting_id) else {
            return Err(BbbError::NotConfigured.into());
        };
        let forward_to: SocketAddr = self.media.open_loopback_floor(layout).await?;
        let floor =
            BbbFloor::spawn(api.clone(), event.id.clone(), meeting.clone(), forward_to, event.ends_at);
        self.bbb_floors.insert(event.id.clone(), floor);
        Ok(())
    }

    /// The event's window changed: a BBB floor leaves its meeting at the new end.
    pub(crate) fn set_ends_at(&self, id: &EventId, ends_at: DateTime<Utc>) {
        if let Some(floor) = self.bbb_floors.get(id) {
            floor.set_ends_at(ends_at);
        }
    }

    /// The event was cancelled: a BBB floor leaves its meeting (the shards close RTP floors).
    pub(crate) fn stop(&self, id: &EventId) {
        self.bbb_floors.remove(id);
        if let Some((_, link)) = self.peer_floors.remove(id) {
            link.stop();
        }
    }

    /// Running BBB and peer floors.
    pub(crate) fn held(&self) -> usize {
        self.bbb_floors.len() + self.peer_floors.len()
    }

    /// Where a BBB floor is (None: not a running BBB floor).
    pub(crate) fn status(&self, id: &EventId) -> Option<FloorStatus> {
        self.bbb_floors.get(id).map(|f| f.status())
    }

    /// The state of an event's BBB floor, to wait on (None: not a running BBB floor).
    pub(crate) fn watch(&self, id: &EventId) -> Option<watch::Receiver<FloorStatus>> {
        self.bbb_floors.get(id).map(|f| f.watch())
    }
}
