//! One input's playout: an adaptive jitter buffer and an Opus decoder, packets in, one 20 ms frame
//! out per tick. Used by every mix (the mixed channels, a LiveKit meeting's floor); time comes in
//! as an argument.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;
/// The buffer's greatest target depth, in frames.
const MAX_DEPTH: usize = 5;

/// Packets in, decoded frames out.
pub struct Playout {
    decoder: opus::Decoder,
    packets: BTreeMap<u64, Arc<[u8]>>,
    /// Next sequence number to play; None until playout starts.
    next: Option<u64>,
    /// Arrival jitter estimate (RFC 3550 style), in seconds.
    jitter: f64,
    last_arrival: Option<(Instant, u32)>,
    underruns: u32,
    /// The smallest target depth, in frames: 1 for inputs from the internet, 0 where the
    /// measured jitter alone decides (a loopback or LAN source).
    min_depth: usize,
}

impl Playout {
    /// An input that holds at least `min_depth` frames before it plays (more when jitter asks).
    pub fn new(min_depth: usize) -> Result<Self, opus::Error> {
        Ok(Self {
            decoder: opus::Decoder::new(48_000, opus::Channels::Mono)?,
            packets: BTreeMap::new(),
            next: None,
            jitter: 0.0,
            last_arrival: None,
            underruns: 0,
            min_depth: min_depth.min(MAX_DEPTH),
        })
    }

    /// A packet of the input (`seq` extended to 64 bits, `ts` its RTP timestamp).
    pub fn push(&mut self, seq: u64, ts: u32, payload: Arc<[u8]>, now: Instant) {
        if let Some((at, last_ts)) = self.last_arrival {
            let arrival = now.saturating_duration_since(at).as_secs_f64();
            let media = f64::from(ts.wrapping_sub(last_ts) as i32) / 48_000.0;
            self.jitter += ((arrival - media).abs() - self.jitter) / 16.0;
        }
        self.last_arrival = Some((now, ts));
        if self.next.is_some_and(|next| seq < next) {
            return; // too late to play
        }
        self.packets.insert(seq, payload);
        // Keep the buffer bounded: drop what is hopelessly behind.
        while self.packets.len() > MAX_DEPTH * 4 {
            let Some((first, _)) = self.packets.pop_first() else { break };
            self.next = Some(first + 1);
        }
    }

    /// Whether the input has nothing to play: not started, or run dry and waiting to refill.
    pub fn is_idle(&self) -> bool {
        self.next.is_none() && self.packets.len() <= self.target_depth()
    }

    /// Target depth in frames: twice the jitter less 5 ms (a frame's worth of decoding and
    /// mixing slack: a jitter of a few milliseconds does not cost a whole frame), at least
    /// `min_depth`.
    fn target_depth(&self) -> usize {
        (((self.jitter * 2.0 - 0.005).max(0.0) / 0.020).ceil() as usize).clamp(self.min_depth, MAX_DEPTH)
    }

    /// The next 20 ms: decoded, recovered (FEC or concealment), or silence before playout starts.
    pub fn frame(&mut self, out: &mut [f32; FRAME]) {
        let next = match self.next {
            Some(next) => next,
            None => {
                out.fill(0.0);
                if self.packets.len() <= self.target_depth() {
                    return;
                }
                match self.packets.keys().next() {
                    Some(first) => *first,
                    None => return,
                }
            }
        };
        let decoded = if let Some(payload) = self.packets.remove(&next) {
            self.decoder.decode_float(&payload, out, false)
        } else if let Some(following) = self.packets.get(&(next + 1)) {
            // Lost: recover it from the in-band FEC of the one after.
            self.decoder.decode_float(following, out, true)
        } else if self.packets.is_empty() {
            // Underrun: conceal once, then wait to refill to the target depth.
            self.underruns += 1;
            let concealed = self.decoder.decode_float(&[], out, false);
            self.next = if self.underruns > 2 { None } else { Some(next + 1) };
            if concealed.is_err() {
                out.fill(0.0);
            }
            return;
        } else {
            self.decoder.decode_float(&[], out, false)
        };
        if decoded.is_err() {
            out.fill(0.0);
        }
        self.underruns = 0;
        self.next = Some(next + 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn packet() -> Arc<[u8]> {
        crate::media::silence::opus_silence()
    }

    #[test]
    fn a_deeper_minimum_holds_more_before_playing() {
        let t0 = Instant::now();
        let mut eager = Playout::new(0).expect("playout");
        let mut patient = Playout::new(1).expect("playout");
        eager.push(0, 0, packet(), t0);
        patient.push(0, 0, packet(), t0);
        assert!(!eager.is_idle(), "one packet is enough at depth 0");
        assert!(patient.is_idle(), "depth 1 waits for a second packet");
        patient.push(1, 960, packet(), t0 + Duration::from_millis(20));
        assert!(!patient.is_idle());
    }

    #[test]
    fn runs_dry_after_three_missing_frames() {
        let t0 = Instant::now();
        let mut playout = Playout::new(0).expect("playout");
        playout.push(0, 0, packet(), t0);
        let mut frame = [0f32; FRAME];
        playout.frame(&mut frame);
        assert!(!playout.is_idle());
        for _ in 0..3 {
            playout.frame(&mut frame);
        }
        assert!(playout.is_idle(), "three underruns: waiting to refill");
    }
}
