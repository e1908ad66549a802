//! What one listener counts, whatever WebRTC stack it runs on: packets, sequence gaps, jitter,
//! latency (from the packets' stamps), first audio, channel switches and handover gaps. The run
//! merges the tallies of all listeners into the report.

use std::time::Instant;

use crate::stamp::{self, Stamp};

/// RTP ticks of one 20 ms Opus packet.
const FRAME_TICKS: u64 = 960;

/// Latency buckets: 50 µs wide up to 100 ms, then one overflow bucket.
pub const LATENCY_BUCKET_US: u64 = 50;
pub const LATENCY_BUCKETS: usize = 2_001;

/// A latency histogram in fixed 50 µs buckets (shared by many listeners: merge by adding).
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    pub counts: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: vec![0; LATENCY_BUCKETS] }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, us: u64) {
        let i = ((us / LATENCY_BUCKET_US) as usize).min(LATENCY_BUCKETS - 1);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value (ms, bucket upper edge) below which `q` of the samples fall.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return ((i as u64 + 1) * LATENCY_BUCKET_US) as f64 / 1000.0;
            }
        }
        (LATENCY_BUCKETS as u64 * LATENCY_BUCKET_US) as f64 / 1000.0
    }
}

/// One listener's counts.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub posted_at: Option<Instant>,
    pub first_packet_at: Option<Instant>,
    pub packets: u64,
    highest_seq: u64,
    /// Extended sequence numbers (wrap-aware).
    last_raw_seq: Option<u16>,
    cycles: u64,
    /// RTP timestamps, extended: a relay that skips packets but numbers the rest without gaps
    /// still shows the skipped time here.
    last_raw_ts: Option<u32>,
    ts_cycles: u64,
    highest_ts: u64,
    /// Packet slots from the first packet to the highest: each step to a new highest packet
    /// counts its sequence step or its whole 20 ms frames of timestamp, whichever is more.
    slots: u64,
    /// Of the slots: those in sequence gaps, and those only the timestamps show.
    pub seq_gaps: u64,
    pub skipped_frames: u64,
    /// RFC 3550 interarrival jitter, in RTP ticks (48 kHz).
    jitter: f64,
    last_transit: Option<f64>,
    /// Last source heard and when.
    pub last_source: Option<u16>,
    pub last_arrival: Option<Instant>,
    /// A switch asked at this time, to this source set; the first packet from a new source ends it.
    pub switch_pending: Option<(Instant, u16)>,
    pub switch_ms: Vec<f64>,
    /// Gaps at a change of voice (old voice's last packet → new voice's first), ms.
    pub handover_gaps_ms: Vec<f64>,
    pub decode_errors: u64,
}

impl Tally {
    /// A received RTP packet: `seq` its sequence number, `ts` its RTP timestamp.
    pub fn packet(
        &mut self,
        seq: u16,
        ts: u32,
        payload: &[u8],
        now: Instant,
        latency: &mut LatencyHistogram,
    ) {
        self.packet_arrived(seq, ts, payload, now, stamp::now_us(), latency);
    }

    /// [`Tally::packet`] for a packet that arrived at `arrived_us` (µs since the Unix epoch: the
    /// kernel's receive time, taken before the generator's loop got to the packet).
    pub fn packet_arrived(
        &mut self,
        seq: u16,
        ts: u32,
        payload: &[u8],
        now: Instant,
        arrived_us: u64,
        latency: &mut LatencyHistogram,
    ) {
        self.first_packet_at.get_or_insert(now);
        self.packets += 1;
        if let Some(last) = self.last_raw_seq
            && seq < 0x4000
            && last > 0xc000
        {
            self.cycles += 1 << 16;
        }
        self.last_raw_seq = Some(seq);
        let ext = self.cycles + u64::from(seq);
        if let Some(last) = self.last_raw_ts
            && ts < 0x4000_0000
            && last > 0xc000_0000
        {
            self.ts_cycles += 1 << 32;
        }
        self.last_raw_ts = Some(ts);
        let ext_ts = self.ts_cycles + u64::from(ts);
        if self.slots == 0 {
            self.highest_seq = ext;
            self.highest_ts = ext_ts;
            self.slots = 1;
        } else if ext > self.highest_seq {
            // Whole frames only: at a change of voice the relay advances the timestamp by the
            // wall time between the old voice's last packet and the new one's first, and two
            // independent 20 ms senders are up to a frame apart in phase. That fraction is no
            // lost packet; summed over the handovers of a run it would add up to some.
            let frames = ext_ts.saturating_sub(self.highest_ts) / FRAME_TICKS;
            let step = ext - self.highest_seq;
            self.slots += step.max(frames);
            self.seq_gaps += step - 1;
            self.skipped_frames += frames.saturating_sub(step);
            self.highest_seq = ext;
            self.highest_ts = ext_ts;
        }
        // Jitter (RFC 3550 §6.4.1) in RTP ticks.
        let arrival = arrived_us as f64 * 0.048; // µs to 48 kHz ticks
        let transit = arrival - f64::from(ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            if d < 48_000.0 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        if let Some(Stamp { sent_us, source }) = stamp::read(payload) {
            latency.record(arrived_us.saturating_sub(sent_us));
            if let (Some(prev), Some(at)) = (self.last_source, self.last_arrival)
                && prev != source
            {
                if let Some((asked, _)) = self.switch_pending.take() {
                    self.switch_ms.push(now.duration_since(asked).as_secs_f64() * 1000.0);
                } else if prev != 0 && source != 0 {
                    // One booth voice to another: a handover.
                    self.handover_gaps_ms.push(now.duration_since(at).as_secs_f64() * 1000.0);
                }
            }
            self.last_source = Some(source);
        }
        self.last_arrival = Some(now);
    }

    /// Packets expected: from the first to the highest, each step counting its sequence numbers
    /// or its whole 20 ms frames of timestamp, whichever is more.
    pub fn expected(&self) -> u64 {
        self.slots
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.packets)
    }

