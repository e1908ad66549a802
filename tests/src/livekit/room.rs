//! The stand-in's rooms and participants, who sees whom (hidden participants are never listed to
//! others but receive every track), who is subscribed to which track, and the counters the tests
//! read ([`LiveKitStats`], published on a watch channel so waiting is change-driven).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use tokio::sync::{mpsc, watch};

use super::media::{MediaCommand, Packet};

/// What one published track did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    pub room: String,
    /// The publisher's identity.
    pub participant: String,
    pub sid: String,
    pub muted: bool,
    /// RTP packets that came in from the publisher.
    pub received: u64,
    /// RTP packets sent on to subscribers (one per subscriber).
    pub forwarded: u64,
    /// Received packets that carried an RFC 6464 audio level.
    pub with_audio_level: u64,
}

/// The stand-in's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveKitStats {
    pub websockets_open: usize,
    pub joins: u64,
    /// Connections refused (bad token, no permission, no room).
    pub refusals: u64,
    pub tracks_published: u64,
    /// Per track, by track sid.
    pub tracks: HashMap<String, TrackStats>,
    pub subscriber_offers: u64,
    pub pings: u64,
    pub mutes: u64,
    pub leaves: u64,
}

impl LiveKitStats {
    /// The tracks `identity` published.
    pub fn tracks_of(&self, identity: &str) -> Vec<&TrackStats> {
        self.tracks.values().filter(|t| t.participant == identity).collect()
    }
}

/// One participant as the room knows it.
pub(crate) struct Member {
    pub info: proto::ParticipantInfo,
    pub hidden: bool,
    pub can_subscribe: bool,
    pub auto_subscribe: bool,
    /// Explicit subscription choices (`update_subscription`), by track sid.
    pub choices: HashMap<String, bool>,
    pub signal: mpsc::UnboundedSender<proto::SignalResponse>,
    pub media: mpsc::UnboundedSender<MediaCommand>,
}

impl Member {
    fn wants(&self, track: &str) -> bool {
        self.can_subscribe && self.choices.get(track).copied().unwrap_or(self.auto_subscribe)
    }

    fn send(&self, message: Resp) {
        let _ = self.signal.send(proto::SignalResponse { message: Some(message) });
    }
}

pub(crate) struct RoomState {
    pub room: proto::Room,
    /// Participants by sid, in join order.
    pub members: Vec<Member>,
}

impl RoomState {
    fn member(&self, sid: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.info.sid == sid)
    }

    /// The room as listed (participant counts without hidden ones).
    pub fn listed(&self) -> proto::Room {
        let mut room = self.room.clone();
        room.num_participants = self.members.iter().filter(|m| !m.hidden).count() as u32;
        room.num_publishers =
            self.members.iter().filter(|m| !m.hidden && !m.info.tracks.is_empty()).count() as u32;
        room
    }

    /// Participants `viewer` may see (everyone but hidden ones and itself).
    pub fn visible_to(&self, viewer: &str) -> Vec<proto::ParticipantInfo> {
        self.members.iter().filter(|m| !m.hidden && m.info.sid != viewer).map(|m| m.info.clone()).collect()
    }

    /// Tell every member (itself too, as livekit-server does) about `sid`, unless it is hidden.
    fn announce(&self, sid: &str) {
        let Some(m) = self.member(sid) else { return };
        if m.hidden {
            return;
        }
        let update = proto::ParticipantUpdate { participants: vec![m.info.clone()] };
        for other in &self.members {
            other.send(Resp::Update(update.clone()));
        }
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub rooms: HashMap<String, RoomState>,
    /// Track sid → (room, publisher's sid).
    pub track_owner: HashMap<String, (String, String)>,
}

/// The shared state of one stand-in.
pub(crate) struct Hub {
    inner: Mutex<Inner>,
    pub stats: watch::Sender<LiveKitStats>,
    pub auto_create: bool,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A LiveKit-style id: `prefix` and 12 random characters.
pub(crate) fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", tolk_relay::ids::random_hex(6))
}

impl Hub {
    pub fn new(auto_create: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            stats: watch::channel(LiveKitStats::default()).0,
            auto_create,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self, f: impl FnOnce(&mut LiveKitStats)) {
        self.stats.send_modify(f);
    }

    /// Create `name` (or return it as it is).
    pub fn create_room(&self, name: &str, metadata: Option<&str>) -> proto::Room {
        let mut inner = self.lock();
        let state = inner.rooms.entry(name.to_owned()).or_insert_with(|| RoomState {
            room: proto::Room {
                sid: new_sid("RM_"),
                name: name.to_owned(),
                empty_timeout: 300,
                departure_timeout: 20,
                creation_time: now_ms() / 1000,
                creation_time_ms: now_ms(),
                ..Default::default()
            },
            members: Vec::new(),
        });
        if let Some(metadata) = metadata {
            state.room.metadata = metadata.to_owned();
        }
        state.listed()
    }

