//! An event's language channels and what each one carries.
//!
//! Channel 0 is the floor (the original language); the others are interpretation channels. A
//! channel with nobody on air carries the floor. Each channel has one continuous output line,
//! whatever source feeds it, so a source change is invisible to listeners' decoders.

use std::time::Instant;

use crate::ids::Language;
use crate::media::{ChannelPacket, Continuity, Mapped, Source, SourcePacket};

/// Index of a channel within its event; 0 is the floor.
pub type ChannelIndex = usize;

/// What a channel is, in the organisers' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Floor,
    Interpretation,
}

#[derive(Debug)]
struct Channel {
    language: Language,
    line: Continuity,
}

/// The routing state of one event on one shard.
#[derive(Debug)]
pub struct EventRouter {
    channels: Vec<Channel>,
}

/// Where channel output lines start. Internal numbering: listeners rebase onto their own.
const LINE_START: Mapped = Mapped { seq: 1 << 20, ts: 0 };

impl EventRouter {
    /// Channels: the floor language first, then each interpretation language once.
    pub fn new(floor: &Language, languages: &[Language]) -> Self {
        let mut channels = vec![Channel { language: floor.clone(), line: Continuity::new(LINE_START) }];
        for language in languages {
            if channels.iter().all(|c| &c.language != language) {
                channels.push(Channel { language: language.clone(), line: Continuity::new(LINE_START) });
            }
        }
        Self { channels }
    }

    pub fn channel(&self, language: &Language) -> Option<ChannelIndex> {
        self.channels.iter().position(|c| &c.language == language)
    }

    pub fn language(&self, channel: ChannelIndex) -> Option<&Language> {
        self.channels.get(channel).map(|c| &c.language)
    }

    pub fn kind(channel: ChannelIndex) -> ChannelKind {
        if channel == 0 { ChannelKind::Floor } else { ChannelKind::Interpretation }
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Route one source packet: append to `out` each channel it is heard on, with its position on
    /// that channel's line. Allocation-free when `out` has capacity.
    pub fn route(
        &mut self,
        packet: &SourcePacket,
        now: Instant,
        out: &mut Vec<(ChannelIndex, ChannelPacket)>,
    ) {
        match packet.source {
            // Nobody is on air yet (booths come with interpretation): every channel carries the floor.
            Source::Floor => {
                for (index, channel) in self.channels.iter_mut().enumerate() {
                    if let Some(m) = channel.line.map(packet.input, packet.seq, packet.ts, now) {
                        out.push((
                            index,
                            ChannelPacket {
                                seq: m.seq,
                                ts: m.ts,
                                marker: packet.marker,
                                payload: packet.payload.clone(),
                                received_at: packet.received_at,
                            },
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ids::EventId;

    fn lang(s: &str) -> Language {
        Language::parse(s).expect("valid")
    }

    fn floor_packet(input: u64, seq: u64, ts: u32, at: Instant) -> SourcePacket {
        SourcePacket {
            event: EventId::parse("e").expect("valid"),
            source: Source::Floor,
            input,
            seq,
            ts,
            marker: false,
            payload: vec![1, 2, 3].into(),
            received_at: at,
        }
    }

    #[test]
    fn channels_are_floor_first_without_repeats() {
        let r = EventRouter::new(&lang("en"), &[lang("fr"), lang("de"), lang("fr"), lang("en")]);
        assert_eq!(r.channel_count(), 3);
        assert_eq!(r.channel(&lang("en")), Some(0));
        assert_eq!(r.channel(&lang("de")), Some(2));
        assert_eq!(r.channel(&lang("it")), None);
        assert_eq!(EventRouter::kind(0), ChannelKind::Floor);
        assert_eq!(EventRouter::kind(2), ChannelKind::Interpretation);
    }

    #[test]
    fn nobody_on_air_every_channel_carries_the_floor_continuously_across_a_reconnect() {
        let mut r = EventRouter::new(&lang("en"), &[lang("fr"), lang("de")]);
        let t0 = Instant::now();
        let mut per_channel: Vec<Vec<ChannelPacket>> = vec![Vec::new(); 3];
        let mut out = Vec::new();
        for i in 0..100u64 {
            // The floor publisher reconnects after 60 packets, with a new numbering.
            let (input, seq, ts) =
                if i < 60 { (1, 1000 + i, i as u32 * 960) } else { (2, 500 + i, 99 + i as u32 * 960) };
            out.clear();
            r.route(&floor_packet(input, seq, ts, t0), t0 + Duration::from_millis(20 * i), &mut out);
            assert_eq!(out.len(), 3, "the floor reaches every channel");
            for (c, p) in out.drain(..) {
                per_channel[c].push(p);
            }
        }
        for packets in &per_channel {
            assert_eq!(packets.len(), 100);
            for pair in packets.windows(2) {
                assert_eq!(pair[1].seq, pair[0].seq + 1);
                assert_eq!(pair[1].ts.wrapping_sub(pair[0].ts), 960);
            }
        }
    }
}
