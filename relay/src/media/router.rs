//! An event's language channels and what each one carries.
//!
//! Channel 0 is the floor (the original language); the others are interpretation channels. The
//! booth rules: nobody on air → the channel carries the floor; on air → the interpreter; on air and
//! muted (cough) → silence, never the floor. Taking the air from a partner switches at the next
//! packet: the new voice follows the last packet of the old one on the same line, so there is no
//! gap and no double voice. Each channel has one continuous output line whatever source feeds it.
//!
//! On an edge node (a cluster: the event's origin is another node) the booth rules have already
//! been applied at the origin: each channel carries the origin's output for it
//! ([`Source::Cascade`]) and nothing else, until the edge itself becomes the origin.

use std::sync::Arc;
use std::time::Instant;

use crate::ids::{InterpreterId, Language};
use crate::media::silence::opus_silence;
use crate::media::{ChannelPacket, Continuity, Mapped, Source, SourcePacket};

/// Index of a channel within its event; 0 is the floor.
pub type ChannelIndex = usize;

/// What a channel is, in the organisers' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Floor,
    Interpretation,
}

/// Who is on air in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnAir {
    pub interpreter: InterpreterId,
    pub muted: bool,
}

#[derive(Debug)]
struct Channel {
    language: Language,
    line: Continuity,
    on_air: Option<OnAir>,
}

/// The routing state of one event on one shard.
#[derive(Debug)]
pub struct EventRouter {
    channels: Vec<Channel>,
    silence: Arc<[u8]>,
    /// Mix mode: channels with someone on air carry the mixer's output, not the raw voice.
    mixed: bool,
    /// Edge mode: each channel carries the origin's output for it, and only that.
    cascaded: bool,
}

/// Where channel output lines start. Internal numbering: listeners rebase onto their own.
const LINE_START: Mapped = Mapped { seq: 1 << 20, ts: 0 };

impl EventRouter {
    /// Channels: the floor language first, then each interpretation language once.
    pub fn new(floor: &Language, languages: &[Language]) -> Self {
        let channel = |language: &Language| Channel {
            language: language.clone(),
            line: Continuity::new(LINE_START),
            on_air: None,
        };
        let mut channels = vec![channel(floor)];
        for language in languages {
            if channels.iter().all(|c| &c.language != language) {
                channels.push(channel(language));
            }
        }
        Self { channels, silence: opus_silence(), mixed: false, cascaded: false }
    }

    /// Edge mode on or off: on, each channel carries [`Source::Cascade`] packets for it and
    /// nothing from local sources; off (this node became the event's origin), the booth rules
    /// again. The channels' lines continue across the change.
    pub fn set_cascaded(&mut self, cascaded: bool) {
        self.cascaded = cascaded;
    }

    pub fn cascaded(&self) -> bool {
        self.cascaded
    }

