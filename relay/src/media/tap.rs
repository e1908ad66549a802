//! The recording tap: what one shard hands the recorder of an event — each channel packet as the
//! listeners get it, with who was on air — without ever waiting for it. The queue is bounded; a
//! full queue drops the packet and counts it (the file then has a gap, filled with silence).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::ids::{EventId, InterpreterId};
use crate::media::ChannelPacket;
use crate::media::router::ChannelIndex;

/// One channel packet for the recorder.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// Shared with the tap: no allocation per packet on the shard.
    pub event: Arc<EventId>,
    pub channel: ChannelIndex,
    /// Position on the channel's line (continuous across sources).
    pub ts: u32,
    pub payload: Arc<[u8]>,
    /// When the relay received the source packet (the mixer's tick for a mixed channel).
    pub received_at: Instant,
    /// Who was on air in the channel (None: nobody; the channel carried the floor).
    pub on_air: Option<InterpreterId>,
}

/// Where an event's recorded channels go.
#[derive(Debug, Clone)]
pub struct Tap {
    event: Arc<EventId>,
    /// Recorded channels, by index.
    channels: Arc<[bool]>,
    to_recorder: crossbeam_channel::Sender<Tapped>,
    dropped: Arc<AtomicU64>,
}

impl Tap {
    /// A tap for `event`'s `channels` (by index) into the recorder's queue; `dropped` counts
    /// what a full queue refused.
    pub fn new(
        event: EventId,
        channels: Vec<bool>,
        to_recorder: crossbeam_channel::Sender<Tapped>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self { event: Arc::new(event), channels: channels.into(), to_recorder, dropped }
    }

    /// Hand a routed packet to the recorder if its channel is recorded; never blocks.
    pub fn offer(&self, channel: ChannelIndex, packet: &ChannelPacket, on_air: Option<InterpreterId>) {
        if !self.channels.get(channel).copied().unwrap_or(false) {
            return;
        }
        let tapped = Tapped {
            event: self.event.clone(),
            channel,
            ts: packet.ts,
            payload: packet.payload.clone(),
            received_at: packet.received_at,
            on_air,
        };
        if self.to_recorder.try_send(tapped).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recorded_channels_are_offered_and_a_full_queue_counts_drops() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let event = EventId::parse("e").expect("valid");
        let tap = Tap::new(event, vec![true, false, true], tx, dropped.clone());
        let packet = ChannelPacket {
            seq: 1,
            ts: 960,
            marker: false,
            payload: Arc::from(&[1u8][..]),
            received_at: Instant::now(),
        };
        tap.offer(1, &packet, None);
        tap.offer(5, &packet, None);
        assert!(rx.is_empty(), "channels 1 and 5 are not recorded");
        for _ in 0..3 {
            tap.offer(2, &packet, None);
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "the third waited for nobody");
    }
}
