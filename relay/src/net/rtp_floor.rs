//! An RTP floor's input gate: who may feed an event's plain-RTP floor port. The port is reachable
//! by anyone who finds it, so only sources on the event's allow-list count (when it has one,
//! [`SourceAllow`]), and the floor locks on its first sender (address and port) and its
//! payload type, ignores every other source until the locked one has been silent for
//! [`LOCK_HOLD`], and takes at most [`BURST`] packets at once, refilled at [`RATE`] per second
//! (Opus sends 50 per second). Rejections are counted, never logged one by one. Pure: time is an
//! argument.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::allow::SourceAllow;
use crate::media::rtp::SeqExtender;

/// How long the locked sender may be silent before another source may take the floor.
pub const LOCK_HOLD: Duration = Duration::from_secs(5);
/// Packets per second the floor takes at the most (twice Opus's 50).
pub const RATE: f64 = 100.0;
/// Packets the floor takes at once after a pause (a sender's burst after a network hiccup).
pub const BURST: f64 = 50.0;

/// What the gate says about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the locked sender (`new_input`: a new sender or stream, so a new input line).
    Take { new_input: bool },
    /// Not taken: another source while the floor is locked, another payload type, or too fast.
    Reject,
}

/// One RTP floor's lock, rate limit and input line.
#[derive(Debug)]
pub struct RtpFloor {
    /// The locked sender, its payload type and SSRC, and when it was last heard.
    locked: Option<(SocketAddr, u8, u32)>,
    last_heard: Option<Instant>,
    tokens: f64,
    refilled: Option<Instant>,
    /// The input line packets are routed under (a new one per sender or stream).
    pub input: u64,
    /// Extends the sender's 16-bit sequence numbers.
    pub extender: SeqExtender,
    /// Datagrams not taken, since the floor opened.
    pub rejected: u64,
    /// Sources that may send at all (empty: any).
    allow: SourceAllow,
}

impl Default for RtpFloor {
    fn default() -> Self {
        Self {
            locked: None,
            last_heard: None,
            tokens: BURST,
            refilled: None,
            input: 0,
            extender: SeqExtender::default(),
            rejected: 0,
            allow: SourceAllow::default(),
        }
    }
}

impl RtpFloor {
    /// A floor that takes audio only from the sources `allow` names (any, when empty).
    pub fn allowing(allow: SourceAllow) -> Self {
        Self { allow, ..Self::default() }
    }

    /// Judge a parsed RTP packet from `source` (payload type `pt`, SSRC `ssrc`) at `now`.
    pub fn admit(&mut self, now: Instant, source: SocketAddr, pt: u8, ssrc: u32) -> Verdict {
        if !self.allow.allows(source.ip()) {
            return self.reject();
        }
        let held = self.last_heard.is_some_and(|t| now.saturating_duration_since(t) < LOCK_HOLD);
        let new_input = match self.locked {
            Some((addr, locked_pt, _)) if held && (addr != source || locked_pt != pt) => {
                return self.reject();
            }
            Some((addr, locked_pt, locked_ssrc)) if held || (addr == source && locked_pt == pt) => {
                locked_ssrc != ssrc || !held
            }
            _ => true,
        };
        if !self.take_token(now) {
            return self.reject();
        }
        self.locked = Some((source, pt, ssrc));
        self.last_heard = Some(now);
        Verdict::Take { new_input }
    }

    /// The locked sender, if the floor has one that is not yet silent for [`LOCK_HOLD`].
    pub fn sender(&self, now: Instant) -> Option<SocketAddr> {
        let held = self.last_heard.is_some_and(|t| now.saturating_duration_since(t) < LOCK_HOLD);
        self.locked.filter(|_| held).map(|(addr, _, _)| addr)
    }

    /// Count a datagram that is not RTP at all.
    pub fn reject(&mut self) -> Verdict {
        self.rejected += 1;
        Verdict::Reject
    }

