//! RTP continuity: one outgoing sequence/timestamp line across changing inputs.
//!
//! A channel's output is fed by one source at a time (the floor, an interpreter, the floor again
//! after a reconnect), and a listener's stream is fed by one channel at a time. Every input has
//! its own sequence numbers and timestamps; `Continuity` maps them onto one line so that the
//! receiver sees a single stream: the first packet after a change follows the last one sent
//! (`seq + 1`, timestamp advanced by the wall time that passed, at least one frame), packets
//! within an input keep their spacing (a loss upstream stays a gap), late packets from before a
//! change and duplicates are dropped. Time comes in as an argument.

use std::time::{Duration, Instant};

/// Opus RTP clock rate.
pub const CLOCK_RATE: u64 = 48_000;
/// One 20 ms Opus frame in RTP ticks; the smallest timestamp step at a change of input.
pub const FRAME_TICKS: u32 = 960;

/// How far back (in sequence numbers) duplicates are recognised.
const WINDOW: u64 = 64;

/// Which input a packet came from. Changing the key tells `Continuity` a new line starts.
pub type InputKey = u64;

/// Mapped position of one packet on the output line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Extended output sequence number.
    pub seq: u64,
    /// Output RTP timestamp.
    pub ts: u32,
}

#[derive(Debug, Clone)]
pub struct Continuity {
    input: Option<InputKey>,
    /// Output = input + offset (wrapping), for the current input.
    seq_offset: u64,
    ts_offset: u32,
    /// First output sequence number of the current input: anything below is stale.
    input_start: u64,
    /// Highest output sequence number sent, its timestamp and when it was sent.
    last: Option<(u64, u32, Instant)>,
    /// Bit i set: `highest - i` was sent.
    seen: u64,
    next_start: Mapped,
}

impl Continuity {
    /// A line whose first packet gets `start`.
    pub fn new(start: Mapped) -> Self {
        Self {
            input: None,
            seq_offset: 0,
            ts_offset: 0,
            input_start: start.seq,
            last: None,
            seen: 0,
            next_start: start,
        }
    }

    /// The input currently on this line.
    pub fn input(&self) -> Option<InputKey> {
        self.input
    }