    /// Packets expected by `now`: also one per 20 ms since the last arrived, so that a listener
    /// the relay stopped serving (no more packets, no gaps to see) counts what it misses. (Counted
    /// from the last packet, not the first: handovers shift a channel's packets in phase by up
    /// to a frame each, and over a run those shifts would add up to packets never due.)
    pub fn expected_at(&self, now: Instant) -> u64 {
        self.expected() + self.silent_at(now)
    }

    /// Whole 20 ms frames from the last packet to `now`.
    pub fn silent_at(&self, now: Instant) -> u64 {
        self.last_arrival.map_or(0, |l| (now.saturating_duration_since(l).as_millis() / 20) as u64)
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter / 48.0
    }

    pub fn first_audio_ms(&self) -> Option<f64> {
        Some(self.first_packet_at?.duration_since(self.posted_at?).as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_gaps_across_a_wrap_and_handovers() {
        let mut t = Tally::default();
        let mut h = LatencyHistogram::default();
        let start = Instant::now();
        let sent = stamp::now_us();
        for (i, seq) in [65533u16, 65534, 65535, 1, 2].into_iter().enumerate() {
            let source = if i < 3 { 1 } else { 2 };
            let payload = stamp::stamp(&[0x78, 1, 2, 3], source, sent);
            t.packet(seq, i as u32 * 960, &payload, start + Duration::from_millis(20 * i as u64), &mut h);
        }
        assert_eq!(t.packets, 5);
        assert_eq!(t.expected(), 6);
        assert_eq!(t.lost(), 1);
        assert_eq!(t.handover_gaps_ms.len(), 1);
        assert!((t.handover_gaps_ms[0] - 20.0).abs() < 1.0);
        assert_eq!(h.total(), 5);
    }

    #[test]
    fn skipped_time_counts_as_loss_even_without_sequence_gaps() {
        let mut t = Tally::default();
        let mut h = LatencyHistogram::default();
        let now = Instant::now();
        // Consecutive sequence numbers, but the middle packet's 20 ms are missing.
        for (seq, ts) in [(10u16, 0u32), (11, 960), (12, 2880)] {
            t.packet(seq, ts, &[], now, &mut h);
        }
        assert_eq!(t.expected(), 4);
        assert_eq!(t.lost(), 1);
        // A second later with nothing more: 50 more packets were due than the 4.
        assert_eq!(t.expected_at(now + std::time::Duration::from_secs(1)), 54);
    }

    #[test]
    fn a_change_of_voice_within_a_frame_of_phase_is_no_loss() {
        let mut t = Tally::default();
        let mut h = LatencyHistogram::default();
        let start = Instant::now();
        // Two handovers, each 37.9 ms from the old voice's last packet to the new one's first
        // (the relay advances the timestamp by that wall time), then real skips within one voice
        // of one frame (40 ms) and two (60 ms).
        let mut ts = 0u32;
        let mut at = start;
        let mut steps = vec![(960u32, 20u64); 5];
        steps.extend([(1819, 38), (960, 20), (960, 20), (1819, 38), (960, 20), (1920, 40), (2900, 60)]);
        t.packet(1, ts, &[], at, &mut h);
        for (i, (step, ms)) in steps.into_iter().enumerate() {
            ts += step;
            at += Duration::from_millis(ms);
            t.packet(2 + i as u16, ts, &[], at, &mut h);
        }
        // 13 packets; the 40 ms step (same voice) lost one, the 60 ms step two more.
        assert_eq!(t.packets, 13);
        assert_eq!(t.expected(), 16);
        assert_eq!(t.lost(), 3);
        assert_eq!((t.seq_gaps, t.skipped_frames), (0, 3));
        // The handovers moved the packets 36 ms later, but 10 ms after the last none was due.
        assert_eq!(t.expected_at(at + Duration::from_millis(10)), 16);
        assert_eq!(t.expected_at(at + Duration::from_millis(45)), 18);
    }

    #[test]
    fn quantiles_of_the_histogram() {
        let mut h = LatencyHistogram::default();
        for us in 0..1000 {
            h.record(us * 10); // 0..10 ms evenly
        }
        assert!((h.quantile_ms(0.5) - 5.0).abs() <= 0.1, "{}", h.quantile_ms(0.5));
        assert!((h.quantile_ms(0.99) - 9.9).abs() <= 0.1);
        h.record(10_000_000);
        assert_eq!(h.quantile_ms(1.0), 100.05);
    }
}