    /// An event in mix mode: a channel with someone on air carries `Source::Mixed` packets.
    pub fn mixed(mut self, mixed: bool) -> Self {
        self.mixed = mixed;
        self
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

    /// Put an interpreter on air in an interpretation channel (or nobody: `None`). Takes effect
    /// at the next packet. False for the floor channel or a channel that does not exist.
    pub fn set_on_air(&mut self, channel: ChannelIndex, on_air: Option<OnAir>) -> bool {
        match self.channels.get_mut(channel) {
            Some(c) if channel != 0 => {
                c.on_air = on_air;
                true
            }
            _ => false,
        }
    }

    pub fn on_air(&self, channel: ChannelIndex) -> Option<OnAir> {
        self.channels.get(channel).and_then(|c| c.on_air)
    }

    /// Route one source packet: append to `out` each channel it is heard on, with its position on
    /// that channel's line. Allocation-free when `out` has capacity.
    pub fn route(
        &mut self,
        packet: &SourcePacket,
        now: Instant,
        out: &mut Vec<(ChannelIndex, ChannelPacket)>,
    ) {
        for (index, channel) in self.channels.iter_mut().enumerate() {
            let payload = match (packet.source, channel.on_air) {
                (Source::Cascade(c), _) if c == index && self.cascaded => &packet.payload,
                _ if self.cascaded => continue,
                (Source::Floor, None) => &packet.payload,
                (Source::Booth(who), Some(on_air)) if on_air.interpreter == who && !self.mixed => {
                    if on_air.muted { &self.silence } else { &packet.payload }
                }
                (Source::Mixed(c), Some(_)) if c == index && self.mixed => &packet.payload,
                _ => continue,
            };
            if let Some(m) = channel.line.map(packet.input, packet.seq, packet.ts, now) {
                out.push((
                    index,
                    ChannelPacket {
                        seq: m.seq,
                        ts: m.ts,
                        marker: packet.marker,
                        payload: payload.clone(),
                        received_at: packet.received_at,
                    },
                ));
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
        packet(Source::Floor, input, seq, ts, at)
    }

    fn packet(source: Source, input: u64, seq: u64, ts: u32, at: Instant) -> SourcePacket {
        SourcePacket {
            event: EventId::parse("e").expect("valid"),
            source,
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

    const A: InterpreterId = InterpreterId(1);
    const B: InterpreterId = InterpreterId(2);
    const FLOOR: u64 = 10;
    const MIC_A: u64 = 11;
    const MIC_B: u64 = 12;

    /// Twenty milliseconds of an event: one packet from the floor and from each microphone, in
    /// the given order, all sent through the router. Returns who was heard on channel `fr` (1).
    struct Sim {
        router: EventRouter,
        t0: Instant,
        tick: u64,
        heard: Vec<(u64, ChannelPacket)>,
    }

    impl Sim {
        fn new() -> Self {
            Self {
                router: EventRouter::new(&lang("en"), &[lang("fr"), lang("de")]),
                t0: Instant::now(),
                tick: 0,
                heard: Vec::new(),
            }
        }

        fn run(&mut self, ticks: u64) {
            for _ in 0..ticks {
                let now = self.t0 + Duration::from_millis(20 * self.tick);
                let mut out = Vec::new();
                for (source, input) in
                    [(Source::Floor, FLOOR), (Source::Booth(A), MIC_A), (Source::Booth(B), MIC_B)]
                {
                    out.clear();
                    let ts = self.tick as u32 * 960 + input as u32 * 7;
                    self.router.route(&packet(source, input, 100 + self.tick, ts, now), now, &mut out);
                    for (channel, p) in out.drain(..) {
                        if channel == 1 {
                            self.heard.push((input, p));
                        }
                    }
                }
                self.tick += 1;
            }
        }

        fn on_air(&mut self, who: Option<InterpreterId>, muted: bool) {
            assert!(self.router.set_on_air(1, who.map(|interpreter| OnAir { interpreter, muted })));
        }
    }

    #[test]
    fn booth_rules_nobody_on_air_then_on_air_then_cough() {
        let mut sim = Sim::new();
        sim.run(5);
        assert!(sim.heard.iter().all(|(who, _)| *who == FLOOR), "nobody on air: the floor");
        sim.on_air(Some(A), false);
        sim.run(5);
        assert!(
            sim.heard[5..].iter().all(|(who, p)| *who == MIC_A && p.payload[..] == [1, 2, 3]),
            "A on air"
        );
        sim.on_air(Some(A), true);
        sim.run(5);
        let silence = opus_silence();
        assert!(
            sim.heard[10..].iter().all(|(who, p)| *who == MIC_A && p.payload == silence),
            "cough: silence from A's clock, never the floor"
        );
        assert_eq!(sim.heard.len(), 15, "exactly one packet per 20 ms throughout");
        // The floor channel and the other channel are untouched by fr's booth.
        assert_eq!(sim.router.on_air(2), None);
        assert!(
            !sim.router.set_on_air(0, Some(OnAir { interpreter: A, muted: false })),
            "nobody goes on air on the floor"
        );
    }

    #[test]
    fn handover_has_no_gap_and_no_overlap() {
        let mut sim = Sim::new();
        sim.on_air(Some(A), false);
        sim.run(10);
        sim.on_air(Some(B), false); // B takes the air from A at a packet boundary
        sim.run(10);
        let sources: Vec<u64> = sim.heard.iter().map(|(who, _)| *who).collect();
        assert_eq!(sources, [vec![MIC_A; 10], vec![MIC_B; 10]].concat(), "one voice per 20 ms, A then B");
        for pair in sim.heard.windows(2) {
            assert_eq!(pair[1].1.seq, pair[0].1.seq + 1, "no gap, no duplicate on the line");
            assert_eq!(pair[1].1.ts.wrapping_sub(pair[0].1.ts), 960, "one frame apart");
        }
    }

    #[test]
    fn an_edge_carries_the_origin_output_per_channel_and_continues_when_it_becomes_origin() {
        let mut sim = Sim::new();
        sim.router.set_cascaded(true);
        sim.on_air(Some(A), false); // a stale on-air on the edge changes nothing
        let mut fr = Vec::new();
        let mut de = Vec::new();
        let t0 = sim.t0;
        for i in 0..6u64 {
            let now = t0 + Duration::from_millis(20 * i);
            let mut out = Vec::new();
            for channel in 0..3 {
                let p = packet(Source::Cascade(channel), 50 + channel as u64, 10 + i, i as u32 * 960, now);
                sim.router.route(&p, now, &mut out);
            }
            // Local sources are not heard on an edge.
            sim.router.route(&floor_packet(FLOOR, 100 + i, 0, now), now, &mut out);
            sim.router.route(&packet(Source::Booth(A), MIC_A, 100 + i, 0, now), now, &mut out);
            assert_eq!(out.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [0, 1, 2], "one packet per channel");
            for (c, p) in out {
                match c {
                    1 => fr.push(p),
                    2 => de.push(p),
                    _ => {}
                }
            }
        }
        // The edge becomes the origin: fr's line goes on with A's voice.
        sim.router.set_cascaded(false);
        let now = t0 + Duration::from_millis(120);
        let mut out = Vec::new();
        sim.router.route(&packet(Source::Booth(A), MIC_A, 200, 5, now), now, &mut out);
        sim.router.route(&packet(Source::Cascade(1), 51, 16, 6 * 960, now), now, &mut out);
        assert_eq!(out.len(), 1, "A on fr; the cascade is no longer heard");
        fr.push(out.remove(0).1);
        for pair in fr.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1, "one line across the change");
        }
        assert_eq!(de.len(), 6);
    }

    #[test]
    fn off_air_or_revoked_falls_back_to_the_floor() {
        let mut sim = Sim::new();
        sim.on_air(Some(A), false);
        sim.run(3);
        sim.on_air(None, false); // A goes off air, or A's booth link is revoked
        sim.run(3);
        let sources: Vec<u64> = sim.heard.iter().map(|(who, _)| *who).collect();
        assert_eq!(sources, [vec![MIC_A; 3], vec![FLOOR; 3]].concat());
        for pair in sim.heard.windows(2) {
            assert_eq!(pair[1].1.seq, pair[0].1.seq + 1);
        }
    }
}