    /// Map a packet of `input` (extended sequence number, timestamp) received at `now`.
    /// `None`: drop it (a duplicate, or older than the change to this input).
    pub fn map(&mut self, input: InputKey, seq: u64, ts: u32, now: Instant) -> Option<Mapped> {
        if self.input != Some(input) {
            self.switch_to(input, seq, ts, now);
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        if out_seq < self.input_start || out_seq > self.input_start + (1 << 40) {
            return None;
        }
        let out_ts = ts.wrapping_add(self.ts_offset);
        match self.last {
            Some((highest, _, _)) if out_seq <= highest => {
                let back = highest - out_seq;
                if back >= WINDOW || self.seen & (1 << back) != 0 {
                    return None;
                }
                self.seen |= 1 << back;
            }
            Some((highest, _, _)) => {
                let ahead = out_seq - highest;
                self.seen = if ahead >= WINDOW { 1 } else { (self.seen << ahead) | 1 };
                self.last = Some((out_seq, out_ts, now));
            }
            None => {
                self.seen = 1;
                self.last = Some((out_seq, out_ts, now));
            }
        }
        Some(Mapped { seq: out_seq, ts: out_ts })
    }

    fn switch_to(&mut self, input: InputKey, seq: u64, ts: u32, now: Instant) {
        let start = match self.last {
            None => self.next_start,
            Some((last_seq, last_ts, at)) => {
                Mapped { seq: last_seq + 1, ts: last_ts.wrapping_add(ticks_since(at, now).max(FRAME_TICKS)) }
            }
        };
        self.input = Some(input);
        self.seq_offset = start.seq.wrapping_sub(seq);
        self.ts_offset = start.ts.wrapping_sub(ts);
        self.input_start = start.seq;
    }
}

/// Wall time from `then` to `now` in RTP ticks (saturating at one hour).
fn ticks_since(then: Instant, now: Instant) -> u32 {
    let elapsed = now.saturating_duration_since(then).min(Duration::from_secs(3600));
    (elapsed.as_micros() as u64 * CLOCK_RATE / 1_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    fn line() -> (Continuity, Instant) {
        (Continuity::new(Mapped { seq: 100, ts: 5000 }), Instant::now())
    }

    #[test]
    fn first_input_starts_where_asked_and_keeps_spacing() {
        let (mut c, t0) = line();
        assert_eq!(c.map(1, 7000, 123_456, t0), Some(Mapped { seq: 100, ts: 5000 }));
        assert_eq!(c.map(1, 7001, 123_456 + 960, t0 + MS20), Some(Mapped { seq: 101, ts: 5960 }));
        // A packet lost upstream stays a gap.
        assert_eq!(c.map(1, 7003, 123_456 + 3 * 960, t0 + 3 * MS20), Some(Mapped { seq: 103, ts: 7880 }));
    }

    #[test]
    fn a_change_of_input_continues_the_line_without_loss_or_duplicate() {
        let (mut c, t0) = line();
        let mut now = t0;
        let mut out = Vec::new();
        for i in 0..50u64 {
            out.push(c.map(1, 60_000 + i, (i as u32).wrapping_mul(960).wrapping_add(u32::MAX - 5000), now));
            now += MS20;
        }
        // The floor publisher reconnects: new sequence and timestamp base.
        for i in 0..50u64 {
            out.push(c.map(2, 12 + i, 777 + i as u32 * 960, now));
            now += MS20;
        }
        let out: Vec<Mapped> = out.into_iter().map(|m| m.expect("every packet maps")).collect();
        for pair in out.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap, no duplicate");
            assert_eq!(pair[1].ts.wrapping_sub(pair[0].ts), 960, "timestamps advance by one frame");
        }
    }

    #[test]
    fn timestamps_follow_wall_time_across_a_silent_change() {
        let (mut c, t0) = line();
        c.map(1, 1, 0, t0);
        // The new input starts 500 ms later.
        let m = c.map(2, 9, 42, t0 + Duration::from_millis(500)).expect("maps");
        assert_eq!(m.seq, 101);
        assert_eq!(m.ts, 5000 + 24_000);
    }

    #[test]
    fn an_immediate_change_still_advances_one_frame() {
        let (mut c, t0) = line();
        c.map(1, 1, 0, t0);
        let m = c.map(2, 9, 42, t0 + Duration::from_millis(3)).expect("maps");
        assert_eq!(m.ts, 5000 + FRAME_TICKS);
    }

    #[test]
    fn duplicates_and_stale_packets_are_dropped_reordered_ones_pass() {
        let (mut c, t0) = line();
        assert!(c.map(1, 10, 0, t0).is_some());
        assert!(c.map(1, 12, 1920, t0).is_some());
        assert_eq!(c.map(1, 11, 960, t0), Some(Mapped { seq: 101, ts: 5960 }), "reordered passes");
        assert_eq!(c.map(1, 11, 960, t0), None, "duplicate dropped");
        assert_eq!(c.map(1, 12, 1920, t0), None, "duplicate dropped");
        // Far behind the window: dropped rather than risk a duplicate.
        assert!(c.map(1, 200, 0, t0).is_some());
        assert_eq!(c.map(1, 11 + 64, 0, t0), None);
    }

    #[test]
    fn a_late_packet_from_before_the_change_is_dropped() {
        let (mut c, t0) = line();
        c.map(1, 10, 0, t0);
        c.map(2, 500, 0, t0);
        // Back to input 1 with an old packet: it starts a new line segment (no collision).
        let m = c.map(1, 9, 0, t0).expect("maps onto a fresh segment");
        assert_eq!(m.seq, 102);
        // A packet older than the start of the current segment is stale.
        assert_eq!(c.map(1, 8, 0, t0), None);
    }

    mod properties {
        use std::collections::HashSet;

        use proptest::prelude::*;

        use super::*;

        /// One packet offered to a line: which input, how its number moves from that input's
        /// highest (ahead with a gap, or late/duplicate: 0 or behind), and the wall time that passed.
        #[derive(Debug, Clone)]
        struct Offer {
            input: InputKey,
            step: i64,
            after_ms: u64,
        }

        fn offers() -> impl Strategy<Value = Vec<Offer>> {
            let step = prop_oneof![8 => Just(1i64), 2 => 2i64..50, 3 => -80i64..=0];
            let input = prop_oneof![10 => Just(0u64), 1 => 1u64..4];
            proptest::collection::vec(
                (input, step, prop_oneof![4 => Just(20u64), 1 => 0u64..2_000])
                    .prop_map(|(input, step, after_ms)| Offer { input, step, after_ms }),
                1..500,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Several inputs taking turns, each with its own numbering near a wrap of 16 and of
            /// 32 bits, with gaps, reordering and duplicates:
            /// - no output sequence number is handed out twice (the line's SRTP indices);
            /// - within a turn of one input, the output keeps the input's spacing (sequence number
            ///   and timestamp differ from the input's by a constant), so it is monotone wherever
            ///   the input is; nothing newer than what the turn sent is dropped;
            /// - a turn starts right after the highest number sent, at least one frame later.
            #[test]
            fn the_line_is_unique_and_keeps_each_turn_in_step(
                start in (0u64..1 << 14, any::<u32>()),
                bases in proptest::collection::vec(((1u64..4, 0u64..200), 0u32..100_000), 4),
                offers in offers(),
            ) {
                let t0 = Instant::now();
                let mut now = t0;
                let mut line = Continuity::new(Mapped { seq: start.0, ts: start.1 });
                // Per input: its highest number so far (extended, as a SeqExtender gives them).
                let mut highest_in: Vec<u64> =
                    bases.iter().map(|((roc, lead), _)| (roc << 16) - lead).collect();
                let ts_base: Vec<u32> = bases.iter().map(|(_, back)| u32::MAX - back).collect();
                let mut sent = HashSet::new();
                // The highest output so far and its timestamp; the current turn's offsets.
                let mut top: Option<(u64, u32)> = None;
                let mut turn: Option<(InputKey, u64, u32)> = None;
                for offer in offers {
                    now += Duration::from_millis(offer.after_ms);
                    let i = offer.input as usize;
                    let seq = highest_in[i].saturating_add_signed(offer.step);
                    highest_in[i] = highest_in[i].max(seq);
                    let ts = ts_base[i].wrapping_add((seq as u32).wrapping_mul(FRAME_TICKS));
                    let new_turn = turn.is_none_or(|(input, _, _)| input != offer.input);
                    let fresh = offer.step > 0;
                    let out = line.map(offer.input, seq, ts, now);
                    if new_turn {
                        let out = out.ok_or_else(|| TestCaseError::fail("a turn's first packet is sent"))?;
                        match top {
                            None => prop_assert_eq!(out, Mapped { seq: start.0, ts: start.1 }),
                            Some((top_seq, top_ts)) => {
                                prop_assert_eq!(out.seq, top_seq + 1);
                                prop_assert!(out.ts.wrapping_sub(top_ts) >= FRAME_TICKS);
                            }
                        }
                        turn = Some((offer.input, out.seq.wrapping_sub(seq), out.ts.wrapping_sub(ts)));
                    } else if fresh {
                        prop_assert!(out.is_some(), "a packet newer than the turn's is sent");
                    }
                    if let Some(out) = out {
                        let (_, seq_offset, ts_offset) = turn.unwrap_or_default();
                        prop_assert_eq!(out.seq, seq.wrapping_add(seq_offset), "the turn keeps its spacing");
                        prop_assert_eq!(out.ts, ts.wrapping_add(ts_offset), "and its timestamps");
                        prop_assert!(sent.insert(out.seq), "output {:#x} twice", out.seq);
                        if top.is_none_or(|(s, _)| out.seq > s) {
                            top = Some((out.seq, out.ts));
                        }
                    }
                }
            }
        }
    }
}