    fn take_token(&mut self, now: Instant) -> bool {
        if let Some(last) = self.refilled {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        }
        self.refilled = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT: u8 = 111;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 9], port))
    }

    /// One packet every 20 ms from `source` for `seconds`; how many were taken.
    fn stream(floor: &mut RtpFloor, start: Instant, seconds: u64, source: SocketAddr, pt: u8) -> usize {
        (0..seconds * 50)
            .filter(|i| {
                let at = start + Duration::from_millis(20 * i);
                matches!(floor.admit(at, source, pt, 7), Verdict::Take { .. })
            })
            .count()
    }

    #[test]
    fn the_first_sender_locks_the_floor_until_it_is_silent_for_five_seconds() {
        let mut floor = RtpFloor::default();
        let t = Instant::now();
        assert_eq!(floor.admit(t, addr(1), PT, 7), Verdict::Take { new_input: true });
        assert_eq!(
            floor.admit(t + Duration::from_millis(20), addr(1), PT, 7),
            Verdict::Take { new_input: false }
        );
        // Another address, or another port on the same host: refused while the lock holds.
        let later = t + Duration::from_secs(4);
        assert_eq!(floor.admit(later, addr(2), PT, 7), Verdict::Reject);
        assert_eq!(floor.admit(later, SocketAddr::from(([198, 51, 100, 1], 1)), PT, 7), Verdict::Reject);
        assert_eq!(floor.sender(later), Some(addr(1)));
        // Silent for 5 s: the next source takes the floor on a new input line.
        let free = t + Duration::from_millis(20) + LOCK_HOLD;
        assert_eq!(floor.sender(free), None);
        assert_eq!(floor.admit(free, addr(2), PT, 9), Verdict::Take { new_input: true });
        assert_eq!(floor.admit(free + Duration::from_millis(20), addr(1), PT, 7), Verdict::Reject);
        assert_eq!(floor.rejected, 3);
    }

    #[test]
    fn only_the_locked_payload_type_and_a_new_ssrc_starts_a_new_line() {
        let mut floor = RtpFloor::default();
        let t = Instant::now();
        floor.admit(t, addr(1), PT, 7);
        assert_eq!(floor.admit(t + Duration::from_millis(20), addr(1), 0, 7), Verdict::Reject, "PCMU");
        // The same sender restarted (new SSRC): taken, on a new input line.
        assert_eq!(
            floor.admit(t + Duration::from_millis(40), addr(1), PT, 8),
            Verdict::Take { new_input: true }
        );
    }

    #[test]
    fn only_allowed_sources_may_take_the_floor_even_when_it_is_free() {
        let allow = SourceAllow::parse(&["192.0.2.0/24"]).unwrap();
        let mut floor = RtpFloor::allowing(allow);
        let t = Instant::now();
        let outsider = SocketAddr::from(([198, 51, 100, 1], 5004));
        assert_eq!(stream(&mut floor, t, 2, outsider, PT), 0, "an outsider never locks the floor");
        assert_eq!(floor.sender(t + Duration::from_secs(2)), None);
        assert_eq!(floor.rejected, 100);
        assert_eq!(stream(&mut floor, t + Duration::from_secs(2), 2, addr(1), PT), 100, "the desk is heard");
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_while_a_real_stream_passes_whole() {
        let mut floor = RtpFloor::default();
        let t = Instant::now();
        assert_eq!(stream(&mut floor, t, 10, addr(1), PT), 500, "a 50 packets/s stream passes");
        let mut flood = RtpFloor::default();
        let taken = (0..10_000)
            .filter(|i| {
                let at = t + Duration::from_micros(100 * i); // 10,000 packets/s for one second
                matches!(flood.admit(at, addr(1), PT, 7), Verdict::Take { .. })
            })
            .count();
        assert!((140..=160).contains(&taken), "{taken} taken of a second's flood");
        assert_eq!(flood.rejected as usize, 10_000 - taken);
    }
}
