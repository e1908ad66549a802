//! The sans-IO media core: which source feeds which language channel, and how packets keep one
//! continuous RTP line per channel and per listener. No sockets, no threads, no clock: packets
//! and `now` come in as arguments, so everything here is tested on simulated time.
//!
//! - [`rtp`]: plain RTP parsing for RTP floors;
//! - [`continuity`]: sequence/timestamp rewriting across a change of input;
//! - [`router`]: an event's channels and the source each one carries;
//! - [`fanout`]: who listens to which channel;
//! - [`mixer`]: mix mode (the floor under the interpretation, decoded and encoded once per channel);
//! - [`playout`]: one input's jitter buffer and decoder, shared by the mixes;
//! - [`floor_mix`]: a floor made of many microphones (a LiveKit meeting), mixed into one;
//! - [`srtp`]: SRTP protection of the fan-out, from DTLS-SRTP keying material;
//! - [`tap`]: what a shard hands the recorder (channel packets, never waiting).

pub mod continuity;
pub mod fanout;
pub mod floor_mix;
pub mod mixer;
pub mod playout;
pub mod router;
pub mod rtp;
pub mod silence;
pub mod srtp;
pub mod tap;
#[cfg(test)]
mod test_tone;

use std::sync::Arc;
use std::time::Instant;

use crate::ids::{EventId, InterpreterId};

pub use continuity::{Continuity, InputKey, Mapped};

/// Where a source packet comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The original speech (WHIP, RTP, later BBB).
    Floor,
    /// An interpreter's microphone.
    Booth(InterpreterId),
    /// A mixed channel's output (mix mode): the voice with the floor under it, for one channel.
    Mixed(router::ChannelIndex),
    /// One channel's output as the event's origin node sent it (this node is an edge of the
    /// event): heard on that channel only, as is.
    Cascade(router::ChannelIndex),
}

/// One Opus packet from a source, shared by every shard and every listener it reaches.
#[derive(Debug, Clone)]
pub struct SourcePacket {
    pub event: EventId,
    pub source: Source,
    /// The publishing session's input line (changes when a publisher reconnects).
    pub input: InputKey,
    /// Extended sequence number, as the source numbered it.
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    /// When the relay received it: the reference for relay-added latency.
    pub received_at: Instant,
}

/// A packet on a channel's output line.
#[derive(Debug, Clone)]
pub struct ChannelPacket {
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    pub received_at: Instant,
}