    /// Set a room's metadata and tell its participants; `None` if there is no such room.
    pub fn set_room_metadata(&self, name: &str, metadata: &str) -> Option<proto::Room> {
        let mut inner = self.lock();
        let state = inner.rooms.get_mut(name)?;
        state.room.metadata = metadata.to_owned();
        let room = state.listed();
        for m in &state.members {
            m.send(Resp::RoomUpdate(proto::RoomUpdate { room: Some(room.clone()) }));
        }
        Some(room)
    }

    /// Delete a room, disconnecting its participants; false if there was none.
    pub fn delete_room(&self, name: &str) -> bool {
        let mut inner = self.lock();
        let Some(state) = inner.rooms.remove(name) else { return false };
        inner.track_owner.retain(|_, (room, _)| room != name);
        drop(inner);
        for m in &state.members {
            m.send(Resp::Leave(proto::LeaveRequest {
                reason: proto::DisconnectReason::RoomDeleted as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                ..Default::default()
            }));
            let _ = m.media.send(MediaCommand::Close);
        }
        true
    }

    pub fn rooms(&self) -> Vec<proto::Room> {
        let mut rooms: Vec<_> = self.lock().rooms.values().map(RoomState::listed).collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    /// Everyone in `room`, hidden participants included (as livekit-server's ListParticipants).
    pub fn participants(&self, room: &str) -> Option<Vec<proto::ParticipantInfo>> {
        Some(self.lock().rooms.get(room)?.members.iter().map(|m| m.info.clone()).collect())
    }

    /// Add a member; returns the join response. The room must exist (or be auto-created).
    pub fn join(&self, room: &str, member: Member) -> Option<proto::JoinResponse> {
        if self.auto_create {
            self.create_room(room, None);
        }
        let mut inner = self.lock();
        let state = inner.rooms.get_mut(room)?;
        // Another connection with the same identity replaces the old one, as in livekit-server.
        if let Some(old) = state.members.iter().position(|m| m.info.identity == member.info.identity) {
            let old = state.members.remove(old);
            old.send(Resp::Leave(proto::LeaveRequest {
                reason: proto::DisconnectReason::DuplicateIdentity as i32,
                ..Default::default()
            }));
            let _ = old.media.send(MediaCommand::Close);
        }
        let sid = member.info.sid.clone();
        let others = state.visible_to(&sid);
        // The newcomer subscribes to what is already published.
        for other in &state.members {
            for track in &other.info.tracks {
                if member.wants(&track.sid) {
                    let _ = member.media.send(MediaCommand::Subscribe {
                        participant: other.info.sid.clone(),
                        track: track.sid.clone(),
                    });
                }
            }
        }
        let info = member.info.clone();
        state.members.push(member);
        state.announce(&sid);
        let room = state.listed();
        Some(proto::JoinResponse {
            room: Some(room),
            participant: Some(info),
            other_participants: others,
            server_version: "1.9.0".into(),
            server_info: Some(proto::ServerInfo {
                edition: proto::server_info::Edition::Standard as i32,
                version: "1.9.0".into(),
                protocol: 16,
                node_id: "tolk-standin".into(),
                ..Default::default()
            }),
            subscriber_primary: true,
            ping_interval: 5,
            ping_timeout: 15,
            ..Default::default()
        })
    }

    /// A member left (or its websocket closed): tell the others, drop its tracks.
    pub fn leave(&self, room: &str, sid: &str) {
        let mut inner = self.lock();
        let Some(state) = inner.rooms.get_mut(room) else { return };
        let Some(at) = state.members.iter().position(|m| m.info.sid == sid) else { return };
        let mut gone = state.members.remove(at);
        let _ = gone.media.send(MediaCommand::Close);
        for track in &gone.info.tracks {
            for m in &state.members {
                let _ = m.media.send(MediaCommand::Unsubscribe { track: track.sid.clone() });
            }
        }
        if !gone.hidden {
            gone.info.state = proto::participant_info::State::Disconnected as i32;
            gone.info.version += 1;
            let update = proto::ParticipantUpdate { participants: vec![gone.info.clone()] };
            for m in &state.members {
                m.send(Resp::Update(update.clone()));
            }
        }
        let tracks: Vec<String> = gone.info.tracks.iter().map(|t| t.sid.clone()).collect();
        for t in tracks {
            inner.track_owner.remove(&t);
        }
        drop(inner);
        self.count(|s| s.leaves += 1);
    }

    /// Publish a track (its media flows once the publisher's offer is answered).
    pub fn add_track(&self, room: &str, sid: &str, track: proto::TrackInfo) {
        let mut inner = self.lock();
        inner.track_owner.insert(track.sid.clone(), (room.to_owned(), sid.to_owned()));
        let Some(state) = inner.rooms.get_mut(room) else { return };
        let Some(m) = state.members.iter_mut().find(|m| m.info.sid == sid) else { return };
        m.info.tracks.push(track.clone());
        m.info.is_publisher = true;
        m.info.version += 1;
        let identity = m.info.identity.clone();
        state.announce(sid);
        for other in &state.members {
            if other.info.sid != sid && other.wants(&track.sid) {
                let _ = other
                    .media
                    .send(MediaCommand::Subscribe { participant: sid.to_owned(), track: track.sid.clone() });
            }
        }
        drop(inner);
        self.count(|s| {
            s.tracks_published += 1;
            s.tracks.insert(
                track.sid.clone(),
                TrackStats {
                    room: room.to_owned(),
                    participant: identity,
                    sid: track.sid.clone(),
                    muted: track.muted,
                    ..Default::default()
                },
            );
        });
    }

    /// The publisher's media section that carries `track` (its `TrackInfo.mid`).
    pub fn set_mid(&self, room: &str, sid: &str, track: &str, mid: &str) {
        let mut inner = self.lock();
        let member = inner.rooms.get_mut(room).and_then(|s| s.members.iter_mut().find(|m| m.info.sid == sid));
        if let Some(t) = member.and_then(|m| m.info.tracks.iter_mut().find(|t| t.sid == track)) {
            t.mid = mid.to_owned();
        }
    }

    pub fn mute(&self, room: &str, sid: &str, track: &str, muted: bool) {
        let mut inner = self.lock();
        let Some(state) = inner.rooms.get_mut(room) else { return };
        let Some(m) = state.members.iter_mut().find(|m| m.info.sid == sid) else { return };
        let Some(t) = m.info.tracks.iter_mut().find(|t| t.sid == track) else { return };
        t.muted = muted;
        m.info.version += 1;
        state.announce(sid);
        drop(inner);
        self.count(|s| {
            s.mutes += 1;
            if let Some(t) = s.tracks.get_mut(track) {
                t.muted = muted;
            }
        });
    }

    pub fn set_subscription(&self, room: &str, sid: &str, tracks: &[String], subscribe: bool) {
        let mut inner = self.lock();
        let Some(state) = inner.rooms.get_mut(room) else { return };
        let published: HashMap<String, String> = state
            .members
            .iter()
            .flat_map(|m| m.info.tracks.iter().map(|t| (t.sid.clone(), m.info.sid.clone())))
            .collect();
        let Some(m) = state.members.iter_mut().find(|m| m.info.sid == sid) else { return };
        for track in tracks {
            m.choices.insert(track.clone(), subscribe);
            let Some(publisher) = published.get(track) else { continue };
            let command = if subscribe && m.can_subscribe {
                MediaCommand::Subscribe { participant: publisher.clone(), track: track.clone() }
            } else {
                MediaCommand::Unsubscribe { track: track.clone() }
            };
            let _ = m.media.send(command);
        }
    }

    /// A packet from a publisher's track: count it and hand it to every subscriber.
    pub fn forward(&self, track: &str, packet: Packet) {
        let packet = Arc::new(packet);
        {
            let inner = self.lock();
            let Some((room, publisher)) = inner.track_owner.get(track) else { return };
            let Some(state) = inner.rooms.get(room) else { return };
            for m in &state.members {
                if m.info.sid != *publisher && m.wants(track) {
                    let _ =
                        m.media.send(MediaCommand::Rtp { track: track.to_owned(), packet: packet.clone() });
                }
            }
        }
        self.count(|s| {
            if let Some(t) = s.tracks.get_mut(track) {
                t.received += 1;
                if packet.audio_level.is_some() {
                    t.with_audio_level += 1;
                }
            }
        });
    }

    /// A subscriber wrote a packet of `track`.
    pub fn forwarded(&self, track: &str) {
        self.count(|s| {
            if let Some(t) = s.tracks.get_mut(track) {
                t.forwarded += 1;
            }
        });
    }

    /// Send `message` to one member.
    pub fn send_to(&self, room: &str, sid: &str, message: Resp) {
        if let Some(m) = self.lock().rooms.get(room).and_then(|s| s.member(sid)) {
            m.send(message);
        }
    }
}
